//! The outbox: one file in `state_dir` (`notify.json`) that holds what was
//! seen of every cluster, every (route, event) not yet delivered, and which
//! were delivered. It is written atomically (through
//! `output::replace_file`) after events are found and before anything is
//! sent, before each delivery starts and after it ends, so that:
//!
//! - an event found is never lost: the views it came from are remembered in
//!   the same write that queues it;
//! - a delivered event is never sent again: its id stays in `done` for
//!   [`DONE_KEPT`], and an event with that id is not queued again;
//! - a delivery cut short by a crash (`in_flight`) is repeated only to a
//!   receiver that recognises a repeat (Matrix, webhook); to the others it
//!   is not sent again, so each event arrives at most once.
//!
//! Events that could not be delivered for [`MAX_PENDING`] are dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::events::{self, Event, Seen};
use crate::config::{Impact, NotifyRoute};
use crate::error::{Error, Result};
use crate::model::ItemKind;
use crate::view::ClusterView;

/// The outbox's file name in `state_dir`.
pub const FILE: &str = "notify.json";

const FORMAT: u32 = 1;

/// An event not delivered within this is dropped, with an error and a
/// metric: a receiver down for a day should not get a day of old news at
/// once, nor should the outbox grow for ever.
pub const MAX_PENDING: SignedDuration = SignedDuration::from_hours(24);

/// How long a delivered event's id is remembered.
pub const DONE_KEPT: SignedDuration = SignedDuration::from_hours(30 * 24);

/// The first retry waits this long; each further one twice as long, up to
/// [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: SignedDuration = SignedDuration::from_secs(1);
pub const MAX_BACKOFF: SignedDuration = SignedDuration::from_mins(5);

/// A (route, event) to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub route: String,
    pub event: Event,
    pub queued_at: Timestamp,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be tried before this.
    pub next_at: Timestamp,
    /// A delivery started and has not ended (as far as this file knows).
    pub in_flight: bool,
    /// When the first attempt failed, while none has succeeded.
    pub failing_since: Option<Timestamp>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    format: u32,
    /// What each cluster's view showed when last rendered.
    pub seen: Seen,
    pub pending: Vec<Pending>,
    /// Route -> event id -> when it was delivered (or given up on).
    pub done: BTreeMap<String, BTreeMap<String, Timestamp>>,
}

/// What happened to a pending event outside a delivery: for logs and
/// metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// Undeliverable for [`MAX_PENDING`].
    Expired(Pending),
    /// Its delivery was under way when the process stopped, and the receiver
    /// cannot recognise a repeat: not sent again.
    Abandoned(Pending),
    /// Its route is no longer configured.
    NoRoute(Pending),
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

impl Outbox {
    /// The outbox in `state_dir`; `None` when there is none yet (the first
    /// run). A file that cannot be read as an outbox is an error.
    pub fn load(state_dir: &Path) -> Result<Option<Outbox>> {
        let path = path(state_dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read the notification outbox", &path)(e)),
        };
        let mut outbox: Outbox = serde_json::from_slice(&text).map_err(|e| {
            Error::Runtime(format!(
                "cannot read the notification outbox `{}`: {e}\n\
                 hint: move it aside; the next run starts afresh and announces nothing that exists",
                path.display()
            ))
        })?;
        if outbox.format != FORMAT {
            return Err(Error::Runtime(format!(
                "the notification outbox `{}` has format {}, not {FORMAT}\nhint: move it aside",
                path.display(),
                outbox.format
            )));
        }
        // A person may have edited it: what goes to receivers is made safe
        // again, as snapshots are when loaded.
        for p in &mut outbox.pending {
            p.event.item = p.event.item.clone().sanitized();
        }
        Ok(Some(outbox))
    }

    /// An empty outbox, for the first run.
    pub fn new() -> Outbox {
        Outbox {
            format: FORMAT,
            ..Outbox::default()
        }
    }

    /// Replaces the file in `state_dir` atomically.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        // The state directory itself, not a file: the file goes through
        // `output::replace_file`.
        #[allow(clippy::disallowed_methods)]
        std::fs::create_dir_all(state_dir)
            .map_err(Error::io("cannot create state directory", state_dir))?;
        let bytes = serde_json::to_vec(self)
            .map_err(|e| Error::Runtime(format!("cannot serialize the outbox: {e}")))?;
        crate::output::replace_file(&path(state_dir), &bytes)
    }

    /// Finds the events between what was seen and `views`, queues each for
    /// every route it passes, and remembers `views`. Returns how many
    /// (route, event) were queued.
    pub fn enqueue(
        &mut self,
        routes: &[NotifyRoute],
        views: &[&ClusterView],
        now: Timestamp,
    ) -> usize {
        let found = events::diff(&self.seen, views);
        events::remember(&mut self.seen, views);
        let mut queued = 0;
        for event in found {
            for route in routes {
                let Some(clusters) = route_clusters(route, &event) else {
                    continue;
                };
                let key = (route.name.as_str(), event.id.as_str());
                let known = self
                    .pending
                    .iter()
                    .any(|p| (p.route.as_str(), p.event.id.as_str()) == key)
                    || self.done.get(key.0).is_some_and(|d| d.contains_key(key.1));
                if known {
                    continue;
                }
                let mut event = event.clone();
                event.first_seen.retain(|c| clusters.contains(c));
                event.clusters = clusters;
                self.pending.push(Pending {
                    route: route.name.clone(),
                    event,
                    queued_at: now,
                    attempts: 0,
                    next_at: now,
                    in_flight: false,
                    failing_since: None,
                    last_error: None,
                });
                queued += 1;
            }
        }
        queued
    }

    /// At start: settles deliveries a stopped process left under way, drops
    /// events of routes no longer configured. Returns what was dropped.
    pub fn recover(&mut self, routes: &[NotifyRoute], now: Timestamp) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        let mut keep = Vec::new();
        for mut p in std::mem::take(&mut self.pending) {
            let Some(route) = routes.iter().find(|r| r.name == p.route) else {
                dropped.push(Dropped::NoRoute(p));
                continue;
            };
            if p.in_flight {
                if route.to.is_idempotent() {
                    p.in_flight = false;
                } else {
                    self.mark_done(&p.route, &p.event.id, now);
                    dropped.push(Dropped::Abandoned(p));
                    continue;
                }
            }
            keep.push(p);
        }
        self.pending = keep;
        dropped
    }

    /// Drops what waited longer than [`MAX_PENDING`] (never sending it
    /// later) and forgets delivered ids older than [`DONE_KEPT`].
    pub fn expire(&mut self, now: Timestamp) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        let mut keep = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if !p.in_flight && now.duration_since(p.queued_at) > MAX_PENDING {
                self.mark_done(&p.route, &p.event.id, now);
                dropped.push(Dropped::Expired(p));
            } else {
                keep.push(p);
            }
        }
        self.pending = keep;
        for ids in self.done.values_mut() {
            ids.retain(|_, at| now.duration_since(*at) <= DONE_KEPT);
        }
        self.done.retain(|_, ids| !ids.is_empty());
        dropped
    }

    fn mark_done(&mut self, route: &str, id: &str, now: Timestamp) {
        self.done
            .entry(route.to_owned())
            .or_default()
            .insert(id.to_owned(), now);
    }

    fn find(&mut self, route: &str, id: &str) -> Option<&mut Pending> {
        self.pending
            .iter_mut()
            .find(|p| p.route == route && p.event.id == id)
    }

    /// The (route, event id) due at `now`, oldest first. A route with a
    /// delivery under way, or one waiting out its backoff, has none due:
    /// its events go in order, and a receiver that fails gets no burst.
    pub fn due(&self, now: Timestamp) -> Vec<(String, String)> {
        let blocked: std::collections::BTreeSet<&str> = self
            .pending
            .iter()
            .filter(|p| p.in_flight || p.next_at > now)
            .map(|p| p.route.as_str())
            .collect();
        self.pending
            .iter()
            .filter(|p| !blocked.contains(p.route.as_str()))
            .map(|p| (p.route.clone(), p.event.id.clone()))
            .collect()
    }

    /// Marks a delivery as started; `None` when the entry is gone.
    pub fn start(&mut self, route: &str, id: &str) -> Option<Pending> {
        let p = self.find(route, id)?;
        p.in_flight = true;
        Some(p.clone())
    }

    /// A delivery succeeded: the event is done for good.
    pub fn delivered(&mut self, route: &str, id: &str, now: Timestamp) {
        self.pending
            .retain(|p| !(p.route == route && p.event.id == id));
        self.mark_done(route, id, now);
    }

    /// A delivery failed: try again after the backoff, or after
    /// `retry_after` when the receiver said so (within [`MAX_BACKOFF`]).
    pub fn failed(
        &mut self,
        route: &str,
        id: &str,
        error: &str,
        retry_after: Option<SignedDuration>,
        now: Timestamp,
    ) {
        let Some(p) = self.find(route, id) else {
            return;
        };
        p.in_flight = false;
        p.attempts = p.attempts.saturating_add(1);
        p.failing_since.get_or_insert(now);
        p.last_error = Some(error.to_owned());
        let wait = retry_after
            .unwrap_or_else(|| backoff(p.attempts))
            .min(MAX_BACKOFF);
        p.next_at = now.checked_add(wait).unwrap_or(now);
    }

    /// The time of the next due entry, if any is waiting.
    ///
    /// A route is due once none of its events waits for a backoff (see
    /// [`Outbox::due`]); a route with a delivery under way is not counted:
    /// its end wakes the deliveries anyway.
    pub fn next_due(&self) -> Option<Timestamp> {
        let mut per_route: BTreeMap<&str, Option<Timestamp>> = BTreeMap::new();
        for p in &self.pending {
            let at = per_route.entry(p.route.as_str()).or_insert(Some(p.next_at));
            *at = if p.in_flight {
                None
            } else {
                at.map(|t| t.max(p.next_at))
            };
        }
        per_route.into_values().flatten().min()
    }

    /// Drops the events of routes that are no longer configured.
    pub fn forget_routes(&mut self, routes: &[NotifyRoute]) -> Vec<Dropped> {
        let (keep, gone): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| routes.iter().any(|r| r.name == p.route));
        self.pending = keep;
        gone.into_iter().map(Dropped::NoRoute).collect()
    }

    /// Per route, since when its oldest undelivered event has been failing.
    pub fn failing_routes(&self) -> BTreeMap<String, (Timestamp, String)> {
        let mut out: BTreeMap<String, (Timestamp, String)> = BTreeMap::new();
        for p in &self.pending {
            if let Some(since) = p.failing_since {
                let error = p.last_error.clone().unwrap_or_default();
                match out.get(&p.route) {
                    Some((t, _)) if *t <= since => {}
                    _ => {
                        out.insert(p.route.clone(), (since, error));
                    }
                }
            }
        }
        out
    }
}

/// The wait after `attempts` failed attempts: 1 s, 2 s, 4 s, ... up to
/// [`MAX_BACKOFF`].
pub fn backoff(attempts: u32) -> SignedDuration {
    let factor = 1_i32 << attempts.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .checked_mul(factor)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// The clusters of `event` that `route` tells about, or `None` when the
/// route takes nothing of it (another kind, event, impact or cluster, or
/// only clusters seen for the first time, without `announce_existing`).
pub fn route_clusters(route: &NotifyRoute, event: &Event) -> Option<Vec<String>> {
    if !route.kinds.contains(&event.item.kind) || !route.on.contains(&event.kind) {
        return None;
    }
    let impact = Impact::of(&event.item.impact);
    let passes = match (event.item.kind, impact) {
        // A maintenance's impact is usually `maintenance`, not a level:
        // it is told unless it names a level below the route's.
        (ItemKind::Maintenance, None) => true,
        (_, impact) => impact.unwrap_or(Impact::None) >= route.min_impact,
    };
    if !passes {
        return None;
    }
    let clusters: Vec<String> = event
        .clusters
        .iter()
        .filter(|c| route.covers(c))
        .filter(|c| route.announce_existing || !event.first_seen.contains(c))
        .cloned()
        .collect();
    (!clusters.is_empty()).then_some(clusters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EventKind, Receiver, Secret};
    use crate::notify::events::ItemInfo;

    fn route(name: &str, clusters: &[&str], to: Receiver) -> NotifyRoute {
        NotifyRoute {
            name: name.into(),
            clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
            kinds: vec![ItemKind::Incident, ItemKind::Maintenance],
            on: EventKind::ALL.to_vec(),
            min_impact: Impact::None,
            to,
            template: None,
            announce_existing: false,
        }
    }

    fn slack() -> Receiver {
        Receiver::Slack {
            url: Secret::Env("X".into()),
        }
    }

    fn matrix() -> Receiver {
        Receiver::Matrix {
            homeserver: "https://m".into(),
            room: "!r:m".into(),
            token: Secret::Env("T".into()),
        }
    }

    fn event(
        id: &str,
        kind: EventKind,
        impact: &str,
        clusters: &[&str],
        first_seen: &[&str],
    ) -> Event {
        Event {
            id: id.into(),
            kind,
            item: ItemInfo::of(&crate::view::Item {
                impact: impact.into(),
                ..incident_item()
            }),
            clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
            first_seen: first_seen.iter().map(|c| (*c).to_owned()).collect(),
            at: "2025-06-01T10:00:00Z".parse().unwrap(),
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn routes_filter_by_cluster_kind_event_impact_and_first_sight() {
        let mut r = route("a", &["archer2"], slack());
        let e = event("e", EventKind::Opened, "minor", &["archer2", "cirrus"], &[]);
        assert_eq!(route_clusters(&r, &e), Some(vec!["archer2".to_owned()]));
        assert_eq!(
            route_clusters(&route("all", &[], slack()), &e)
                .unwrap()
                .len(),
            2
        );
        r.min_impact = Impact::Major;
        assert_eq!(route_clusters(&r, &e), None);
        r.min_impact = Impact::Minor;
        r.on = vec![EventKind::Resolved];
        assert_eq!(route_clusters(&r, &e), None);
        r.on = EventKind::ALL.to_vec();
        r.kinds = vec![ItemKind::Maintenance];
        assert_eq!(route_clusters(&r, &e), None);
        r.kinds = vec![ItemKind::Incident];
        let existing = event("e", EventKind::Opened, "minor", &["archer2"], &["archer2"]);
        assert_eq!(route_clusters(&r, &existing), None);
        r.announce_existing = true;
        assert!(route_clusters(&r, &existing).is_some());
        let cirrus_only = event("e", EventKind::Opened, "critical", &["cirrus"], &[]);
        assert_eq!(route_clusters(&r, &cirrus_only), None);
    }

    #[test]
    fn a_delivered_event_is_never_queued_again_and_a_failed_one_backs_off() {
        let mut o = Outbox::new();
        let now = t("2025-06-01T10:00:00Z");
        let e = event("e1", EventKind::Opened, "minor", &["archer2"], &[]);
        o.pending.push(Pending {
            route: "a".into(),
            event: e.clone(),
            queued_at: now,
            attempts: 0,
            next_at: now,
            in_flight: false,
            failing_since: None,
            last_error: None,
        });
        assert_eq!(o.due(now).len(), 1);
        o.start("a", "e1").unwrap();
        assert!(o.due(now).is_empty(), "under way");
        o.failed("a", "e1", "connection refused", None, now);
        assert!(o.due(now).is_empty());
        assert_eq!(o.due(now + SignedDuration::from_secs(1)).len(), 1);
        assert_eq!(o.failing_routes()["a"].0, now);
        o.start("a", "e1").unwrap();
        o.failed("a", "e1", "429", Some(SignedDuration::from_secs(30)), now);
        assert!(o.due(now + SignedDuration::from_secs(29)).is_empty());
        o.start("a", "e1").unwrap();
        o.delivered("a", "e1", now);
        assert!(o.pending.is_empty());
        assert!(o.failing_routes().is_empty());
    }

    #[test]
    fn an_event_found_again_after_delivery_is_not_queued_again() {
        let routes = [route("a", &[], slack())];
        let now = t("2025-06-01T10:00:00Z");
        let mut o = Outbox::new();
        let quiet = sample_view(vec![]);
        let open = sample_view(vec![incident_item()]);
        assert_eq!(
            o.enqueue(&routes, &[&quiet], now),
            0,
            "first sight: nothing"
        );
        assert_eq!(o.enqueue(&routes, &[&open], now), 1);
        let id = o.pending[0].event.id.clone();
        o.start("a", &id).unwrap();
        o.delivered("a", &id, now);
        // Say the views were lost: the same opening is found again.
        o.seen.insert("archer2".into(), BTreeMap::new());
        assert_eq!(o.enqueue(&routes, &[&open], now), 0);
        assert!(o.pending.is_empty());
    }

    fn incident_item() -> crate::view::Item {
        crate::view::Item {
            jobs_must_end_by: None,
            source: "hpc".into(),
            source_title: "HPC".into(),
            id: "i1".into(),
            kind: ItemKind::Incident,
            name: "Slow logins".into(),
            status: "investigating".into(),
            impact: "minor".into(),
            created_at: None,
            updated_at: None,
            started_at: None,
            scheduled_for: None,
            scheduled_until: None,
            resolved_at: None,
            shortlink: None,
            components: vec![],
            latest: None,
            updates: vec![],
            file: String::new(),
            last_change: None,
        }
    }

    fn sample_view(incidents: Vec<crate::view::Item>) -> ClusterView {
        ClusterView {
            cluster: "archer2".into(),
            now: t("2025-06-01T10:00:00Z"),
            generated_at: t("2025-06-01T10:00:00Z"),
            timezone: "UTC".into(),
            status: crate::model::ComponentStatus::Operational,
            status_label: "",
            incidents,
            maintenance: crate::view::Maintenance::default(),
            resolved: vec![],
            components: vec![],
            unknown: vec![],
            stale: false,
            data_age: String::new(),
            data_age_seconds: 0,
            sources: vec![],
        }
    }

    #[test]
    fn a_route_is_next_due_when_its_backoff_ends() {
        let now = t("2025-06-01T10:00:00Z");
        let mut o = Outbox::new();
        for id in ["e1", "e2"] {
            o.pending.push(Pending {
                route: "a".into(),
                event: event(id, EventKind::Opened, "minor", &["archer2"], &[]),
                queued_at: now,
                attempts: 0,
                next_at: now,
                in_flight: false,
                failing_since: None,
                last_error: None,
            });
        }
        assert_eq!(o.next_due(), Some(now));
        o.start("a", "e1").unwrap();
        assert_eq!(o.next_due(), None, "under way: its end wakes");
        o.failed("a", "e1", "refused", None, now);
        // The second waits behind the first: not due before the backoff.
        assert_eq!(o.next_due(), Some(now + SignedDuration::from_secs(1)));
        assert!(o.due(now).is_empty());
        let gone = o.forget_routes(&[route("b", &[], slack())]);
        assert_eq!(gone.len(), 2);
        assert!(o.pending.is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), SignedDuration::from_secs(1));
        assert_eq!(backoff(2), SignedDuration::from_secs(2));
        assert_eq!(backoff(4), SignedDuration::from_secs(8));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn a_crash_mid_delivery_repeats_only_to_idempotent_receivers() {
        let routes = [route("chat", &[], slack()), route("room", &[], matrix())];
        let now = t("2025-06-01T10:00:00Z");
        let mut o = Outbox::new();
        for r in ["chat", "room", "gone"] {
            o.pending.push(Pending {
                route: r.into(),
                event: event("e1", EventKind::Opened, "minor", &["archer2"], &[]),
                queued_at: now,
                attempts: 0,
                next_at: now,
                in_flight: true,
                failing_since: None,
                last_error: None,
            });
        }
        let dropped = o.recover(&routes, now);
        assert!(matches!(&dropped[0], Dropped::Abandoned(p) if p.route == "chat"));
        assert!(matches!(&dropped[1], Dropped::NoRoute(p) if p.route == "gone"));
        assert_eq!(o.due(now), vec![("room".to_owned(), "e1".to_owned())]);
        assert!(o.done["chat"].contains_key("e1"), "never sent again");
    }

    #[test]
    fn events_undeliverable_for_a_day_are_dropped_for_good() {
        let now = t("2025-06-02T10:00:01Z");
        let mut o = Outbox::new();
        for (id, queued) in [
            ("old", "2025-06-01T10:00:00Z"),
            ("new", "2025-06-02T09:00:00Z"),
        ] {
            o.pending.push(Pending {
                route: "a".into(),
                event: event(id, EventKind::Opened, "minor", &["archer2"], &[]),
                queued_at: t(queued),
                attempts: 7,
                next_at: now,
                in_flight: false,
                failing_since: Some(t(queued)),
                last_error: Some("refused".into()),
            });
        }
        let dropped = o.expire(now);
        assert_eq!(dropped.len(), 1);
        assert!(matches!(&dropped[0], Dropped::Expired(p) if p.event.id == "old"));
        assert_eq!(o.pending.len(), 1);
        assert!(o.done["a"].contains_key("old"));
        let later = now + DONE_KEPT + SignedDuration::from_hours(1);
        o.pending.clear();
        o.expire(later);
        assert!(o.done.is_empty(), "old ids are forgotten");
    }

    #[test]
    fn the_outbox_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Outbox::load(dir.path()).unwrap(), None);
        let mut o = Outbox::new();
        o.pending.push(Pending {
            route: "a".into(),
            event: event("e1", EventKind::Opened, "minor", &["archer2"], &[]),
            queued_at: t("2025-06-01T10:00:00Z"),
            attempts: 1,
            next_at: t("2025-06-01T10:00:01Z"),
            in_flight: true,
            failing_since: None,
            last_error: None,
        });
        o.save(dir.path()).unwrap();
        assert_eq!(Outbox::load(dir.path()).unwrap(), Some(o));
    }
}
