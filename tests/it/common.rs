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
