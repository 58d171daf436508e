//! statusmotd: Atlassian Statuspage data -> per-cluster message-of-the-day
//! files. The modules follow the data flow of `DESIGN.md`:
//! source -> snapshot -> mapping -> view -> render -> output, with `pipeline`
//! tying them together for the commands in `commands`.

pub mod calendar;
pub mod child;
pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod error;
pub mod hash;
pub mod layout;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod oneshot;
pub mod output;
pub mod pipeline;
pub mod render;
pub mod sanitize;
pub mod serve;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod view;

pub use error::{Error, Result};

use cli::{Cli, Command};

/// Runs a parsed command line and returns the process exit code. Errors are
/// printed here, once, as `error: ...`.
pub fn run(cli: &Cli) -> u8 {
    init_logging(cli.verbose, matches!(cli.command, Command::Serve(_)));
    let result = match &cli.command {
        Command::Demo(args) => commands::demo(args),
        Command::Render(args) => commands::render(args),
        Command::Fetch(args) => commands::fetch(args),
        Command::Show(args) => commands::show(args),
        Command::Gate(args) => commands::gate(args),
        Command::Probe(args) => commands::probe(args),
        Command::Serve(args) => serve::run(args),
        Command::Mapping(cmd) => commands::mapping(cmd),
        Command::Notify(cmd) => commands::notify(cmd),
        Command::Completions { shell } => commands::completions(*shell),
        Command::Man => commands::man(),
        Command::Schema => commands::schema(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Logs go to stderr; a service (`serve`) logs what it does by default, and
/// to the journal when systemd connected its output there.
fn init_logging(verbose: u8, service: bool) {
    let default = match verbose {
        0 if service => "info",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if service && std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            use tracing_subscriber::layer::SubscriberExt as _;
            use tracing_subscriber::util::SubscriberInitExt as _;
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journald)
                .try_init();
            return;
        }
    }
    let colour = use_colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .try_init();
}

/// Whether log lines may carry ANSI colour: only on a terminal, since a
/// file, a pipe or the journal would keep the escape codes as text, and
/// never when `NO_COLOR` is set to anything but the empty string
/// (<https://no-color.org>).
fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::use_colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(
            use_colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(
            !use_colour(false, None),
            "a file or pipe gets no escape codes"
        );
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }
}
