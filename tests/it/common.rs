//! Helpers shared by the integration tests, chiefly the real Statuspage
//! payloads of `../shared/fixtures/statuspage/`, read in place.
//!
//! Those fixtures live beside the project, not in it. Where they are absent
//! a test that needs them is skipped, saying why, unless
//! `STATUSMOTD_REQUIRE_SHARED` is set (as CI should), in which case it fails.
#![allow(dead_code)] // each test uses only part of it

use std::path::{Path, PathBuf};

/// Where the shared fixtures are: `$STATUSMOTD_SHARED_FIXTURES` when set,
/// else `shared/fixtures/statuspage` beside the project, or beside the folder
/// holding it (for a checkout one level deeper, such as a worktree).
pub fn shared_fixtures_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STATUSMOTD_SHARED_FIXTURES") {
        return Some(PathBuf::from(dir)).filter(|dir| dir.is_dir());
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("shared/fixtures/statuspage"))
        .find(|dir| dir.is_dir())
}

/// The text of one shared fixture, or `None` (after saying so) when the
/// fixtures folder is absent. A missing file inside a present folder is a
/// broken test, not a reason to skip.
pub fn shared_fixture(name: &str) -> Option<String> {
    let Some(dir) = shared_fixtures_dir() else {
        assert!(
            std::env::var_os("STATUSMOTD_REQUIRE_SHARED").is_none(),
            "shared fixture `{name}` is required (STATUSMOTD_REQUIRE_SHARED is set) but \
             `../shared/fixtures/statuspage` is absent"
        );
        eprintln!(
            "skipping: shared fixture `{name}` not found (no `../shared/fixtures/statuspage`); \
             set STATUSMOTD_REQUIRE_SHARED=1 to make this a failure"
        );
        return None;
    };
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) => panic!("cannot read shared fixture `{}`: {e}", path.display()),
    }
}

/// A shared fixture parsed as JSON.
pub fn shared_json(name: &str) -> Option<serde_json::Value> {
    shared_fixture(name).map(|text| {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture `{name}` is not JSON: {e}"))
    })
}

/// `let text = shared_fixture!("v1-page.json");` returns from the test
/// (skipping it) when the shared fixtures are absent.
#[allow(unused_macros)]
macro_rules! shared_fixture {
    ($name:expr) => {
        match $crate::common::shared_fixture($name) {
            Some(text) => text,
            None => return,
        }
    };
}

/// Like [`shared_fixture!`], parsed as JSON.
#[allow(unused_macros)]
macro_rules! shared_json {
    ($name:expr) => {
        match $crate::common::shared_json($name) {
            Some(value) => value,
            None => return,
        }
    };
}

/// A running `statusmotd serve`, killed when dropped. Its stderr is kept in
/// `log`; `base` is the address it printed (`http://127.0.0.1:PORT`).
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Spawns `cmd` (a `statusmotd serve ... --listen 127.0.0.1:0`) and waits
    /// until it says where it listens.
    pub fn spawn(mut cmd: std::process::Command) -> Served {
        use std::io::BufRead as _;
        use std::process::Stdio;

        let mut child = cmd
            .env_remove("JOURNAL_STREAM")
            .env_remove("STATUSMOTD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_log = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                let mut log = thread_log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let Ok(base) = rx.recv_timeout(std::time::Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("serve did not start:\n{}", log.lock().unwrap());
        };
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Served { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
