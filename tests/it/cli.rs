//! The real `statusmotd` binary against the fake Statuspage and the real
//! payloads: rendered MOTDs, config errors, exit codes, faults.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use assert_cmd::Command;
use serde_json::{json, Value};

use crate::common::shared_fixture;
use crate::fake::{FakeStatuspage, Fault};

// The helpers these tests share with the other modules live in `common`;
// they are re-exported here for the modules that import them from `cli`.
pub use crate::common::{assert_terminal_safe, code, stderr, stdout, Site};

pub(crate) fn v2_mapping(url: &str, clusters: &str) -> String {
    format!(
        r#"[settings]
timezone = "UTC"
request_timeout = "1s"
retries = 1

[sources.status]
kind = "statuspage-public"
url = "{url}"

{clusters}"#
    )
}

pub(crate) fn json_fixture(name: &str) -> Option<Value> {
    shared_fixture(name).map(|t| serde_json::from_str(&t).unwrap())
}

/// A fake page serving `summary` as `summary.json`, and a site whose
/// mapping points at it with `clusters`.
pub(crate) fn v2_site(summary: Value, clusters: &str) -> (FakeStatuspage, Site) {
    let fake = FakeStatuspage::spawn();
    fake.set_json("/api/v2/summary.json", summary);
    let site = Site::new(&v2_mapping(&fake.url(), clusters));
    (fake, site)
}

/// Renders one cluster with `--now` and returns its MOTD.
fn render_motd(site: &Site, cluster: &str, now: &str) -> String {
    let o = site.run(&["render", "--now", now]);
    assert_eq!(code(&o), 0, "render failed: {}", stderr(&o));
    let motd = site.read(&format!("{cluster}/motd"));
    assert_terminal_safe(&motd);
    motd
}

#[test]
fn demo_shows_a_motd_and_the_files_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = Command::cargo_bin("statusmotd")
        .unwrap()
        .args(["demo", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert_terminal_safe(&text);
    assert!(text.contains("Slow I/O on ARCHER2 Lustre /work"), "{text}");
    assert!(text.contains("created archer2/motd"), "{text}");
    assert!(text.contains("created cirrus/motd"), "{text}");
    // The demo page's update body carries a clear-screen and an OSC 52
    // clipboard write: neither may survive.
    let archer2 = fs::read_to_string(out.join("archer2/motd")).unwrap();
    assert!(archer2.contains("https://stspg.io/demo01"));
    assert!(!archer2.contains("52;c"), "{archer2}");
    assert_eq!(
        fs::read_to_string(out.join("tursa/motd")).unwrap(),
        "",
        "nothing concerns tursa"
    );
    // A second run writes nothing.
    let again = Command::cargo_bin("statusmotd")
        .unwrap()
        .args(["demo", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!stdout(&again).contains("created"), "{}", stdout(&again));
}

#[test]
fn fixture_github_summary_during_an_incident() {
    let Some(summary) = json_fixture("v2-summary-github-incident.json") else {
        return;
    };
    let (_fake, site) = v2_site(
        summary,
        r#"[clusters.packages]
components = ["Packages"]

[clusters.git]
components = ["Git Operations"]
"#,
    );
    let motd = render_motd(&site, "packages", "2022-11-25T16:00:00Z");
    insta::assert_snapshot!("github_summary_packages", motd);
    assert!(motd.contains("Incident with Packages and Pages"));
    assert_eq!(
        site.read("git/motd"),
        "",
        "the incident names Packages and Pages only"
    );
}

#[test]
fn fixture_github_incidents_recently_resolved() {
    let (Some(summary), Some(incidents)) = (
        json_fixture("v2-summary-github-incident.json"),
        json_fixture("v2-incidents-github.json"),
    ) else {
        return;
    };
    let fake = FakeStatuspage::spawn();
    let mut summary = summary;
    summary["incidents"] = json!([]);
    fake.set_json("/api/v2/summary.json", summary);
    fake.set_json("/api/v2/incidents.json", incidents);
    let site = Site::new(&v2_mapping(
        &fake.url(),
        r#"[clusters.actions]
components = ["Actions"]
"#,
    ));
    let motd = render_motd(&site, "actions", "2024-09-16T23:00:00Z");
    insta::assert_snapshot!("github_incidents_actions", motd);
    assert!(motd.contains("Incident with Pages and Actions"));
    assert!(!motd.contains("<br"), "HTML must be gone: {motd}");
}

#[test]
fn fixture_docs_example_with_maintenance() {
    let Some(summary) = json_fixture("v2-summary-docs-example-maintenance.json") else {
        return;
    };
    let (_fake, site) = v2_site(
        summary,
        r#"[clusters.api]
components = ["API"]

[clusters.portal]
components = ["Management Portal"]
page_wide = false
"#,
    );
    // 15:00 in the page's -06:00 zone: the web tier recycle is in progress,
    // the network maintenance three days ahead.
    let motd = render_motd(&site, "api", "2014-05-14T21:00:00Z");
    insta::assert_snapshot!("docs_example_api", motd);
    assert!(motd.contains("Unplanned Database Outage"));
    assert!(motd.contains("Web Tier Recycle"));
    assert!(motd.contains("Network Maintenance"));
    let portal = site.read("portal/motd");
    insta::assert_snapshot!("docs_example_portal", portal);
    assert!(
        !portal.contains("Unplanned Database Outage"),
        "page_wide = false"
    );
}

#[test]
fn fixture_hashicorp_groups() {
    let Some(components) = json_fixture("v2-components-hashicorp-groups.json") else {
        return;
    };
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        "/api/v2/summary.json",
        json!({"page": components["page"], "components": components["components"], "incidents": [], "scheduled_maintenances": []}),
    );
    let site = Site::new(&v2_mapping(
        &fake.url(),
        r#"[clusters.hcp]
groups = ["HashiCorp Cloud Platform (HCP)"]

[clusters.tfc]
groups = ["Terraform Cloud"]
components = ["Vault"]
"#,
    ));
    let motd = render_motd(&site, "hcp", "2021-03-01T12:00:00Z");
    insta::assert_snapshot!("hashicorp_hcp", motd);
    let tfc = site.read("tfc/motd");
    insta::assert_snapshot!("hashicorp_tfc", tfc);
    assert!(tfc.contains("Vault"));
}

#[test]
fn fixture_v1_manage_api() {
    let (Some(page), Some(group), Some(incident)) = (
        json_fixture("v1-page.json"),
        json_fixture("v1-component_group.json"),
        json_fixture("v1-incident.json"),
    ) else {
        return;
    };
    let fake = FakeStatuspage::spawn();
    let id = page["id"].as_str().unwrap().to_owned();
    fake.set_json(&format!("/pages/{id}"), page);
    fake.set_json(
        &format!("/pages/{id}/components"),
        incident["components"].clone(),
    );
    fake.set_json(&format!("/pages/{id}/component-groups"), json!([group]));
    fake.set_json(&format!("/pages/{id}/incidents"), json!([incident]));
    for list in ["unresolved", "upcoming", "active_maintenance"] {
        fake.set_json(&format!("/pages/{id}/incidents/{list}"), json!([]));
    }
    let mapping = format!(
        r#"[settings]
timezone = "UTC"
request_timeout = "1s"
retries = 1

[sources.ctrlv]
kind = "statuspage"
page_id = "{id}"
api_key = {{ env = "STATUSMOTD_TEST_KEY" }}
api_base = "{}"

[clusters.backend]
groups = ["Backend"]

[clusters.payments]
components = ["Payment Service"]
"#,
        fake.url()
    );
    let site = Site::new(&mapping);
    let o = site
        .cmd_with_env("STATUSMOTD_TEST_KEY", "k-7f3a9c-secret")
        .args(["--now", "2024-06-08T00:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        fake.last_authorization().as_deref(),
        Some("OAuth k-7f3a9c-secret")
    );
    let backend = site.read("backend/motd");
    assert_terminal_safe(&backend);
    insta::assert_snapshot!("v1_backend", backend);
    assert!(backend.contains("API Gateway Timeout Errors"), "{backend}");
    // The update names "Backend - Fraud Detection Service"; matching is by id,
    // so the snippet lists the component under its own name, in this cluster.
    let snippet = site.read("backend/items/incident-f5v3b6dr7k53.txt");
    assert_terminal_safe(&snippet);
    insta::assert_snapshot!("v1_backend_item", snippet);
    assert!(snippet.contains("Fraud Detection Service"), "{snippet}");
    assert!(
        !snippet.contains("Payment Service"),
        "not in this cluster: {snippet}"
    );
    assert!(site
        .read("payments/motd")
        .contains("API Gateway Timeout Errors"));
}

impl Site {
    /// `render` with one extra environment variable.
    fn cmd_with_env(&self, key: &str, value: &str) -> Command {
        let mut c = self.cmd();
        c.env(key, value).arg("render");
        c
    }
}

fn docs_site() -> Option<(FakeStatuspage, Site)> {
    let summary = json_fixture("v2-summary-docs-example-maintenance.json")?;
    let (fake, site) = v2_site(
        summary,
        r#"[clusters.api]
components = ["API"]

[clusters.portal]
components = ["Management Portal"]
page_wide = false
"#,
    );
    Some((fake, site))
}

const DOCS_NOW: &str = "2014-05-14T21:00:00Z";

#[test]
fn render_check_reports_what_would_change_and_writes_nothing() {
    let Some((_fake, site)) = docs_site() else {
        return;
    };
    let o = site.run(&["render", "--check", "--now", DOCS_NOW]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("would create api/motd\n"),
        "{}",
        stdout(&o)
    );
    assert!(!site.out("").exists(), "--check must write nothing");
    assert!(
        !site.path().join("state").exists(),
        "--check must not keep state"
    );

    let o = site.run(&["render", "--now", DOCS_NOW]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("created api/motd\n"));
    let o = site.run(&["render", "--check", "--now", DOCS_NOW]);
    assert_eq!(code(&o), 0, "nothing changes: {}", stdout(&o));
    assert_eq!(stdout(&o), "");
    // Weeks earlier, the network maintenance is outside the 7-day window.
    let before = site.read("api/motd");
    let o = site.run(&["render", "--check", "--now", "2014-05-01T00:00:00Z"]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("would update api/motd\n"),
        "{}",
        stdout(&o)
    );
    assert_eq!(site.read("api/motd"), before, "--check wrote nothing");
}

#[test]
fn render_twice_with_the_same_now_is_byte_identical_and_untouched() {
    let Some((_fake, site)) = docs_site() else {
        return;
    };
    assert_eq!(code(&site.run(&["render", "--now", DOCS_NOW])), 0);
    let meta = fs::metadata(site.out("api/motd")).unwrap();
    let bytes = site.read("api/motd");
    let o = site.run(&["render", "--now", DOCS_NOW]);
    assert_eq!(stdout(&o), "", "nothing changed, nothing printed");
    let again = fs::metadata(site.out("api/motd")).unwrap();
    assert_eq!(bytes, site.read("api/motd"));
    assert_eq!((meta.ino(), meta.mtime()), (again.ino(), again.mtime()));
    // The mtime is the newest updated_at of what the file shows.
    let expected: jiff::Timestamp = "2014-05-14T14:35:21.711-06:00".parse().unwrap();
    assert_eq!(meta.mtime(), expected.as_second());
}

#[test]
fn gate_exit_codes() {
    let Some((fake, site)) = docs_site() else {
        return;
    };
    let snap = site.path().join("snap.json");
    let o = site.run(&["fetch", "--save", snap.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let snap = snap.to_str().unwrap();
    // A page-wide incident and maintenance in progress block `api`.
    let o = site.run(&[
        "gate",
        "api",
        "--snapshot",
        snap,
        "--now",
        DOCS_NOW,
        "--max-age",
        "1000000d",
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Unplanned Database Outage"),
        "{}",
        stdout(&o)
    );
    // `portal` ignores page-wide incidents; its component is down, which blocks
    // only with --block-on degraded.
    let o = site.run(&[
        "gate",
        "portal",
        "--snapshot",
        snap,
        "--now",
        DOCS_NOW,
        "--max-age",
        "1000000d",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let o = site.run(&[
        "gate",
        "portal",
        "--snapshot",
        snap,
        "--now",
        DOCS_NOW,
        "--max-age",
        "1000000d",
        "--block-on",
        "degraded",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("Management Portal"));
    // The snapshot was fetched now; as of 2014 it is not "old", but as of a
    // day after the fetch it is older than 1h.
    let o = site.run(&[
        "gate",
        "api",
        "--snapshot",
        snap,
        "--max-age",
        "1h",
        "--now",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(code(&o), 4, "{}", stdout(&o));
    // No data at all: upstream down and nothing kept.
    fake.fault(Fault::Status(500));
    let o = site.run(&["gate", "api"]);
    assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn faults_leave_every_file_byte_identical_and_say_why() {
    let Some((fake, site)) = docs_site() else {
        return;
    };
    let now = jiff::Timestamp::now().to_string();
    let o = site.run(&["render", "--now", &now]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let files = ["api/motd", "portal/motd", "index.json"];
    let before: Vec<(String, i64, u64)> = files
        .iter()
        .map(|f| {
            let m = fs::metadata(site.out(f)).unwrap();
            (site.read(f), m.mtime(), m.ino())
        })
        .collect();
    let faults = [
        (Fault::Status(500), "500"),
        (
            Fault::RateLimited {
                status: 420,
                retry_after: "1".into(),
            },
            "420",
        ),
        (
            Fault::RateLimited {
                status: 429,
                retry_after: "1".into(),
            },
            "429",
        ),
        (Fault::Garbage, "invalid JSON"),
        (Fault::Truncated, "invalid JSON"),
        (Fault::Hang, "timed out"),
        (Fault::Reset, "connection reset"),
    ];
    for (fault, says) in faults {
        fake.fault(fault);
        let o = site.run(&["render", "--now", &now]);
        fake.clear_faults();
        let err = stderr(&o);
        assert_eq!(code(&o), 0, "the last good snapshot serves: {err}");
        assert!(err.contains(says), "stderr should say {says:?}: {err}");
        assert!(err.contains("last good snapshot"), "{err}");
        for (f, (text, mtime, ino)) in files.iter().zip(&before) {
            let m = fs::metadata(site.out(f)).unwrap();
            assert_eq!(&site.read(f), text, "{f} changed during {says}");
            assert_eq!(
                (m.mtime(), m.ino()),
                (*mtime, *ino),
                "{f} touched during {says}"
            );
        }
    }
}

#[test]
fn no_data_and_no_state_exits_1_and_writes_nothing() {
    let Some((fake, site)) = docs_site() else {
        return;
    };
    fake.fault(Fault::Status(503));
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("no earlier good snapshot"),
        "{}",
        stderr(&o)
    );
    assert!(!site.out("api/motd").exists());
}

#[test]
fn config_error_unknown_key_names_the_line() {
    let site = Site::new("[settings]\ntimezone = \"UTC\"\nouptut_dir = \"x\"\n\n[sources.s]\nkind = \"statuspage-public\"\nurl = \"http://127.0.0.1:9\"\n");
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 3);
    let err = stderr(&o);
    assert!(err.contains("ouptut_dir"), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn config_error_bad_duration() {
    let site = Site::new("[settings]\nupcoming = \"7 days\"\n\n[sources.s]\nkind = \"statuspage-public\"\nurl = \"http://127.0.0.1:9\"\n\n[clusters.a]\ngroups = [\"x\"]\n");
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 3);
    let err = stderr(&o);
    assert!(err.contains("7 days"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn config_error_unsafe_cluster_names() {
    for name in ["a/b", "..", ".hidden"] {
        let site = Site::new(&format!(
            "[sources.s]\nkind = \"statuspage-public\"\nurl = \"http://127.0.0.1:9\"\n\n[clusters.\"{name}\"]\ngroups = [\"x\"]\n"
        ));
        let o = site.run(&["render"]);
        assert_eq!(code(&o), 3, "{name}");
        assert!(stderr(&o).contains(name), "{}", stderr(&o));
    }
}

#[test]
fn config_error_unknown_and_ambiguous_names() {
    let Some(components) = json_fixture("v2-components-hashicorp-groups.json") else {
        return;
    };
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        "/api/v2/summary.json",
        json!({"page": components["page"], "components": components["components"], "incidents": [], "scheduled_maintenances": []}),
    );
    let site = Site::new(&v2_mapping(
        &fake.url(),
        "[clusters.hpc1]\ngroups = [\"Terraform Clod\"]\n",
    ));
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("hpc1") && err.contains("Terraform Clod") && err.contains("Terraform Cloud"),
        "{err}"
    );

    // Two components share a name only in data we make: duplicate one.
    let mut rows = components["components"].as_array().unwrap().clone();
    let mut twin = rows.iter().find(|c| c["name"] == "Vault").unwrap().clone();
    twin["id"] = json!("twinvault0001");
    rows.push(twin);
    fake.set_json(
        "/api/v2/summary.json",
        json!({"page": components["page"], "components": rows, "incidents": [], "scheduled_maintenances": []}),
    );
    fs::write(
        site.path().join("mapping.toml"),
        v2_mapping(&fake.url(), "[clusters.hpc2]\ncomponents = [\"Vault\"]\n"),
    )
    .unwrap();
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 3);
    let err = stderr(&o);
    assert!(
        err.contains("hpc2") && err.contains("ambiguous") && err.contains("twinvault0001"),
        "{err}"
    );
}

#[test]
fn config_error_missing_secret_names_the_variable_never_a_secret() {
    let site = Site::new(
        "[sources.hpc]\nkind = \"statuspage\"\npage_id = \"abc\"\napi_key = { env = \"STATUSMOTD_TEST_MISSING_KEY\" }\napi_base = \"http://127.0.0.1:9\"\n\n[clusters.a]\ngroups = [\"x\"]\n",
    );
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 3);
    assert!(
        stderr(&o).contains("STATUSMOTD_TEST_MISSING_KEY"),
        "{}",
        stderr(&o)
    );

    // With the key set but upstream refusing it, the key appears nowhere.
    let fake = FakeStatuspage::spawn();
    fake.fault(Fault::Status(401));
    fs::write(
        site.path().join("mapping.toml"),
        format!("[settings]\nretries = 0\n\n[sources.hpc]\nkind = \"statuspage\"\npage_id = \"abc\"\napi_key = {{ env = \"STATUSMOTD_TEST_KEY\" }}\napi_base = \"{}\"\n\n[clusters.a]\ngroups = [\"x\"]\n", fake.url()),
    )
    .unwrap();
    let o = site
        .cmd_with_env("STATUSMOTD_TEST_KEY", "sekrit-4242-token")
        .output()
        .unwrap();
    assert_ne!(code(&o), 0);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("401"), "{all}");
    assert!(!all.contains("sekrit-4242-token"), "{all}");
}

#[test]
fn the_shipped_mapping_and_templates_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = statusmotd::config::Config::load(&root.join("mapping.toml")).unwrap();
    assert!(!config.clusters.is_empty());
    let renderer = statusmotd::render::Renderer::new(Some(&root.join("templates"))).unwrap();
    assert!(renderer.template_names().iter().any(|n| n == "motd.txt.j2"));
}

#[test]
fn stale_data_is_marked_after_stale_after_and_said_on_stderr() {
    let Some((fake, site)) = docs_site() else {
        return;
    };
    assert_eq!(code(&site.run(&["render"])), 0);
    let fresh = site.read("api/motd");
    assert!(!fresh.contains("could not be reached"));
    fake.fault(Fault::Status(500));
    // An hour later (stale_after defaults to 30m) with upstream still down.
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let o = site.run(&["render", "--now", &later]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("last good snapshot"), "{}", stderr(&o));
    let stale = site.read("api/motd");
    assert!(stale.contains("status data is 1h old"), "{stale}");
    assert!(
        stale.contains("Unplanned Database Outage"),
        "the news is kept: {stale}"
    );
}

#[test]
fn a_cluster_whose_names_stop_resolving_keeps_its_files_while_others_render() {
    let Some((_fake, site)) = docs_site() else {
        return;
    };
    assert_eq!(code(&site.run(&["render", "--now", DOCS_NOW])), 0);
    let portal = site.read("portal/motd");
    let mapping = fs::read_to_string(site.path().join("mapping.toml")).unwrap();
    fs::write(
        site.path().join("mapping.toml"),
        mapping.replace(
            "components = [\"Management Portal\"]",
            "components = [\"Management Portl\"]",
        ),
    )
    .unwrap();
    let o = site.run(&["render", "--now", "2014-05-01T00:00:00Z"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("portal") && stderr(&o).contains("Management Portl"),
        "{}",
        stderr(&o)
    );
    assert_eq!(site.read("portal/motd"), portal, "left as it was");
    assert!(
        stdout(&o).contains("updated api/motd"),
        "api still rendered: {}",
        stdout(&o)
    );
}

#[test]
fn show_prints_one_motd_and_writes_nothing() {
    let Some((_fake, site)) = docs_site() else {
        return;
    };
    let o = site.run(&["show", "api", "--now", DOCS_NOW]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("== api: Major outage"),
        "{}",
        stdout(&o)
    );
    assert!(!site.out("").exists());
    let o = site.run(&["show", "nope"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("`api`"),
        "lists known clusters: {}",
        stderr(&o)
    );
}

#[test]
fn fetch_save_then_render_from_the_snapshot_gives_the_same_bytes() {
    let Some((fake, site)) = docs_site() else {
        return;
    };
    let snap = site.path().join("snap.json");
    assert_eq!(
        code(&site.run(&["fetch", "--save", snap.to_str().unwrap()])),
        0
    );
    fake.fault(Fault::Hang);
    let o = site.run(&[
        "render",
        "--snapshot",
        snap.to_str().unwrap(),
        "--now",
        DOCS_NOW,
    ]);
    assert_eq!(code(&o), 0, "no fetch with --snapshot: {}", stderr(&o));
    let from_file = site.read("api/motd");
    fake.clear_faults();
    fs::remove_dir_all(site.out("")).unwrap();
    assert_eq!(code(&site.run(&["render", "--now", DOCS_NOW])), 0);
    assert_eq!(site.read("api/motd"), from_file);
}

#[test]
fn mapping_init_and_check_against_a_page_with_groups() {
    let Some(components) = json_fixture("v2-components-hashicorp-groups.json") else {
        return;
    };
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        "/api/v2/summary.json",
        json!({"page": components["page"], "components": components["components"], "incidents": [], "scheduled_maintenances": []}),
    );
    let site = Site::new("");
    let o = site.run(&["mapping", "init", "--url", &fake.url()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let skeleton = stdout(&o);
    assert!(
        skeleton.contains("[clusters.terraform-cloud]"),
        "{skeleton}"
    );
    assert!(
        skeleton.contains("groups = [\"cnzk9zc90jqy\"]   # Terraform Cloud\n"),
        "{skeleton}"
    );
    // The skeleton is a working mapping: check resolves every name.
    fs::write(site.path().join("mapping.toml"), &skeleton).unwrap();
    let o = site.run(&["mapping", "check"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    // Drop one cluster: check names the group nobody maps.
    let fewer = skeleton.replace("groups = [\"cnzk9zc90jqy\"]", "components = [\"Vault\"]");
    assert_ne!(fewer, skeleton);
    fs::write(site.path().join("mapping.toml"), fewer).unwrap();
    let o = site.run(&["mapping", "check"]);
    assert_eq!(code(&o), 0, "unmapped groups are news, not errors");
    assert!(stdout(&o).contains("`Terraform Cloud`"), "{}", stdout(&o));
}

#[test]
fn index_json_covers_every_configured_cluster() {
    let Some((_fake, site)) = docs_site() else {
        return;
    };
    assert_eq!(code(&site.run(&["render", "--now", DOCS_NOW])), 0);
    let index = |site: &Site| -> Value { serde_json::from_str(&site.read("index.json")).unwrap() };
    let first = index(&site);
    assert_eq!(first["clusters"]["api"]["status"], "major_outage");
    assert_eq!(first["clusters"]["portal"]["items"], json!([]));
    let mtime = first["clusters"]["api"]["files"]["api/motd"]
        .as_str()
        .unwrap();
    let expected: jiff::Timestamp = "2014-05-14T14:35:21.711-06:00".parse().unwrap();
    assert_eq!(
        mtime.parse::<jiff::Timestamp>().unwrap().as_second(),
        expected.as_second()
    );

    // `--cluster portal` re-renders one cluster and keeps the other's entry.
    let o = site.run(&[
        "render",
        "--cluster",
        "portal",
        "--now",
        "2014-05-01T00:00:00Z",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(index(&site)["clusters"]["api"], first["clusters"]["api"]);

    // A cluster taken out of the mapping leaves the index (its files stay).
    let mapping = fs::read_to_string(site.path().join("mapping.toml")).unwrap();
    let without_portal = mapping
        .split("[clusters.portal]")
        .next()
        .unwrap()
        .to_owned();
    fs::write(site.path().join("mapping.toml"), without_portal).unwrap();
    assert_eq!(code(&site.run(&["render", "--now", DOCS_NOW])), 0);
    let last = index(&site);
    assert!(last["clusters"].get("portal").is_none(), "{last}");
    assert!(site.out("portal/motd").exists());
}
