//! `serve` runs the probes of every `probes` source continuously: each at
//! its own `interval`, jittered so that many probes do not fire in the same
//! second, each check a task of its own, at most
//! [`crate::source::probes::CONCURRENCY`] checking at a time. The counters
//! are persisted as checks end; only a status change (or a source's first
//! results) refreshes the source, so the files are rendered again on a
//! change, not on every check.
//!
//! Pushes to the site's Statuspage ([`crate::source::probes::push`]) are
//! delivered beside the checks, one task per `probes` source at a time:
//! soon after a transition queues one, and every [`PUSH_LOOK`] for those
//! kept for a retry (or left by a process before a restart).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Coordinator;
use crate::config::{Probe, SourceKind};
use crate::metrics::ProbeLabel;
use crate::source::probes::check::{self, Clients};
use crate::source::probes::state::ProbesState;
use crate::source::probes::{self, CheckResult};

/// The longest sleep between two looks at what is due, so a reload that
/// adds a probe is picked up soon.
const TICK: Duration = Duration::from_secs(1);

/// How long results are collected before they are counted and saved: a
/// status change reaches the files at most this much later, and a crash
/// loses at most this much of the counters.
const BATCH: Duration = Duration::from_millis(500);

/// How often pushes kept for a retry are looked for.
const PUSH_LOOK: Duration = Duration::from_secs(2);

/// A random duration in `[0, max)`.
fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    Duration::from_nanos(random % nanos)
}

fn interval(probe: &Probe) -> Duration {
    Duration::try_from(probe.interval).unwrap_or(Duration::from_secs(30))
}

/// The next run after one now: the interval, give or take a tenth.
fn next_after(now: Instant, probe: &Probe) -> Instant {
    let every = interval(probe);
    now + every - every / 10 + jitter(every / 5)
}

/// The first run of a probe the task has not seen: one interval after its
/// last persisted check (a restart keeps the cadence), else soon, spread
/// over a tenth of the interval.
fn first_run(now: Instant, probe: &Probe, state: &ProbesState) -> Instant {
    let every = interval(probe);
    let last = state.probes.get(&probe.name).and_then(|s| s.last.as_ref());
    match last {
        Some(last) => {
            let age = jiff::Timestamp::now().duration_since(last.at);
            let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
            now + every.saturating_sub(age).min(every) + jitter(every / 10)
        }
        None => now + jitter(every / 10),
    }
}

/// A check that ended: its source, its probe, and what it found.
type Checked = (String, Probe, CheckResult);

pub(super) async fn probes_task(c: Arc<Coordinator>) {
    let clients = Clients::new();
    let limit = Arc::new(Semaphore::new(probes::CONCURRENCY));
    let (tx, mut rx) = mpsc::unbounded_channel::<Checked>();
    // Dropped when the service stops, which aborts the checks under way.
    let mut checks = JoinSet::new();
    let mut due: BTreeMap<(String, String), Instant> = BTreeMap::new();
    let mut running: BTreeSet<(String, String)> = BTreeSet::new();
    let mut refreshed: BTreeSet<String> = BTreeSet::new();
    // Dropped when the service stops, which aborts the pushes under way
    // (a step not marked done is sent again after the restart).
    let mut pushes: JoinSet<()> = JoinSet::new();
    // The sources whose pushes are under way, by task: a task that panics
    // frees its source as one that returns does.
    let mut pushing: BTreeMap<tokio::task::Id, String> = BTreeMap::new();
    let mut push_look = Instant::now();
    let http = crate::source::client();
    loop {
        let live = c.live();
        let now = Instant::now();
        while let Some(done) = pushes.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => {
                    tracing::error!(
                        "pushes of source `{}` stopped: {e}",
                        pushing.get(&e.id()).map_or("?", String::as_str)
                    );
                    e.id()
                }
            };
            pushing.remove(&id);
        }
        if now >= push_look {
            push_look = now + PUSH_LOOK;
            for source in live.config.sources.values() {
                if !matches!(source.kind, SourceKind::Probes(_))
                    || pushing.values().any(|n| *n == source.name)
                {
                    continue;
                }
                let (c, live, http, name) =
                    (c.clone(), live.clone(), http.clone(), source.name.clone());
                let task = pushes.spawn(async move {
                    if let Some(SourceKind::Probes(config)) =
                        live.config.sources.get(&name).map(|s| &s.kind)
                    {
                        match probes::push::deliver(&name, config, &live.config, &http).await {
                            Ok(outcomes) => {
                                for p in outcomes {
                                    let label = ProbeLabel {
                                        source: name.clone(),
                                        probe: p.probe.clone(),
                                    };
                                    c.metrics.probe_pushed(&label, p.result.label());
                                }
                            }
                            Err(e) => tracing::error!("pushes of source `{name}`: {e}"),
                        }
                    }
                });
                pushing.insert(task.id(), source.name.clone());
            }
        }
        let secret_env = Arc::new(live.config.secret_env_vars());
        let mut seen = BTreeSet::new();
        // Each due probe is a task of its own, so a slow check delays no
        // other; at most `CONCURRENCY` of them check at once.
        for source in live.config.sources.values() {
            let SourceKind::Probes(config) = &source.kind else {
                continue;
            };
            let mut state = None;
            for probe in &config.probes {
                let key = (source.name.clone(), probe.name.clone());
                seen.insert(key.clone());
                let next = due.entry(key.clone()).or_insert_with(|| {
                    let state = state.get_or_insert_with(|| {
                        ProbesState::load(&config.state_file).unwrap_or_default()
                    });
                    first_run(now, probe, state)
                });
                if *next > now || running.contains(&key) {
                    continue;
                }
                *next = next_after(now, probe);
                running.insert(key);
                let (source, probe, clients, env, limit, tx) = (
                    source.name.clone(),
                    probe.clone(),
                    clients.clone(),
                    secret_env.clone(),
                    limit.clone(),
                    tx.clone(),
                );
                checks.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    let started = std::time::Instant::now();
                    let (verdict, reason) = check::run(&probe, &clients, &env).await;
                    let result = (verdict, reason, Timestamp::now(), started.elapsed());
                    let _ = tx.send((source, probe, result));
                });
            }
        }
        due.retain(|(source, probe), _| {
            let keep = seen.contains(&(source.clone(), probe.clone()));
            if !keep {
                c.metrics.probe_removed(&ProbeLabel {
                    source: source.clone(),
                    probe: probe.clone(),
                });
            }
            keep
        });
        while checks.try_join_next().is_some() {}
        let wake = due
            .values()
            .min()
            .copied()
            .unwrap_or(now + TICK)
            .min(Instant::now() + TICK);
        let first = tokio::select! {
            () = c.cancel_token().cancelled() => return,
            () = tokio::time::sleep_until(wake) => continue,
            Some(first) = rx.recv() => first,
        };
        // Count the checks that end within `BATCH` of this one together: one
        // save per source and batch, not one per check (1,000 probes at 30 s
        // end 33 checks a second).
        let mut ended: BTreeMap<String, Vec<(Probe, CheckResult)>> = BTreeMap::new();
        let batch_ends = Instant::now() + BATCH;
        let mut next = Some(first);
        while let Some((source, probe, result)) = next {
            running.remove(&(source.clone(), probe.name.clone()));
            ended.entry(source).or_default().push((probe, result));
            next = tokio::select! {
                () = c.cancel_token().cancelled() => return,
                () = tokio::time::sleep_until(batch_ends) => None,
                more = rx.recv() => more,
            };
        }
        for (source, done) in ended {
            // The configuration in force now: a probe removed meanwhile
            // leaves the state when this is saved.
            let Some(SourceKind::Probes(config)) =
                c.live().config.sources.get(&source).map(|s| s.kind.clone())
            else {
                continue;
            };
            let (chosen, results): (Vec<_>, Vec<_>) = done.into_iter().unzip();
            let recorded =
                tokio::task::spawn_blocking(move || probes::record(&config, chosen, results)).await;
            let changed = match recorded {
                Ok(Ok(ran)) => {
                    for r in &ran {
                        c.metrics.probe_checked(
                            &ProbeLabel {
                                source: source.clone(),
                                probe: r.probe.name.clone(),
                            },
                            r.verdict.label(),
                            r.took.as_secs_f64(),
                            r.state.failures,
                            r.state.status == crate::model::ComponentStatus::Operational,
                        );
                    }
                    ran.iter().any(|r| r.transition.is_some())
                }
                Ok(Err(e)) => {
                    tracing::error!("probes of source `{source}`: {e}");
                    false
                }
                Err(e) => {
                    tracing::error!("probes of source `{source}`: {e}");
                    false
                }
            };
            if changed {
                // Deliver the pushes the transition queued now.
                push_look = Instant::now();
            }
            if changed || refreshed.insert(source.clone()) {
                c.refresh(Some(std::slice::from_ref(&source)), "probe");
            }
        }
    }
}
