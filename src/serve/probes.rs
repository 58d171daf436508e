//! `serve` runs the probes of every `probes` source continuously: each at
//! its own `interval`, jittered so that many probes do not fire in the same
//! second, at most [`crate::source::probes::CONCURRENCY`] at a time. The
//! counters are persisted after every round; only a round in which a probe's
//! status changed (or the first one) refreshes the source, so the files are
//! rendered again on a change, not on every check.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Coordinator;
use crate::config::{Probe, SourceKind};
use crate::metrics::ProbeLabel;
use crate::source::probes::{self, check::Clients, state::ProbesState};

/// The longest sleep between two looks at what is due, so a reload that
/// adds a probe is picked up soon.
const TICK: Duration = Duration::from_secs(1);

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

pub(super) async fn probes_task(c: Arc<Coordinator>) {
    let clients = Clients::new();
    let mut due: BTreeMap<(String, String), Instant> = BTreeMap::new();
    let mut refreshed: BTreeSet<String> = BTreeSet::new();
    loop {
        let live = c.live();
        let now = Instant::now();
        let secret_env = Arc::new(crate::child::secret_env_vars(&live.config));
        let mut seen = BTreeSet::new();
        for source in live.config.sources.values() {
            let SourceKind::Probes(config) = &source.kind else {
                continue;
            };
            let mut chosen = Vec::new();
            let mut state = None;
            for probe in &config.probes {
                let key = (source.name.clone(), probe.name.clone());
                seen.insert(key.clone());
                let next = due.entry(key).or_insert_with(|| {
                    let state = state.get_or_insert_with(|| {
                        ProbesState::load(&config.state_file).unwrap_or_default()
                    });
                    first_run(now, probe, state)
                });
                if *next <= now {
                    *next = next_after(now, probe);
                    chosen.push(probe.clone());
                }
            }
            if chosen.is_empty() {
                continue;
            }
            let results = tokio::select! {
                () = c.cancel_token().cancelled() => return,
                r = probes::check_all(&chosen, &clients, &secret_env) => r,
            };
            let config = config.clone();
            let recorded =
                tokio::task::spawn_blocking(move || probes::record(&config, chosen, results)).await;
            let changed = match recorded {
                Ok(Ok(ran)) => {
                    for r in &ran {
                        c.metrics.probe_checked(
                            &ProbeLabel {
                                source: source.name.clone(),
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
                    tracing::error!("probes of source `{}`: {e}", source.name);
                    false
                }
                Err(e) => {
                    tracing::error!("probes of source `{}`: {e}", source.name);
                    false
                }
            };
            if changed || refreshed.insert(source.name.clone()) {
                c.refresh(Some(std::slice::from_ref(&source.name)), "probe");
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
        let wake = due
            .values()
            .min()
            .copied()
            .unwrap_or(now + TICK)
            .min(Instant::now() + TICK);
        tokio::select! {
            () = c.cancel_token().cancelled() => return,
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}
