//! The one place for what several test modules share: `common` (a site
//! with its `mapping.toml`, running the binary, reading its output, HTTP
//! helpers, `Served` for a real `statusmotd serve`, the shared captures),
//! `fake` (a fake Statuspage on `127.0.0.1:0` that can misbehave) and
//! `slurm` (a real Slurm controller, started once per test binary).
//! helpers, `Served` for a real `statusmotd serve`, the shared captures)
//! `fake` (a fake Statuspage on `127.0.0.1:0` that can misbehave) and
//! `ical` (a real iCalendar parser, Python's `icalendar`).

#[macro_use]
pub mod common;
pub mod alertmanager;
pub mod fake;
pub mod ical;
pub mod notify;
pub mod probes;
pub mod slurm;
