//! The endpoints. Handlers never wait for upstream: a webhook only sets a
//! flag in the coordinator and answers 202, the pull endpoints read the files
//! the renderer wrote and the snapshots it keeps. Every error is an
//! [`ApiError`]; a `{cluster}` in the path is a [`KnownCluster`] or 404.

use std::io::Read as _;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{
    DefaultBodyLimit, FromRequest as _, FromRequestParts, MatchedPath, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq as _;

use super::{AppState, Live, HEADER_READ_TIMEOUT, REQUEST_TIMEOUT, WEBHOOK_MAX_BYTES};
use crate::config;
use crate::pipeline;
use crate::view::Blocker;

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
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn(log_request))
        .with_state(state)
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

/// Every error answer of every endpoint: a status and `{"error": message}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
    /// Ask for a bearer token (`WWW-Authenticate: Bearer`), as a 401 must.
    bearer_challenge: bool,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            bearer_challenge: false,
        }
    }

    /// The same answer for every path, token or cluster that is not ours, so
    /// none can be told from another.
    fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.bearer_challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// What a handler answers.
type Answer = std::result::Result<Response, ApiError>;

/// A configured cluster named by the `{cluster}` of the path, with the live
/// configuration it was found in. Anything else, including names that could
/// not be a directory of ours (`..`, `a/b`), is a 404.
struct KnownCluster {
    live: std::sync::Arc<Live>,
    cluster: crate::config::ClusterConfig,
}

impl FromRequestParts<AppState> for KnownCluster {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        KnownCluster::find(state, &name)
    }
}

impl KnownCluster {
    /// The configured cluster `name`, else a 404.
    fn find(state: &AppState, name: &str) -> std::result::Result<Self, ApiError> {
        config::validate_cluster_name(name).map_err(|_| ApiError::not_found())?;
        let live = state.live();
        let cluster = live
            .config
            .clusters
            .get(name)
            .cloned()
            .ok_or_else(ApiError::not_found)?;
        Ok(KnownCluster { live, cluster })
    }
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
) -> Answer {
    use crate::metrics::Webhook;
    let live = c.live();
    let Some(expected) = live.webhook_token.as_deref() else {
        c.metrics.webhook(Webhook::Disabled);
        return Err(ApiError::not_found());
    };
    if !token.is_ok_and(|Path(t)| token_matches(&t, expected)) {
        c.metrics.webhook(Webhook::WrongToken);
        return Err(ApiError::not_found());
    }
    // The headers took at most HEADER_READ_TIMEOUT; the body gets the rest.
    let body_timeout = REQUEST_TIMEOUT.saturating_sub(HEADER_READ_TIMEOUT);
    let Ok(body) = tokio::time::timeout(body_timeout, Bytes::from_request(request, &())).await
    else {
        c.metrics.webhook(Webhook::Timeout);
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        ));
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            c.metrics.webhook(Webhook::TooLarge);
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {WEBHOOK_MAX_BYTES} bytes"),
            ));
        }
        Err(rejection) => return Err(ApiError::new(rejection.status(), rejection.body_text())),
    };
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            c.metrics.webhook(Webhook::NotJson);
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            ));
        }
    };
    let page = webhook_page_id(&payload);
    // Alertmanager's own webhook (`webhook_configs`) names no page: it is a
    // hint for the alertmanager sources.
    let alertmanager = crate::source::alertmanager::is_webhook(&payload);
    let sources = if alertmanager {
        c.alertmanager_sources()
    } else {
        c.sources_for_page(page.as_deref())
    };
    tracing::info!(page = page.as_deref().unwrap_or("-"), sources = ?sources, "webhook accepted");
    // Only for a page a source was matched by: the renderer applies it off
    // this request, then asks for the fetch itself.
    let previewed = match (&sources, alertmanager) {
        (Some(sources), false) => c.preview(sources, payload),
        _ => false,
    };
    if !previewed {
        c.refresh(sources.as_deref(), "webhook");
    }
    c.metrics.webhook(Webhook::Accepted);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": true, "sources": sources })),
    )
        .into_response())
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
) -> Answer {
    let live = c.live();
    let Some(expected) = live.refresh_token.as_deref() else {
        return Err(ApiError::not_found());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if !given.is_some_and(|g| token_matches(g, expected)) {
        return Err(ApiError {
            bearer_challenge: true,
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "send `Authorization: Bearer <refresh_token>`",
            )
        });
    }
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return Err(ApiError::new(StatusCode::BAD_REQUEST, e.body_text())),
    };
    if query.wait {
        let report = c.refresh_and_wait(None, "POST /refresh").await;
        Ok((StatusCode::OK, Json(report)).into_response())
    } else {
        c.refresh(None, "POST /refresh");
        Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response())
    }
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

async fn motd(KnownCluster { live, cluster }: KnownCluster, headers: HeaderMap) -> Answer {
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
) -> Answer {
    let name = file
        .ok()
        .and_then(|Path(f)| f.strip_suffix(".ics").map(str::to_owned))
        .ok_or_else(ApiError::not_found)?;
    let KnownCluster { live, cluster } = KnownCluster::find(&c, &name)?;
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
) -> Answer {
    let path = live.config.settings.output_dir.join(cluster).join(file);
    let read = tokio::task::spawn_blocking(move || read_with_mtime(&path)).await;
    let (bytes, mtime) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("`{cluster}` has not been rendered yet"),
            ));
        }
        Ok(Err(e)) => {
            tracing::error!(cluster = %cluster, file, "cannot read the file: {e}");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the file",
            ));
        }
        Err(e) => {
            tracing::error!(file, "cannot read the file: {e}");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the file",
            ));
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
        return Ok((StatusCode::NOT_MODIFIED, validators).into_response());
    }
    validators.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok((StatusCode::OK, validators, bytes).into_response())
}

async fn status(State(c): State<AppState>, KnownCluster { live, cluster }: KnownCluster) -> Answer {
    match pipeline::cluster_view(&live.config, &cluster, &c.data(), Timestamp::now()) {
        Ok(view) => Ok(Json(view).into_response()),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
    }
}

/// `GET /gate/{cluster}`: its answers are verdicts, not errors, so a
/// cluster without fresh data is a 503 with `clear: false` and a reason.
async fn gate(State(c): State<AppState>, KnownCluster { live, cluster }: KnownCluster) -> Response {
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
