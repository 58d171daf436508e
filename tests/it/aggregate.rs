//! Several sources per cluster: a cluster reading the site's page (manage
//! API v1) and a vendor's page (public API v2), each served by its own fake
//! Statuspage, through the real binary: the merged MOTD, snippet names,
//! `gate`, `index.json`, `serve`'s endpoints, one source failing while the
//! other answers, and a revoked key.

use std::fs;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::{code, stderr, stdout, Site};
use crate::common::{files_under, http_get, FileState, Served};
use crate::fake::{FakeStatuspage, Fault};

const HPC_PAGE: &str = "hpcpage01";
const API_KEY: &str = "ak4Vw8QxT1nLr6";

/// A site whose `mapping.toml` reads the site's page (`hpc`, manage API,
/// key in the file `api-key`) and GitHub's (`github`), with `settings` added
/// to `[settings]` and `rest` (more sources, the clusters) after them.
fn site_with(hpc: &FakeStatuspage, github: &FakeStatuspage, settings: &str, rest: &str) -> Site {
    let site = Site::new(&format!(
        r#"[settings]
output_dir = "out"
state_dir = "state"
timezone = "UTC"
request_timeout = "1s"
retries = 0
{settings}
[sources.hpc]
kind = "statuspage"
page_id = "{HPC_PAGE}"
api_key = {{ file = "api-key" }}
api_base = "{hpc}"

[sources.github]
kind = "statuspage-public"
url = "{github}"

{rest}"#,
        hpc = hpc.url(),
        github = github.url(),
    ));
    fs::write(site.path().join("api-key"), API_KEY).unwrap();
    site
}

/// `archer2` reads both pages; `cirrus` only the site's, `web` only the
/// vendor's, each selecting a component no update below touches.
fn site(hpc: &FakeStatuspage, github: &FakeStatuspage, stale_after: &str) -> Site {
    site_with(
        hpc,
        github,
        &format!("stale_after = \"{stale_after}\"\n"),
        r#"[clusters.archer2]
source = "hpc"
components = ["Login nodes"]

[clusters.archer2.also.github]
components = ["Actions"]

[clusters.cirrus]
source = "hpc"
components = ["Compute"]

[clusters.web]
source = "github"
components = ["Pages"]
"#,
    )
}

/// The site's page: `Login nodes` and `Compute`, and, when `incident` is
/// given, an open incident of that name on `Login nodes`.
fn set_hpc(fake: &FakeStatuspage, incident: Option<&str>) {
    let base = format!("/pages/{HPC_PAGE}");
    fake.set_json(
        &format!("{base}/components"),
        json!([
            {"id": "c1", "name": "Login nodes", "status": "operational", "group_id": null},
            {"id": "c2", "name": "Compute", "status": "operational", "group_id": null},
        ]),
    );
    fake.set_json(&format!("{base}/component-groups"), json!([]));
    let incidents = match incident {
        Some(name) => json!([{
            "id": "hinc1",
            "name": name,
            "status": "investigating",
            "impact": "minor",
            "created_at": "2025-06-01T09:00:00Z",
            "updated_at": "2025-06-01T09:00:00Z",
            "shortlink": "https://stspg.io/h1",
            "components": [{"id": "c1", "name": "Login nodes"}],
            "incident_updates": [{
                "id": "hu1",
                "status": "investigating",
                "body": "Logins are slow.",
                "created_at": "2025-06-01T09:00:00Z",
                "display_at": "2025-06-01T09:00:00Z",
            }],
        }]),
        None => json!([]),
    };
    fake.set_json(&format!("{base}/incidents/unresolved"), incidents.clone());
    fake.set_json(&format!("{base}/incidents"), incidents);
    for list in ["incidents/upcoming", "incidents/active_maintenance"] {
        fake.set_json(&format!("{base}/{list}"), json!([]));
    }
}

/// The vendor's page, `GitHub`: `Actions` and `Pages`, and, when
/// `incident` is given, an open incident of that name on `Actions`.
fn set_github(fake: &FakeStatuspage, incident: Option<&str>) {
    let incidents = match incident {
        Some(name) => json!([{
            "id": "ginc1",
            "name": name,
            "status": "investigating",
            "impact": "major",
            "created_at": "2025-06-01T10:00:00Z",
            "updated_at": "2025-06-01T10:00:00Z",
            "shortlink": "https://stspg.io/g1",
            "components": [{"id": "g1", "name": "Actions"}],
            "incident_updates": [{
                "id": "gu1",
                "status": "investigating",
                "body": "Jobs are delayed.",
                "created_at": "2025-06-01T10:00:00Z",
                "display_at": "2025-06-01T10:00:00Z",
            }],
        }]),
        None => json!([]),
    };
    fake.set_v2_page(
        json!({"id": "ghpage", "name": "GitHub", "url": "https://www.githubstatus.com"}),
        json!([
            {"id": "g1", "name": "Actions", "status": "operational", "group_id": null},
            {"id": "g2", "name": "Pages", "status": "operational", "group_id": null},
        ]),
        incidents,
        json!([]),
    );
}

const NOW: &str = "2025-06-01T12:00:00Z";

fn render(site: &Site) -> std::process::Output {
    site.run(&["render", "--now", NOW])
}

/// One plain HTTP GET: status and body (status 0 when nothing answered).
fn get(addr: &str, path: &str) -> (u16, String) {
    let (status, answer) = http_get(addr, path, Duration::from_secs(10)).unwrap_or_default();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The body of the answer once `ok` holds for it, within 20 s.
fn get_until(addr: &str, path: &str, ok: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let start = Instant::now();
    loop {
        let (status, body) = get(addr, path);
        if ok(status, &body) || start.elapsed() > Duration::from_secs(20) {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn serve(site: &Site) -> Served {
    Served::spawn(site.serve_cmd())
}

#[test]
fn a_cluster_reading_a_v1_and_a_v2_page_shows_gates_and_lists_both() {
    let (hpc, github) = (FakeStatuspage::spawn(), FakeStatuspage::spawn());
    set_hpc(&hpc, Some("Login trouble"));
    set_github(&github, Some("Actions delayed"));
    let site = site(&hpc, &github, "30m");

    let o = render(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let motd = site.read("archer2/motd");
    assert!(motd.contains("[INCIDENT] Login trouble"), "{motd}");
    assert!(
        motd.contains("[INCIDENT] [GitHub] Actions delayed"),
        "{motd}"
    );
    assert!(motd.contains("Jobs are delayed."), "{motd}");
    for line in motd.lines() {
        assert!(line.chars().count() <= 80, "{line:?}");
    }
    // Snippets: the primary's keep their names; the vendor's carry its.
    assert!(site.out("archer2/items/incident-hinc1.txt").is_file());
    let snippet = site.read("archer2/items/incident-github-ginc1.txt");
    assert!(
        snippet.contains("[INCIDENT] [GitHub] Actions delayed"),
        "{snippet}"
    );
    assert!(!site.out("archer2/items/incident-ginc1.txt").exists());
    // The clusters of one source see nothing of the other.
    assert_eq!(site.read("cirrus/motd"), "");
    assert_eq!(site.read("web/motd"), "");

    let index: Value = serde_json::from_str(&site.read("index.json")).unwrap();
    let archer2 = &index["clusters"]["archer2"];
    assert_eq!(archer2["sources"], json!(["hpc", "github"]));
    assert_eq!(archer2["status"], json!("partial_outage"));
    let files: Vec<&str> = archer2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "archer2/items/incident-github-ginc1.txt",
            "archer2/items/incident-hinc1.txt"
        ]
    );

    // `gate` blocks on an incident from either source.
    let o = site.run(&["gate", "archer2", "--now", NOW]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("Login trouble"), "{}", stdout(&o));
    assert!(stdout(&o).contains("Actions delayed"), "{}", stdout(&o));
    set_hpc(&hpc, None);
    let o = site.run(&["gate", "archer2", "--now", NOW]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(!stdout(&o).contains("Login trouble"), "{}", stdout(&o));
    assert!(stdout(&o).contains("Actions delayed"), "{}", stdout(&o));
    set_github(&github, None);
    let o = site.run(&["gate", "archer2", "--now", NOW]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    set_github(&github, Some("Actions delayed"));

    // `serve` lists both sources in `/status` and `/clusters`.
    let served = serve(&site);
    let (status, body) = get_until(served.addr(), "/status/archer2", |s, b| {
        s == 200 && b.contains("Actions delayed")
    });
    assert_eq!(status, 200, "{body}\n{}", served.log());
    let view: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = view["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hpc", "github"]);
    assert_eq!(view["sources"][1]["title"], json!("GitHub"));
    assert_eq!(view["incidents"][0]["source"], json!("github"));
    assert_eq!(view["incidents"][0]["source_title"], json!("GitHub"));
    let (status, body) = get(served.addr(), "/clusters");
    assert_eq!(status, 200, "{body}");
    let clusters: Value = serde_json::from_str(&body).unwrap();
    let archer2 = clusters["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == json!("archer2"))
        .unwrap();
    assert_eq!(archer2["sources"], json!(["hpc", "github"]));
    let (status, body) = get_until(served.addr(), "/readyz", |s, _| s == 200);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn each_source_failing_in_turn_keeps_the_other_and_names_itself() {
    let (hpc, github) = (FakeStatuspage::spawn(), FakeStatuspage::spawn());
    let site = site(&hpc, &github, "1s");
    let faults = [
        (Fault::Status(500), "answered with a server error"),
        (Fault::Hang, "did not answer in time"),
        (Fault::Garbage, "not valid JSON"),
    ];
    // Rendered at the real time (no `--now`), so that ages are real: the
    // failing source's data is over a second old, the other's fresh.
    let mut round = 0;
    for failing_hpc in [true, false] {
        for (fault, words) in &faults {
            round += 1;
            hpc.clear_faults();
            github.clear_faults();
            set_hpc(&hpc, Some(&format!("Login trouble {round}")));
            set_github(&github, Some(&format!("Actions delayed {round}")));
            let o = site.run(&["render"]);
            assert_eq!(code(&o), 0, "{}", stderr(&o));
            // The cluster that does not read the failing source.
            let untouched = if failing_hpc { "web" } else { "cirrus" };
            let before = files_under(&site.out(untouched));
            std::thread::sleep(Duration::from_millis(1200));

            let failing = if failing_hpc { &hpc } else { &github };
            failing.fault(fault.clone());
            // Both change upstream; only the answering one can be seen.
            set_hpc(&hpc, Some(&format!("Login trouble {round}b")));
            set_github(&github, Some(&format!("Actions delayed {round}b")));
            let o = site.run(&["render"]);
            assert_eq!(code(&o), 0, "{fault:?}: {}", stderr(&o));
            let motd = site.read("archer2/motd");
            let hpc_line = |r: &str| format!("[INCIDENT] Login trouble {r} (");
            let github_line = |r: &str| format!("[INCIDENT] [GitHub] Actions delayed {r} (");
            let (round_b, round) = (format!("{round}b"), round.to_string());
            let (old, new, title) = if failing_hpc {
                (
                    hpc_line(&round),
                    github_line(&round_b),
                    "(hpc status data is",
                )
            } else {
                (
                    github_line(&round),
                    hpc_line(&round_b),
                    "(GitHub status data is",
                )
            };
            assert!(
                motd.contains(&old),
                "{fault:?}: the failing source's last good item stays:\n{motd}"
            );
            assert!(motd.contains(&new), "{fault:?}: the other updates:\n{motd}");
            // Continuation lines unwrapped.
            let unwrapped = motd.replace("\n    ", " ");
            let note = unwrapped
                .lines()
                .find(|l| l.starts_with(title))
                .unwrap_or_else(|| panic!("{fault:?}: no stale note naming it:\n{motd}"));
            assert!(note.contains(words), "{fault:?}: {note}");
            assert_eq!(
                motd.lines()
                    .filter(|l| l.contains("status data is"))
                    .count(),
                1,
                "{fault:?}: only the failing source is stale:\n{motd}"
            );
            assert_eq!(
                files_under(&site.out(untouched)),
                before,
                "{fault:?}: `{untouched}` does not read the failing source"
            );
        }
    }
}

#[test]
fn a_revoked_key_fails_render_keeps_the_files_and_makes_serve_unready() {
    let (hpc, github) = (FakeStatuspage::spawn(), FakeStatuspage::spawn());
    set_hpc(&hpc, Some("Login trouble"));
    set_github(&github, Some("Actions delayed"));
    let site = site(&hpc, &github, "30m");
    let o = render(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let before = files_under(&site.path().join("out/archer2"));

    hpc.fault(Fault::Status(401));
    let o = render(&site);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "a build step must go red:\n{err}");
    assert!(err.contains("rejected the API key"), "{err}");
    assert!(err.contains("source `hpc`"), "{err}");
    assert!(!err.contains(API_KEY), "{err}");
    assert!(!stdout(&o).contains(API_KEY));
    assert_eq!(files_under(&site.path().join("out/archer2")), before);

    // A transient failure is still a warning only.
    hpc.fault(Fault::Status(503));
    let o = render(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    hpc.fault(Fault::Status(401));
    let served = serve(&site);
    let (status, body) = get_until(served.addr(), "/readyz", |_, b| {
        b.contains("rejected the API key")
    });
    assert_eq!(status, 503, "{body}\n{}", served.log());
    assert!(body.contains("source `hpc`"), "{body}");
    assert!(!body.contains(API_KEY), "{body}");
    let (_, metrics) = get(served.addr(), "/metrics");
    assert!(
        metrics.contains("statusmotd_source_permanent_failure{source=\"hpc\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("statusmotd_source_permanent_failure{source=\"github\"} 0"),
        "{metrics}"
    );
    let log = served.log();
    assert!(log.contains("ERROR"), "{log}");
    assert!(!log.contains(API_KEY), "{log}");
}

/// A site's own checks as a `file` source: the snapshot file a cron script
/// would write, replaced atomically, with an open incident on `Lustre /work`
/// when `incident` is given. Written now, so the data is fresh (the file's
/// `fetched_at` is its age, as for any source).
fn write_status_file(site: &Site, incident: Option<&str>) {
    let incidents = match incident {
        Some(name) => json!([{
            "id": "lustre-slow", "kind": "incident", "name": name,
            "status": "investigating", "impact": "minor",
            "created_at": "2025-06-01T11:00:00Z", "updated_at": "2025-06-01T11:00:00Z",
            "components": ["lustre"],
            "updates": [{"id": "1", "status": "investigating",
                         "body": "Metadata operations are slow.",
                         "display_at": "2025-06-01T11:00:00Z"}],
        }]),
        None => json!([]),
    };
    let file = json!({
        "format": 1,
        "sources": {"checks": {
            "page": {"id": "checks", "name": "Site checks"},
            "fetched_at": jiff::Timestamp::now().to_string(),
            "components": [
                {"id": "lustre", "name": "Lustre /work",
                 "status": if incident.is_some() { "degraded_performance" } else { "operational" }},
            ],
            "groups": [],
            "incidents": incidents,
        }},
    });
    let tmp = site.path().join(".status.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    fs::rename(&tmp, site.path().join("status.json")).unwrap();
}

/// `archer2` reads the site's page, GitHub's and the site's status file;
/// `cirrus` only the site's page.
fn three_source_site(hpc: &FakeStatuspage, github: &FakeStatuspage, poll: &str) -> Site {
    site_with(
        hpc,
        github,
        &format!("poll_interval = \"{poll}\"\ndebounce = \"0s\"\n"),
        r#"[sources.checks]
kind = "file"
path = "status.json"

[clusters.archer2]
source = "hpc"
components = ["Login nodes"]

[clusters.archer2.also.github]
components = ["Actions"]

[clusters.archer2.also.checks]
components = ["Lustre /work"]

[clusters.cirrus]
source = "hpc"
components = ["Compute"]
"#,
    )
}

#[test]
fn a_cluster_reading_a_v1_page_a_v2_page_and_a_file_shows_all_three() {
    let (hpc, github) = (FakeStatuspage::spawn(), FakeStatuspage::spawn());
    set_hpc(&hpc, Some("Login trouble"));
    set_github(&github, Some("Actions delayed"));
    let site = three_source_site(&hpc, &github, "5m");
    write_status_file(&site, Some("Slow I/O on /work"));

    let o = render(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let motd = site.read("archer2/motd");
    assert!(motd.contains("[INCIDENT] Login trouble"), "{motd}");
    assert!(motd.contains("[GitHub] Actions delayed"), "{motd}");
    assert!(motd.contains("[Site checks] Slow I/O on /work"), "{motd}");
    assert!(motd.contains("Metadata operations are slow."), "{motd}");
    for name in [
        "items/incident-hinc1.txt",
        "items/incident-github-ginc1.txt",
        "items/incident-checks-lustre-slow.txt",
    ] {
        assert!(site.out(&format!("archer2/{name}")).is_file(), "{name}");
    }
    // The file's incident alone blocks a deploy too.
    set_hpc(&hpc, None);
    set_github(&github, None);
    let o = site.run(&["gate", "archer2"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("Slow I/O on /work"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("Login trouble"), "{}", stdout(&o));
    // index.json names the three sources of archer2.
    let index: Value = serde_json::from_str(&site.read("index.json")).unwrap();
    let listed = index.to_string();
    for source in ["\"hpc\"", "\"github\"", "\"checks\""] {
        assert!(listed.contains(source), "{source}: {listed}");
    }
}

#[test]
fn a_status_file_cut_short_keeps_its_items_and_a_missing_one_fails_the_build() {
    let (hpc, github) = (FakeStatuspage::spawn(), FakeStatuspage::spawn());
    set_hpc(&hpc, None);
    set_github(&github, None);
    let site = three_source_site(&hpc, &github, "5m");
    write_status_file(&site, Some("Slow I/O on /work"));
    let o = render(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let before = files_under(&site.path().join("out"));
    let motd = site.read("archer2/motd");
    assert!(motd.contains("Slow I/O on /work"), "{motd}");

    // Half written (a writer that does not rename): the last good snapshot
    // stands, and a build step is not failed for it.
    fs::write(site.path().join("status.json"), br#"{"format": 1, "sour"#).unwrap();
    let o = render(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("status file"), "{}", stderr(&o));
    assert!(stderr(&o).contains("last good snapshot"), "{}", stderr(&o));
    assert_eq!(files_under(&site.path().join("out")), before);

    // Gone: rendered from the last good snapshot all the same, but loud.
    fs::remove_file(site.path().join("status.json")).unwrap();
    let o = render(&site);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot read status file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(files_under(&site.path().join("out")), before);

    // Back, without the incident: it leaves the MOTD; `cirrus` never moved.
    write_status_file(&site, None);
    let o = render(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!site.read("archer2/motd").contains("Slow I/O"));
    let after = files_under(&site.path().join("out"));
    let cirrus = |files: &[FileState]| {
        files
            .iter()
            .filter(|f| f.0.starts_with("cirrus/"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(cirrus(&after), cirrus(&before));
}

#[test]
fn serve_reads_a_status_file_again_when_it_changes() {
    let (hpc, github) = (FakeStatuspage::spawn(), FakeStatuspage::spawn());
    set_hpc(&hpc, None);
    set_github(&github, None);
    // No poll within the test: only the file watch can bring the change.
    let site = three_source_site(&hpc, &github, "1h");
    write_status_file(&site, None);
    let served = serve(&site);
    let (status, _) = get_until(served.addr(), "/readyz", |s, _| s == 200);
    assert_eq!(status, 200, "{}", served.log());
    let (_, motd) = get(served.addr(), "/motd/archer2");
    assert!(!motd.contains("Slow I/O"), "{motd}");

    write_status_file(&site, Some("Slow I/O on /work"));
    let (status, motd) = get_until(served.addr(), "/motd/archer2", |_, b| {
        b.contains("Slow I/O on /work")
    });
    assert_eq!(status, 200);
    assert!(
        motd.contains("[Site checks] Slow I/O on /work"),
        "{motd}\n{}",
        served.log()
    );
}

#[test]
fn mapping_init_for_a_further_source_prints_also_tables_that_check_clean() {
    let (hpc, github) = (FakeStatuspage::spawn(), FakeStatuspage::spawn());
    set_hpc(&hpc, None);
    set_github(&github, None);
    let site = site_with(
        &hpc,
        &github,
        "",
        "[clusters.archer2]\nsource = \"hpc\"\ncomponents = [\"Login nodes\"]\n\n\
         [clusters.cirrus]\nsource = \"hpc\"\ncomponents = [\"Compute\"]\n",
    );
    let o = site.run(&["mapping", "init", "--source", "github"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let fragment = stdout(&o);
    for cluster in ["archer2", "cirrus"] {
        assert!(
            fragment.contains(&format!("\n[clusters.{cluster}.also.github]\n")),
            "{fragment}"
        );
    }
    assert!(!fragment.contains("[settings]"), "{fragment}");
    assert!(!fragment.contains("[sources."), "{fragment}");

    // Appended as printed, every cluster reads both pages and the names check.
    let path = site.path().join("mapping.toml");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(&fragment);
    fs::write(&path, text).unwrap();
    let o = site.run(&["mapping", "check"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = render(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let index: Value =
        serde_json::from_slice(&fs::read(site.path().join("out/index.json")).unwrap()).unwrap();
    assert_eq!(
        index["clusters"]["cirrus"]["sources"],
        json!(["hpc", "github"]),
        "{index}"
    );

    // The primary source still gets a whole skeleton.
    let o = site.run(&["mapping", "init", "--source", "hpc"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("[settings]"), "{}", stdout(&o));
}
