//! The snapshot file format as a contract: `statusmotd schema` prints a JSON
//! Schema that every file `statusmotd fetch --save` writes satisfies, for
//! each synthetic page of `tests/fixtures/statuspage/` and each real capture
//! of `../shared/fixtures/statuspage/`, and such a file reads back through
//! the `file` source as the same snapshot.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{json, Value};
use statusmotd::model::Snapshot;
use statusmotd::source::file::{self, FileSourceErrorKind};

use crate::cli::{code, json_fixture, stderr, stdout, v2_mapping, v2_site, Site};
use crate::fake::FakeStatuspage;
use crate::fixtures::{Case, FIXTURES, KEY_ENV};

/// What `statusmotd schema` prints, compiled as the validator a site
/// script's author would use: draft 2020-12, formats asserted.
fn schema_validator() -> jsonschema::Validator {
    let o = Command::cargo_bin("statusmotd")
        .unwrap()
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let schema: Value = serde_json::from_str(&stdout(&o)).expect("the schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

/// Every complaint of `validator` about `doc`, as `path: message` lines.
fn problems(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Runs `fetch --save` in `site` and returns the path written.
fn fetch_save(site: &Site, env: &[(&str, &str)]) -> PathBuf {
    let saved = site.path().join("snapshot.json");
    let mut cmd = site.cmd();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd
        .args(["fetch", "--save", saved.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "fetch failed: {}", stderr(&o));
    saved
}

/// The saved file satisfies the schema, and the `file` source reads it
/// back as the very snapshot `fetch` saved (already sanitized, so
/// sanitizing again changes nothing).
fn assert_valid_and_round_trips(validator: &jsonschema::Validator, saved: &Path, what: &str) {
    let text = fs::read_to_string(saved).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let found = problems(validator, &doc);
    assert!(
        found.is_empty(),
        "{what}: `fetch --save` output breaks the schema:\n{}",
        found.join("\n")
    );
    let sources = doc["sources"].as_object().unwrap();
    assert_eq!(sources.len(), 1, "{what}: one source");
    let (_, saved_snap) = sources.iter().next().unwrap();
    let saved_snap: Snapshot = serde_json::from_value(saved_snap.clone()).unwrap();
    let read = file::read(saved).unwrap_or_else(|e| panic!("{what}: {e:#}"));
    assert_eq!(
        read, saved_snap,
        "{what}: the file source reads what fetch saved"
    );
    assert_eq!(
        read,
        saved_snap.clone().sanitized(),
        "{what}: and it is sanitized"
    );
}

#[test]
fn schema_prints_the_shipped_schema() {
    let o = Command::cargo_bin("statusmotd")
        .unwrap()
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let shipped = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/snapshot.schema.json"),
    )
    .unwrap();
    assert_eq!(stdout(&o), shipped);
    let schema: Value = serde_json::from_str(&shipped).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    // The schema is itself valid against its meta-schema.
    jsonschema::meta::validate(&schema).expect("a valid draft 2020-12 schema");

    let help = Command::cargo_bin("statusmotd")
        .unwrap()
        .args(["schema", "--help"])
        .output()
        .unwrap();
    assert_eq!(code(&help), 0);
    let help = stdout(&help);
    assert!(
        help.contains("fetch --save") && help.contains("`file`"),
        "{help}"
    );
}

#[test]
fn the_schema_validates_fetch_save_of_every_synthetic_page() {
    let validator = schema_validator();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURES);
    let mut pages = 0;
    for entry in fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let case_toml = dir.join("case.toml");
        if !case_toml.is_file() {
            continue;
        }
        pages += 1;
        let case = Case::load(&case_toml);
        let fake = FakeStatuspage::spawn();
        case.serve(&dir, &fake);
        let site = Site::new(&case.mapping(&fake.url()));
        let saved = fetch_save(&site, &[(KEY_ENV, "k-fixture")]);
        assert_valid_and_round_trips(&validator, &saved, &dir.display().to_string());
    }
    assert!(pages > 0, "no synthetic pages in {FIXTURES}");
}

#[test]
fn the_schema_validates_fetch_save_of_every_real_capture() {
    let validator = schema_validator();
    // `fetch` resolves no name: any cluster will do.
    let clusters = "[clusters.all]\ncomponents = [\"any\"]\n";

    let Some(github) = json_fixture("v2-summary-github-incident.json") else {
        return;
    };
    let mut checked = 0;
    for (name, summary) in [
        ("v2-summary-github-incident.json", github.clone()),
        (
            "v2-summary-docs-example-maintenance.json",
            json_fixture("v2-summary-docs-example-maintenance.json").unwrap(),
        ),
    ] {
        let (_fake, site) = v2_site(summary, clusters);
        assert_valid_and_round_trips(&validator, &fetch_save(&site, &[]), name);
        checked += 1;
    }

    // `incidents.json` beside a summary without incidents of its own.
    let fake = FakeStatuspage::spawn();
    let mut summary = github;
    summary["incidents"] = json!([]);
    fake.set_json("/api/v2/summary.json", summary);
    fake.set_json(
        "/api/v2/incidents.json",
        json_fixture("v2-incidents-github.json").unwrap(),
    );
    let site = Site::new(&v2_mapping(&fake.url(), clusters));
    assert_valid_and_round_trips(
        &validator,
        &fetch_save(&site, &[]),
        "v2-incidents-github.json",
    );
    checked += 1;

    // `components.json` with group rows, served as a summary.
    let components = json_fixture("v2-components-hashicorp-groups.json").unwrap();
    let (_fake, site) = v2_site(
        json!({"page": components["page"], "components": components["components"],
               "incidents": [], "scheduled_maintenances": []}),
        clusters,
    );
    assert_valid_and_round_trips(
        &validator,
        &fetch_save(&site, &[]),
        "v2-components-hashicorp-groups.json",
    );
    checked += 1;

    // The manage API v1 objects: page, component, group, incident.
    let page = json_fixture("v1-page.json").unwrap();
    let component = json_fixture("v1-component.json").unwrap();
    let group = json_fixture("v1-component_group.json").unwrap();
    let incident = json_fixture("v1-incident.json").unwrap();
    let fake = FakeStatuspage::spawn();
    let id = page["id"].as_str().unwrap().to_owned();
    let mut components = incident["components"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    components.push(component);
    fake.set_json(&format!("/pages/{id}"), page);
    fake.set_json(&format!("/pages/{id}/components"), Value::Array(components));
    fake.set_json(&format!("/pages/{id}/component-groups"), json!([group]));
    fake.set_json(&format!("/pages/{id}/incidents"), json!([incident]));
    for list in ["unresolved", "upcoming", "active_maintenance"] {
        fake.set_json(&format!("/pages/{id}/incidents/{list}"), json!([]));
    }
    let site = Site::new(&format!(
        "[settings]\ntimezone = \"UTC\"\nrequest_timeout = \"5s\"\nretries = 1\n\n\
         [sources.v1]\nkind = \"statuspage\"\npage_id = \"{id}\"\n\
         api_key = {{ env = \"{KEY_ENV}\" }}\napi_base = \"{}\"\n\n{clusters}",
        fake.url()
    ));
    assert_valid_and_round_trips(
        &validator,
        &fetch_save(&site, &[(KEY_ENV, "k-fixture")]),
        "v1-*.json",
    );
    checked += 1;
    assert_eq!(checked, 5);
}

/// A saved snapshot of a synthetic page with an incident, to break.
fn saved_incident_page() -> (Value, tempfile::TempDir) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(FIXTURES)
        .join("v2-incident-groups");
    let case = Case::load(&dir.join("case.toml"));
    let fake = FakeStatuspage::spawn();
    case.serve(&dir, &fake);
    let site = Site::new(&case.mapping(&fake.url()));
    let saved = fetch_save(&site, &[]);
    let doc = serde_json::from_str(&fs::read_to_string(saved).unwrap()).unwrap();
    (doc, site.dir)
}

#[test]
fn a_wrong_enum_or_missing_field_costs_its_item_and_names_its_path() {
    let validator = schema_validator();
    let (doc, dir) = saved_incident_page();
    assert!(problems(&validator, &doc).is_empty());
    let path = dir.path().join("status.json");

    let mut wrong = doc.clone();
    wrong["sources"]["status"]["incidents"][3]["impact"] = "huge".into();
    let found = problems(&validator, &wrong);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("/sources/status/incidents/3/impact: \"huge\" is not one of"),
        "{found:?}"
    );
    // Read as a source, the broken incident alone is left out, and said.
    fs::write(&path, wrong.to_string()).unwrap();
    let (snap, skipped) = file::read_reporting(&path).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        snap.incidents.len() + 1,
        doc["sources"]["status"]["incidents"]
            .as_array()
            .unwrap()
            .len()
    );
    assert_eq!(
        skipped,
        [
            "skipped item 3 of `incidents`: `/sources/status/incidents/3/impact`: \"huge\" \
          is not one of \"none\", \"minor\", \"major\", \"critical\", \"maintenance\""
        ]
    );

    let mut missing = doc.clone();
    missing["sources"]["status"]["components"][1]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let found = problems(&validator, &missing);
    assert_eq!(
        found,
        ["/sources/status/components/1: \"name\" is a required property"]
    );
    fs::write(&path, missing.to_string()).unwrap();
    let (snap, skipped) = file::read_reporting(&path).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!snap.components.is_empty());
    assert_eq!(
        skipped,
        ["skipped item 1 of `components`: `/sources/status/components/1`: \"name\" is a required property"]
    );
    // Outside any item, the file is refused whole, with a hint.
    let mut page = doc.clone();
    page["sources"]["status"]["fetched_at"] = "yesterday".into();
    fs::write(&path, page.to_string()).unwrap();
    let e = file::read(&path).unwrap_err();
    assert_eq!(e.kind(), FileSourceErrorKind::Invalid);
    assert!(
        format!("{e:#}").contains(
            "`/sources/status/fetched_at`: \"yesterday\" is not a \"date-time\"\n\
             hint: `statusmotd schema`"
        ),
        "{e:#}"
    );

    // A component status outside the five, a kind outside the two, a time
    // that is not RFC 3339.
    let mut more = doc;
    let snap = &mut more["sources"]["status"];
    snap["components"][0]["status"] = "down".into();
    snap["incidents"][0]["kind"] = "outage".into();
    snap["incidents"][1]["updates"][0]["created_at"] = "12/03/2024".into();
    let mut found = problems(&validator, &more);
    found.sort();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("/sources/status/components/0/status: \"down\""),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("/sources/status/incidents/0/kind: \"outage\""),
        "{found:?}"
    );
    assert_eq!(
        found[2],
        "/sources/status/incidents/1/updates/0/created_at: \"12/03/2024\" is not a \"date-time\""
    );
}

/// The minimal file the README shows a cron script writing is valid, and
/// reads.
#[test]
fn the_readme_example_file_reads() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split_once("## The `file` source")
        .expect("README has a section on the file source")
        .1;
    let example = section
        .split_once("```json\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the section shows a JSON example")
        .0;
    let doc: Value = serde_json::from_str(example).unwrap();
    assert_eq!(problems(&schema_validator(), &doc), Vec::<String>::new());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status.json");
    fs::write(&path, example).unwrap();
    let snap = file::read(&path).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(snap.incidents[0].components, ["lustre"]);
}
