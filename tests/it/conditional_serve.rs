//! `serve` asking each Statuspage page "changed since?": polls of an
//! unchanged page carry `If-None-Match` and get `304`, which leaves every
//! file alone and still renews the data's freshness (`/readyz` stays ready
//! past `stale_after`, the last good fetch moves on); a change after the
//! 304s reaches the MOTD; a `304` to a request that asked nothing (a
//! misbehaving server) is a failed fetch that blanks nothing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{files_under, http_exchange, http_get, FileState, Served, Site};
use crate::fake::{FakeStatuspage, Fault, Validators};

const V1_PAGE: &str = "v1page00002";
const API_KEY: &str = "k3yServeConditional";

const WEBHOOK_TOKEN: &str = "wh0kConditional";

/// A `statuspage-public` source (`v2`) or a `statuspage` one on the same
/// fake, polled every `poll`, stale after `stale_after`; a webhook token.
fn mapping(url: &str, v1: bool, stale_after: &str, poll: &str) -> String {
    let source = if v1 {
        format!(
            "kind = \"statuspage\"\npage_id = \"{V1_PAGE}\"\napi_key = {{ file = \"api-key\" }}\napi_base = \"{url}\""
        )
    } else {
        format!("kind = \"statuspage-public\"\nurl = \"{url}\"")
    };
    format!(
        r#"[settings]
output_dir = "out"
state_dir = "state"
timezone = "UTC"
request_timeout = "2s"
retries = 0
poll_interval = "{poll}"
debounce = "0s"
stale_after = "{stale_after}"

[sources.status]
{source}

[server]
webhook_token = {{ file = "webhook-token" }}

[clusters.alpha]
source = "status"
components = ["Lustre"]
"#
    )
}

fn incident(name: &str) -> Value {
    json!({
        "id": "inc1", "name": name, "status": "investigating", "impact": "minor",
        "created_at": "2025-06-01T10:00:00Z", "updated_at": "2025-06-01T10:00:00Z",
        "components": [{"id": "c1", "name": "Lustre"}],
        "incident_updates": [{"id": "u1", "status": "investigating",
            "body": "Slow.", "created_at": "2025-06-01T10:00:00Z"}],
    })
}

/// The page, over both APIs: `Lustre` degraded by one open incident.
fn set_page(fake: &FakeStatuspage, name: &str) {
    let components = json!([{"id": "c1", "name": "Lustre", "status": "degraded_performance"}]);
    fake.set_v2_page(
        json!({"id": "p", "name": "Site"}),
        components.clone(),
        json!([incident(name)]),
        json!([]),
    );
    let base = format!("/pages/{V1_PAGE}");
    fake.set_json(&format!("{base}/components"), components);
    fake.set_json(
        &format!("{base}/incidents/unresolved"),
        json!([incident(name)]),
    );
    fake.set_json(&format!("{base}/incidents"), json!([incident(name)]));
    for list in ["incidents/upcoming", "incidents/active_maintenance"] {
        fake.set_json(&format!("{base}/{list}"), json!([]));
    }
}

fn site(fake: &FakeStatuspage, v1: bool, stale_after: &str) -> Site {
    site_polled(fake, v1, stale_after, "1s")
}

fn site_polled(fake: &FakeStatuspage, v1: bool, stale_after: &str, poll: &str) -> Site {
    let site = Site::new(&mapping(&fake.url(), v1, stale_after, poll));
    std::fs::write(site.path().join("api-key"), API_KEY).unwrap();
    std::fs::write(site.path().join("webhook-token"), WEBHOOK_TOKEN).unwrap();
    site
}

/// `POST /webhook/{token}` with a payload about the page: the status.
fn webhook(served: &Served) -> u16 {
    let body = r#"{"page":{"id":"p"},"incident":{"id":"inc1","name":"x"}}"#;
    let request = format!(
        "POST /webhook/{WEBHOOK_TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_exchange(served.addr(), request.as_bytes(), Duration::from_secs(10))
        .map_or(0, |(status, _)| status)
}

/// One GET: status and body (status 0 when nothing answered).
fn get(served: &Served, path: &str) -> (u16, String) {
    let (status, answer) =
        http_get(served.addr(), path, Duration::from_secs(10)).unwrap_or_default();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the metric line starting with `name`, if shown.
fn metric(served: &Served, name: &str) -> Option<f64> {
    let (_, body) = get(served, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.trim().parse().ok())
}

fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn out_files(site: &Site) -> Vec<FileState> {
    files_under(&site.path().join("out"))
}

/// Requests per refresh: v2's three documents, v1's five lists.
fn per_refresh(v1: bool) -> usize {
    if v1 {
        5
    } else {
        3
    }
}

fn unchanged_polls_ask_conditionally_and_keep_the_data_fresh(v1: bool) {
    let fake = FakeStatuspage::spawn();
    fake.send_validators(Validators::ETag, true);
    set_page(&fake, "Lustre slow");
    let site = site(&fake, v1, "3s");
    let mut cmd = site.serve_cmd();
    cmd.env("RUST_LOG", "info,statusmotd=debug");
    let served = Served::spawn(cmd);
    let n = per_refresh(v1);
    let plans = |s: &Served| s.log().matches("planning").count();

    wait_for("the first render", 20, || {
        std::fs::read_to_string(site.out("alpha/motd")).is_ok_and(|m| m.contains("Lustre slow"))
    });
    // Once the polls answer 304, nothing is written any more.
    wait_for("a poll answered 304", 20, || {
        fake.not_modified_answers() >= n
    });
    std::thread::sleep(Duration::from_millis(300));
    let files = out_files(&site);
    let snapshot = site.path().join("state/status.snapshot.json");
    let saved = std::fs::metadata(&snapshot).unwrap().modified().unwrap();
    let asked = fake.not_modified_answers();
    let planned = plans(&served);

    // Past `stale_after` (3 s) with 304s alone: still ready, still fresh.
    std::thread::sleep(Duration::from_secs(5));
    let (status, body) = get(&served, "/readyz");
    assert_eq!(status, 200, "304s renew the data's freshness: {body}");
    assert!(
        fake.not_modified_answers() >= asked + 3 * n,
        "the polls went on: {} 304s",
        fake.not_modified_answers()
    );
    assert_eq!(
        fake.requests() - fake.conditional_requests(),
        n,
        "only the first refresh asked in full: {:?}",
        fake.request_log()
    );
    assert_eq!(fake.conditional_requests(), fake.not_modified_answers());
    assert_eq!(
        out_files(&site),
        files,
        "no file touched (inode, mtime, bytes)"
    );
    assert_eq!(plans(&served), planned, "no cluster planned again");
    assert_eq!(
        std::fs::metadata(&snapshot).unwrap().modified().unwrap(),
        saved,
        "the snapshot is not saved again"
    );
    let now = f64::from(u32::try_from(jiff::Timestamp::now().as_second()).unwrap());
    let last = metric(
        &served,
        "statusmotd_last_good_fetch_timestamp_seconds{source=\"status\"}",
    )
    .expect("last good fetch shown");
    assert!(
        now - last < 3.0,
        "the last good fetch is a 304's: {last} vs {now}"
    );
    let ok = metric(
        &served,
        "statusmotd_upstream_fetches_total{source=\"status\",result=\"ok\"}",
    )
    .expect("fetches shown");
    assert!(ok >= 4.0, "a 304 counts as a good fetch: {ok}");
    let log = served.log();
    assert!(!log.contains("fetch failed"), "{log}");
    assert!(!log.contains("fetching in full"), "{log}");

    // A change after the 304s reaches the MOTD.
    set_page(&fake, "Lustre very slow");
    wait_for("the change in the MOTD", 20, || {
        std::fs::read_to_string(site.out("alpha/motd"))
            .is_ok_and(|m| m.contains("Lustre very slow"))
    });
    let (status, _) = get(&served, "/readyz");
    assert_eq!(status, 200);
    // Saved after the files are written.
    wait_for("the changed page's snapshot saved", 10, || {
        std::fs::metadata(&snapshot).is_ok_and(|m| m.modified().is_ok_and(|t| t > saved))
    });
}

#[test]
fn serve_polls_an_unchanged_v2_page_with_if_none_match_and_304s_keep_it_fresh() {
    unchanged_polls_ask_conditionally_and_keep_the_data_fresh(false);
}

#[test]
fn serve_polls_an_unchanged_v1_page_with_if_none_match_and_304s_keep_it_fresh() {
    unchanged_polls_ask_conditionally_and_keep_the_data_fresh(true);
}

#[test]
fn serve_with_validators_ignored_writes_nothing_while_the_bytes_are_the_same() {
    let fake = FakeStatuspage::spawn();
    fake.send_validators(Validators::Both, false);
    set_page(&fake, "Lustre slow");
    let site = site(&fake, false, "3s");
    let served = Served::spawn(site.serve_cmd());
    wait_for("the first render", 20, || site.out("alpha/motd").exists());
    wait_for("a conditional poll", 20, || {
        fake.conditional_requests() >= 3
    });
    std::thread::sleep(Duration::from_millis(300));
    let files = out_files(&site);
    let snapshot = site.path().join("state/status.snapshot.json");
    let saved = std::fs::metadata(&snapshot).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(fake.not_modified_answers(), 0);
    assert_eq!(
        get(&served, "/readyz").0,
        200,
        "the same bytes renew freshness"
    );
    assert_eq!(out_files(&site), files);
    assert_eq!(
        std::fs::metadata(&snapshot).unwrap().modified().unwrap(),
        saved
    );
}

#[test]
fn a_304_to_a_plain_request_blanks_nothing_and_is_reported() {
    let fake = FakeStatuspage::spawn();
    set_page(&fake, "Lustre slow");
    let site = site(&fake, false, "2s");
    let mut served = Served::spawn(site.serve_cmd());
    wait_for("the first render", 20, || site.out("alpha/motd").exists());
    served.kill();
    let good = site.read("alpha/motd");
    assert!(good.contains("Lustre slow"), "{good}");

    // A restart holds no validators: it asks plainly, and the server
    // answers 304 all the same.
    fake.fault(Fault::Status(304));
    let asked = fake.requests();
    let served = Served::spawn(site.serve_cmd());
    wait_for("polls answered 304", 20, || fake.requests() >= asked + 6);
    assert_eq!(fake.conditional_requests(), 0, "nothing to ask with");
    let motd = site.read("alpha/motd");
    assert!(motd.contains("Lustre slow"), "never blanked: {motd}");
    wait_for("the failure in /readyz", 20, || {
        let (status, body) = get(&served, "/readyz");
        status == 503 && body.contains("304")
    });
    assert!(site.read("alpha/motd").contains("Lustre slow"));
    let failed = metric(
        &served,
        "statusmotd_upstream_fetches_total{source=\"status\",result=\"status_304\"}",
    );
    assert!(failed.is_some_and(|n| n >= 1.0), "{failed:?}");
    assert!(served.log().contains("304"), "{}", served.log());

    // Once it answers properly, the page is read in full again.
    fake.clear_faults();
    wait_for("ready again", 20, || get(&served, "/readyz").0 == 200);
}

#[test]
fn a_webhook_fetch_asks_conditionally_and_a_304_writes_nothing() {
    let fake = FakeStatuspage::spawn();
    fake.send_validators(Validators::LastModified, true);
    set_page(&fake, "Lustre slow");
    let site = site_polled(&fake, false, "30m", "1h");
    let mut cmd = site.serve_cmd();
    cmd.env("RUST_LOG", "info,statusmotd=debug");
    let served = Served::spawn(cmd);
    wait_for("the first render", 20, || site.out("alpha/motd").exists());
    wait_for("the first fetch", 20, || fake.requests() == 3);
    let snapshot = site.path().join("state/status.snapshot.json");
    // Kept after the render, on a thread of its own: on a busy machine,
    // later than the MOTD.
    wait_for("the first snapshot kept", 20, || snapshot.exists());
    std::thread::sleep(Duration::from_millis(300));
    let files = out_files(&site);
    let saved = std::fs::metadata(&snapshot).unwrap().modified().unwrap();

    assert_eq!(webhook(&served), 202);
    wait_for("the webhook's fetch", 20, || {
        fake.not_modified_answers() == 3
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.requests(), 6, "{:?}", fake.request_log());
    assert_eq!(fake.conditional_requests(), 3);
    assert_eq!(out_files(&site), files, "no file touched");
    assert_eq!(
        std::fs::metadata(&snapshot).unwrap().modified().unwrap(),
        saved
    );
    let log = served.log();
    assert!(log.contains("unchanged upstream"), "said at debug: {log}");
    assert_eq!(
        log.matches("planning").count(),
        1,
        "only the first render planned: {log}"
    );

    // The webhook that comes with a change: it reaches the MOTD, and the
    // unchanged maintenance list answers 304 with its body held.
    set_page(&fake, "Lustre very slow");
    assert_eq!(webhook(&served), 202);
    wait_for("the change in the MOTD", 20, || {
        std::fs::read_to_string(site.out("alpha/motd"))
            .is_ok_and(|m| m.contains("Lustre very slow"))
    });
    assert_eq!(fake.requests(), 9, "v2 stays at 3 requests per refresh");
    assert_eq!(fake.not_modified_answers(), 4);
}

#[test]
fn a_template_that_prints_the_clock_still_follows_it_on_every_poll() {
    let fake = FakeStatuspage::spawn();
    fake.send_validators(Validators::ETag, true);
    set_page(&fake, "Lustre slow");
    let site = site(&fake, false, "30m");
    crate::common::use_motd_template(site.path(), "{{ cluster }} at {{ now }}\n");
    let _served = Served::spawn(site.serve_cmd());
    wait_for("the first render", 20, || site.out("alpha/motd").exists());
    wait_for("a poll answered 304", 20, || {
        fake.not_modified_answers() >= 3
    });
    let first = site.read("alpha/motd");
    // Upstream says "unchanged", yet the clock the MOTD prints moves on.
    wait_for("the MOTD to follow the clock", 10, || {
        site.read("alpha/motd") != first
    });
    assert!(site.read("alpha/motd").starts_with("alpha at "));
}
