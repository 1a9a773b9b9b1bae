//! A fake WHM over HTTP or HTTPS (`fake-server serve`): any whmtoken backend's server,
//! answering WHM API 1 calls under `/json-api/` for clients that authenticate with
//! `Authorization: whm USER:SECRET`, decided exactly as `whmtoken verify` decides
//! ([`whmtoken_core::auth::verify`]).
//!
//! Each request reads the server's state afresh through the [`Backend`] (settings, the
//! account, the token by its key, the access hash), so a conversion, a revocation or a
//! setting changed while it serves counts at once; a write (`api_token_create`,
//! `api_token_revoke`) holds the backend's lock for that request only. Requests run on
//! tokio's blocking pool, so a slow write never stalls the connections.
//!
//! The library prints nothing: [`Bound::run`] hands one [`AccessRecord`] per request to
//! the caller, which never holds the `Authorization` header or a secret.

mod api;
mod auth;
mod tls;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio_rustls::rustls::ServerConfig;
use whmtoken_core::{Backend, UserName};

pub use api::WHM_VERSION;
pub use tls::Tls;

/// Where and how to listen.
#[derive(Clone, Debug)]
pub struct Options {
    /// The address and port; port 0 picks a free one.
    pub listen: SocketAddr,
    /// HTTPS with this certificate; `None` for plain HTTP.
    pub tls: Option<Tls>,
}

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the server failed")]
    Io(#[source] std::io::Error),
}

/// A bound listening socket, ready to [`run`](Self::run).
#[derive(Debug)]
pub struct Bound {
    listener: std::net::TcpListener,
    tls: Option<Arc<ServerConfig>>,
    url: String,
    fingerprint: Option<String>,
}

/// Binds the socket (and makes or reads the certificate) without serving yet, so that the
/// caller can say where it listens before the first request.
pub fn bind(options: &Options) -> Result<Bound, ServeError> {
    let listen_error = |source| ServeError::Listen {
        address: options.listen,
        source,
    };
    let (tls, fingerprint) = match &options.tls {
        Some(source) => {
            let (config, fingerprint) = tls::server_config(source)?;
            (Some(config), Some(fingerprint))
        }
        None => (None, None),
    };
    let listener = std::net::TcpListener::bind(options.listen).map_err(listen_error)?;
    listener.set_nonblocking(true).map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    Ok(Bound {
        listener,
        tls,
        url: format!("{scheme}://{local}"),
        fingerprint,
    })
}

/// One request, as the access log shows it.
#[derive(Clone, Debug)]
pub struct AccessRecord {
    /// When the request arrived.
    pub at: jiff::Timestamp,
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The user named in a well-formed `Authorization` header.
    pub user: Option<UserName>,
    pub status: StatusCode,
    /// How long the answer took.
    pub took: Duration,
}

/// `2026-12-01T07:40:00Z GET /json-api/version root 200 0.4 ms`; `-` for no user.
impl fmt::Display for AccessRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.user.as_ref().map_or("-", UserName::as_str);
        write!(
            f,
            "{} {} {} {} {} {:.1} ms",
            self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            self.method,
            self.path.escape_debug(),
            user,
            self.status.as_u16(),
            self.took.as_secs_f64() * 1000.0
        )
    }
}

/// The client's address, for both kinds of listener.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// What the handlers share.
struct App {
    backend: Arc<dyn Backend>,
    log: Box<dyn Fn(&AccessRecord) + Send + Sync>,
}

/// The largest form body read from a POST.
const MAX_BODY: usize = 64 << 10;

/// How long open connections are given to finish once a stop is asked for.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Bound {
    /// `http://127.0.0.1:PORT` or `https://…`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SHA-256 fingerprint of the certificate served, with HTTPS.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// Serves `backend` until SIGINT or SIGTERM, handing each request's record to `log`.
    pub fn run(
        self,
        backend: Arc<dyn Backend>,
        log: impl Fn(&AccessRecord) + Send + Sync + 'static,
    ) -> Result<(), ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(ServeError::Io)?;
        let app = Arc::new(App {
            backend,
            log: Box::new(log),
        });
        runtime.block_on(async move {
            let listener =
                tokio::net::TcpListener::from_std(self.listener).map_err(ServeError::Io)?;
            let router = Router::new().fallback(handle).with_state(app);
            let service = router.into_make_service_with_connect_info::<Peer>();
            let (stopping, stopped) = tokio::sync::oneshot::channel();
            let stop = async move {
                stop_signal().await;
                let _ = stopping.send(());
            };
            let grace = async move {
                let _ = stopped.await;
                tokio::time::sleep(STOP_GRACE).await;
            };
            let served = match self.tls {
                None => {
                    let server = axum::serve(listener, service).with_graceful_shutdown(stop);
                    tokio::select! {
                        served = server.into_future() => served,
                        () = grace => Ok(()),
                    }
                }
                Some(config) => {
                    let listener =
                        tls::TlsListener::new(listener, config).map_err(ServeError::Io)?;
                    let server = axum::serve(listener, service).with_graceful_shutdown(stop);
                    tokio::select! {
                        served = server.into_future() => served,
                        () = grace => Ok(()),
                    }
                }
            };
            served.map_err(ServeError::Io)
        })
    }
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// Every request: `/json-api/FUNCTION` with GET or POST, anything else 404 or 405.
async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let at = jiff::Timestamp::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let mut query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if parts.method == Method::POST
        && let Ok(body) = to_bytes(body, MAX_BODY).await
    {
        query.extend(form_urlencoded::parse(&body).into_owned());
    }
    let function = path
        .strip_prefix("/json-api/")
        .filter(|f| !f.is_empty() && !f.contains('/'))
        .map(str::to_owned);
    let (status, body, user) = match function {
        None => (
            StatusCode::NOT_FOUND,
            json!({"error": "not found: the API is under /json-api/"}),
            None,
        ),
        Some(_) if !matches!(parts.method, Method::GET | Method::POST) => (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "use GET or POST"}),
            None,
        ),
        Some(function) => {
            let authorization = parts
                .headers
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            let peer = peer.ip().to_canonical();
            let app = Arc::clone(&app);
            tokio::task::spawn_blocking(move || {
                answer(&*app.backend, authorization, peer, &function, &query)
            })
            .await
            .unwrap_or_else(|_| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "internal error (a bug)"}),
                    None,
                )
            })
        }
    };
    (app.log)(&AccessRecord {
        at,
        method: parts.method,
        path,
        user,
        status,
        took: started.elapsed(),
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Authenticates and calls `function`: the status, the body, and the user for the log.
fn answer(
    backend: &dyn Backend,
    authorization: Option<Vec<u8>>,
    peer: IpAddr,
    function: &str,
    query: &[(String, String)],
) -> (StatusCode, Value, Option<UserName>) {
    let now = jiff::Timestamp::now().as_second();
    let mut authorization = authorization;
    let decided = auth::authenticate(backend, authorization.as_deref(), peer, now);
    if let Some(header) = authorization.as_mut() {
        header.fill(0);
    }
    match decided {
        Ok(caller) => {
            let body = api::call(backend, &caller, function, query);
            (StatusCode::OK, body, Some(caller.user))
        }
        Err(denied) => {
            let status = if denied.failed {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::FORBIDDEN
            };
            // A 500 is the server's failure, not a refusal of the caller.
            let reason = if denied.failed {
                denied.reason
            } else {
                format!("Access denied: {}", denied.reason)
            };
            let body = json!({
                "metadata": {"version": 1, "command": function, "result": 0, "reason": reason},
            });
            (status, body, denied.user)
        }
    }
}
