//! The `alertmanager` source kind against a real Prometheus Alertmanager
//! (see `support/alertmanager.rs`), through the real binary: firing alerts
//! as incidents with their impact, silences as maintenance now and
//! upcoming, an ended alert shown as resolved across a restart and gone
//! after `recent_resolved`, Alertmanager down leaving every file as it was,
//! a cluster reading a Statuspage page and an Alertmanager at once, and
//! Alertmanager's own webhook refreshing `serve`.
//!
//! Tests sharing the one Alertmanager keep apart by label values: each
//! posts alerts with its own `test` label (and the source filters on it)
//! and names its own clusters.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use crate::common::{code, eventually, http_exchange, stderr, stdout, Served, Site};
use crate::fake::FakeStatuspage;
use crate::support::alertmanager::{self, Alertmanager};

/// A template that says what the default MOTD leaves out: each item's
/// impact and status, and the cluster's status.
const FACTS: &str = "status={{ status }}\n\
{% for i in incidents %}incident {{ i.name }} impact={{ i.impact }} status={{ i.status }} link={{ i.shortlink }}\n{% endfor %}\
{% for i in maintenance.active %}now {{ i.name }} on {{ i.components|join(\",\") }}: {{ i.latest.body|replace(\"\\n\", \" \") }}\n{% endfor %}\
{% for i in maintenance.upcoming %}upcoming {{ i.name }} on {{ i.components|join(\",\") }}\n{% endfor %}\
{% for i in resolved %}resolved {{ i.name }}\n{% endfor %}";

/// A site reading `am` as source `am`, filtered on `test="<test>"`, with
/// `settings` in `[settings]` and `clusters` after the source.
fn site(am_url: &str, test: &str, settings: &str, clusters: &str) -> Site {
    let site = Site::new(&format!(
        r#"[settings]
output_dir = "out"
state_dir = "state"
templates_dir = "templates"
timezone = "UTC"
request_timeout = "2s"
retries = 0
{settings}

[sources.am]
kind = "alertmanager"
url = "{am_url}"
matchers = ['test="{test}"']

{clusters}

[[outputs]]
template = "facts.txt.j2"
path = "{{cluster}}/facts.txt"
"#
    ));
    fs::create_dir_all(site.path().join("templates")).unwrap();
    fs::write(site.path().join("templates/facts.txt.j2"), FACTS).unwrap();
    site
}

fn time(offset: SignedDuration) -> String {
    (Timestamp::now() + offset).to_string()
}

/// An alert as Prometheus posts it, lasting an hour unless `ends` says.
fn alert(test: &str, name: &str, cluster: &str, severity: &str, summary: &str) -> Value {
    json!({
        "labels": {"alertname": name, "cluster": cluster, "severity": severity, "test": test},
        "annotations": {"summary": summary, "description": format!("{summary}: details.")},
        "generatorURL": format!("http://prometheus.example.org/graph?g0.expr={name}"),
        "startsAt": time(SignedDuration::from_mins(-10)),
        "endsAt": time(SignedDuration::from_hours(1)),
    })
}

fn render(site: &Site) -> std::process::Output {
    let out = site.run(&["render"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    out
}

#[test]
fn alerts_and_silences_become_incidents_and_maintenance_then_resolved_then_gone() {
    let am = alertmanager::shared();
    let test = "main";
    am.post_alerts(&json!([
        alert(
            test,
            "LoginDown",
            "archer2",
            "critical",
            "Login nodes are down"
        ),
        alert(
            test,
            "LustreSlow",
            "archer2",
            "warning",
            "Lustre /work is slow"
        ),
    ]));
    am.silence(&json!({
        "matchers": [{"name": "cluster", "value": "cirrus", "isRegex": false, "isEqual": true}],
        "startsAt": time(SignedDuration::ZERO),
        "endsAt": time(SignedDuration::from_hours(2)),
        "createdBy": "alice",
        "comment": "Kernel upgrade on the login nodes",
    }));
    am.silence(&json!({
        "matchers": [{"name": "cluster", "value": "archer2|cirrus", "isRegex": true, "isEqual": true}],
        "startsAt": time(SignedDuration::from_hours(24)),
        "endsAt": time(SignedDuration::from_hours(28)),
        "createdBy": "bob",
        "comment": "Network maintenance",
    }));
    let site = site(
        &am.url,
        test,
        "recent_resolved = \"8s\"",
        "[clusters.archer2]\ncomponents = [\"archer2\"]\n\n[clusters.cirrus]\ncomponents = [\"cirrus\"]\n",
    );

    render(&site);
    let motd = site.read("archer2/motd");
    assert!(motd.starts_with("== archer2: Major outage"), "{motd}");
    assert!(
        motd.contains("[INCIDENT] Login nodes are down (identified"),
        "{motd}"
    );
    assert!(motd.contains("[INCIDENT] Lustre /work is slow"), "{motd}");
    assert!(motd.contains("[UPCOMING] Network maintenance"), "{motd}");
    let facts = site.read("archer2/facts.txt");
    assert!(facts.contains("status=major_outage"), "{facts}");
    assert!(
        facts.contains(
            "incident Login nodes are down impact=major status=identified \
             link=http://prometheus.example.org/graph?g0.expr=LoginDown"
        ),
        "{facts}"
    );
    assert!(
        facts.contains("incident Lustre /work is slow impact=minor"),
        "{facts}"
    );
    assert!(
        facts.contains("upcoming Network maintenance on archer2"),
        "{facts}"
    );

    let cirrus = site.read("cirrus/motd");
    assert!(
        cirrus.starts_with("== cirrus: Under maintenance"),
        "{cirrus}"
    );
    assert!(
        cirrus.contains("[MAINTENANCE NOW] Kernel upgrade on the login nodes"),
        "{cirrus}"
    );
    assert!(!cirrus.contains("INCIDENT"), "{cirrus}");
    let facts = site.read("cirrus/facts.txt");
    assert!(
        facts.contains(
            "now Kernel upgrade on the login nodes on cirrus: \
             Kernel upgrade on the login nodes (by alice)"
        ),
        "{facts}"
    );
    assert!(
        facts.contains("upcoming Network maintenance on cirrus"),
        "{facts}"
    );

    // The warning ends, as Prometheus says so: an `endsAt` in the past.
    let mut ended = alert(
        test,
        "LustreSlow",
        "archer2",
        "warning",
        "Lustre /work is slow",
    );
    ended["endsAt"] = json!(time(SignedDuration::from_secs(-1)));
    am.post_alerts(&json!([ended]));
    let noticed = Instant::now();
    render(&site);
    let motd = site.read("archer2/motd");
    assert!(
        motd.contains("[RESOLVED] Lustre /work is slow (resolved"),
        "{motd}"
    );
    assert!(!motd.contains("[INCIDENT] Lustre"), "{motd}");
    assert!(motd.contains("[INCIDENT] Login nodes are down"), "{motd}");

    // Another process (a restart) still knows it resolved.
    render(&site);
    let motd = site.read("archer2/motd");
    assert!(motd.contains("[RESOLVED] Lustre /work is slow"), "{motd}");
    assert!(
        noticed.elapsed() < Duration::from_secs(8),
        "too slow to test the window"
    );

    // Past `recent_resolved`: gone, and forgotten.
    std::thread::sleep(Duration::from_secs(9).saturating_sub(noticed.elapsed()));
    render(&site);
    let motd = site.read("archer2/motd");
    assert!(!motd.contains("Lustre"), "{motd}");
    assert!(motd.contains("[INCIDENT] Login nodes are down"), "{motd}");
    let memory = fs::read_to_string(site.path().join("state/am.alertmanager.json")).unwrap();
    assert!(!memory.contains("Lustre"), "{memory}");
}

/// Every file under `dir` with its bytes and mtime.
fn files(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let meta = fs::metadata(&path).unwrap();
                out.insert(
                    path.clone(),
                    (fs::read(&path).unwrap(), meta.mtime(), meta.mtime_nsec()),
                );
            }
        }
    }
    out
}

#[test]
fn alertmanager_down_leaves_every_file_as_it_was() {
    let mut am = Alertmanager::start(None);
    let test = "down";
    am.post_alerts(&json!([alert(
        test,
        "NodeDown",
        "down-1",
        "critical",
        "Nodes are down"
    )]));
    let site = site(
        &am.url,
        test,
        "",
        "[clusters.down-1]\ncomponents = [\"down-1\"]\n",
    );
    render(&site);
    assert!(site
        .read("down-1/motd")
        .contains("[INCIDENT] Nodes are down"));
    let before = files(&site.path().join("out"));

    am.stop();
    std::thread::sleep(Duration::from_millis(1100));
    let out = site.run(&["render"]);
    let err = stderr(&out);
    assert!(err.contains("could not connect"), "{err}");
    assert_eq!(files(&site.path().join("out")), before, "{err}");

    // A closed port from the start: no data, and nothing written.
    let port = alertmanager::free_port();
    let closed = site_at(&format!("http://127.0.0.1:{port}"), test);
    let out = closed.run(&["render"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(!closed.out("down-1/motd").exists());
}

fn site_at(url: &str, test: &str) -> Site {
    site(
        url,
        test,
        "",
        "[clusters.down-1]\ncomponents = [\"down-1\"]\n",
    )
}

#[test]
fn a_cluster_reads_a_statuspage_page_and_an_alertmanager_in_one_motd() {
    let am = alertmanager::shared();
    let test = "mixed";
    am.post_alerts(&json!([alert(
        test,
        "DiskFull",
        "mix-1",
        "warning",
        "Scratch is nearly full"
    )]));
    let page = crate::fake::site_page_with_one_incident();
    let site = Site::new(&format!(
        r#"[settings]
timezone = "UTC"
retries = 0

[sources.site]
kind = "statuspage-public"
url = "{page}"

[sources.prom]
kind = "alertmanager"
url = "{am}"
matchers = ['test="{test}"']

[clusters.mix-1]
source = "site"
components = ["SAFE"]

[clusters.mix-1.also.prom]
components = ["mix-1"]
"#,
        page = page.url(),
        am = am.url,
    ));
    render(&site);
    let motd = site.read("mix-1/motd");
    assert!(
        motd.contains("[INCIDENT] Authentication service degraded"),
        "{motd}"
    );
    assert!(
        motd.contains("[INCIDENT] [Alertmanager] Scratch is nearly full"),
        "{motd}"
    );
    assert!(motd.contains("Affects: mix-1"), "{motd}");
    let items: Vec<String> = fs::read_dir(site.out("mix-1/items"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(items.contains(&"incident-inc1.txt".to_owned()), "{items:?}");
    assert!(
        items.iter().any(|i| i.starts_with("incident-prom-")),
        "{items:?}"
    );
}

#[test]
fn an_alertmanager_webhook_refreshes_the_alertmanager_sources() {
    let test = "hook";
    let token = "hook-token-4f8a";
    let (am_port, serve_port) = (alertmanager::free_port(), alertmanager::free_port());
    let page = FakeStatuspage::spawn();
    page.set_v2_page(
        json!({"id": "sitepage", "name": "Site"}),
        json!([{"id": "c1", "name": "SAFE", "status": "operational"}]),
        json!([]),
        json!([]),
    );
    let site = Site::new(&format!(
        r#"[settings]
timezone = "UTC"
retries = 0
poll_interval = "1h"
debounce = "0s"

[sources.site]
kind = "statuspage-public"
url = "{page}"

[sources.prom]
kind = "alertmanager"
url = "http://127.0.0.1:{am_port}"
matchers = ['test="{test}"']

[server]
webhook_token = {{ file = "webhook-token" }}

[clusters.hook-1]
source = "prom"
components = ["hook-1"]

[clusters.hook-1.also.site]
components = ["SAFE"]
"#,
        page = page.url(),
    ));
    fs::write(site.path().join("webhook-token"), token).unwrap();
    let am = Alertmanager::start_on(
        am_port,
        Some(&format!("http://127.0.0.1:{serve_port}/webhook/{token}")),
    )
    .unwrap_or_else(|log| panic!("Alertmanager did not start: {log}"));

    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("statusmotd"));
    cmd.arg("serve")
        .arg("--config")
        .arg(site.path().join("mapping.toml"))
        .args(["--listen", &format!("127.0.0.1:{serve_port}")])
        .env("RUST_LOG", "info")
        .env_remove("STATUSMOTD_CONFIG");
    let served = Served::spawn(cmd);
    eventually("the first render", 20, || {
        site.out("hook-1/motd").exists() && page.requests_to("/api/v2/summary.json") > 0
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fs::read_to_string(site.out("hook-1/motd")).unwrap(), "");
    let page_requests = page.requests_to("/api/v2/summary.json");

    // Alertmanager sends the new alert to the webhook; nothing else asks
    // for a fetch within the hour.
    am.post_alerts(&json!([alert(
        test,
        "PbsDown",
        "hook-1",
        "critical",
        "The scheduler is down"
    )]));
    eventually("the alert in the MOTD", 20, || {
        fs::read_to_string(site.out("hook-1/motd"))
            .is_ok_and(|m| m.contains("[INCIDENT] The scheduler is down"))
    });
    let log = served.log();
    assert!(log.contains("webhook accepted"), "{log}");
    assert_eq!(
        page.requests_to("/api/v2/summary.json"),
        page_requests,
        "an Alertmanager webhook refreshes the alertmanager sources only"
    );

    // The answer names the sources it refreshes.
    let body =
        json!({"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "statusmotd",
                      "alerts": [], "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                      "externalURL": "http://am", "truncatedAlerts": 0})
        .to_string();
    let request = format!(
        "POST /webhook/{token} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, answer) =
        http_exchange(served.addr(), request.as_bytes(), Duration::from_secs(5)).unwrap();
    assert_eq!(status, 202, "{answer}");
    assert!(answer.contains(r#""sources":["prom"]"#), "{answer}");
}

#[test]
fn a_quiet_cluster_is_no_mapping_error_but_a_name_outside_declared_components_is() {
    let am = alertmanager::shared();
    let mapping = |declared: &str, entry: &str| {
        Site::new(&format!(
            r#"[sources.am]
kind = "alertmanager"
url = "{}"
matchers = ['test="quiet"']
{declared}

[clusters.quiet]
components = ["{entry}"]
"#,
            am.url
        ))
    };
    // No alert names `quiet-1`: a healthy cluster, operational.
    let site = mapping("", "quiet-1");
    let out = site.run(&["mapping", "check"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let out = site.run(&["render"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(site.read("quiet/motd"), "");

    // Declared components: a typo is flagged, with the declared names.
    let site = mapping("components = [\"quiet-1\", \"quiet-2\"]", "quiet-l");
    let out = site.run(&["mapping", "check"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(code(&out), 3, "{text}");
    assert!(
        text.contains("component `quiet-l` matches no component of source `am`"),
        "{text}"
    );
    assert!(text.contains("`quiet-1`"), "{text}");
    let site = mapping("components = [\"quiet-1\", \"quiet-2\"]", "quiet-2");
    let out = site.run(&["mapping", "check"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn credentials_are_sent_and_never_shown() {
    let fake = FakeStatuspage::spawn();
    fake.set_raw("/api/v2/alerts", 200, "[]");
    fake.set_raw("/api/v2/silences", 200, "[]");
    let token = "am-token-9Qz7Lk";
    let with_auth = |auth: &str| {
        let site = Site::new(&format!(
            "[settings]\nretries = 0\n[sources.am]\nkind = \"alertmanager\"\nurl = \"{}\"\n{auth}\n\
             [clusters.c]\ncomponents = [\"c\"]\n",
            fake.url()
        ));
        fs::write(site.path().join("secret"), format!("{token}\n")).unwrap();
        site
    };
    let site = with_auth("bearer_token = { file = \"secret\" }");
    render(&site);
    assert_eq!(fake.last_authorization(), Some(format!("Bearer {token}")));

    let basic = with_auth("basic_auth = { username = \"motd\", password = { file = \"secret\" } }");
    render(&basic);
    // base64("motd:am-token-9Qz7Lk")
    assert_eq!(
        fake.last_authorization().as_deref(),
        Some("Basic bW90ZDphbS10b2tlbi05UXo3TGs=")
    );

    // Refused: a failure to notice (exit 1) saying so, never the secret.
    fake.set_raw("/api/v2/alerts", 401, "unauthorized");
    let out = site.run(&["render"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains("answered 401"), "{err}");
    assert!(
        err.contains("Alertmanager refused the credentials"),
        "{err}"
    );
    assert!(
        !err.contains(token) && !stdout(&out).contains(token),
        "{err}"
    );
    let state = fs::read_dir(site.path().join("state")).unwrap();
    for file in state {
        let text = fs::read_to_string(file.unwrap().path()).unwrap();
        assert!(!text.contains(token), "{text}");
    }
}
