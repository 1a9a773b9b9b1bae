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
//! Each connection is served by hyper on its own task, under the server's [`Limits`]
//! (timeouts, a connection cap, a body limit; `conn`), so slow or idle clients cannot keep
//! others out.
//!
//! The library prints nothing: [`Bound::run`] hands one [`AccessRecord`] per request
//! (also per request refused before it reached the handler) to the caller, which never
//! holds the `Authorization` header or a secret; [`LogWriter`] writes it to the fake
//! server's logs folder as cpsrvd writes `access_log`, `api_tokens_log` and `error_log`,
//! for `whmtoken usage` to read.

mod api;
mod auth;
mod conn;
mod logs;
mod tls;

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use whmtoken_core::{Backend, UserName};

use conn::{Registry, Slot, Watched};

pub use api::WHM_VERSION;
pub use conn::Limits;
pub use logs::LogWriter;
pub use tls::Tls;

/// Where and how to listen.
#[derive(Clone, Debug)]
pub struct Options {
    /// The address and port; port 0 picks a free one.
    pub listen: SocketAddr,
    /// HTTPS with this certificate; `None` for plain HTTP.
    pub tls: Option<Tls>,
    /// Timeouts, the connection cap and the body limit.
    pub limits: Limits,
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

impl ServeError {
    /// Whether the error is in what the server was given (a certificate or key file that
    /// cannot be used), rather than in running it.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Tls(_))
    }
}

/// A bound listening socket, ready to [`run`](Self::run).
#[derive(Debug)]
pub struct Bound {
    listener: std::net::TcpListener,
    tls: Option<Arc<ServerConfig>>,
    url: String,
    fingerprint: Option<String>,
    limits: Limits,
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
        limits: options.limits,
    })
}

/// One request, as the access log shows it.
#[derive(Clone, Debug)]
pub struct AccessRecord {
    /// When the request arrived.
    pub at: jiff::Timestamp,
    /// The method; `-` for a request refused before its method could be read.
    pub method: Method,
    /// The path, without the query; `-` when it could not be read.
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
    /// Why the request was refused or failed, in the server's own words: for its
    /// `error_log`, never for the client (who is told only `Access denied`).
    pub error: Option<String>,
}

/// `2026-12-01T07:40:00Z GET /json-api/version root 200 0.4 ms`; `-` for no user; a
/// refusal's reason after it.
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
        )?;
        match &self.error {
            Some(error) => write!(f, " ({error})"),
            None => Ok(()),
        }
    }
}

/// What the connections share.
struct App {
    backend: Arc<dyn Backend>,
    log: Box<dyn Fn(&AccessRecord) + Send + Sync>,
    /// The port listened on.
    port: u16,
    limits: Limits,
}

/// How long open connections are given to finish once a stop is asked for.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Descriptors kept for other uses than connections (the listener, logs, the backend's
/// files) when the connection cap is fitted to the process's limit.
const SPARE_FILES: u64 = 64;

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
        let registry = Arc::new(Registry::new(connection_cap(self.limits.max_connections)));
        let app = Arc::new(App {
            backend,
            log: Box::new(log),
            port,
            limits: self.limits,
        });
        let acceptor = self.tls.map(TlsAcceptor::from);
        runtime.block_on(async move {
            let listener =
                tokio::net::TcpListener::from_std(self.listener).map_err(ServeError::Io)?;
            let stop = stop_signal();
            tokio::pin!(stop);
            loop {
                let (stream, peer) = tokio::select! {
                    () = &mut stop => break,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => {
                            // Out of descriptors, say: give it a moment rather than spin.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                // Every open connection answering a request: this one is refused.
                let Some(slot) = registry.admit() else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(
                    stream,
                    peer,
                    Arc::clone(&app),
                    acceptor.clone(),
                    Arc::clone(&registry),
                    slot,
                ));
            }
            drop(listener);
            let grace = tokio::time::Instant::now() + STOP_GRACE;
            while registry.close_idle() > 0 && tokio::time::Instant::now() < grace {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        })
    }
}

/// How many connections are served at once: `wanted`, within what the process's open-file
/// limit allows (its soft limit raised to the hard one first) less [`SPARE_FILES`].
fn connection_cap(wanted: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut files = getrlimit(Resource::Nofile);
    if files.current != files.maximum {
        files.current = files.maximum;
        let _ = setrlimit(Resource::Nofile, files);
    }
    let allowed = getrlimit(Resource::Nofile).current.map_or(usize::MAX, |n| {
        usize::try_from(n.saturating_sub(SPARE_FILES)).unwrap_or(usize::MAX)
    });
    wanted.min(allowed).max(1)
}

/// One connection, from its handshake (with TLS) to its end, or until it is closed to make
/// room or to stop.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    acceptor: Option<TlsAcceptor>,
    registry: Arc<Registry>,
    slot: Arc<Slot>,
) {
    let served = async {
        match acceptor {
            None => serve_stream(stream, peer, &app, &slot).await,
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(app.limits.handshake_timeout, acceptor.accept(stream));
                if let Ok(Ok(stream)) = handshake.await {
                    serve_stream(stream, peer, &app, &slot).await;
                }
            }
        }
    };
    tokio::select! {
        () = served => {}
        () = slot.closed() => {}
    }
    registry.leave(&slot);
}

/// Serves the requests of one connection with hyper; a request refused before it reached
/// the handler (a header too slow, too large or malformed) gets its access-log line here.
async fn serve_stream<S>(stream: S, peer: SocketAddr, app: &Arc<App>, slot: &Arc<Slot>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched::new(stream, Arc::clone(slot), app.limits));
    let service = {
        let app = Arc::clone(app);
        let slot = Arc::clone(slot);
        service_fn(move |request| {
            let app = Arc::clone(&app);
            let slot = Arc::clone(&slot);
            async move {
                slot.begin();
                let response = handle(app, peer, request).await;
                slot.end();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let served = http1::Builder::new().serve_connection(io, service).await;
    let (timed_out, head, since) = slot.unfinished();
    let status = match served {
        _ if timed_out => StatusCode::REQUEST_TIMEOUT,
        Err(e) if e.is_parse() => refusal_status(&e),
        _ => return,
    };
    (app.log)(&refused_record(app, peer, status, &head, since));
}

/// The status hyper answered a request it could not parse with.
fn refusal_status(error: &hyper::Error) -> StatusCode {
    if error.to_string().contains("URI too long") {
        StatusCode::URI_TOO_LONG
    } else if error.is_parse_too_large() {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// The record of a request refused before it reached the handler: its request line is
/// what arrived of it (at most [`conn`]'s first 256 bytes, up to the first line end, bytes
/// that are not printable ASCII shown as `?`).
fn refused_record(
    app: &App,
    peer: SocketAddr,
    status: StatusCode,
    head: &[u8],
    since: Option<tokio::time::Instant>,
) -> AccessRecord {
    let line: Vec<u8> = head
        .iter()
        .take_while(|b| **b != b'\r' && **b != b'\n')
        .map(|&b| {
            if b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ' {
                b
            } else {
                b'?'
            }
        })
        .collect();
    let mut words = line.split(|b| *b == b' ');
    let method = words
        .next()
        .and_then(|m| Method::from_bytes(m).ok())
        .unwrap_or_else(|| Method::from_bytes(b"-").expect("a token"));
    let path = words
        .next()
        .and_then(|p| p.split(|b| *b == b'?').next())
        .filter(|p| !p.is_empty())
        .map_or_else(
            || "-".to_owned(),
            |p| String::from_utf8_lossy(p).into_owned(),
        );
    let reason = match status {
        StatusCode::REQUEST_TIMEOUT => "the request header did not arrive in time",
        StatusCode::URI_TOO_LONG => "the request's URI is too long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request header is too large",
        _ => "the request is malformed",
    };
    AccessRecord {
        at: jiff::Timestamp::now(),
        method,
        path,
        user: None,
        status,
        took: since.map_or(Duration::ZERO, |since| since.elapsed()),
        peer: peer.ip().to_canonical(),
        port: app.port,
        request_line: if line.is_empty() { b"-".to_vec() } else { line },
        user_agent: None,
        auth: b'-',
        token: None,
        size: 0,
        error: Some(reason.to_owned()),
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

/// The body of a POST as form parameters, read within the limits: `Err` with the status
/// to refuse it with (`413` when too large, `408` when too slow, `400` when broken).
async fn form_body(
    limits: &Limits,
    headers: &axum::http::HeaderMap,
    body: Incoming,
) -> Result<Vec<(String, String)>, (StatusCode, &'static str)> {
    const TOO_LARGE: (StatusCode, &str) = (
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is larger than the server accepts",
    );
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(TOO_LARGE);
    }
    let read = tokio::time::timeout(
        limits.header_timeout,
        Limited::new(body, limits.max_body).collect(),
    );
    match read.await {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(TOO_LARGE),
        Ok(Err(_)) => Err((StatusCode::BAD_REQUEST, "the request body is broken")),
        Ok(Ok(body)) => Ok(form_urlencoded::parse(&body.to_bytes())
            .into_owned()
            .collect()),
    }
}

/// Every request: `/json-api/FUNCTION` with GET or POST, anything else 404 or 405.
async fn handle(app: Arc<App>, peer: SocketAddr, request: Request<Incoming>) -> Response {
    let started = Instant::now();
    let at = jiff::Timestamp::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let mut query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let mut refused_body = None;
    if parts.method == Method::POST {
        match form_body(&app.limits, &parts.headers, body).await {
            Ok(form) => query.extend(form),
            Err(refusal) => refused_body = Some(refusal),
        }
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
    let refused = |status, message: &str| Answer {
        status,
        body: json!({"error": message}),
        user: None,
        token: None,
        error: Some(message.to_owned()),
    };
    let answered = match (refused_body, function) {
        (Some((status, why)), _) => refused(status, why),
        (None, None) => Answer {
            error: None,
            ..refused(
                StatusCode::NOT_FOUND,
                "not found: the API is under /json-api/",
            )
        },
        (None, Some(_)) if !matches!(parts.method, Method::GET | Method::POST) => Answer {
            error: None,
            ..refused(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST")
        },
        (None, Some(function)) => {
            let peer = peer.ip().to_canonical();
            let app = Arc::clone(&app);
            tokio::task::spawn_blocking(move || {
                answer(&*app.backend, authorization, peer, &function, &query)
            })
            .await
            .unwrap_or_else(|_| {
                refused(StatusCode::INTERNAL_SERVER_ERROR, "internal error (a bug)")
            })
        }
    };
    let request_line = format!(
        "{} {} {:?}",
        parts.method,
        parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        parts.version
    );
    let body = answered.body.to_string();
    (app.log)(&AccessRecord {
        at,
        method: parts.method,
        path,
        user: answered.user,
        status: answered.status,
        took: started.elapsed(),
        peer: peer.ip().to_canonical(),
        port: app.port,
        request_line: request_line.into_bytes(),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .map(|v| v.as_bytes().to_vec()),
        auth,
        token: answered.token,
        size: body.len() as u64,
        error: answered.error,
    });
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = answered.status;
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

/// What a request came to: the status, the body, the user for the log, the token that
/// authenticated it, and the reason for the server's error log.
struct Answer {
    status: StatusCode,
    body: Value,
    user: Option<UserName>,
    token: Option<String>,
    error: Option<String>,
}

/// What an unauthenticated client is told, whatever the reason (as cpsrvd tells it).
const ACCESS_DENIED: &str = "Access denied";

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
        Ok(caller) => Answer {
            status: StatusCode::OK,
            body: api::call(backend, &caller, function, query),
            user: Some(caller.user),
            token: caller.token,
            error: None,
        },
        Err(denied) => {
            // The reason goes to the server's own log; the client learns only that it was
            // refused (403), or that the server failed (500).
            let (status, told) = if denied.failed {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error: the server's data could not be read",
                )
            } else {
                (StatusCode::FORBIDDEN, ACCESS_DENIED)
            };
            Answer {
                status,
                body: json!({
                    "metadata": {"version": 1, "command": function, "result": 0, "reason": told},
                }),
                user: denied.user,
                token: None,
                error: Some(denied.reason),
            }
        }
    }
}
