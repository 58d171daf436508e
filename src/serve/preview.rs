//! `[server] webhook_preview`: a Statuspage webhook's incident or component
//! applied at once to the last good snapshot of its page, so the clusters it
//! concerns change before the fetch the webhook triggers has finished. That
//! fetch then confirms or corrects it.
//!
//! The payload is upstream text like any fetched answer: it goes through the
//! same lenient raw types (`source::raw`) and the same
//! [`Snapshot::sanitized`], so no control sequence a fetch would strip
//! reaches a file by this way. A payload applies only when its `updated_at`
//! is newer than the held item's (or component's): webhooks arrive out of
//! order, and an older one changes nothing. Webhooks are unsigned, which is
//! why this is off by default (see README, "Webhook preview").

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::{Component, Incident, Page, Snapshot};
use crate::source::raw::{RawComponent, RawIncident};

/// What a webhook says, sanitized.
#[derive(Debug, Clone, PartialEq)]
pub enum Preview {
    Incident(Box<Incident>),
    Component(Component),
}

fn field<T: DeserializeOwned>(payload: &Value, name: &str) -> Option<T> {
    payload
        .get(name)
        .filter(|v| v.is_object())
        .and_then(|v| T::deserialize(v).ok())
}

/// The incident or component `payload` carries, normalized and sanitized as
/// a fetched one would be; `None` when it carries neither (or only one
/// without an id or an `updated_at`, which cannot be ordered against what
/// is held).
pub fn parse(payload: &Value) -> Option<Preview> {
    if let Some(raw) = field::<RawIncident>(payload, "incident") {
        let incident = raw.into_incident(false)?;
        incident.updated_at?;
        let snap = Snapshot {
            incidents: vec![incident],
            ..empty()
        }
        .sanitized();
        return snap
            .incidents
            .into_iter()
            .next()
            .map(|i| Preview::Incident(Box::new(i)));
    }
    let component = field::<RawComponent>(payload, "component")?.into_component()?;
    component.updated_at?;
    let snap = Snapshot {
        components: vec![component],
        ..empty()
    }
    .sanitized();
    snap.components.into_iter().next().map(Preview::Component)
}

fn empty() -> Snapshot {
    Snapshot {
        page: Page::default(),
        fetched_at: Timestamp::UNIX_EPOCH,
        components: Vec::new(),
        groups: Vec::new(),
        incidents: Vec::new(),
    }
}

/// Whether `new` is later than `held`: an unknown time is never later.
fn newer(new: Option<Timestamp>, held: Option<Timestamp>) -> bool {
    match (new, held) {
        (Some(n), Some(h)) => n > h,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// What a preview changed in a snapshot: the components the changed item
/// names (before and after) or the changed component, and whether an item
/// that names none changed. The renderer plans the clusters that select
/// them, without comparing the whole snapshot with the one before.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Touched {
    pub components: Vec<String>,
    pub page_wide: bool,
}

impl Touched {
    fn item(&mut self, i: &Incident) {
        self.page_wide |= i.components.is_empty();
        self.components.extend(i.components.iter().cloned());
    }
}

/// Whether [`apply`] would change `snap`: checked first, so that a stale
/// payload does not copy a snapshot that renders share.
pub fn applies(snap: &Snapshot, preview: &Preview) -> bool {
    match preview {
        Preview::Incident(new) => snap
            .incidents
            .iter()
            .find(|i| i.id == new.id)
            .is_none_or(|old| newer(new.updated_at, old.updated_at)),
        Preview::Component(new) => snap
            .components
            .iter()
            .find(|c| c.id == new.id)
            .is_some_and(|old| newer(new.updated_at, old.updated_at)),
    }
}

/// Applies `preview` to `snap` when it is newer than what `snap` holds.
/// Returns what changed, `None` when nothing did. It never changes which
/// components and groups `snap` lists, their names or their order: an index
/// of them stays valid.
///
/// An incident replaces the held one of the same id (a new one is added),
/// keeping what the payload leaves out: its components (a payload without
/// them must not turn a cluster's incident page-wide), its updates, its
/// kind. A component changes only its status and `updated_at`; one the
/// snapshot does not know is left to the fetch, since it would change how
/// names resolve.
pub fn apply(snap: &mut Snapshot, preview: &Preview) -> Option<Touched> {
    let mut touched = Touched::default();
    match preview {
        Preview::Incident(new) => {
            let held = snap.incidents.iter().position(|i| i.id == new.id);
            let Some(at) = held else {
                touched.item(new);
                snap.incidents.insert(0, (**new).clone());
                return Some(touched);
            };
            let old = &snap.incidents[at];
            if !newer(new.updated_at, old.updated_at) {
                return None;
            }
            let mut merged = (**new).clone();
            merged.kind = old.kind;
            if merged.components.is_empty() {
                merged.components.clone_from(&old.components);
            }
            if merged.updates.is_empty() {
                merged.updates.clone_from(&old.updates);
            }
            let keep = |n: &mut Option<Timestamp>, o: Option<Timestamp>| {
                if n.is_none() {
                    *n = o;
                }
            };
            keep(&mut merged.created_at, old.created_at);
            keep(&mut merged.started_at, old.started_at);
            keep(&mut merged.scheduled_for, old.scheduled_for);
            keep(&mut merged.scheduled_until, old.scheduled_until);
            if merged.shortlink.is_none() {
                merged.shortlink.clone_from(&old.shortlink);
            }
            if merged.name.is_empty() {
                merged.name.clone_from(&old.name);
            }
            touched.item(old);
            touched.item(&merged);
            snap.incidents[at] = merged;
            Some(touched)
        }
        Preview::Component(new) => {
            let old = snap.components.iter_mut().find(|c| c.id == new.id)?;
            if !newer(new.updated_at, old.updated_at) {
                return None;
            }
            old.status = new.status;
            old.updated_at = new.updated_at;
            touched.components.push(old.id.clone());
            Some(touched)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ComponentStatus, ItemKind};
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn held() -> Snapshot {
        Snapshot {
            components: vec![Component {
                id: "c1".into(),
                name: "Storage".into(),
                status: ComponentStatus::Operational,
                group_id: Some("g1".into()),
                description: None,
                updated_at: Some(ts("2024-05-01T10:00:00Z")),
                unknown: None,
            }],
            incidents: vec![Incident {
                id: "i1".into(),
                kind: ItemKind::Incident,
                name: "Slow I/O".into(),
                status: "investigating".into(),
                impact: "minor".into(),
                created_at: Some(ts("2024-05-01T09:00:00Z")),
                updated_at: Some(ts("2024-05-01T10:00:00Z")),
                started_at: None,
                monitoring_at: None,
                resolved_at: None,
                scheduled_for: None,
                scheduled_until: None,
                shortlink: None,
                components: vec!["c1".into()],
                updates: Vec::new(),
            }],
            ..empty()
        }
    }

    fn incident(updated_at: &str, name: &str) -> Value {
        json!({"page": {"id": "pg"}, "incident": {
            "id": "i1", "name": name, "status": "identified", "impact": "major",
            "updated_at": updated_at,
            "incident_updates": [{"id": "u1", "status": "identified",
                "body": "Found it\u{1b}[2J<br />next", "created_at": updated_at}],
        }})
    }

    #[test]
    fn a_newer_incident_replaces_the_held_one_and_keeps_its_components() {
        let mut snap = held();
        let p = parse(&incident("2024-05-01T11:00:00Z", "Slow I/O on /work")).unwrap();
        let touched = apply(&mut snap, &p).unwrap();
        assert_eq!(touched.components, ["c1", "c1"]);
        assert!(!touched.page_wide);
        let i = &snap.incidents[0];
        assert_eq!(i.name, "Slow I/O on /work");
        assert_eq!(i.status, "identified");
        assert_eq!(i.components, ["c1"], "a payload without components");
        assert_eq!(i.created_at, Some(ts("2024-05-01T09:00:00Z")));
        assert_eq!(snap.incidents.len(), 1);
    }

    #[test]
    fn an_older_or_equal_payload_changes_nothing() {
        for at in ["2024-05-01T09:59:59Z", "2024-05-01T10:00:00Z"] {
            let mut snap = held();
            let p = parse(&incident(at, "Old news")).unwrap();
            assert_eq!(apply(&mut snap, &p), None, "{at}");
            assert_eq!(snap, held());
        }
        let mut snap = held();
        let p = parse(&json!({"component": {"id": "c1", "status": "major_outage",
            "updated_at": "2024-05-01T09:00:00Z"}}))
        .unwrap();
        assert_eq!(apply(&mut snap, &p), None);
        assert_eq!(snap, held());
    }

    #[test]
    fn preview_text_is_sanitized_like_fetched_text() {
        let p = parse(&incident(
            "2024-05-01T11:00:00Z",
            "Bad\u{1b}]0;owned\u{7}name",
        ))
        .unwrap();
        let Preview::Incident(i) = p else {
            panic!("not an incident")
        };
        assert!(!i.name.contains('\u{1b}'), "{:?}", i.name);
        assert!(
            !i.updates[0].body.contains('\u{1b}'),
            "{:?}",
            i.updates[0].body
        );
        assert!(
            !i.updates[0].body.contains("<br"),
            "{:?}",
            i.updates[0].body
        );
    }

    #[test]
    fn a_component_payload_changes_its_status_only_when_newer() {
        let mut snap = held();
        let p = parse(&json!({"component": {"id": "c1", "name": "Renamed",
            "status": "major_outage", "updated_at": "2024-05-01T12:00:00Z"}}))
        .unwrap();
        let touched = apply(&mut snap, &p).unwrap();
        assert_eq!(touched.components, ["c1"]);
        assert_eq!(snap.components[0].status, ComponentStatus::MajorOutage);
        assert_eq!(snap.components[0].name, "Storage", "names resolve clusters");
        // A component the snapshot does not know waits for the fetch.
        let p = parse(&json!({"component": {"id": "zz", "status": "major_outage",
            "updated_at": "2024-05-01T12:00:00Z"}}))
        .unwrap();
        assert_eq!(apply(&mut snap, &p), None);
    }

    #[test]
    fn payloads_without_an_item_or_a_time_preview_nothing() {
        assert_eq!(parse(&json!({"page": {"id": "pg"}})), None);
        assert_eq!(parse(&json!({"incident": {"id": "i1", "name": "x"}})), None);
        assert_eq!(parse(&json!({"incident": [1, 2]})), None);
        assert_eq!(
            parse(&json!({"component": {"id": "", "updated_at": "2024-05-01T12:00:00Z"}})),
            None
        );
    }
}
