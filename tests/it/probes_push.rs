//! Probes pushing their transitions to the site's Statuspage page
//! (`statuspage = { source, component, incident }`): `statusmotd probe`
//! and `serve` against the in-process fake Statuspage, which applies the
//! writes to what it serves and records when each request came.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{code, stderr, stdout, Site};
use crate::fake::{FakeStatuspage, Fault};
use crate::support::probes::TcpToggle;

/// The API key the site reads from the environment; never in any output.
const KEY: &str = "sk-push-test-4f1d9c0b7e";
const KEY_ENV: &str = "STATUSMOTD_TEST_PUSH_KEY";

/// A site whose probe `lustre` (TCP, thresholds 1/1) pushes to the
/// component "Lustre /work" of page `pg1` on `fake`.
fn site(fake: &FakeStatuspage, port: u16, push: &str) -> Site {
    Site::new(&format!(
        r#"
[settings]
timezone = "UTC"
request_timeout = "3s"

[sources.hpc]
kind = "statuspage"
page_id = "pg1"
api_key = {{ env = "{KEY_ENV}" }}
api_base = "{}/v1"

[sources.checks]
kind = "probes"
timeout = "2s"
failure_threshold = 1
success_threshold = 1

[[sources.checks.probe]]
name = "lustre"
group = "Checks"
tcp = "127.0.0.1:{port}"
statuspage = {push}

[clusters.alpha]
source = "checks"
groups = ["Checks"]
"#,
        fake.url()
    ))
}

const WITH_INCIDENT: &str = r#"{ source = "hpc", component = "Lustre /work", incident = true }"#;

/// The page: the component, operational, and `unresolved` incidents.
fn page(status: &str, unresolved: Value) -> FakeStatuspage {
    let fake = FakeStatuspage::spawn();
    fake.set_v1_page(
        "pg1",
        json!([
            {"id": "c0", "name": "Login nodes", "status": "operational"},
            {"id": "c1", "name": "Lustre /work", "status": status},
        ]),
        unresolved,
    );
    fake
}

/// Runs `statusmotd probe`; its exit code and stdout + stderr, checked for
/// the key.
fn probe(site: &Site) -> (i32, String, String) {
    let o = site
        .cmd()
        .env(KEY_ENV, KEY)
        .env("RUST_LOG", "statusmotd=info")
        .arg("probe")
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(matches!(code(&o), 0 | 1), "probe failed: {out}{err}");
    assert!(
        !out.contains(KEY) && !err.contains(KEY),
        "the key leaked: {out}{err}"
    );
    (code(&o), out, err)
}

/// The component's status as the fake serves it now.
fn served_status(fake: &FakeStatuspage) -> String {
    fake.served("/v1/pages/pg1/components").unwrap()[1]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn unresolved(fake: &FakeStatuspage) -> Vec<Value> {
    fake.served("/v1/pages/pg1/incidents/unresolved")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

fn writes(fake: &FakeStatuspage) -> Vec<(String, String)> {
    fake.writes()
        .into_iter()
        .map(|w| (w.method, w.path))
        .collect()
}

/// Runs `statusmotd probe` as [`probe`] does, and checks that every
/// request of that one process came at least ~1 s after the one before it:
/// one key, one request a second.
fn probe_paced(site: &Site, fake: &FakeStatuspage) -> (i32, String, String) {
    let before = fake.arrivals().len();
    let ran = probe(site);
    let arrivals = fake.arrivals();
    for pair in arrivals[before..].windows(2) {
        assert_eq!(
            pair[1].authorization.as_deref(),
            Some(format!("OAuth {KEY}").as_str())
        );
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(900),
            "`{}` came {gap:?} after `{}`",
            pair[1].request,
            pair[0].request
        );
    }
    ran
}

#[test]
fn one_patch_per_transition_and_an_incident_opened_and_resolved_by_id() {
    let fake = page("operational", json!([]));
    let port = TcpToggle::open();
    let site = site(&fake, port.addr.port(), WITH_INCIDENT);

    let (exit, _, _) = probe(&site);
    assert_eq!(exit, 0);
    assert!(writes(&fake).is_empty(), "no transition, no push");
    assert_eq!(fake.requests(), 0, "nothing to push: the page is not read");

    port.close();
    let (exit, out, _) = probe_paced(&site, &fake);
    assert_eq!(exit, 1);
    assert!(out.contains("lustre: statuspage `hpc`: sent"), "{out}");
    let w = fake.writes();
    assert_eq!(
        writes(&fake),
        [
            ("PATCH".into(), "/v1/pages/pg1/components/c1".into()),
            ("POST".into(), "/v1/pages/pg1/incidents".into()),
        ]
    );
    assert_eq!(w[0].body, json!({"component": {"status": "major_outage"}}));
    let incident = &w[1].body["incident"];
    assert_eq!(incident["name"], "lustre");
    assert_eq!(incident["status"], "investigating");
    assert_eq!(incident["component_ids"], json!(["c1"]));
    assert_eq!(incident["components"], json!({"c1": "major_outage"}));
    assert_eq!(
        incident["metadata"],
        json!({"statusmotd": {"probe": "lustre"}})
    );
    let reason = incident["body"].as_str().unwrap();
    assert!(
        !reason.is_empty() && !reason.contains('\n'),
        "the reason, one line: {reason:?}"
    );
    assert_eq!(served_status(&fake), "major_outage");
    let opened = unresolved(&fake);
    assert_eq!(opened.len(), 1);
    let id = opened[0]["id"].as_str().unwrap().to_owned();

    let (exit, out, _) = probe(&site);
    assert_eq!(exit, 1);
    assert_eq!(fake.writes().len(), 2, "still down: nothing pushed: {out}");

    port.reopen();
    let (exit, out, _) = probe_paced(&site, &fake);
    assert_eq!(exit, 0);
    assert!(out.contains("resolved"), "{out}");
    let w = fake.writes();
    assert_eq!(
        writes(&fake)[2..],
        [
            ("PATCH".into(), "/v1/pages/pg1/components/c1".into()),
            ("PATCH".into(), format!("/v1/pages/pg1/incidents/{id}")),
        ],
        "the same incident, by its id"
    );
    assert_eq!(w[2].body, json!({"component": {"status": "operational"}}));
    assert_eq!(w[3].body["incident"]["status"], "resolved");
    assert_eq!(served_status(&fake), "operational");
    assert!(unresolved(&fake).is_empty());

    let (exit, _, _) = probe(&site);
    assert_eq!(exit, 0);
    assert_eq!(fake.writes().len(), 4, "up and steady: nothing pushed");
}

#[test]
fn a_probe_whose_output_is_lines_and_escapes_sends_one_clean_line() {
    use std::os::unix::fs::PermissionsExt as _;
    let fake = page("operational", json!([]));
    let site = site(&fake, 9, WITH_INCIDENT);
    let plugin = site.path().join("lustre-check");
    let mapping = std::fs::read_to_string(site.path().join("mapping.toml")).unwrap();
    std::fs::write(
        site.path().join("mapping.toml"),
        mapping.replace(
            "tcp = \"127.0.0.1:9\"",
            &format!("command = [\"{}\"]", plugin.display()),
        ),
    )
    .unwrap();
    let write_plugin = |body: &str| {
        std::fs::write(&plugin, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write_plugin("echo OK; exit 0");
    probe(&site);
    write_plugin("printf '\\033[2J\\033]0;x\\007CRITICAL /work full\\nsecond line\\r\\n'; exit 2");
    let (exit, out, _) = probe(&site);
    assert_eq!(exit, 1, "{out}");
    let posted = fake
        .writes()
        .into_iter()
        .find(|w| w.method == "POST")
        .unwrap_or_else(|| panic!("no incident opened: {out}"));
    let body = posted.body["incident"]["body"].as_str().unwrap().to_owned();
    assert!(body.contains("CRITICAL /work full"), "{body:?}");
    assert!(
        !body.chars().any(char::is_control),
        "one line, no escapes: {body:?}"
    );
}

#[test]
fn the_pushes_of_all_probes_share_one_request_a_second() {
    let fake = page("operational", json!([]));
    let (lustre, login) = (TcpToggle::open(), TcpToggle::open());
    let site = site(&fake, lustre.addr.port(), WITH_INCIDENT);
    let mapping = std::fs::read_to_string(site.path().join("mapping.toml")).unwrap();
    std::fs::write(
        site.path().join("mapping.toml"),
        mapping.replace(
            "[clusters.alpha]",
            &format!(
                "[[sources.checks.probe]]\nname = \"login\"\ngroup = \"Checks\"\n\
                 tcp = \"127.0.0.1:{}\"\n\
                 statuspage = {{ source = \"hpc\", component = \"Login nodes\" }}\n\n[clusters.alpha]",
                login.addr.port()
            ),
        ),
    )
    .unwrap();
    probe(&site);
    lustre.close();
    login.close();
    let started = fake.arrivals().len();
    let (_, out, _) = probe_paced(&site, &fake);
    assert_eq!(out.matches(": sent: ").count(), 2, "{out}");
    let mut pushed = writes(&fake);
    pushed.sort();
    assert_eq!(
        pushed,
        [
            ("PATCH".into(), "/v1/pages/pg1/components/c0".into()),
            ("PATCH".into(), "/v1/pages/pg1/components/c1".into()),
            ("POST".into(), "/v1/pages/pg1/incidents".into()),
        ]
    );
    assert_eq!(
        fake.arrivals().len() - started,
        5,
        "the page read once for both, then three writes"
    );
}

#[test]
fn without_incident_only_the_component_changes() {
    let fake = page("operational", json!([]));
    let port = TcpToggle::open();
    let site = site(
        &fake,
        port.addr.port(),
        r#"{ source = "hpc", component = "Lustre /work" }"#,
    );
    probe(&site);
    port.close();
    probe(&site);
    port.reopen();
    probe(&site);
    assert_eq!(
        writes(&fake),
        [
            ("PATCH".into(), "/v1/pages/pg1/components/c1".into()),
            ("PATCH".into(), "/v1/pages/pg1/components/c1".into()),
        ],
        "`incident` defaults to false"
    );
}

#[test]
fn nothing_changes_while_a_person_holds_the_component() {
    let theirs = json!([{
        "id": "person1", "name": "Lustre slow, we are on it", "status": "identified",
        "impact": "minor", "created_at": "2026-01-01T00:00:00Z",
        "components": [{"id": "c1", "name": "Lustre /work"}],
        "metadata": {},
        "incident_updates": [],
    }]);
    for (status, open, why) in [
        ("under_maintenance", json!([]), "under maintenance"),
        ("degraded_performance", theirs, "not statusmotd's"),
    ] {
        let fake = page(status, open.clone());
        let port = TcpToggle::open();
        let site = site(&fake, port.addr.port(), WITH_INCIDENT);
        probe(&site);
        port.close();
        let (_, out, err) = probe(&site);
        assert!(
            out.contains("skipped_person") && out.contains(why),
            "said on the output: {out}"
        );
        assert!(
            err.contains("WARN") && err.contains("a person is handling it"),
            "and in the log: {err}"
        );
        assert!(fake.writes().is_empty(), "changed nothing");
        assert_eq!(served_status(&fake), status);
        assert_eq!(unresolved(&fake), open.as_array().unwrap().clone());
        let (_, out, _) = probe(&site);
        assert!(fake.writes().is_empty(), "the push was dropped: {out}");
    }
}

#[test]
fn an_unknown_component_is_said_and_skipped() {
    let fake = page("operational", json!([]));
    let port = TcpToggle::open();
    let site = site(
        &fake,
        port.addr.port(),
        r#"{ source = "hpc", component = "Lustre /scratch", incident = true }"#,
    );
    probe(&site);
    port.close();
    let (exit, out, _) = probe(&site);
    assert_eq!(exit, 1);
    assert!(
        out.contains("skipped_unknown_component") && out.contains("`Lustre /scratch`"),
        "{out}"
    );
    assert!(fake.writes().is_empty());
}

#[test]
fn an_id_from_the_page_that_is_not_a_plain_id_is_not_written_to() {
    // `components/c0/../c0` would be the other component's address.
    let fake = FakeStatuspage::spawn();
    fake.set_v1_page(
        "pg1",
        json!([
            {"id": "c0", "name": "Login nodes", "status": "operational"},
            {"id": "c0/../c0", "name": "Lustre /work", "status": "operational"},
        ]),
        json!([]),
    );
    let port = TcpToggle::open();
    let site = site(&fake, port.addr.port(), WITH_INCIDENT);
    probe(&site);
    port.close();
    let (exit, out, _) = probe(&site);
    assert_eq!(exit, 1);
    assert!(
        out.contains("skipped_unknown_component") && out.contains("no usable id"),
        "{out}"
    );
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[test]
fn rate_limited_answers_are_waited_out_and_the_push_kept() {
    let fake = page("operational", json!([]));
    let port = TcpToggle::open();
    let site = site(&fake, port.addr.port(), WITH_INCIDENT);
    probe(&site);
    for (status, up) in [(429, false), (420, true)] {
        if up {
            port.reopen();
        } else {
            port.close();
        }
        let before = fake.arrivals().len();
        let logged = fake.request_log().len();
        fake.fault_at(
            "PATCH /v1/pages/pg1/components/c1",
            Fault::RateLimited {
                status,
                retry_after: "3".into(),
            },
        );
        // Only the first PATCH is refused: clear the fault once it was
        // answered (the fake logs a request as it picks its fault).
        let cleared = std::thread::scope(|s| {
            s.spawn(|| {
                crate::common::eventually("the rate-limited PATCH", 20, || {
                    fake.request_log()[logged..]
                        .iter()
                        .any(|r| r.starts_with("PATCH"))
                });
                fake.clear_faults();
            });
            probe_paced(&site, &fake)
        });
        let (_, out, _) = cleared;
        assert!(out.contains("sent"), "{status}: {out}");
        let arrivals = fake.arrivals();
        let patches: Vec<_> = arrivals[before..]
            .iter()
            .filter(|a| a.request == "PATCH /v1/pages/pg1/components/c1")
            .collect();
        assert_eq!(patches.len(), 2, "{status}: refused once, then sent");
        let waited = patches[1].at.duration_since(patches[0].at);
        assert!(
            waited >= Duration::from_millis(2900),
            "{status}: the next request came {waited:?} after a Retry-After of 3 s"
        );
    }
    assert_eq!(served_status(&fake), "operational");
    assert!(unresolved(&fake).is_empty());
    assert_eq!(fake.writes().len(), 4, "PATCH, POST, PATCH, PATCH");
}

#[test]
fn a_pending_push_is_sent_once_after_a_restart() {
    let fake = page("operational", json!([]));
    let port = TcpToggle::open();
    let site = site(&fake, port.addr.port(), WITH_INCIDENT);
    probe(&site);

    // The page is down when the probe goes down: the push is kept.
    fake.fault(Fault::Status(500));
    port.close();
    let (exit, out, _) = probe(&site);
    assert_eq!(exit, 1);
    assert!(out.contains("retrying"), "{out}");
    assert!(fake.writes().is_empty());
    let state = std::fs::read_to_string(site.path().join("state/checks.probes.json")).unwrap();
    assert!(state.contains("\"pushes\""), "kept in the state: {state}");

    // Healthy again: the next run (no new transition) sends it, once.
    fake.clear_faults();
    std::thread::sleep(Duration::from_millis(1500));
    let (exit, out, _) = probe(&site);
    assert_eq!(exit, 1);
    assert!(out.contains("sent"), "{out}");
    assert_eq!(
        writes(&fake),
        [
            ("PATCH".into(), "/v1/pages/pg1/components/c1".into()),
            ("POST".into(), "/v1/pages/pg1/incidents".into()),
        ]
    );
    let (_, out, _) = probe(&site);
    assert_eq!(fake.writes().len(), 2, "never twice: {out}");
    assert_eq!(unresolved(&fake).len(), 1);
}

#[test]
fn an_incident_statusmotd_opened_before_a_crash_is_adopted_not_opened_twice() {
    // A run that POSTed the incident but stopped before saving its id left
    // it on the page, tagged as the probe's.
    let left = json!([{
        "id": "inc-left", "name": "lustre", "status": "investigating",
        "impact": "major", "created_at": "2026-01-01T00:00:00Z",
        "components": [{"id": "c1", "name": "Lustre /work"}],
        "metadata": {"statusmotd": {"probe": "lustre"}},
        "incident_updates": [],
    }]);
    let fake = page("operational", left);
    let port = TcpToggle::open();
    let site = site(&fake, port.addr.port(), WITH_INCIDENT);
    probe(&site);
    port.close();
    let (_, out, _) = probe(&site);
    assert!(out.contains("`inc-left` already open"), "{out}");
    port.reopen();
    probe(&site);
    assert_eq!(
        writes(&fake),
        [
            ("PATCH".into(), "/v1/pages/pg1/components/c1".into()),
            ("PATCH".into(), "/v1/pages/pg1/components/c1".into()),
            ("PATCH".into(), "/v1/pages/pg1/incidents/inc-left".into()),
        ],
        "no second incident; the adopted one resolved"
    );
    assert!(unresolved(&fake).is_empty());
}

#[test]
fn a_push_to_a_source_that_is_not_a_statuspage_is_refused_at_load() {
    let fake = page("operational", json!([]));
    for (push, wanted) in [
        (
            r#"{ source = "checks", component = "x" }"#,
            "`statuspage` source `checks` is of kind `probes`",
        ),
        (
            r#"{ source = "nope", component = "x" }"#,
            "`statuspage` source `nope` is not defined",
        ),
        (
            r#"{ source = "hpc", component = "x", incidents = true }"#,
            "unknown field `incidents`",
        ),
    ] {
        let site = site(&fake, 9, push);
        let o = site.run(&["probe"]);
        let err = stderr(&o);
        assert_eq!(code(&o), 3, "{err}");
        assert!(err.contains(wanted), "wanted `{wanted}` in:\n{err}");
        if !wanted.starts_with("unknown") {
            assert!(
                err.contains("probe `lustre`")
                    && err.contains("hint: sources of kind `statuspage`: `hpc`"),
                "{err}"
            );
        }
    }
    assert_eq!(fake.requests(), 0);
}

#[test]
fn serve_pushes_and_counts_what_a_person_held_back() {
    let fake = page("under_maintenance", json!([]));
    let port = TcpToggle::open();
    let site = site(&fake, port.addr.port(), WITH_INCIDENT);
    std::fs::write(
        site.path().join("mapping.toml"),
        std::fs::read_to_string(site.path().join("mapping.toml"))
            .unwrap()
            .replace("name = \"lustre\"", "name = \"lustre\"\ninterval = \"1s\""),
    )
    .unwrap();
    let mut cmd = site.serve_cmd();
    cmd.env(KEY_ENV, KEY);
    let served = crate::common::Served::spawn(cmd);
    std::thread::sleep(Duration::from_secs(2));
    port.close();
    let series = "statusmotd_probe_pushes_total{source=\"checks\",probe=\"lustre\",result=\"skipped_person\"} 1";
    crate::common::eventually("the push is held back and counted", 30, || {
        crate::common::http_get(served.addr(), "/metrics", Duration::from_secs(5))
            .is_some_and(|(_, m)| m.contains(series))
    });
    assert!(
        served.log().contains("a person is handling it"),
        "{}",
        served.log()
    );
    assert!(
        fake.writes().is_empty(),
        "changed nothing: {:?}",
        fake.writes()
    );

    // The person ends the maintenance; the next transition is pushed.
    fake.set_v1_page(
        "pg1",
        json!([
            {"id": "c0", "name": "Login nodes", "status": "operational"},
            {"id": "c1", "name": "Lustre /work", "status": "major_outage"},
        ]),
        json!([]),
    );
    port.reopen();
    crate::common::eventually("serve pushes the recovery", 30, || {
        served_status(&fake) == "operational"
    });
    assert!(!served.log().contains(KEY));
}

#[test]
fn a_probe_removed_while_down_resolves_its_incident_on_the_page() {
    let fake = page("operational", json!([]));
    let (lustre, other) = (TcpToggle::open(), TcpToggle::open());
    let site = site(&fake, lustre.addr.port(), WITH_INCIDENT);
    probe(&site);
    lustre.close();
    probe(&site);
    let id = unresolved(&fake)[0]["id"].as_str().unwrap().to_owned();
    let mapping = std::fs::read_to_string(site.path().join("mapping.toml")).unwrap();
    std::fs::write(
        site.path().join("mapping.toml"),
        mapping
            .replace("name = \"lustre\"", "name = \"other\"")
            .replace(
                &lustre.addr.port().to_string(),
                &other.addr.port().to_string(),
            )
            .replace(&format!("statuspage = {WITH_INCIDENT}"), ""),
    )
    .unwrap();
    let (exit, out, _) = probe(&site);
    assert_eq!(exit, 0);
    assert!(out.contains("lustre: statuspage `hpc`: sent"), "{out}");
    assert_eq!(
        writes(&fake)[2..],
        [
            ("PATCH".into(), "/v1/pages/pg1/components/c1".into()),
            ("PATCH".into(), format!("/v1/pages/pg1/incidents/{id}")),
        ]
    );
    assert_eq!(served_status(&fake), "operational");
    assert!(unresolved(&fake).is_empty());
    probe(&site);
    assert_eq!(fake.writes().len(), 4, "once");
}
