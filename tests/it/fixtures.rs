//! The synthetic Statuspage pages of `tests/fixtures/statuspage/`, rendered
//! by the real binary: tests that stand on their own in any clone.
//!
//! Each folder there is one page: the JSON a Statuspage server would send
//! (v2 `summary.json`, `incidents.json`, `scheduled-maintenances.json`, or
//! the v1 lists) and a `case.toml` saying which API it is, the `--now` to
//! render at and the clusters to map. The fake Statuspage serves the JSON;
//! `statusmotd render --now` writes every file and `statusmotd fetch --save`
//! the normalized snapshot, and both are compared with insta snapshots.
//! The quirks each page carries are listed in `tests/fixtures/README.md`.
//!
//! The real captures in `../shared/fixtures/statuspage/` are the second
//! layer, in `cli.rs` and `source.rs`; these pages were written to carry the
//! same quirks, so a clone without `../shared` still tests them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::{assert_terminal_safe, code, stderr, stdout, Site};
use crate::fake::FakeStatuspage;

/// Where the pages are, from the crate root.
pub(crate) const FIXTURES: &str = "tests/fixtures/statuspage";

/// The environment variable the v1 cases read their API key from.
pub(crate) const KEY_ENV: &str = "STATUSMOTD_FIXTURE_KEY";

/// One folder of `tests/fixtures/statuspage/`.
pub(crate) struct Case {
    api: String,
    page_id: Option<String>,
    now: String,
    /// The `[clusters.*]` tables of `case.toml`, as TOML.
    clusters: String,
}

impl Case {
    pub(crate) fn load(case_toml: &Path) -> Case {
        let text = fs::read_to_string(case_toml).unwrap();
        let mut table: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("`{}`: {e}", case_toml.display()));
        let mut take = |key: &str| {
            table
                .remove(key)
                .and_then(|v| v.as_str().map(str::to_owned))
        };
        let api = take("api").expect("case.toml names its `api`");
        let page_id = take("page_id");
        let now = take("now").expect("case.toml names its `now`");
        let clusters = table
            .remove("clusters")
            .expect("case.toml maps at least one cluster");
        assert!(table.is_empty(), "unknown keys in case.toml: {table:?}");
        let mut wrapped = toml::Table::new();
        wrapped.insert("clusters".into(), clusters);
        Case {
            api,
            page_id,
            now,
            clusters: toml::to_string(&wrapped).unwrap(),
        }
    }

    /// Serves every JSON file of `dir` where the case's API has it:
    /// `summary.json` -> `/api/v2/summary.json` (v2);
    /// `incidents-unresolved.json` -> `/pages/{id}/incidents/unresolved` (v1).
    /// A v1 list the folder leaves out is served empty.
    pub(crate) fn serve(&self, dir: &Path, fake: &FakeStatuspage) {
        let mut files: BTreeMap<String, Value> = BTreeMap::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
                let text = fs::read_to_string(&path).unwrap();
                let json = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("`{}` is not JSON: {e}", path.display()));
                files.insert(name, json);
            }
        }
        match self.api.as_str() {
            "v2" => {
                for (name, json) in files {
                    fake.set_json(&format!("/api/v2/{name}.json"), json);
                }
            }
            "v1" => {
                let id = self.page_id.as_deref().expect("a v1 case names `page_id`");
                for list in [
                    "components",
                    "component-groups",
                    "incidents",
                    "incidents-unresolved",
                    "incidents-upcoming",
                    "incidents-active_maintenance",
                ] {
                    files
                        .entry(list.to_owned())
                        .or_insert_with(|| Value::Array(Vec::new()));
                }
                for (name, json) in files {
                    let route = match name.strip_prefix("incidents-") {
                        Some(list) => format!("incidents/{list}"),
                        None => name,
                    };
                    fake.set_json(&format!("/pages/{id}/{route}"), json);
                }
            }
            other => panic!("unknown api `{other}` in case.toml"),
        }
    }

    pub(crate) fn mapping(&self, url: &str) -> String {
        let source = match self.api.as_str() {
            "v1" => format!(
                "kind = \"statuspage\"\npage_id = \"{}\"\napi_key = {{ env = \"{KEY_ENV}\" }}\n\
                 api_base = \"{url}\"",
                self.page_id.as_deref().unwrap_or_default()
            ),
            _ => format!("kind = \"statuspage-public\"\nurl = \"{url}\""),
        };
        format!(
            "[settings]\ntimezone = \"UTC\"\nrequest_timeout = \"5s\"\nretries = 1\n\n\
             [sources.status]\n{source}\n\n{}",
            self.clusters
        )
    }
}

/// Every file under `out/` but `index.json` (which tells data ages, and so
/// the time of the test run) and the staging area: path, mtime, bytes.
fn written_files(out: &Path) -> Vec<(String, jiff::Timestamp, String)> {
    fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, jiff::Timestamp, String)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if rel == ".statusmotd" || rel == "index.json" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let modified = fs::metadata(&path).unwrap().modified().unwrap();
                let mtime = jiff::Timestamp::try_from(modified).unwrap();
                files.push((rel, mtime, fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(out, out, &mut files);
    files.sort();
    files
}

/// The normalized snapshot `fetch --save` wrote, one component or group a
/// line and each incident as indented JSON, with the time of the fetch (the
/// only thing that changes from run to run) blanked.
fn describe_snapshot(saved: &str) -> String {
    let doc: Value = serde_json::from_str(saved).unwrap();
    assert_eq!(doc["format"], 1, "snapshot format");
    let sources = doc["sources"].as_object().unwrap();
    assert_eq!(sources.len(), 1, "one source per case");
    let snap = &sources["status"];
    assert!(
        snap["fetched_at"].is_string(),
        "fetched_at: {}",
        snap["fetched_at"]
    );
    let line = |v: &Value| serde_json::to_string(v).unwrap();
    let list = |key: &str| snap[key].as_array().cloned().unwrap_or_default();
    let mut out = format!(
        "page: {}\nfetched_at: [when fetched]\n",
        line(&snap["page"])
    );
    for key in ["components", "groups"] {
        let items = list(key);
        writeln!(out, "{key} ({}):", items.len()).unwrap();
        for item in &items {
            writeln!(out, "  {}", line(item)).unwrap();
        }
    }
    let incidents = list("incidents");
    writeln!(out, "incidents ({}), newest first:", incidents.len()).unwrap();
    for incident in &incidents {
        out.push_str(&serde_json::to_string_pretty(incident).unwrap());
        out.push('\n');
    }
    out
}

/// Every string in a JSON document passed the sanitizer.
fn assert_strings_terminal_safe(value: &Value) {
    match value {
        Value::String(s) => assert_terminal_safe(s),
        Value::Array(items) => items.iter().for_each(assert_strings_terminal_safe),
        Value::Object(map) => map.values().for_each(assert_strings_terminal_safe),
        _ => {}
    }
}

#[test]
fn synthetic_pages_render_and_normalize() {
    insta::glob!("../fixtures/statuspage", "*/case.toml", |case_toml| {
        let dir = case_toml.parent().unwrap();
        let case = Case::load(case_toml);
        let fake = FakeStatuspage::spawn();
        case.serve(dir, &fake);
        let site = Site::new(&case.mapping(&fake.url()));
        let run = |args: &[&str]| {
            site.cmd()
                .env(KEY_ENV, "k-fixture")
                .args(args)
                .output()
                .unwrap()
        };

        let o = run(&["render", "--now", &case.now]);
        assert_eq!(code(&o), 0, "render failed: {}", stderr(&o));
        let mut requests = fake.request_log();
        requests.sort();
        let now: jiff::Timestamp = case.now.parse().unwrap();
        let mut rendered = format!(
            "$ statusmotd render --now {}\n{}\nrequests:\n",
            case.now,
            stdout(&o)
        );
        for r in &requests {
            writeln!(rendered, "  {r}").unwrap();
        }
        for (rel, mtime, text) in written_files(&site.out("")) {
            // A calendar is read by a real iCalendar parser, and its lines
            // end in CRLF as RFC 5545 asks: unfolded, with plain line
            // breaks, it is held to the same rule as every other file, and
            // shown with plain line breaks.
            let text = if rel.ends_with("/maintenance.ics") {
                crate::support::ical::assert_wire_format(text.as_bytes());
                crate::support::ical::parse(text.as_bytes());
                assert_terminal_safe(&text.replace("\r\n ", "").replace("\r\n", "\n"));
                text.replace("\r\n", "\n")
            } else {
                assert_terminal_safe(&text);
                text
            };
            // The mtime rule: never later than the render time.
            assert!(mtime <= now, "{rel}: mtime {mtime} is after --now {now}");
            write!(rendered, "\n--- {rel} (mtime {mtime})\n{text}").unwrap();
        }
        insta::assert_snapshot!("render", rendered);

        // The same page at the same time again writes nothing.
        let again = run(&["render", "--now", &case.now]);
        assert_eq!(code(&again), 0, "{}", stderr(&again));
        assert_eq!(stdout(&again), "", "a second render changed files");

        let saved = site.path().join("snapshot.json");
        let o = run(&["fetch", "--save", saved.to_str().unwrap()]);
        assert_eq!(code(&o), 0, "fetch failed: {}", stderr(&o));
        let saved = fs::read_to_string(saved).unwrap();
        assert_strings_terminal_safe(&serde_json::from_str(&saved).unwrap());
        insta::assert_snapshot!("snapshot", describe_snapshot(&saved));
    });
}

/// `tests/fixtures/README.md` names every page folder, so the list of quirks
/// there stays complete.
#[test]
fn the_fixtures_readme_names_every_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("tests/fixtures/README.md")).unwrap();
    let mut pages = 0;
    for entry in fs::read_dir(root.join(FIXTURES)).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            pages += 1;
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(
                readme.contains(&format!("`{name}/`")),
                "tests/fixtures/README.md does not describe `{name}/`"
            );
            assert!(
                path.join("case.toml").is_file(),
                "`{name}/` has no case.toml"
            );
        }
    }
    assert!(pages > 0, "no synthetic pages in {FIXTURES}");
}
