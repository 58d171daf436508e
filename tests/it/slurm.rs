//! The `slurm` source through the real binary: against a real controller
//! (`support::slurm`: maintenance reservations, `ALL` nodes, a drained
//! partition, a reservation deleted, the controller unreachable) and
//! against a stand-in `scontrol` script that misbehaves on demand (fails,
//! hangs, prints garbage) or speaks the JSON of newer releases.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use jiff::{Timestamp, ToSpan as _};

use crate::common::{code, files_under, stderr, stdout, write_executable, FileState, Site};
use crate::support::slurm::Slurm;

/// A site whose one source is `slurm` with `keys` added to its table;
/// `archer2` reads `standard` and `highmem`, `cirrus` reads `gpu`.
fn site(keys: &str) -> Site {
    Site::new(&format!(
        r#"[settings]
output_dir = "out"
state_dir = "state"
timezone = "UTC"

[sources.slurm]
kind = "slurm"
{keys}

[clusters.archer2]
components = ["standard", "highmem"]

[clusters.cirrus]
components = ["gpu"]
"#
    ))
}

/// `statusmotd render` with `SLURM_CONF` set to `conf`.
fn render(site: &Site, conf: Option<&Path>) -> std::process::Output {
    let mut cmd = site.cmd();
    cmd.arg("render");
    if let Some(conf) = conf {
        cmd.env("SLURM_CONF", conf);
    }
    cmd.output().unwrap()
}

fn motd(site: &Site, cluster: &str) -> String {
    fs::read_to_string(site.out(&format!("{cluster}/motd"))).unwrap_or_default()
}

/// The files of the cluster directories (see [`files_under`]).
fn cluster_files(site: &Site) -> Vec<Vec<FileState>> {
    ["archer2", "cirrus"]
        .map(|c| files_under(&site.out(c)))
        .into()
}

/// The start of reservation `name` as the default templates print it in
/// UTC (`Mon 30 Nov 08:44`), read back from the controller.
fn start_of(slurm: &Slurm, name: &str) -> String {
    let shown = slurm.scontrol(&["--oneliner", "show", "reservation", name]);
    let start = shown
        .split_whitespace()
        .find_map(|w| w.strip_prefix("StartTime="))
        .unwrap_or_else(|| panic!("no StartTime in {shown}"));
    // scontrol prints local time; the tests run it with the process's zone.
    let at: jiff::civil::DateTime = start.parse().unwrap();
    let zoned = at.to_zoned(jiff::tz::TimeZone::system()).unwrap();
    zoned
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .strftime("%a %d %b %H:%M")
        .to_string()
}

/// Puts the controller back as the tests found it, even when one fails.
struct Cleanup<'a> {
    slurm: &'a Slurm,
    reservations: Vec<&'static str>,
    partitions: Vec<&'static str>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for r in &self.reservations {
            let _ = std::process::Command::new("scontrol")
                .args(["delete", &format!("reservationname={r}")])
                .env("SLURM_CONF", self.slurm.conf())
                .output();
        }
        for p in &self.partitions {
            let _ = std::process::Command::new("scontrol")
                .args(["update", &format!("partitionname={p}"), "state=up"])
                .env("SLURM_CONF", self.slurm.conf())
                .output();
        }
    }
}

#[test]
fn maintenance_reservations_and_a_drained_partition_reach_the_right_clusters() {
    let Some(slurm) = Slurm::get() else { return };
    let _held = slurm.lock();
    let _cleanup = Cleanup {
        slurm,
        reservations: vec!["motd_std", "motd_all", "motd_user"],
        partitions: vec!["highmem"],
    };
    slurm.scontrol(&[
        "create",
        "reservation",
        "reservationname=motd_std",
        "starttime=now+1hour",
        "duration=120",
        "nodes=n[1-2]",
        "flags=maint",
        "users=root",
    ]);
    slurm.scontrol(&[
        "create",
        "reservation",
        "reservationname=motd_all",
        "starttime=now+3hours",
        "duration=60",
        "nodes=ALL",
        "flags=maint,ignore_jobs",
        "users=root",
    ]);
    // Not MAINT: not news unless `reservations = "all"`.
    slurm.scontrol(&[
        "create",
        "reservation",
        "reservationname=motd_user",
        "starttime=now+1hour",
        "duration=60",
        "nodes=n4",
        "users=root",
    ]);
    slurm.scontrol(&["update", "partitionname=highmem", "state=drain"]);

    let site = site("");
    let o = render(&site, Some(slurm.conf()));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let archer2 = motd(&site, "archer2");
    let cirrus = motd(&site, "cirrus");
    let std_start = start_of(slurm, "motd_std");
    let all_start = start_of(slurm, "motd_all");

    assert!(
        archer2.contains("[UPCOMING] Maintenance: motd_std"),
        "{archer2}"
    );
    assert!(archer2.contains(&format!("  {std_start} - ")), "{archer2}");
    let std_jobs = format!("  Jobs whose time limit runs past {std_start} wait until it ends.\n");
    assert!(archer2.contains(&std_jobs), "{archer2}");
    assert!(
        fs::read_to_string(site.out("archer2/items/maintenance-motd_std.txt"))
            .unwrap()
            .contains(&std_jobs)
    );
    assert!(archer2.contains("Affects: standard\n"), "{archer2}");
    assert!(
        archer2.contains("[UPCOMING] Maintenance: motd_all"),
        "{archer2}"
    );
    assert!(
        archer2.contains("Affects: standard, highmem\n"),
        "{archer2}"
    );
    assert!(archer2.contains(&format!("  {all_start} - ")), "{archer2}");
    assert!(
        archer2.contains("Not operational: highmem (under maintenance)"),
        "{archer2}"
    );
    assert!(
        archer2.starts_with("== archer2: Under maintenance "),
        "{archer2}"
    );
    assert!(!archer2.contains("motd_user"), "{archer2}");

    assert!(
        cirrus.contains("[UPCOMING] Maintenance: motd_all"),
        "{cirrus}"
    );
    assert!(cirrus.contains("Affects: gpu\n"), "{cirrus}");
    assert!(
        cirrus.contains(&format!(
            "  Jobs whose time limit runs past {all_start} wait until it ends.\n"
        )),
        "{cirrus}"
    );
    assert!(!cirrus.contains("motd_std"), "{cirrus}");
    assert!(!cirrus.contains("motd_user"), "{cirrus}");
    assert!(!cirrus.contains("Not operational"), "{cirrus}");
    assert!(site.out("archer2/items/maintenance-motd_std.txt").exists());

    // A deleted reservation leaves the view, and its snippet goes.
    slurm.scontrol(&["delete", "reservationname=motd_std"]);
    let before_cirrus = motd(&site, "cirrus");
    let o = render(&site, Some(slurm.conf()));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let archer2 = motd(&site, "archer2");
    assert!(!archer2.contains("motd_std"), "{archer2}");
    assert!(archer2.contains("Maintenance: motd_all"), "{archer2}");
    assert!(!site.out("archer2/items/maintenance-motd_std.txt").exists());
    assert_eq!(motd(&site, "cirrus"), before_cirrus);
    assert!(stdout(&o).contains("archer2/motd"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("cirrus/motd"), "{}", stdout(&o));

    // With `reservations = "all"`, the other reservation is news too.
    let all = Site::new(
        &fs::read_to_string(site.path().join("mapping.toml"))
            .unwrap()
            .replace(
                "kind = \"slurm\"",
                "kind = \"slurm\"\nreservations = \"all\"",
            ),
    );
    let o = render(&all, Some(slurm.conf()));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cirrus = motd(&all, "cirrus");
    assert!(
        cirrus.contains("[UPCOMING] Reservation: motd_user"),
        "{cirrus}"
    );
}

#[test]
fn an_unreachable_controller_keeps_the_last_good_files() {
    let Some(slurm) = Slurm::get() else { return };
    let _held = slurm.lock();
    let _cleanup = Cleanup {
        slurm,
        reservations: vec!["motd_keep"],
        partitions: vec![],
    };
    slurm.scontrol(&[
        "create",
        "reservation",
        "reservationname=motd_keep",
        "starttime=now+2hours",
        "duration=30",
        "nodes=n4",
        "flags=maint",
        "users=root",
    ]);
    let site = site("request_timeout = \"30s\"");
    let o = render(&site, Some(slurm.conf()));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(motd(&site, "cirrus").contains("Maintenance: motd_keep"));
    let before = cluster_files(&site);

    // The same cluster, but nobody listens where its controller should be:
    // scontrol gives up and says so.
    let o = render(&site, Some(slurm.dead_conf()));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(err.contains("last good"), "{err}");
    assert!(err.contains("Unable to contact slurm controller"), "{err}");
    assert_eq!(cluster_files(&site), before, "files changed");

    // And with a timeout shorter than scontrol's own patience, it is
    // killed at the timeout.
    let short = Site::new(
        &fs::read_to_string(site.path().join("mapping.toml"))
            .unwrap()
            .replace("request_timeout = \"30s\"", "request_timeout = \"2s\""),
    );
    fs::rename(site.path().join("state"), short.path().join("state")).unwrap();
    let started = Instant::now();
    let o = render(&short, Some(slurm.dead_conf()));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(err.contains("did not finish within 2s"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(motd(&short, "cirrus").contains("Maintenance: motd_keep"));
}

/// A stand-in `scontrol`: what it does is read from `mode` beside it at
/// every run, so one site can see it answer, then fail. `good` prints
/// the files `version`, `partition` and `reservation` beside it.
fn fake_scontrol(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("scontrol");
    write_executable(
        &script,
        r#"#!/bin/sh
here=$(dirname "$0")
echo "$$" >> "$here/pids"
case "$(cat "$here/mode")" in
good)
    case "$*" in
    *--version*) cat "$here/version" ;;
    *partition*) cat "$here/partition" ;;
    *reservation*) cat "$here/reservation" ;;
    esac ;;
fail)
    printf 'slurm_load_partitions error: Unable to contact slurm controller \033[31m(connect failure)\n' >&2
    exit 1 ;;
hang)
    sleep 300 &
    echo "$!" >> "$here/pids"
    wait ;;
garbage)
    case "$*" in
    *--version*) echo "slurm-wlm 22.05.8" ;;
    *) printf '\000\377\033]0;owned\007 <html>\n' ;;
    esac ;;
flood)
    case "$*" in
    *--version*) echo "slurm-wlm 22.05.8" ;;
    *) yes 'PartitionName=x Nodes=n1 State=UP' ;;
    esac ;;
env)
    env > "$here/env"
    exit 1 ;;
esac
"#,
    );
    script
}

fn set(dir: &Path, file: &str, text: &str) {
    fs::write(dir.join(file), text).unwrap();
}

/// `2026-11-30T08:44:23` for `now + hours`, in UTC as scontrol prints it
/// under `TZ=UTC`.
fn slurm_time(hours: i64) -> String {
    text_time(Timestamp::now() + hours.hours())
}

fn text_time(at: Timestamp) -> String {
    at.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

#[test]
fn a_failing_hanging_or_garbled_scontrol_keeps_the_last_good_files() {
    let site = site("scontrol = \"bin/scontrol\"\nrequest_timeout = \"2s\"");
    let bin = site.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fake_scontrol(&bin);
    set(&bin, "mode", "good");
    set(&bin, "version", "slurm-wlm 22.05.8\n");
    set(
        &bin,
        "partition",
        "PartitionName=standard Nodes=n[1-2] State=UP TotalNodes=2\n\
         PartitionName=highmem Nodes=n3 State=UP\n\
         PartitionName=gpu Nodes=n4 State=DOWN\n",
    );
    set(
        &bin,
        "reservation",
        &format!(
            "ReservationName=fake_maint StartTime={} EndTime={} Nodes=n[3-4] \
             PartitionName=(null) Flags=MAINT,SPEC_NODES Users=root State=INACTIVE\n",
            slurm_time(1),
            slurm_time(3)
        ),
    );
    let o = render(&site, None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let archer2 = motd(&site, "archer2");
    let cirrus = motd(&site, "cirrus");
    assert!(archer2.contains("Maintenance: fake_maint"), "{archer2}");
    assert!(archer2.contains("Affects: highmem\n"), "{archer2}");
    assert!(cirrus.contains("Affects: gpu\n"), "{cirrus}");
    assert!(
        cirrus.contains("Not operational: gpu (major outage)"),
        "{cirrus}"
    );
    let before = cluster_files(&site);

    // Exit 1: the stderr is quoted, without its escape sequence.
    set(&bin, "mode", "fail");
    let o = render(&site, None);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        err.contains("Unable to contact slurm controller (connect failure)"),
        "{err}"
    );
    assert!(err.contains("exit status: 1"), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
    assert!(err.contains("last good"), "{err}");
    assert_eq!(
        cluster_files(&site),
        before,
        "files changed after a failure"
    );

    // Garbage: a clear error, no panic, nothing of it on screen.
    set(&bin, "mode", "garbage");
    let o = render(&site, None);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(err.contains("printed no `PartitionName=` record"), "{err}");
    assert!(!err.contains('\x1b') && !err.contains('\0'), "{err:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(cluster_files(&site), before, "files changed after garbage");

    // Hanging: killed with its process group at `request_timeout`.
    set(&bin, "mode", "hang");
    let _ = fs::remove_file(bin.join("pids"));
    let started = Instant::now();
    let o = render(&site, None);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("did not finish within 2s"), "{err}");
    assert_eq!(cluster_files(&site), before, "files changed after a hang");
    let pids = fs::read_to_string(bin.join("pids")).unwrap();
    crate::common::eventually("the hung scontrol and its child to be gone", 5, || {
        pids.lines()
            .all(|pid| !Path::new(&format!("/proc/{}", pid.trim())).exists())
    });

    // Endless output: cut at the cap and killed, not read to the deadline.
    set(&bin, "mode", "flood");
    let o = render(&site, None);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(err.contains("printed more than 16 MiB"), "{err}");
    assert_eq!(cluster_files(&site), before, "files changed after a flood");

    // The environment scontrol gets: no secrets, UTC, SLURM_* passed, but
    // not a SLURM_* variable the configuration reads a secret from.
    set(&bin, "mode", "env");
    let mapping = site.path().join("mapping.toml");
    let mut text = fs::read_to_string(&mapping).unwrap();
    text.push_str("\n[server]\nwebhook_token = { env = \"SLURM_HOOK_TOKEN\" }\n");
    fs::write(&mapping, text).unwrap();
    let o = site
        .cmd()
        .arg("render")
        .env("SLURM_CONF", "/etc/slurm/elsewhere.conf")
        .env("SLURM_HOOK_TOKEN", "hush-789")
        .env("STATUSMOTD_WEBHOOK_TOKEN", "hush-123")
        .env("MY_SECRET", "hush-456")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let env = fs::read_to_string(bin.join("env")).unwrap();
    assert!(
        env.contains("SLURM_CONF=/etc/slurm/elsewhere.conf\n"),
        "{env}"
    );
    assert!(env.contains("TZ=UTC\n"), "{env}");
    assert!(!env.contains("hush-"), "{env}");
}

#[test]
fn newer_scontrol_json_gives_the_same_motd_as_the_text_form() {
    let text = site("scontrol = \"bin/scontrol\"");
    let json = site("scontrol = \"bin/scontrol\"");
    let (start, end) = (Timestamp::now() + 1.hours(), Timestamp::now() + 3.hours());
    for (s, version, partition, reservation) in [
        (
            &text,
            "slurm-wlm 22.05.8\n",
            "PartitionName=standard Nodes=n[1-2] State=UP\n\
             PartitionName=highmem Nodes=n3 State=INACTIVE\n\
             PartitionName=gpu Nodes=n4 State=UP\n"
                .to_owned(),
            format!(
                "ReservationName=m1 StartTime={} EndTime={} Nodes=n[1-4] \
                 Flags=MAINT,ALL_NODES Users=root\n",
                text_time(start),
                text_time(end)
            ),
        ),
        (
            &json,
            "slurm 24.05.3\n",
            serde_json::json!({"partitions": [
                {"name": "standard", "nodes": {"configured": "n[1-2]"}, "partition": {"state": ["UP"]}},
                {"name": "highmem", "nodes": {"configured": "n3"}, "partition": {"state": ["INACTIVE"]}},
                {"name": "gpu", "nodes": {"configured": "n4"}, "partition": {"state": ["UP"]}},
            ], "errors": [], "warnings": []})
            .to_string(),
            serde_json::json!({"reservations": [{
                "name": "m1",
                "node_list": "n[1-4]",
                "flags": ["MAINT", "ALL_NODES"],
                "partition": "",
                "start_time": {"set": true, "infinite": false, "number": start.as_second()},
                "end_time": {"set": true, "infinite": false, "number": end.as_second()},
            }], "errors": [], "warnings": []})
            .to_string(),
        ),
    ] {
        let bin = s.path().join("bin");
        fs::create_dir(&bin).unwrap();
        fake_scontrol(&bin);
        set(&bin, "mode", "good");
        set(&bin, "version", version);
        set(&bin, "partition", &partition);
        set(&bin, "reservation", &reservation);
        let o = render(s, None);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let archer2 = motd(&json, "archer2");
    assert!(archer2.contains("[UPCOMING] Maintenance: m1"), "{archer2}");
    assert!(
        archer2.contains("Not operational: highmem (under maintenance)"),
        "{archer2}"
    );
    assert_eq!(archer2, motd(&text, "archer2"));
    assert_eq!(motd(&json, "cirrus"), motd(&text, "cirrus"));
}

/// The README's example configuration loads, every commented key included.
#[test]
fn the_readme_example_configuration_loads() {
    use statusmotd::config::{Config, Reservations, SourceKind};

    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## The `slurm` source")
        .nth(1)
        .expect("README has a section on the slurm source");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section has a TOML example");
    let uncommented = block
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    for (text, all_keys) in [(block.to_owned(), false), (uncommented, true)] {
        let config = Config::parse(&text, Path::new("/etc/statusmotd/mapping.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let SourceKind::Slurm(slurm) = &config.sources["archer2-slurm"].kind else {
            panic!("not a slurm source");
        };
        assert_eq!(slurm.reservations, Reservations::Maint);
        if all_keys {
            assert_eq!(slurm.cluster.as_deref(), Some("archer2"));
            assert_eq!(slurm.scontrol, Path::new("/usr/bin/scontrol"));
            assert!(slurm.request_timeout.is_some());
        } else {
            assert_eq!(slurm.cluster, None);
        }
        assert_eq!(config.clusters["archer2"].sources().count(), 2);
    }
}

#[test]
fn maintenance_in_progress_is_shown_now_and_blocks_the_gate() {
    let Some(slurm) = Slurm::get() else { return };
    let _held = slurm.lock();
    let _cleanup = Cleanup {
        slurm,
        reservations: vec!["motd_now"],
        partitions: vec![],
    };
    slurm.scontrol(&[
        "create",
        "reservation",
        "reservationname=motd_now",
        "starttime=now",
        "duration=60",
        "nodes=n[5-6]",
        "flags=maint",
        "users=root",
    ]);
    let site = Site::new(
        r#"[settings]
output_dir = "out"
state_dir = "state"
timezone = "UTC"

[sources.slurm]
kind = "slurm"

[clusters.debugc]
components = ["debug"]

[clusters.archer2]
components = ["standard"]
"#,
    );
    let o = render(&site, Some(slurm.conf()));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let debugc = motd(&site, "debugc");
    assert!(
        debugc.starts_with("== debugc: Under maintenance "),
        "{debugc}"
    );
    assert!(
        debugc.contains("[MAINTENANCE NOW] Maintenance: motd_now (until "),
        "{debugc}"
    );
    assert!(
        !debugc.contains("Jobs whose"),
        "not for one that runs: {debugc}"
    );
    assert_eq!(motd(&site, "archer2"), "", "no news is an empty file");

    let gate = |cluster: &str| {
        site.cmd()
            .args(["gate", cluster])
            .env("SLURM_CONF", slurm.conf())
            .output()
            .unwrap()
    };
    let o = gate("debugc");
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("maintenance `Maintenance: motd_now` (in_progress)"),
        "{}",
        stdout(&o)
    );
    let o = gate("archer2");
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}
