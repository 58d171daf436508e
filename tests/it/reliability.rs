//! Reliability: the real binary under the faults and inputs an operator
//! meets. Upstream faults over v1 and v2, disk faults (read-only and full
//! filesystems on small tmpfs mounts, an unusable `state_dir`, a lock held by
//! a process that dies), renders killed with SIGKILL while a reader re-reads
//! the MOTD, hostile upstream text, templates that try to read files, and
//! secrets that must stay out of every file and message.
//!
//! `RELIABILITY.md` records what each test tried, how often, and the result.
//!
//! The disk tests mount tmpfs, which needs root (CI runs as root). Where
//! mounting is impossible they fail, unless `STATUSMOTD_SKIP_MOUNT_TESTS=1`
//! says to skip them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::{code, stderr, stdout, Site};
use crate::common::Served;
use crate::fake::{FakeStatuspage, Fault};

/// The key the v1 sites use; it must appear nowhere but in the request.
const KEY: &str = "k3y-Reliab1lity-5ecret-0042";
const PAGE: &str = "pg7rel";
const WEBHOOK_TOKEN: &str = "wh-Tok3n-reliability-77aa";
const REFRESH_TOKEN: &str = "rf-Tok3n-reliability-88bb";

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
// 1. Upstream faults

/// How a fault is set up on the fake.
enum Trouble {
    /// On every request.
    Everywhere(Fault),
    /// On one `path?query` alone, the rest answering state `b`.
    At(String, Fault),
    /// This body, with this status, for the main document.
    Body(u16, Vec<u8>),
    /// State `b` with no components at all.
    NoComponents,
}

struct Case {
    what: &'static str,
    trouble: Trouble,
    /// What stderr must say.
    says: &'static str,
}

fn cases(api: Api) -> Vec<Case> {
    let rate_limited = |status| {
        Trouble::Everywhere(Fault::RateLimited {
            status,
            retry_after: "3600".into(),
        })
    };
    let mut cases = vec![
        Case {
            what: "500",
            trouble: Trouble::Everywhere(Fault::Status(500)),
            says: "500",
        },
        Case {
            what: "502 with an HTML body",
            trouble: Trouble::Everywhere(Fault::StatusWithBody(
                502,
                "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
            )),
            says: "502",
        },
        Case {
            what: "420 with Retry-After longer than the bound",
            trouble: rate_limited(420),
            says: "420",
        },
        Case {
            what: "429 with Retry-After longer than the bound",
            trouble: rate_limited(429),
            says: "429",
        },
        Case {
            what: "hang past the timeout",
            trouble: Trouble::Everywhere(Fault::Hang),
            says: "timed out",
        },
        Case {
            what: "connection reset",
            trouble: Trouble::Everywhere(Fault::Reset),
            says: "connection",
        },
        Case {
            what: "truncated JSON",
            trouble: Trouble::Everywhere(Fault::Truncated),
            says: "invalid JSON",
        },
        Case {
            what: "HTML with 200",
            trouble: Trouble::Everywhere(Fault::Garbage),
            says: "invalid JSON",
        },
        // Invalid UTF-8 inside a JSON string is no fault any more: the bad
        // bytes become U+FFFD and the page is read
        // (`trust_source::one_bad_value_costs_one_incident_not_the_page`).
        Case {
            what: "empty component list after a full one",
            trouble: Trouble::NoComponents,
            says: "no components",
        },
    ];
    match api {
        Api::V2 => {
            cases.push(Case {
                what: "valid JSON of the wrong shape (a list for the summary)",
                trouble: Trouble::Body(200, b"[1, 2, 3]".to_vec()),
                says: "expected an object",
            });
            cases.push(Case {
                what: "valid JSON of the wrong shape (a number for the incidents)",
                trouble: Trouble::Body(200, br#"{"page": {"id": "x"}, "components": 7}"#.to_vec()),
                says: "unexpected JSON",
            });
            cases.push(Case {
                what: "one document of three failing (incidents.json 500)",
                trouble: Trouble::At("/api/v2/incidents.json".into(), Fault::Status(500)),
                says: "500",
            });
        }
        Api::V1 => {
            cases.push(Case {
                what: "valid JSON of the wrong shape (an object for a list)",
                trouble: Trouble::Body(200, br#"{"components": []}"#.to_vec()),
                says: "expected a list",
            });
            cases.push(Case {
                what: "page 2 of 2 of the component list failing (500)",
                trouble: Trouble::At(
                    format!("/pages/{PAGE}/components?page=2&per_page=100"),
                    Fault::Status(500),
                ),
                says: "500",
            });
            cases.push(Case {
                what: "page 2 of 2 of the component list cut short",
                trouble: Trouble::At(
                    format!("/pages/{PAGE}/components?page=2&per_page=100"),
                    Fault::Truncated,
                ),
                says: "invalid JSON",
            });
        }
    }
    cases
}

/// How often each fault is tried.
const FAULT_RUNS: usize = 3;

/// Renders state `a`, then for each fault, [`FAULT_RUNS`] times: switches
/// upstream to state `b` behind the fault and renders. Every run must exit 0
/// from the last good snapshot, say why on stderr, and leave every file and
/// the last good snapshot byte-identical and untouched. Clearing the fault
/// then brings state `b` through.
fn upstream_faults(api: Api) {
    let rig = Rig::new(api);
    // 150 components: the v1 component list takes two pages.
    rig.serve_state("a", 12, 150);
    rig.render_ok();
    let before = files_under(&rig.out());
    assert!(before["alpha/motd"].0.len() > 1000, "a long MOTD");
    let state_before = fs::read(rig.state_file()).unwrap();
    let mut tried = 0;
    for case in cases(api) {
        for run in 0..FAULT_RUNS {
            rig.serve_state("b", 12, 150);
            match &case.trouble {
                Trouble::Everywhere(f) => rig.fake.fault(f.clone()),
                Trouble::At(at, f) => rig.fake.fault_at(at, f.clone()),
                Trouble::Body(status, body) => {
                    rig.fake
                        .set_bytes(&rig.main_document(), *status, body.clone());
                }
                Trouble::NoComponents => rig.serve(&[], &incidents("b", 12)),
            }
            let started = Instant::now();
            let o = rig.run(&["render"]);
            rig.fake.clear_faults();
            let during = format!("{api:?} {} (run {run})", case.what);
            let err = stderr(&o);
            assert_eq!(
                code(&o),
                0,
                "{during}: the last good snapshot serves: {err}"
            );
            assert!(
                err.contains(case.says),
                "{during}: stderr should say {:?}: {err}",
                case.says
            );
            assert!(err.contains("last good snapshot"), "{during}: {err}");
            assert_eq!(stdout(&o), "", "{during}: nothing changed");
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{during}: took {:?}",
                started.elapsed()
            );
            assert_same_files(&before, &files_under(&rig.out()), &during);
            assert!(
                fs::read(rig.state_file()).unwrap() == state_before,
                "{during}: the last good snapshot was replaced"
            );
            tried += 1;
        }
    }
    assert!(tried >= 36, "{tried}");
    // Healthy again: state `b` comes through at once.
    rig.serve_state("b", 12, 150);
    let o = rig.render_ok();
    assert!(stdout(&o).contains("updated alpha/motd"), "{}", stdout(&o));
    assert!(rig
        .site
        .read("alpha/motd")
        .contains("State b incident number 0"));
}

#[test]
fn upstream_faults_v2_keep_every_file_and_the_last_good_snapshot() {
    upstream_faults(Api::V2);
}

#[test]
fn upstream_faults_v1_keep_every_file_and_the_last_good_snapshot() {
    upstream_faults(Api::V1);
}

/// A short `Retry-After` is waited out, then the fetch succeeds.
fn retry_after_is_honoured(api: Api, status: u16) {
    let rig = Rig::new(api);
    rig.render_ok();
    rig.serve_state("b", 12, 3);
    rig.fake.fault_next(
        1,
        Fault::RateLimited {
            status,
            retry_after: "2".into(),
        },
    );
    let started = Instant::now();
    let o = rig.render_ok();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "{api:?} {status}: waited only {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "{api:?} {status}: took {took:?}"
    );
    assert!(stdout(&o).contains("updated alpha/motd"), "{}", stdout(&o));
    assert!(!stderr(&o).contains("last good snapshot"), "{}", stderr(&o));
}

#[test]
fn retry_after_420_and_429_is_waited_out_v1_and_v2() {
    for api in [Api::V1, Api::V2] {
        for status in [420, 429] {
            retry_after_is_honoured(api, status);
        }
    }
}

#[test]
fn endless_rate_limiting_gives_up_within_a_bound() {
    let rig = Rig::new(Api::V2);
    rig.render_ok();
    let before = files_under(&rig.out());
    rig.fake.fault(Fault::RateLimited {
        status: 429,
        retry_after: "1".into(),
    });
    let started = Instant::now();
    let o = rig.run(&["render"]);
    let took = started.elapsed();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("still answered 429"), "{}", stderr(&o));
    // Five waits of one second, then the last good snapshot.
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert_same_files(&before, &files_under(&rig.out()), "endless 429");
}

#[test]
fn a_half_new_paged_list_is_never_used_v1() {
    // Page 1 of the components is state `b` (new names), page 2 fails: the
    // MOTD must not show `b` in any part, and the saved state stays `a`.
    let rig = Rig::new(Api::V1);
    rig.serve_state("a", 12, 150);
    rig.render_ok();
    let motd = rig.site.read("alpha/motd");
    let mut rows = component_rows(150);
    rows[0]["name"] = json!("Login nodes");
    rows[0]["status"] = json!("major_outage");
    rig.serve(&rows, &incidents("b", 12));
    rig.fake.fault_at(
        &format!("/pages/{PAGE}/components?page=2&per_page=100"),
        Fault::Reset,
    );
    let o = rig.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(rig.site.read("alpha/motd"), motd);
    let state = fs::read_to_string(rig.state_file()).unwrap();
    assert!(
        !state.contains("binc"),
        "state `b` was kept: {}",
        &state[..200]
    );
    assert!(!state.contains("major_outage"));
    let log = rig.fake.request_log();
    assert!(
        log.iter().any(|l| l.contains("components?page=2")),
        "page 2 was asked for: {log:?}"
    );
}

#[test]
fn an_empty_component_list_on_the_first_fetch_is_used() {
    // No history: an empty page is what the page is, not a drop.
    let rig = Rig::new(Api::V2);
    rig.serve(&[], &[]);
    let o = rig.run(&["render"]);
    assert_eq!(
        code(&o),
        3,
        "the mapping names a component the page lacks: {}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("suspicious"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------
// 2. Disk faults

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mount {
    dir: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs of `size` (e.g. `64k`) on `dir`, or says why the test
    /// cannot run: `None` only when `STATUSMOTD_SKIP_MOUNT_TESTS=1`.
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        fs::create_dir_all(dir).unwrap();
        let o = StdCommand::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Mount {
                dir: dir.to_path_buf(),
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("STATUSMOTD_SKIP_MOUNT_TESTS").is_some(),
                    "cannot mount a tmpfs on `{}` ({why}); the disk-fault tests need root. \
                     Set STATUSMOTD_SKIP_MOUNT_TESTS=1 to skip them.",
                    dir.display()
                );
                eprintln!(
                    "skipping: cannot mount a tmpfs ({why}); STATUSMOTD_SKIP_MOUNT_TESTS is set"
                );
                None
            }
        }
    }

    fn remount(&self, opts: &str) {
        let o = StdCommand::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[test]
fn disk_output_directory_read_only_keeps_files_and_names_the_path() {
    let rig = Rig::new(Api::V2);
    let Some(mount) = Mount::tmpfs(&rig.out(), "1m") else {
        return;
    };
    rig.render_ok();
    let before = files_under(&rig.out());
    mount.remount("ro");
    rig.serve_state("b", 12, 3);
    for run in 0..3 {
        let o = rig.run(&["render"]);
        let err = stderr(&o);
        assert_eq!(code(&o), 1, "run {run}: {err}");
        assert!(
            err.contains(&format!("`{}", rig.out().display())),
            "names the path: {err}"
        );
        assert!(err.contains("Read-only file system"), "{err}");
        assert_same_files(
            &before,
            &files_under(&rig.out()),
            "a read-only output directory",
        );
    }
    mount.remount("rw");
    let o = rig.render_ok();
    assert!(stdout(&o).contains("updated alpha/motd"));
}

#[test]
fn disk_full_keeps_the_previous_file_whole_and_names_the_path() {
    let rig = Rig::new(Api::V2);
    let Some(_mount) = Mount::tmpfs(&rig.out(), "64k") else {
        return;
    };
    rig.serve_state("a", 2, 3);
    rig.render_ok();
    let before = files_under(&rig.out());
    // Fill the filesystem to the last byte.
    let filler = rig.out().join("filler");
    let mut n = 0;
    {
        use std::io::Write;
        let mut f = fs::File::create(&filler).unwrap();
        while f.write_all(&[b'x'; 512]).is_ok() {
            n += 1;
        }
        let _ = f.sync_all();
    }
    assert!(n > 0);
    // State `b` has a longer MOTD than `a`.
    rig.serve_state("b", 12, 3);
    let mut before_with_filler = before.clone();
    let filler_entry = files_under(&rig.out()).remove("filler").unwrap();
    before_with_filler.insert("filler".into(), filler_entry);
    for run in 0..3 {
        let o = rig.run(&["render"]);
        let err = stderr(&o);
        assert_eq!(code(&o), 1, "run {run}: {err}");
        assert!(err.contains("No space left on device"), "{err}");
        assert!(
            err.contains(&format!("`{}", rig.out().display())),
            "names the path: {err}"
        );
        assert_same_files(&before_with_filler, &files_under(&rig.out()), "a full disk");
        let staging: Vec<_> = fs::read_dir(rig.out().join(".statusmotd"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(staging, ["lock"], "no temp file left behind");
    }
    fs::remove_file(&filler).unwrap();
    let o = rig.render_ok();
    assert!(stdout(&o).contains("updated alpha/motd"));
    assert!(rig
        .site
        .read("alpha/motd")
        .contains("State b incident number 10"));
}

#[test]
fn state_dir_that_cannot_be_created_warns_and_still_renders() {
    let rig = Rig::new(Api::V2);
    // A regular file where the state directory should be.
    fs::write(rig.site.path().join("state"), b"not a directory").unwrap();
    let o = rig.render_ok();
    let err = stderr(&o);
    assert!(err.contains("warning"), "{err}");
    assert!(
        err.contains(&format!("`{}", rig.site.path().join("state").display())),
        "names the path: {err}"
    );
    assert!(rig.site.read("alpha/motd").contains("State a incident"));
    // Upstream down and nothing kept: exit 1, files as they were.
    let before = files_under(&rig.out());
    rig.fake.fault(Fault::Status(503));
    let o = rig.run(&["render"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no earlier good snapshot"),
        "{}",
        stderr(&o)
    );
    assert_same_files(
        &before,
        &files_under(&rig.out()),
        "no state and no upstream",
    );
}

#[test]
fn state_file_unreadable_is_named_and_files_stay() {
    let rig = Rig::new(Api::V2);
    rig.render_ok();
    let before = files_under(&rig.out());
    let state = rig.state_file();
    rig.fake.fault(Fault::Status(503));
    // A directory, then garbage, where the last good snapshot should be.
    fs::remove_file(&state).unwrap();
    fs::create_dir(&state).unwrap();
    let o = rig.run(&["render"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("`{}`", state.display())),
        "{}",
        stderr(&o)
    );
    assert_same_files(
        &before,
        &files_under(&rig.out()),
        "a directory as state file",
    );
    fs::remove_dir(&state).unwrap();
    fs::write(&state, b"{\"format\": 1, \"sources\": {\"hpc\": [").unwrap();
    let o = rig.run(&["render"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("invalid snapshot"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("`{}`", state.display())),
        "{}",
        stderr(&o)
    );
    assert_same_files(&before, &files_under(&rig.out()), "a corrupt state file");
    // A good fetch replaces the bad state.
    rig.fake.clear_faults();
    rig.render_ok();
    assert!(statusmotd::snapshot::load(&state).is_ok());
}

#[test]
fn state_dir_read_only_warns_and_renders() {
    let rig = Rig::new(Api::V2);
    let state_dir = rig.site.path().join("state");
    let Some(mount) = Mount::tmpfs(&state_dir, "1m") else {
        return;
    };
    rig.render_ok();
    mount.remount("ro");
    rig.serve_state("b", 12, 3);
    let o = rig.render_ok();
    let err = stderr(&o);
    assert!(
        err.contains("warning") && err.contains("Read-only file system"),
        "{err}"
    );
    assert!(err.contains(&format!("`{}", state_dir.display())), "{err}");
    assert!(rig.site.read("alpha/motd").contains("State b incident"));
    // The state kept is still the older good one, whole.
    let snaps = statusmotd::snapshot::load(&rig.state_file()).unwrap();
    assert!(snaps["hpc"]
        .incidents
        .iter()
        .any(|i| i.id.starts_with("ainc")));
}

/// A process holding the output lock: a shell that takes it with `flock`
/// and becomes `sleep`, so one process holds it and SIGKILL frees it.
#[allow(clippy::zombie_processes)] // the caller kills and waits for it
fn hold_lock(lock: &Path) -> std::process::Child {
    let child = StdCommand::new("sh")
        .args(["-c", "exec 9>>\"$1\"; flock -x 9; exec sleep 300", "sh"])
        .arg(lock)
        .spawn()
        .expect("sh and flock(1) are needed");
    // Wait until the lock is held.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let free = StdCommand::new("flock")
            .args(["-n", "-x"])
            .arg(lock)
            .arg("true")
            .status()
            .unwrap()
            .success();
        if !free {
            return child;
        }
        assert!(Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_lock_held_by_a_killed_process_does_not_block_the_next_render() {
    let rig = Rig::new(Api::V2);
    rig.render_ok();
    let before = files_under(&rig.out());
    let lock = rig.out().join(".statusmotd/lock");
    for round in 0..3 {
        let tag = if round % 2 == 0 { "b" } else { "a" };
        rig.serve_state(tag, 12, 3);
        let mut holder = hold_lock(&lock);
        let mut render = rig
            .std_cmd(&["render"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // While a live process holds the lock, the render waits.
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            render.try_wait().unwrap().is_none(),
            "round {round}: render did not wait"
        );
        if round == 0 {
            assert_same_files(&before, &files_under(&rig.out()), "a held lock");
        }
        holder.kill().unwrap();
        holder.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = render.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: render still blocked"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "round {round}");
        assert!(
            rig.site
                .read("alpha/motd")
                .contains(&format!("State {tag} incident number 0")),
            "round {round}"
        );
    }
}

// ---------------------------------------------------------------------------
// 3. Crashes

/// A small xorshift, seeded from the clock and printed, so a failing run can
/// be replayed with `STATUSMOTD_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("STATUSMOTD_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos(),
                ) | 1
            });
        eprintln!("crash test seed: {seed} (STATUSMOTD_CRASH_SEED replays it)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// How many renders the crash test kills; `STATUSMOTD_CRASH_KILLS` raises it.
fn crash_kills() -> usize {
    std::env::var("STATUSMOTD_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
}

/// Whether `name` ends in `.{ext}`, in any case: a `.TMP` is a temp file too.
fn has_extension(name: &str, ext: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Files in cluster directories that are not ours: temp files, dotfiles.
fn strays(out: &Path) -> Vec<String> {
    let mut found = Vec::new();
    walk(out, &mut |path| {
        let rel = path
            .strip_prefix(out)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if rel.starts_with(".statusmotd/") {
            return;
        }
        let ours = rel == "index.json"
            || name == "motd"
            || (rel.contains("/items/") && has_extension(&name, "txt") && !name.starts_with('.'));
        if !ours || has_extension(&name, "tmp") {
            found.push(rel);
        }
    });
    found
}

/// The MOTDs of both clusters in states `a` and `b`, and every snippet name,
/// from clean renders; with the typical render time.
struct Versions {
    motds: BTreeMap<&'static str, BTreeSet<Vec<u8>>>,
    snippets: BTreeSet<String>,
    typical: Duration,
}

fn versions(rig: &Rig) -> Versions {
    let mut motds: BTreeMap<&'static str, BTreeSet<Vec<u8>>> = BTreeMap::new();
    let mut snippets = BTreeSet::new();
    let mut times = Vec::new();
    for tag in ["a", "b", "a", "b"] {
        rig.serve_state(tag, 16, 3);
        let started = Instant::now();
        rig.render_ok();
        times.push(started.elapsed());
        for cluster in ["alpha", "beta"] {
            motds
                .entry(cluster)
                .or_default()
                .insert(fs::read(rig.site.out(&format!("{cluster}/motd"))).unwrap());
            for e in fs::read_dir(rig.site.out(&format!("{cluster}/items"))).unwrap() {
                snippets.insert(e.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
    }
    for (cluster, versions) in &motds {
        assert_eq!(versions.len(), 2, "{cluster}: two distinct versions");
        assert!(
            versions.iter().all(|v| v.len() > 2000),
            "{cluster}: long MOTDs"
        );
    }
    times.sort();
    Versions {
        motds,
        snippets,
        typical: times[1],
    }
}

/// A thread re-reading both MOTDs and the index as fast as it can; each read
/// must be one of the known versions. [`Reader::stop`] returns the count.
struct Reader {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl Reader {
    fn start(out: PathBuf, motds: BTreeMap<&'static str, BTreeSet<Vec<u8>>>) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, reads) = (stop.clone(), reads.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (cluster, versions) in &motds {
                        let bytes = fs::read(out.join(cluster).join("motd"))
                            .unwrap_or_else(|e| panic!("{cluster}/motd unreadable: {e}"));
                        assert!(
                            versions.contains(&bytes),
                            "{cluster}/motd is neither version ({} bytes)",
                            bytes.len()
                        );
                    }
                    let index = fs::read(out.join("index.json")).unwrap();
                    serde_json::from_slice::<Value>(&index).expect("index.json is whole");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Reader {
            stop,
            reads,
            thread,
        }
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("the reader saw only whole versions");
        self.reads.load(Ordering::Relaxed)
    }
}

/// After a kill: no stray file in a cluster directory, only known snippets,
/// and a whole last good snapshot.
fn check_after_kill(rig: &Rig, v: &Versions, i: usize) {
    let stray = strays(&rig.out());
    assert!(stray.is_empty(), "after kill {i}: stray files {stray:?}");
    for cluster in ["alpha", "beta"] {
        for e in fs::read_dir(rig.site.out(&format!("{cluster}/items"))).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                v.snippets.contains(&name),
                "unknown snippet {cluster}/items/{name}"
            );
        }
    }
    statusmotd::snapshot::load(&rig.state_file()).unwrap_or_else(|e| panic!("after kill {i}: {e}"));
}

/// A clean render after the kills: the right state, nothing left in the
/// staging directory or in `state_dir`.
fn check_recovery(rig: &Rig, v: &Versions) {
    rig.serve_state("b", 16, 3);
    rig.render_ok();
    assert!(v.motds["alpha"].contains(&fs::read(rig.site.out("alpha/motd")).unwrap()));
    assert!(rig.site.read("alpha/motd").contains("State b"));
    let staging: Vec<_> = fs::read_dir(rig.out().join(".statusmotd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(staging, ["lock"]);
    let state_temps: Vec<_> = fs::read_dir(rig.site.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| has_extension(n, "tmp"))
        .collect();
    assert!(
        state_temps.is_empty(),
        "temp files left in state_dir: {state_temps:?}"
    );
}

#[test]
fn sigkill_during_renders_never_shows_a_partial_file() {
    let rig = Rig::new(Api::V2);
    let v = versions(&rig);
    let window = u64::try_from(v.typical.as_micros() * 3 / 2).unwrap();
    let reader = Reader::start(rig.out(), v.motds.clone());
    let mut rng = Rng::new();
    let (mut killed, mut finished) = (0, 0);
    for i in 0..crash_kills() {
        rig.serve_state(if i % 2 == 0 { "a" } else { "b" }, 16, 3);
        let mut child = rig
            .std_cmd(&["render"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(window)));
        if child.try_wait().unwrap().is_some() {
            finished += 1;
        } else {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        check_after_kill(&rig, &v, i);
    }
    let reads = reader.stop();
    eprintln!(
        "crash test: {killed} renders killed mid-run, {finished} finished first, \
         {reads} reads of both MOTDs and the index, typical render {:?}",
        v.typical
    );
    assert!(
        killed >= crash_kills() / 4,
        "too few kills landed: {killed}"
    );
    assert!(reads > 100, "the reader ran: {reads}");
    check_recovery(&rig, &v);
}

// ---------------------------------------------------------------------------
// 5. Attacks

/// Hostile upstream text: each entry is (label, text).
fn attack_corpus() -> Vec<(&'static str, String)> {
    vec![
        (
            "OSC 52 clipboard write",
            "copy \u{1b}]52;c;ZWNobyBwd25lZA==\u{7} done".into(),
        ),
        (
            "OSC 52 with ST",
            "copy \u{1b}]52;p;ZWNobyBwd25lZA==\u{1b}\\ done".into(),
        ),
        (
            "CSI clear screen",
            "\u{1b}[2J\u{1b}[H\u{1b}[31mred\u{1b}[0m".into(),
        ),
        ("C1 CSI", "before \u{9b}2J\u{9b}31m after".into()),
        (
            "DCS",
            "\u{1b}P1$r0;1m\u{1b}\\ and C1 \u{90}q#0;2;0;0;0\u{9c}".into(),
        ),
        ("OSC title", "\u{1b}]0;owned\u{7}title".into()),
        (
            "bidi overrides",
            "invoice \u{202e}fdp.exe\u{202c} \u{2066}x\u{2069} \u{200f}".into(),
        ),
        ("CR overwrite", "all is well\rEVIL OVERWRITE".into()),
        (
            "backspace, BEL, NUL, DEL",
            "a\u{8}\u{8}b\u{7}c\u{0}d\u{7f}e".into(),
        ),
        (
            "entity-encoded escapes",
            "&#27;[2J &#x1b;]52;c;QUJD&#7; &#x9b;2J &#x202E;rev".into(),
        ),
        (
            "HTML",
            "<script>alert(1)</script><img src=x onerror=alert(1)><br/>next".into(),
        ),
        (
            "line separators",
            "one\u{2028}two\u{2029}three\u{85}four".into(),
        ),
        ("zero-width and BOM", "zero\u{200b}width\u{feff}bom".into()),
    ]
}

/// Every byte a terminal could act on: C0 but `\n`, DEL, C1, bidi controls,
/// line and paragraph separators.
fn unsafe_chars(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || ('\u{80}'..='\u{9f}').contains(&c)
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
                || matches!(
                    c,
                    '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{2028}' | '\u{2029}'
                )
        })
        .collect()
}

fn assert_no_unsafe_file(out: &Path) -> usize {
    let mut n = 0;
    walk(out, &mut |path| {
        if path.components().any(|c| c.as_os_str() == ".statusmotd") {
            return;
        }
        let bytes = fs::read(path).unwrap();
        let text =
            String::from_utf8(bytes).unwrap_or_else(|_| panic!("{} is not UTF-8", path.display()));
        let bad = unsafe_chars(&text);
        assert!(bad.is_empty(), "{}: unsafe {bad:?}", path.display());
        assert!(
            !text.contains("ZWNobyBwd25lZA"),
            "{}: OSC 52 payload",
            path.display()
        );
        n += 1;
    });
    n
}

/// Every string in a JSON document.
fn json_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| json_strings(v, out)),
        Value::Object(o) => {
            for (k, v) in o {
                out.push(k.clone());
                json_strings(v, out);
            }
        }
        _ => {}
    }
}

#[test]
fn attack_corpus_reaches_no_file_no_snapshot_and_no_login_screen() {
    for api in [Api::V2, Api::V1] {
        let rig = Rig::new(api);
        let corpus = attack_corpus();
        let hostile: Vec<Value> = corpus
            .iter()
            .enumerate()
            .map(|(i, (label, text))| {
                let component = if i % 2 == 0 { "login01" } else { "stor01" };
                incident("x", i, component, &format!("{label}: {text}"), text)
            })
            .collect();
        rig.serve(&component_rows(3), &hostile);
        let o = rig.render_ok();
        let files = assert_no_unsafe_file(&rig.out());
        assert!(files >= corpus.len() + 3, "{api:?}: {files} files");
        let alpha = rig.site.read("alpha/motd");
        assert!(alpha.contains("OSC 52 clipboard write"), "{alpha}");
        assert!(alpha.contains("invoice"), "{alpha}");
        assert!(unsafe_chars(&stdout(&o)).is_empty());
        // `show` prints to a terminal too.
        let o = rig.run(&["show", "alpha"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(unsafe_chars(&stdout(&o)).is_empty(), "{}", stdout(&o));
        // The last good snapshot holds only sanitized text.
        let state: Value = serde_json::from_slice(&fs::read(rig.state_file()).unwrap()).unwrap();
        let mut strings = Vec::new();
        json_strings(&state, &mut strings);
        for s in &strings {
            assert!(unsafe_chars(s).is_empty(), "{api:?}: state holds {s:?}");
        }
        if api == Api::V2 {
            assert_pam_display_is_safe(&rig.site.out("alpha/motd"), "OSC 52 clipboard write");
        }
    }
}

#[test]
fn huge_bodies_and_lines_are_capped() {
    let rig = Rig::new(Api::V2);
    // A 10 MB update body, and a name of 100,000 characters without a space.
    let big = "0123456789 abcdefghij ".repeat(10 * 1024 * 1024 / 22);
    let long_line = "W".repeat(100_000);
    rig.serve(
        &component_rows(3),
        &[
            incident("h", 0, "login01", "A huge body", &big),
            incident("h", 1, "login01", &long_line, "a long name"),
            incident(
                "h",
                2,
                "login01",
                &format!("\u{1b}[2J{long_line}"),
                &format!("\u{9b}{big}"),
            ),
        ],
    );
    let started = Instant::now();
    let o = rig.render_ok();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert!(stdout(&o).contains("created alpha/motd"));
    // Cluster files are capped; `index.json` lists item names in full.
    let mut sizes = Vec::new();
    walk(&rig.out(), &mut |p| {
        sizes.push((p.to_path_buf(), fs::metadata(p).unwrap().len()));
    });
    for (path, size) in &sizes {
        if path.ends_with("index.json") || path.components().any(|c| c.as_os_str() == ".statusmotd")
        {
            continue;
        }
        assert!(*size <= 64 * 1024, "{} is {size} bytes", path.display());
    }
    assert!(sizes.len() >= 5, "{sizes:?}");
    assert_no_unsafe_file(&rig.out());
}

/// What `pam_motd` shows for `motd` holds no unsafe character and does
/// show `expect`.
fn assert_pam_display_is_safe(motd: &Path, expect: &str) {
    let Some(shown) = crate::common::pam_motd_screen(motd) else {
        return;
    };
    let shown = String::from_utf8(shown).expect("pam_motd shows UTF-8");
    assert!(shown.contains(expect), "pam_motd showed: {shown}");
    assert!(
        unsafe_chars(&shown).is_empty(),
        "pam_motd showed {:?}",
        unsafe_chars(&shown)
    );
}

#[test]
fn templates_cannot_read_files() {
    let rig = Rig::new(Api::V2);
    let secret = rig.site.path().join("secret.txt");
    fs::write(&secret, "TOP-SECRET-CONTENT\n").unwrap();
    let templates = rig.site.path().join("templates");
    fs::create_dir_all(templates.join("sub")).unwrap();
    let mapping = fs::read_to_string(rig.site.path().join("mapping.toml")).unwrap();
    fs::write(
        rig.site.path().join("mapping.toml"),
        mapping.replacen(
            "[settings]\n",
            "[settings]\ntemplates_dir = \"templates\"\n",
            1,
        ),
    )
    .unwrap();
    let attempts = [
        r#"{% include "/etc/passwd" %}"#.to_string(),
        r#"{% include "../secret.txt" %}"#.into(),
        r#"{% include "sub/../../secret.txt" %}"#.into(),
        format!(r#"{{% include "{}" %}}"#, secret.display()),
        r#"{% extends "../secret.txt" %}"#.into(),
        r#"{% import "../secret.txt" as s %}{{ s }}"#.into(),
        r#"{% from "/etc/passwd" import x %}{{ x }}"#.into(),
        r#"{% include "..\\secret.txt" %}"#.into(),
        // Names chosen by upstream text.
        r"{% for i in incidents %}{% include i.name ignore missing %}{% endfor %}".into(),
        // Functions that would reach outside: none exist.
        r#"{{ open("/etc/passwd") }}"#.into(),
        r#"{{ env("HOME") }}{{ lookup("file", "/etc/passwd") }}"#.into(),
        r"{{ self.__init__ }}{{ cycler.__globals__ }}".into(),
    ];
    rig.serve(
        &component_rows(3),
        &[incident("t", 0, "login01", "../secret.txt", "x")],
    );
    for (i, template) in attempts.iter().enumerate() {
        fs::write(templates.join("motd.txt.j2"), template).unwrap();
        let o = rig.run(&["render"]);
        let all = format!(
            "{}{}{}",
            stdout(&o),
            stderr(&o),
            fs::read_to_string(rig.site.out("alpha/motd")).unwrap_or_default()
        );
        eprintln!(
            "template attempt {i} `{template}`: exit {}, {}",
            code(&o),
            stderr(&o).lines().next().unwrap_or("")
        );
        if i + 1 < attempts.len() {
            assert_eq!(code(&o), 3, "attempt {i} `{template}` is refused: {all}");
        }
        assert!(
            !all.contains("TOP-SECRET-CONTENT"),
            "attempt {i} `{template}`: {all}"
        );
        assert!(
            !all.contains("root:x:0:0"),
            "attempt {i} `{template}`: {all}"
        );
        let mut leaked = false;
        walk(&rig.out(), &mut |p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            leaked |= text.contains("TOP-SECRET-CONTENT") || text.contains("root:x:0:0");
        });
        assert!(!leaked, "attempt {i} `{template}` leaked into a file");
    }
    // A relative include inside the directory does work.
    fs::write(templates.join("sub/part.j2"), "PART OK\n").unwrap();
    fs::write(
        templates.join("motd.txt.j2"),
        r#"{% include "sub/part.j2" %}"#,
    )
    .unwrap();
    rig.render_ok();
    assert_eq!(rig.site.read("alpha/motd"), "PART OK\n");
}

#[test]
fn the_api_key_is_in_no_file_log_or_error() {
    let rig = Rig::new(Api::V1);
    let mut seen = String::new();
    let mut outputs = Vec::new();
    // Verbose logs, a good render, a saved snapshot, then every kind of failure.
    outputs.push(rig.run(&["-vv", "render"]));
    let snap = rig.site.path().join("saved.json");
    outputs.push(rig.run(&["-vv", "fetch", "--save", snap.to_str().unwrap()]));
    outputs.push(rig.run(&["-vv", "show", "alpha"]));
    outputs.push(rig.run(&["-vv", "gate", "alpha"]));
    outputs.push(rig.run(&["-vv", "mapping", "check"]));
    for fault in [
        Fault::Status(401),
        Fault::Status(500),
        Fault::Hang,
        Fault::Reset,
        Fault::Truncated,
        Fault::RateLimited {
            status: 420,
            retry_after: "3600".into(),
        },
    ] {
        rig.fake.fault(fault);
        outputs.push(rig.run(&["-vv", "render"]));
        outputs.push(rig.run(&["-vv", "fetch", "--save", snap.to_str().unwrap()]));
        rig.fake.clear_faults();
    }
    for o in &outputs {
        seen.push_str(&stdout(o));
        seen.push_str(&stderr(o));
    }
    assert_eq!(
        rig.fake.last_authorization().as_deref(),
        Some(format!("OAuth {KEY}").as_str()),
        "the key was sent"
    );
    assert!(
        seen.contains("DEBUG") || seen.contains("debug"),
        "verbose logs ran"
    );
    assert!(!seen.contains(KEY), "the key in output: {seen}");
    let mut files = 0;
    walk(rig.site.path(), &mut |p| {
        if p.file_name().is_some_and(|n| n == "mapping.toml") {
            return;
        }
        let bytes = fs::read(p).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the key in `{}`",
            p.display()
        );
        files += 1;
    });
    assert!(snap.is_file() && rig.state_file().is_file());
    assert!(files >= 5, "{files}");
}

#[test]
fn cluster_names_that_could_leave_the_output_directory_are_refused() {
    let names = [
        "..",
        ".",
        "../etc",
        "a/../../b",
        "/etc",
        "a\\b",
        ".statusmotd",
        ".hidden",
        "a b",
        "a\u{0}b",
        "a\nb",
        "%2e%2e",
        "\u{2024}\u{2024}",
        "index.json",
        "",
    ];
    let mut refused = 0;
    for name in names {
        let escaped: String = name.chars().flat_map(char::escape_default).collect();
        let site = Site::new(&format!(
            "[sources.s]\nkind = \"statuspage-public\"\nurl = \"http://127.0.0.1:9\"\n\n[clusters.\"{escaped}\"]\ngroups = [\"x\"]\n"
        ));
        let o = site.run(&["render"]);
        assert_eq!(code(&o), 3, "{name:?}: {}", stderr(&o));
        assert!(!site.out("").exists(), "{name:?}: nothing written");
        refused += 1;
    }
    assert_eq!(refused, names.len());
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
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
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

fn serve_kills() -> usize {
    std::env::var("STATUSMOTD_SERVE_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

#[test]
fn sigkill_of_serve_mid_refresh_never_shows_a_partial_file() {
    let rig = serve_rig(Api::V2);
    let v = versions(&rig);
    let reader = Reader::start(rig.out(), v.motds.clone());
    let mut rng = Rng::new();
    let mut wrote = 0;
    for i in 0..serve_kills() {
        rig.serve_state(if i % 2 == 0 { "a" } else { "b" }, 16, 3);
        let mut serve = start_serve(&rig, false);
        // The start renders from the persisted snapshot and refreshes; a
        // refresh asked for now makes a second write likely.
        let (status, _) = post(
            serve.addr(),
            "/refresh",
            &format!("Authorization: Bearer {REFRESH_TOKEN}\r\n"),
            b"",
        );
        assert_eq!(status, 202, "kill {i}");
        let before = fs::metadata(rig.site.out("alpha/motd")).unwrap().ino();
        std::thread::sleep(Duration::from_micros(rng.below(400_000)));
        serve.kill();
        if fs::metadata(rig.site.out("alpha/motd")).unwrap().ino() != before {
            wrote += 1;
        }
        check_after_kill(&rig, &v, i);
    }
    let reads = reader.stop();
    eprintln!(
        "serve crash test: {} serve processes killed, {wrote} of them after replacing alpha/motd, {reads} reads",
        serve_kills()
    );
    assert!(reads > 100, "the reader ran: {reads}");
    check_recovery(&rig, &v);
}

#[test]
fn serve_refuses_traversal_wrong_tokens_big_bodies_and_huge_headers() {
    let rig = serve_rig(Api::V2);
    fs::write(rig.site.path().join("secret.txt"), "TOP-SECRET-CONTENT").unwrap();
    let serve = start_serve(&rig, true);
    let addr = serve.addr().to_owned();
    wait_for_motd(&rig, &expected_motd(&rig), Duration::from_secs(15));
    let (status, body) = get(&addr, "/motd/alpha");
    assert_eq!(status, 200);
    assert!(body.contains("State a incident"), "{body}");

    // Path traversal: every one is a 404 (or a 400), never a file.
    let traversals = [
        "/motd/..",
        "/motd/../mapping.toml",
        "/motd/..%2fmapping.toml",
        "/motd/..%2F..%2Fsecret.txt",
        "/motd/%2e%2e",
        "/motd/%2e%2e%2fsecret.txt",
        "/motd/alpha%2f..%2f..%2fsecret.txt",
        "/motd/alpha/../../secret.txt",
        "/motd/.statusmotd",
        "/motd/index.json",
        "/motd/%00",
        "/motd/alpha%00",
        "/motd//etc/passwd",
        "/motd/..\\..\\secret.txt",
        "/status/..%2fsecret.txt",
        "/gate/..%2f..%2fsecret.txt",
        "/../secret.txt",
        "/motd/%c0%ae%c0%ae",
    ];
    for path in traversals {
        let (status, body) = get(&addr, path);
        assert!(matches!(status, 400 | 404), "{path}: {status}\n{body}");
        assert!(
            !body.contains("TOP-SECRET") && !body.contains("root:x:0"),
            "{path}: {body}"
        );
        assert!(!body.contains("[sources"), "{path}: {body}");
    }

    // Webhook tokens: only the exact one.
    let wrong = [
        String::new(),
        "x".into(),
        WEBHOOK_TOKEN[..WEBHOOK_TOKEN.len() - 1].into(),
        format!("{WEBHOOK_TOKEN}x"),
        WEBHOOK_TOKEN.to_uppercase(),
        format!("{WEBHOOK_TOKEN}%00"),
        format!("%20{WEBHOOK_TOKEN}"),
        REFRESH_TOKEN.into(),
        "A".repeat(10_000),
    ];
    for token in &wrong {
        let (status, _) = post(&addr, &format!("/webhook/{token}"), "", &webhook_body());
        assert_eq!(status, 404, "token {token:?}");
    }
    let (status, _) = post(
        &addr,
        &format!("/webhook/{WEBHOOK_TOKEN}"),
        "",
        &webhook_body(),
    );
    assert_eq!(status, 202);
    // The refresh token only as a bearer token.
    for auth in [
        "",
        "Authorization: Bearer x\r\n",
        "Authorization: Basic eDp5\r\n",
    ] {
        let (status, _) = post(&addr, "/refresh", auth, b"");
        assert_eq!(status, 401, "{auth:?}");
    }

    // Bodies: not JSON 400, over 1 MiB 413, then still serving.
    let (status, _) = post(
        &addr,
        &format!("/webhook/{WEBHOOK_TOKEN}"),
        "",
        b"{not json",
    );
    assert_eq!(status, 400);
    let big = vec![b' '; 1024 * 1024 + 1];
    let (status, _) = post(&addr, &format!("/webhook/{WEBHOOK_TOKEN}"), "", &big);
    assert_eq!(status, 413);
    let huge = vec![b'['; 1024 * 1024 - 1];
    let (status, _) = post(&addr, &format!("/webhook/{WEBHOOK_TOKEN}"), "", &huge);
    assert_eq!(
        status, 400,
        "deeply nested JSON is refused, not a stack overflow"
    );

    // Headers: a 1 MiB header, and 10,000 headers, are refused or cut off.
    let (status, _) = raw_http(
        &addr,
        format!(
            "GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(1 << 20)
        )
        .as_bytes(),
    );
    assert!(status == 431 || status == 0 || status == 400, "{status}");
    let many = (0..10_000).fold(String::new(), |mut s, i| {
        use std::fmt::Write;
        let _ = write!(s, "X-H{i}: v\r\n");
        s
    });
    let (status, _) = raw_http(
        &addr,
        format!("GET /livez HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    );
    assert!(status == 431 || status == 0 || status == 400, "{status}");
    assert_eq!(get(&addr, "/livez").0, 200, "still serving");

    // No secret in the logs (at -vv) or the metrics.
    let (status, metrics) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("statusmotd_webhooks_total"), "{metrics}");
    let log = serve.log();
    assert!(
        log.contains("DEBUG") || log.contains("INFO"),
        "verbose logs ran: {log}"
    );
    for secret in [WEBHOOK_TOKEN, REFRESH_TOKEN, KEY] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!metrics.contains(secret), "{secret} in /metrics");
    }
    walk(&rig.site.path().join("state"), &mut |p| {
        let text = fs::read_to_string(p).unwrap();
        assert!(!text.contains(WEBHOOK_TOKEN) && !text.contains(REFRESH_TOKEN));
    });
}

#[test]
fn a_slow_client_cannot_hold_the_server() {
    use std::io::{Read, Write};
    let rig = serve_rig(Api::V2);
    let serve = start_serve(&rig, false);
    let addr = serve.addr().to_owned();
    // 200 clients that send half a request line and then nothing.
    let mut slow: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /livez HT").unwrap();
            s
        })
        .collect();
    // And one that sends a webhook body one byte at a time, slowly.
    let mut trickle = std::net::TcpStream::connect(&addr).unwrap();
    trickle
        .write_all(
            format!("POST /webhook/{WEBHOOK_TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{")
                .as_bytes(),
        )
        .unwrap();
    // Others are served at once meanwhile.
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(get(&addr, "/livez").0, 200);
        let (status, _) = post(
            &addr,
            &format!("/webhook/{WEBHOOK_TOKEN}"),
            "",
            &webhook_body(),
        );
        assert_eq!(status, 202);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let _ = trickle.write_all(b" ");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Clients that never finish their headers are cut off after the
    // header-read timeout (10 s).
    std::thread::sleep(Duration::from_secs(10));
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => closed += 1,
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 400") {
                    closed += 1;
                }
            }
        }
    }
    assert_eq!(closed, slow.len(), "slow clients still held");
    assert_eq!(get(&addr, "/livez").0, 200);
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Seconds of load: 5 in CI, `STATUSMOTD_LOAD_SECONDS` for the full run.
fn load_seconds() -> u64 {
    std::env::var("STATUSMOTD_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

#[test]
fn webhooks_under_load_while_upstream_flaps() {
    let rig = serve_rig(Api::V2);
    let serve = start_serve(&rig, false);
    let pid = serve.child.id();
    wait_for_motd(&rig, &expected_motd(&rig), Duration::from_secs(15));
    let seconds = load_seconds();
    let rate = 1000u64;
    let url = serve.url(&format!("/webhook/{WEBHOOK_TOKEN}"));

    // Upstream: healthy (alternating state) for 500 ms, hanging for 500 ms.
    let mut rss = Vec::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sent, statuses) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let body = webhook_body();
        let limit = Arc::new(tokio::sync::Semaphore::new(128));
        let mut tasks = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut sent = 0u64;
        let mut phase = 0u128;
        let mut next_sample = Instant::now();
        while started.elapsed() < Duration::from_secs(seconds) {
            tick.tick().await;
            let now_phase = started.elapsed().as_millis() / 500;
            if now_phase != phase {
                phase = now_phase;
                if phase % 2 == 1 {
                    rig.fake.fault(Fault::Hang);
                } else {
                    rig.fake.clear_faults();
                    rig.serve_state(if phase.is_multiple_of(4) { "a" } else { "b" }, 16, 3);
                }
            }
            if Instant::now() >= next_sample {
                rss.push(rss_kib(pid).expect("serve is running"));
                next_sample += Duration::from_millis(250);
            }
            let permit = limit.clone().acquire_owned().await.unwrap();
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tasks.spawn(async move {
                let status = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                drop(permit);
                status
            });
            sent += 1;
        }
        let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
        while let Some(s) = tasks.join_next().await {
            *statuses.entry(s.unwrap()).or_default() += 1;
        }
        (sent, statuses)
    });

    // The final upstream state comes through.
    rig.fake.clear_faults();
    rig.serve_state("b", 16, 3);
    let expected = expected_motd(&rig);
    let (status, _) = post(
        serve.addr(),
        &format!("/webhook/{WEBHOOK_TOKEN}"),
        "",
        &webhook_body(),
    );
    assert_eq!(status, 202);
    wait_for_motd(&rig, &expected, Duration::from_secs(20));

    let accepted = statuses.get(&202).copied().unwrap_or(0);
    let third = rss.len() / 3;
    let first = *rss[..third.max(1)].iter().max().unwrap();
    let last = *rss[rss.len() - third.max(1)..].iter().max().unwrap();
    let (_, metrics) = get(serve.addr(), "/metrics");
    eprintln!(
        "load: {sent} webhooks in {seconds}s ({} per s), answers {statuses:?}; \
         VmRSS KiB first third max {first}, last third max {last}, all {rss:?}",
        sent / seconds
    );
    assert!(sent >= rate * seconds * 9 / 10, "only {sent} sent");
    assert_eq!(accepted, sent, "every webhook answered 202: {statuses:?}");
    assert!(
        last <= first + first / 2 + 16 * 1024,
        "memory grew: {first} KiB -> {last} KiB"
    );
    assert!(
        metrics.contains("statusmotd_webhooks_total{outcome=\"accepted\"}"),
        "{metrics}"
    );
}

#[test]
fn serve_keeps_the_last_good_data_when_every_component_vanishes() {
    let rig = serve_rig(Api::V2);
    let serve = start_serve(&rig, false);
    let expected = expected_motd(&rig);
    wait_for_motd(&rig, &expected, Duration::from_secs(15));
    // A refresh that is waited for: every file of the first render is done.
    let bearer = format!("Authorization: Bearer {REFRESH_TOKEN}\r\n");
    assert_eq!(
        post(serve.addr(), "/refresh?wait=true", &bearer, b"").0,
        200
    );
    let before = files_under(&rig.out());
    rig.serve(&[], &incidents("b", 16));
    let (status, report) = post(
        serve.addr(),
        "/refresh?wait=true",
        &format!("Authorization: Bearer {REFRESH_TOKEN}\r\n"),
        b"",
    );
    assert_eq!(status, 200, "{report}");
    assert!(report.contains("no components"), "{report}");
    assert_same_files(
        &before,
        &files_under(&rig.out()),
        "serve: every component gone",
    );
    let (_, metrics) = get(serve.addr(), "/metrics");
    assert!(
        metrics.contains("statusmotd_refreshes_total{result=\"error\"} 1"),
        "{metrics}"
    );
    assert!(serve.log().contains("no components"), "{}", serve.log());
}
