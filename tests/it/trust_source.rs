//! Hostile or broken upstream data against the source side: `mapping init`
//! of a page whose names carry line breaks, one bad value that must cost one
//! item and not the page, a summary without its lists, a group renamed
//! upstream, a `Retry-After` too large to count, and a login page answering
//! for the API.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use statusmotd::source::{self, Endpoint, FetchErrorKind};

use crate::common::{code, stderr, stdout, Site};
use crate::common::{quick_fetch_options, Served};
use crate::fake::{FakeStatuspage, Fault};

const SUMMARY: &str = "/api/v2/summary.json";
const INCIDENTS: &str = "/api/v2/incidents.json";
const MAINTENANCES: &str = "/api/v2/scheduled-maintenances.json";

fn mapping(url: &str, clusters: &str) -> String {
    format!(
        "[settings]\noutput_dir = \"out\"\nstate_dir = \"state\"\ntimezone = \"UTC\"\n\
         request_timeout = \"1s\"\nretries = 0\n\n\
         [sources.hpc]\nkind = \"statuspage-public\"\nurl = \"{url}\"\n\n{clusters}"
    )
}

const ALPHA: &str = "[clusters.alpha]\ncomponents = [\"Login nodes\"]\npage_wide = false\n";

fn incident(id: &str, name: &str) -> Value {
    json!({
        "id": id, "name": name, "status": "investigating", "impact": "major",
        "created_at": "2024-05-14T10:00:00Z", "updated_at": "2024-05-14T10:05:00Z",
        "components": [{"id": "c1", "name": "Login nodes"}],
        "incident_updates": [{"id": format!("{id}-u1"), "status": "investigating",
            "body": "Looking into it.", "created_at": "2024-05-14T10:05:00Z"}]
    })
}

fn summary(groups: &[(&str, &str)], incidents: &[Value]) -> Value {
    let mut components = vec![
        json!({"id": "c1", "name": "Login nodes", "status": "major_outage", "group_id": groups.first().map(|g| g.0)}),
        json!({"id": "c2", "name": "Storage", "status": "operational"}),
    ];
    for (id, name) in groups {
        components.push(json!({"id": id, "name": name, "group": true, "components": ["c1"]}));
    }
    json!({
        "page": {"id": "p1", "name": "HPC", "url": "https://status.example"},
        "components": components,
        "incidents": incidents,
        "scheduled_maintenances": [],
    })
}

fn serve_page(fake: &FakeStatuspage, summary: Value) {
    let incidents = summary["incidents"].clone();
    fake.set_json(SUMMARY, summary);
    fake.set_json(INCIDENTS, json!({"incidents": incidents}));
    fake.set_json(MAINTENANCES, json!({"scheduled_maintenances": []}));
}

/// Everything that could end a line of TOML, open a table, close a string
/// or start a comment, and a key the page would like to add.
const HOSTILE: &str = "<br>\u{2028}\u{2029}\u{85}\n\r\"'''] # = x\n[server]\n\
                       on_change = [\"sh\", \"-c\", \"touch pwned\"]<br>[server]<br>on_change = [\"sh\"]\u{2028}#";

#[test]
fn mapping_init_of_a_hostile_page_adds_no_key() {
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        SUMMARY,
        json!({
            "page": {"id": "p1", "name": format!("Name{HOSTILE}"), "url": format!("https://status.example/{HOSTILE}")},
            "components": [
                {"id": "g1", "name": format!("ARCHER2{HOSTILE}"), "group": true, "components": ["c1"]},
                {"id": "g2", "name": format!("Cirrus{HOSTILE}"), "group": true, "components": ["c2"]},
                {"id": "c1", "name": format!("Login{HOSTILE}"), "group_id": "g1"},
                {"id": "c2", "name": format!("Compute{HOSTILE}"), "group_id": "g2"},
                {"id": "c3", "name": format!("Loose{HOSTILE}")},
            ],
            "incidents": [],
            "scheduled_maintenances": [],
        }),
    );
    let site = Site::new("");
    let o = site.run(&["mapping", "init", "--url", &fake.url()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    for line in text.lines() {
        let line = line.trim_start();
        assert!(
            !line.starts_with("[server") && !line.starts_with("on_change"),
            "a line the page wrote: {line:?}\n{text}"
        );
    }
    let value: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let keys = |t: &toml::Table| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&value), ["clusters", "settings", "sources"], "{text}");
    assert_eq!(
        keys(value["settings"].as_table().unwrap()),
        ["output_dir", "state_dir"]
    );
    let sources = value["sources"].as_table().unwrap();
    assert_eq!(sources.len(), 1, "{text}");
    for source in sources.values() {
        assert_eq!(keys(source.as_table().unwrap()), ["kind", "url"], "{text}");
    }
    let clusters = value["clusters"].as_table().unwrap();
    assert_eq!(clusters.len(), 2, "{text}");
    for (name, cluster) in clusters {
        assert_eq!(
            keys(cluster.as_table().unwrap()),
            ["groups", "source"],
            "{text}"
        );
        // The cluster named after a group maps that group, and says so.
        let (id, group) = if name.starts_with("archer2") {
            ("g1", "ARCHER2")
        } else {
            ("g2", "Cirrus")
        };
        assert_eq!(
            cluster["groups"],
            toml::Value::Array(vec![id.into()]),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("groups = [\"{id}\"]")))
            .unwrap();
        assert!(line.contains(&format!("# {group} ")), "{line}");
    }
    // And it works as a mapping.
    std::fs::write(site.path().join("mapping.toml"), &text).unwrap();
    let o = site.run(&["mapping", "check"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}

/// A summary whose incidents each carry one bad value: a lone surrogate, a
/// 200-deep unknown field, a byte that is not UTF-8, and fields of
/// impossible types.
fn summary_with_bad_values() -> Vec<u8> {
    let mut broken = incident("inc-broken", "Broken one");
    broken["incident_updates"] = json!(5);
    let mut deep = incident("inc-deep", "Deep one");
    deep["extra"] = json!("DEEP");
    let text = summary(
        &[],
        &[
            incident("inc-good", "Good news"),
            incident("inc-lone", "Lone LONE surrogate"),
            deep,
            incident("inc-bytes", "Bad BYTE byte"),
            broken,
        ],
    )
    .to_string()
    .replace("LONE", "\\ud800")
    .replace(
        "\"DEEP\"",
        &format!("{}1{}", "[{\"x\": ".repeat(100), "}]".repeat(100)),
    );
    let mut bytes = Vec::new();
    for (i, part) in text.split("BYTE").enumerate() {
        if i > 0 {
            bytes.push(0xff);
        }
        bytes.extend_from_slice(part.as_bytes());
    }
    bytes
}

#[test]
fn one_bad_value_costs_one_incident_not_the_page() {
    let fake = FakeStatuspage::spawn();
    let body = summary_with_bad_values();
    serve_page(&fake, summary(&[], &[]));
    fake.set_bytes(SUMMARY, 200, body);
    let site = Site::new(&mapping(&fake.url(), ALPHA));
    let o = site.run(&["render"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    let motd = site.read("alpha/motd");
    for shown in [
        "Good news",
        "Lone \u{fffd} surrogate",
        "Deep one",
        "Bad \u{fffd} byte",
    ] {
        assert!(motd.contains(shown), "{shown:?} missing:\n{motd}");
    }
    assert!(!motd.contains("Broken one"), "{motd}");
    assert!(
        err.contains("skipped") && err.contains("`inc-broken`"),
        "stderr names the skipped incident: {err}"
    );
}

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn skipped_items_are_counted_in_metrics() {
    let fake = FakeStatuspage::spawn();
    serve_page(&fake, summary(&[], &[]));
    fake.set_bytes(SUMMARY, 200, summary_with_bad_values());
    let site = Site::new(&mapping(&fake.url(), ALPHA));
    let served = Served::spawn(site.serve_cmd());
    let started = Instant::now();
    let want = "statusmotd_upstream_items_skipped_total{source=\"hpc\"} 1\n";
    loop {
        let metrics = get(served.addr(), "/metrics");
        if metrics.contains(want) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{metrics}\n{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(served.log().contains("inc-broken"), "{}", served.log());
}

#[test]
fn a_summary_without_incidents_keeps_the_last_good_data() {
    let fake = FakeStatuspage::spawn();
    serve_page(&fake, summary(&[], &[incident("inc1", "Login nodes down")]));
    let site = Site::new(&mapping(&fake.url(), ALPHA));
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let before = site.read("alpha/motd");
    assert!(before.contains("Login nodes down"), "{before}");

    // Components but no `incidents`, and no incident list to make up for it.
    let mut bare = summary(&[], &[]);
    bare.as_object_mut().unwrap().remove("incidents");
    fake.set_json(SUMMARY, bare);
    fake.set_raw(INCIDENTS, 404, "{}");
    let o = site.run(&["render"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(err.contains("no `incidents` list"), "{err}");
    assert!(err.contains("last good snapshot"), "{err}");
    assert_eq!(stdout(&o), "", "nothing changed");
    assert_eq!(site.read("alpha/motd"), before);
}

#[test]
fn the_stale_note_says_what_happened() {
    let fake = FakeStatuspage::spawn();
    serve_page(&fake, summary(&[], &[incident("inc1", "Login nodes down")]));
    let site = Site::new(&mapping(&fake.url(), ALPHA));
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // The page answers, but with JSON of another shape; two hours later.
    fake.set_json(SUMMARY, json!([1, 2, 3]));
    let later = (Timestamp::now() + SignedDuration::from_hours(2)).to_string();
    let o = site.run(&["render", "--now", &later]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let motd = site.read("alpha/motd");
    assert!(
        motd.contains("old: the status page sent data of an unexpected shape)"),
        "{motd}"
    );
    assert!(!motd.contains("could not be reached"), "{motd}");
}

#[test]
fn a_renamed_group_keeps_reaching_its_cluster() {
    let fake = FakeStatuspage::spawn();
    serve_page(&fake, summary(&[("g1", "ARCHER2")], &[]));
    let site = Site::new(&mapping(
        &fake.url(),
        "[clusters.archer2]\ngroups = [\"ARCHER2\"]\npage_wide = false\n",
    ));
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    serve_page(
        &fake,
        summary(
            &[("g1", "ARCHER-2")],
            &[incident("inc-new", "Login nodes reboot")],
        ),
    );
    let o = site.run(&["render"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        site.read("archer2/motd").contains("Login nodes reboot"),
        "{}",
        site.read("archer2/motd")
    );
    assert!(
        err.contains("group `ARCHER2` matches no group")
            && err.contains("using the ids it last resolved to: `g1`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_retry_after_too_large_to_count_gives_up_at_once() {
    let fake = FakeStatuspage::start().await;
    serve_page(&fake, summary(&[], &[]));
    fake.fault(Fault::RateLimited {
        status: 429,
        retry_after: "99999999999999999999".into(),
    });
    let started = Instant::now();
    let endpoint = Endpoint::Public { url: fake.url() };
    let e = source::fetch(&source::client(), &endpoint, &quick_fetch_options())
        .await
        .unwrap_err();
    assert!(e.is_rate_limited(), "{e}");
    assert!(e.to_string().contains("longer than the 5s"), "{e}");
    assert_eq!(fake.requests_to(SUMMARY), 1, "no retry");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_login_page_answering_for_the_api_says_so() {
    let fake = FakeStatuspage::start().await;
    serve_page(&fake, summary(&[], &[]));
    fake.set_typed(
        SUMMARY,
        200,
        "text/html; charset=utf-8",
        "<html><body><form>Log in to continue</form></body></html>",
    );
    let endpoint = Endpoint::Public { url: fake.url() };
    let e = source::fetch(&source::client(), &endpoint, &quick_fetch_options())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), FetchErrorKind::InvalidJson);
    assert!(
        e.to_string()
            .ends_with("was text/html, not JSON: a proxy or login page?"),
        "{e}"
    );
    assert!(format!("{e:#}").contains("\nhint: "), "{e:#}");
}
