//! The `probes` source kind: health checks statusmotd runs itself
//! (`DESIGN.md`, "Probes (0.2)").
//!
//! Running and reading are apart. [`run`] runs probes (every one, or those
//! named), counts their results with hysteresis ([`state`]) and persists the
//! counters and incidents in `state_dir`; `statusmotd probe` and `serve` call
//! it. [`read`] turns that persisted state into the source's snapshot; it is
//! what a fetch of the source does, so `render`, `show` and `gate` never run
//! a probe.
//!
//! Maintenance wins: a cluster with maintenance in progress from any of its
//! sources shows its failing probes `under_maintenance` and without incident
//! ([`maintenance_wins`], applied where a cluster's views are merged).

pub mod check;
pub mod push;
pub mod state;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use self::check::Clients;
use self::state::{ProbeState, ProbesState, Transition, Verdict};
use super::{FetchError, FetchErrorKind};
use crate::config::{Probe, ProbesConfig};
use crate::error::Result;
use crate::model::{ComponentStatus, Snapshot};
use crate::view::ClusterView;

/// One check's result: its verdict, the reason, when it ended and how long
/// it took.
pub type CheckResult = (Verdict, String, Timestamp, Duration);

/// How many checks run at once, in `statusmotd probe` and in `serve`.
pub const CONCURRENCY: usize = 8;

/// The persisted state of a `probes` source as its snapshot.
pub fn read(source: &str, config: &ProbesConfig) -> std::result::Result<Snapshot, FetchError> {
    let state = ProbesState::load(&config.state_file).map_err(|e| FetchError {
        kind: FetchErrorKind::InvalidJson,
        message: e.to_string(),
        hint: None,
        note: Some("the probes' state cannot be read"),
        api: None,
    })?;
    state
        .snapshot(source, &config.probes)
        .ok_or_else(|| {
            FetchError {
        kind: FetchErrorKind::Unreadable,
        message: format!(
            "no probe of source `{source}` has run yet (no `{}`); run `statusmotd probe`",
            config.state_file.display()
        ),
        hint: Some(
            "run `statusmotd probe` first (from cron or a systemd timer), or `statusmotd serve`, \
             which runs the probes itself"
                .to_owned(),
        ),
        note: Some("no probe has run yet"),
        api: None,
    }
        })
}

/// The configured probes as a snapshot, whether or not any has run: their
/// components and groups, which is all `mapping init` maps. `None` only
/// if a state with `checked_at` had no snapshot, which it always has.
pub fn configured(source: &str, config: &ProbesConfig, now: Timestamp) -> Option<Snapshot> {
    let state = ProbesState {
        checked_at: Some(now),
        ..ProbesState::default()
    };
    state.snapshot(source, &config.probes)
}

/// One probe's run: its result and the state it leaves.
#[derive(Debug, Clone)]
pub struct Ran {
    pub probe: Probe,
    pub verdict: Verdict,
    pub reason: String,
    pub took: Duration,
    pub transition: Option<Transition>,
    pub state: ProbeState,
}

/// Runs `probes` once, at most [`CONCURRENCY`] at a time, in their order.
pub async fn check_all(
    probes: &[Probe],
    clients: &Clients,
    secret_env: &Arc<BTreeSet<String>>,
) -> Vec<CheckResult> {
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (at, probe) in probes.iter().enumerate() {
        let (probe, clients, env, limit) = (
            probe.clone(),
            clients.clone(),
            secret_env.clone(),
            limit.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let started = Instant::now();
            let (verdict, reason) = check::run(&probe, &clients, &env).await;
            (at, (verdict, reason, Timestamp::now(), started.elapsed()))
        });
    }
    let mut results: Vec<Option<CheckResult>> = vec![None; probes.len()];
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((at, result)) => results[at] = Some(result),
            Err(e) => tracing::error!("a probe's check failed to run: {e}"),
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                (
                    Verdict::Unknown,
                    "the check failed to run".to_owned(),
                    Timestamp::now(),
                    Duration::ZERO,
                )
            })
        })
        .collect()
}

/// Runs the probes of `config` whose names `only` holds (all when `None`),
/// counts their results into the persisted state and saves it. Probes no
/// longer configured leave the state (their open incidents resolve).
pub async fn run(
    config: &ProbesConfig,
    only: Option<&BTreeSet<String>>,
    clients: &Clients,
    secret_env: &Arc<BTreeSet<String>>,
) -> Result<Vec<Ran>> {
    let chosen: Vec<Probe> = config
        .probes
        .iter()
        .filter(|p| only.is_none_or(|o| o.contains(&p.name)))
        .cloned()
        .collect();
    let results = check_all(&chosen, clients, secret_env).await;
    record(config, chosen, results)
}

/// Counts checks' results into the persisted state of `config` and saves it.
pub fn record(
    config: &ProbesConfig,
    probes: Vec<Probe>,
    results: Vec<CheckResult>,
) -> Result<Vec<Ran>> {
    let _lock = ProbesState::lock(&config.state_file)?;
    let mut state = ProbesState::load(&config.state_file)?;
    let mut ran = Vec::with_capacity(probes.len());
    for (probe, (verdict, reason, at, took)) in probes.into_iter().zip(results) {
        let transition = state.record(
            &probe,
            state::Outcome {
                verdict,
                reason: reason.clone(),
                at,
            },
        );
        if let (Some(t), Some(target)) = (transition, &probe.push) {
            // Saved below with the counters, before it is sent.
            push::queue(&mut state, &probe.name, target, t, &reason, at);
        }
        if let Some(t) = transition {
            tracing::info!(
                probe = %probe.name,
                "probe `{}` is now {} (was {}): {reason}",
                probe.name,
                t.to.as_str(),
                t.from.as_str()
            );
        }
        let now = state.probes.get(&probe.name).cloned().unwrap_or_default();
        ran.push(Ran {
            probe,
            verdict,
            reason,
            took,
            transition,
            state: now,
        });
    }
    let keep: BTreeSet<&str> = config.probes.iter().map(|p| p.name.as_str()).collect();
    state.retire(&keep, Timestamp::now());
    push::retire(&mut state, &keep, Timestamp::now());
    state.save(&config.state_file)?;
    Ok(ran)
}

/// `statusmotd probe`'s report: one aligned line per probe, naming its
/// result, reason, the streak that may change it and its status.
pub fn report(ran: &[Ran]) -> String {
    let counter = |r: &Ran| {
        let s = &r.state;
        let up = s.status == ComponentStatus::Operational;
        let threshold = r.probe.failure_threshold;
        match (s.failures, up) {
            // Counting towards `failure_threshold`.
            (n, _) if n > 0 && n <= threshold => format!("fail {n}/{threshold}"),
            // Long past it: how long the streak is.
            (n, _) if n > 0 => format!("fail {n}"),
            (_, true) => "ok".to_owned(),
            (_, false) => format!("ok {}/{}", s.successes, r.probe.success_threshold),
        }
    };
    let rows: Vec<[String; 5]> = ran
        .iter()
        .map(|r| {
            let mut status = r.state.status.as_str().to_owned();
            if let Some(t) = r.transition {
                let _ = write!(status, " (was {})", t.from.as_str());
            }
            [
                r.probe.name.clone(),
                r.verdict.as_str().to_owned(),
                counter(r),
                status,
                r.reason.clone(),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| unicode_width::UnicodeWidthStr::width(r[i].as_str()))
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2), width(3)];
    let mut out = String::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(4) {
            let pad = widths[i] - unicode_width::UnicodeWidthStr::width(cell.as_str());
            let _ = write!(out, "{cell}{}  ", " ".repeat(pad));
        }
        let _ = writeln!(out, "{}", row[4]);
    }
    out
}

/// Maintenance wins over probes: when any of a cluster's views (one per
/// source) has maintenance in progress, the views of `probes` sources lose
/// their open incidents and show their failing components
/// `under_maintenance`. A probe that fails because of the maintenance is
/// expected to; it alerts nobody.
pub fn maintenance_wins(views: &mut [ClusterView], is_probes: impl Fn(&str) -> bool) {
    if views.iter().all(|v| v.maintenance.active.is_empty()) {
        return;
    }
    for v in views
        .iter_mut()
        .filter(|v| v.sources.iter().any(|s| is_probes(&s.name)))
    {
        v.incidents.clear();
        for c in &mut v.components {
            c.status = ComponentStatus::UnderMaintenance;
            c.status_label = c.status.label();
        }
        v.status = v
            .components
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or_default();
        v.status_label = v.status.label();
    }
}
