//! What the probes of one source have seen, kept in `state_dir` so that a
//! restart neither alerts again nor forgets an outage: per probe the status
//! it counts as, the streak of results that may change it, and its open
//! incident; and the incidents resolved lately.
//!
//! [`ProbesState::record`] is the hysteresis, a pure function of the state,
//! the probe's thresholds and one result: a status changes only after
//! `failure_threshold` non-OK results in a row, or `success_threshold` OK
//! results in a row. [`ProbesState::snapshot`] is what `render`, `show` and
//! `gate` read; they never run a probe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::Probe;
use crate::error::{Error, Result};
use crate::model::{Component, ComponentStatus, Group, Incident, ItemKind, Page, Snapshot, Update};

/// The version of the state file this code reads and writes.
const STATE_FORMAT: u32 = 1;

/// Resolved incidents older than this are dropped from the state file: the
/// view shows them for `recent_resolved` at most.
const KEEP_RESOLVED: SignedDuration = SignedDuration::from_hours(30 * 24);

/// One check's verdict, in the Nagios plugin convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// Answering, but slowly or with a warning: `degraded_performance`.
    Warning,
    /// Not answering as expected: the probe's `down` status.
    Critical,
    /// The check could not tell: changes nothing.
    Unknown,
}

impl Verdict {
    /// As metrics label it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Critical => "critical",
            Verdict::Unknown => "unknown",
        }
    }

    /// As `statusmotd probe` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Warning => "WARNING",
            Verdict::Critical => "CRITICAL",
            Verdict::Unknown => "UNKNOWN",
        }
    }
}

/// The result of running one check once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// One sanitized line.
    pub reason: String,
    pub at: Timestamp,
}

/// A probe's counters and open incident.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeState {
    /// The status the probe counts as, after hysteresis.
    pub status: ComponentStatus,
    /// Non-OK results in a row.
    pub failures: u32,
    /// OK results in a row.
    pub successes: u32,
    /// The first failure of the current streak of failures.
    pub streak_started: Option<Timestamp>,
    pub last: Option<Outcome>,
    /// When `status` last changed.
    pub changed_at: Option<Timestamp>,
    pub incident: Option<OpenIncident>,
}

/// The incident of a probe that counts as down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    pub id: String,
    pub started_at: Timestamp,
    /// The latest failure reason, and since when it is the reason.
    pub reason: String,
    pub updated_at: Timestamp,
    pub status: ComponentStatus,
}

/// An incident that ended: the probe recovered or was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedIncident {
    pub probe: String,
    pub id: String,
    pub started_at: Timestamp,
    pub reason: String,
    pub status: ComponentStatus,
    pub resolved_at: Timestamp,
    /// What ended it, for the final update.
    pub resolution: String,
}

/// The whole state file of one `probes` source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbesState {
    pub format: u32,
    /// When a probe of the source last ran: the snapshot's `fetched_at`.
    pub checked_at: Option<Timestamp>,
    pub probes: BTreeMap<String, ProbeState>,
    /// Newest last.
    pub resolved: Vec<ClosedIncident>,
    /// Pushes to the site's Statuspage not yet done, oldest first
    /// ([`super::push`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pushes: Vec<super::push::PendingPush>,
    /// Probe name -> the id of the Statuspage incident statusmotd opened for
    /// it and has not resolved yet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pushed_incidents: BTreeMap<String, super::push::PushedIncident>,
    /// The id of the latest push queued.
    #[serde(default)]
    pub push_seq: u64,
}

/// A probe's status changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: ComponentStatus,
    pub to: ComponentStatus,
}

impl ProbesState {
    /// Reads the state file at `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<ProbesState> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProbesState::default()),
            Err(e) => return Err(Error::io("cannot read the probes state", path)(e)),
        };
        let state: ProbesState = serde_json::from_str(&text).map_err(|e| {
            Error::Runtime(format!(
                "invalid probes state `{}`: {e}\nhint: remove the file to start counting afresh \
                 (open incidents are forgotten)",
                path.display()
            ))
        })?;
        if state.format != STATE_FORMAT {
            return Err(Error::Runtime(format!(
                "probes state `{}` is format {}, not the format {STATE_FORMAT} this version reads\n\
                 hint: remove the file to start counting afresh",
                path.display(),
                state.format
            )));
        }
        Ok(state)
    }

    /// Takes the exclusive lock beside the state file at `path`
    /// (`<source>.probes.lock`), waiting for it: a `statusmotd probe` from
    /// cron and `serve` may count into the same file, and each must load,
    /// count and save without the other's save in between. Released when
    /// the returned file is dropped.
    pub fn lock(path: &Path) -> Result<std::fs::File> {
        let (file, lock_path) = Self::lock_file(path, "lock")?;
        file.lock()
            .map_err(Error::io("cannot lock the probes state", &lock_path))?;
        Ok(file)
    }

    /// The file beside the state file at `path`, with `extension`, that a
    /// lock is taken on, opened (created if need be); and its path.
    pub(super) fn lock_file(
        path: &Path,
        extension: &str,
    ) -> Result<(std::fs::File, std::path::PathBuf)> {
        use rustix::fs::{Mode, OFlags};
        let lock_path = path.with_extension(extension);
        if let Some(dir) = path.parent() {
            // The state directory itself.
            #[allow(clippy::disallowed_methods)]
            std::fs::create_dir_all(dir)
                .map_err(Error::io("cannot create state directory", dir))?;
        }
        let fd = rustix::fs::open(
            &lock_path,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io("cannot open lock file", &lock_path)(e.into()))?;
        Ok((std::fs::File::from(fd), lock_path))
    }

    /// Replaces the state file at `path` atomically.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.format = STATE_FORMAT;
        if let Some(dir) = path.parent() {
            // The state directory itself; the file goes through
            // `output::replace_file`.
            #[allow(clippy::disallowed_methods)]
            std::fs::create_dir_all(dir)
                .map_err(Error::io("cannot create state directory", dir))?;
        }
        let text = serde_json::to_vec(self)
            .map_err(|e| Error::Runtime(format!("cannot serialize the probes state: {e}")))?;
        crate::output::replace_file(path, &text)
    }

    /// Counts one result of `probe`; returns the change of its status, if
    /// any. UNKNOWN changes nothing but the last result.
    pub fn record(&mut self, probe: &Probe, outcome: Outcome) -> Option<Transition> {
        let at = outcome.at;
        self.checked_at = Some(self.checked_at.map_or(at, |c| c.max(at)));
        let state = self.probes.entry(probe.name.clone()).or_default();
        let from = state.status;
        let target = match outcome.verdict {
            Verdict::Unknown => {
                state.last = Some(outcome);
                return None;
            }
            Verdict::Ok => {
                state.failures = 0;
                state.streak_started = None;
                state.successes = state.successes.saturating_add(1);
                if from != ComponentStatus::Operational
                    && state.successes >= probe.success_threshold
                {
                    if let Some(open) = state.incident.take() {
                        self.resolved.push(ClosedIncident {
                            probe: probe.name.clone(),
                            id: open.id,
                            started_at: open.started_at,
                            reason: open.reason,
                            status: open.status,
                            resolved_at: at,
                            resolution: format!("recovered: {}", outcome.reason),
                        });
                    }
                    ComponentStatus::Operational
                } else {
                    from
                }
            }
            Verdict::Warning | Verdict::Critical => {
                let bad = if outcome.verdict == Verdict::Warning {
                    ComponentStatus::DegradedPerformance
                } else {
                    probe.down
                };
                if state.failures == 0 {
                    state.streak_started = Some(at);
                }
                state.failures = state.failures.saturating_add(1);
                state.successes = 0;
                if from == ComponentStatus::Operational {
                    if state.failures >= probe.failure_threshold {
                        let started_at = state.streak_started.unwrap_or(at);
                        state.incident = Some(OpenIncident {
                            id: incident_id(&probe.name, started_at),
                            started_at,
                            reason: outcome.reason.clone(),
                            updated_at: at,
                            status: bad,
                        });
                        bad
                    } else {
                        from
                    }
                } else {
                    // Already counted as failing: the latest result says
                    // how badly.
                    let started_at = state.streak_started.unwrap_or(at);
                    let open = state.incident.get_or_insert_with(|| OpenIncident {
                        id: incident_id(&probe.name, started_at),
                        started_at,
                        reason: outcome.reason.clone(),
                        updated_at: at,
                        status: bad,
                    });
                    if open.reason != outcome.reason || open.status != bad {
                        open.reason.clone_from(&outcome.reason);
                        open.status = bad;
                        open.updated_at = at;
                    }
                    bad
                }
            }
        };
        state.last = Some(outcome);
        if target == from {
            return None;
        }
        state.status = target;
        state.changed_at = Some(at);
        Some(Transition { from, to: target })
    }

    /// Forgets the probes not in `keep` (removed from the configuration):
    /// their open incidents resolve (at their last check, as
    /// [`ProbesState::snapshot`] shows them). Drops resolved incidents older
    /// than a month before `now`.
    pub fn retire(&mut self, keep: &BTreeSet<&str>, now: Timestamp) {
        let gone: Vec<String> = self
            .probes
            .keys()
            .filter(|name| !keep.contains(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            let Some(state) = self.probes.remove(&name) else {
                continue;
            };
            if let Some(open) = state.incident {
                // As the snapshot showed it before this run: resolved at the
                // probe's last check.
                let resolved_at = state.last.map_or(open.updated_at, |l| l.at);
                self.resolved.push(ClosedIncident {
                    probe: name,
                    id: open.id,
                    started_at: open.started_at,
                    reason: open.reason,
                    status: open.status,
                    resolved_at,
                    resolution: "the probe was removed from the configuration".to_owned(),
                });
            }
        }
        self.resolved
            .retain(|c| now.duration_since(c.resolved_at) <= KEEP_RESOLVED);
    }

    /// The source's snapshot: one component per configured probe (in
    /// `probes`' order), groups from `group`, an open incident per probe
    /// that counts as failing, and the resolved ones. A probe in the state
    /// but no longer configured is left out, its open incident shown as
    /// resolved at its last check. `None` before any probe has run.
    pub fn snapshot(&self, source: &str, probes: &[Probe]) -> Option<Snapshot> {
        let fetched_at = self.checked_at?;
        let mut components = Vec::with_capacity(probes.len());
        let mut groups: Vec<Group> = Vec::new();
        let mut incidents = Vec::new();
        let configured: BTreeSet<&str> = probes.iter().map(|p| p.name.as_str()).collect();
        for probe in probes {
            let state = self.probes.get(&probe.name);
            let group_id = probe.group.clone();
            if let (Some(id), Some(name)) = (&group_id, &probe.group) {
                match groups.iter_mut().find(|g| &g.id == id) {
                    Some(g) => g.components.push(probe.name.clone()),
                    None => groups.push(Group {
                        id: id.clone(),
                        name: name.clone(),
                        components: vec![probe.name.clone()],
                    }),
                }
            }
            let description = state
                .and_then(|s| s.last.as_ref())
                .map(|last| format!("{}: {}", last.verdict.as_str(), last.reason));
            // UNKNOWN leaves the status as it was; the view says the check
            // could not tell, and why.
            let unknown = state
                .and_then(|s| s.last.as_ref())
                .filter(|last| last.verdict == Verdict::Unknown)
                .map(|last| {
                    if last.reason.trim().is_empty() {
                        "the check could not tell".to_owned()
                    } else {
                        last.reason.clone()
                    }
                });
            components.push(Component {
                id: probe.name.clone(),
                name: probe.name.clone(),
                status: state.map(|s| s.status).unwrap_or_default(),
                group_id,
                description,
                updated_at: state.and_then(|s| s.changed_at),
                unknown,
            });
            if let Some(open) = state.and_then(|s| s.incident.as_ref()) {
                incidents.push(open_incident(&probe.name, open));
            }
        }
        for (name, state) in &self.probes {
            if configured.contains(name.as_str()) {
                continue;
            }
            if let Some(open) = &state.incident {
                let at = state.last.as_ref().map_or(open.updated_at, |l| l.at);
                incidents.push(closed_incident(&ClosedIncident {
                    probe: name.clone(),
                    id: open.id.clone(),
                    started_at: open.started_at,
                    reason: open.reason.clone(),
                    status: open.status,
                    resolved_at: at,
                    resolution: "the probe was removed from the configuration".to_owned(),
                }));
            }
        }
        incidents.extend(self.resolved.iter().rev().map(closed_incident));
        Some(
            Snapshot {
                page: Page {
                    id: source.to_owned(),
                    name: source.to_owned(),
                    url: None,
                },
                fetched_at,
                components,
                groups,
                incidents,
            }
            .sanitized(),
        )
    }
}

/// Stable for the life of one outage, unique across outages and probes:
/// the slug is for people, the hash of the full name tells apart two names
/// with one slug (`web!`, `web?`).
fn incident_id(probe: &str, started_at: Timestamp) -> String {
    // FNV-1a: the same in every version and on every machine, unlike the
    // standard library's hasher.
    let hash = probe.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!(
        "probe-{}-{hash:08x}-{}",
        crate::mapping::slugify(probe),
        started_at.as_second()
    )
}

fn impact(status: ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::MajorOutage => "critical",
        ComponentStatus::PartialOutage => "major",
        _ => "minor",
    }
}

fn open_incident(probe: &str, open: &OpenIncident) -> Incident {
    Incident {
        id: open.id.clone(),
        kind: ItemKind::Incident,
        name: probe.to_owned(),
        status: "identified".to_owned(),
        impact: impact(open.status).to_owned(),
        created_at: Some(open.started_at),
        updated_at: Some(open.updated_at),
        started_at: Some(open.started_at),
        monitoring_at: None,
        resolved_at: None,
        scheduled_for: None,
        scheduled_until: None,
        shortlink: None,
        components: vec![probe.to_owned()],
        updates: vec![update(
            &open.id,
            "identified",
            &open.reason,
            open.updated_at,
        )],
    }
}

fn closed_incident(c: &ClosedIncident) -> Incident {
    Incident {
        id: c.id.clone(),
        kind: ItemKind::Incident,
        name: c.probe.clone(),
        status: "resolved".to_owned(),
        impact: impact(c.status).to_owned(),
        created_at: Some(c.started_at),
        updated_at: Some(c.resolved_at),
        started_at: Some(c.started_at),
        monitoring_at: None,
        resolved_at: Some(c.resolved_at),
        scheduled_for: None,
        scheduled_until: None,
        shortlink: None,
        components: vec![c.probe.clone()],
        updates: vec![
            update(
                &format!("{}-resolved", c.id),
                "resolved",
                &c.resolution,
                c.resolved_at,
            ),
            update(&c.id, "identified", &c.reason, c.started_at),
        ],
    }
}

fn update(id: &str, status: &str, body: &str, at: Timestamp) -> Update {
    Update {
        id: id.to_owned(),
        status: status.to_owned(),
        body: body.to_owned(),
        created_at: Some(at),
        display_at: Some(at),
        updated_at: Some(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Check;

    fn probe(name: &str) -> Probe {
        Probe {
            name: name.to_owned(),
            group: Some("Checks".to_owned()),
            check: Check::Tcp("127.0.0.1:1".to_owned()),
            down: ComponentStatus::MajorOutage,
            interval: SignedDuration::from_secs(30),
            timeout: SignedDuration::from_secs(5),
            failure_threshold: 3,
            success_threshold: 2,
            file: "mapping.toml".into(),
            push: None,
        }
    }

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + minute * 60).unwrap()
    }

    fn run(
        state: &mut ProbesState,
        p: &Probe,
        minute: i64,
        verdict: Verdict,
    ) -> Option<Transition> {
        state.record(
            p,
            Outcome {
                verdict,
                reason: format!("{} at {minute}", verdict.as_str()),
                at: at(minute),
            },
        )
    }

    fn status(state: &ProbesState, name: &str) -> ComponentStatus {
        state.probes[name].status
    }

    #[test]
    fn down_only_on_the_third_failure_and_up_only_on_the_second_success() {
        let p = probe("web");
        let mut s = ProbesState::default();
        assert_eq!(run(&mut s, &p, 0, Verdict::Critical), None);
        assert_eq!(run(&mut s, &p, 1, Verdict::Critical), None);
        assert_eq!(status(&s, "web"), ComponentStatus::Operational);
        let t = run(&mut s, &p, 2, Verdict::Critical).unwrap();
        assert_eq!(t.to, ComponentStatus::MajorOutage);
        let open = s.probes["web"].incident.clone().unwrap();
        assert_eq!(open.started_at, at(0), "the streak's first failure");
        assert_eq!(run(&mut s, &p, 3, Verdict::Ok), None);
        assert_eq!(status(&s, "web"), ComponentStatus::MajorOutage);
        let t = run(&mut s, &p, 4, Verdict::Ok).unwrap();
        assert_eq!(t.to, ComponentStatus::Operational);
        assert!(s.probes["web"].incident.is_none());
        assert_eq!(s.resolved.len(), 1);
        assert_eq!(s.resolved[0].id, open.id);
        assert_eq!(s.resolved[0].resolved_at, at(4));
    }

    #[test]
    fn a_single_failure_between_successes_changes_nothing() {
        let p = probe("web");
        let mut s = ProbesState::default();
        for (minute, v) in [(0, Verdict::Ok), (1, Verdict::Critical), (2, Verdict::Ok)]
            .into_iter()
            .chain((3..10).map(|m| {
                (
                    m,
                    if m % 2 == 0 {
                        Verdict::Critical
                    } else {
                        Verdict::Ok
                    },
                )
            }))
        {
            assert_eq!(run(&mut s, &p, minute, v), None, "minute {minute}");
        }
        assert!(s.probes["web"].incident.is_none());
        assert!(s.resolved.is_empty());
    }

    #[test]
    fn a_success_inside_an_outage_keeps_the_incident_and_its_start() {
        let p = probe("web");
        let mut s = ProbesState::default();
        for m in 0..3 {
            run(&mut s, &p, m, Verdict::Critical);
        }
        let id = s.probes["web"].incident.clone().unwrap().id;
        run(&mut s, &p, 3, Verdict::Ok);
        run(&mut s, &p, 4, Verdict::Critical);
        let open = s.probes["web"].incident.clone().unwrap();
        assert_eq!((open.id, open.started_at), (id, at(0)));
        assert_eq!(open.reason, "CRITICAL at 4", "the latest reason");
    }

    #[test]
    fn warnings_degrade_with_the_same_thresholds_and_unknown_changes_nothing() {
        let p = probe("web");
        let mut s = ProbesState::default();
        run(&mut s, &p, 0, Verdict::Warning);
        run(&mut s, &p, 1, Verdict::Unknown);
        run(&mut s, &p, 2, Verdict::Warning);
        assert_eq!(status(&s, "web"), ComponentStatus::Operational);
        assert_eq!(
            s.probes["web"].failures, 2,
            "UNKNOWN neither counts nor resets"
        );
        let t = run(&mut s, &p, 3, Verdict::Warning).unwrap();
        assert_eq!(t.to, ComponentStatus::DegradedPerformance);
        let t = run(&mut s, &p, 4, Verdict::Critical).unwrap();
        assert_eq!(t.to, ComponentStatus::MajorOutage);
        let snap = s.snapshot("checks", &[p]).unwrap();
        assert_eq!(snap.incidents.len(), 1);
        assert_eq!(snap.incidents[0].impact, "critical");
    }

    #[test]
    fn the_state_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checks.probes.json");
        let p = probe("web");
        let mut s = ProbesState::default();
        for m in 0..2 {
            run(&mut s, &p, m, Verdict::Critical);
        }
        s.save(&path).unwrap();
        let mut s = ProbesState::load(&path).unwrap();
        assert!(
            run(&mut s, &p, 2, Verdict::Critical).is_some(),
            "the streak went on"
        );
        s.save(&path).unwrap();
        let mut s = ProbesState::load(&path).unwrap();
        assert_eq!(
            run(&mut s, &p, 3, Verdict::Critical),
            None,
            "no second alert"
        );
        assert_eq!(s.probes["web"].incident.as_ref().unwrap().started_at, at(0));
    }

    #[test]
    fn a_removed_probe_disappears_and_its_incident_resolves() {
        let (web, db) = (probe("web"), probe("db"));
        let mut s = ProbesState::default();
        for m in 0..3 {
            run(&mut s, &web, m, Verdict::Critical);
            run(&mut s, &db, m, Verdict::Ok);
        }
        // Read before any probe runs again: the snapshot already shows it.
        let snap = s.snapshot("checks", std::slice::from_ref(&db)).unwrap();
        assert_eq!(snap.components.len(), 1);
        assert_eq!(snap.incidents.len(), 1);
        assert!(snap.incidents[0].is_closed());
        let before = snap.incidents[0].clone();
        s.retire(&BTreeSet::from(["db"]), at(5));
        assert!(!s.probes.contains_key("web"));
        assert_eq!(s.resolved[0].resolved_at, at(2), "its last check");
        let snap = s.snapshot("checks", &[db]).unwrap();
        assert_eq!(snap.groups[0].components, ["db"]);
        assert_eq!(
            snap.incidents[0], before,
            "the same resolved incident as before"
        );
    }

    #[test]
    fn the_state_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/checks.probes.json");
        let held = ProbesState::lock(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = path.clone();
        let waiter = std::thread::spawn(move || {
            let _lock = ProbesState::lock(&other).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "a second holder waits"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the lock passes on when released");
        waiter.join().unwrap();
    }

    #[test]
    fn incident_ids_tell_apart_names_with_one_slug() {
        let a = incident_id("web!", at(0));
        let b = incident_id("web?", at(0));
        assert_ne!(a, b);
        assert!(a.starts_with("probe-web-"), "{a}");
        assert_eq!(a, incident_id("web!", at(0)), "stable");
    }

    #[test]
    fn no_snapshot_before_any_run() {
        assert!(ProbesState::default()
            .snapshot("checks", &[probe("web")])
            .is_none());
    }
}
