//! The `slurm` source: the partitions and reservations of a Slurm
//! controller, read with `scontrol`, as a [`Snapshot`].
//!
//! Partitions are components (status from their state through the source's
//! `state` table); reservations with the `MAINT` flag (every reservation
//! with `reservations = "all"`) are maintenance on the partitions whose
//! nodes they cover, all of them for an `ALL_NODES` reservation, scheduled
//! from `StartTime` to `EndTime`. A reservation that has ended is left out,
//! as Slurm itself soon forgets it.
//!
//! `scontrol` runs as a child process, never through a shell, in a process
//! group of its own that is killed when the fetch's time (the source's
//! `request_timeout`) is up. Its environment holds only `PATH` and the
//! `SLURM_*` variables (`SLURM_CONF` points it at a configuration), plus
//! `TZ=UTC` and `LC_ALL=C`: the text form prints times without a zone, in
//! the zone of the process, so asking for UTC makes them unambiguous. No
//! variable the configuration reads a secret from is passed on, whatever
//! its name.
//!
//! Slurm 23.02 and later print JSON (`scontrol --json show ...`, the REST
//! API's `v0.0.39` and later shapes); older ones print `--oneliner` text.
//! Which is used follows `scontrol --version`. Both are read leniently: the
//! output is untrusted, an item that cannot be read is skipped and reported
//! (see [`super::Fetched::skipped`]), and output of which nothing can be
//! read is a failed fetch, so the last good snapshot stays.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::time::Instant;

use super::{FetchError, FetchErrorKind};
use crate::child::signal_group;
use crate::config::{Reservations, SlurmConfig};
use crate::model::{Component, Incident, ItemKind, Page, Snapshot, Update};

/// The most `scontrol` output read from one run; more is an error, not an
/// out-of-memory.
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;

/// The most of `scontrol`'s stderr kept, to quote in an error.
const MAX_STDERR_BYTES: usize = 16 * 1024;

/// How much of stderr an error quotes.
const MAX_QUOTED_CHARS: usize = 300;

/// A node list that expands to more names than this is not read: real
/// clusters have tens of thousands of nodes, and `n[0-99999999999]` must not
/// cost the memory of a hundred billion names.
pub const MAX_NODES: usize = 1_000_000;

/// The first Slurm release whose `scontrol` prints JSON.
const FIRST_JSON_VERSION: (u32, u32) = (23, 2);

/// Reads the controller: `scontrol --version`, then partitions and
/// reservations, all within `timeout`. Returns the snapshot (not yet
/// sanitized: the caller does that) and one line per item skipped.
pub async fn fetch(
    config: &SlurmConfig,
    timeout: Duration,
    withheld_env: &BTreeSet<String>,
) -> Result<(Snapshot, Vec<String>), FetchError> {
    let deadline = Instant::now() + timeout;
    let run = |args: Vec<&'static str>| {
        let mut argv: Vec<String> = Vec::new();
        // `--version` asks no controller, so it needs no cluster.
        if let (Some(cluster), false) = (&config.cluster, args == ["--version"]) {
            argv.push("-M".into());
            argv.push(cluster.clone());
        }
        argv.extend(args.into_iter().map(str::to_owned));
        run_scontrol(&config.scontrol, argv, deadline, timeout, withheld_env)
    };
    let version = run(vec!["--version"]).await?;
    let json = supports_json(&String::from_utf8_lossy(&version));
    let form = if json { "--json" } else { "--oneliner" };
    let partitions = run(vec![form, "show", "partition"]).await?;
    let reservations = run(vec![form, "show", "reservation"]).await?;
    let now = Timestamp::now();
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let mut skipped = Vec::new();
        let (partitions, reservations) = if json {
            (
                partitions_from_json(&partitions, &mut skipped)?,
                reservations_from_json(&reservations, &mut skipped)?,
            )
        } else {
            (
                partitions_from_text(&partitions, &mut skipped)?,
                reservations_from_text(&reservations, &mut skipped)?,
            )
        };
        let snapshot = build(&config, &partitions, &reservations, now, &mut skipped);
        Ok((snapshot, skipped))
    })
    .await
    .map_err(|e| {
        FetchError::new(
            FetchErrorKind::UnexpectedShape,
            format!("reading the scontrol output failed: {e}"),
        )
    })?
}

/// Whether `scontrol --version` (`slurm 23.11.4`, `slurm-wlm 22.05.8`)
/// names a release that prints JSON.
pub fn supports_json(version: &str) -> bool {
    let Some(number) = version.split_whitespace().nth(1) else {
        return false;
    };
    let mut parts = number.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
    });
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= FIRST_JSON_VERSION,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Running scontrol

/// Runs `scontrol ARGS` and returns its stdout, or why not: it could not be
/// started, it failed (with its stderr quoted, sanitized), it ran past the
/// deadline (and was killed with its process group), or it printed too much.
async fn run_scontrol(
    program: &Path,
    args: Vec<String>,
    deadline: Instant,
    timeout: Duration,
    withheld_env: &BTreeSet<String>,
) -> Result<Vec<u8>, FetchError> {
    let shown = format!("scontrol {}", args.join(" "));
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&args)
        .env_clear()
        .envs(std::env::vars_os().filter(|(k, _)| {
            k.to_str().is_some_and(|k| {
                (k == "PATH" || k.starts_with("SLURM_")) && !withheld_env.contains(k)
            })
        }))
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        let mut error = FetchError::new(
            FetchErrorKind::Unreadable,
            format!("cannot run `{}`: {e}", program.display()),
        )
        .with_hint(
            "install the Slurm client (`scontrol`), or set `scontrol` in the source to its path",
        );
        error.note = Some("scontrol could not be run");
        error
    })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(&mut child).await;
        return Err(FetchError::new(
            FetchErrorKind::Connection,
            format!("`{shown}` started without its output pipes"),
        ));
    };
    // Armed only while `scontrol` may run: a fetch dropped midway (`serve`
    // stopping) kills its whole group, as a command probe's.
    let mut guard = crate::child::GroupGuard::new(&child);
    let pgid = child.id();
    let work = async {
        let out = async {
            let read = read_capped(stdout, MAX_OUTPUT_BYTES, false).await;
            // Too much: stop it now rather than read on to the deadline.
            if let (Ok((_, true)), Some(pgid)) = (&read, pgid) {
                signal_group(pgid, "KILL").await;
            }
            read
        };
        let (out, err) = tokio::join!(out, read_capped(stderr, MAX_STDERR_BYTES, true));
        let status = child.wait().await;
        (out, err, status)
    };
    let finished = tokio::time::timeout_at(deadline, work).await;
    let Ok((out, err, status)) = finished else {
        kill_group(&mut child).await;
        guard.disarm();
        let mut error = FetchError::new(
            FetchErrorKind::Timeout,
            format!(
                "`{shown}` did not finish within {}; it was killed",
                super::show_duration(timeout)
            ),
        )
        .with_hint(
            "check that slurmctld answers (`scontrol ping`), or raise the source's \
             `request_timeout`",
        );
        error.note = Some("the Slurm controller did not answer in time");
        return Err(error);
    };
    guard.disarm();
    let failed = |message: String| {
        let mut error = FetchError::new(FetchErrorKind::Connection, message);
        error.note = Some("scontrol could not read the Slurm controller");
        error
    };
    let (out, over) = out.map_err(|e| failed(format!("reading `{shown}` failed: {e}")))?;
    let (err, _) = err.unwrap_or_default();
    let status = status.map_err(|e| failed(format!("waiting for `{shown}` failed: {e}")))?;
    if over {
        let mut error = FetchError::new(
            FetchErrorKind::TooLarge,
            format!(
                "`{shown}` printed more than {} MiB, the most this tool reads; it was killed",
                MAX_OUTPUT_BYTES / (1024 * 1024)
            ),
        );
        error.note = Some("scontrol printed more than this tool reads");
        return Err(error);
    }
    if !status.success() {
        let said = quote_stderr(&err);
        let mut error = failed(format!(
            "`{shown}` failed ({status}){}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ))
        .with_hint(
            "run the same command as the user statusmotd runs as; is slurmctld up, \
             and does `SLURM_CONF` or `cluster` point at the right cluster?",
        );
        if status.code().is_none() {
            error.note = Some("scontrol was stopped by a signal");
        }
        return Err(error);
    }
    Ok(out)
}

/// Reads `r`, keeping at most `cap` bytes, and says whether there was more.
/// With `drain`, the rest is read and dropped, so the child never blocks on
/// a full pipe; without, reading stops there.
async fn read_capped(
    mut r: impl AsyncRead + Unpin,
    cap: usize,
    drain: bool,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    (&mut r)
        .take(u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut buf)
        .await?;
    let over = buf.len() > cap;
    if over {
        buf.truncate(cap);
        if drain {
            tokio::io::copy(&mut r, &mut tokio::io::sink()).await?;
        }
    }
    Ok((buf, over))
}

/// The first lines of stderr, sanitized and cut, for an error message.
fn quote_stderr(err: &[u8]) -> String {
    let text = crate::sanitize::sanitize(&String::from_utf8_lossy(err));
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if joined.chars().count() > MAX_QUOTED_CHARS {
        let cut: String = joined.chars().take(MAX_QUOTED_CHARS).collect();
        format!("{cut}...")
    } else {
        joined
    }
}

/// Kills `child`'s whole process group (a wrapper script's children too)
/// at once, without [`crate::child::kill_group`]'s grace: a query has
/// nothing to finish. Then reaps it.
async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pgid) = child.id() {
        signal_group(pgid, "KILL").await;
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
}

// ---------------------------------------------------------------------------
// What scontrol says, read leniently

/// One partition as `scontrol` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub name: String,
    /// A hostlist expression, `n[01-04,07]`.
    pub nodes: String,
    /// `UP`, `DOWN`, `DRAIN`, `INACTIVE`; JSON can list several.
    pub states: Vec<String>,
}

/// One reservation as `scontrol` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub name: String,
    pub start: Timestamp,
    /// `None`: no end (infinite, or not given).
    pub end: Option<Timestamp>,
    /// A hostlist expression, or `ALL`.
    pub nodes: String,
    pub partition: Option<String>,
    /// Upper case: `MAINT`, `ALL_NODES`, `SPEC_NODES`, ...
    pub flags: Vec<String>,
    pub comment: Option<String>,
}

fn bad_output(kind: FetchErrorKind, message: String) -> FetchError {
    let mut error = FetchError::new(kind, message).with_hint(
        "run the same `scontrol` command by hand; is `scontrol` the Slurm client, \
         and is it the same release as the controller?",
    );
    error.note = Some("scontrol printed output that could not be read");
    error
}

/// `scontrol --oneliner show partition`: one `PartitionName=...` line per
/// partition (the multi-line form, with indented continuation lines, is read
/// too).
pub fn partitions_from_text(
    out: &[u8],
    skipped: &mut Vec<String>,
) -> Result<Vec<Partition>, FetchError> {
    let records = records(out, "PartitionName", "partition", skipped)?;
    let mut partitions = Vec::new();
    for r in records {
        let name = r.get("PartitionName").unwrap_or_default().to_owned();
        if name.is_empty() || name == "(null)" {
            skipped.push("scontrol: skipped a partition without a name".into());
            continue;
        }
        let Some(state) = r.get("State").filter(|s| !s.is_empty()) else {
            skipped.push(format!(
                "scontrol: skipped partition `{}`: it has no `State`",
                name.escape_debug()
            ));
            continue;
        };
        partitions.push(Partition {
            nodes: null_to_empty(r.get("Nodes").unwrap_or_default()).to_owned(),
            states: vec![state.to_owned()],
            name,
        });
    }
    Ok(partitions)
}

/// `scontrol --oneliner show reservation`; `No reservations in the system`
/// is no reservation.
pub fn reservations_from_text(
    out: &[u8],
    skipped: &mut Vec<String>,
) -> Result<Vec<Reservation>, FetchError> {
    let records = records(out, "ReservationName", "reservation", skipped)?;
    let mut reservations = Vec::new();
    for r in records {
        let name = r.get("ReservationName").unwrap_or_default().to_owned();
        if name.is_empty() || name == "(null)" {
            skipped.push("scontrol: skipped a reservation without a name".into());
            continue;
        }
        let Some(start) = r.get("StartTime").and_then(text_time) else {
            skipped.push(format!(
                "scontrol: skipped reservation `{}`: no readable `StartTime`",
                name.escape_debug()
            ));
            continue;
        };
        reservations.push(Reservation {
            start,
            end: r.get("EndTime").and_then(text_time),
            nodes: null_to_empty(r.get("Nodes").unwrap_or_default()).to_owned(),
            partition: r
                .get("PartitionName")
                .map(null_to_empty)
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
            flags: r
                .get("Flags")
                .map(null_to_empty)
                .unwrap_or_default()
                .split(',')
                .map(|f| f.trim().to_ascii_uppercase())
                .filter(|f| !f.is_empty())
                .collect(),
            comment: r
                .get("Comment")
                .map(null_to_empty)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            name,
        });
    }
    Ok(reservations)
}

/// `(null)` is how scontrol prints an unset string.
fn null_to_empty(s: &str) -> &str {
    if s == "(null)" {
        ""
    } else {
        s
    }
}

/// A time in the text form: `2026-11-30T08:44:23`, in UTC since scontrol
/// runs with `TZ=UTC`. `Unknown`, `None` and anything else: `None`.
fn text_time(s: &str) -> Option<Timestamp> {
    let dt: jiff::civil::DateTime = s.trim().parse().ok()?;
    dt.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// One `Key=Value ...` record of the text form.
#[derive(Debug, Default)]
struct Record(Vec<(String, String)>);

impl Record {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Adds the `Key=Value` pairs of one line. A word that does not start
    /// with `Key=` continues the value before it when that is free text (a
    /// reservation's `Comment`), and is ignored otherwise: names, states
    /// and node lists hold no spaces.
    fn extend(&mut self, line: &str) {
        for word in line.split_whitespace() {
            match word.split_once('=') {
                Some((key, value)) if is_key(key) => {
                    self.0.push((key.to_owned(), value.to_owned()));
                }
                _ => {
                    if let Some((key, value)) = self.0.last_mut() {
                        if FREE_TEXT.contains(&key.as_str()) {
                            value.push(' ');
                            value.push_str(word);
                        }
                    }
                }
            }
        }
    }
}

/// Keys whose values may hold spaces.
const FREE_TEXT: &[&str] = &["Comment", "Reason"];

fn is_key(key: &str) -> bool {
    key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '/' | '.'))
}

/// Splits the text form into records that start with `first=`. Indented
/// lines continue a record; `CLUSTER: name` headers (`-M`) and `No ... in
/// the system` are not records; any other line is skipped and reported.
/// Output that holds text but no record at all is an error.
fn records(
    out: &[u8],
    first: &str,
    what: &str,
    skipped: &mut Vec<String>,
) -> Result<Vec<Record>, FetchError> {
    let text = String::from_utf8_lossy(out);
    let lead = format!("{first}=");
    let mut records: Vec<Record> = Vec::new();
    let mut garbage = 0usize;
    let mut first_garbage = None;
    let mut in_record = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            in_record = false;
            continue;
        }
        if line.starts_with(&lead) {
            let mut r = Record::default();
            r.extend(line);
            records.push(r);
            in_record = true;
        } else if in_record && line.starts_with(char::is_whitespace) {
            if let Some(r) = records.last_mut() {
                r.extend(line);
            }
        } else if line.starts_with("CLUSTER: ")
            || (line.starts_with("No ") && line.trim_end().ends_with(" in the system"))
        {
            in_record = false;
        } else {
            in_record = false;
            garbage += 1;
            first_garbage.get_or_insert_with(|| line.to_owned());
        }
    }
    // Each record is a line: output that stops without its last newline
    // was cut off in that record, whatever it still looks like.
    if in_record && !text.ends_with('\n') {
        records.pop();
        skipped.push(format!(
            "scontrol: skipped the last {what}: the output ends in the middle of it"
        ));
    }
    if let Some(line) = first_garbage {
        let quoted = quote_stderr(line.as_bytes());
        if records.is_empty() {
            return Err(bad_output(
                FetchErrorKind::UnexpectedShape,
                format!("`scontrol show {what}` printed no `{first}=` record but `{quoted}`"),
            ));
        }
        skipped.push(format!(
            "scontrol: skipped {garbage} line(s) of `show {what}` that are not `{first}=` \
             records, the first `{quoted}`"
        ));
    }
    Ok(records)
}

/// `scontrol --json show partition`: `{"partitions": [{"name", "nodes":
/// {"configured"}, "partition": {"state": [..]}}]}`.
pub fn partitions_from_json(
    out: &[u8],
    skipped: &mut Vec<String>,
) -> Result<Vec<Partition>, FetchError> {
    let items = json_list(out, "partitions", "partition")?;
    let mut partitions = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let Some(name) = json_name(item, "partition", n, skipped) else {
            continue;
        };
        let states: Vec<String> = match item.pointer("/partition/state") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        if states.is_empty() {
            skipped.push(format!(
                "scontrol: skipped partition `{}`: it has no `partition.state`",
                name.escape_debug()
            ));
            continue;
        }
        let nodes = match item.get("nodes") {
            Some(Value::Object(o)) => o.get("configured").and_then(Value::as_str),
            // Some releases print the list itself.
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        partitions.push(Partition {
            name: name.to_owned(),
            nodes: nodes.unwrap_or_default().to_owned(),
            states,
        });
    }
    Ok(partitions)
}

/// `scontrol --json show reservation`: `{"reservations": [{"name",
/// "start_time", "end_time", "node_list", "partition", "flags": [..]}]}`;
/// a time is a number of seconds (`v0.0.39`) or `{"set", "infinite",
/// "number"}` (`v0.0.40` and later).
pub fn reservations_from_json(
    out: &[u8],
    skipped: &mut Vec<String>,
) -> Result<Vec<Reservation>, FetchError> {
    let items = json_list(out, "reservations", "reservation")?;
    let mut reservations = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let Some(name) = json_name(item, "reservation", n, skipped) else {
            continue;
        };
        let Some(start) = item.get("start_time").and_then(json_time) else {
            skipped.push(format!(
                "scontrol: skipped reservation `{}`: no readable `start_time`",
                name.escape_debug()
            ));
            continue;
        };
        let text = |key: &str| {
            item.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let flags = match item.get("flags") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(|f| f.trim().to_ascii_uppercase())
                .collect(),
            Some(Value::String(s)) => s
                .split(',')
                .map(|f| f.trim().to_ascii_uppercase())
                .filter(|f| !f.is_empty())
                .collect(),
            _ => Vec::new(),
        };
        reservations.push(Reservation {
            name: name.to_owned(),
            start,
            end: item.get("end_time").and_then(json_time),
            nodes: text("node_list").unwrap_or_default(),
            partition: text("partition"),
            flags,
            comment: text("comment"),
        });
    }
    Ok(reservations)
}

/// The non-empty `name` of the `n`th `what` of a JSON answer; without
/// one, the item is noted in `skipped`.
fn json_name<'a>(
    item: &'a Value,
    what: &str,
    n: usize,
    skipped: &mut Vec<String>,
) -> Option<&'a str> {
    let name = item
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if name.is_none() {
        skipped.push(format!(
            "scontrol: skipped {what} {n} of the JSON output: it has no `name`"
        ));
    }
    name
}

/// The list under `key` of a JSON answer. Not JSON, or JSON without the
/// list, is an error; one that carries Slurm's own `errors` quotes the
/// first.
fn json_list(out: &[u8], key: &str, what: &str) -> Result<Vec<Value>, FetchError> {
    let text = super::lenient_text(out);
    let mut value: Value = serde_json::from_str(&text).map_err(|e| {
        bad_output(
            FetchErrorKind::InvalidJson,
            format!("`scontrol --json show {what}` printed invalid JSON: {e}"),
        )
    })?;
    match value.get_mut(key).map(Value::take) {
        Some(Value::Array(items)) => Ok(items),
        Some(Value::Null) | None => {
            let slurm_error = value
                .pointer("/errors/0/description")
                .or_else(|| value.pointer("/errors/0/error"))
                .and_then(Value::as_str)
                .map(|e| format!(": Slurm says `{}`", quote_stderr(e.as_bytes())))
                .unwrap_or_default();
            Err(bad_output(
                FetchErrorKind::UnexpectedShape,
                format!("`scontrol --json show {what}` printed no `{key}` list{slurm_error}"),
            ))
        }
        Some(_) => Err(bad_output(
            FetchErrorKind::UnexpectedShape,
            format!("`scontrol --json show {what}` printed `{key}` that is not a list"),
        )),
    }
}

/// `1764492263` or `{"set": true, "infinite": false, "number": 1764492263}`;
/// unset, infinite or out of range: `None`.
fn json_time(v: &Value) -> Option<Timestamp> {
    let seconds = match v {
        Value::Number(n) => n.as_i64()?,
        Value::Object(o) => {
            if o.get("set").and_then(Value::as_bool) == Some(false)
                || o.get("infinite").and_then(Value::as_bool) == Some(true)
            {
                return None;
            }
            o.get("number")?.as_i64()?
        }
        _ => return None,
    };
    // 0 is how Slurm says "no time".
    if seconds <= 0 {
        return None;
    }
    Timestamp::from_second(seconds).ok()
}

// ---------------------------------------------------------------------------
// Node lists

/// Expands a Slurm hostlist expression: `n[01-04,07],gpu1` is `n01`,
/// `n02`, `n03`, `n04`, `n07` and `gpu1`; brackets can repeat
/// (`r[1-2]n[1-2]`); a range keeps the zero padding of its lower bound.
/// An expression that expands to more than `cap` names is an error.
pub fn expand_hostlist(list: &str, cap: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for term in split_top_level(list) {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        expand_term(term, cap, &mut out)?;
    }
    Ok(out)
}

/// Splits at commas outside brackets.
fn split_top_level(list: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&list[start..]);
    terms
}

fn expand_term(term: &str, cap: usize, out: &mut Vec<String>) -> Result<(), String> {
    let Some(open) = term.find('[') else {
        if term.contains(']') {
            return Err(format!("`{}` has `]` without `[`", term.escape_debug()));
        }
        return push_capped(out, term.to_owned(), cap);
    };
    let prefix = &term[..open];
    let after = &term[open + 1..];
    let Some(close) = after.find(']') else {
        return Err(format!("`{}` has `[` without `]`", term.escape_debug()));
    };
    let inside = &after[..close];
    let rest = &after[close + 1..];
    if inside.contains('[') {
        return Err(format!("`{}` nests brackets", term.escape_debug()));
    }
    // The names after the first bracket, expanded once.
    let mut tails = Vec::new();
    if rest.is_empty() {
        tails.push(String::new());
    } else {
        expand_term(rest, cap, &mut tails)?;
    }
    for range in inside.split(',') {
        let range = range.trim();
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(lo) || !digits(hi) {
            return Err(format!(
                "`{}` in `{}` is not a number or a range of numbers",
                range.escape_debug(),
                term.escape_debug()
            ));
        }
        let too_many = || format!("`{}` names more than {cap} nodes", term.escape_debug());
        let (Ok(a), Ok(b)) = (lo.parse::<u64>(), hi.parse::<u64>()) else {
            return Err(too_many());
        };
        if a > b {
            return Err(format!(
                "`{}` in `{}` counts down",
                range.escape_debug(),
                term.escape_debug()
            ));
        }
        let count = usize::try_from(b - a)
            .ok()
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(tails.len()))
            .and_then(|n| n.checked_add(out.len()));
        if count.is_none_or(|n| n > cap) {
            return Err(too_many());
        }
        let width = lo.len();
        for n in a..=b {
            for tail in &tails {
                push_capped(out, format!("{prefix}{n:0width$}{tail}"), cap)?;
            }
        }
    }
    Ok(())
}

fn push_capped(out: &mut Vec<String>, name: String, cap: usize) -> Result<(), String> {
    if out.len() >= cap {
        return Err(format!("the node list names more than {cap} nodes"));
    }
    out.push(name);
    Ok(())
}

// ---------------------------------------------------------------------------
// The snapshot

/// The snapshot of what was read at `now`: partitions as components,
/// reservations that concern them as maintenance, newest first.
pub fn build(
    config: &SlurmConfig,
    partitions: &[Partition],
    reservations: &[Reservation],
    now: Timestamp,
    skipped: &mut Vec<String>,
) -> Snapshot {
    let mut seen = BTreeSet::new();
    let mut components = Vec::new();
    let mut node_sets: Vec<(String, HashSet<String>)> = Vec::new();
    for p in partitions {
        if !seen.insert(p.name.clone()) {
            continue;
        }
        components.push(Component {
            id: p.name.clone(),
            name: p.name.clone(),
            status: config.status_of(p.states.iter().map(String::as_str)),
            group_id: None,
            description: None,
            updated_at: None,
            unknown: None,
        });
        let nodes = match expand_hostlist(&p.nodes, MAX_NODES) {
            Ok(nodes) => nodes.into_iter().collect(),
            Err(e) => {
                skipped.push(format!(
                    "scontrol: the nodes of partition `{}` cannot be read ({e}); no \
                     reservation is matched to it by node",
                    p.name.escape_debug()
                ));
                HashSet::new()
            }
        };
        node_sets.push((p.name.clone(), nodes));
    }

    let mut incidents = Vec::new();
    for r in reservations {
        let maint = r.flags.iter().any(|f| f == "MAINT");
        if !maint && config.reservations == Reservations::Maint {
            continue;
        }
        if r.end.is_some_and(|end| end <= now) {
            continue; // over: it leaves the view
        }
        let all = r.flags.iter().any(|f| f == "ALL_NODES") || r.nodes.eq_ignore_ascii_case("ALL");
        let affected: Vec<String> = if all {
            node_sets.iter().map(|(name, _)| name.clone()).collect()
        } else {
            let nodes = match expand_hostlist(&r.nodes, MAX_NODES) {
                Ok(nodes) => nodes,
                Err(e) => {
                    skipped.push(format!(
                        "scontrol: skipped reservation `{}`: its nodes cannot be read ({e})",
                        r.name.escape_debug()
                    ));
                    continue;
                }
            };
            node_sets
                .iter()
                .filter(|(name, set)| {
                    r.partition.as_deref() == Some(name.as_str())
                        || nodes.iter().any(|n| set.contains(n))
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        // A reservation of nodes in no partition concerns no cluster: it
        // must not become page-wide news.
        if affected.is_empty() {
            continue;
        }
        let started = r.start <= now;
        let status = if started { "in_progress" } else { "scheduled" };
        incidents.push(Incident {
            id: r.name.clone(),
            kind: ItemKind::Maintenance,
            name: if maint {
                format!("Maintenance: {}", r.name)
            } else {
                format!("Reservation: {}", r.name)
            },
            status: status.to_owned(),
            impact: if maint { "maintenance" } else { "none" }.to_owned(),
            created_at: None,
            updated_at: None,
            started_at: started.then_some(r.start),
            monitoring_at: None,
            resolved_at: None,
            scheduled_for: Some(r.start),
            scheduled_until: r.end,
            shortlink: None,
            components: affected,
            updates: r
                .comment
                .iter()
                .map(|c| Update {
                    id: format!("{}-comment", r.name),
                    status: status.to_owned(),
                    body: c.clone(),
                    created_at: None,
                    display_at: None,
                    updated_at: None,
                })
                .collect(),
        });
    }
    incidents.sort_by(|a, b| {
        b.scheduled_for
            .cmp(&a.scheduled_for)
            .then_with(|| a.id.cmp(&b.id))
    });

    Snapshot {
        page: Page {
            id: config.cluster.clone().unwrap_or_else(|| "slurm".to_owned()),
            name: String::new(),
            url: None,
        },
        fetched_at: now,
        components,
        groups: Vec::new(),
        incidents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostlists_expand_with_padding_repeats_and_caps() {
        let x = |s: &str| expand_hostlist(s, 100);
        assert_eq!(
            x("n[01-04,07],gpu1").unwrap(),
            ["n01", "n02", "n03", "n04", "n07", "gpu1"]
        );
        assert_eq!(x("n[1-2]").unwrap(), ["n1", "n2"]);
        assert_eq!(x("n[8-10]").unwrap(), ["n8", "n9", "n10"]);
        assert_eq!(x("r[1-2]n[1-2]").unwrap(), ["r1n1", "r1n2", "r2n1", "r2n2"]);
        assert_eq!(x("a-b,c[3]").unwrap(), ["a-b", "c3"]);
        assert_eq!(x("").unwrap(), Vec::<String>::new());
        assert_eq!(x("login1").unwrap(), ["login1"]);
        for bad in ["n[1-", "n[a-b]", "n[3-1]", "n]", "n[[1]]", "n[1-2"] {
            assert!(x(bad).is_err(), "{bad}");
        }
        let e = x("n[0-99999999999999999999]").unwrap_err();
        assert!(e.contains("more than 100 nodes"), "{e}");
        let e = x("n[0-99]m[0-99]").unwrap_err();
        assert!(e.contains("more than 100 nodes"), "{e}");
        assert!(expand_hostlist("n[0-99]", 100).is_ok());
    }

    #[test]
    fn versions_from_23_02_print_json() {
        assert!(!supports_json("slurm-wlm 22.05.8"));
        assert!(supports_json("slurm 23.02.0"));
        assert!(supports_json("slurm 24.05.3"));
        assert!(supports_json("slurm-wlm 25.05.4-2"));
        assert!(!supports_json("slurm 23.01.0"));
        assert!(!supports_json("garbage"));
        assert!(!supports_json(""));
    }

    #[test]
    fn text_records_tolerate_spaces_continuations_and_garbage() {
        let mut skipped = Vec::new();
        let out = b"CLUSTER: a\nReservationName=r1 StartTime=2026-01-02T03:04:05 EndTime=Unknown \
                    Nodes=(null) PartitionName=p Flags=MAINT,ALL_NODES Comment=two words\n\
                    \x1b[31mgarbage\n\
                    ReservationName=r2 StartTime=2026-01-02T03:04:05\n   EndTime=2026-01-03T00:00:00 Nodes=n1\n";
        let r = reservations_from_text(out, &mut skipped).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].comment.as_deref(), Some("two words"));
        assert_eq!(r[0].end, None);
        assert_eq!(r[0].nodes, "");
        assert_eq!(r[0].partition.as_deref(), Some("p"));
        assert_eq!(r[0].flags, ["MAINT", "ALL_NODES"]);
        assert_eq!(r[1].nodes, "n1", "an indented line continues the record");
        assert_eq!(r[1].end, Some("2026-01-03T00:00:00Z".parse().unwrap()));
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].contains("1 line(s)"), "{skipped:?}");
        assert!(!skipped[0].contains('\x1b'), "quoted garbage is sanitized");

        let e = partitions_from_text(b"\x00\xff total garbage\n", &mut skipped).unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::UnexpectedShape);
        assert!(
            e.to_string().contains("printed no `PartitionName=` record"),
            "{e}"
        );
        assert!(!e.to_string().contains('\0'));

        let mut skipped = Vec::new();
        assert!(
            reservations_from_text(b"No reservations in the system\n", &mut skipped)
                .unwrap()
                .is_empty()
        );
        assert!(skipped.is_empty());
    }

    #[test]
    fn a_cut_off_record_costs_that_record() {
        let mut skipped = Vec::new();
        let p = partitions_from_text(
            b"PartitionName=a Nodes=n1 State=UP\nPartitionName=c AllowGro ups\n\
              PartitionName=b Nodes=n2 State=DO",
            &mut skipped,
        )
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            skipped,
            [
                "scontrol: skipped the last partition: the output ends in the middle of it",
                "scontrol: skipped partition `c`: it has no `State`",
            ]
        );
        let r = reservations_from_text(
            b"ReservationName=x StartTime=2026-13-45T99:00:00 Nodes=n1 Flags=MAINT\n",
            &mut skipped,
        )
        .unwrap();
        assert!(r.is_empty());
        assert!(
            skipped[2].contains("no readable `StartTime`"),
            "{skipped:?}"
        );
    }

    #[test]
    fn json_times_come_as_numbers_or_structs() {
        let t = |v: Value| json_time(&v);
        let at = Timestamp::from_second(1_764_492_263).unwrap();
        assert_eq!(t(serde_json::json!(1_764_492_263)), Some(at));
        assert_eq!(
            t(serde_json::json!({"set": true, "infinite": false, "number": 1_764_492_263})),
            Some(at)
        );
        assert_eq!(
            t(serde_json::json!({"set": true, "infinite": true, "number": 0})),
            None
        );
        assert_eq!(t(serde_json::json!({"set": false, "number": 5})), None);
        assert_eq!(t(serde_json::json!("yesterday")), None);
        assert_eq!(t(serde_json::json!(0)), None);
        assert_eq!(t(serde_json::json!(i64::MAX)), None);
    }

    #[test]
    fn json_errors_are_clear() {
        let mut skipped = Vec::new();
        let e = partitions_from_json(b"{\"partitions\": [", &mut skipped).unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::InvalidJson);
        let e = partitions_from_json(
            br#"{"errors": [{"description": "Unable to contact slurm controller"}]}"#,
            &mut skipped,
        )
        .unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::UnexpectedShape);
        assert!(
            e.to_string()
                .contains("Slurm says `Unable to contact slurm controller`"),
            "{e}"
        );
        let e = reservations_from_json(br#"{"reservations": 3}"#, &mut skipped).unwrap_err();
        assert!(e.to_string().contains("not a list"), "{e}");
        // Items of the wrong shape cost themselves.
        let r = reservations_from_json(
            br#"{"reservations": [3, {"name": "x"}, {"name": "ok", "start_time": 1764492263, "flags": "MAINT"}]}"#,
            &mut skipped,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].flags, ["MAINT"]);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(
            skipped[0].contains("reservation 0 of the JSON output: it has no `name`"),
            "{skipped:?}"
        );
        assert!(
            skipped[1].contains("`x`: no readable `start_time`"),
            "{skipped:?}"
        );
        skipped.clear();
        let p = partitions_from_json(
            br#"{"partitions": [{"name": ""}, {"name": "std", "partition": {"state": "UP"}}]}"#,
            &mut skipped,
        )
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "std");
        assert_eq!(
            skipped,
            ["scontrol: skipped partition 0 of the JSON output: it has no `name`"]
        );
    }

    fn config() -> SlurmConfig {
        let text = "[sources.slurm]\nkind = \"slurm\"\n";
        match crate::config::Config::parse(text, Path::new("/x/mapping.toml"))
            .unwrap()
            .sources["slurm"]
            .kind
            .clone()
        {
            crate::config::SourceKind::Slurm(s) => s,
            _ => unreachable!(),
        }
    }

    /// The recorded captures (`testdata/slurm/README.md`) at a time when
    /// `now_maint` runs, `maint_std` and `maint_all` are to come.
    fn fixture_snapshot(json: bool) -> (Snapshot, Vec<String>) {
        let now: Timestamp = "2026-11-30T08:00:00Z".parse().unwrap();
        let mut skipped = Vec::new();
        let (p, r) = if json {
            (
                partitions_from_json(
                    include_bytes!("testdata/slurm/partition.json"),
                    &mut skipped,
                )
                .unwrap(),
                reservations_from_json(
                    include_bytes!("testdata/slurm/reservation.json"),
                    &mut skipped,
                )
                .unwrap(),
            )
        } else {
            (
                partitions_from_text(include_bytes!("testdata/slurm/partition.txt"), &mut skipped)
                    .unwrap(),
                reservations_from_text(
                    include_bytes!("testdata/slurm/reservation.txt"),
                    &mut skipped,
                )
                .unwrap(),
            )
        };
        let snapshot = build(&config(), &p, &r, now, &mut skipped).sanitized();
        (snapshot, skipped)
    }

    #[test]
    fn recorded_text_output_normalizes() {
        let (snapshot, skipped) = fixture_snapshot(false);
        assert!(skipped.is_empty(), "{skipped:?}");
        insta::assert_snapshot!(serde_json::to_string_pretty(&snapshot).unwrap());
    }

    #[test]
    fn json_output_normalizes_exactly_as_the_text_form() {
        let (from_json, skipped) = fixture_snapshot(true);
        assert!(skipped.is_empty(), "{skipped:?}");
        insta::assert_snapshot!(serde_json::to_string_pretty(&from_json).unwrap());
        assert_eq!(from_json, fixture_snapshot(false).0);
    }

    #[test]
    fn the_snapshot_is_one_the_file_source_and_its_schema_accept() {
        let (snapshot, _) = fixture_snapshot(false);
        let file = serde_json::json!({"format": 1, "sources": {"slurm": &snapshot}});
        let (read, skipped) = super::super::file::parse_reporting(
            Path::new("slurm.json"),
            file.to_string().as_bytes(),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(read, snapshot);
    }

    #[test]
    fn no_reservations_is_an_empty_list() {
        let mut skipped = Vec::new();
        let r = reservations_from_text(
            include_bytes!("testdata/slurm/reservation-none.txt"),
            &mut skipped,
        )
        .unwrap();
        assert!(r.is_empty() && skipped.is_empty());
    }

    fn resv(name: &str, start: &str, end: &str, nodes: &str, flags: &[&str]) -> Reservation {
        Reservation {
            name: name.into(),
            start: start.parse().unwrap(),
            end: Some(end.parse().unwrap()),
            nodes: nodes.into(),
            partition: None,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            comment: None,
        }
    }

    #[test]
    fn reservations_map_to_the_partitions_their_nodes_cover() {
        let partitions = [
            Partition {
                name: "standard".into(),
                nodes: "n[1-2]".into(),
                states: vec!["UP".into()],
            },
            Partition {
                name: "highmem".into(),
                nodes: "n3".into(),
                states: vec!["DRAIN".into()],
            },
            Partition {
                name: "broken".into(),
                nodes: "n[".into(),
                states: vec!["DOWN".into()],
            },
        ];
        let now: Timestamp = "2026-11-30T08:00:00Z".parse().unwrap();
        let reservations = [
            resv(
                "soon",
                "2026-11-30T09:00:00Z",
                "2026-11-30T11:00:00Z",
                "n2",
                &["MAINT"],
            ),
            resv(
                "all",
                "2026-11-30T07:00:00Z",
                "2026-11-30T10:00:00Z",
                "n[1-3]",
                &["MAINT", "ALL_NODES"],
            ),
            resv(
                "over",
                "2026-11-30T06:00:00Z",
                "2026-11-30T08:00:00Z",
                "n1",
                &["MAINT"],
            ),
            resv(
                "user",
                "2026-11-30T09:00:00Z",
                "2026-11-30T10:00:00Z",
                "n3",
                &[],
            ),
            resv(
                "elsewhere",
                "2026-11-30T09:00:00Z",
                "2026-11-30T10:00:00Z",
                "login1",
                &["MAINT"],
            ),
        ];
        let mut skipped = Vec::new();
        let s = build(&config(), &partitions, &reservations, now, &mut skipped);
        let statuses: Vec<_> = s
            .components
            .iter()
            .map(|c| (c.id.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("standard", "operational"),
                ("highmem", "under_maintenance"),
                ("broken", "major_outage")
            ]
        );
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        let items: Vec<_> = s
            .incidents
            .iter()
            .map(|i| (i.id.as_str(), i.status.as_str(), i.components.join(",")))
            .collect();
        assert_eq!(
            items,
            [
                ("soon", "scheduled", "standard".to_owned()),
                ("all", "in_progress", "standard,highmem,broken".to_owned()),
            ]
        );

        let mut all = config();
        all.reservations = Reservations::All;
        let s = build(&all, &partitions, &reservations, now, &mut skipped);
        let user = s.incidents.iter().find(|i| i.id == "user").unwrap();
        assert_eq!(user.name, "Reservation: user");
        assert_eq!(user.impact, "none");
        assert_eq!(user.components, ["highmem"]);
    }
}
