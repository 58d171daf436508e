//! The webhook fast path of `statusmotd serve`, with the real binary and the
//! fake Statuspage: a render plans only the clusters whose inputs changed
//! (their other files keep their inode and mtime), page-wide incidents and
//! `also` sources still reach their clusters, `index.json`, calendars and
//! notifications stay whole, a time window boundary moves files without a
//! fetch; and `[server] webhook_preview` shows a webhook's incident before
//! the fetch it triggers has answered, which then corrects it.
//!
//! Every refresh here is `POST /refresh?wait=true`, which answers once the
//! render is done, so no test depends on how long anything takes.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use crate::common::Served;
use crate::fake::{FakeStatuspage, Fault};

const WEBHOOK_TOKEN: &str = "wfH8pQ2xLs7Tn3";
const REFRESH_TOKEN: &str = "rfK4mW9zDc2Vb6";
const PAGE: &str = "fastpage0001";
const SUMMARY: &str = "/api/v2/summary.json";

/// `pub`: groups `Alpha`, `Beta`, `Gamma` of one component each, and a
/// top-level `Shared scratch` that `delta` reads as a further source.
struct Page {
    status: [&'static str; 4],
    incidents: Vec<Value>,
    maintenances: Vec<Value>,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            status: ["operational"; 4],
            incidents: Vec::new(),
            maintenances: Vec::new(),
        }
    }
}

const COMPONENTS: [(&str, &str, Option<&str>); 4] = [
    ("ca", "Alpha nodes", Some("ga")),
    ("cb", "Beta nodes", Some("gb")),
    ("cg", "Gamma nodes", Some("gg")),
    ("cs", "Shared scratch", None),
];

fn serve_page(fake: &FakeStatuspage, page: &Page) {
    let mut components = vec![
        json!({"id": "ga", "name": "Alpha", "group": true, "components": ["ca"], "status": "operational"}),
        json!({"id": "gb", "name": "Beta", "group": true, "components": ["cb"], "status": "operational"}),
        json!({"id": "gg", "name": "Gamma", "group": true, "components": ["cg"], "status": "operational"}),
    ];
    for ((id, name, group), status) in COMPONENTS.iter().zip(page.status) {
        components.push(
            json!({"id": id, "name": name, "group_id": group, "status": status,
            "updated_at": "2024-01-01T00:00:00Z"}),
        );
    }
    fake.set_v2_page(
        json!({"id": PAGE, "name": "Fast", "url": "https://status.example.org"}),
        Value::Array(components),
        Value::Array(page.incidents.clone()),
        Value::Array(page.maintenances.clone()),
    );
}

/// The vendor page `delta` reads first.
fn serve_vendor(fake: &FakeStatuspage) {
    fake.set_v2_page(
        json!({"id": "vendor01", "name": "Vendor"}),
        json!([{"id": "v1", "name": "Cloud", "status": "operational"}]),
        json!([]),
        json!([]),
    );
}

fn incident(id: &str, name: &str, components: &[&str], updated_at: Timestamp) -> Value {
    json!({
        "id": id, "name": name, "status": "investigating", "impact": "major",
        "created_at": "2024-01-01T00:00:00Z", "updated_at": updated_at.to_string(),
        "components": components.iter().map(|c| json!({"id": c})).collect::<Vec<_>>(),
        "incident_updates": [{"id": format!("{id}u1"), "status": "investigating",
            "body": format!("{name}: we are looking into it."),
            "created_at": "2024-01-01T00:00:00Z", "display_at": "2024-01-01T00:00:00Z"}],
    })
}

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(url: &str, vendor: &str, server: &str, settings: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"[settings]
output_dir = "out"
state_dir = "state"
timezone = "UTC"
poll_interval = "1h"
debounce = "0s"
request_timeout = "1s"
retries = 0
upcoming = "1h"
{settings}

[sources.pub]
kind = "statuspage-public"
url = "{url}"

[sources.vendor]
kind = "statuspage-public"
url = "{vendor}"

[server]
listen = "127.0.0.1:0"
webhook_token = {{ file = "webhook-token" }}
refresh_token = {{ file = "refresh-token" }}
{server}

[clusters.alpha]
source = "pub"
groups = ["Alpha"]

[clusters.beta]
source = "pub"
groups = ["Beta"]

[clusters.gamma]
source = "pub"
groups = ["Gamma"]

[clusters.delta]
source = "vendor"
components = ["Cloud"]

[clusters.delta.also.pub]
components = ["Shared scratch"]
"#
        );
        fs::write(dir.path().join("mapping.toml"), text).unwrap();
        fs::write(dir.path().join("webhook-token"), WEBHOOK_TOKEN).unwrap();
        fs::write(dir.path().join("refresh-token"), REFRESH_TOKEN).unwrap();
        Site { dir }
    }

    fn start(&self) -> Served {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("statusmotd"));
        cmd.arg("serve")
            .arg("--config")
            .arg(self.dir.path().join("mapping.toml"))
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "debug")
            .env_remove("STATUSMOTD_CONFIG");
        Served::spawn(cmd)
    }

    fn out(&self, rel: &str) -> PathBuf {
        self.dir.path().join("out").join(rel)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.out(rel)).unwrap_or_default()
    }

    /// Inode and mtime of every file of `cluster`: a file written again,
    /// even with the same bytes, gets a new inode (atomic replace).
    fn stamps(&self, cluster: &str) -> Vec<(String, u64, i64, i64)> {
        let mut out = Vec::new();
        for rel in ["motd", "maintenance.ics"] {
            let path = self.out(&format!("{cluster}/{rel}"));
            let m = fs::metadata(&path).unwrap();
            out.push((rel.to_owned(), m.ino(), m.mtime(), m.mtime_nsec()));
        }
        out
    }

    fn index(&self) -> Value {
        serde_json::from_str(&self.read("index.json")).unwrap()
    }
}

/// `POST /refresh?wait=true`: the changed paths, once rendered.
async fn refresh(client: &reqwest::Client, served: &Served) -> Vec<String> {
    let text = client
        .post(served.url("/refresh?wait=true"))
        .bearer_auth(REFRESH_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r: Value = serde_json::from_str(&text).unwrap();
    let mut paths: Vec<String> = r["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    paths
}

async fn webhook(client: &reqwest::Client, served: &Served, body: &Value) {
    let r = client
        .post(served.url(&format!("/webhook/{WEBHOOK_TOKEN}")))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

/// Sends a webhook saying component `cb` (cluster `beta`) is in a major
/// outage, and waits for the preview to reach `beta`'s MOTD.
async fn beta_outage_previewed(client: &reqwest::Client, served: &Served, site: &Site) {
    webhook(
        client,
        served,
        &component_webhook("cb", "major_outage", Timestamp::now()),
    )
    .await;
    eventually("the component preview", 20, || {
        site.read("beta/motd").contains("major outage")
    })
    .await;
}

async fn eventually(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn started(site: &Site) -> (Served, reqwest::Client) {
    let served = site.start();
    let clusters = ["alpha", "beta", "gamma", "delta"];
    eventually("every cluster rendered", 20, || {
        clusters.iter().all(|c| {
            site.out(&format!("{c}/motd")).is_file()
                && site.out(&format!("{c}/maintenance.ics")).is_file()
        }) && site.out("index.json").is_file()
    })
    .await;
    // Both sources are fetched at the start, and each fetch is rendered
    // when it lands: the files are settled once a second passes without
    // a change (the tests compare them with what a later render leaves).
    let settled = || {
        let stamps: Vec<_> = clusters.iter().map(|c| site.stamps(c)).collect();
        (stamps, site.read("index.json"))
    };
    let mut last = settled();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = settled();
        if now == last || std::time::Instant::now() > deadline {
            break;
        }
        last = now;
    }
    (served, reqwest::Client::new())
}

/// How many clusters the last render planned, as its debug log says.
fn last_planned(served: &Served) -> Option<usize> {
    let log = served.log();
    let line = log.lines().rev().find(|l| l.contains("planning"))?;
    let (_, n) = line.split_once("clusters=")?;
    n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn notify_route() -> String {
    // Nothing listens there: events stay pending in `state/notify.json`,
    // where the test reads which clusters each names.
    "[[notify]]\nname = \"ops\"\nto = { webhook = { url = \"http://127.0.0.1:9/hook\" } }\n".into()
}

/// Pending event kind + item id -> the clusters it names.
fn pending(site: &Site) -> Vec<(String, String, Vec<String>)> {
    let text = fs::read_to_string(site.dir.path().join("state/notify.json")).unwrap_or_default();
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String, Vec<String>)> = v["pending"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let e = &p["event"];
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["item"]["id"].as_str().unwrap_or_default().to_owned(),
                e["clusters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_renders_only_the_clusters_it_concerns() {
    let fake = FakeStatuspage::start().await;
    let vendor = FakeStatuspage::start().await;
    serve_vendor(&vendor);
    let mut page = Page::default();
    serve_page(&fake, &page);
    let site = Site::new(&fake.url(), &vendor.url(), "", &notify_route());
    let (served, client) = started(&site).await;
    let before: Vec<_> = ["beta", "gamma", "delta"]
        .iter()
        .map(|c| site.stamps(c))
        .collect();

    // One group's component: its cluster alone is planned and written.
    page.status[0] = "major_outage";
    serve_page(&fake, &page);
    let changed = refresh(&client, &served).await;
    assert_eq!(changed, ["alpha/motd", "index.json"], "{}", served.log());
    assert_eq!(last_planned(&served), Some(1), "{}", served.log());
    assert!(site.read("alpha/motd").contains("major outage"));
    let after: Vec<_> = ["beta", "gamma", "delta"]
        .iter()
        .map(|c| site.stamps(c))
        .collect();
    assert_eq!(before, after, "files of other clusters were written again");
    let index = site.index();
    assert_eq!(index["clusters"]["alpha"]["status"], "major_outage");
    for c in ["beta", "gamma", "delta"] {
        assert_eq!(index["clusters"][c]["status"], "operational", "{c}");
    }

    // A page-wide incident reaches every cluster that shows page-wide
    // items; `delta` reads `pub` only as a further source, where page-wide
    // items are off by default.
    let now = Timestamp::now();
    page.incidents = vec![incident("pw1", "Everything is slow", &[], now)];
    serve_page(&fake, &page);
    let changed = refresh(&client, &served).await;
    for c in ["alpha", "beta", "gamma"] {
        assert!(
            site.read(&format!("{c}/motd"))
                .contains("Everything is slow"),
            "{c}"
        );
        assert!(changed.contains(&format!("{c}/motd")), "{changed:?}");
    }
    assert!(!site.read("delta/motd").contains("Everything is slow"));
    let events = pending(&site);
    assert!(
        events.contains(&(
            "opened".into(),
            "pw1".into(),
            vec!["alpha".into(), "beta".into(), "gamma".into()]
        )),
        "{events:?}"
    );

    // A component `delta` reads from `pub` as a further source re-plans
    // `delta`, and no other cluster.
    let others: Vec<_> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|c| site.stamps(c))
        .collect();
    page.status[3] = "partial_outage";
    serve_page(&fake, &page);
    let changed = refresh(&client, &served).await;
    assert_eq!(changed, ["delta/motd", "index.json"]);
    assert_eq!(last_planned(&served), Some(1), "{}", served.log());
    assert!(
        site.read("delta/motd").contains("Shared scratch"),
        "{}",
        site.read("delta/motd")
    );
    let still: Vec<_> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|c| site.stamps(c))
        .collect();
    assert_eq!(others, still);
    assert_eq!(
        site.index()["clusters"]["delta"]["status"],
        "partial_outage"
    );

    // An incident on `beta`'s component: one event, naming `beta` alone;
    // the clusters not planned again are still known to the outbox, so
    // none of their items is announced again or as resolved.
    let events_before = pending(&site);
    page.incidents
        .push(incident("b1", "Beta is down", &["cb"], now));
    serve_page(&fake, &page);
    let changed = refresh(&client, &served).await;
    assert!(changed.contains(&"beta/motd".to_owned()), "{changed:?}");
    assert!(
        !changed
            .iter()
            .any(|p| p.starts_with("alpha/") || p.starts_with("gamma/") || p.starts_with("delta/")),
        "{changed:?}"
    );
    let new: Vec<_> = pending(&site)
        .into_iter()
        .filter(|e| !events_before.contains(e))
        .collect();
    assert_eq!(
        new,
        [("opened".into(), "b1".into(), vec!["beta".to_owned()])]
    );

    // A maintenance of `gamma` reaches its calendar, and its alone.
    let cal_alpha = site.stamps("alpha");
    let from = now + SignedDuration::from_mins(30);
    page.maintenances = vec![json!({
        "id": "m1", "name": "Gamma upgrade", "status": "scheduled", "impact": "maintenance",
        "created_at": "2024-01-01T00:00:00Z", "updated_at": now.to_string(),
        "scheduled_for": from.to_string(),
        "scheduled_until": (from + SignedDuration::from_hours(2)).to_string(),
        "components": [{"id": "cg"}], "incident_updates": [],
    })];
    serve_page(&fake, &page);
    let changed = refresh(&client, &served).await;
    assert!(
        changed.contains(&"gamma/maintenance.ics".to_owned()),
        "{changed:?}"
    );
    assert!(site.read("gamma/maintenance.ics").contains("Gamma upgrade"));
    assert_eq!(cal_alpha, site.stamps("alpha"));
    drop(served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_start_moves_files_without_a_fetch() {
    let fake = FakeStatuspage::start().await;
    let vendor = FakeStatuspage::start().await;
    serve_vendor(&vendor);
    // It enters the `upcoming` window (1 h) in 3 seconds.
    let from = Timestamp::now() + SignedDuration::from_hours(1) + SignedDuration::from_secs(3);
    let page = Page {
        maintenances: vec![json!({
            "id": "m2", "name": "Alpha firmware", "status": "scheduled", "impact": "maintenance",
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "scheduled_for": from.to_string(),
            "scheduled_until": (from + SignedDuration::from_hours(1)).to_string(),
            "components": [{"id": "ca"}], "incident_updates": [],
        })],
        ..Page::default()
    };
    serve_page(&fake, &page);
    let site = Site::new(&fake.url(), &vendor.url(), "", "");
    let (served, _client) = started(&site).await;
    let requests = fake.requests();
    assert!(!site.read("alpha/motd").contains("Alpha firmware"));
    let beta = site.stamps("beta");
    eventually("the maintenance to enter the window", 30, || {
        site.read("alpha/motd").contains("Alpha firmware")
    })
    .await;
    assert_eq!(fake.requests(), requests, "a fetch moved it, not the clock");
    assert_eq!(beta, site.stamps("beta"));
    drop(served);
}

/// A webhook for incident `i1` of `pub`, updated at `at`, named `name`.
fn incident_webhook(name: &str, at: Timestamp) -> Value {
    json!({
        "meta": {"unsubscribe": "https://status.example.org/unsubscribe"},
        "page": {"id": PAGE, "status_indicator": "major"},
        "incident": incident("i1", name, &["ca"], at),
    })
}

fn component_webhook(id: &str, status: &str, at: Timestamp) -> Value {
    json!({
        "page": {"id": PAGE},
        "component_update": {"component_id": id, "new_status": status},
        "component": {"id": id, "name": "whatever", "status": status, "updated_at": at.to_string()},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_preview_shows_the_incident_before_the_fetch_and_the_fetch_corrects_it() {
    let fake = FakeStatuspage::start().await;
    let vendor = FakeStatuspage::start().await;
    serve_vendor(&vendor);
    let t0 = Timestamp::now() - SignedDuration::from_hours(1);
    let mut page = Page {
        incidents: vec![incident("i1", "Slow logins", &["ca"], t0)],
        ..Page::default()
    };
    serve_page(&fake, &page);
    let site = Site::new(&fake.url(), &vendor.url(), "webhook_preview = true", "");
    let (served, client) = started(&site).await;
    assert!(site.read("alpha/motd").contains("Slow logins"));
    let beta = site.stamps("beta");

    // Upstream hangs: only the webhook itself can move the MOTD.
    fake.fault(Fault::Hang);
    let summaries = fake.requests_to(SUMMARY);
    let t1 = Timestamp::now();
    webhook(
        &client,
        &served,
        &incident_webhook("Logins fail \u{1b}[31m<b>now</b> &amp; then", t1),
    )
    .await;
    eventually("the preview in the MOTD", 20, || {
        site.read("alpha/motd").contains("Logins fail")
    })
    .await;
    // The fetch the webhook asked for is under way and has not answered.
    eventually("the fetch to start", 20, || {
        fake.requests_to(SUMMARY) > summaries
    })
    .await;
    let motd = site.read("alpha/motd");
    // Sanitized at the model, as fetched text is: tags and entities too,
    // which printing alone would leave.
    assert!(
        motd.contains("Logins fail now & then") && !motd.contains('\u{1b}'),
        "preview text is sanitized: {motd:?}"
    );
    assert!(!motd.contains("Slow logins"));
    assert_eq!(beta, site.stamps("beta"), "the preview rendered `beta` too");

    // An older payload changes nothing: a newer component webhook sent
    // after it is rendered after it, and by then `alpha` is as it was.
    let alpha = site.stamps("alpha");
    webhook(
        &client,
        &served,
        &incident_webhook("Old news", t0 - SignedDuration::from_mins(5)),
    )
    .await;
    beta_outage_previewed(&client, &served, &site).await;
    assert_eq!(
        alpha,
        site.stamps("alpha"),
        "an older webhook changed `alpha`"
    );
    assert!(!site.read("alpha/motd").contains("Old news"));

    // The confirming fetch corrects what the preview got wrong.
    fake.clear_faults();
    page.incidents = vec![incident("i1", "Logins are back", &["ca"], t1)];
    serve_page(&fake, &page);
    refresh(&client, &served).await;
    let motd = site.read("alpha/motd");
    assert!(motd.contains("Logins are back"), "{motd}");
    assert!(!motd.contains("Logins fail"), "{motd}");
    assert!(!site.read("beta/motd").contains("major outage"));
    drop(served);
}

/// A preview writes the MOTDs it changes ahead of the rest of their files;
/// the change still counts as one: `on_change` hears of the cluster whose
/// MOTD alone changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_that_changes_a_motd_alone_is_told_to_on_change() {
    let fake = FakeStatuspage::start().await;
    let vendor = FakeStatuspage::start().await;
    serve_vendor(&vendor);
    serve_page(&fake, &Page::default());
    let logs = tempfile::tempdir().unwrap();
    let changed = logs.path().join("changed.log");
    let hook = format!(
        "webhook_preview = true\non_change = [\"sh\", \"-c\", \"echo \\\"$STATUSMOTD_CHANGED_CLUSTERS\\\" >> '{}'\"]",
        changed.display()
    );
    let site = Site::new(&fake.url(), &vendor.url(), &hook, "");
    let (served, client) = started(&site).await;
    assert!(!site.read("beta/motd").contains("major outage"));
    let items = || fs::read_dir(site.dir.path().join("out/beta/items")).map_or(0, Iterator::count);
    let items_before = items();
    // Whatever ran `on_change` at startup is done with.
    eventually("the startup on_change", 20, || changed.is_file()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    fs::remove_file(&changed).unwrap();

    // Upstream hangs: only the preview can change `beta`, and a component
    // changes its MOTD alone (no snippet, no calendar entry).
    fake.fault(Fault::Hang);
    beta_outage_previewed(&client, &served, &site).await;
    assert_eq!(
        items_before,
        items(),
        "the preview wrote a snippet: the MOTD is not the only file changed"
    );
    eventually("on_change to hear of `beta`", 20, || {
        fs::read_to_string(&changed).is_ok_and(|t| t.split_whitespace().any(|c| c == "beta"))
    })
    .await;
    drop(served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_webhook_preview_a_webhook_waits_for_the_fetch() {
    let fake = FakeStatuspage::start().await;
    let vendor = FakeStatuspage::start().await;
    serve_vendor(&vendor);
    let mut page = Page {
        incidents: vec![incident(
            "i1",
            "Slow logins",
            &["ca"],
            Timestamp::now() - SignedDuration::from_hours(1),
        )],
        ..Page::default()
    };
    serve_page(&fake, &page);
    let site = Site::new(&fake.url(), &vendor.url(), "", "");
    let (served, client) = started(&site).await;
    let alpha = site.stamps("alpha");

    fake.fault(Fault::Hang);
    webhook(
        &client,
        &served,
        &incident_webhook("Logins fail", Timestamp::now()),
    )
    .await;
    // A refresh sent after the webhook is rendered after anything the
    // webhook could have caused; upstream still hangs, so it fails.
    refresh(&client, &served).await;
    assert_eq!(
        alpha,
        site.stamps("alpha"),
        "the webhook changed a file by itself"
    );

    fake.clear_faults();
    page.incidents = vec![incident("i1", "Logins fail", &["ca"], Timestamp::now())];
    serve_page(&fake, &page);
    refresh(&client, &served).await;
    assert!(site.read("alpha/motd").contains("Logins fail"));
    drop(served);
}

#[test]
fn webhook_preview_without_a_webhook_token_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("mapping.toml");
    fs::write(
        path,
        "[sources.pub]\nkind = \"statuspage-public\"\nurl = \"https://status.example.org\"\n\
         [server]\nwebhook_preview = true\n[clusters.a]\nsource = \"pub\"\ncomponents = [\"X\"]\n",
    )
    .unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin!("statusmotd"))
        .args(["render", "--config"])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("webhook_preview") && err.contains("hint:"),
        "{err}"
    );
    fs::write(
        path,
        "[sources.pub]\nkind = \"statuspage-public\"\nurl = \"https://status.example.org\"\n\
         [server]\nwebhook_preview = \"yes\"\n[clusters.a]\nsource = \"pub\"\ncomponents = [\"X\"]\n",
    )
    .unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin!("statusmotd"))
        .args(["render", "--config"])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}
