//! What `render`, `gate` and the configuration do when the output directory,
//! the `[[outputs]]` paths or the data cannot be trusted: symlinks planted
//! inside `output_dir` by whoever owns it, output paths that collide, missing
//! snapshots, and log lines read from a file or a pipe.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::{code, stderr, stdout, Site};
use crate::fake::{FakeStatuspage, Fault};

const NOW: &str = "2025-06-02T12:00:00Z";

fn component(id: &str, name: &str, status: &str) -> Value {
    json!({
        "id": id, "name": name, "status": status, "group": false, "group_id": null,
        "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-06-02T09:00:00Z",
        "position": 1, "description": null, "showcase": false, "only_show_if_degraded": false,
    })
}

/// A page whose login nodes are down, with one open incident about them.
fn summary() -> Value {
    let at = "2025-06-02T09:00:00Z";
    json!({
        "page": {"id": "trustout0001", "name": "Test", "url": "https://status.example.org",
                 "time_zone": "Etc/UTC", "updated_at": at},
        "components": [
            component("login0000001", "Login nodes", "major_outage"),
            component("storage00001", "Storage", "operational"),
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

const CLUSTERS: &str = r#"[clusters.alpha]
components = ["Login nodes"]

[clusters.beta]
components = ["Storage"]
"#;

fn mapping(url: &str, rest: &str) -> String {
    format!(
        "[settings]\ntimezone = \"UTC\"\nrequest_timeout = \"1s\"\nretries = 1\n\n\
         [sources.status]\nkind = \"statuspage-public\"\nurl = \"{url}\"\n\n{rest}"
    )
}

/// A site over a fake page, with its data saved once in `snap.json`, so
/// renders read no network.
struct Rig {
    fake: FakeStatuspage,
    site: Site,
}

impl Rig {
    fn new(rest: &str) -> Rig {
        let fake = FakeStatuspage::spawn();
        fake.set_json("/api/v2/summary.json", summary());
        let site = Site::new(&mapping(&fake.url(), rest));
        let o = site.run(&["fetch", "--save", "snap.json"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        Rig { fake, site }
    }

    /// Replaces the site's mapping, keeping the page and the saved data.
    fn remap(&self, rest: &str) {
        fs::write(
            self.site.path().join("mapping.toml"),
            mapping(&self.fake.url(), rest),
        )
        .unwrap();
    }

    fn render(&self, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["render", "--snapshot", "snap.json", "--now", NOW];
        args.extend_from_slice(extra);
        self.site.run(&args)
    }

    fn out(&self) -> PathBuf {
        self.site.out("")
    }

    /// A directory beside the site, outside `out/`, holding what a planted
    /// link would expose: a `motd`, snippets, a temp file, a lock.
    fn outside(&self) -> PathBuf {
        let dir = self.site.path().join("outside");
        fs::create_dir_all(dir.join("items")).unwrap();
        for name in [
            "motd",
            "shadow",
            "notes.txt",
            "incident-gone.txt",
            "old.tmp",
            "lock",
            "items/incident-gone.txt",
        ] {
            fs::write(dir.join(name), format!("{name} must stay\n")).unwrap();
        }
        // Old mtimes, so a touch through a link would show.
        for entry in walk(&dir).keys() {
            let file = fs::File::options().write(true).open(entry);
            if let Ok(file) = file {
                let old = std::time::SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_secs(1_000_000_000);
                file.set_modified(old).unwrap();
            }
        }
        dir
    }
}

/// Every entry under `dir`, not following links: path -> (what it is, with
/// its bytes or link target; mtime in ns; inode).
fn walk(dir: &Path) -> BTreeMap<PathBuf, (String, i128, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else {
                format!(
                    "file {}",
                    String::from_utf8_lossy(&fs::read(&path).unwrap())
                )
            };
            let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            out.insert(path, (what, mtime, meta.ino()));
        }
    }
    out
}

/// `render` and `render --check` both refuse the link at `link`, exit 1,
/// name it with a hint, and change nothing in `outside`.
fn assert_refused(rig: &Rig, link: &Path, outside: &Path) {
    let before = walk(outside);
    for check in [true, false] {
        let o = rig.render(if check { &["--check"] } else { &[] });
        let err = stderr(&o);
        assert_eq!(code(&o), 1, "check {check}: {err}");
        assert!(
            err.contains(&format!("error: refusing to follow `{}`", link.display())),
            "check {check}: {err}"
        );
        assert!(
            err.contains("symbolic link") && err.contains("hint: remove the link"),
            "check {check}: {err}"
        );
        assert_eq!(
            walk(outside),
            before,
            "check {check}: something outside changed"
        );
    }
    // The link itself is left as it was, for the administrator to look at.
    assert!(fs::symlink_metadata(link).unwrap().is_symlink());
}

#[test]
fn render_refuses_a_symlinked_cluster_dir_and_changes_nothing_outside() {
    let rig = Rig::new(CLUSTERS);
    let outside = rig.outside();
    fs::create_dir_all(rig.out()).unwrap();
    let link = rig.out().join("alpha");
    symlink(&outside, &link).unwrap();
    assert_refused(&rig, &link, &outside);
}

/// A render that finds a cluster's files as the last one left them looks
/// at each with one `stat` and opens none of its directories. A cluster's
/// directory moved away and replaced by a link to where it went holds the
/// very same files, inodes and all: the link is refused all the same.
#[test]
fn a_cluster_dir_moved_and_linked_back_is_refused_though_its_files_are_as_left() {
    let rig = Rig::new(CLUSTERS);
    assert_eq!(code(&rig.render(&[])), 0);
    let outside = rig.outside();
    let moved = outside.join("alpha");
    fs::rename(rig.out().join("alpha"), &moved).unwrap();
    let link = rig.out().join("alpha");
    symlink(&moved, &link).unwrap();
    assert_refused(&rig, &link, &outside);
}

#[test]
fn render_refuses_a_symlinked_items_dir_and_prunes_nothing_outside() {
    let rig = Rig::new(CLUSTERS);
    assert_eq!(code(&rig.render(&[])), 0);
    let outside = rig.outside();
    // The items dir of a cluster with an incident (written to) and of one
    // without (only pruned).
    for cluster in ["alpha", "beta"] {
        let link = rig.out().join(cluster).join("items");
        let _ = fs::remove_dir_all(&link);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(outside.join("items"), &link).unwrap();
        assert_refused(&rig, &link, &outside);
        fs::remove_file(&link).unwrap();
    }
    // With the links gone, a render recreates real directories.
    let o = rig.render(&[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(rig.out().join("alpha/items").is_dir());
}

#[test]
fn render_refuses_a_symlinked_staging_dir() {
    let rig = Rig::new(CLUSTERS);
    let outside = rig.outside();
    fs::create_dir_all(rig.out()).unwrap();
    let link = rig.out().join(".statusmotd");
    symlink(&outside, &link).unwrap();
    let before = walk(&outside);

    let o = rig.render(&[]);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains(&format!("error: refusing to follow `{}`", link.display())),
        "{err}"
    );
    assert_eq!(
        walk(&outside),
        before,
        "no temp file removed or written there"
    );
    assert!(!rig.out().join("alpha").exists(), "nothing rendered");
}

#[test]
fn a_motd_that_is_a_symlink_is_replaced_never_written_through() {
    let rig = Rig::new(CLUSTERS);
    let outside = rig.outside();
    fs::create_dir_all(rig.out().join("alpha/items")).unwrap();
    fs::create_dir_all(rig.out().join("beta")).unwrap();
    // A file an attacker wants overwritten or touched, a directory, and a
    // path not there yet that a write through the link would create.
    let links = [
        ("alpha/motd", outside.join("shadow")),
        ("beta/motd", outside.join("items")),
        (
            "alpha/items/incident-inc0001.txt",
            outside.join("created-through-link"),
        ),
        ("index.json", outside.join("motd")),
    ];
    for (rel, target) in &links {
        symlink(target, rig.out().join(rel)).unwrap();
    }
    let before = walk(&outside);

    // `--check` sees each link as a file to replace, as `render` does.
    let o = rig.render(&["--check"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    for (rel, _) in &links {
        assert!(
            stdout(&o).contains(&format!("would update {rel}\n")),
            "{rel}: {}",
            stdout(&o)
        );
    }
    let o = rig.render(&[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for (rel, _) in &links {
        assert!(
            stdout(&o).contains(&format!("updated {rel}\n")),
            "{}",
            stdout(&o)
        );
        let meta = fs::symlink_metadata(rig.out().join(rel)).unwrap();
        assert!(meta.is_file(), "{rel} is now a regular file");
    }
    assert!(rig
        .site
        .read("alpha/motd")
        .contains("Login nodes unreachable"));
    assert_eq!(walk(&outside), before, "nothing outside changed");
    assert!(!outside.join("created-through-link").exists());
}

// ---------------------------------------------------------------------------
// Configuration: outputs that cannot be written, refused at load.

#[test]
fn colliding_outputs_fail_mapping_check_and_render_writes_nothing() {
    let rig = Rig::new(CLUSTERS);
    rig.remap(
        r#"[clusters.alpha]
components = ["Login nodes"]

[clusters.alpha-ood]
components = ["Storage"]

[[outputs]]
template = "ood.md.j2"
path = "{cluster}-ood/motd"
"#,
    );
    let o = rig
        .site
        .run(&["mapping", "check", "--snapshot", "snap.json"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 3, "{}{err}", stdout(&o));
    assert!(
        err.contains("output path `{cluster}-ood/motd` (`[[outputs]]` entry 1) is `alpha-ood/motd` for cluster `alpha`"),
        "{err}"
    );
    assert!(
        err.contains("which is also the `motd` of cluster `alpha-ood`"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    let o = rig.render(&[]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(!rig.out().exists(), "nothing written");
}

#[test]
fn impossible_output_settings_are_configuration_errors() {
    let fake = FakeStatuspage::spawn();
    fake.set_json("/api/v2/summary.json", summary());
    let cases = [
        (
            format!("{CLUSTERS}[[outputs]]\ntemplate = \"ood.md.j2\"\npath = \"{{cluster}}\"\n"),
            "output path `{cluster}` is the cluster's directory itself",
        ),
        (
            format!("{CLUSTERS}[[outputs]]\ntemplate = \"ood.md.j2\"\npath = \".statusmotd/{{cluster}}\"\n"),
            "output path `.statusmotd/{cluster}` is inside `.statusmotd`",
        ),
        (
            "[clusters.-rf]\ncomponents = [\"Storage\"]\n".to_owned(),
            "`-rf` starts with `-`",
        ),
    ];
    for (rest, why) in cases {
        let site = Site::new(&mapping(&fake.url(), &rest));
        let o = site.run(&["mapping", "check"]);
        assert_eq!(code(&o), 3, "{rest}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{rest}: {}", stderr(&o));
    }
    let site = Site::new(
        &mapping(&fake.url(), CLUSTERS).replace("[settings]\n", "[settings]\noutput_dir = \"/\"\n"),
    );
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`output_dir` `/` is the root directory"),
        "{}",
        stderr(&o)
    );
    let site = Site::new(&mapping(&fake.url(), CLUSTERS));
    let o = site.run(&["render", "--out", "/"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`--out` `/` is the root directory"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------
// Logs.

#[test]
fn logs_to_a_pipe_carry_no_colour() {
    let rig = Rig::new(CLUSTERS);
    rig.fake.fault(Fault::Status(500));
    // `-vv` logs each retry; stderr is a pipe here.
    let o = rig
        .site
        .cmd()
        .env_remove("NO_COLOR")
        .args(["-vv", "render", "--now", NOW])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(err.contains("retrying"), "a log line was written: {err}");
    assert!(!o.stderr.contains(&0x1b), "ESC in logs to a pipe: {err:?}");
}

// ---------------------------------------------------------------------------
// gate.

#[test]
fn gate_without_data_is_no_data_never_blocked() {
    let rig = Rig::new(CLUSTERS);
    fs::write(
        rig.site.path().join("broken.json"),
        "{\"format\": 1, \"sour",
    )
    .unwrap();
    for snapshot in ["/nonexistent/snap.json", "broken.json"] {
        let o = rig.site.run(&["gate", "alpha", "--snapshot", snapshot]);
        assert_eq!(code(&o), 4, "{snapshot}: {}{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).starts_with("no data for `alpha`: "),
            "{snapshot}: {}",
            stdout(&o)
        );
    }
}

#[test]
fn gate_writes_nothing() {
    let rig = Rig::new(CLUSTERS);
    let o = rig.site.run(&["gate", "beta"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = rig.site.run(&["gate", "alpha"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        !rig.site.path().join("state").exists(),
        "gate kept a snapshot in state_dir"
    );
    assert!(!rig.out().exists());
}

#[test]
fn data_age_says_1h59m_or_2h_not_1h() {
    let rig = Rig::new(CLUSTERS);
    let snap: Value =
        serde_json::from_str(&fs::read_to_string(rig.site.path().join("snap.json")).unwrap())
            .unwrap();
    let fetched: jiff::Timestamp = snap["sources"]["status"]["fetched_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let later = (fetched + jiff::SignedDuration::from_secs(7170)).to_string();

    let o = rig.site.run(&[
        "gate",
        "beta",
        "--snapshot",
        "snap.json",
        "--now",
        &later,
        "--max-age",
        "1h",
    ]);
    assert_eq!(code(&o), 4, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("the newest is 1h59m old, more than the 1h allowed"),
        "{}",
        stdout(&o)
    );
    let o = rig
        .site
        .run(&["render", "--snapshot", "snap.json", "--now", &later]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let motd = rig.site.read("alpha/motd");
    // The MOTD rounds to the nearest hour, so a stale file changes hourly.
    assert!(motd.contains("(status data is 2h old"), "{motd}");
}
