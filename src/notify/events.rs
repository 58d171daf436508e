//! Events: what changed between a cluster's previous view and its new one.
//!
//! A pure function of (what was seen, the new views): [`diff`]. What was
//! seen is kept as [`Seen`], a small summary of each cluster's items (where
//! the item stood and how many updates it had), not the whole view: that is
//! all a difference needs, and it is what `state_dir` keeps between runs.
//!
//! An item that concerns several clusters gives one event naming them all;
//! routing then narrows the names to the route's clusters.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::EventKind;
use crate::model::ItemKind;
use crate::sanitize::{sanitize, sanitize_line, sanitize_url};
use crate::view::{ClusterView, Item};

/// Where an item stood in a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// An unresolved incident.
    Open,
    /// Maintenance within the `upcoming` window.
    Upcoming,
    /// Maintenance in progress or verifying.
    Active,
    /// Resolved, completed or cancelled within `recent_resolved`.
    Resolved,
}

/// One item as last seen in a cluster's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenItem {
    pub phase: Phase,
    /// How many updates it had.
    pub updates: usize,
    /// When its newest update was shown.
    pub latest_at: Option<Timestamp>,
}

/// Per cluster, its items by [`item_key`].
pub type Seen = BTreeMap<String, BTreeMap<String, SeenItem>>;

/// `source/kind/id`: an item's identity across renders.
pub fn item_key(item: &Item) -> String {
    format!("{}/{}/{}", item.source, item.kind.as_str(), item.id)
}

/// What a message says about an item: the view's item without its
/// per-cluster parts (file names), components merged over the clusters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemInfo {
    pub source: String,
    pub source_title: String,
    pub id: String,
    pub kind: ItemKind,
    pub name: String,
    pub status: String,
    pub impact: String,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub scheduled_for: Option<Timestamp>,
    pub scheduled_until: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub shortlink: Option<String>,
    pub components: Vec<String>,
    pub latest: Option<Update>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub status: String,
    pub body: String,
    pub display_at: Option<Timestamp>,
}

impl ItemInfo {
    /// What `item` says, its per-cluster parts left out.
    pub(super) fn of(item: &Item) -> ItemInfo {
        ItemInfo {
            source: item.source.clone(),
            source_title: item.source_title.clone(),
            id: item.id.clone(),
            kind: item.kind,
            name: item.name.clone(),
            status: item.status.clone(),
            impact: item.impact.clone(),
            created_at: item.created_at,
            updated_at: item.updated_at,
            started_at: item.started_at,
            scheduled_for: item.scheduled_for,
            scheduled_until: item.scheduled_until,
            resolved_at: item.resolved_at,
            shortlink: item.shortlink.clone(),
            components: item.components.clone(),
            latest: item.latest.as_ref().map(|u| Update {
                status: u.status.clone(),
                body: u.body.clone(),
                display_at: u.display_at,
            }),
        }
    }

    /// The same, every string made safe again: for an item read back from
    /// `state_dir`, which a person may have edited.
    #[must_use]
    pub fn sanitized(mut self) -> ItemInfo {
        for s in [
            &mut self.source,
            &mut self.source_title,
            &mut self.id,
            &mut self.name,
            &mut self.status,
            &mut self.impact,
        ] {
            *s = sanitize_line(s);
        }
        self.components
            .iter_mut()
            .for_each(|c| *c = sanitize_line(c));
        self.shortlink = self.shortlink.as_deref().and_then(sanitize_url);
        if let Some(u) = &mut self.latest {
            u.status = sanitize_line(&u.status);
            u.body = sanitize(&u.body);
        }
        self
    }
}

/// A change of one item, in the clusters it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Stable: the same change of the same item always has the same id, in
    /// whichever run and cluster it is found. Idempotency keys derive from
    /// it.
    pub id: String,
    pub kind: EventKind,
    pub item: ItemInfo,
    /// Every cluster whose view shows the change, sorted.
    pub clusters: Vec<String>,
    /// Clusters (among `clusters`) seen for the first time: for them the
    /// item already existed, which only `announce_existing` announces.
    pub first_seen: Vec<String>,
    /// The view's `now` when the change was found.
    pub at: Timestamp,
}

fn phase_items(view: &ClusterView) -> impl Iterator<Item = (Phase, &Item)> {
    view.incidents
        .iter()
        .map(|i| (Phase::Open, i))
        .chain(
            view.maintenance
                .upcoming
                .iter()
                .map(|i| (Phase::Upcoming, i)),
        )
        .chain(view.maintenance.active.iter().map(|i| (Phase::Active, i)))
        .chain(view.resolved.iter().map(|i| (Phase::Resolved, i)))
}

/// What is kept of a cluster's view for the next [`diff`].
pub fn summarize(view: &ClusterView) -> BTreeMap<String, SeenItem> {
    phase_items(view)
        .map(|(phase, i)| {
            (
                item_key(i),
                SeenItem {
                    phase,
                    updates: i.updates.len(),
                    latest_at: i.latest.as_ref().and_then(|u| u.display_at),
                },
            )
        })
        .collect()
}

/// The event, if any, of an item that is now in `phase` and was `old`.
/// `known` says whether the cluster was seen before: if not, only what is
/// open, upcoming or under way is an event (an existing item); history is
/// not.
fn change(old: Option<&SeenItem>, now: &SeenItem, known: bool) -> Option<(EventKind, String)> {
    let new_update =
        |o: &SeenItem| now.updates > o.updates || (now.updates > 0 && now.latest_at > o.latest_at);
    let update_mark = || {
        format!(
            "{}@{}",
            now.updates,
            now.latest_at.map(|t| t.to_string()).unwrap_or_default()
        )
    };
    match (now.phase, old.map(|o| (o.phase, o))) {
        (Phase::Open, None) => Some((EventKind::Opened, String::new())),
        (Phase::Open, Some((Phase::Resolved, _))) => {
            // Reopened: a new opening, told apart by its updates.
            Some((EventKind::Opened, update_mark()))
        }
        (Phase::Open | Phase::Upcoming | Phase::Active, Some((p, o))) if p == now.phase => {
            new_update(o).then(|| (EventKind::Updated, update_mark()))
        }
        (Phase::Upcoming, None | Some((Phase::Open | Phase::Resolved, _))) => {
            Some((EventKind::Upcoming, String::new()))
        }
        (Phase::Active, _) => Some((EventKind::Started, String::new())),
        // Back from under way to scheduled, or an incident that turned into
        // maintenance: nothing people need to hear. Resolved history of a
        // cluster seen for the first time is not news either.
        (Phase::Upcoming | Phase::Open, Some(_))
        | (Phase::Resolved, Some((Phase::Resolved, _))) => None,
        (Phase::Resolved, None) if !known => None,
        (Phase::Resolved, _) => Some((EventKind::Resolved, String::new())),
    }
}

/// A stable id for `kind` of the item `key`; `mark` tells apart events of
/// one kind that may happen more than once (each new update, a reopening).
fn event_id(key: &str, kind: EventKind, mark: &str) -> String {
    let mut h = Sha256::new();
    for part in [key, kind.as_str(), mark] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The events between `old` and `new`, one per (item, change), naming every
/// cluster that shows it; in the order the views list the items, the
/// clusters' order first. A cluster missing from `new` (not rendered this
/// time) gives none; one missing from `old` is seen for the first time.
pub fn diff(old: &Seen, new: &[&ClusterView]) -> Vec<Event> {
    let empty = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut by_id: BTreeMap<String, Event> = BTreeMap::new();
    for view in new {
        let known = old.contains_key(&view.cluster);
        let before = old.get(&view.cluster).unwrap_or(&empty);
        let mut done = BTreeSet::new();
        for (phase, item) in phase_items(view) {
            let key = item_key(item);
            // An item listed twice in one view counts once.
            if !done.insert(key.clone()) {
                continue;
            }
            let now = SeenItem {
                phase,
                updates: item.updates.len(),
                latest_at: item.latest.as_ref().and_then(|u| u.display_at),
            };
            let Some((kind, mark)) = change(before.get(&key), &now, known) else {
                continue;
            };
            let id = event_id(&key, kind, &mark);
            let event = by_id.entry(id.clone()).or_insert_with(|| {
                order.push(id.clone());
                Event {
                    id,
                    kind,
                    item: ItemInfo::of(item),
                    clusters: Vec::new(),
                    first_seen: Vec::new(),
                    at: view.now,
                }
            });
            event.clusters.push(view.cluster.clone());
            if !known {
                event.first_seen.push(view.cluster.clone());
            }
            for c in &item.components {
                if !event.item.components.contains(c) {
                    event.item.components.push(c.clone());
                }
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .map(|mut e| {
            e.clusters.sort();
            e.first_seen.sort();
            e
        })
        .collect()
}

/// `seen` with the clusters of `new` replaced by what they show now.
pub fn remember(seen: &mut Seen, new: &[&ClusterView]) {
    for view in new {
        seen.insert(view.cluster.clone(), summarize(view));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ComponentStatus;
    use crate::view::{Maintenance, UpdateView};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn item(id: &str, kind: ItemKind, status: &str, updates: usize) -> Item {
        let updates: Vec<UpdateView> = (0..updates)
            .rev()
            .map(|n| UpdateView {
                status: status.into(),
                body: format!("update {n}"),
                display_at: Some(
                    at("2025-06-01T09:00:00Z")
                        + jiff::SignedDuration::from_mins(i64::try_from(n).unwrap()),
                ),
            })
            .collect();
        Item {
            jobs_must_end_by: None,
            source: "hpc".into(),
            source_title: "HPC".into(),
            id: id.into(),
            kind,
            name: format!("item {id}"),
            status: status.into(),
            impact: "minor".into(),
            created_at: Some(at("2025-06-01T09:00:00Z")),
            updated_at: None,
            started_at: None,
            scheduled_for: None,
            scheduled_until: None,
            resolved_at: None,
            shortlink: Some(format!("https://stspg.io/{id}")),
            components: vec![format!("Login {id}")],
            latest: updates.first().cloned(),
            updates,
            file: String::new(),
            last_change: None,
        }
    }

    fn incident(id: &str, updates: usize) -> Item {
        item(id, ItemKind::Incident, "investigating", updates)
    }

    fn view(
        cluster: &str,
        open: Vec<Item>,
        upcoming: Vec<Item>,
        active: Vec<Item>,
        resolved: Vec<Item>,
    ) -> ClusterView {
        ClusterView {
            cluster: cluster.into(),
            now: at("2025-06-01T10:00:00Z"),
            generated_at: at("2025-06-01T10:00:00Z"),
            timezone: "UTC".into(),
            status: ComponentStatus::Operational,
            status_label: "",
            incidents: open,
            maintenance: Maintenance { active, upcoming },
            resolved,
            components: Vec::new(),
            unknown: Vec::new(),
            stale: false,
            data_age: String::new(),
            data_age_seconds: 0,
            sources: Vec::new(),
        }
    }

    fn quiet(cluster: &str) -> ClusterView {
        view(cluster, vec![], vec![], vec![], vec![])
    }

    fn kinds(events: &[Event]) -> Vec<(EventKind, String, Vec<String>)> {
        events
            .iter()
            .map(|e| (e.kind, e.item.id.clone(), e.clusters.clone()))
            .collect()
    }

    /// Runs the views in turn, as renders would, and gives each step's
    /// events.
    fn steps(views: &[Vec<ClusterView>]) -> Vec<Vec<Event>> {
        let mut seen = Seen::new();
        views
            .iter()
            .map(|step| {
                let refs: Vec<&ClusterView> = step.iter().collect();
                let events = diff(&seen, &refs);
                remember(&mut seen, &refs);
                events
            })
            .collect()
    }

    #[test]
    fn an_incident_opened_updated_and_resolved_gives_three_events() {
        let mut resolved = item("i1", ItemKind::Incident, "resolved", 3);
        resolved.resolved_at = Some(at("2025-06-01T09:30:00Z"));
        let out = steps(&[
            vec![quiet("archer2")],
            vec![view(
                "archer2",
                vec![incident("i1", 1)],
                vec![],
                vec![],
                vec![],
            )],
            vec![view(
                "archer2",
                vec![incident("i1", 1)],
                vec![],
                vec![],
                vec![],
            )],
            vec![view(
                "archer2",
                vec![incident("i1", 2)],
                vec![],
                vec![],
                vec![],
            )],
            vec![view(
                "archer2",
                vec![],
                vec![],
                vec![],
                vec![resolved.clone()],
            )],
            vec![view("archer2", vec![], vec![], vec![], vec![resolved])],
            vec![quiet("archer2")],
        ]);
        let a = || vec!["archer2".to_owned()];
        assert_eq!(
            out.iter().map(|e| kinds(e)).collect::<Vec<_>>(),
            vec![
                vec![],
                vec![(EventKind::Opened, "i1".into(), a())],
                vec![],
                vec![(EventKind::Updated, "i1".into(), a())],
                vec![(EventKind::Resolved, "i1".into(), a())],
                vec![],
                vec![],
            ]
        );
        assert_eq!(out[3][0].item.latest.as_ref().unwrap().body, "update 1");
    }

    #[test]
    fn maintenance_is_upcoming_then_started_then_resolved() {
        let m = |status: &str, n| item("m1", ItemKind::Maintenance, status, n);
        let out = steps(&[
            vec![quiet("archer2")],
            vec![view(
                "archer2",
                vec![],
                vec![m("scheduled", 1)],
                vec![],
                vec![],
            )],
            vec![view(
                "archer2",
                vec![],
                vec![m("scheduled", 2)],
                vec![],
                vec![],
            )],
            vec![view(
                "archer2",
                vec![],
                vec![],
                vec![m("in_progress", 3)],
                vec![],
            )],
            vec![view(
                "archer2",
                vec![],
                vec![],
                vec![m("verifying", 4)],
                vec![],
            )],
            vec![view(
                "archer2",
                vec![],
                vec![],
                vec![],
                vec![m("completed", 5)],
            )],
        ]);
        let got: Vec<Vec<EventKind>> = out
            .iter()
            .map(|e| e.iter().map(|e| e.kind).collect())
            .collect();
        assert_eq!(
            got,
            vec![
                vec![],
                vec![EventKind::Upcoming],
                vec![EventKind::Updated],
                vec![EventKind::Started],
                vec![EventKind::Updated],
                vec![EventKind::Resolved],
            ]
        );
    }

    #[test]
    fn maintenance_that_starts_unannounced_is_started() {
        let m = item("m2", ItemKind::Maintenance, "in_progress", 1);
        let out = steps(&[
            vec![quiet("a")],
            vec![view("a", vec![], vec![], vec![m], vec![])],
        ]);
        assert_eq!(out[1].len(), 1);
        assert_eq!(out[1][0].kind, EventKind::Started);
    }

    #[test]
    fn an_item_in_two_clusters_is_one_event_naming_both() {
        let mut a = incident("i1", 1);
        a.components = vec!["Login".into()];
        let mut b = incident("i1", 1);
        b.components = vec!["Compute".into()];
        let out = steps(&[
            vec![quiet("archer2"), quiet("cirrus"), quiet("other")],
            vec![
                view("archer2", vec![a], vec![], vec![], vec![]),
                view("cirrus", vec![b], vec![], vec![], vec![]),
                quiet("other"),
            ],
        ]);
        assert_eq!(out[1].len(), 1);
        assert_eq!(out[1][0].clusters, ["archer2", "cirrus"]);
        assert_eq!(out[1][0].item.components, ["Login", "Compute"]);
        assert!(out[1][0].first_seen.is_empty());
    }

    #[test]
    fn a_cluster_seen_for_the_first_time_marks_what_exists_and_not_history() {
        let mut done = item("old", ItemKind::Incident, "resolved", 1);
        done.resolved_at = Some(at("2025-06-01T08:00:00Z"));
        let out = steps(&[vec![view(
            "archer2",
            vec![incident("i1", 1)],
            vec![item("m1", ItemKind::Maintenance, "scheduled", 0)],
            vec![],
            vec![done],
        )]]);
        assert_eq!(
            out[0]
                .iter()
                .map(|e| (e.kind, e.first_seen.clone()))
                .collect::<Vec<_>>(),
            vec![
                (EventKind::Opened, vec!["archer2".to_owned()]),
                (EventKind::Upcoming, vec!["archer2".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_cluster_not_rendered_keeps_what_was_seen() {
        let mut seen = Seen::new();
        let first = view("archer2", vec![incident("i1", 1)], vec![], vec![], vec![]);
        remember(&mut seen, &[&first]);
        let other = quiet("cirrus");
        assert!(diff(&seen, &[&other])
            .iter()
            .all(|e| e.clusters == ["cirrus"]));
        remember(&mut seen, &[&other]);
        assert!(diff(&seen, &[&first]).is_empty(), "archer2 was kept");
    }

    #[test]
    fn event_ids_are_stable_and_tell_changes_apart() {
        let steps_once = || {
            steps(&[
                vec![quiet("a")],
                vec![view("a", vec![incident("i1", 1)], vec![], vec![], vec![])],
                vec![view("a", vec![incident("i1", 2)], vec![], vec![], vec![])],
                vec![view("a", vec![incident("i1", 3)], vec![], vec![], vec![])],
            ])
        };
        let (x, y) = (steps_once(), steps_once());
        let ids: Vec<&str> = x.iter().flatten().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            y.iter()
                .flatten()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>()
        );
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), 3, "{ids:?}");
    }

    #[test]
    fn a_reopened_incident_is_opened_again_with_a_new_id() {
        let mut r = item("i1", ItemKind::Incident, "resolved", 2);
        r.resolved_at = Some(at("2025-06-01T09:30:00Z"));
        let out = steps(&[
            vec![quiet("a")],
            vec![view("a", vec![incident("i1", 1)], vec![], vec![], vec![])],
            vec![view("a", vec![], vec![], vec![], vec![r])],
            vec![view("a", vec![incident("i1", 3)], vec![], vec![], vec![])],
        ]);
        assert_eq!(out[3][0].kind, EventKind::Opened);
        assert_ne!(out[3][0].id, out[1][0].id);
    }

    #[test]
    fn read_back_items_are_sanitized() {
        let mut info = ItemInfo::of(&incident("i1", 1));
        info.name = "evil\u{1b}[31m name".into();
        info.shortlink = Some("javascript:alert(1)".into());
        let clean = info.sanitized();
        assert!(!clean.name.contains('\u{1b}'), "{:?}", clean.name);
        assert_eq!(clean.shortlink, None);
    }
}
