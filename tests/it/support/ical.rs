//! A real iCalendar parser for the calendar tests: Python's `icalendar`
//! package (from `PyPI`; `scripts/test` installs it) reads a calendar through
//! `ical_events.py` beside this file, which prints what a calendar app
//! would see as JSON.
//!
//! A missing `python3` or `icalendar` fails the test, saying how to install
//! it: the calendar is only tested when a parser other than ours reads it.
#![allow(dead_code)] // each test uses only part of it

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The calendar in `bytes` as `icalendar` parsed it: `calname`, `method`,
/// `errors` (every parse error any component collected) and `events`
/// (`uid`, `sequence`, `status`, `summary`, `description`, `url`, and
/// `dtstamp`/`dtstart`/`dtend` as `{"iso", "utc"}`). Panics when the
/// parser refuses the text.
pub fn parse(bytes: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calendar.ics");
    std::fs::write(&file, bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/ical_events.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3: {e}\nhint: run `scripts/test` as root, which installs it")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'icalendar'"),
        "the Python package `icalendar` is missing\n\
         hint: run `scripts/test` as root, or `python3 -m pip install icalendar`"
    );
    assert!(
        out.status.success(),
        "icalendar refused the calendar: {stderr}\n{}",
        String::from_utf8_lossy(bytes)
    );
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        parsed["errors"],
        serde_json::json!([]),
        "parse errors in\n{}",
        String::from_utf8_lossy(bytes)
    );
    parsed
}

/// Checks the physical form RFC 5545 asks for, which lenient parsers
/// forgive: every line ends in CRLF and is at most 75 octets, and a
/// continuation line begins with a space.
pub fn assert_wire_format(bytes: &[u8]) {
    assert!(bytes.ends_with(b"\r\n"), "no CRLF at the end");
    let text = std::str::from_utf8(bytes).expect("a calendar is UTF-8");
    for (n, line) in text.split_terminator("\r\n").enumerate() {
        assert!(
            !line.contains(['\r', '\n']),
            "line {n} holds a bare line break: {line:?}"
        );
        assert!(
            line.len() <= 75,
            "line {n} has {} octets: {line:?}",
            line.len()
        );
        assert!(!line.is_empty(), "line {n} is empty");
    }
}
