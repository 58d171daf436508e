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

use crate::sanitize::{sanitize, sanitize_line, sanitize_url};

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
    /// ([`sanitize_line`]), and links must be `http(s)` URLs or are dropped
    /// ([`sanitize_url`]).
    #[must_use]
    pub fn sanitized(mut self) -> Self {
        let line = |v: &mut String| *v = sanitize_line(v);
        let opt_line = |v: &mut Option<String>| {
            if let Some(v) = v {
                *v = sanitize_line(v);
            }
        };
        let text = |v: &mut Option<String>| {
            if let Some(v) = v {
                *v = sanitize(v);
            }
        };
        let url = |v: &mut Option<String>| *v = v.as_deref().and_then(sanitize_url);
        line(&mut self.page.id);
        line(&mut self.page.name);
        url(&mut self.page.url);
        for c in &mut self.components {
            line(&mut c.id);
            line(&mut c.name);
            opt_line(&mut c.group_id);
            text(&mut c.description);
            opt_line(&mut c.unknown);
        }
        for g in &mut self.groups {
            line(&mut g.id);
            line(&mut g.name);
            g.components.iter_mut().for_each(line);
        }
        for i in &mut self.incidents {
            line(&mut i.id);
            line(&mut i.name);
            line(&mut i.status);
            line(&mut i.impact);
            url(&mut i.shortlink);
            i.components.iter_mut().for_each(line);
            for u in &mut i.updates {
                line(&mut u.id);
                line(&mut u.status);
                u.body = sanitize(&u.body);
            }
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

/// Lookups into one snapshot by id and by name, built once per snapshot, so
/// that mapping and viewing N clusters costs N times one cluster rather than
/// N times the whole page. Where ids repeat, the first wins, as in
/// [`Snapshot::component`] and [`Snapshot::group`].
#[derive(Debug)]
pub struct SnapshotIndex<'a> {
    /// Component id -> its position in `components` and the component.
    components: HashMap<&'a str, (usize, &'a Component)>,
    groups: HashMap<&'a str, &'a Group>,
    components_by_name: HashMap<&'a str, Vec<&'a Component>>,
    groups_by_name: HashMap<&'a str, Vec<&'a Group>>,
    /// Group id -> ids of the components that name it, in upstream order.
    children: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> SnapshotIndex<'a> {
    pub fn new(snap: &'a Snapshot) -> Self {
        let mut index = Self {
            components: HashMap::with_capacity(snap.components.len()),
            groups: HashMap::with_capacity(snap.groups.len()),
            components_by_name: HashMap::with_capacity(snap.components.len()),
            groups_by_name: HashMap::with_capacity(snap.groups.len()),
            children: HashMap::with_capacity(snap.groups.len()),
        };
        for (at, c) in snap.components.iter().enumerate() {
            index.components.entry(c.id.as_str()).or_insert((at, c));
            index
                .components_by_name
                .entry(c.name.as_str())
                .or_default()
                .push(c);
            if let Some(group) = &c.group_id {
                index
                    .children
                    .entry(group.as_str())
                    .or_default()
                    .push(c.id.as_str());
            }
        }
        for g in &snap.groups {
            index.groups.entry(g.id.as_str()).or_insert(g);
            index
                .groups_by_name
                .entry(g.name.as_str())
                .or_default()
                .push(g);
        }
        index
    }

    pub fn component(&self, id: &str) -> Option<&'a Component> {
        self.components.get(id).map(|(_, c)| *c)
    }

    /// The component and its position in upstream order.
    pub fn component_at(&self, id: &str) -> Option<(usize, &'a Component)> {
        self.components.get(id).copied()
    }

    pub fn group(&self, id: &str) -> Option<&'a Group> {
        self.groups.get(id).copied()
    }

    /// Components named exactly `name`, in upstream order.
    pub fn components_named(&self, name: &str) -> &[&'a Component] {
        self.components_by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Groups named exactly `name`, in upstream order.
    pub fn groups_named(&self, name: &str) -> &[&'a Group] {
        self.groups_by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Ids of the components whose `group_id` is `group`, in upstream order.
    pub fn children(&self, group: &str) -> &[&'a str] {
        self.children.get(group).map_or(&[], Vec::as_slice)
    }
}
