//! Disk faults: read-only and full filesystems on small tmpfs mounts, an
//! unusable `state_dir`, a corrupt last good snapshot, and a lock held by a
//! process that dies.
//!
//! The tmpfs tests need root (CI runs as root). Where mounting is impossible
//! they fail, unless `STATUSMOTD_SKIP_MOUNT_TESTS=1` says to skip them.

use super::*;

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
    // Room for the first render: each cluster writes its motd, snippets and
    // calendar, at least a page each on tmpfs.
    let Some(_mount) = Mount::tmpfs(&rig.out(), "128k") else {
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
