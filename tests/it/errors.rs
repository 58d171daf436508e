//! Whole error outputs, pinned as insta snapshots: what an operator reads
//! when `mapping.toml` is wrong, when `mapping check` cannot resolve a name,
//! and what `gate` prints for each of its answers. Each snapshot holds the
//! exit code, stdout and stderr in full, so a changed word, a lost `hint:`
//! line or a new line of noise shows in review.
//!
//! Paths and ports change from run to run: the site's temporary directory
//! reads `[SITE]` and the fake Statuspage's address `[UPSTREAM]`.

use std::fs;
use std::process::Output;

use serde_json::{json, Value};

use crate::common::{code, stderr, stdout, Site};
use crate::fake::{FakeStatuspage, Fault};

/// The time every command here is run as; the data was fetched a minute
/// before.
const NOW: &str = "2025-06-02T12:00:00Z";
const FETCHED_AT: &str = "2025-06-02T11:59:00Z";

/// Nothing listens there: a configuration error must be found before any
/// fetch.
const NOWHERE: &str = "http://127.0.0.1:9";

/// Exit code, stdout and stderr of `o`, with `site`'s directory and the
/// `upstream` address (when given) replaced by placeholders.
fn transcript(o: &Output, site: &Site, upstream: Option<&str>) -> String {
    let mut text = format!(
        "exit code: {}\n--- stdout\n{}--- stderr\n{}",
        code(o),
        stdout(o),
        stderr(o)
    );
    text = text.replace(&site.path().display().to_string(), "[SITE]");
    if let Some(url) = upstream {
        text = text.replace(url.trim_end_matches('/'), "[UPSTREAM]");
    }
    text
}

// ---------------------------------------------------------------------------
// Bad mapping files

/// A public source at [`NOWHERE`] and one cluster, with `settings` and
/// `rest` put in their places.
fn bad_mapping(settings: &str, source: &str, rest: &str) -> String {
    format!(
        "[settings]\ntimezone = \"UTC\"\n{settings}\n[sources.status]\n{source}\n\
         [clusters.alpha]\ncomponents = [\"Login nodes\"]\n{rest}"
    )
}

const PUBLIC: &str = "kind = \"statuspage-public\"\nurl = \"http://127.0.0.1:9\"\n";

#[test]
fn bad_mapping_files_print_these_whole_errors() {
    assert!(PUBLIC.contains(NOWHERE));
    let manage = |api_key: &str| {
        format!("kind = \"statuspage\"\npage_id = \"abc\"\napi_key = {api_key}\napi_base = \"{NOWHERE}\"\n")
    };
    let cases = [
        (
            "unknown_key",
            bad_mapping("ouptut_dir = \"out\"\n", PUBLIC, ""),
        ),
        (
            "bad_duration",
            bad_mapping("upcoming = \"7 days\"\n", PUBLIC, ""),
        ),
        (
            "bad_cluster_name",
            bad_mapping(
                "",
                PUBLIC,
                "\n[clusters.\"a/b\"]\ncomponents = [\"Storage\"]\n",
            ),
        ),
        (
            "inline_secret",
            bad_mapping("", &manage("\"sk-inline-0042\""), ""),
        ),
        (
            "missing_secret_variable",
            bad_mapping("", &manage("{ env = \"STATUSMOTD_ERRORS_UNSET_KEY\" }"), ""),
        ),
        (
            "unknown_source",
            bad_mapping("", PUBLIC, "source = \"nope\"\n"),
        ),
        (
            "colliding_outputs",
            bad_mapping(
                "",
                PUBLIC,
                "\n[clusters.alpha-ood]\ncomponents = [\"Storage\"]\n\n\
                 [[outputs]]\ntemplate = \"ood.md.j2\"\npath = \"{cluster}-ood/motd\"\n",
            ),
        ),
        (
            "output_dir_root",
            bad_mapping("output_dir = \"/\"\n", PUBLIC, ""),
        ),
    ];
    for (name, mapping) in cases {
        let site = Site::new(&mapping);
        let o = site
            .cmd()
            .env_remove("STATUSMOTD_ERRORS_UNSET_KEY")
            .arg("render")
            .output()
            .unwrap();
        assert!(
            !stderr(&o).contains("sk-inline-0042"),
            "{name}: the secret is printed"
        );
        assert!(!site.out("").exists(), "{name}: something was written");
        insta::assert_snapshot!(
            format!("mapping_{name}"),
            format!(
                "{mapping}=== statusmotd render\n{}",
                transcript(&o, &site, None)
            )
        );
    }
}

// ---------------------------------------------------------------------------
// `mapping check` against the fake Statuspage

fn component(id: &str, name: &str, status: &str) -> Value {
    json!({
        "id": id, "name": name, "status": status, "group": false, "group_id": null,
        "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-06-02T09:00:00Z",
        "position": 1, "description": null, "showcase": false, "only_show_if_degraded": false,
    })
}

/// A page whose login nodes are down with one open incident, whose storage
/// is fine, and which lists two components named `Vault`.
fn summary() -> Value {
    let at = "2025-06-02T09:00:00Z";
    json!({
        "page": {"id": "errors000001", "name": "Test", "url": "https://status.example.org",
                 "time_zone": "Etc/UTC", "updated_at": at},
        "components": [
            component("login0000001", "Login nodes", "major_outage"),
            component("storage00001", "Storage", "operational"),
            component("vault0000001", "Vault", "operational"),
            component("vault0000002", "Vault", "operational"),
        ],
        "incidents": [{
            "id": "inc0001", "name": "Login nodes unreachable", "status": "investigating",
            "impact": "major", "created_at": at, "updated_at": at, "started_at": at,
            "monitoring_at": null, "resolved_at": null,
            "shortlink": "https://stspg.io/inc0001",
            "incident_updates": [{
                "id": "inc0001-u1", "status": "investigating", "body": "We are looking into it.",
                "created_at": at, "updated_at": at, "display_at": at,
                "affected_components": [{"code": "login0000001", "name": "Login nodes",
                                         "old_status": "operational", "new_status": "major_outage"}],
            }],
            "components": [component("login0000001", "Login nodes", "major_outage")],
        }],
        "scheduled_maintenances": [],
        "status": {"indicator": "major", "description": "Major outage"},
    })
}

/// A fake page serving [`summary`] and a site whose mapping points at it
/// with `clusters`.
fn site_over_fake(clusters: &str) -> (FakeStatuspage, Site) {
    let fake = FakeStatuspage::spawn();
    fake.set_json("/api/v2/summary.json", summary());
    let site = Site::new(&format!(
        "[settings]\ntimezone = \"UTC\"\nrequest_timeout = \"1s\"\nretries = 0\n\n\
         [sources.status]\nkind = \"statuspage-public\"\nurl = \"{}\"\n\n{clusters}",
        fake.url()
    ));
    (fake, site)
}

#[test]
fn mapping_check_with_an_unknown_name_prints_this_whole_error() {
    let (fake, site) =
        site_over_fake("[clusters.alpha]\ncomponents = [\"Login nodse\"]\npage_wide = false\n");
    let o = site.run(&["mapping", "check"]);
    insta::assert_snapshot!(transcript(&o, &site, Some(&fake.url())));
}

#[test]
fn mapping_check_with_an_ambiguous_name_prints_this_whole_error() {
    let (fake, site) =
        site_over_fake("[clusters.alpha]\ncomponents = [\"Vault\"]\npage_wide = false\n");
    let o = site.run(&["mapping", "check"]);
    insta::assert_snapshot!(transcript(&o, &site, Some(&fake.url())));
}

// ---------------------------------------------------------------------------
// `gate`

const GATE_CLUSTERS: &str =
    "[clusters.alpha]\ncomponents = [\"Login nodes\"]\npage_wide = false\n\n\
     [clusters.beta]\ncomponents = [\"Storage\"]\npage_wide = false\n";

/// A site over the fake with its data saved in `snap.json`, fetched (as
/// the file says) at [`FETCHED_AT`].
fn gate_site() -> (FakeStatuspage, Site) {
    let (fake, site) = site_over_fake(GATE_CLUSTERS);
    let snap = site.path().join("snap.json");
    let o = site.run(&["fetch", "--save", snap.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut saved: Value = serde_json::from_str(&fs::read_to_string(&snap).unwrap()).unwrap();
    saved["sources"]["status"]["fetched_at"] = json!(FETCHED_AT);
    fs::write(&snap, serde_json::to_string_pretty(&saved).unwrap()).unwrap();
    (fake, site)
}

#[test]
fn gate_prints_these_whole_answers() {
    let (fake, site) = gate_site();
    let cases: [(&str, &[&str]); 4] = [
        (
            "clear",
            &["gate", "beta", "--snapshot", "snap.json", "--now", NOW],
        ),
        (
            "blocked",
            &["gate", "alpha", "--snapshot", "snap.json", "--now", NOW],
        ),
        (
            "blocked_twice",
            &[
                "gate",
                "alpha",
                "--snapshot",
                "snap.json",
                "--now",
                NOW,
                "--block-on",
                "incident,degraded",
            ],
        ),
        (
            "too_old",
            &[
                "gate",
                "alpha",
                "--snapshot",
                "snap.json",
                "--now",
                "2025-06-03T12:00:00Z",
                "--max-age",
                "1h",
            ],
        ),
    ];
    for (name, args) in cases {
        let o = site.run(args);
        insta::assert_snapshot!(
            format!("gate_{name}"),
            format!(
                "=== statusmotd {}\n{}",
                args.join(" "),
                transcript(&o, &site, Some(&fake.url()))
            )
        );
    }
    // No data: upstream down and nothing kept in `state_dir`. One document
    // fails, so the message does not depend on which request ends first.
    fake.fault_at("/api/v2/summary.json", Fault::Status(500));
    let o = site.run(&["gate", "alpha"]);
    insta::assert_snapshot!(
        "gate_no_data",
        format!(
            "=== statusmotd gate alpha (summary.json answering 500, no state)\n{}",
            transcript(&o, &site, Some(&fake.url()))
        )
    );
}
