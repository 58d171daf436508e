//! `statusmotd serve`: the HTTP side. [`router`] maps every endpoint of
//! `DESIGN.md` ("HTTP (serve)") to a handler; [`serve`] runs a router on a
//! listener until a shutdown future completes; [`run`] wires both to the
//! coordinator, the file watcher and the signals.
//!
//! Handlers never wait for upstream: a webhook only sets a flag in the
//! coordinator and answers 202, the pull endpoints read the files the
//! renderer wrote and the snapshots it keeps. Logs name the route template
//! (`/webhook/{token}`), never the path a client sent, so no token reaches a
//! log line.
//!
//! No client can hold the server: headers must arrive within
//! [`HEADER_READ_TIMEOUT`] and the whole request within [`REQUEST_TIMEOUT`],
//! a webhook's token is checked before its body is read, and at most
//! [`MAX_CONNECTIONS`] connections are open at once (the oldest idle one is
//! closed to make room), so file descriptors cannot run out.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest as _, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::ServeArgs;
use crate::config::{self, Config};
use crate::coordinator::{Coordinator, Live};
use crate::error::{Error, Result};
use crate::pipeline;
use crate::view::Blocker;

/// The largest webhook body accepted; Statuspage's are a few KiB.
pub const WEBHOOK_MAX_BYTES: usize = 1024 * 1024;

/// A client has this long to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A client has this long to send a whole request, headers and body: a body
/// must follow its headers within the difference.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The most connections open at once. Well under systemd's default of 1,024
/// file descriptors, so the listener, the state files and `on_change` always
/// find one.
pub const MAX_CONNECTIONS: usize = 512;

/// How long shutdown waits for open connections and running tasks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long the runtime waits for blocking work (a render under way) once
/// everything else stopped.
const BLOCKING_GRACE: Duration = Duration::from_secs(1);

/// What every handler gets.
pub type AppState = Arc<Coordinator>;

/// Starts the coordinator (which renders at once from the persisted
/// snapshots, then refreshes) and the file watcher on `tracker`. Must be
/// called within a Tokio runtime. Fails when a template or a `[server]`
/// token cannot be read.
pub fn start(
    config: Config,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<AppState> {
    let live = Live::new(config)?;
    if live.webhook_token.is_none() {
        tracing::warn!(
            "no `webhook_token` in `[server]`: POST /webhook/{{token}} answers 404 to every request"
        );
    }
    if live.refresh_token.is_none() {
        tracing::info!("no `refresh_token` in `[server]`: POST /refresh answers 404");
    }
    let coordinator = Coordinator::start(live, cancel.clone(), tracker);
    crate::watch::spawn(coordinator.clone(), cancel.clone(), tracker)?;
    Ok(coordinator)
}

/// Every endpoint of `serve`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/webhook/{token}",
            post(webhook).layer(DefaultBodyLimit::max(WEBHOOK_MAX_BYTES)),
        )
        .route("/refresh", post(refresh))
        .route("/motd/{cluster}", get(motd))
        .route("/calendar/{file}", get(calendar))
        .route("/status/{cluster}", get(status))
        .route("/gate/{cluster}", get(gate))
        .route("/clusters", get(clusters))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { not_found() })
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The open connections, oldest first, so that a new one can make room by
/// closing the oldest that has no request under way.
#[derive(Default)]
struct Connections {
    next_id: u64,
    open: BTreeMap<u64, OpenConnection>,
}

struct OpenConnection {
    close: CancellationToken,
    /// Requests of this connection under way (0 or 1 with HTTP/1.1).
    busy: Arc<AtomicUsize>,
}

impl Connections {
    /// Registers a new connection, first closing the oldest idle one when
    /// [`MAX_CONNECTIONS`] are open. `None` when every open connection has a
    /// request under way: the new one is refused.
    fn admit(&mut self) -> Option<(u64, CancellationToken, Arc<AtomicUsize>)> {
        if self.open.len() >= MAX_CONNECTIONS {
            let idle = self
                .open
                .iter()
                .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id)?;
            if let Some(evicted) = self.open.remove(&idle) {
                evicted.close.cancel();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let close = CancellationToken::new();
        let busy = Arc::new(AtomicUsize::new(0));
        self.open.insert(
            id,
            OpenConnection {
                close: close.clone(),
                busy: busy.clone(),
            },
        );
        Some((id, close, busy))
    }
}

/// Counts a request under way on its connection while alive.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting, lets requests under way finish (up to a grace period) and
/// returns. Each connection must send its headers within
/// [`HEADER_READ_TIMEOUT`]; at most [`MAX_CONNECTIONS`] are open at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper::service::Service as _;
    use hyper_util::rt::{TokioIo, TokioTimer};

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(Mutex::new(Connections::default()));
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let admitted = connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit();
        let Some((id, close, busy)) = admitted else {
            tracing::debug!(
                "{MAX_CONNECTIONS} connections are open, each with a request under way: refusing one"
            );
            drop(stream);
            continue;
        };
        let tower = hyper_util::service::TowerToHyperService::new(app.clone());
        let service = hyper::service::service_fn(move |req| {
            let busy = Busy::enter(&busy);
            let response = tower.call(req);
            async move {
                let response = response.await;
                drop(busy);
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let connections = connections.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!("connection closed: {e}");
                },
                () = close.cancelled() => {
                    tracing::debug!("closed an idle connection to make room for a new one");
                }
            }
            connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .open
                .remove(&id);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the grace period");
    }
    Ok(())
}

/// The runtime and the SIGHUP listener [`catch_sighup`] set up before
/// anything else, for [`run`] to take over.
static EARLY: Mutex<Option<(tokio::runtime::Runtime, Option<Signal>)>> = Mutex::new(None);

fn build_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))
}

/// For `serve`, called on the first line of `main`: starts the runtime and
/// listens for SIGHUP at once. SIGHUP's default action is to end the
/// process, and systemd's `reload` (or a configuration manager) may send it
/// the moment the unit starts: it must mean "reload" from the start, and a
/// SIGHUP that arrives before the configuration is read is still seen.
pub fn catch_sighup() {
    use tokio::signal::unix::{signal, SignalKind};
    // First a plain flag, which takes microseconds where the runtime takes
    // milliseconds: from here on SIGHUP no longer ends the process. The
    // runtime's listener below joins it; the configuration is read after
    // both, so a SIGHUP before then needs no reload of its own.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGHUP,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    // Errors are reported by `run`, which tries again.
    let Ok(runtime) = build_runtime() else {
        return;
    };
    let hup = {
        let _entered = runtime.enter();
        signal(SignalKind::hangup()).ok()
    };
    *EARLY.lock().unwrap_or_else(PoisonError::into_inner) = Some((runtime, hup));
}

/// `statusmotd serve`: returns the exit code once stopped by SIGTERM or
/// SIGINT.
pub fn run(args: &ServeArgs) -> Result<u8> {
    let early = EARLY.lock().unwrap_or_else(PoisonError::into_inner).take();
    let (runtime, hup) = match early {
        Some(early) => early,
        None => (build_runtime()?, None),
    };
    let path = config::locate(args.config.config.as_deref());
    let config = Config::load(&path)?;
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| config.server.listen.clone());
    let addr: SocketAddr = listen.parse().map_err(|e| {
        Error::Usage(format!(
            "invalid listen address `{listen}`: {e}\nhint: write it as IP:PORT, e.g. `127.0.0.1:8089`"
        ))
    })?;
    let result = runtime.block_on(run_async(config, addr, hup));
    // A render still under way is not waited for: it writes atomically.
    runtime.shutdown_timeout(BLOCKING_GRACE);
    result
}

async fn run_async(config: Config, addr: SocketAddr, hup: Option<Signal>) -> Result<u8> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::Runtime(format!(
            "cannot listen on `{addr}`: {e}\nhint: pick another address with `--listen` or `[server] listen`"
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Runtime(format!("cannot read the listening address: {e}")))?;
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let state = start(config, &cancel, &tracker)?;
    spawn_signals(state.clone(), cancel.clone(), &tracker, hup)?;

    eprintln!("listening on http://{local}");
    tracing::info!("listening on http://{local}");
    notify_ready();
    let served = serve(listener, router(state), cancel.clone().cancelled_owned()).await;
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks were still running after the grace period");
    }
    served.map_err(|e| Error::Runtime(format!("the server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(0)
}

/// Tells systemd (`Type=notify`) that the service is up, so that a
/// `systemctl reload` (SIGHUP) waits until then: a signal that arrives before
/// `main` runs cannot be caught. Does nothing outside systemd.
fn notify_ready() {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        match path.as_encoded_bytes().strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(b"READY=1", &addr)
            }
            None => socket.send_to(b"READY=1", &path),
        }
    });
    if let Err(e) = sent {
        tracing::warn!(
            "cannot tell systemd the service is ready through `{}`: {e}",
            path.to_string_lossy()
        );
    }
}

fn spawn_signals(
    c: AppState,
    cancel: CancellationToken,
    tracker: &TaskTracker,
    hup: Option<Signal>,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| Error::Runtime(format!("cannot listen for {name}: {e}")))
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = match hup {
        Some(hup) => hup,
        None => listen(SignalKind::hangup(), "SIGHUP")?,
    };
    tracker.spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    cancel.cancel();
                    return;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: shutting down");
                    cancel.cancel();
                    return;
                }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading and refreshing");
                    crate::watch::reload(&c, "SIGHUP").await;
                    c.refresh(None, "SIGHUP");
                }
            }
        }
    });
    Ok(())
}

/// Logs each request by its route template, never by the path sent.
async fn log_request(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = matched.map_or_else(|| "(no route)".to_owned(), |m| m.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_millis();
    if method == axum::http::Method::POST {
        tracing::info!(%method, %route, status, elapsed_ms, "request");
    } else {
        tracing::debug!(%method, %route, status, elapsed_ms, "request");
    }
    response
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not found")
}

/// Whether `given` is `expected`, in time that does not depend on where they
/// differ.
fn token_matches(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The page a webhook names: `page.id`, or the legacy
/// `incident.organization_id`. Public for the fuzz target of the webhook body.
pub fn webhook_page_id(payload: &serde_json::Value) -> Option<String> {
    let text = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    payload
        .pointer("/page/id")
        .and_then(text)
        .or_else(|| payload.pointer("/incident/organization_id").and_then(text))
}

/// `POST /webhook/{token}`. The token is checked before the body is read: a
/// wrong one is answered at once, and the connection closed without waiting
/// for a body that may never come.
async fn webhook(
    State(c): State<AppState>,
    token: std::result::Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    use crate::metrics::Webhook;
    let live = c.live();
    let Some(expected) = live.webhook_token.as_deref() else {
        c.metrics.webhook(Webhook::Disabled);
        return not_found();
    };
    if !token.is_ok_and(|Path(t)| token_matches(&t, expected)) {
        c.metrics.webhook(Webhook::WrongToken);
        return not_found();
    }
    // The headers took at most HEADER_READ_TIMEOUT; the body gets the rest.
    let body_timeout = REQUEST_TIMEOUT.saturating_sub(HEADER_READ_TIMEOUT);
    let Ok(body) = tokio::time::timeout(body_timeout, Bytes::from_request(request, &())).await
    else {
        c.metrics.webhook(Webhook::Timeout);
        return error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            c.metrics.webhook(Webhook::TooLarge);
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {WEBHOOK_MAX_BYTES} bytes"),
            );
        }
        Err(rejection) => return rejection.into_response(),
    };
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            c.metrics.webhook(Webhook::NotJson);
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            );
        }
    };
    let page = webhook_page_id(&payload);
    let sources = c.sources_for_page(page.as_deref());
    tracing::info!(page = page.as_deref().unwrap_or("-"), sources = ?sources, "webhook accepted");
    c.refresh(sources.as_deref(), "webhook");
    c.metrics.webhook(Webhook::Accepted);
    (
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": true, "sources": sources })),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct RefreshQuery {
    #[serde(default)]
    wait: bool,
}

async fn refresh(
    State(c): State<AppState>,
    headers: HeaderMap,
    query: std::result::Result<Query<RefreshQuery>, QueryRejection>,
) -> Response {
    let live = c.live();
    let Some(expected) = live.refresh_token.as_deref() else {
        return not_found();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if !given.is_some_and(|g| token_matches(g, expected)) {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer <refresh_token>`",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if query.wait {
        let report = c.refresh_and_wait(None, "POST /refresh").await;
        (StatusCode::OK, Json(report)).into_response()
    } else {
        c.refresh(None, "POST /refresh");
        (StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response()
    }
}

/// The configured cluster `name`, or `None` for anything else, including
/// names that could not be a directory of ours (`..`, `a/b`).
fn known_cluster(live: &Live, name: &str) -> Option<crate::config::ClusterConfig> {
    config::validate_cluster_name(name).ok()?;
    live.config.clusters.get(name).cloned()
}

/// A strong validator of the file's bytes (FNV-1a, 64 bits), so it is the
/// same across restarts and for every copy of the same bytes.
fn etag_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{:x}-{h:016x}\"", bytes.len())
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, as
/// RFC 9110 asks for this header).
fn none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    header
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

fn http_date(t: Timestamp) -> Option<String> {
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&t)
        .ok()
}

fn parse_http_date(s: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(s.trim())
        .ok()
}

/// The bytes and mtime of one file, read through one open handle so they
/// belong together even when the renderer replaces the file meanwhile.
fn read_with_mtime(path: &std::path::Path) -> std::io::Result<(Vec<u8>, Timestamp)> {
    let mut file = std::fs::File::open(path)?;
    let mtime = file.metadata()?.modified()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let mtime = Timestamp::try_from(mtime).map_err(std::io::Error::other)?;
    Ok((bytes, mtime))
}

async fn motd(
    State(c): State<AppState>,
    cluster: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let live = c.live();
    let Some(cluster) = cluster.ok().and_then(|Path(n)| known_cluster(&live, &n)) else {
        return not_found();
    };
    cluster_file(
        &live,
        &cluster.name,
        "motd",
        "text/plain; charset=utf-8",
        &headers,
    )
    .await
}

/// `GET /calendar/{cluster}.ics`: the cluster's `maintenance.ics`, with the
/// same validators as `/motd`, so a calendar app polling it costs a 304.
async fn calendar(
    State(c): State<AppState>,
    file: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let live = c.live();
    let Some(cluster) = file.ok().and_then(|Path(f)| {
        f.strip_suffix(".ics")
            .and_then(|name| known_cluster(&live, name))
    }) else {
        return not_found();
    };
    cluster_file(
        &live,
        &cluster.name,
        crate::calendar::FILE_NAME,
        "text/calendar; charset=utf-8",
        &headers,
    )
    .await
}

/// One file of a configured cluster's directory, as the renderer last
/// wrote it: `Last-Modified` its mtime, a strong `ETag` of its bytes, 304
/// on `If-None-Match` or `If-Modified-Since`.
async fn cluster_file(
    live: &Live,
    cluster: &str,
    file: &str,
    content_type: &'static str,
    headers: &HeaderMap,
) -> Response {
    let path = live.config.settings.output_dir.join(cluster).join(file);
    let read = tokio::task::spawn_blocking(move || read_with_mtime(&path)).await;
    let (bytes, mtime) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return error(
                StatusCode::NOT_FOUND,
                format!("`{cluster}` has not been rendered yet"),
            );
        }
        Ok(Err(e)) => {
            tracing::error!(cluster = %cluster, file, "cannot read the file: {e}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file");
        }
        Err(e) => {
            tracing::error!(file, "cannot read the file: {e}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file");
        }
    };
    let etag = etag_of(&bytes);
    let last_modified = http_date(mtime);
    let mut validators = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        validators.insert(header::ETAG, v);
    }
    if let Some(v) = last_modified.and_then(|d| HeaderValue::from_str(&d).ok()) {
        validators.insert(header::LAST_MODIFIED, v);
    }
    validators.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));

    // If-None-Match wins over If-Modified-Since when both are sent (RFC 9110).
    let not_modified = if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        inm.to_str().is_ok_and(|v| none_match(v, &etag))
    } else if let Some(ims) = headers.get(header::IF_MODIFIED_SINCE) {
        ims.to_str()
            .ok()
            .and_then(parse_http_date)
            .is_some_and(|since| mtime.as_second() <= since.as_second())
    } else {
        false
    };
    if not_modified {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    validators.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (StatusCode::OK, validators, bytes).into_response()
}

async fn status(
    State(c): State<AppState>,
    cluster: std::result::Result<Path<String>, PathRejection>,
) -> Response {
    let live = c.live();
    let Some(cluster) = cluster.ok().and_then(|Path(n)| known_cluster(&live, &n)) else {
        return not_found();
    };
    match pipeline::cluster_view(&live.config, &cluster, &c.data(), Timestamp::now()) {
        Ok(view) => Json(view).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn gate(
    State(c): State<AppState>,
    cluster: std::result::Result<Path<String>, PathRejection>,
) -> Response {
    let live = c.live();
    let Some(cluster) = cluster.ok().and_then(|Path(n)| known_cluster(&live, &n)) else {
        return not_found();
    };
    let unavailable = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "clear": false, "reasons": [reason] })),
        )
            .into_response()
    };
    let view = match pipeline::cluster_view(&live.config, &cluster, &c.data(), Timestamp::now()) {
        Ok(v) => v,
        Err(e) => return unavailable(e.to_string()),
    };
    // As `statusmotd gate` does with its default `--max-age`: data older
    // than `stale_after` cannot say a cluster is clear.
    if view.stale {
        return unavailable(format!(
            "no fresh data for `{}`: the newest is {} old",
            cluster.name, view.data_age
        ));
    }
    let reasons = view.blocked_by(&[Blocker::Incident, Blocker::Maintenance]);
    if reasons.is_empty() {
        (StatusCode::OK, Json(json!({ "clear": true }))).into_response()
    } else {
        (
            StatusCode::CONFLICT,
            Json(json!({ "clear": false, "reasons": reasons })),
        )
            .into_response()
    }
}

async fn clusters(State(c): State<AppState>) -> Response {
    let live = c.live();
    let data = c.data();
    let now = Timestamp::now();
    let list: Vec<serde_json::Value> = live
        .config
        .clusters
        .values()
        .map(|cluster| {
            let name = &cluster.name;
            let mut entry = json!({
                "name": name,
                "source": cluster.source,
                "sources": cluster.sources().collect::<Vec<_>>(),
                "motd": format!("/motd/{name}"),
                "calendar": format!("/calendar/{name}.ics"),
                "status_url": format!("/status/{name}"),
                "gate": format!("/gate/{name}"),
            });
            match pipeline::cluster_view(&live.config, cluster, &data, now) {
                Ok(v) => {
                    entry["status"] = json!(v.status.as_str());
                    entry["stale"] = json!(v.stale);
                    entry["data_age"] = json!(v.data_age);
                    entry["items"] = json!(v.items().count());
                }
                Err(e) => {
                    entry["status"] = serde_json::Value::Null;
                    entry["error"] = json!(e.to_string());
                }
            }
            entry
        })
        .collect();
    Json(json!({ "clusters": list })).into_response()
}

async fn livez() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(c): State<AppState>) -> Response {
    match c.readiness(Timestamp::now()) {
        Ok(()) => (StatusCode::OK, Json(json!({ "ready": true }))).into_response(),
        Err(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reasons": reasons })),
        )
            .into_response(),
    }
}

async fn metrics(State(c): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        c.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_page_id_reads_page_or_legacy_organization() {
        let v = json!({"page": {"id": "abc"}, "incident": {"organization_id": "zzz"}});
        assert_eq!(webhook_page_id(&v).as_deref(), Some("abc"));
        let v = json!({"incident": {"organization_id": "zzz"}});
        assert_eq!(webhook_page_id(&v).as_deref(), Some("zzz"));
        assert_eq!(webhook_page_id(&json!({"page": {"id": null}})), None);
        assert_eq!(webhook_page_id(&json!([1, 2])), None);
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let tag = etag_of(b"hello\n");
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"x\"", &tag));
        assert_ne!(etag_of(b"hello\n"), etag_of(b"hello!"));
    }

    #[test]
    fn http_dates_round_trip() {
        let t: Timestamp = "2024-05-14T12:00:00Z".parse().unwrap();
        let s = http_date(t).unwrap();
        assert_eq!(s, "Tue, 14 May 2024 12:00:00 GMT");
        assert_eq!(parse_http_date(&s), Some(t));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("s3cret!", "s3cret"));
        assert!(!token_matches("", "s3cret"));
    }
}
