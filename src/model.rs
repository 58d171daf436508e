//! The normalized model of one Statuspage page, the same whichever API it came
//! from: components, groups with their children, incidents and maintenances.
//!
//! A [`Snapshot`] is what a source produces, what `fetch --save` writes, what
//! `state_dir` keeps as the last good data, and what the mapping and the view
//! read. Every string in it has passed [`crate::sanitize`], both when a source
//! builds it and when a snapshot file is loaded, so nothing downstream has to
//! wonder whether upstream text is safe, or whether a name can break a line.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::sanitize::{sanitize_in_place, sanitize_line_in_place, sanitize_url};

/// Version of the snapshot file format; bumped when a change would make an old
/// reader misread a new file.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The normalized data of one page at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub page: Page,
    /// When the fetch that produced this snapshot finished.
    pub fetched_at: Timestamp,
    /// Components that are not groups, in upstream order.
    pub components: Vec<Component>,
    pub groups: Vec<Group>,
    /// Incidents and scheduled maintenances, newest first.
    pub incidents: Vec<Incident>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub id: String,
    pub name: String,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub id: String,
    pub name: String,
    pub status: ComponentStatus,
    pub group_id: Option<String>,
    pub description: Option<String>,
    pub updated_at: Option<Timestamp>,
    /// Why the source's last look could not tell the component's state
    /// (a probe's UNKNOWN); the status is then the last one known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    /// Ids of the member components.
    pub components: Vec<String>,
}

/// A component's status, ordered from best to worst so that `max` is the worst.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    #[default]
    Operational,
    UnderMaintenance,
    DegradedPerformance,
    PartialOutage,
    MajorOutage,
}

impl ComponentStatus {
    /// Reads an upstream status string. Statuspage documents exactly these
    /// five; anything else is treated as degraded rather than hidden.
    pub fn from_upstream(s: Option<&str>) -> Self {
        match s.map(str::trim) {
            None | Some("" | "operational") => Self::Operational,
            Some("under_maintenance") => Self::UnderMaintenance,
            Some("partial_outage") => Self::PartialOutage,
            Some("major_outage") => Self::MajorOutage,
            Some(_) => Self::DegradedPerformance,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operational => "operational",
            Self::UnderMaintenance => "under_maintenance",
            Self::DegradedPerformance => "degraded_performance",
            Self::PartialOutage => "partial_outage",
            Self::MajorOutage => "major_outage",
        }
    }

    /// Words for people, as Statuspage shows them.
    pub fn label(self) -> &'static str {
        match self {
            Self::Operational => "Operational",
            Self::UnderMaintenance => "Under maintenance",
            Self::DegradedPerformance => "Degraded performance",
            Self::PartialOutage => "Partial outage",
            Self::MajorOutage => "Major outage",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Incident,
    Maintenance,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incident => "incident",
            Self::Maintenance => "maintenance",
        }
    }
}

/// An incident or a scheduled maintenance: Statuspage models both alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub kind: ItemKind,
    pub name: String,
    /// `investigating`, `identified`, `monitoring`, `resolved`, `postmortem`
    /// for incidents; `scheduled`, `in_progress`, `verifying`, `completed` for
    /// maintenances. Kept as upstream wrote it.
    pub status: String,
    /// `none`, `minor`, `major`, `critical` or `maintenance`.
    pub impact: String,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub monitoring_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub scheduled_for: Option<Timestamp>,
    pub scheduled_until: Option<Timestamp>,
    pub shortlink: Option<String>,
    /// Ids of affected components: those the incident lists and those its
    /// updates name. Empty means the incident names no component
    /// (page-wide).
    pub components: Vec<String>,
    /// Newest first.
    pub updates: Vec<Update>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub id: String,
    pub status: String,
    pub body: String,
    pub created_at: Option<Timestamp>,
    pub display_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

impl Incident {
    /// Whether the item is over: resolved incidents and completed maintenance.
    pub fn is_closed(&self) -> bool {
        matches!(
            self.status.as_str(),
            "resolved" | "postmortem" | "completed"
        )
    }

    /// When the item ended, for "recently resolved": `resolved_at`, else the
    /// time of the last update.
    pub fn closed_at(&self) -> Option<Timestamp> {
        self.resolved_at.or(self.updated_at).or_else(|| {
            self.updates
                .first()
                .and_then(|u| u.display_at.or(u.created_at))
        })
    }

    /// The newest change to this item upstream: the later of its own
    /// `updated_at` and that of its updates.
    pub fn last_change(&self) -> Option<Timestamp> {
        self.updates
            .iter()
            .filter_map(|u| u.updated_at.or(u.display_at).or(u.created_at))
            .chain(self.updated_at)
            .max()
    }
}

impl Snapshot {
    /// Runs every string through the sanitizer. Sources call this on what they
    /// build, and the snapshot reader on what it loads.
    ///
    /// Only update bodies and component descriptions may keep line breaks:
    /// every other field is printed inside a line, so it is made one line
    /// ([`crate::sanitize::sanitize_line`]), and links must be `http(s)` URLs or are dropped
    /// ([`sanitize_url`]).
    ///
    /// A large snapshot's components and incidents are sanitized on two
    /// threads: a `render` waits for this before it can plan anything.
    #[must_use]
    pub fn sanitized(mut self) -> Self {
        sanitize_line_in_place(&mut self.page.id);
        sanitize_line_in_place(&mut self.page.name);
        url_in_place(&mut self.page.url);
        let (components, groups, incidents) =
            (&mut self.components, &mut self.groups, &mut self.incidents);
        let on_two = components.len() + incidents.len() >= SANITIZE_APART_FROM
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        // The incidents here; the components on a second thread if one
        // starts, else here too.
        let components_left = if on_two {
            std::thread::scope(|scope| {
                let other = std::thread::Builder::new()
                    .spawn_scoped(scope, || sanitize_components(components, groups));
                sanitize_incidents(incidents);
                other.is_err()
            })
        } else {
            sanitize_incidents(incidents);
            true
        };
        if components_left {
            sanitize_components(&mut self.components, &mut self.groups);
        }
        self
    }

    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.id == id)
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// Component id -> component, for lookups in loops.
    pub fn component_index(&self) -> BTreeMap<&str, &Component> {
        self.components.iter().map(|c| (c.id.as_str(), c)).collect()
    }
}

/// Components and incidents in a snapshot from which
/// [`Snapshot::sanitized`] uses a second thread: below it, starting the
/// thread costs more than it saves.
const SANITIZE_APART_FROM: usize = 2_000;

/// A link made safe in place, or dropped ([`sanitize_url`]).
fn url_in_place(v: &mut Option<String>) {
    *v = v.as_deref().and_then(sanitize_url);
}

// In place: a clean field, which most are, is not copied.
fn sanitize_components(components: &mut [Component], groups: &mut [Group]) {
    let line = sanitize_line_in_place;
    for c in components {
        line(&mut c.id);
        line(&mut c.name);
        c.group_id.iter_mut().for_each(line);
        c.description.iter_mut().for_each(sanitize_in_place);
        c.unknown.iter_mut().for_each(line);
    }
    for g in groups {
        line(&mut g.id);
        line(&mut g.name);
        g.components.iter_mut().for_each(line);
    }
}

fn sanitize_incidents(incidents: &mut [Incident]) {
    let line = sanitize_line_in_place;
    for i in incidents {
        line(&mut i.id);
        line(&mut i.name);
        line(&mut i.status);
        line(&mut i.impact);
        url_in_place(&mut i.shortlink);
        i.components.iter_mut().for_each(line);
        for u in &mut i.updates {
            line(&mut u.id);
            line(&mut u.status);
            sanitize_in_place(&mut u.body);
        }
    }
}

/// Positions of equal keys, in upstream order: most ids and names are
/// unique, and need no allocation of their own.
#[derive(Debug, Clone)]
enum Slots {
    One(u32),
    Many(Vec<u32>),
}

impl Slots {
    fn push(&mut self, at: u32) {
        match self {
            Slots::One(first) => *self = Slots::Many(vec![*first, at]),
            Slots::Many(v) => v.push(at),
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let (one, many) = match self {
            Slots::One(at) => (Some(*at), &[][..]),
            Slots::Many(v) => (None, v.as_slice()),
        };
        one.into_iter()
            .chain(many.iter().copied())
            .map(|at| at as usize)
    }
}

/// A hasher for keys that are hashes already.
#[derive(Debug, Default, Clone, Copy)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed with it.
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ByHash = HashMap<u64, Slots, std::hash::BuildHasherDefault<Prehashed>>;

fn by_hash(capacity: usize) -> ByHash {
    ByHash::with_capacity_and_hasher(capacity, std::hash::BuildHasherDefault::default())
}

/// Where a snapshot's components and groups are, by id and by name: what a
/// [`SnapshotIndex`] looks up, held apart from the snapshot (positions and
/// hashes of keys, no reference into it), so that `serve` builds it once per
/// fetched snapshot and keeps it between renders. It stays valid for any
/// snapshot that lists the same components and groups (ids, names, groups)
/// in the same order: a status, an item or `fetched_at` may change. A hash
/// that matches a wrong key is told apart by comparing the key itself.
#[derive(Debug, Clone)]
pub struct IndexKeys {
    hasher: std::collections::hash_map::RandomState,
    components: ByHash,
    groups: ByHash,
    components_by_name: ByHash,
    groups_by_name: ByHash,
    /// Group id -> positions of the components that name it.
    children: ByHash,
    /// What it was built from, to tell a snapshot it cannot serve.
    sizes: (usize, usize),
}

impl IndexKeys {
    pub fn new(snap: &Snapshot) -> Self {
        let mut keys = IndexKeys {
            hasher: std::collections::hash_map::RandomState::new(),
            components: by_hash(snap.components.len()),
            groups: by_hash(snap.groups.len()),
            components_by_name: by_hash(snap.components.len()),
            groups_by_name: by_hash(snap.groups.len()),
            children: by_hash(snap.groups.len()),
            sizes: (snap.components.len(), snap.groups.len()),
        };
        let put = |map: &mut ByHash, h: u64, at: usize| {
            // Past 4 billion components a page is not a status page.
            let at = u32::try_from(at).unwrap_or(u32::MAX);
            map.entry(h)
                .and_modify(|s| s.push(at))
                .or_insert(Slots::One(at));
        };
        for (at, c) in snap.components.iter().enumerate() {
            let h = keys.hash(&c.id);
            put(&mut keys.components, h, at);
            let h = keys.hash(&c.name);
            put(&mut keys.components_by_name, h, at);
            if let Some(group) = &c.group_id {
                let h = keys.hash(group);
                put(&mut keys.children, h, at);
            }
        }
        for (at, g) in snap.groups.iter().enumerate() {
            let h = keys.hash(&g.id);
            put(&mut keys.groups, h, at);
            let h = keys.hash(&g.name);
            put(&mut keys.groups_by_name, h, at);
        }
        keys
    }

    fn hash(&self, key: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, key)
    }

    fn slots<'k>(&'k self, map: &'k ByHash, key: &str) -> impl Iterator<Item = usize> + 'k {
        map.get(&self.hash(key)).into_iter().flat_map(Slots::iter)
    }

    /// Whether it can index `snap`, as far as a cheap look tells.
    pub fn fits(&self, snap: &Snapshot) -> bool {
        self.sizes == (snap.components.len(), snap.groups.len())
    }
}

/// Lookups into one snapshot by id and by name, built once per snapshot, so
/// that mapping and viewing N clusters costs N times one cluster rather than
/// N times the whole page. Where ids repeat, the first wins, as in
/// [`Snapshot::component`] and [`Snapshot::group`].
#[derive(Debug)]
pub struct SnapshotIndex<'a> {
    snap: &'a Snapshot,
    keys: std::borrow::Cow<'a, IndexKeys>,
    /// Built by the first view that asks: held here rather than in the
    /// kept [`IndexKeys`], since a snapshot they still fit may list other
    /// items.
    items: std::sync::OnceLock<ItemIndex>,
}

/// Where a snapshot's items (incidents and maintenances) are, by the
/// components they name: what lets a view of one cluster visit the items
/// that concern it rather than every item of the page.
///
/// Like [`IndexKeys`], it holds positions and hashes, no reference into
/// the snapshot (which keeps [`SnapshotIndex`] covariant).
#[derive(Debug)]
struct ItemIndex {
    /// Hash of a component id -> positions in `Snapshot::incidents` of the
    /// items that name it, ascending (an item that names it twice, twice).
    by_component: ByHash,
    /// Positions of the items that name no component (page-wide).
    page_wide: Vec<u32>,
    /// How many component ids the items name in all: what a plain scan
    /// looks up.
    named: usize,
}

impl ItemIndex {
    fn new(snap: &Snapshot, keys: &IndexKeys) -> Self {
        let named = snap.incidents.iter().map(|i| i.components.len()).sum();
        let mut index = ItemIndex {
            by_component: by_hash(named),
            page_wide: Vec::new(),
            named,
        };
        for (at, item) in snap.incidents.iter().enumerate() {
            // Past 4 billion items a page is not a status page.
            let at = u32::try_from(at).unwrap_or(u32::MAX);
            if item.components.is_empty() {
                index.page_wide.push(at);
            }
            for id in &item.components {
                index
                    .by_component
                    .entry(keys.hash(id))
                    .and_modify(|s| s.push(at))
                    .or_insert(Slots::One(at));
            }
        }
        index
    }
}

impl<'a> SnapshotIndex<'a> {
    pub fn new(snap: &'a Snapshot) -> Self {
        Self {
            snap,
            keys: std::borrow::Cow::Owned(IndexKeys::new(snap)),
            items: std::sync::OnceLock::new(),
        }
    }

    /// The index of `snap` from keys built before (see [`IndexKeys`]);
    /// built anew when they do not fit it.
    pub fn with_keys(snap: &'a Snapshot, keys: &'a IndexKeys) -> Self {
        if !keys.fits(snap) {
            return Self::new(snap);
        }
        Self {
            snap,
            keys: std::borrow::Cow::Borrowed(keys),
            items: std::sync::OnceLock::new(),
        }
    }

    /// The snapshot it indexes.
    pub fn snapshot(&self) -> &'a Snapshot {
        self.snap
    }

    /// The items (incidents and maintenances) that name a component of
    /// `selection`, and when `page_wide` those that name none, in upstream
    /// order, each once: what a view of a cluster that selects `selection`
    /// looks at. The first call indexes the items by component; when the
    /// selection is larger than what the items name, a plain scan is
    /// cheaper and is what runs.
    pub fn items_concerning(
        &self,
        selection: &std::collections::BTreeSet<String>,
        page_wide: bool,
    ) -> Vec<&'a Incident> {
        let snap = self.snap;
        let index = self.items.get_or_init(|| ItemIndex::new(snap, &self.keys));
        if selection.len() > index.named {
            return items_concerning_scan(snap, selection, page_wide);
        }
        let mut named: Vec<usize> = selection
            .iter()
            .filter_map(|id| index.by_component.get(&self.keys.hash(id)))
            .flat_map(Slots::iter)
            .collect();
        named.sort_unstable();
        named.dedup();
        // A hash that matches a wrong id is told apart by the ids.
        named.retain(|&at| {
            snap.incidents
                .get(at)
                .is_some_and(|i| i.components.iter().any(|id| selection.contains(id)))
        });
        if page_wide && !index.page_wide.is_empty() {
            named.extend(index.page_wide.iter().map(|&at| at as usize));
            named.sort_unstable();
        }
        named
            .into_iter()
            .filter_map(|at| snap.incidents.get(at))
            .collect()
    }

    pub fn component(&self, id: &str) -> Option<&'a Component> {
        self.component_at(id).map(|(_, c)| c)
    }

    /// The component and its position in upstream order.
    pub fn component_at(&self, id: &str) -> Option<(usize, &'a Component)> {
        let snap = self.snap;
        self.keys
            .slots(&self.keys.components, id)
            .filter_map(|at| snap.components.get(at).map(|c| (at, c)))
            .find(|(_, c)| c.id == id)
    }

    pub fn group(&self, id: &str) -> Option<&'a Group> {
        let snap = self.snap;
        self.keys
            .slots(&self.keys.groups, id)
            .filter_map(|at| snap.groups.get(at))
            .find(|g| g.id == id)
    }

    /// Components named exactly `name`, in upstream order.
    pub fn components_named(&self, name: &str) -> Vec<&'a Component> {
        let snap = self.snap;
        self.keys
            .slots(&self.keys.components_by_name, name)
            .filter_map(|at| snap.components.get(at))
            .filter(|c| c.name == name)
            .collect()
    }

    /// Groups named exactly `name`, in upstream order.
    pub fn groups_named(&self, name: &str) -> Vec<&'a Group> {
        let snap = self.snap;
        self.keys
            .slots(&self.keys.groups_by_name, name)
            .filter_map(|at| snap.groups.get(at))
            .filter(|g| g.name == name)
            .collect()
    }

    /// Ids of the components whose `group_id` is `group`, in upstream order.
    pub fn children<'s>(&'s self, group: &'s str) -> impl Iterator<Item = &'a str> + 's {
        let snap = self.snap;
        self.keys
            .slots(&self.keys.children, group)
            .filter_map(|at| snap.components.get(at))
            .filter(move |c| c.group_id.as_deref() == Some(group))
            .map(|c| c.id.as_str())
    }
}

/// [`SnapshotIndex::items_concerning`] by looking at every item.
pub(crate) fn items_concerning_scan<'a>(
    snap: &'a Snapshot,
    selection: &std::collections::BTreeSet<String>,
    page_wide: bool,
) -> Vec<&'a Incident> {
    snap.incidents
        .iter()
        .filter(|i| {
            if i.components.is_empty() {
                page_wide
            } else {
                i.components.iter().any(|id| selection.contains(id))
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An operational component, for tests here and in `mapping`.
    pub(crate) fn component(id: &str, name: &str, group: Option<&str>) -> Component {
        Component {
            id: id.into(),
            name: name.into(),
            status: ComponentStatus::Operational,
            group_id: group.map(str::to_owned),
            description: None,
            updated_at: None,
            unknown: None,
        }
    }

    fn snap() -> Snapshot {
        Snapshot {
            page: Page::default(),
            fetched_at: Timestamp::UNIX_EPOCH,
            components: vec![
                component("a", "Login", Some("g")),
                component("b", "Storage", Some("g")),
                component("a", "Duplicate id", None),
                component("c", "Storage", None),
            ],
            groups: vec![Group {
                id: "g".into(),
                name: "Archer".into(),
                components: Vec::new(),
            }],
            incidents: Vec::new(),
        }
    }

    /// A snapshot as large as a big site's, every string hostile in its own
    /// way: sanitized on two threads, each field comes out as sanitized on
    /// its own.
    #[test]
    fn a_large_snapshot_sanitized_on_two_threads_is_sanitized_field_by_field() {
        use crate::sanitize::{sanitize, sanitize_line};
        let hostile = |n: usize| {
            [
                "  plain  ",
                "a\x1b[2Jb",
                "<b>bold</b> &amp; more",
                "two\nlines\n\n\n\nand\u{202E}rtl",
                "Fish & chips",
                "&#x1b;[31mred",
            ][n % 6]
                .to_owned()
                + &n.to_string()
        };
        let mut big = snap();
        big.components = (0..SANITIZE_APART_FROM)
            .map(|n| Component {
                description: Some(hostile(n + 1)),
                unknown: (n % 3 == 0).then(|| hostile(n + 2)),
                ..component(&hostile(n), &hostile(n + 3), Some(&hostile(n + 4)))
            })
            .collect();
        big.groups[0].components = (0..50).map(hostile).collect();
        big.incidents = (0..100)
            .map(|n| Incident {
                id: hostile(n),
                kind: ItemKind::Incident,
                name: hostile(n + 1),
                status: hostile(n + 2),
                impact: hostile(n + 3),
                created_at: None,
                updated_at: None,
                started_at: None,
                monitoring_at: None,
                resolved_at: None,
                scheduled_for: None,
                scheduled_until: None,
                shortlink: Some(format!("https://stspg.io/{}", hostile(n))),
                components: vec![hostile(n + 4)],
                updates: vec![Update {
                    id: hostile(n + 5),
                    status: hostile(n),
                    body: hostile(n + 1),
                    created_at: None,
                    display_at: None,
                    updated_at: None,
                }],
            })
            .collect();
        let clean = big.clone().sanitized();
        for (c, raw) in clean.components.iter().zip(&big.components) {
            assert_eq!(c.id, sanitize_line(&raw.id));
            assert_eq!(c.name, sanitize_line(&raw.name));
            assert_eq!(c.group_id, raw.group_id.as_deref().map(sanitize_line));
            assert_eq!(c.description, raw.description.as_deref().map(sanitize));
            assert_eq!(c.unknown, raw.unknown.as_deref().map(sanitize_line));
        }
        let members: Vec<String> = big.groups[0]
            .components
            .iter()
            .map(|m| sanitize_line(m))
            .collect();
        assert_eq!(clean.groups[0].components, members);
        for (i, raw) in clean.incidents.iter().zip(&big.incidents) {
            assert_eq!(i.name, sanitize_line(&raw.name));
            assert_eq!(i.impact, sanitize_line(&raw.impact));
            assert_eq!(i.shortlink, raw.shortlink.as_deref().and_then(sanitize_url));
            assert_eq!(i.components, [sanitize_line(&raw.components[0])]);
            assert_eq!(i.updates[0].body, sanitize(&raw.updates[0].body));
            assert_eq!(i.updates[0].id, sanitize_line(&raw.updates[0].id));
        }
        // What reached the terminal-bound fields is one clean line.
        assert!(clean
            .components
            .iter()
            .all(|c| !c.name.contains(['\n', '\x1b', '<'])));
        // The same snapshot made small enough for one thread: the same result.
        let mut small = big.clone();
        small.components.truncate(10);
        let one = small.sanitized();
        assert_eq!(one.components[..], clean.components[..10]);
        assert_eq!(one.incidents, clean.incidents);
    }

    #[test]
    fn the_index_finds_by_id_and_name_and_the_first_of_an_id_wins() {
        let s = snap();
        let index = SnapshotIndex::new(&s);
        assert_eq!(
            index.component_at("a").map(|(at, c)| (at, &*c.name)),
            Some((0, "Login"))
        );
        assert_eq!(index.component("zz"), None);
        let named: Vec<&str> = index
            .components_named("Storage")
            .iter()
            .map(|c| &*c.id)
            .collect();
        assert_eq!(named, ["b", "c"], "upstream order");
        assert!(
            index.components_named("storage").is_empty(),
            "names match exactly"
        );
        assert_eq!(index.group("g").map(|g| &*g.name), Some("Archer"));
        assert_eq!(index.groups_named("Archer").len(), 1);
        assert!(index.group("Archer").is_none(), "a name is not an id");
        assert_eq!(index.children("g").collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn kept_keys_serve_a_snapshot_whose_statuses_changed_but_not_another_list() {
        let s = snap();
        let keys = IndexKeys::new(&s);
        let mut changed = s.clone();
        changed.components[1].status = ComponentStatus::MajorOutage;
        let index = SnapshotIndex::with_keys(&changed, &keys);
        assert_eq!(
            index.component("b").map(|c| c.status),
            Some(ComponentStatus::MajorOutage),
            "read from the snapshot, not the keys"
        );
        // Another list (here one component fewer) is indexed anew.
        let mut fewer = s.clone();
        fewer.components.remove(0);
        let index = SnapshotIndex::with_keys(&fewer, &keys);
        assert_eq!(index.component_at("b").map(|(at, _)| at), Some(0));
        assert_eq!(index.component("a").map(|c| &*c.name), Some("Duplicate id"));
    }
}
