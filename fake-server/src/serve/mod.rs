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
//! the caller, which never holds the `Authorization` header or a secret; [`LogWriter`]
//! writes it to the fake server's logs folder as cpsrvd writes `access_log` and
//! `api_tokens_log`, for `whmtoken usage` to read.

mod api;
mod auth;
mod logs;
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
pub use logs::LogWriter;
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
    /// The client's address and the port the server listens on.
    pub peer: IpAddr,
    pub port: u16,
    /// The request line as cpsrvd logs it (`GET /json-api/version?api.version=1
    /// HTTP/1.1`): for the server's own `access_log` only, never shown.
    pub request_line: Vec<u8>,
    /// The `User-Agent` header, as sent.
    pub user_agent: Option<Vec<u8>>,
    /// cpsrvd's authentication letter: `a` for `Authorization: whm …`, `b` for basic,
    /// `-` for none.
    pub auth: u8,
    /// The API token that authenticated the request.
    pub token: Option<String>,
    /// The answer's size in bytes.
    pub size: u64,
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
    /// The port listened on.
    port: u16,
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
        let port = self.listener.local_addr().map_err(ServeError::Io)?.port();
        let app = Arc::new(App {
            backend,
            log: Box::new(log),
            port,
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
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let auth = auth_letter(authorization.as_deref());
    let (status, body, user, token) = match function {
        None => (
            StatusCode::NOT_FOUND,
            json!({"error": "not found: the API is under /json-api/"}),
            None,
            None,
        ),
        Some(_) if !matches!(parts.method, Method::GET | Method::POST) => (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "use GET or POST"}),
            None,
            None,
        ),
        Some(function) => {
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
                    None,
                )
            })
        }
    };
    let request_line = format!(
        "{} {} {:?}",
        parts.method,
        parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        parts.version
    );
    let body = body.to_string();
    (app.log)(&AccessRecord {
        at,
        method: parts.method,
        path,
        user,
        status,
        took: started.elapsed(),
        peer: peer.ip().to_canonical(),
        port: app.port,
        request_line: request_line.into_bytes(),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .map(|v| v.as_bytes().to_vec()),
        auth,
        token,
        size: body.len() as u64,
    });
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// cpsrvd's letter for how a request authenticated: `a` for the WHM header (`whm` in
/// any case), `b` for basic, `-` for none or another scheme.
fn auth_letter(header: Option<&[u8]>) -> u8 {
    let Some(header) = header else { return b'-' };
    let scheme = header
        .trim_ascii_start()
        .split(u8::is_ascii_whitespace)
        .next()
        .unwrap_or_default();
    if scheme.eq_ignore_ascii_case(b"whm") {
        b'a'
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        b'b'
    } else {
        b'-'
    }
}

/// What a request came to: the status, the body, the user for the log, and the token
/// that authenticated it.
type Answer = (StatusCode, Value, Option<UserName>, Option<String>);

/// Authenticates and calls `function`.
fn answer(
    backend: &dyn Backend,
    authorization: Option<Vec<u8>>,
    peer: IpAddr,
    function: &str,
    query: &[(String, String)],
) -> Answer {
    let now = jiff::Timestamp::now().as_second();
    let mut authorization = authorization;
    let decided = auth::authenticate(backend, authorization.as_deref(), peer, now);
    if let Some(header) = authorization.as_mut() {
        header.fill(0);
    }
    match decided {
        Ok(caller) => {
            let body = api::call(backend, &caller, function, query);
            (StatusCode::OK, body, Some(caller.user), caller.token)
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
            (status, body, denied.user, None)
        }
    }
}
