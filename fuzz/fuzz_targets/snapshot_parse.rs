//! Snapshot files (`--snapshot FILE`, the last good data in `state_dir`): a
//! hand-edited or foreign file must be read or refused, never panic; what is
//! read is sanitized, and writing it back and reading it again gives the same
//! snapshot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use statusmotd::snapshot;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(snaps) = snapshot::parse(text) else {
        return;
    };
    let again = snapshot::parse(&snapshot::to_json(&snaps)).expect("a written snapshot reads back");
    assert_eq!(snaps, again, "sanitizing twice changed a snapshot");
});
