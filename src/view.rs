//! The per-cluster view: what concerns one cluster at a given `now`.
//!
//! A pure function of (snapshot, the cluster's component ids, options, now).
//! Its output is exactly what templates get, so its field names are part of
//! the contract in `DESIGN.md` ("The view a template gets").

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::model::{
    items_concerning_scan, Component, ComponentStatus, Incident, ItemKind, Snapshot, SnapshotIndex,
};

/// The windows and switches that shape a view; taken from `[settings]` and the
/// cluster's own table.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// Show maintenance that starts within this window.
    pub upcoming: SignedDuration,
    /// Show incidents resolved (and maintenance completed) within this window.
    pub recent_resolved: SignedDuration,
    /// Data older than this is marked stale.
    pub stale_after: SignedDuration,
    /// Also show incidents that name no component.
    pub page_wide: bool,
    /// IANA name used by the time filters.
    pub timezone: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    pub cluster: String,
    pub now: Timestamp,
    /// When the data was fetched from upstream.
    pub generated_at: Timestamp,
    pub timezone: String,
    pub status: ComponentStatus,
    /// `status` in words, for people.
    pub status_label: &'static str,
    pub incidents: Vec<Item>,
    pub maintenance: Maintenance,
    pub resolved: Vec<Item>,
    /// The cluster's components that are not operational.
    pub components: Vec<ComponentView>,
    /// The cluster's components whose state the source's last look could
    /// not tell (a probe's UNKNOWN): their status is the last one known,
    /// `unknown` says why.
    pub unknown: Vec<ComponentView>,
    pub stale: bool,
    /// Age of the data, like `"12m"` or `"3h"`.
    pub data_age: String,
    pub data_age_seconds: i64,
    pub sources: Vec<SourceView>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Maintenance {
    /// In progress or verifying.
    pub active: Vec<Item>,
    /// Scheduled, starting within the `upcoming` window.
    pub upcoming: Vec<Item>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    pub name: String,
    /// The page's name, or the source's name when the page has none: what
    /// a template shows for items of this source.
    pub title: String,
    pub page: String,
    pub url: Option<String>,
    pub fetched_at: Timestamp,
    /// Age of this source's data, like `"12m"` or `"3h"`.
    pub data_age: String,
    pub stale: bool,
    /// Why the latest fetch failed, in a few fixed words ("the status page
    /// did not answer in time"), when this is the last good data instead.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentView {
    /// The name of the source the component is from.
    pub source: String,
    /// The title of that source (see [`SourceView::title`]).
    pub source_title: String,
    pub id: String,
    pub name: String,
    pub group: Option<String>,
    pub status: ComponentStatus,
    pub status_label: &'static str,
    pub updated_at: Option<Timestamp>,
    /// Why the last look could not tell this component's state, if it could
    /// not.
    pub unknown: Option<String>,
}

/// An incident or maintenance as a template sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// The name of the source the item is from.
    pub source: String,
    /// The title of that source (see [`SourceView::title`]).
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
    /// Names of the affected components within this cluster.
    pub components: Vec<String>,
    pub latest: Option<UpdateView>,
    /// Newest first.
    pub updates: Vec<UpdateView>,
    /// Path of the item's snippet, relative to the cluster directory.
    pub file: String,
    /// Maintenance of a batch scheduler (Slurm) only: its start, by which a
    /// job must end to run before it. Jobs whose time limit runs past it
    /// wait until the maintenance ends. Absent for every other item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_must_end_by: Option<Timestamp>,
    /// Newest `updated_at` of the item or its updates: what the mtime rule
    /// uses.
    #[serde(skip)]
    pub last_change: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateView {
    pub status: String,
    pub body: String,
    pub display_at: Option<Timestamp>,
}

impl ClusterView {
    /// Every item the view shows, in the order the default template shows
    /// them.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.incidents
            .iter()
            .chain(&self.maintenance.active)
            .chain(&self.maintenance.upcoming)
            .chain(&self.resolved)
    }

    /// Whether anything concerns the cluster at all.
    pub fn is_empty(&self) -> bool {
        self.items().next().is_none() && self.components.is_empty() && self.unknown.is_empty()
    }

    /// The newest upstream change among everything shown: the time the mtime
    /// rule gives the MOTD.
    pub fn newest_change(&self) -> Option<Timestamp> {
        self.items()
            .filter_map(|i| i.last_change)
            .chain(self.components.iter().filter_map(|c| c.updated_at))
            .max()
    }
}

/// What may hold back a deploy to a cluster (`gate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocker {
    /// An unresolved incident affects the cluster.
    Incident,
    /// Maintenance is in progress on the cluster.
    Maintenance,
    /// A component of the cluster is not operational.
    Degraded,
}

impl ClusterView {
    /// Why a deploy to the cluster should wait, one line per item; empty
    /// when nothing in `on` applies.
    pub fn blocked_by(&self, on: &[Blocker]) -> Vec<String> {
        let link = |l: &Option<String>| l.as_deref().map(|l| format!(" {l}")).unwrap_or_default();
        let item = |what: &str, i: &Item| {
            format!("{what} `{}` ({}){}", i.name, i.status, link(&i.shortlink))
        };
        let mut reasons = Vec::new();
        if on.contains(&Blocker::Incident) {
            reasons.extend(self.incidents.iter().map(|i| item("incident", i)));
        }
        if on.contains(&Blocker::Maintenance) {
            reasons.extend(
                self.maintenance
                    .active
                    .iter()
                    .map(|i| item("maintenance", i)),
            );
        }
        if on.contains(&Blocker::Degraded) {
            reasons.extend(
                self.components
                    .iter()
                    .map(|c| format!("component `{}` is {}", c.name, c.status.as_str())),
            );
        }
        reasons
    }
}

/// `s` with every character that is unsafe in a file name replaced, cut
/// to 64 characters.
fn file_safe(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Item {
    /// The snippet's file name: `<kind>-<id>.txt`, with any character of the
    /// upstream id that is unsafe in a file name replaced.
    pub fn file_name(kind: ItemKind, id: &str) -> String {
        format!("{}-{}.txt", kind.as_str(), file_safe(id))
    }

    /// The snippet's file name for an item of a cluster's further (`also`)
    /// source: `<kind>-<source>-<id>.txt`, so that two pages' ids never
    /// meet in one name.
    pub fn file_name_of(kind: ItemKind, source: &str, id: &str) -> String {
        format!(
            "{}-{}-{}.txt",
            kind.as_str(),
            file_safe(source),
            file_safe(id)
        )
    }

    /// The file name of this item's snippet in `items/`.
    pub fn snippet_name(&self) -> &str {
        self.file.strip_prefix("items/").unwrap_or(&self.file)
    }

    /// Says, for maintenance of a source that schedules jobs (Slurm), by
    /// when a job must end: the maintenance's start.
    pub fn hold_jobs(&mut self) {
        if self.kind == ItemKind::Maintenance {
            self.jobs_must_end_by = self.scheduled_for;
        }
    }

    /// Names the item's snippet as an item of a further source.
    pub fn mark_further_source(&mut self) {
        self.file = format!(
            "items/{}",
            Item::file_name_of(self.kind, &self.source, &self.id)
        );
    }
}

/// The title of a source: its page's name, or its own name when the page
/// has none (the manage API's snapshots carry the page id as the name).
pub fn source_title(source: &str, snap: &Snapshot) -> String {
    if snap.page.name.trim().is_empty() || snap.page.name == snap.page.id {
        source.to_owned()
    } else {
        snap.page.name.clone()
    }
}

impl ClusterView {
    /// Merges the views of one cluster over each of its sources, the
    /// primary first, into one: items by the same rules and order, the
    /// worst status, stale when any source is, the data age of the oldest
    /// data. `None` for no view at all.
    pub fn merge(views: Vec<ClusterView>) -> Option<ClusterView> {
        let mut views = views.into_iter();
        let mut merged = views.next()?;
        let mut more = false;
        for v in views {
            more = true;
            merged.incidents.extend(v.incidents);
            merged.maintenance.active.extend(v.maintenance.active);
            merged.maintenance.upcoming.extend(v.maintenance.upcoming);
            merged.resolved.extend(v.resolved);
            merged.components.extend(v.components);
            merged.unknown.extend(v.unknown);
            merged.sources.extend(v.sources);
            merged.stale |= v.stale;
            merged.status = merged.status.max(v.status);
            if v.generated_at < merged.generated_at {
                merged.generated_at = v.generated_at;
                merged.data_age = v.data_age;
                merged.data_age_seconds = v.data_age_seconds;
            }
        }
        if more {
            // Stable sorts: on a tie the primary source's item comes first.
            merged
                .incidents
                .sort_by_key(|i| std::cmp::Reverse(i.created_at));
            merged.maintenance.active.sort_by_key(|i| i.scheduled_for);
            merged.maintenance.upcoming.sort_by_key(|i| i.scheduled_for);
            merged
                .resolved
                .sort_by_key(|i| std::cmp::Reverse(i.resolved_at));
            merged.status_label = merged.status.label();
        }
        Some(merged)
    }
}

/// What a cluster selects in one snapshot: component ids, groups expanded.
pub type Selection = BTreeSet<String>;

/// Builds the view of one cluster.
pub fn build(
    cluster: &str,
    source: &str,
    snap: &Snapshot,
    selection: &Selection,
    opts: &ViewOptions,
    now: Timestamp,
) -> ClusterView {
    build_indexed(
        cluster,
        source,
        snap,
        &SnapshotIndex::new(snap),
        selection,
        opts,
        now,
    )
}

/// The moments at which `item` enters or leaves a view by the clock alone,
/// with the windows [`build_indexed`] applies: a closed item leaves
/// `resolved` after `closed_at + recent_resolved`; a scheduled maintenance
/// enters `upcoming` at `scheduled_for - upcoming` and leaves it after
/// `scheduled_until`. Open incidents and active maintenance have none.
/// Used by `serve` (when to render again without a new snapshot) and by
/// the one-shot stamp (until when an unchanged page renders the same).
pub fn boundaries(
    item: &Incident,
    upcoming: SignedDuration,
    recent_resolved: SignedDuration,
) -> Vec<Timestamp> {
    if item.is_closed() {
        return item
            .closed_at()
            .and_then(|t| t.checked_add(recent_resolved).ok())
            .into_iter()
            .collect();
    }
    if item.kind == ItemKind::Maintenance
        && !matches!(item.status.as_str(), "in_progress" | "verifying")
    {
        let enters = item
            .scheduled_for
            .and_then(|t| t.checked_sub(upcoming).ok());
        return enters.into_iter().chain(item.scheduled_until).collect();
    }
    Vec::new()
}

/// The moment data fetched at `fetched_at` turns stale.
pub fn turns_stale(fetched_at: Timestamp, stale_after: SignedDuration) -> Option<Timestamp> {
    fetched_at.checked_add(stale_after).ok()
}

/// [`build`] with the snapshot's index at hand, for callers that view many
/// clusters of one snapshot: the work is then the cluster's components and
/// the page's items, not the page's components again for every cluster.
pub fn build_indexed(
    cluster: &str,
    source: &str,
    snap: &Snapshot,
    index: &SnapshotIndex<'_>,
    selection: &Selection,
    opts: &ViewOptions,
    now: Timestamp,
) -> ClusterView {
    let title = source_title(source, snap);
    let item = |i: &Incident| make_item(i, selection, index, source, &title);

    let mut incidents = Vec::new();
    let mut active = Vec::new();
    let mut upcoming = Vec::new();
    let mut resolved = Vec::new();
    let upcoming_end = now.checked_add(opts.upcoming).unwrap_or(Timestamp::MAX);
    let resolved_start = now
        .checked_sub(opts.recent_resolved)
        .unwrap_or(Timestamp::MIN);

    // The items that name a selected component (or none, when page-wide
    // ones count), in upstream order: from the index when it is the
    // snapshot's, so that a cluster costs its own items, not the page's.
    let concerning = if std::ptr::eq(index.snapshot(), snap) {
        index.items_concerning(selection, opts.page_wide)
    } else {
        items_concerning_scan(snap, selection, opts.page_wide)
    };
    for i in concerning {
        if i.is_closed() {
            if i.closed_at().is_some_and(|t| t >= resolved_start) {
                resolved.push(item(i));
            }
            continue;
        }
        match (i.kind, i.status.as_str()) {
            (ItemKind::Incident, _) => incidents.push(item(i)),
            (ItemKind::Maintenance, "in_progress" | "verifying") => active.push(item(i)),
            (ItemKind::Maintenance, _) => {
                // Scheduled: shown when it starts within the window, or is late
                // to start but not yet over.
                let starts_soon = i.scheduled_for.is_none_or(|t| t <= upcoming_end);
                let not_over = i.scheduled_until.is_none_or(|t| t >= now);
                if starts_soon && not_over {
                    upcoming.push(item(i));
                }
            }
        }
    }
    incidents.sort_by_key(|i| std::cmp::Reverse(i.created_at));
    active.sort_by_key(|i| i.scheduled_for);
    upcoming.sort_by_key(|i| i.scheduled_for);
    resolved.sort_by_key(|i| std::cmp::Reverse(i.resolved_at));

    // In upstream order, as the page lists them.
    let mut degraded: Vec<(usize, &Component)> = selection
        .iter()
        .filter_map(|id| index.component_at(id))
        .filter(|(_, c)| c.status != ComponentStatus::Operational)
        .collect();
    degraded.sort_by_key(|(at, _)| *at);
    let components: Vec<ComponentView> = degraded
        .into_iter()
        .map(|(_, c)| component_view(c, index, source, &title))
        .collect();
    let mut unknown: Vec<(usize, &Component)> = selection
        .iter()
        .filter_map(|id| index.component_at(id))
        .filter(|(_, c)| c.unknown.is_some())
        .collect();
    unknown.sort_by_key(|(at, _)| *at);
    let unknown = unknown
        .into_iter()
        .map(|(_, c)| component_view(c, index, source, &title))
        .collect();

    let status = worst_status(&components, &incidents, &active);
    let age = now.duration_since(snap.fetched_at);
    let stale = age > opts.stale_after;
    ClusterView {
        cluster: cluster.to_owned(),
        now,
        generated_at: snap.fetched_at,
        timezone: opts.timezone.clone(),
        status,
        status_label: status.label(),
        incidents,
        maintenance: Maintenance { active, upcoming },
        resolved,
        components,
        unknown,
        stale,
        data_age: rough_duration(age),
        data_age_seconds: age.as_secs().max(0),
        sources: vec![SourceView {
            name: source.to_owned(),
            title: title.clone(),
            data_age: rough_duration(age),
            page: snap.page.name.clone(),
            url: snap.page.url.clone(),
            fetched_at: snap.fetched_at,
            stale,
            error: None,
        }],
    }
}

fn make_item(
    i: &Incident,
    selection: &Selection,
    index: &SnapshotIndex<'_>,
    source: &str,
    title: &str,
) -> Item {
    let updates: Vec<UpdateView> = i
        .updates
        .iter()
        .map(|u| UpdateView {
            status: u.status.clone(),
            body: u.body.clone(),
            display_at: u.display_at.or(u.created_at),
        })
        .collect();
    Item {
        source: source.to_owned(),
        source_title: title.to_owned(),
        id: i.id.clone(),
        kind: i.kind,
        name: i.name.clone(),
        status: i.status.clone(),
        impact: i.impact.clone(),
        created_at: i.created_at,
        updated_at: i.updated_at,
        started_at: i.started_at,
        scheduled_for: i.scheduled_for,
        scheduled_until: i.scheduled_until,
        resolved_at: i.resolved_at,
        shortlink: i.shortlink.clone(),
        components: i
            .components
            .iter()
            .filter(|id| selection.contains(*id))
            .filter_map(|id| index.component(id).map(|c| c.name.clone()))
            .collect(),
        latest: updates.first().cloned(),
        updates,
        file: format!("items/{}", Item::file_name(i.kind, &i.id)),
        jobs_must_end_by: None,
        last_change: i.last_change(),
    }
}

fn component_view(
    c: &Component,
    index: &SnapshotIndex<'_>,
    source: &str,
    title: &str,
) -> ComponentView {
    ComponentView {
        source: source.to_owned(),
        source_title: title.to_owned(),
        id: c.id.clone(),
        name: c.name.clone(),
        group: c
            .group_id
            .as_deref()
            .and_then(|g| index.group(g))
            .map(|g| g.name.clone()),
        status: c.status,
        status_label: c.status.label(),
        updated_at: c.updated_at,
        unknown: c.unknown.clone(),
    }
}

/// The worst status of the cluster: its components' statuses, raised by what
/// its open incidents and active maintenance say, since an incident is often
/// opened before anyone changes a component.
fn worst_status(
    components: &[ComponentView],
    incidents: &[Item],
    active: &[Item],
) -> ComponentStatus {
    let from_incidents = incidents.iter().map(|i| match i.impact.as_str() {
        "critical" => ComponentStatus::MajorOutage,
        "major" => ComponentStatus::PartialOutage,
        "minor" => ComponentStatus::DegradedPerformance,
        _ => ComponentStatus::Operational,
    });
    let from_maintenance = active.iter().map(|_| ComponentStatus::UnderMaintenance);
    components
        .iter()
        .map(|c| c.status)
        .chain(from_incidents)
        .chain(from_maintenance)
        .max()
        .unwrap_or_default()
}

/// `"45s"`, `"12m"`, `"1h59m"`, `"2d3h"`: the largest whole unit, and the
/// next one down when it is not zero. One unit alone would say `1h` for
/// 1h59m, half the real age, in a stale note or a gate's refusal. The rest
/// is cut, not rounded, so an age never reads older than it is, and a given
/// age always prints the same.
pub fn short_duration(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    let (big, big_unit, small, small_unit) = match s {
        0..60 => return format!("{s}s"),
        60..3600 => (s / 60, 'm', s % 60, 's'),
        3600..86_400 => (s / 3600, 'h', s % 3600 / 60, 'm'),
        _ => (s / 86_400, 'd', s % 86_400 / 3600, 'h'),
    };
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small}{small_unit}")
    }
}

/// A duration in its largest unit, rounded to the nearest: `1h59m` is `2h`.
/// The MOTD's stale note uses it, so that a stale file changes at most once
/// an hour after the first hour (and once a day after the first day) rather
/// than at every render, while never being off by more than half a unit.
pub fn rough_duration(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    let round = |unit: i64| (s + unit / 2) / unit;
    match s {
        0..60 => format!("{s}s"),
        60..3570 => format!("{}m", round(60)),
        3570..84_600 => format!("{}h", round(3600)),
        _ => format!("{}d", round(86_400)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Page, Update};

    #[test]
    fn short_duration_keeps_two_units() {
        #[rustfmt::skip]
        let cases = [
            (-5, "0s"), (0, "0s"), (45, "45s"), (60, "1m"), (90, "1m30s"),
            (600, "10m"), (3599, "59m59s"), (3600, "1h"), (3600 + 59, "1h"),
            (7140, "1h59m"), (7199, "1h59m"), (86_399, "23h59m"), (86_400, "1d"),
            (86_400 + 3 * 3600 + 59 * 60, "1d3h"), (2 * 86_400 + 3600, "2d1h"),
            (30 * 86_400, "30d"),
        ];
        for (secs, expected) in cases {
            assert_eq!(
                short_duration(SignedDuration::from_secs(secs)),
                expected,
                "{secs}s"
            );
        }
    }

    #[test]
    fn rough_duration_rounds_to_the_nearest_unit() {
        #[rustfmt::skip]
        let cases = [
            (-5, "0s"), (45, "45s"), (89, "1m"), (90, "2m"), (3569, "59m"),
            (3570, "1h"), (5399, "1h"), (5400, "2h"), (7170, "2h"),
            (84_599, "23h"), (84_600, "1d"), (129_599, "1d"), (129_600, "2d"),
        ];
        for (secs, expected) in cases {
            assert_eq!(
                rough_duration(SignedDuration::from_secs(secs)),
                expected,
                "{secs}s"
            );
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn opts() -> ViewOptions {
        ViewOptions {
            upcoming: SignedDuration::from_hours(24 * 7),
            recent_resolved: SignedDuration::from_hours(24),
            stale_after: SignedDuration::from_mins(30),
            page_wide: true,
            timezone: "UTC".into(),
        }
    }

    fn component(id: &str, status: ComponentStatus) -> Component {
        Component {
            id: id.into(),
            name: format!("name-{id}"),
            status,
            group_id: None,
            description: None,
            updated_at: Some(ts("2024-01-01T00:00:00Z")),
            unknown: None,
        }
    }

    fn incident(id: &str, kind: ItemKind, status: &str, components: &[&str]) -> Incident {
        Incident {
            id: id.into(),
            kind,
            name: format!("incident {id}"),
            status: status.into(),
            impact: "minor".into(),
            created_at: Some(ts("2024-01-01T10:00:00Z")),
            updated_at: Some(ts("2024-01-01T11:00:00Z")),
            started_at: None,
            monitoring_at: None,
            resolved_at: None,
            scheduled_for: None,
            scheduled_until: None,
            shortlink: None,
            components: components.iter().map(|s| (*s).to_owned()).collect(),
            updates: vec![Update {
                id: "u1".into(),
                status: status.into(),
                body: "body".into(),
                created_at: Some(ts("2024-01-01T11:00:00Z")),
                display_at: Some(ts("2024-01-01T11:00:00Z")),
                updated_at: Some(ts("2024-01-01T11:30:00Z")),
            }],
        }
    }

    fn snap(incidents: Vec<Incident>) -> Snapshot {
        Snapshot {
            page: Page::default(),
            fetched_at: ts("2024-01-01T12:00:00Z"),
            components: vec![
                component("a", ComponentStatus::PartialOutage),
                component("b", ComponentStatus::Operational),
            ],
            groups: vec![],
            incidents,
        }
    }

    /// The view of cluster `c` of source `s` at `now`.
    fn view_at(s: &Snapshot, sel: &Selection, opts: &ViewOptions, now: &str) -> ClusterView {
        build("c", "s", s, sel, opts, ts(now))
    }

    fn sel(ids: &[&str]) -> Selection {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn incidents_of_other_clusters_are_not_shown() {
        let s = snap(vec![incident(
            "i1",
            ItemKind::Incident,
            "investigating",
            &["b"],
        )]);
        let v = view_at(&s, &sel(&["a"]), &opts(), "2024-01-01T12:00:00Z");
        assert!(v.incidents.is_empty());
        let v = view_at(&s, &sel(&["b"]), &opts(), "2024-01-01T12:00:00Z");
        assert_eq!(v.incidents.len(), 1);
        assert_eq!(v.incidents[0].components, vec!["name-b"]);
    }

    #[test]
    fn the_item_index_visits_what_a_scan_would_in_the_same_order() {
        // Shared components, an item naming one twice, page-wide items
        // between the others, items of no selected component.
        let s = snap(vec![
            incident("i0", ItemKind::Incident, "identified", &["a", "b"]),
            incident("i1", ItemKind::Incident, "identified", &[]),
            incident("i2", ItemKind::Maintenance, "in_progress", &["b", "b"]),
            incident("i3", ItemKind::Incident, "monitoring", &["c"]),
            incident("i4", ItemKind::Incident, "investigating", &["b", "a", "c"]),
            incident("i5", ItemKind::Maintenance, "scheduled", &[]),
            incident("i6", ItemKind::Incident, "identified", &["a", "a", "z"]),
        ]);
        let index = SnapshotIndex::new(&s);
        let ids = |items: Vec<&Incident>| -> Vec<String> {
            items.into_iter().map(|i| i.id.clone()).collect()
        };
        assert_eq!(
            ids(index.items_concerning(&sel(&["a"]), true)),
            ["i0", "i1", "i4", "i5", "i6"]
        );
        assert_eq!(
            ids(index.items_concerning(&sel(&["b", "c"]), false)),
            ["i0", "i2", "i3", "i4"]
        );
        let selections = [
            sel(&[]),
            sel(&["a"]),
            sel(&["b"]),
            sel(&["a", "b"]),
            sel(&["c", "z"]),
            sel(&["a", "b", "c", "z", "nowhere"]),
            // More ids than the items name: the index scans instead.
            (0..20)
                .map(|n| format!("x{n}"))
                .chain(["b".into()])
                .collect(),
        ];
        // A copy is not the indexed snapshot: its views scan.
        let copy = s.clone();
        for selection in &selections {
            for page_wide in [false, true] {
                assert_eq!(
                    ids(index.items_concerning(selection, page_wide)),
                    ids(crate::model::items_concerning_scan(
                        &s, selection, page_wide
                    )),
                    "{selection:?}, page_wide={page_wide}"
                );
                let o = ViewOptions {
                    page_wide,
                    ..opts()
                };
                let now = ts("2024-01-01T12:00:00Z");
                let indexed = build_indexed("c", "s", &s, &index, selection, &o, now);
                let scanned = build_indexed("c", "s", &copy, &index, selection, &o, now);
                assert_eq!(
                    serde_json::to_value(&indexed).unwrap(),
                    serde_json::to_value(&scanned).unwrap(),
                    "{selection:?}, page_wide={page_wide}"
                );
            }
        }
    }

    #[test]
    fn page_wide_incidents_follow_the_switch() {
        let s = snap(vec![incident("i1", ItemKind::Incident, "identified", &[])]);
        let now = ts("2024-01-01T12:00:00Z");
        assert_eq!(
            build("c", "s", &s, &sel(&["b"]), &opts(), now)
                .incidents
                .len(),
            1
        );
        let o = ViewOptions {
            page_wide: false,
            ..opts()
        };
        assert!(build("c", "s", &s, &sel(&["b"]), &o, now)
            .incidents
            .is_empty());
    }

    #[test]
    fn maintenance_is_sorted_into_active_and_upcoming_by_window() {
        let mut soon = incident("m1", ItemKind::Maintenance, "scheduled", &["a"]);
        soon.scheduled_for = Some(ts("2024-01-03T00:00:00Z"));
        soon.scheduled_until = Some(ts("2024-01-03T02:00:00Z"));
        let mut far = incident("m2", ItemKind::Maintenance, "scheduled", &["a"]);
        far.scheduled_for = Some(ts("2024-02-01T00:00:00Z"));
        let running = incident("m3", ItemKind::Maintenance, "in_progress", &["a"]);
        let s = snap(vec![soon, far, running]);
        let v = view_at(&s, &sel(&["a"]), &opts(), "2024-01-01T12:00:00Z");
        let ids = |items: &[Item]| items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&v.maintenance.upcoming), vec!["m1"]);
        assert_eq!(ids(&v.maintenance.active), vec!["m3"]);
        assert_eq!(v.status, ComponentStatus::PartialOutage);
    }

    #[test]
    fn boundaries_are_where_the_view_changes_and_nowhere_else() {
        let mut maint = incident("m", ItemKind::Maintenance, "scheduled", &["a"]);
        maint.scheduled_for = Some(ts("2024-01-10T00:00:00Z"));
        maint.scheduled_until = Some(ts("2024-01-10T02:00:00Z"));
        let mut resolved = incident("r", ItemKind::Incident, "resolved", &["a"]);
        resolved.resolved_at = Some(ts("2024-01-01T06:00:00Z"));
        let open = incident("i", ItemKind::Incident, "investigating", &["a"]);
        let options = opts();
        for item in [maint, resolved, open] {
            let found = boundaries(&item, options.upcoming, options.recent_resolved);
            let s = snap(vec![item.clone()]);
            let shown = |at: Timestamp| {
                let v = build("c", "s", &s, &sel(&["a"]), &options, at);
                v.items().count()
            };
            let second = SignedDuration::from_secs(1);
            for t in &found {
                let before = shown(t.checked_sub(second).unwrap());
                let after = shown(t.checked_add(second).unwrap());
                assert_ne!(before, after, "{} at {t}", item.id);
            }
            // Between and around the boundaries, the clock changes nothing.
            let mut edges = found.clone();
            edges.insert(0, ts("2023-12-01T00:00:00Z"));
            edges.push(ts("2024-03-01T00:00:00Z"));
            for w in edges.windows(2) {
                let (lo, hi) = (w[0] + second, w[1] - second);
                assert_eq!(shown(lo), shown(hi), "{} from {lo} to {hi}", item.id);
            }
        }
    }

    #[test]
    fn resolved_items_show_only_within_the_window() {
        let mut recent = incident("r1", ItemKind::Incident, "resolved", &["a"]);
        recent.resolved_at = Some(ts("2024-01-01T06:00:00Z"));
        let mut old = incident("r2", ItemKind::Incident, "resolved", &["a"]);
        old.resolved_at = Some(ts("2023-12-01T06:00:00Z"));
        let s = snap(vec![recent, old]);
        let v = view_at(&s, &sel(&["a"]), &opts(), "2024-01-01T12:00:00Z");
        assert_eq!(v.resolved.len(), 1);
        assert_eq!(v.resolved[0].id, "r1");
        assert!(v.incidents.is_empty());
    }

    #[test]
    fn staleness_and_newest_change() {
        let s = snap(vec![incident(
            "i1",
            ItemKind::Incident,
            "investigating",
            &["a"],
        )]);
        let v = view_at(&s, &sel(&["a"]), &opts(), "2024-01-01T12:10:00Z");
        assert!(!v.stale);
        assert_eq!(v.data_age, "10m");
        assert_eq!(v.newest_change(), Some(ts("2024-01-01T11:30:00Z")));
        let v = view_at(&s, &sel(&["a"]), &opts(), "2024-01-01T13:00:00Z");
        assert!(v.stale);
    }

    #[test]
    fn blockers_name_what_holds_a_deploy_back() {
        let mut running = incident("m1", ItemKind::Maintenance, "in_progress", &["a"]);
        running.shortlink = Some("https://stspg.io/m1".into());
        let s = snap(vec![
            incident("i1", ItemKind::Incident, "identified", &["a"]),
            running,
        ]);
        let v = view_at(&s, &sel(&["a"]), &opts(), "2024-01-01T12:00:00Z");
        assert_eq!(
            v.blocked_by(&[Blocker::Incident]),
            ["incident `incident i1` (identified)"]
        );
        assert_eq!(
            v.blocked_by(&[Blocker::Maintenance]),
            ["maintenance `incident m1` (in_progress) https://stspg.io/m1"]
        );
        assert_eq!(
            v.blocked_by(&[Blocker::Degraded]),
            ["component `name-a` is partial_outage"]
        );
        let clear = view_at(
            &s,
            &sel(&["b"]),
            &ViewOptions {
                page_wide: false,
                ..opts()
            },
            "2024-01-01T12:00:00Z",
        );
        assert!(clear
            .blocked_by(&[Blocker::Incident, Blocker::Maintenance, Blocker::Degraded])
            .is_empty());
    }

    #[test]
    fn unsafe_ids_do_not_escape_the_items_directory() {
        assert_eq!(
            Item::file_name(ItemKind::Incident, "../../etc/passwd"),
            "incident-______etc_passwd.txt"
        );
    }
}
