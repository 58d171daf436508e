//! The one place for what several test modules share: `common` (a site
//! with its `mapping.toml`, running the binary, reading its output, HTTP
//! helpers, `Served` for a real `statusmotd serve`, the shared captures)
//! and `fake` (a fake Statuspage on `127.0.0.1:0` that can misbehave).

#[macro_use]
pub mod common;
pub mod fake;
pub mod probes;
