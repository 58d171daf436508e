//! Lenient serde types for what Statuspage sends, shared by the v1 and v2
//! clients, and their conversion into the normalized [`crate::model`].
//!
//! Real payloads drift: fields go missing, turn `null`, change from a string
//! to a number, timestamps come with `Z` or `-06:00`, with or without
//! fractions, or as a plain date. Scalars here therefore never fail to parse
//! (an odd value becomes `None`); only containers of the wrong kind (an object
//! where a list belongs) are errors, since then the payload is not what this
//! tool thinks it is.

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

use crate::model::{Component, ComponentStatus, Group, Incident, ItemKind, Page, Update};

/// A string, or a number or boolean written as one; anything else is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Text(pub Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Text(match Scalar::deserialize(d)? {
            Scalar::String(s) => Some(s),
            Scalar::Number(n) => Some(n.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Other(_) => None,
        }))
    }
}

impl Text {
    fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    fn or_empty(self) -> String {
        self.0.unwrap_or_default()
    }

    /// `None` for a missing or blank value, so that `""` does not pass for an id.
    fn non_blank(self) -> Option<String> {
        self.0.filter(|s| !s.trim().is_empty())
    }
}

/// A timestamp with an offset; anything unparseable (a plain date, a number,
/// garbage) is `None` rather than an error.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Time(pub Option<Timestamp>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Time(match Scalar::deserialize(d)? {
            Scalar::String(s) => parse_time(&s),
            _ => None,
        }))
    }
}

/// Parses an RFC 3339 timestamp (`Z` or a numeric offset, fractions optional).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    s.trim().parse::<Timestamp>().ok()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
    Other(serde::de::IgnoredAny),
}

/// A boolean that tolerates `null`, `"true"` and `1`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Flag(match Scalar::deserialize(d)? {
            Scalar::Bool(b) => b,
            Scalar::String(s) => s.trim().eq_ignore_ascii_case("true"),
            Scalar::Number(n) => n.as_i64().is_some_and(|n| n != 0),
            Scalar::Other(_) => false,
        }))
    }
}

/// A list that may also be `null` or missing, with `null` items skipped.
pub(crate) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let items: Option<Vec<Option<T>>> = Option::deserialize(d)?;
    Ok(items.unwrap_or_default().into_iter().flatten().collect())
}

/// A list of items read one by one: an item of an impossible shape (an
/// incident whose `incident_updates` is a number) is left out and described
/// in `skipped`, so that it costs itself alone, not the whole page. Unlike
/// [`list`], the list itself must be there: `null` or a missing key is for
/// the caller to judge (see `Option<Items<T>>`).
#[derive(Debug)]
pub struct Items<T> {
    pub items: Vec<T>,
    /// What was skipped and why, one line each.
    pub skipped: Vec<String>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            skipped: Vec::new(),
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let values: Vec<serde_json::Value> = Vec::deserialize(d)?;
        let mut out = Items {
            items: Vec::with_capacity(values.len()),
            skipped: Vec::new(),
        };
        for (n, value) in values.into_iter().enumerate() {
            if value.is_null() {
                continue;
            }
            // The id, when it has one, says which item; upstream text, so
            // made one line, short and safe before it reaches a log.
            let id = value
                .get("id")
                .and_then(serde_json::Value::as_str)
                .map(|id| {
                    crate::sanitize::terminal_safe(id)
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(40)
                        .collect::<String>()
                });
            match serde_json::from_value::<T>(value) {
                Ok(item) => out.items.push(item),
                Err(e) => {
                    let which = match id {
                        Some(id) => format!("item `{id}`"),
                        None => format!("item {}", n + 1),
                    };
                    out.skipped.push(format!("{which}: {}", shape_error(&e)));
                }
            }
        }
        Ok(out)
    }
}

/// A serde error without any upstream text it may quote: "invalid type:
/// integer `5`, expected a sequence" stays, a quoted string does not.
fn shape_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text: String = match text.split_once(": string \"") {
        Some((head, tail)) => {
            let rest = tail.split_once("\", ").map_or("", |(_, r)| r);
            format!("{head}: a string, {rest}")
        }
        None => text,
    };
    crate::sanitize::terminal_safe(&text)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawPage {
    pub id: Text,
    pub name: Text,
    pub url: Text,
}

impl RawPage {
    pub fn into_page(self) -> Page {
        let id = self.id.or_empty();
        Page {
            name: self.name.non_blank().unwrap_or_else(|| id.clone()),
            id,
            url: self.url.non_blank(),
        }
    }
}

/// A component row; group rows (`group: true`) use the same shape and list
/// their members in `components`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawComponent {
    pub id: Text,
    pub name: Text,
    pub status: Text,
    pub group_id: Text,
    pub description: Text,
    pub updated_at: Time,
    pub group: Flag,
    #[serde(deserialize_with = "list")]
    pub components: Vec<Text>,
}

/// A v1 component group (`/component-groups`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawGroup {
    pub id: Text,
    pub name: Text,
    #[serde(deserialize_with = "list")]
    pub components: Vec<Text>,
}

impl RawComponent {
    /// Normalizes one component row; `None` when it has no id to know it
    /// by. Group membership is left as the row says it.
    pub fn into_component(self) -> Option<Component> {
        Some(Component {
            id: self.id.non_blank()?,
            name: self.name.or_empty(),
            status: ComponentStatus::from_upstream(self.status.get()),
            group_id: self.group_id.non_blank(),
            description: self.description.non_blank(),
            updated_at: self.updated_at.0,
            unknown: None,
        })
    }

    fn into_group(self) -> RawGroup {
        RawGroup {
            id: self.id,
            name: self.name,
            components: self.components,
        }
    }
}

/// An incident or maintenance, v1 and v2 alike.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawIncident {
    pub id: Text,
    pub name: Text,
    pub status: Text,
    pub impact: Text,
    pub created_at: Time,
    pub updated_at: Time,
    pub started_at: Time,
    pub monitoring_at: Time,
    pub resolved_at: Time,
    pub scheduled_for: Time,
    pub scheduled_until: Time,
    pub shortlink: Text,
    #[serde(deserialize_with = "list")]
    pub components: Vec<ComponentRef>,
    #[serde(deserialize_with = "list")]
    pub incident_updates: Vec<RawUpdate>,
}

/// An incident's component: a full component object, or just its id.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ComponentRef {
    Object {
        #[serde(default)]
        id: Text,
    },
    Id(Text),
}

impl ComponentRef {
    fn into_id(self) -> Option<String> {
        match self {
            ComponentRef::Object { id } | ComponentRef::Id(id) => id.non_blank(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawUpdate {
    pub id: Text,
    pub status: Text,
    pub body: Text,
    pub created_at: Time,
    pub display_at: Time,
    pub updated_at: Time,
    #[serde(deserialize_with = "list")]
    pub affected_components: Vec<Affected>,
}

/// An entry of `affected_components`. Only `code` (the component id) is used:
/// `name` carries a group prefix for grouped components, so it cannot be
/// matched against component names.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Affected {
    pub code: Text,
}

impl RawIncident {
    /// Normalizes one incident; `None` when it has no id to know it by.
    pub fn into_incident(self, scheduled_list: bool) -> Option<Incident> {
        let id = self.id.non_blank()?;
        let kind = if scheduled_list || self.scheduled_for.0.is_some() {
            ItemKind::Maintenance
        } else {
            ItemKind::Incident
        };
        let mut updates: Vec<Update> = Vec::with_capacity(self.incident_updates.len());
        let mut components: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut add = |id: Option<String>| {
            if let Some(id) = id {
                if seen.insert(id.clone()) {
                    components.push(id);
                }
            }
        };
        for c in self.components {
            add(c.into_id());
        }
        for u in self.incident_updates {
            for a in u.affected_components {
                add(a.code.non_blank());
            }
            updates.push(Update {
                id: u.id.or_empty(),
                status: u.status.or_empty(),
                body: u.body.or_empty(),
                created_at: u.created_at.0,
                display_at: u.display_at.0,
                updated_at: u.updated_at.0,
            });
        }
        // Newest first; a stable sort keeps upstream order among equals and
        // puts updates without any time last.
        updates.sort_by(|a, b| {
            let key = |u: &Update| u.display_at.or(u.created_at);
            key(b).cmp(&key(a))
        });
        Some(Incident {
            id,
            kind,
            name: self.name.or_empty(),
            status: self.status.or_empty(),
            impact: self.impact.non_blank().unwrap_or_else(|| "none".into()),
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
            started_at: self.started_at.0,
            monitoring_at: self.monitoring_at.0,
            resolved_at: self.resolved_at.0,
            scheduled_for: self.scheduled_for.0,
            scheduled_until: self.scheduled_until.0,
            shortlink: self.shortlink.non_blank(),
            components,
            updates,
        })
    }

    /// The newest time this incident mentions, for paging by age.
    pub fn newest_time(&self) -> Option<Timestamp> {
        [
            self.updated_at.0,
            self.resolved_at.0,
            self.created_at.0,
            self.scheduled_until.0,
        ]
        .into_iter()
        .flatten()
        .chain(
            self.incident_updates
                .iter()
                .filter_map(|u| u.updated_at.0.or(u.display_at.0).or(u.created_at.0)),
        )
        .max()
    }
}

/// Splits component rows into components and groups, merges in groups from
/// a separate list (v1 `component-groups`), and makes membership agree both
/// ways: a group lists every child that names it, and a child listed by a
/// group names that group.
/// Whether some component names a group that has no row of its own among
/// `rows`: then only `/component-groups` can tell that group's name.
pub fn missing_group_rows<'a>(rows: impl Iterator<Item = &'a RawComponent> + Clone) -> bool {
    let rows_of_groups: HashSet<&str> = rows
        .clone()
        .filter(|r| r.group.0)
        .filter_map(|r| r.id.get())
        .collect();
    rows.filter_map(|r| r.group_id.get())
        .filter(|g| !g.trim().is_empty())
        .any(|g| !rows_of_groups.contains(g))
}

pub fn components_and_groups(
    rows: Vec<RawComponent>,
    extra_groups: Vec<RawGroup>,
) -> (Vec<Component>, Vec<Group>) {
    let mut components: Vec<Component> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut group_at: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_components: HashSet<String> = HashSet::new();

    let mut add_group = |g: RawGroup, groups: &mut Vec<Group>| {
        let Some(id) = g.id.non_blank() else { return };
        let members = g.components.into_iter().filter_map(Text::non_blank);
        if let Some(&i) = group_at.get(&id) {
            let group: &mut Group = &mut groups[i];
            if group.name.is_empty() {
                group.name = g.name.or_empty();
            }
            for m in members {
                if !group.components.contains(&m) {
                    group.components.push(m);
                }
            }
        } else {
            let mut unique: Vec<String> = Vec::new();
            for m in members {
                if !unique.contains(&m) {
                    unique.push(m);
                }
            }
            group_at.insert(id.clone(), groups.len());
            groups.push(Group {
                id,
                name: g.name.or_empty(),
                components: unique,
            });
        }
    };

    for row in rows {
        if row.group.0 {
            add_group(row.into_group(), &mut groups);
            continue;
        }
        let Some(component) = row.into_component() else {
            continue;
        };
        if seen_components.insert(component.id.clone()) {
            components.push(component);
        }
    }
    for g in extra_groups {
        add_group(g, &mut groups);
    }

    // Children that name a group join its member list.
    for c in &components {
        if let Some(i) = c.group_id.as_ref().and_then(|g| group_at.get(g)) {
            let members = &mut groups[*i].components;
            if !members.contains(&c.id) {
                members.push(c.id.clone());
            }
        }
    }
    // Members that do not name their group learn it.
    let mut group_of: BTreeMap<&str, &str> = BTreeMap::new();
    for g in &groups {
        for m in &g.components {
            group_of.entry(m.as_str()).or_insert(g.id.as_str());
        }
    }
    for c in &mut components {
        if c.group_id.is_none() {
            c.group_id = group_of.get(c.id.as_str()).map(|g| (*g).to_string());
        }
    }
    (components, groups)
}

/// Merges incidents seen in several lists: one per id, the copy that changed
/// last wins, and an item that any list calls a maintenance stays one.
/// Returns them newest first.
pub fn merge_incidents(items: impl IntoIterator<Item = Incident>) -> Vec<Incident> {
    let mut out: Vec<Incident> = Vec::new();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for item in items {
        if let Some(&i) = at.get(&item.id) {
            let kept = &mut out[i];
            let maintenance =
                kept.kind == ItemKind::Maintenance || item.kind == ItemKind::Maintenance;
            if item.last_change() > kept.last_change() {
                *kept = item;
            }
            if maintenance {
                kept.kind = ItemKind::Maintenance;
            }
        } else {
            at.insert(item.id.clone(), out.len());
            out.push(item);
        }
    }
    out.sort_by(|a, b| {
        let key = |i: &Incident| i.created_at.or(i.scheduled_for).or(i.updated_at);
        key(b).cmp(&key(a)).then_with(|| a.id.cmp(&b.id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(json: &str) -> Option<Incident> {
        serde_json::from_str::<RawIncident>(json)
            .unwrap()
            .into_incident(false)
    }

    #[test]
    fn odd_scalars_become_none_instead_of_failing() {
        let i = incident(
            r#"{"id": 42, "name": null, "created_at": "2024-06-07", "updated_at": 17,
                "resolved_at": "2014-05-14T14:22:39-06:00", "impact": null,
                "incident_updates": null, "components": null, "extra": {"x": [1]}}"#,
        )
        .unwrap();
        assert_eq!(i.id, "42");
        assert_eq!(i.name, "");
        assert_eq!(i.impact, "none");
        assert_eq!(i.created_at, None);
        assert_eq!(i.updated_at, None);
        assert_eq!(
            i.resolved_at,
            Some("2014-05-14T20:22:39Z".parse::<Timestamp>().unwrap())
        );
    }

    #[test]
    fn containers_of_the_wrong_kind_are_errors() {
        assert!(serde_json::from_str::<RawIncident>(r#"{"incident_updates": 5}"#).is_err());
        assert!(serde_json::from_str::<RawIncident>(r#"{"components": {"id": "a"}}"#).is_err());
    }

    #[test]
    fn an_incident_without_id_is_dropped() {
        assert!(incident(r#"{"name": "x"}"#).is_none());
        assert!(incident(r#"{"id": "  ", "name": "x"}"#).is_none());
    }

    #[test]
    fn components_come_from_the_incident_and_its_updates_by_id() {
        let i = incident(
            r#"{"id": "i", "components": [{"id": "a", "name": "A"}, "b", null],
                "incident_updates": [
                  {"id": "u1", "created_at": "2024-01-01T00:00:00Z",
                   "affected_components": [{"code": "c", "name": "Group - C"}, {"name": "no code"}, {"code": "a"}]},
                  {"id": "u2", "created_at": "2024-01-02T00:00:00Z", "affected_components": null}
                ]}"#,
        )
        .unwrap();
        assert_eq!(i.components, ["a", "b", "c"]);
        let ids: Vec<&str> = i.updates.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["u2", "u1"], "updates newest first");
    }

    #[test]
    fn scheduled_for_makes_a_maintenance() {
        let i =
            incident(r#"{"id": "m", "scheduled_for": "2024-01-01T00:00:00.000-06:00"}"#).unwrap();
        assert_eq!(i.kind, ItemKind::Maintenance);
    }

    #[test]
    fn merge_keeps_the_latest_copy_and_the_maintenance_kind() {
        let old = serde_json::from_str::<RawIncident>(
            r#"{"id": "x", "status": "scheduled", "updated_at": "2024-01-01T00:00:00Z"}"#,
        )
        .unwrap()
        .into_incident(true)
        .unwrap();
        let new = incident(
            r#"{"id": "x", "status": "in_progress", "updated_at": "2024-01-02T00:00:00Z"}"#,
        )
        .unwrap();
        let merged = merge_incidents([old, new]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].status, "in_progress");
        assert_eq!(merged[0].kind, ItemKind::Maintenance);
    }

    #[test]
    fn group_membership_agrees_both_ways() {
        let rows: Vec<RawComponent> = serde_json::from_str(
            r#"[{"id": "g", "name": "G", "group": true, "components": ["a"]},
                {"id": "a", "name": "A"},
                {"id": "b", "name": "B", "group_id": "g"},
                {"id": "c", "name": "C", "group": null}]"#,
        )
        .unwrap();
        let (components, groups) = components_and_groups(rows, Vec::new());
        assert_eq!(components.len(), 3);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].components, ["a", "b"]);
        assert_eq!(components[0].group_id.as_deref(), Some("g"));
        assert_eq!(components[2].group_id, None);
    }

    #[test]
    fn an_item_of_an_impossible_shape_costs_itself_alone() {
        let items: Items<RawIncident> = serde_json::from_str(
            r#"[{"id": "good", "name": "Fine"},
                {"id": "bad", "incident_updates": 5},
                null,
                {"components": {"id": "a"}},
                7]"#,
        )
        .unwrap();
        assert_eq!(items.items.len(), 1);
        assert_eq!(items.items[0].id.0.as_deref(), Some("good"));
        assert_eq!(items.skipped.len(), 3, "{:?}", items.skipped);
        assert!(
            items.skipped[0].starts_with("item `bad`: invalid type: integer `5`"),
            "{:?}",
            items.skipped
        );
        assert!(
            items.skipped[1].starts_with("item 4: "),
            "{:?}",
            items.skipped
        );
        // The list itself must be a list.
        assert!(serde_json::from_str::<Items<RawIncident>>("{}").is_err());
    }
}
