//! A Prometheus Alertmanager as a source (API v2): firing alerts become
//! incidents, silences that select a component become maintenance, and an
//! alert that stops firing is shown as resolved for `recent_resolved`.
//!
//! Two requests per fetch: `GET /api/v2/alerts` (active, not silenced, not
//! inhibited, filtered by the configured `matchers`) and
//! `GET /api/v2/silences`. Each distinct value of `component_label` is a
//! component; values are also taken from silences, from the source's
//! declared `components`, and from the names the clusters select (a healthy
//! cluster has no alert, and must still resolve).
//!
//! Alertmanager forgets an alert once it is resolved, so the source keeps
//! what it saw in `state_dir` (`<source>.alertmanager.json`, replaced
//! atomically): an alert that was firing at the last fetch and is gone now
//! is resolved at the time it was noticed gone, kept for `recent_resolved`
//! and then pruned. A restart reads the file back, so the resolved item
//! stays.
//!
//! Lenient as the Statuspage readers are: an alert or silence of an
//! impossible shape is skipped and reported, and costs that item alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

use super::raw::{list, Flag, Items, Text, Time};
use super::{Expect, FetchError, FetchErrorKind, Http};
use crate::config::{AlertmanagerConfig, MatchOp, Matcher};
use crate::model::{Component, ComponentStatus, Group, Incident, ItemKind, Page, Snapshot, Update};

/// Version of the memory file; another version is read as empty.
const MEMORY_FORMAT: u32 = 1;

/// How long a component value no alert names any more stays in the
/// snapshot, so that clusters selecting it by a group keep resolving and a
/// quiet week is not a "suspicious drop" of every component.
const SEEN_FOR: SignedDuration = SignedDuration::from_hours(30 * 24);

/// How stale a "last seen" time may get before it is written again, so that
/// an unchanged Alertmanager does not rewrite the memory file at every poll.
const SEEN_REFRESH: SignedDuration = SignedDuration::from_hours(1);

/// What the page of an Alertmanager is called in the view.
const PAGE_NAME: &str = "Alertmanager";

/// One alert as `GET /api/v2/alerts` returns it (`gettableAlert`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAlert {
    #[serde(deserialize_with = "labels")]
    labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "labels")]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: Time,
    fingerprint: Text,
    #[serde(rename = "generatorURL")]
    generator_url: Text,
}

/// One silence as `GET /api/v2/silences` returns it (`gettableSilence`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSilence {
    id: Text,
    status: Option<RawSilenceStatus>,
    comment: Text,
    #[serde(rename = "createdBy")]
    created_by: Text,
    #[serde(rename = "startsAt")]
    starts_at: Time,
    #[serde(rename = "endsAt")]
    ends_at: Time,
    #[serde(rename = "updatedAt")]
    updated_at: Time,
    #[serde(deserialize_with = "list")]
    matchers: Vec<RawMatcher>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSilenceStatus {
    state: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMatcher {
    name: Text,
    value: Text,
    #[serde(rename = "isRegex")]
    is_regex: Flag,
    /// Absent in Alertmanager before 0.22: equality then.
    #[serde(rename = "isEqual")]
    is_equal: Option<Flag>,
}

/// A label set: an object of strings; `null` is empty, and a value that is
/// not a string is left out.
fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map: Option<BTreeMap<String, Text>> = Option::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.0.map(|v| (k, v)))
        .collect())
}

/// What the source remembers between fetches, in `state_dir`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub format: u32,
    /// The incidents of the alerts firing at the last fetch, by id.
    #[serde(default)]
    pub firing: BTreeMap<String, Incident>,
    /// Incidents of alerts that stopped firing, kept for `recent_resolved`.
    #[serde(default)]
    pub resolved: BTreeMap<String, Incident>,
    /// Component values alerts named, with their group and when.
    #[serde(default)]
    pub seen: BTreeMap<String, Seen>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub group: Option<String>,
    pub at: Timestamp,
}

impl Memory {
    /// The memory kept at `path`; empty when there is none or it cannot be
    /// read (said as a warning: it only feeds "recently resolved").
    pub fn load(path: &Path) -> Memory {
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Memory>(&bytes) {
                Ok(m) if m.format == MEMORY_FORMAT => m,
                Ok(_) => Memory::default(),
                Err(e) => {
                    tracing::warn!("ignoring `{}`: {e}", path.display());
                    Memory::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Memory::default(),
            Err(e) => {
                tracing::warn!("cannot read `{}`: {e}", path.display());
                Memory::default()
            }
        }
    }

    /// Keeps it at `path`, replacing the file atomically.
    pub fn save(&self, path: &Path) -> crate::Result<()> {
        if let Some(dir) = path.parent() {
            // The state directory itself, not a file: the file goes through
            // `output::replace_file`.
            #[allow(clippy::disallowed_methods)]
            std::fs::create_dir_all(dir)
                .map_err(crate::Error::io("cannot create state directory", dir))?;
        }
        let text = serde_json::to_vec_pretty(self).map_err(|e| {
            crate::Error::Runtime(format!("cannot serialize the alertmanager memory: {e}"))
        })?;
        crate::output::replace_file(path, &text)
    }
}

/// The `filter`-ed alerts URL and the silences URL of `am`.
pub fn urls(am: &AlertmanagerConfig) -> Result<(String, String), FetchError> {
    let mut alerts = reqwest::Url::parse(&format!("{}/api/v2/alerts", am.url)).map_err(|e| {
        FetchError::new(
            FetchErrorKind::Connection,
            format!("invalid Alertmanager URL `{}`: {e}", am.url),
        )
    })?;
    {
        let mut query = alerts.query_pairs_mut();
        query
            .append_pair("active", "true")
            .append_pair("silenced", "false")
            .append_pair("inhibited", "false");
        for m in &am.matchers {
            query.append_pair("filter", &m.to_string());
        }
    }
    Ok((alerts.to_string(), format!("{}/api/v2/silences", am.url)))
}

/// Fetches alerts and silences, folds them with the memory in
/// `am.memory`, keeps the new memory, and returns the snapshot (not yet
/// sanitized) with the items skipped.
pub(super) async fn fetch(
    http: &Http<'_>,
    am: &AlertmanagerConfig,
) -> Result<(Snapshot, Vec<String>), FetchError> {
    let (alerts_url, silences_url) = urls(am)?;
    let (alerts, silences) = tokio::join!(
        http.get_json::<Items<RawAlert>>(&alerts_url, Expect::Array),
        http.get_json::<Items<RawSilence>>(&silences_url, Expect::Array),
    );
    let (alerts, silences) = (alerts?, silences?);
    let mut skipped: Vec<String> = alerts
        .skipped
        .iter()
        .map(|s| format!("skipped alert {s} (from `{alerts_url}`)"))
        .chain(
            silences
                .skipped
                .iter()
                .map(|s| format!("skipped silence {s} (from `{silences_url}`)")),
        )
        .collect();
    let am = am.clone();
    let resolved_since = http.opts.resolved_since;
    let (snapshot, more) = tokio::task::spawn_blocking(move || {
        let mut memory = Memory::load(&am.memory);
        let before = memory.clone();
        let now = Timestamp::now();
        let out = normalize(
            &am,
            alerts.items,
            silences.items,
            &mut memory,
            now,
            resolved_since,
        );
        if memory != before {
            if let Err(e) = memory.save(&am.memory) {
                // The snapshot is still good; only "recently resolved"
                // after a restart suffers.
                tracing::warn!("cannot keep what Alertmanager said: {e}");
            }
        }
        out
    })
    .await
    .map_err(|e| {
        FetchError::new(
            FetchErrorKind::UnexpectedShape,
            format!("reading the Alertmanager answer failed: {e}"),
        )
    })?;
    skipped.extend(more);
    Ok((snapshot, skipped))
}

/// Whether a webhook body is one Alertmanager sends (`webhook_configs`):
/// an object with an `alerts` list and a `groupKey` or `version`.
pub fn is_webhook(payload: &serde_json::Value) -> bool {
    payload
        .get("alerts")
        .is_some_and(serde_json::Value::is_array)
        && (payload.get("groupKey").is_some() || payload.get("version").is_some())
}

/// The snapshot of one Alertmanager answer at `now`, folding in and
/// updating what the source remembers. Pure but for `memory`, so recorded
/// answers can be replayed in tests.
pub fn normalize(
    am: &AlertmanagerConfig,
    alerts: Vec<RawAlert>,
    silences: Vec<RawSilence>,
    memory: &mut Memory,
    now: Timestamp,
    resolved_since: Option<Timestamp>,
) -> (Snapshot, Vec<String>) {
    let mut skipped = Vec::new();
    let label = am.component_label.as_str();
    memory.format = MEMORY_FORMAT;

    // Firing alerts, one incident per fingerprint.
    let mut firing: BTreeMap<String, Incident> = BTreeMap::new();
    let mut status: BTreeMap<String, ComponentStatus> = BTreeMap::new();
    let mut groups_now: BTreeMap<String, String> = BTreeMap::new();
    // Alertmanager answers only alerts that are active by its own clock;
    // `endsAt` is not judged here again by ours.
    for alert in alerts {
        let component = alert
            .labels
            .get(label)
            .filter(|v| !v.trim().is_empty())
            .cloned();
        let group = am
            .group_label
            .as_ref()
            .and_then(|g| alert.labels.get(g))
            .filter(|v| !v.trim().is_empty())
            .cloned();
        let severity = alert.labels.get("severity").map(String::as_str);
        if let Some(c) = &component {
            let worst = status.entry(c.clone()).or_default();
            *worst = (*worst).max(am.status_of(severity));
            if let Some(g) = &group {
                groups_now.entry(c.clone()).or_insert_with(|| g.clone());
            }
        }
        let incident = alert_incident(am, &alert, component);
        match firing.get_mut(&incident.id) {
            // The same alert twice (it cannot be, but an answer may say so):
            // one incident, from its earliest start, naming both.
            Some(held) => {
                for c in incident.components {
                    if !held.components.contains(&c) {
                        held.components.push(c);
                    }
                }
                if incident
                    .started_at
                    .is_some_and(|t| held.started_at.is_none_or(|h| t < h))
                {
                    held.started_at = incident.started_at;
                    held.created_at = incident.created_at;
                    held.updated_at = incident.updated_at;
                    held.updates = incident.updates;
                }
            }
            None => {
                firing.insert(incident.id.clone(), incident);
            }
        }
    }

    // Memory: what fired before and is gone is resolved now.
    let previous = std::mem::take(&mut memory.firing);
    for (id, mut incident) in previous {
        if firing.contains_key(&id) {
            continue;
        }
        incident.status = "resolved".into();
        incident.resolved_at = Some(now);
        incident.updated_at = Some(now);
        incident.updates.insert(
            0,
            Update {
                id: format!("{id}-resolved"),
                status: "resolved".into(),
                body: String::new(),
                created_at: Some(now),
                display_at: Some(now),
                updated_at: Some(now),
            },
        );
        memory.resolved.insert(id, incident);
    }
    memory.resolved.retain(|id, incident| {
        !firing.contains_key(id)
            && resolved_since.is_none_or(|since| incident.resolved_at.is_none_or(|t| t >= since))
    });
    memory.firing.clone_from(&firing);
    let seen_since = now.checked_sub(SEEN_FOR).unwrap_or(Timestamp::MIN);
    memory.seen.retain(|_, s| s.at >= seen_since);
    for incident in firing.values() {
        for c in &incident.components {
            let group = groups_now.get(c).cloned();
            let entry = memory.seen.entry(c.clone()).or_insert(Seen {
                group: group.clone(),
                at: now,
            });
            if entry.group != group || now.duration_since(entry.at) > SEEN_REFRESH {
                *entry = Seen { group, at: now };
            }
        }
    }

    // Every component value known: declared, selected by a cluster, seen,
    // named by a resolved incident.
    let mut known: BTreeSet<String> = am
        .components
        .iter()
        .chain(&am.mapped_components)
        .chain(memory.seen.keys())
        .cloned()
        .collect();
    for incident in firing.values().chain(memory.resolved.values()) {
        known.extend(incident.components.iter().cloned());
    }

    // Silences that select a component.
    let mut maintenance = Vec::new();
    let mut under_maintenance = BTreeSet::new();
    for (n, silence) in silences.into_iter().enumerate() {
        match silence_item(am, silence, &known, now) {
            Ok(Some(item)) => {
                if item.status == "in_progress" {
                    under_maintenance.extend(item.components.iter().cloned());
                }
                known.extend(item.components.iter().cloned());
                maintenance.push(item);
            }
            Ok(None) => {}
            Err(why) => skipped.push(format!("skipped silence {}: {why}", n + 1)),
        }
    }

    let group_of = |c: &str| {
        groups_now
            .get(c)
            .cloned()
            .or_else(|| memory.seen.get(c).and_then(|s| s.group.clone()))
    };
    let components: Vec<Component> = known
        .iter()
        .map(|c| {
            let mut st = status.get(c).copied().unwrap_or_default();
            if st == ComponentStatus::Operational && under_maintenance.contains(c) {
                st = ComponentStatus::UnderMaintenance;
            }
            Component {
                id: c.clone(),
                name: c.clone(),
                status: st,
                group_id: am.group_label.as_ref().and(group_of(c)),
                description: None,
                updated_at: None,
                unknown: None,
            }
        })
        .collect();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if am.group_label.is_some() {
        for g in &am.mapped_groups {
            groups.entry(g.clone()).or_default();
        }
        for c in &components {
            if let Some(g) = &c.group_id {
                groups.entry(g.clone()).or_default().push(c.id.clone());
            }
        }
    }

    let mut incidents: Vec<Incident> = firing
        .into_values()
        .chain(maintenance)
        .chain(memory.resolved.values().cloned())
        .collect();
    incidents.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });

    let snapshot = Snapshot {
        page: Page {
            id: am.url.clone(),
            name: PAGE_NAME.to_owned(),
            url: Some(am.url.clone()),
        },
        fetched_at: now,
        components,
        groups: groups
            .into_iter()
            .map(|(id, components)| Group {
                name: id.clone(),
                id,
                components,
            })
            .collect(),
        incidents,
    };
    (snapshot, skipped)
}

/// The incident of one firing alert.
fn alert_incident(
    am: &AlertmanagerConfig,
    alert: &RawAlert,
    component: Option<String>,
) -> Incident {
    let id = alert
        .fingerprint
        .0
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty() && f.len() <= 64 && f.chars().all(|c| c.is_ascii_alphanumeric()))
        .map_or_else(|| fingerprint(&alert.labels), str::to_owned);
    let text = |map: &BTreeMap<String, String>, key: &str| {
        map.get(key)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let name = text(&alert.annotations, "summary")
        .or_else(|| text(&alert.labels, "alertname"))
        .unwrap_or_else(|| "Alert".to_owned());
    let body = text(&alert.annotations, "description").unwrap_or_default();
    let severity = alert.labels.get("severity").map(String::as_str);
    let shortlink = alert
        .generator_url
        .0
        .as_deref()
        .map(str::trim)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_owned);
    let started = alert.starts_at.0;
    Incident {
        id: id.clone(),
        kind: ItemKind::Incident,
        name,
        status: "identified".into(),
        impact: am.impact_of(severity).to_owned(),
        // The start is the news: `updatedAt` moves at every resend from
        // Prometheus, and would change the files each minute.
        created_at: started,
        updated_at: started,
        started_at: started,
        monitoring_at: None,
        resolved_at: None,
        scheduled_for: None,
        scheduled_until: None,
        shortlink,
        components: component.into_iter().collect(),
        updates: vec![Update {
            id: format!("{id}-firing"),
            status: "identified".into(),
            body,
            created_at: started,
            display_at: started,
            updated_at: started,
        }],
    }
}

/// A stable id for an alert that came without a fingerprint: FNV-1a over
/// its sorted labels, as hex.
fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The maintenance item of one silence; `None` for a silence that is over
/// or selects no component; an error for one that cannot be read.
fn silence_item(
    am: &AlertmanagerConfig,
    silence: RawSilence,
    known: &BTreeSet<String>,
    now: Timestamp,
) -> Result<Option<Incident>, String> {
    let Some(id) = silence.id.0.filter(|s| !s.trim().is_empty()) else {
        return Err("no `id`".into());
    };
    let short: String = id.chars().filter(|c| !c.is_control()).take(40).collect();
    let (starts, ends) = (silence.starts_at.0, silence.ends_at.0);
    let state = silence.status.and_then(|s| s.state.0).unwrap_or_default();
    let state = match state.as_str() {
        "active" | "pending" | "expired" => state.clone(),
        // No state, or one this tool does not know: judged by the window.
        _ => match (starts, ends) {
            (_, Some(end)) if end <= now => "expired".into(),
            (Some(start), _) if start > now => "pending".into(),
            _ => "active".into(),
        },
    };
    if state == "expired" || ends.is_some_and(|end| end <= now) {
        return Ok(None);
    }
    let mut on_label = Vec::new();
    for m in &silence.matchers {
        let (Some(name), value) = (m.name.0.as_deref(), m.value.0.as_deref()) else {
            return Err(format!("silence `{short}` has a matcher without a name"));
        };
        if name != am.component_label {
            continue;
        }
        let op = match (m.is_regex.0, m.is_equal.is_none_or(|e| e.0)) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        let matcher = Matcher::new(name, op, value.unwrap_or_default())
            .map_err(|e| format!("silence `{short}`: {e}"))?;
        on_label.push(matcher);
    }
    // A silence about alerts, not about a component (no `cluster=` or
    // `cluster=~` matcher), is no maintenance of anything.
    if !on_label.iter().any(|m| m.op.is_positive()) {
        return Ok(None);
    }
    let candidates = known.iter().map(String::as_str).chain(
        on_label
            .iter()
            .filter(|m| m.op == MatchOp::Equal)
            .map(|m| m.value.as_str()),
    );
    let selected: BTreeSet<String> = candidates
        .filter(|c| !c.trim().is_empty() && on_label.iter().all(|m| m.matches(Some(*c))))
        .map(str::to_owned)
        .collect();
    if selected.is_empty() {
        return Ok(None);
    }
    let comment = silence.comment.0.unwrap_or_default().trim().to_owned();
    let name = comment
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map_or_else(|| "Maintenance".to_owned(), |l| cut(l, 100));
    let by = silence
        .created_by
        .0
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty());
    let body = match (comment.is_empty(), by) {
        (false, Some(by)) => format!("{comment}\n(by {by})"),
        (true, Some(by)) => format!("(by {by})"),
        (_, None) => comment,
    };
    let status = if state == "pending" {
        "scheduled"
    } else {
        "in_progress"
    };
    let announced = silence.updated_at.0.or(starts);
    Ok(Some(Incident {
        id: id.clone(),
        kind: ItemKind::Maintenance,
        name,
        status: status.into(),
        impact: "maintenance".into(),
        created_at: announced,
        updated_at: announced,
        started_at: if status == "in_progress" {
            starts
        } else {
            None
        },
        monitoring_at: None,
        resolved_at: None,
        scheduled_for: starts,
        scheduled_until: ends,
        shortlink: None,
        components: selected.into_iter().collect(),
        updates: vec![Update {
            id: format!("{id}-comment"),
            status: status.into(),
            body,
            created_at: announced,
            display_at: announced,
            updated_at: announced,
        }],
    }))
}

/// `s` cut to at most `max` characters, at a word where one is near.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let head: String = s.chars().take(max).collect();
    let head = match head.rfind(' ') {
        Some(i) if i > max / 2 => &head[..i],
        _ => head.as_str(),
    };
    format!("{}...", head.trim_end())
}

/// Standard base64 with padding, for `Authorization: Basic`.
pub(super) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, SourceKind};

    const ALERTS: &str = include_str!("testdata/alertmanager/alerts.json");
    const SILENCES: &str = include_str!("testdata/alertmanager/silences.json");

    fn config(extra: &str, clusters: &str) -> AlertmanagerConfig {
        let text = format!(
            "[settings]\nstate_dir = \"/var/lib/statusmotd\"\n\
             [sources.prom]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\n{extra}\n{clusters}"
        );
        let c = Config::parse(&text, Path::new("/etc/statusmotd/mapping.toml")).unwrap();
        match &c.sources["prom"].kind {
            SourceKind::Alertmanager(am) => (**am).clone(),
            other => panic!("{other:?}"),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn read<T: serde::de::DeserializeOwned>(text: &str) -> Items<T> {
        serde_json::from_str(text).unwrap()
    }

    fn normalized(
        am: &AlertmanagerConfig,
        alerts: &str,
        silences: &str,
        memory: &mut Memory,
        now: Timestamp,
    ) -> (Snapshot, Vec<String>) {
        let (alerts, silences) = (read::<RawAlert>(alerts), read::<RawSilence>(silences));
        let mut skipped = alerts.skipped.clone();
        skipped.extend(silences.skipped.clone());
        let since = now.checked_sub(SignedDuration::from_hours(24)).ok();
        let (snap, more) = normalize(am, alerts.items, silences.items, memory, now, since);
        skipped.extend(more);
        (snap.sanitized(), skipped)
    }

    const NOW: &str = "2026-11-30T08:30:00Z";

    #[test]
    fn recorded_answers_normalize() {
        let am = config(
            "group_label = \"group\"",
            "[clusters.archer2]\ncomponents = [\"archer2\"]\n\
             [clusters.cirrus]\ncomponents = [\"cirrus\"]\n[clusters.quiet]\ncomponents = [\"tursa\"]\n",
        );
        let mut memory = Memory::default();
        let (snap, skipped) = normalized(&am, ALERTS, SILENCES, &mut memory, at(NOW));
        assert!(skipped.is_empty(), "{skipped:?}");
        insta::assert_snapshot!(
            "alertmanager_recorded",
            serde_json::to_string_pretty(&snap).unwrap()
        );

        // What `fetch --save` would write is a valid snapshot file.
        let saved = crate::snapshot::to_json(&[("prom".to_owned(), snap.clone())].into());
        let (back, dropped) =
            super::super::file::parse_reporting(Path::new("saved.json"), saved.as_bytes()).unwrap();
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(back, snap);

        let by_name = |n: &str| snap.incidents.iter().find(|i| i.name == n).unwrap();
        let login = by_name("Login node down");
        assert_eq!(
            (login.impact.as_str(), login.status.as_str()),
            ("major", "identified")
        );
        assert_eq!(
            login.shortlink, None,
            "a javascript: generatorURL is no link"
        );
        assert_eq!(login.components, ["archer2"]);
        let lustre = by_name("Lustre /work is slow");
        assert_eq!(lustre.impact, "minor");
        assert_eq!(
            lustre.shortlink.as_deref(),
            Some("http://prometheus.example.org/graph?g0.expr=up")
        );
        assert_eq!(
            lustre.updates[0].body,
            "Metadata operations take over 5 s.\nJobs may stall."
        );
        let site = by_name("Site network latency is high");
        assert!(site.components.is_empty(), "no cluster label: page-wide");
        let status = |c: &str| snap.component(c).unwrap().status;
        assert_eq!(status("archer2"), ComponentStatus::MajorOutage);
        assert_eq!(status("cirrus"), ComponentStatus::UnderMaintenance);
        let now = by_name("Kernel upgrade");
        assert_eq!(
            (now.kind, now.status.as_str()),
            (ItemKind::Maintenance, "in_progress")
        );
        assert_eq!(now.components, ["cirrus"]);
        assert_eq!(now.updates[0].body, "Kernel upgrade\n(by alice)");
        let later = by_name("Network work");
        assert_eq!(later.status, "scheduled");
        assert_eq!(later.components, ["archer2", "cirrus"], "regex, anchored");
        assert!(
            snap.incidents
                .iter()
                .all(|i| i.name != "Mute the watchdog" && i.name != "Short test"),
            "a silence of no component and an expired one are no maintenance"
        );
        let gpu = snap
            .incidents
            .iter()
            .find(|i| i.components == ["tursa"])
            .unwrap();
        assert_eq!(
            gpu.name, "GPU ECC errors on two nodes",
            "escapes and bidi controls removed"
        );
        assert_eq!(gpu.impact, "none", "`info` is in neither map");
        assert_eq!(
            gpu.updates[0].body,
            "Two nodes report ECC errors.\nJobs are not affected.\nSee the dashboard."
        );
        assert_eq!(
            status("tursa"),
            ComponentStatus::Operational,
            "`info` changes no status"
        );
        assert_eq!(snap.groups.len(), 1);
        assert_eq!(snap.groups[0].id, "hpc");
        assert_eq!(snap.groups[0].components, ["archer2"]);
    }

    #[test]
    fn ids_are_stable_and_a_fingerprint_is_one_incident() {
        let am = config("", "");
        let twice = r#"[
            {"labels": {"alertname": "A", "cluster": "x"}, "fingerprint": "abc123", "startsAt": "2026-11-30T07:00:00Z"},
            {"labels": {"alertname": "A", "cluster": "y"}, "fingerprint": "abc123", "startsAt": "2026-11-30T06:00:00Z"},
            {"labels": {"alertname": "B", "cluster": "x"}, "startsAt": "2026-11-30T07:00:00Z"}
        ]"#;
        let mut memory = Memory::default();
        let (first, _) = normalized(&am, twice, "[]", &mut memory, at(NOW));
        let (again, _) = normalized(&am, twice, "[]", &mut memory, at("2026-11-30T08:05:00Z"));
        let ids = |s: &Snapshot| s.incidents.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(first.incidents.len(), 2);
        assert_eq!(ids(&first), ids(&again));
        let a = first.incidents.iter().find(|i| i.id == "abc123").unwrap();
        assert_eq!(a.components, ["x", "y"]);
        assert_eq!(a.started_at, Some(at("2026-11-30T06:00:00Z")));
        assert_eq!(
            first.incidents, again.incidents,
            "nothing moves between fetches"
        );
    }

    #[test]
    fn one_malformed_alert_or_silence_costs_that_item() {
        let am = config("", "");
        let alerts = r#"[
            {"labels": 5, "fingerprint": "bad1"},
            null,
            {"labels": {"alertname": "Good", "cluster": "x", "severity": 7}, "fingerprint": "ok1",
             "startsAt": "yesterday", "annotations": null}
        ]"#;
        let silences = r#"[
            {"id": "s1", "matchers": "cluster=x"},
            {"id": "s2", "matchers": [{"name": "cluster", "value": "(", "isRegex": true}],
             "status": {"state": "active"}},
            {"id": "s3", "matchers": [{"name": "cluster", "value": "x"}], "startsAt": "2026-11-30T07:00:00Z",
             "endsAt": "2026-11-30T09:00:00Z", "comment": null, "createdBy": "ops"}
        ]"#;
        let (snap, skipped) = normalized(&am, alerts, silences, &mut Memory::default(), at(NOW));
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].contains("item 1"), "{skipped:?}");
        assert!(
            skipped
                .iter()
                .any(|s| s.contains("invalid regular expression")),
            "{skipped:?}"
        );
        let names: Vec<&str> = snap.incidents.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            ["Maintenance", "Good"],
            "newest first, no start last"
        );
        assert_eq!(
            snap.incidents[1].impact, "none",
            "severity `7` maps to nothing"
        );
        let s3 = &snap.incidents[0];
        assert_eq!(s3.status, "in_progress", "no state: judged by the window");
        assert_eq!(s3.updates[0].body, "(by ops)");
    }

    #[test]
    fn an_alert_that_stops_firing_is_resolved_then_pruned() {
        let am = config("", "[clusters.a]\ncomponents = [\"archer2\"]\n");
        let firing = r#"[{"labels": {"alertname": "Down", "cluster": "archer2", "severity": "critical"},
                          "fingerprint": "f1", "startsAt": "2026-11-30T07:00:00Z"}]"#;
        let mut memory = Memory::default();
        let (snap, _) = normalized(&am, firing, "[]", &mut memory, at(NOW));
        assert_eq!(snap.incidents[0].status, "identified");

        // Gone: resolved at the time it was noticed gone, and remembered
        // through a save and a load.
        let later = at("2026-11-30T08:10:00Z");
        let (snap, _) = normalized(&am, "[]", "[]", &mut memory, later);
        let i = &snap.incidents[0];
        assert_eq!(
            (i.status.as_str(), i.resolved_at),
            ("resolved", Some(later))
        );
        assert_eq!(i.components, ["archer2"]);
        assert_eq!(
            snap.component("archer2").unwrap().status,
            ComponentStatus::Operational
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/prom.alertmanager.json");
        memory.save(&path).unwrap();
        let mut memory = Memory::load(&path);
        let (snap, _) = normalized(&am, "[]", "[]", &mut memory, at("2026-11-30T09:00:00Z"));
        assert_eq!(snap.incidents.len(), 1, "kept across a restart");
        assert_eq!(
            snap.incidents[0].resolved_at,
            Some(later),
            "not resolved again"
        );

        // Past the window: gone; the component stays known.
        let (snap, _) = normalized(&am, "[]", "[]", &mut memory, at("2026-12-01T08:11:00Z"));
        assert!(snap.incidents.is_empty(), "{:?}", snap.incidents);
        assert!(memory.resolved.is_empty());
        assert!(snap.component("archer2").is_some());

        // Firing again after resolving: one incident, firing.
        let (_, _) = normalized(&am, firing, "[]", &mut memory, at("2026-12-01T09:00:00Z"));
        let (_, _) = normalized(&am, "[]", "[]", &mut memory, at("2026-12-01T09:01:00Z"));
        let (snap, _) = normalized(&am, firing, "[]", &mut memory, at("2026-12-01T09:02:00Z"));
        assert_eq!(snap.incidents.len(), 1);
        assert_eq!(snap.incidents[0].status, "identified");
    }

    #[test]
    fn a_corrupt_memory_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        #[allow(clippy::disallowed_methods)] // a scratch file of the test's own
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(Memory::load(&path), Memory::default());
        assert_eq!(
            Memory::load(&dir.path().join("none.json")),
            Memory::default()
        );
    }

    #[test]
    fn silences_select_components_by_the_label_only() {
        let am = config("components = [\"archer2\", \"cirrus\", \"tursa\"]", "");
        let silences = r#"[
            {"id": "neg", "matchers": [{"name": "cluster", "value": "cirrus", "isEqual": false}],
             "status": {"state": "active"}, "comment": "only a negative matcher"},
            {"id": "mix", "matchers": [{"name": "cluster", "value": ".*r.*", "isRegex": true},
                                       {"name": "cluster", "value": "tursa", "isEqual": false}],
             "status": {"state": "active"}, "comment": "all with an r but tursa"},
            {"id": "none", "matchers": [{"name": "cluster", "value": "nope.*", "isRegex": true}],
             "status": {"state": "active"}, "comment": "selects nothing"},
            {"id": "new", "matchers": [{"name": "cluster", "value": "dirac"}],
             "status": {"state": "pending"}, "startsAt": "2026-12-02T08:00:00Z", "comment": "a new name"}
        ]"#;
        let (snap, _) = normalized(&am, "[]", silences, &mut Memory::default(), at(NOW));
        let got: Vec<(&str, &[String])> = snap
            .incidents
            .iter()
            .map(|i| (i.id.as_str(), i.components.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("new", &["dirac".to_owned()][..]),
                ("mix", &["archer2".to_owned(), "cirrus".to_owned()][..]),
            ]
        );
        assert!(
            snap.component("dirac").is_some(),
            "a value a silence names is a component"
        );
    }

    #[test]
    fn webhook_bodies_of_alertmanager_are_told_from_statuspage_ones() {
        let am = serde_json::json!({"version": "4", "groupKey": "{}:{}", "status": "firing", "alerts": []});
        assert!(is_webhook(&am));
        let sp = serde_json::json!({"page": {"id": "abc"}, "incident": {}});
        assert!(!is_webhook(&sp));
        assert!(!is_webhook(
            &serde_json::json!({"alerts": 1, "version": "4"})
        ));
    }

    #[test]
    fn basic_credentials_are_base64() {
        assert_eq!(base64(b"motd:s3cr3t"), "bW90ZDpzM2NyM3Q=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn urls_carry_the_filters() {
        let am = config(
            r#"matchers = ['severity=~"critical|warning"', 'team="hpc ops"']"#,
            "",
        );
        let (alerts, silences) = urls(&am).unwrap();
        assert_eq!(
            alerts,
            "http://127.0.0.1:9093/api/v2/alerts?active=true&silenced=false&inhibited=false\
             &filter=severity%3D%7E%22critical%7Cwarning%22&filter=team%3D%22hpc+ops%22"
        );
        assert_eq!(silences, "http://127.0.0.1:9093/api/v2/silences");
    }
}
