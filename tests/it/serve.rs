//! `statusmotd serve`: every endpoint through `router(state)` in process, and
//! the real binary end to end against the fake Statuspage (webhooks, bursts,
//! upstream failures, restarts, reloads by rename, shutdown, logs).

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use statusmotd::config::Config;
use statusmotd::serve::{self as server, AppState};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::common::Served;
use crate::fake::{FakeStatuspage, Fault};

/// The page id of Atlassian's documented webhook examples, so those payloads
/// name the manage source `hpc`.
const HPC_PAGE: &str = "j2mfxwj97wnj";
const PUB_PAGE: &str = "pubpage0001";
const WEBHOOK_TOKEN: &str = "wh7Kq2ZpX9vLm4";
const REFRESH_TOKEN: &str = "rf3Jt8WcN5bQs1";
const API_KEY: &str = "ak9Rz6YdH2fGp7";
const V1_COMPONENTS: &str = "/pages/j2mfxwj97wnj/components";
const V2_SUMMARY: &str = "/api/v2/summary.json";

struct Settings {
    stale_after: &'static str,
    poll_interval: &'static str,
    debounce: &'static str,
    webhook_token: bool,
    refresh_token: bool,
    extra_cluster: bool,
    on_change: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            stale_after: "30m",
            poll_interval: "1h",
            debounce: "0s",
            webhook_token: true,
            refresh_token: true,
            extra_cluster: false,
            on_change: None,
        }
    }
}

fn mapping(url: &str, s: &Settings) -> String {
    let mut server = String::new();
    if s.webhook_token {
        server.push_str("webhook_token = { file = \"webhook-token\" }\n");
    }
    if s.refresh_token {
        server.push_str("refresh_token = { file = \"refresh-token\" }\n");
    }
    if let Some(log) = &s.on_change {
        writeln!(
            server,
            "on_change = [\"sh\", \"-c\", \"echo \\\"$STATUSMOTD_CHANGED_CLUSTERS\\\" >> '{}'\"]",
            log.display()
        )
        .unwrap();
    }
    let extra = if s.extra_cluster {
        "[clusters.gamma]\nsource = \"hpc\"\ncomponents = [\"Login nodes\"]\n"
    } else {
        ""
    };
    format!(
        r#"[settings]
output_dir = "out"
state_dir = "state"
timezone = "UTC"
stale_after = "{stale}"
poll_interval = "{poll}"
debounce = "{debounce}"
request_timeout = "1s"
retries = 0

[sources.hpc]
kind = "statuspage"
page_id = "{HPC_PAGE}"
api_key = {{ file = "api-key" }}
api_base = "{url}"

[sources.pub]
kind = "statuspage-public"
url = "{url}"

[server]
listen = "127.0.0.1:0"
{server}
[clusters.alpha]
source = "hpc"
components = ["Login nodes"]

[clusters.beta]
source = "pub"
components = ["Storage"]

{extra}"#,
        stale = s.stale_after,
        poll = s.poll_interval,
        debounce = s.debounce,
    )
}

/// The manage page: one component, `Login nodes`, with this status.
fn set_hpc(fake: &FakeStatuspage, status: &str) {
    let base = format!("/pages/{HPC_PAGE}");
    fake.set_json(
        &format!("{base}/components"),
        json!([{"id": "c1", "name": "Login nodes", "status": status, "group_id": null}]),
    );
    fake.set_json(&format!("{base}/component-groups"), json!([]));
    for list in [
        "incidents/unresolved",
        "incidents/upcoming",
        "incidents/active_maintenance",
        "incidents",
    ] {
        fake.set_json(&format!("{base}/{list}"), json!([]));
    }
}

/// The public page: one component, `Storage`, with this status.
fn set_pub(fake: &FakeStatuspage, status: &str) {
    fake.set_json(
        V2_SUMMARY,
        json!({
            "page": {"id": PUB_PAGE, "name": "Public", "url": "https://status.example.org"},
            "components": [{"id": "s1", "name": "Storage", "status": status}],
            "incidents": [],
            "scheduled_maintenances": []
        }),
    );
    fake.set_json("/api/v2/incidents.json", json!({"incidents": []}));
    fake.set_json(
        "/api/v2/scheduled-maintenances.json",
        json!({"scheduled_maintenances": []}),
    );
}

/// A site directory: mapping.toml, the secret files, `out/` and `state/`.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(url: &str, settings: &Settings) -> Site {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("mapping.toml"), mapping(url, settings)).unwrap();
        fs::write(
            dir.path().join("webhook-token"),
            format!("{WEBHOOK_TOKEN}\n"),
        )
        .unwrap();
        fs::write(dir.path().join("refresh-token"), REFRESH_TOKEN).unwrap();
        fs::write(dir.path().join("api-key"), API_KEY).unwrap();
        Site { dir }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("mapping.toml")
    }

    fn out(&self, rel: &str) -> PathBuf {
        self.dir.path().join("out").join(rel)
    }

    fn motd(&self, cluster: &str) -> Option<(String, SystemTime)> {
        let path = self.out(&format!("{cluster}/motd"));
        let text = fs::read_to_string(&path).ok()?;
        let mtime = fs::metadata(&path).ok()?.modified().ok()?;
        Some((text, mtime))
    }

    /// Replaces mapping.toml the way editors do: a new file renamed over it.
    fn replace_mapping(&self, text: &str) {
        let tmp = self.dir.path().join(".mapping.toml.new");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, self.config_path()).unwrap();
    }
}

/// Waits for `cond`, checking every 50 ms, failing after `secs` seconds.
async fn eventually(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// router(state), in process

struct App {
    state: AppState,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl App {
    fn start(site: &Site) -> App {
        let config = Config::load(&site.config_path()).unwrap();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let state = server::start(config, &cancel, &tracker).unwrap();
        App {
            state,
            cancel,
            tracker,
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let resp = server::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (status, headers, body)
    }

    async fn get(&self, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn webhook(&self, token: &str, body: impl Into<Body>) -> StatusCode {
        let req = Request::post(format!("/webhook/{token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap();
        self.send(req).await.0
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.state.readiness(jiff::Timestamp::now()).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn healthy_fake() -> FakeStatuspage {
    let fake = FakeStatuspage::start().await;
    set_hpc(&fake, "major_outage");
    set_pub(&fake, "operational");
    fake
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_by_token_body_and_size() {
    let fake = healthy_fake().await;
    let site = Site::new(&fake.url(), &Settings::default());
    let app = App::start(&site);
    for name in [
        "webhook-component-docs-example.json",
        "webhook-incident-docs-example.json",
        "webhook-component-live.json",
    ] {
        let payload = shared_fixture!(name);
        assert_eq!(
            app.webhook(WEBHOOK_TOKEN, payload.clone()).await,
            StatusCode::ACCEPTED,
            "{name}"
        );
        // A wrong token, one character off or a prefix, is not found.
        assert_eq!(
            app.webhook("wh7Kq2ZpX9vLm5", payload.clone()).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(app.webhook("wh7Kq2", payload).await, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        app.webhook(WEBHOOK_TOKEN, "<html>not json</html>").await,
        StatusCode::BAD_REQUEST
    );
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(1024 * 1024));
    assert_eq!(
        app.webhook(WEBHOOK_TOKEN, big).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // The wrong token wins over a bad body: nothing tells a prober more.
    assert_eq!(app.webhook("nope", "not json").await, StatusCode::NOT_FOUND);

    let (status, headers, body) = app.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("statusmotd_webhooks_total{outcome=\"accepted\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("statusmotd_webhooks_total{outcome=\"wrong_token\"} 7"),
        "{text}"
    );
    assert!(
        text.contains("statusmotd_webhooks_total{outcome=\"not_json\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("statusmotd_webhooks_total{outcome=\"too_large\"} 1"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refreshes_only_the_source_its_page_names() {
    let fake = healthy_fake().await;
    let site = Site::new(&fake.url(), &Settings::default());
    let app = App::start(&site);
    app.ready().await;
    let (v1, v2) = (
        fake.requests_to(V1_COMPONENTS),
        fake.requests_to(V2_SUMMARY),
    );

    // `page.id` of the documented example is the manage source's page.
    let payload = shared_fixture!("webhook-component-docs-example.json");
    assert_eq!(
        app.webhook(WEBHOOK_TOKEN, payload).await,
        StatusCode::ACCEPTED
    );
    eventually("a fetch of `hpc`", 10, || {
        fake.requests_to(V1_COMPONENTS) > v1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.requests_to(V2_SUMMARY), v2, "`pub` was not named");

    // A public page is known by the id in its snapshot.
    let v1 = fake.requests_to(V1_COMPONENTS);
    let named = json!({"page": {"id": PUB_PAGE}, "component": {"id": "s1"}});
    assert_eq!(
        app.webhook(WEBHOOK_TOKEN, named.to_string()).await,
        StatusCode::ACCEPTED
    );
    eventually("a fetch of `pub`", 10, || fake.requests_to(V2_SUMMARY) > v2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.requests_to(V1_COMPONENTS), v1, "`hpc` was not named");

    // A page nobody configured, or none at all: refresh everything.
    let (v1, v2) = (
        fake.requests_to(V1_COMPONENTS),
        fake.requests_to(V2_SUMMARY),
    );
    assert_eq!(app.webhook(WEBHOOK_TOKEN, "{}").await, StatusCode::ACCEPTED);
    eventually("a fetch of both", 10, || {
        fake.requests_to(V1_COMPONENTS) > v1 && fake.requests_to(V2_SUMMARY) > v2
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_webhook_and_refresh_are_not_found() {
    let fake = healthy_fake().await;
    let settings = Settings {
        webhook_token: false,
        refresh_token: false,
        ..Settings::default()
    };
    let site = Site::new(&fake.url(), &settings);
    let app = App::start(&site);
    assert_eq!(
        app.webhook(WEBHOOK_TOKEN, "{}").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.webhook("", "{}").await, StatusCode::NOT_FOUND);
    let req = Request::post("/refresh")
        .header(header::AUTHORIZATION, format!("Bearer {REFRESH_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.0, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_needs_the_bearer_token_and_can_wait() {
    let fake = healthy_fake().await;
    let site = Site::new(&fake.url(), &Settings::default());
    let app = App::start(&site);
    app.ready().await;
    let refresh = |auth: Option<&str>, uri: &str| {
        let mut req = Request::post(uri);
        if let Some(auth) = auth {
            req = req.header(header::AUTHORIZATION, auth);
        }
        req.body(Body::empty()).unwrap()
    };
    let (status, headers, _) = app.send(refresh(None, "/refresh")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    let wrong = app
        .send(refresh(Some("Bearer rf3Jt8WcN5bQs2"), "/refresh"))
        .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    let webhook_token_is_not_it = app
        .send(refresh(
            Some(&format!("Bearer {WEBHOOK_TOKEN}")),
            "/refresh",
        ))
        .await;
    assert_eq!(webhook_token_is_not_it.0, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {REFRESH_TOKEN}");
    let (status, _, _) = app.send(refresh(Some(&bearer), "/refresh")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // That refresh's fetch may not have started yet: had upstream changed
    // before it did, it would rewrite the file and leave the waiting refresh
    // below nothing to report. A waiting refresh returns only once no
    // earlier one is left to run.
    let (status, _, _) = app.send(refresh(Some(&bearer), "/refresh?wait=true")).await;
    assert_eq!(status, StatusCode::OK);

    // Upstream changes; a waiting refresh answers with what it rewrote.
    set_pub(&fake, "partial_outage");
    let (status, _, body) = app.send(refresh(Some(&bearer), "/refresh?wait=true")).await;
    assert_eq!(status, StatusCode::OK);
    let report = json_of(&body);
    let paths: Vec<&str> = report["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"beta/motd"), "{report}");
    assert!(!paths.contains(&"alpha/motd"), "{report}");
    assert_eq!(report["errors"], json!([]));
    let beta = fs::read_to_string(site.out("beta/motd")).unwrap();
    assert!(beta.contains("Storage (partial outage)"), "{beta}");

    // Nothing changed upstream: nothing is rewritten.
    let (status, _, body) = app.send(refresh(Some(&bearer), "/refresh?wait=true")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["changed"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motd_is_served_with_validators_and_conditional_gets() {
    let fake = healthy_fake().await;
    let site = Site::new(&fake.url(), &Settings::default());
    let app = App::start(&site);
    app.ready().await;
    eventually("alpha/motd", 10, || site.motd("alpha").is_some()).await;
    let (text, _) = site.motd("alpha").unwrap();

    let (status, headers, body) = app.get("/motd/alpha").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(String::from_utf8(body).unwrap(), text);
    assert!(text.contains("Login nodes (major outage)"), "{text}");
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let last_modified = headers[header::LAST_MODIFIED].to_str().unwrap().to_owned();
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");

    let conditional = |name: header::HeaderName, value: &str| {
        Request::get("/motd/alpha")
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    };
    let (status, headers, body) = app.send(conditional(header::IF_NONE_MATCH, &etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(headers[header::ETAG], etag.as_str());
    let (status, ..) = app
        .send(conditional(header::IF_NONE_MATCH, "\"something-else\""))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, ..) = app
        .send(conditional(header::IF_MODIFIED_SINCE, &last_modified))
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, ..) = app
        .send(conditional(
            header::IF_MODIFIED_SINCE,
            "Mon, 01 Jan 2001 00:00:00 GMT",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Only configured clusters, and nothing outside the output directory.
    fs::write(site.dir.path().join("out/secret"), "no").unwrap();
    for uri in [
        "/motd/nosuch",
        "/motd/..",
        "/motd/.",
        "/motd/a%2Fb",
        "/motd/..%2Fapi-key",
        "/motd/%2E%2E",
        "/motd/alpha/../../api-key",
        "/status/..",
        "/gate/nosuch",
    ] {
        let (status, _, body) = app.get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!String::from_utf8_lossy(&body).contains(API_KEY));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_status_clusters_and_readiness() {
    let fake = FakeStatuspage::start().await;
    set_hpc(&fake, "operational");
    set_pub(&fake, "operational");
    // Nothing answers yet: not ready, and says why.
    fake.fault(Fault::Status(500));
    let site = Site::new(&fake.url(), &Settings::default());
    let app = App::start(&site);
    let (status, _, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(&body)["ready"], json!(false));
    assert_eq!(app.get("/livez").await.0, StatusCode::OK);
    eventually("a failed fetch", 10, || {
        app.state
            .data()
            .missing
            .get("hpc")
            .is_some_and(|m| m.contains("500"))
    })
    .await;
    let (status, _, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let reasons = json_of(&body)["reasons"].to_string();
    assert!(reasons.contains("source `hpc`: no data"), "{reasons}");
    let (status, _, body) = app.get("/gate/alpha").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(&body)["clear"], json!(false));

    fake.clear_faults();
    app.state.refresh(None, "test");
    app.ready().await;
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let (status, _, body) = app.get("/gate/alpha").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body), json!({"clear": true}));

    // An incident on the manage page blocks `alpha`, not `beta`.
    let incident = json!({
        "id": "inc1", "name": "Login nodes unreachable", "status": "investigating",
        "impact": "major", "created_at": "2024-05-14T10:00:00Z",
        "updated_at": "2024-05-14T10:05:00Z", "shortlink": "https://stspg.io/inc1",
        "components": [{"id": "c1", "name": "Login nodes", "status": "major_outage"}],
        "incident_updates": [{"id": "u1", "status": "investigating",
            "body": "We are looking into it.", "created_at": "2024-05-14T10:05:00Z",
            "display_at": "2024-05-14T10:05:00Z"}]
    });
    fake.set_json(
        &format!("/pages/{HPC_PAGE}/incidents/unresolved"),
        json!([incident]),
    );
    let bearer = format!("Bearer {REFRESH_TOKEN}");
    let req = Request::post("/refresh?wait=true")
        .header(header::AUTHORIZATION, bearer)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.0, StatusCode::OK);
    let (status, _, body) = app.get("/gate/alpha").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let gate = json_of(&body);
    assert_eq!(gate["clear"], json!(false));
    assert!(
        gate["reasons"][0]
            .as_str()
            .unwrap()
            .contains("Login nodes unreachable"),
        "{gate}"
    );
    assert_eq!(app.get("/gate/beta").await.0, StatusCode::OK);

    let (status, _, body) = app.get("/status/alpha").await;
    assert_eq!(status, StatusCode::OK);
    let view = json_of(&body);
    assert_eq!(view["cluster"], "alpha");
    assert_eq!(view["incidents"][0]["name"], "Login nodes unreachable");

    let (status, _, body) = app.get("/clusters").await;
    assert_eq!(status, StatusCode::OK);
    let index = json_of(&body);
    let names: Vec<&str> = index["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(index["clusters"][0]["motd"], "/motd/alpha");
    assert_eq!(index["clusters"][0]["stale"], json!(false));
    assert_eq!(index["clusters"][1]["status"], "operational");

    let text = String::from_utf8(app.get("/metrics").await.2).unwrap();
    for line in [
        "statusmotd_upstream_fetches_total{source=\"hpc\",result=\"status_500\"}",
        "statusmotd_upstream_fetches_total{source=\"hpc\",result=\"ok\"}",
        "statusmotd_last_good_fetch_timestamp_seconds{source=\"hpc\"}",
        "statusmotd_render_duration_seconds_count",
        "statusmotd_files_written_total{action=\"created\"}",
        "statusmotd_refreshes_total{result=\"ok\"}",
        "statusmotd_config_reloads_total{result=\"error\"} 0",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------
// The real binary

/// A running `statusmotd serve`, its address and everything it logged.
impl Served {
    fn start(site: &Site) -> Served {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("statusmotd"));
        cmd.arg("serve")
            .arg("--config")
            .arg(site.config_path())
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "debug")
            .env_remove("STATUSMOTD_CONFIG");
        Served::spawn(cmd)
    }

    /// SIGTERM, then the exit status (within 15 s).
    async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn status_of(client: &reqwest::Client, url: &str) -> u16 {
    match client.get(url).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_status(client: &reqwest::Client, url: &str, want: u16, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = status_of(client, url).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{url}` answered {got}, not {want}, for {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_end_to_end_webhooks_bursts_and_shutdown() {
    let webhook = shared_fixture!("webhook-component-docs-example.json");
    let unknown_page = shared_fixture!("webhook-component-live.json");
    let fake = FakeStatuspage::start().await;
    set_hpc(&fake, "operational");
    set_pub(&fake, "operational");
    let dir_for_log = tempfile::tempdir().unwrap();
    let changed_log = dir_for_log.path().join("changed.log");
    let settings = Settings {
        debounce: "2s",
        on_change: Some(changed_log.clone()),
        ..Settings::default()
    };
    let site = Site::new(&fake.url(), &settings);
    let mut served = Served::start(&site);
    let client = reqwest::Client::new();
    wait_status(&client, &served.url("/readyz"), 200, 20).await;
    eventually("alpha/motd", 10, || site.motd("alpha").is_some()).await;
    // Nothing concerns `alpha` yet: an empty MOTD.
    assert_eq!(site.motd("alpha").unwrap().0, "");

    // Upstream changes; the webhook is only the hint to look.
    set_hpc(&fake, "major_outage");
    let started = Instant::now();
    let r = client
        .post(served.url(&format!("/webhook/{WEBHOOK_TOKEN}")))
        .body(webhook.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(started.elapsed() < Duration::from_millis(500));
    eventually("the MOTD to show the outage", 15, || {
        site.motd("alpha")
            .is_some_and(|(t, _)| t.contains("Login nodes (major outage)"))
    })
    .await;
    eventually("on_change to run", 10, || {
        fs::read_to_string(&changed_log).is_ok_and(|t| t.lines().any(|l| l == "alpha"))
    })
    .await;

    // Pull: 200 with validators, then 304 for the same ETag and date.
    let r = client.get(served.url("/motd/alpha")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let date = r.headers()["last-modified"].to_str().unwrap().to_owned();
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Login nodes (major outage)"));
    let r = client
        .get(served.url("/motd/alpha"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = client
        .get(served.url("/motd/alpha"))
        .header("if-modified-since", &date)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // A burst of 300 webhooks: every one answered, at most 2 fetch cycles.
    // (`pub` was last fetched at start: the webhook above named `hpc`.)
    let before = fake.requests_to(V2_SUMMARY);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let (client, url, body) = (
            client.clone(),
            served.url(&format!("/webhook/{WEBHOOK_TOKEN}")),
            unknown_page.clone(),
        );
        burst.spawn(async move { client.post(url).body(body).send().await.map(|r| r.status()) });
    }
    while let Some(r) = burst.join_next().await {
        let status = r.unwrap().unwrap();
        assert!(status.is_success(), "{status}");
    }
    eventually("a fetch after the burst", 10, || {
        fake.requests_to(V2_SUMMARY) > before
    })
    .await;
    // Long enough for a second cycle (debounce 2 s + fetch) and a third.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cycles = fake.requests_to(V2_SUMMARY) - before;
    assert!((1..=2).contains(&cycles), "{cycles} fetch cycles");

    let metrics = client
        .get(served.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("statusmotd_webhooks_total{outcome=\"accepted\"} 301"),
        "{metrics}"
    );

    let status = served.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", served.log());
    let log = served.log();
    assert!(
        log.contains("/webhook/{token}"),
        "the route is logged:\n{log}"
    );
    for secret in [WEBHOOK_TOKEN, REFRESH_TOKEN, API_KEY] {
        assert!(!log.contains(secret), "a secret is in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failure_keeps_the_files_and_a_restart_serves_the_last_good_data() {
    let fake = FakeStatuspage::start().await;
    set_hpc(&fake, "major_outage");
    set_pub(&fake, "operational");
    let settings = Settings {
        stale_after: "3s",
        poll_interval: "1s",
        ..Settings::default()
    };
    let site = Site::new(&fake.url(), &settings);
    let mut served = Served::start(&site);
    let client = reqwest::Client::new();
    wait_status(&client, &served.url("/readyz"), 200, 20).await;
    eventually("alpha/motd", 10, || site.motd("alpha").is_some()).await;
    let (good, mtime) = site.motd("alpha").unwrap();
    assert!(good.contains("Login nodes (major outage)"), "{good}");

    // Upstream hangs: webhooks are still answered at once.
    fake.fault(Fault::Hang);
    for _ in 0..20 {
        let started = Instant::now();
        let r = client
            .post(served.url(&format!("/webhook/{WEBHOOK_TOKEN}")))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    // A failed fetch (request_timeout 1 s) changes nothing on disk.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(site.motd("alpha").unwrap(), (good.clone(), mtime));

    // Then 500s; past `stale_after` the service says it is not ready, and
    // the MOTD keeps its news and says it is stale.
    fake.fault(Fault::Status(500));
    wait_status(&client, &served.url("/readyz"), 503, 15).await;
    let body = client
        .get(served.url("/readyz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("stale_after"), "{body}");
    eventually("the MOTD to say it is stale", 10, || {
        site.motd("alpha")
            .is_some_and(|(t, _)| t.contains("old: the status page answered with a server error)"))
    })
    .await;
    let (stale, _) = site.motd("alpha").unwrap();
    assert!(stale.contains("Login nodes (major outage)"), "{stale}");
    let metrics = client
        .get(served.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("result=\"timeout\""), "{metrics}");
    assert!(metrics.contains("result=\"status_500\""), "{metrics}");

    // SIGTERM while fetches fail: a clean exit.
    assert_eq!(served.terminate().await.code(), Some(0), "{}", served.log());

    // A restart while upstream is down renders from the persisted snapshot,
    // and removes what a killed process left half-written in `state_dir`
    // (a pid above the kernel's limit is no running writer's), though
    // nothing is kept again.
    fs::remove_dir_all(site.dir.path().join("out")).unwrap();
    let dead = site
        .dir
        .path()
        .join("state/.hpc.snapshot.json.4194305-0.tmp");
    fs::write(&dead, b"{\"half").unwrap();
    let mut again = Served::start(&site);
    eventually("alpha/motd from the persisted snapshot", 15, || {
        site.motd("alpha")
            .is_some_and(|(t, _)| t.contains("Login nodes (major outage)"))
    })
    .await;
    assert!(!dead.exists(), "a killed writer's temp file is removed");
    let r = client.get(again.url("/motd/alpha")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(status_of(&client, &again.url("/readyz")).await, 503);
    assert_eq!(again.terminate().await.code(), Some(0), "{}", again.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_saved_by_rename_is_reloaded_and_a_bad_one_is_refused() {
    let fake = FakeStatuspage::start().await;
    set_hpc(&fake, "major_outage");
    set_pub(&fake, "operational");
    let site = Site::new(&fake.url(), &Settings::default());
    let mut served = Served::start(&site);
    let client = reqwest::Client::new();
    wait_status(&client, &served.url("/readyz"), 200, 20).await;
    assert_eq!(status_of(&client, &served.url("/motd/gamma")).await, 404);

    // A new cluster, saved the way editors save: write aside, rename over.
    let with_gamma = Settings {
        extra_cluster: true,
        ..Settings::default()
    };
    site.replace_mapping(&mapping(&fake.url(), &with_gamma));
    eventually("gamma/motd", 15, || {
        site.motd("gamma")
            .is_some_and(|(t, _)| t.contains("Login nodes"))
    })
    .await;
    wait_status(&client, &served.url("/motd/gamma"), 200, 5).await;

    // A broken file is refused; the configuration in force stays.
    site.replace_mapping("[settings]\nno_such_key = 1\n");
    let metrics_url = served.url("/metrics");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = client
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.contains("statusmotd_config_reloads_total{result=\"error\"} 1") {
            assert!(
                m.contains("statusmotd_config_reloads_total{result=\"ok\"} 1"),
                "{m}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bad config was not counted:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_of(&client, &served.url("/motd/gamma")).await, 200);
    assert_eq!(status_of(&client, &served.url("/readyz")).await, 200);
    assert!(served.log().contains("no_such_key"), "{}", served.log());

    assert_eq!(served.terminate().await.code(), Some(0));
    assert!(!served.log().contains(API_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let fake = healthy_fake().await;
    let site = Site::new(&fake.url(), &Settings::default());
    let app = App::start(&site);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        server::router(app.state.clone()),
        stop.clone().cancelled_owned(),
    ));

    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Meanwhile other clients are served.
    let r = reqwest::get(format!("http://{addr}/livez")).await.unwrap();
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        server::HEADER_READ_TIMEOUT + Duration::from_secs(5),
        slow.read_to_end(&mut rest),
    )
    .await;
    assert!(read.is_ok(), "the connection is still open");
    assert!(started.elapsed() + Duration::from_secs(1) >= server::HEADER_READ_TIMEOUT);
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));

    stop.cancel();
    server.await.unwrap().unwrap();
    app.stop().await;
}
