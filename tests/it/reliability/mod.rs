//! Reliability: the real binary under the faults and inputs an operator
//! meets, one file per fault family:
//!
//! - `upstream`: upstream faults over v1 and v2, `Retry-After` and rate
//!   limits, paged lists, a component list that suddenly empties;
//! - `disk`: read-only and full filesystems on small tmpfs mounts, an
//!   unusable `state_dir`, a lock held by a process that dies;
//! - `crash`: `render` and `serve` killed with SIGKILL while a reader
//!   re-reads the MOTD;
//! - `attack`: hostile upstream text, templates that try to read files,
//!   secrets that must stay out of every file and message, traversal, body
//!   and header limits, slow clients;
//! - `load`: webhooks under load while upstream flaps.
//!
//! This file holds what they share: the two upstream states, the [`Rig`]
//! (a fake page and a site rendering it), file comparisons and the `serve`
//! helpers. `RELIABILITY.md` records what each test tried, how often, and
//! the result.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{code, stderr, stdout, Site};
use crate::common::{env_number, http_exchange, Served};
use crate::fake::{FakeStatuspage, Fault};

/// The key the v1 sites use; it must appear nowhere but in the request.
const KEY: &str = "k3y-Reliab1lity-5ecret-0042";
const PAGE: &str = "pg7rel";
const WEBHOOK_TOKEN: &str = "wh-Tok3n-reliability-77aa";
const REFRESH_TOKEN: &str = "rf-Tok3n-reliability-88bb";

mod attack;
mod crash;
mod disk;
mod load;
mod upstream;

// ---------------------------------------------------------------------------
// Upstream data: two states of one page, `a` and `b`, whose MOTDs differ in
// every item, so a file that is neither is caught.

fn component_rows(n: usize) -> Vec<Value> {
    let mut rows = vec![
        json!({"id": "login01", "name": "Login nodes", "status": "operational", "group": false}),
        json!({"id": "stor01", "name": "Storage", "status": "degraded_performance", "group": false}),
    ];
    rows.extend((2..n).map(|i| {
        json!({"id": format!("node{i:04}"), "name": format!("Node {i}"), "status": "operational", "group": false})
    }));
    rows
}

fn incident(tag: &str, i: usize, component: &str, name: &str, body: &str) -> Value {
    let at = format!("2025-06-02T{:02}:{:02}:00Z", 1 + i / 60, i % 60);
    json!({
        "id": format!("{tag}inc{i:03}"),
        "name": name,
        "status": "investigating",
        "impact": "major",
        "created_at": at,
        "updated_at": at,
        "shortlink": format!("https://stspg.io/{tag}{i}"),
        "components": [{"id": component, "name": "ignored"}],
        "incident_updates": [{
            "id": format!("{tag}upd{i:03}"),
            "status": "investigating",
            "body": body,
            "created_at": at,
            "display_at": at,
            "updated_at": at,
            "affected_components": [{"code": component, "name": "ignored"}],
        }],
    })
}

/// `n` open incidents tagged `tag`, half on the login nodes, half on storage,
/// each with a body of several lines.
fn incidents(tag: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let component = if i % 2 == 0 { "login01" } else { "stor01" };
            let body = format!(
                "State {tag}, item {i}: {}",
                "the scheduler is slow to answer while we investigate. ".repeat(5)
            );
            incident(
                tag,
                i,
                component,
                &format!("State {tag} incident number {i}"),
                &body,
            )
        })
        .collect()
}

fn summary(components: &[Value], incidents: &[Value]) -> Value {
    json!({
        "page": {"id": PAGE, "name": "Reliability page", "url": "https://status.example"},
        "components": components,
        "incidents": incidents,
        "scheduled_maintenances": [],
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V2,
}

/// A fake page and a site rendering it.
struct Rig {
    fake: FakeStatuspage,
    site: Site,
    api: Api,
}

impl Rig {
    fn new(api: Api) -> Rig {
        Self::with_settings(api, "")
    }

    fn with_settings(api: Api, extra_settings: &str) -> Rig {
        Self::with_sections(api, extra_settings, "")
    }

    /// With more `[settings]` lines and more sections (such as `[server]`).
    fn with_sections(api: Api, extra_settings: &str, sections: &str) -> Rig {
        let fake = FakeStatuspage::spawn();
        let source = match api {
            Api::V2 => format!(
                "[sources.hpc]\nkind = \"statuspage-public\"\nurl = \"{}\"\n",
                fake.url()
            ),
            Api::V1 => format!(
                "[sources.hpc]\nkind = \"statuspage\"\npage_id = \"{PAGE}\"\napi_key = {{ env = \"STATUSMOTD_RELIABILITY_KEY\" }}\napi_base = \"{}\"\n",
                fake.url()
            ),
        };
        let mapping = format!(
            "[settings]\ntimezone = \"UTC\"\nrequest_timeout = \"1s\"\nretries = 1\n{extra_settings}\n{source}\n\
             [clusters.alpha]\ncomponents = [\"Login nodes\"]\npage_wide = false\n\n\
             [clusters.beta]\ncomponents = [\"Storage\"]\npage_wide = false\n\n{sections}"
        );
        let rig = Rig {
            fake,
            site: Site::new(&mapping),
            api,
        };
        rig.serve_state("a", 12, 3);
        rig
    }

    /// Serves state `tag`: `n` incidents over `components` components.
    fn serve_state(&self, tag: &str, n: usize, components: usize) {
        self.serve(&component_rows(components), &incidents(tag, n));
    }

    fn serve(&self, components: &[Value], incidents: &[Value]) {
        match self.api {
            Api::V2 => {
                self.fake
                    .set_json("/api/v2/summary.json", summary(components, incidents));
                self.fake
                    .set_json("/api/v2/incidents.json", json!({"incidents": incidents}));
                self.fake.set_json(
                    "/api/v2/scheduled-maintenances.json",
                    json!({"scheduled_maintenances": []}),
                );
            }
            Api::V1 => {
                let base = format!("/pages/{PAGE}");
                self.fake
                    .set_json(&format!("{base}/components"), json!(components));
                self.fake
                    .set_json(&format!("{base}/component-groups"), json!([]));
                self.fake
                    .set_json(&format!("{base}/incidents/unresolved"), json!(incidents));
                self.fake
                    .set_json(&format!("{base}/incidents"), json!(incidents));
                for list in ["upcoming", "active_maintenance"] {
                    self.fake
                        .set_json(&format!("{base}/incidents/{list}"), json!([]));
                }
            }
        }
    }

    fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = self.site.cmd();
        cmd.env("STATUSMOTD_RELIABILITY_KEY", KEY);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// The same command as [`Self::run`], for spawning and killing.
    fn std_cmd(&self, args: &[&str]) -> StdCommand {
        let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("statusmotd"));
        cmd.current_dir(self.site.path())
            .env("STATUSMOTD_CONFIG", self.site.path().join("mapping.toml"))
            .env("STATUSMOTD_RELIABILITY_KEY", KEY)
            .env("STATUSMOTD_RELIABILITY_WEBHOOK", WEBHOOK_TOKEN)
            .env("STATUSMOTD_RELIABILITY_REFRESH", REFRESH_TOKEN)
            .env_remove("RUST_LOG")
            .args(args);
        cmd
    }

    fn render_ok(&self) -> Output {
        let o = self.run(&["render"]);
        assert_eq!(code(&o), 0, "render failed: {}", stderr(&o));
        o
    }

    fn out(&self) -> PathBuf {
        self.site.out("")
    }

    fn state_file(&self) -> PathBuf {
        self.site.path().join("state/hpc.snapshot.json")
    }

    /// The summary path (v2) or the component list (v1): the document whose
    /// shape the wrong-shape faults break.
    fn main_document(&self) -> String {
        match self.api {
            Api::V2 => "/api/v2/summary.json".into(),
            Api::V1 => format!("/pages/{PAGE}/components"),
        }
    }
}

/// Every file under `dir` but the staging directory: bytes, mtime, inode.
fn files_under(dir: &Path) -> BTreeMap<String, (Vec<u8>, i64, u64)> {
    let mut out = BTreeMap::new();
    walk(dir, &mut |path| {
        let rel = path
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with(".statusmotd") {
            return;
        }
        let meta = fs::symlink_metadata(path).unwrap();
        out.insert(rel, (fs::read(path).unwrap(), meta.mtime(), meta.ino()));
    });
    out
}

/// Calls `f` with every regular file under `dir`, recursively.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, f);
        } else {
            f(&path);
        }
    }
}

fn assert_same_files(
    before: &BTreeMap<String, (Vec<u8>, i64, u64)>,
    after: &BTreeMap<String, (Vec<u8>, i64, u64)>,
    during: &str,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "files appeared or vanished during {during}"
    );
    for (name, (bytes, mtime, ino)) in before {
        let (b, m, i) = &after[name];
        assert!(bytes == b, "{name} changed during {during}");
        assert_eq!((mtime, ino), (m, i), "{name} touched during {during}");
    }
}

// ---------------------------------------------------------------------------
// Serve: crashes, attacks on the HTTP side, load while upstream flaps.

const SERVER: &str = "[server]\nlisten = \"127.0.0.1:0\"\n\
    webhook_token = { env = \"STATUSMOTD_RELIABILITY_WEBHOOK\" }\n\
    refresh_token = { env = \"STATUSMOTD_RELIABILITY_REFRESH\" }\n";

/// A site set up for `serve`: quick debounce, no polling of its own.
fn serve_rig(api: Api) -> Rig {
    Rig::with_sections(api, "debounce = \"0s\"\npoll_interval = \"1h\"\n", SERVER)
}

/// `statusmotd serve` for `rig`, at `-vv` when `verbose`.
fn start_serve(rig: &Rig, verbose: bool) -> Served {
    let mut args = vec!["serve"];
    if verbose {
        args.insert(0, "-vv");
    }
    Served::spawn(rig.std_cmd(&args))
}

/// One raw HTTP/1.1 exchange, exactly as written (no path normalization):
/// the status line's code and the whole answer.
fn raw_http(addr: &str, request: &[u8]) -> (u16, String) {
    http_exchange(addr, request, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("cannot connect to {addr}"))
}

fn get(addr: &str, path: &str) -> (u16, String) {
    raw_http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn post(addr: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw_http(addr, &request)
}

fn webhook_body() -> Vec<u8> {
    json!({
        "meta": {"unsubscribe": "https://x", "documentation": "https://y"},
        "page": {"id": PAGE, "status_indicator": "major", "status_description": "Partial outage"},
        "component": {"id": "login01", "name": "Login nodes", "status": "major_outage"},
        "component_update": {"old_status": "operational", "new_status": "major_outage"}
    })
    .to_string()
    .into_bytes()
}

/// Waits until `alpha/motd` holds `expected`, or fails after `limit`.
fn wait_for_motd(rig: &Rig, expected: &[u8], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if fs::read(rig.site.out("alpha/motd")).is_ok_and(|b| b == expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "alpha/motd never became the expected version:\n{}",
            rig.site.read("alpha/motd")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The MOTD `render` would write for the current upstream state.
fn expected_motd(rig: &Rig) -> Vec<u8> {
    let o = rig.run(&["show", "alpha"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    o.stdout
}
