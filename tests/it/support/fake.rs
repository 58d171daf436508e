//! A fake Statuspage for tests: an in-process axum server on `127.0.0.1:0`
//! that serves whatever JSON a test sets for a path (v2 documents, v1 lists
//! paged the way the manage API pages them), counts the requests it sees, and
//! misbehaves on demand: error statuses, rate limiting with `Retry-After`,
//! hanging, dropping the connection, garbage and truncated bodies.
#![allow(dead_code)] // each test uses only part of it

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A way to misbehave, for every request ([`FakeStatuspage::fault`]) or the
/// next few ([`FakeStatuspage::fault_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with a small JSON error body.
    Status(u16),
    StatusWithBody(u16, String),
    /// Answer `status` (420 or 429) with this `Retry-After` header.
    RateLimited {
        status: u16,
        retry_after: String,
    },
    /// Never answer (sleeps an hour).
    Hang,
    /// Close the connection without an answer.
    Reset,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with the first half of the configured body.
    Truncated,
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Raw(String),
    /// Not necessarily UTF-8: invalid bytes inside JSON strings.
    Bytes(Vec<u8>),
    /// Served with this `Content-Type` instead of `application/json`.
    Typed {
        content_type: String,
        body: String,
    },
}

#[derive(Debug, Clone)]
struct Route {
    status: u16,
    body: Body,
}

#[derive(Default)]
struct Inner {
    routes: HashMap<String, Route>,
    fault: Option<Fault>,
    next: VecDeque<Fault>,
    /// `path?query` -> fault for that request alone, however often it comes.
    at: HashMap<String, Fault>,
    total: usize,
    per_path: HashMap<String, usize>,
    log: Vec<String>,
    last_authorization: Option<String>,
    /// Writes applied (manage API v1 `PATCH`/`POST`), in order.
    writes: Vec<Write>,
    /// Every request's arrival, in order.
    arrivals: Vec<Arrival>,
    /// The id of the latest incident created.
    incident_seq: usize,
    /// Validators sent with 200 answers, and whether they are honoured.
    validators: Option<(Validators, bool)>,
    /// Requests that carried `If-None-Match` or `If-Modified-Since`.
    conditional: usize,
    /// Answers that were `304 Not Modified`.
    not_modified: usize,
}

/// A write the fake applied: `PATCH` of a component or an incident, `POST`
/// of an incident.
#[derive(Debug, Clone)]
pub struct Write {
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// When a request came, what it was (`METHOD path`) and with which
/// `Authorization`.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: std::time::Instant,
    pub request: String,
    pub authorization: Option<String>,
}

/// Which validators the fake sends with every 200 answer of a set route
/// ([`FakeStatuspage::send_validators`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validators {
    /// `ETag`: a digest of the body.
    ETag,
    /// `Last-Modified`: a date made from a digest of the body.
    LastModified,
    Both,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeStatuspage {
    addr: SocketAddr,
    state: Shared,
    stop: Stop,
}

enum Stop {
    /// Started inside the test's runtime: abort the server task.
    Task(tokio::task::AbortHandle),
    /// Runs its own runtime on a thread: tell it to end, which drops every
    /// connection task with the runtime.
    Thread(Option<tokio::sync::oneshot::Sender<()>>),
}

impl FakeStatuspage {
    /// Starts the server on the current tokio runtime.
    pub async fn start() -> Self {
        let state = Shared::default();
        let (addr, server) = bind(state.clone()).await;
        let task = tokio::spawn(server);
        Self {
            addr,
            state,
            stop: Stop::Task(task.abort_handle()),
        }
    }

    /// Starts the server on a runtime of its own in a background thread, for
    /// tests without a runtime (such as those that run the real binary).
    pub fn spawn() -> Self {
        let state = Shared::default();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_state = state.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("fake statuspage runtime");
            runtime.block_on(async move {
                let (addr, server) = bind(thread_state).await;
                addr_tx
                    .send(addr)
                    .expect("test still waiting for the address");
                tokio::select! {
                    () = server => {}
                    _ = stop_rx => {}
                }
            });
        });
        let addr = addr_rx.recv().expect("fake statuspage started");
        Self {
            addr,
            state,
            stop: Stop::Thread(Some(stop_tx)),
        }
    }

    /// `http://127.0.0.1:PORT`: the v2 page url and the v1 `api_base` alike.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `body` with 200 at `path` (no query). A JSON array is paged
    /// when the request asks for a page: `page` + `per_page`, or `page` +
    /// `limit`, 1-based, 100 per page unless told otherwise.
    pub fn set_json(&self, path: &str, body: Value) {
        self.lock().routes.insert(
            path.to_string(),
            Route {
                status: 200,
                body: Body::Json(body),
            },
        );
    }

    /// Serves a whole public (v2) page: `summary.json` with `page`,
    /// `components`, `incidents` and `maintenances`, and the two lists
    /// (`incidents.json`, `scheduled-maintenances.json`) saying the same.
    pub fn set_v2_page(
        &self,
        page: Value,
        components: Value,
        incidents: Value,
        maintenances: Value,
    ) {
        self.set_json(
            "/api/v2/incidents.json",
            serde_json::json!({ "incidents": incidents.clone() }),
        );
        self.set_json(
            "/api/v2/scheduled-maintenances.json",
            serde_json::json!({ "scheduled_maintenances": maintenances.clone() }),
        );
        let mut summary = serde_json::Map::new();
        summary.insert("page".into(), page);
        summary.insert("components".into(), components);
        summary.insert("incidents".into(), incidents);
        summary.insert("scheduled_maintenances".into(), maintenances);
        self.set_json("/api/v2/summary.json", Value::Object(summary));
    }

    /// Serves `body` as it is, with `status`, at `path`.
    pub fn set_raw(&self, path: &str, status: u16, body: &str) {
        self.lock().routes.insert(
            path.to_string(),
            Route {
                status,
                body: Body::Raw(body.to_string()),
            },
        );
    }

    /// Serves `body`, which need not be UTF-8, with `status`, at `path`.
    pub fn set_bytes(&self, path: &str, status: u16, body: Vec<u8>) {
        self.lock().routes.insert(
            path.to_string(),
            Route {
                status,
                body: Body::Bytes(body),
            },
        );
    }

    /// Serves `body` with `status` and this `Content-Type` at `path`: a
    /// captive portal's login page, say.
    pub fn set_typed(&self, path: &str, status: u16, content_type: &str, body: &str) {
        self.lock().routes.insert(
            path.to_string(),
            Route {
                status,
                body: Body::Typed {
                    content_type: content_type.to_string(),
                    body: body.to_string(),
                },
            },
        );
    }

    /// Misbehaves on every request for exactly `path_and_query` (as in
    /// [`Self::request_log`]) until [`Self::clear_faults`]: one page of a
    /// paged list failing while the others answer.
    pub fn fault_at(&self, path_and_query: &str, fault: Fault) {
        self.lock().at.insert(path_and_query.to_string(), fault);
    }

    /// Misbehaves on every request until [`Self::clear_faults`].
    pub fn fault(&self, fault: Fault) {
        self.lock().fault = Some(fault);
    }

    /// Misbehaves on the next `n` requests (after any already queued), then
    /// serves normally again.
    pub fn fault_next(&self, n: usize, fault: Fault) {
        self.lock().next.extend(std::iter::repeat_n(fault, n));
    }

    pub fn clear_faults(&self) {
        let mut inner = self.lock();
        inner.fault = None;
        inner.next.clear();
        inner.at.clear();
    }

    /// Requests seen so far, faulty ones included.
    pub fn requests(&self) -> usize {
        self.lock().total
    }

    /// Requests seen so far for `path`, whatever their query.
    pub fn requests_to(&self, path: &str) -> usize {
        self.lock().per_path.get(path).copied().unwrap_or(0)
    }

    /// Every request seen so far as `path?query`, in the order they came.
    pub fn request_log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// Sends `which` validators with every 200 answer of a set route from
    /// now on; when `honour`, a request whose `If-None-Match` (or, without
    /// one, `If-Modified-Since`) matches the current body gets `304 Not
    /// Modified`, otherwise the full answer as always.
    pub fn send_validators(&self, which: Validators, honour: bool) {
        self.lock().validators = Some((which, honour));
    }

    /// Requests so far that carried `If-None-Match` or `If-Modified-Since`.
    pub fn conditional_requests(&self) -> usize {
        self.lock().conditional
    }

    /// `304 Not Modified` answers so far.
    pub fn not_modified_answers(&self) -> usize {
        self.lock().not_modified
    }

    /// The `Authorization` header of the latest request, if it had one.
    pub fn last_authorization(&self) -> Option<String> {
        self.lock().last_authorization.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FakeStatuspage {
    fn drop(&mut self) {
        match &mut self.stop {
            Stop::Task(task) => task.abort(),
            Stop::Thread(stop) => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
            }
        }
    }
}

async fn bind(state: Shared) -> (SocketAddr, impl std::future::Future<Output = ()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let app = Router::new()
        .route(
            "/v1/pages/{page}/components/{id}",
            axum::routing::patch(write).fallback(handle),
        )
        .route(
            "/v1/pages/{page}/incidents",
            axum::routing::post(write).fallback(handle),
        )
        .route(
            "/v1/pages/{page}/incidents/{id}",
            axum::routing::patch(write).fallback(handle),
        )
        .fallback(handle)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            note_arrival,
        ))
        .with_state(state)
        .into_make_service_with_connect_info::<Conn>();
    let server = async move {
        let _ = axum::serve(KillableListener(listener), app).await;
    };
    (addr, server)
}

impl Inner {
    /// Counts and logs a request to `path` (logged as `logged`), notes its
    /// `Authorization`, and takes the fault it meets: one set for exactly
    /// `logged`, else the next queued, else the standing one.
    fn take_request(&mut self, path: &str, logged: String, headers: &HeaderMap) -> Option<Fault> {
        self.total += 1;
        *self.per_path.entry(path.to_owned()).or_default() += 1;
        self.last_authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let fault = self
            .at
            .get(&logged)
            .cloned()
            .or_else(|| self.next.pop_front())
            .or_else(|| self.fault.clone());
        self.log.push(logged);
        fault
    }
}

/// A JSON answer with `status`.
fn json(status: u16, body: String) -> Response {
    (
        status_code(status),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn handle(
    State(state): State<Shared>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_string();
    let query = parse_query(uri.query().unwrap_or(""));
    let (fault, route) = {
        let mut inner = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let logged = match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let fault = inner.take_request(&path, logged, &headers);
        (fault, inner.routes.get(&path).cloned())
    };
    match fault {
        None => match route {
            Some(Route {
                status,
                body: Body::Bytes(bytes),
            }) => (
                status_code(status),
                [(header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response(),
            Some(Route {
                status,
                body: Body::Typed { content_type, body },
            }) => (
                status_code(status),
                [(header::CONTENT_TYPE, content_type)],
                body,
            )
                .into_response(),
            Some(route) => {
                let body = render(&route.body, &query);
                match conditional(&state, &headers, route.status, &body) {
                    Some((304, _)) => (StatusCode::NOT_MODIFIED, ()).into_response(),
                    Some((_, sent)) => {
                        let mut response = json(route.status, body);
                        response.headers_mut().extend(sent);
                        response
                    }
                    None => json(route.status, body),
                }
            }
            None => json(404, r#"{"error":"not found"}"#.into()),
        },
        Some(Fault::Status(status)) => json(status, format!(r#"{{"error":"fake {status}"}}"#)),
        Some(Fault::StatusWithBody(status, body)) => json(status, body),
        Some(Fault::RateLimited {
            status,
            retry_after,
        }) => (
            status_code(status),
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (header::RETRY_AFTER, retry_after),
            ],
            r#"{"error":"rate limited"}"#,
        )
            .into_response(),
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            json(504, r#"{"error":"hung"}"#.into())
        }
        Some(Fault::Reset) => {
            // Writing the answer will fail, so the client gets none.
            conn.kill.store(true, Ordering::SeqCst);
            json(500, String::new())
        }
        Some(Fault::Garbage) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "<html><body>502 Bad Gateway, but said with a 200</body></html>",
        )
            .into_response(),
        Some(Fault::Truncated) => {
            let full = route.map_or_else(
                || r#"{"page":{"id":"x","name":"truncated"},"components":[]}"#.to_string(),
                |r| render(&r.body, &query),
            );
            let mut half = full.len() / 2;
            while !full.is_char_boundary(half) {
                half -= 1;
            }
            json(200, full[..half].to_string())
        }
    }
}

/// The validators of a 200 answer with `body` when the fake sends them,
/// and 304 instead when the request's match and the fake honours them.
fn conditional(
    state: &Shared,
    request: &HeaderMap,
    status: u16,
    body: &str,
) -> Option<(u16, HeaderMap)> {
    use std::hash::{Hash, Hasher};
    let mut inner = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let asked_etag = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let asked_date = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok());
    if asked_etag.is_some() || asked_date.is_some() {
        inner.conditional += 1;
    }
    let (which, honour) = inner.validators?;
    if status != 200 {
        return None;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    let digest = hasher.finish();
    let etag = format!("\"{digest:016x}\"");
    let seconds = 1_600_000_000 + i64::try_from(digest % 100_000_000).unwrap_or(0);
    let date = jiff::Timestamp::from_second(seconds)
        .expect("a date")
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let mut sent = HeaderMap::new();
    if matches!(which, Validators::ETag | Validators::Both) {
        sent.insert(header::ETAG, etag.parse().expect("header value"));
    }
    if matches!(which, Validators::LastModified | Validators::Both) {
        sent.insert(header::LAST_MODIFIED, date.parse().expect("header value"));
    }
    let fresh = match (asked_etag, asked_date) {
        (Some(e), _) => sent.contains_key(header::ETAG) && e == etag,
        (None, Some(d)) => sent.contains_key(header::LAST_MODIFIED) && d == date,
        (None, None) => false,
    };
    if honour && fresh {
        inner.not_modified += 1;
        return Some((304, sent));
    }
    Some((200, sent))
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The body for one request: a JSON array sliced to the asked page, or the
/// configured body as it is.
fn render(body: &Body, query: &HashMap<String, String>) -> String {
    match body {
        Body::Raw(raw) | Body::Typed { body: raw, .. } => raw.clone(),
        Body::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Body::Json(Value::Array(items)) if query.contains_key("page") => {
            let number = |k: &str| query.get(k).and_then(|v| v.parse::<usize>().ok());
            let page = number("page").unwrap_or(1).max(1);
            let per_page = number("per_page")
                .or_else(|| number("limit"))
                .unwrap_or(100)
                .max(1);
            let slice: Vec<&Value> = items
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .collect();
            serde_json::to_string(&slice).expect("serialize page")
        }
        Body::Json(value) => value.to_string(),
    }
}

/// A TCP listener whose connections a handler can break: the way to answer
/// a request with no answer at all.
struct KillableListener(TcpListener);

/// What a handler knows about its connection: who, and the switch that breaks it.
#[derive(Debug, Clone)]
struct Conn {
    peer: SocketAddr,
    kill: Arc<AtomicBool>,
}

struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl axum::serve::Listener for KillableListener {
    type Io = KillableStream;
    type Addr = Conn;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((inner, peer)) => {
                    let kill = Arc::new(AtomicBool::new(false));
                    let io = KillableStream {
                        inner,
                        kill: kill.clone(),
                    };
                    return (io, Conn { peer, kill });
                }
                // Out of file descriptors and the like: wait, as axum does.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Conn {
            peer: self.0.local_addr()?,
            kill: Arc::default(),
        })
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl KillableStream {
    /// Once killed, every read and write fails, and closing sends a reset.
    fn check(&self) -> io::Result<()> {
        if self.kill.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "killed by the test",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A site's page (`Site`) with one component, `SAFE`, degraded by one open
/// incident, "Authentication service degraded": the Statuspage side of the
/// tests that mix it with other source kinds.
pub fn site_page_with_one_incident() -> FakeStatuspage {
    let page = FakeStatuspage::spawn();
    page.set_v2_page(
        serde_json::json!({"id": "sitepage", "name": "Site", "url": "https://status.example.org"}),
        serde_json::json!([{"id": "c1", "name": "SAFE", "status": "degraded_performance"}]),
        serde_json::json!([{
            "id": "inc1",
            "name": "Authentication service degraded",
            "status": "investigating",
            "impact": "minor",
            "created_at": "2025-06-01T10:00:00Z",
            "updated_at": "2025-06-01T10:00:00Z",
            "components": [{"id": "c1", "name": "SAFE"}],
            "incident_updates": [{"id": "u1", "status": "investigating",
                "body": "Logins may be slow.", "created_at": "2025-06-01T10:00:00Z"}],
        }]),
        serde_json::json!([]),
    );
    page
}

impl FakeStatuspage {
    /// Serves a manage API (v1) page `page` with these components and
    /// unresolved incidents; writes change them ([`Self::writes`]).
    pub fn set_v1_page(&self, page: &str, components: Value, unresolved: Value) {
        self.set_json(&format!("/v1/pages/{page}/components"), components);
        self.set_json(
            &format!("/v1/pages/{page}/incidents/unresolved"),
            unresolved,
        );
    }

    /// Every write applied so far, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    /// Every request's arrival so far, in order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.lock().arrivals.clone()
    }

    /// What is served now at `path` (no query), if anything.
    pub fn served(&self, path: &str) -> Option<Value> {
        match self.lock().routes.get(path).map(|r| r.body.clone()) {
            Some(Body::Json(v)) => Some(v),
            _ => None,
        }
    }
}

async fn note_arrival(
    State(state): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let arrival = Arrival {
        at: std::time::Instant::now(),
        request: format!("{} {}", request.method(), request.uri().path()),
        authorization: request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .arrivals
        .push(arrival);
    next.run(request).await
}

/// `PATCH /v1/pages/{page}/components/{id}`, `POST /v1/pages/{page}/incidents`
/// and `PATCH /v1/pages/{page}/incidents/{id}`: counted and logged as
/// `METHOD path`, misbehaving as told (a fault set with [`FakeStatuspage::fault_at`]
/// on `METHOD path` hits that write alone), else applied to what the fake
/// serves and recorded.
async fn write(
    State(state): State<Shared>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path().to_string();
    let logged = format!("{method} {path}");
    let mut inner = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let fault = inner.take_request(&path, logged, &headers);
    match fault {
        None => {}
        Some(Fault::RateLimited {
            status,
            retry_after,
        }) => {
            return (
                status_code(status),
                [
                    (header::CONTENT_TYPE, "application/json".to_string()),
                    (header::RETRY_AFTER, retry_after),
                ],
                r#"{"error":"rate limited"}"#,
            )
                .into_response()
        }
        Some(Fault::StatusWithBody(status, body)) => return json(status, body),
        Some(Fault::Status(status)) => {
            return json(status, format!(r#"{{"error":"fake {status}"}}"#))
        }
        Some(other) => return json(500, format!(r#"{{"error":"fake {other:?}"}}"#)),
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return json(400, r#"{"error":"not JSON"}"#.into());
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (page, what, id) = match parts.as_slice() {
        ["v1", "pages", page, what] => (*page, *what, None),
        ["v1", "pages", page, what, id] => (*page, *what, Some(*id)),
        _ => return json(404, r#"{"error":"not found"}"#.into()),
    };
    let components_path = format!("/v1/pages/{page}/components");
    let unresolved_path = format!("/v1/pages/{page}/incidents/unresolved");
    let now = "2026-01-01T00:00:00Z";
    let answer = match (method.as_str(), what, id) {
        ("PATCH", "components", Some(id)) => {
            let status = body.pointer("/component/status").cloned();
            let Some(c) = set_component(&mut inner, &components_path, id, status) else {
                return json(404, r#"{"error":"no such component"}"#.into());
            };
            (200, c)
        }
        ("POST", "incidents", None) => {
            inner.incident_seq += 1;
            let id = format!("inc-{}", inner.incident_seq);
            let i = body.get("incident").cloned().unwrap_or(Value::Null);
            let component_ids: Vec<String> = i
                .get("component_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            for (cid, status) in i
                .get("components")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
            {
                set_component(&mut inner, &components_path, &cid, Some(status));
            }
            let incident = serde_json::json!({
                "id": id,
                "name": i.get("name").cloned().unwrap_or(Value::Null),
                "status": i.get("status").cloned().unwrap_or("investigating".into()),
                "impact": "major",
                "created_at": now,
                "updated_at": now,
                "metadata": i.get("metadata").cloned().unwrap_or(serde_json::json!({})),
                "components": component_ids.iter().map(|c| serde_json::json!({"id": c})).collect::<Vec<_>>(),
                "incident_updates": [{"id": format!("{id}-u1"), "status": "investigating",
                    "body": i.get("body").cloned().unwrap_or(Value::Null), "created_at": now}],
            });
            push_json(&mut inner, &unresolved_path, incident.clone());
            (201, incident)
        }
        ("PATCH", "incidents", Some(id)) => {
            let i = body.get("incident").cloned().unwrap_or(Value::Null);
            for (cid, status) in i
                .get("components")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
            {
                set_component(&mut inner, &components_path, &cid, Some(status));
            }
            let Some(Route {
                body: Body::Json(Value::Array(list)),
                ..
            }) = inner.routes.get_mut(&unresolved_path)
            else {
                return json(404, r#"{"error":"no such incident"}"#.into());
            };
            let Some(at) = list.iter().position(|x| x["id"] == id) else {
                return json(404, r#"{"error":"no such incident"}"#.into());
            };
            let mut incident = list[at].clone();
            if let Some(status) = i.get("status") {
                incident["status"] = status.clone();
            }
            if incident["status"] == "resolved" {
                incident["resolved_at"] = now.into();
                list.remove(at);
            } else {
                list[at] = incident.clone();
            }
            (200, incident)
        }
        _ => return json(405, r#"{"error":"method not allowed"}"#.into()),
    };
    inner.writes.push(Write {
        method: method.to_string(),
        path,
        body,
    });
    json(answer.0, answer.1.to_string())
}

/// Sets the status of component `id` in the list at `path`; the component.
fn set_component(inner: &mut Inner, path: &str, id: &str, status: Option<Value>) -> Option<Value> {
    let Some(Route {
        body: Body::Json(Value::Array(list)),
        ..
    }) = inner.routes.get_mut(path)
    else {
        return None;
    };
    let c = list.iter_mut().find(|c| c["id"] == id)?;
    if let Some(status) = status {
        c["status"] = status;
    }
    Some(c.clone())
}

/// Appends `item` to the JSON list served at `path`, creating it.
fn push_json(inner: &mut Inner, path: &str, item: Value) {
    let route = inner.routes.entry(path.to_string()).or_insert(Route {
        status: 200,
        body: Body::Json(Value::Array(Vec::new())),
    });
    if let Body::Json(Value::Array(list)) = &mut route.body {
        list.push(item);
    }
}
