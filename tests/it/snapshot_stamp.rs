//! `render --snapshot FILE` takes the one-shot shortcut too: a run with the
//! same file, configuration and files, between the render that left the
//! stamp and the next time window, stops early. None of that may hide a
//! change: a new file, a window crossed either way, the age of stale data,
//! an edited file, a template that prints the age.

use serde_json::json;

use crate::common::{code, files_under, stderr, Site};
use crate::fake::FakeStatuspage;

const MAPPING: &str = r#"[settings]
timezone = "UTC"
upcoming = "1h"
stale_after = "30m"

[sources.status]
kind = "statuspage-public"
url = "URL"

[clusters.alpha]
components = ["Lustre"]
"#;

/// A site and a snapshot of a page with one maintenance, 12:00-14:00 on
/// 2025-06-01, fetched from the fake into `snap.json`.
fn site(maintenance_name: &str) -> (Site, String) {
    let fake = FakeStatuspage::spawn();
    let site = Site::new(&MAPPING.replace("URL", &fake.url()));
    let snap = save(&fake, &site, maintenance_name);
    (site, snap)
}

fn save(fake: &FakeStatuspage, site: &Site, maintenance_name: &str) -> String {
    fake.set_v2_page(
        json!({"id": "p", "name": "Site"}),
        json!([{"id": "c1", "name": "Lustre", "status": "degraded_performance"}]),
        json!([]),
        json!([{
            "id": "m1", "name": maintenance_name, "status": "scheduled", "impact": "maintenance",
            "created_at": "2025-05-01T10:00:00Z", "updated_at": "2025-05-01T10:00:00Z",
            "scheduled_for": "2025-06-01T12:00:00Z", "scheduled_until": "2025-06-01T14:00:00Z",
            "components": [{"id": "c1", "name": "Lustre"}],
            "incident_updates": [],
        }]),
    );
    let snap = site.path().join("snap.json");
    let o = site.run(&["fetch", "--save", snap.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    snap.to_str().unwrap().to_owned()
}

fn render_at(site: &Site, snap: &str, now: &str) -> String {
    let o = site.run(&["render", "--snapshot", snap, "--now", now]);
    assert_eq!(code(&o), 0, "render failed: {}", stderr(&o));
    site.read("alpha/motd")
}

#[test]
fn windows_crossed_either_way_and_a_new_snapshot_are_rendered() {
    let (site, snap) = site("Lustre upgrade");
    // Before the upcoming window: nothing to say.
    let motd = render_at(&site, &snap, "2025-06-01T10:30:00Z");
    assert!(!motd.contains("Lustre upgrade"), "{motd}");
    // Later, still before it: nothing can differ, nothing is touched.
    let files = files_under(&site.out(""));
    render_at(&site, &snap, "2025-06-01T10:45:00Z");
    assert_eq!(files, files_under(&site.out("")));
    // Inside it (the window opened at 11:00): announced.
    let motd = render_at(&site, &snap, "2025-06-01T11:15:00Z");
    assert!(motd.contains("[UPCOMING] Lustre upgrade"), "{motd}");
    // Back before the window (a `--now` earlier than the stamp's render).
    let motd = render_at(&site, &snap, "2025-06-01T10:50:00Z");
    assert!(!motd.contains("Lustre upgrade"), "{motd}");
    // A new snapshot at the same moment.
    render_at(&site, &snap, "2025-06-01T11:30:00Z");
    let fake = FakeStatuspage::spawn();
    std::fs::write(
        site.path().join("mapping.toml"),
        MAPPING.replace("URL", &fake.url()),
    )
    .unwrap();
    let snap = save(&fake, &site, "Lustre upgrade, moved");
    let motd = render_at(&site, &snap, "2025-06-01T11:30:00Z");
    assert!(motd.contains("Lustre upgrade, moved"), "{motd}");
}

/// A run that stops early still removes what a killed run left
/// half-written in `state_dir` (a pid above the kernel's limit is no
/// running writer's); `render --check`, which writes nothing, leaves it.
#[test]
fn a_run_that_stops_early_removes_a_killed_runs_temp_file() {
    let (site, snap) = site("Kernel upgrade");
    render_at(&site, &snap, "2025-06-01T09:00:00Z");
    let temp = site.path().join("state/.render.stamp.4194305-0.tmp");
    std::fs::write(&temp, b"").unwrap();
    let o = site.run(&[
        "render",
        "--check",
        "--snapshot",
        &snap,
        "--now",
        "2025-06-01T09:01:00Z",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(temp.exists(), "a dry run removes nothing");
    let o = site.run(&[
        "render",
        "--snapshot",
        &snap,
        "--now",
        "2025-06-01T09:01:00Z",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(crate::common::stdout(&o), "", "nothing changed");
    assert!(!temp.exists(), "the killed run's temp file is removed");
}

#[test]
fn an_edited_or_removed_file_is_repaired() {
    let (site, snap) = site("Lustre upgrade");
    let motd = render_at(&site, &snap, "2025-06-01T11:30:00Z");
    std::fs::write(site.out("alpha/motd"), "edited\n").unwrap();
    assert_eq!(render_at(&site, &snap, "2025-06-01T11:31:00Z"), motd);
    std::fs::remove_file(site.out("alpha/motd")).unwrap();
    assert_eq!(render_at(&site, &snap, "2025-06-01T11:32:00Z"), motd);
}

#[test]
fn a_file_edited_to_the_same_length_is_repaired_by_a_render_that_plans() {
    let (site, snap) = site("Lustre upgrade");
    let motd = render_at(&site, &snap, "2025-06-01T11:30:00Z");
    assert!(motd.contains("[UPCOMING] Lustre upgrade"), "{motd}");
    // The render left the file's state and the digest of its bytes in
    // `state_dir`. An edit of the same length with the mtime put back
    // leaves only the change time to tell.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let path = site.out("alpha/motd");
    let when = std::fs::metadata(&path).unwrap().modified().unwrap();
    let edited = motd.replace("Lustre", "LUSTRE");
    assert_eq!(edited.len(), motd.len());
    std::fs::write(&path, &edited).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(when).unwrap();
    drop(file);
    // Earlier than the last render: the stamp cannot hold, every cluster
    // is planned, and the MOTD's bytes are what the last render wrote.
    assert_eq!(render_at(&site, &snap, "2025-06-01T11:20:00Z"), motd);
}

/// The fetch time the snapshot file holds, plus `hours`.
fn fetched_plus(snap: &str, hours: i64) -> String {
    let text = std::fs::read_to_string(snap).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let at: jiff::Timestamp = v["sources"]["status"]["fetched_at"]
        .as_str()
        .expect("fetched_at")
        .parse()
        .unwrap();
    (at + jiff::SignedDuration::from_hours(hours)).to_string()
}

#[test]
fn the_age_of_stale_data_is_rendered_at_every_moment() {
    let (site, snap) = site("Lustre upgrade");
    let motd = render_at(&site, &snap, &fetched_plus(&snap, 2));
    assert!(motd.contains("status data is 2h old"), "{motd}");
    // No window lies between the two moments; the age moved all the same.
    let motd = render_at(&site, &snap, &fetched_plus(&snap, 5));
    assert!(motd.contains("status data is 5h old"), "{motd}");
}

#[test]
fn a_template_that_prints_the_age_renders_every_time() {
    let (site, snap) = site("Lustre upgrade");
    let templates = site.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("motd.txt.j2"),
        "age {{ data_age_seconds }}\n",
    )
    .unwrap();
    let mapping = std::fs::read_to_string(site.path().join("mapping.toml")).unwrap();
    std::fs::write(
        site.path().join("mapping.toml"),
        mapping.replace(
            "[settings]\n",
            &format!("[settings]\ntemplates_dir = \"{}\"\n", templates.display()),
        ),
    )
    .unwrap();
    let at: jiff::Timestamp = fetched_plus(&snap, 0).parse().unwrap();
    assert_eq!(render_at(&site, &snap, &at.to_string()), "age 0\n");
    // Ten minutes on: not stale, no window crossed, but the age moved.
    let motd = render_at(
        &site,
        &snap,
        &(at + jiff::SignedDuration::from_mins(10)).to_string(),
    );
    assert_eq!(motd, "age 600\n");
}

#[test]
fn a_snapshot_that_cannot_be_read_or_parsed_changes_nothing_and_says_which() {
    let (site, snap) = site("Lustre upgrade");
    render_at(&site, &snap, "2025-06-01T11:15:00Z");
    let files = files_under(&site.out(""));
    let missing = site.path().join("missing.json");
    let cut = site.path().join("cut.json");
    let text = std::fs::read_to_string(&snap).unwrap();
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    // With the shortcut's reading and without it (`--cluster`).
    for extra in [&[][..], &["--cluster", "alpha"][..]] {
        for (file, says) in [
            (&missing, "cannot read snapshot"),
            (&cut, "invalid snapshot"),
        ] {
            let mut args = vec!["render", "--snapshot", file.to_str().unwrap()];
            args.extend(extra);
            args.extend(["--now", "2025-06-01T11:30:00Z"]);
            let o = site.run(&args);
            assert_eq!(code(&o), 1, "{args:?}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(err.contains(says), "{args:?}: {err}");
            assert!(err.contains(&format!("`{}`", file.display())), "{err}");
            assert_eq!(files, files_under(&site.out("")), "{args:?}");
        }
    }
    // A configuration error is said first, whatever the snapshot.
    std::fs::write(site.path().join("mapping.toml"), "[settings\n").unwrap();
    let o = site.run(&["render", "--snapshot", missing.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("TOML parse error at line 1"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("cannot read snapshot"),
        "{}",
        stderr(&o)
    );
}

/// A configuration read from a pipe (`--config <(…)`) is read once, whole,
/// while the snapshot file is read beside it: the stamp's directory is
/// told from the text read, not by reading the configuration again.
#[test]
fn a_configuration_from_a_pipe_is_read_once_beside_the_snapshot() {
    let (site, snap) = site("Lustre upgrade");
    let pipe = site.path().join("pipe.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    for now in ["2025-06-01T11:15:00Z", "2025-06-01T11:20:00Z"] {
        // One writer, writing the configuration once.
        let mut writer = std::process::Command::new("sh")
            .arg("-c")
            .arg("cat mapping.toml > pipe.toml")
            .current_dir(site.path())
            .spawn()
            .expect("writer");
        // Read twice, the pipe would give its bytes to one read and leave
        // the other waiting: a timeout turns that into a failure.
        let o = site
            .cmd()
            .timeout(std::time::Duration::from_secs(30))
            .args([
                "render",
                "--config",
                pipe.to_str().unwrap(),
                "--snapshot",
                &snap,
                "--now",
                now,
            ])
            .output()
            .unwrap();
        let _ = writer.kill();
        let _ = writer.wait();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let motd = site.read("alpha/motd");
        assert!(motd.contains("[UPCOMING] Lustre upgrade"), "{motd}");
    }
}
