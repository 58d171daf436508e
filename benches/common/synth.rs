//! Synthetic Statuspage pages of any size for the benchmarks: `clusters`
//! component groups of `per_cluster` components each, and `items` incidents
//! and maintenances spread over them, in the JSON shapes of the public API v2
//! (`summary.json`, `incidents.json`, `scheduled-maintenances.json`) and of
//! the manage API v1 lists, plus the `mapping.toml` that maps one cluster to
//! each group by name.
//!
//! The mix of items is fixed per 100: 2 open incidents, 1 maintenance in
//! progress, 2 upcoming, 5 resolved within the last day and 90 older ones
//! (history a MOTD no longer shows but a fetch still reads). One open
//! incident in 500 names no component, so every cluster shows it. Update
//! bodies carry `<br />` and `\r\n`, so the sanitizer takes its slow path
//! where real pages make it. Incident 0 is the probe: it concerns cluster 0
//! and its newest update carries `marker`, so a benchmark can tell when a
//! change reached the MOTD.
#![allow(dead_code)] // each benchmark uses part of it

use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

pub const PAGE_ID: &str = "synthpage01";

/// The size of a synthetic page.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub clusters: usize,
    pub per_cluster: usize,
    pub items: usize,
}

/// The v2 documents of one page.
pub struct V2 {
    pub summary: Value,
    pub incidents: Value,
    pub maintenances: Value,
}

/// The v1 lists of one page.
pub struct V1 {
    pub components: Value,
    pub groups: Value,
    pub unresolved: Value,
    pub upcoming: Value,
    pub active_maintenance: Value,
    pub incidents: Value,
}

pub fn cluster_name(c: usize) -> String {
    format!("c{c:05}")
}

pub fn group_name(c: usize) -> String {
    format!("System {c:05}")
}

fn group_id(c: usize) -> String {
    format!("g{c:05}")
}

fn component_id(c: usize, k: usize) -> String {
    format!("c{c:05}k{k}")
}

fn at(now: Timestamp, secs: i64) -> String {
    (now + SignedDuration::from_secs(secs)).to_string()
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

struct Rows {
    groups: Vec<Value>,
    components: Vec<Value>,
}

fn rows(spec: &Spec, now: Timestamp) -> Rows {
    let mut groups = Vec::with_capacity(spec.clusters);
    let mut components = Vec::with_capacity(spec.clusters * spec.per_cluster);
    for c in 0..spec.clusters {
        let members: Vec<String> = (0..spec.per_cluster).map(|k| component_id(c, k)).collect();
        groups.push(json!({
            "id": group_id(c), "name": group_name(c), "status": "operational",
            "created_at": at(now, -400 * DAY), "updated_at": at(now, -30 * DAY),
            "position": c + 1, "description": null, "showcase": false, "start_date": null,
            "group_id": null, "page_id": PAGE_ID, "group": true,
            "only_show_if_degraded": false, "components": members,
        }));
        for k in 0..spec.per_cluster {
            let status = if c % 50 == 0 && k == 0 {
                "degraded_performance"
            } else {
                "operational"
            };
            components.push(json!({
                "id": component_id(c, k), "name": format!("Service {k}"), "status": status,
                "created_at": at(now, -400 * DAY), "updated_at": at(now, -2 * DAY),
                "position": k + 1, "description": "Nodes and services of one system",
                "showcase": false, "start_date": null, "group_id": group_id(c),
                "page_id": PAGE_ID, "group": false, "only_show_if_degraded": false,
            }));
        }
    }
    Rows { groups, components }
}

/// One incident or maintenance in the v2 shape (v1 is a superset that the
/// client reads the same way).
fn item(spec: &Spec, i: usize, now: Timestamp, marker: &str) -> Value {
    let cluster = if i == 0 {
        0
    } else {
        (i * 7919) % spec.clusters
    };
    let k = i % spec.per_cluster;
    let mut affected = vec![component_id(cluster, k)];
    if i.is_multiple_of(3) && spec.per_cluster > 1 {
        affected.push(component_id(cluster, (k + 1) % spec.per_cluster));
    }
    let page_wide = i % 500 == 1;
    if page_wide {
        affected.clear();
    }
    let id = format!("inc{i:06}");
    let age = i64::try_from(i % 100).unwrap_or(0);
    // (kind, status, impact, created, resolved, scheduled_for, scheduled_until)
    let (maintenance, status, impact, created, resolved, window) = match i % 100 {
        0..=1 => (
            false,
            "investigating",
            "major",
            -(age + 1) * HOUR,
            None,
            None,
        ),
        2 => (
            true,
            "in_progress",
            "maintenance",
            -3 * DAY,
            None,
            Some((-HOUR, 3 * HOUR)),
        ),
        3..=4 => {
            let start = (age - 2) * DAY;
            (
                true,
                "scheduled",
                "maintenance",
                -DAY,
                None,
                Some((start, start + 4 * HOUR)),
            )
        }
        5..=9 => (
            false,
            "resolved",
            "minor",
            -(age + 2) * HOUR,
            Some(-age * HOUR),
            None,
        ),
        _ => (
            false,
            "resolved",
            "minor",
            -(age / 3 + 3) * DAY,
            Some(-(age / 3 + 3) * DAY + 4 * HOUR),
            None,
        ),
    };
    let updated = resolved.unwrap_or(created + HOUR);
    let statuses = if maintenance {
        ["scheduled", status, status]
    } else {
        ["investigating", "identified", status]
    };
    let comps: Vec<Value> = affected
        .iter()
        .map(|c| json!({"id": c, "name": c, "status": "degraded_performance", "group_id": null}))
        .collect();
    let history: Vec<Value> = (0..3)
        .rev()
        .map(|u| {
            let t = at(now, created + (updated - created) * u / 2);
            // The marker leads the body: the MOTD shows only its first lines.
            let lead = if i == 0 && u == 2 {
                format!("[{marker}] ")
            } else {
                String::new()
            };
            let body = format!(
                "{lead}Update {u} on {id}: we are looking into slow I/O on the /work file system.<br />\
                 Jobs that read many small files may run slower than usual.\r\n\
                 The next update follows within 30 minutes &amp; sooner if anything changes."
            );
            json!({
                "id": format!("{id}u{u}"), "status": statuses[usize::try_from(u).unwrap_or(0)],
                "body": body, "incident_id": id, "created_at": t, "display_at": t, "updated_at": t,
                "affected_components": affected.iter().map(|c| json!({
                    "code": c, "name": format!("System - {c}"),
                    "old_status": "operational", "new_status": "degraded_performance",
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let (scheduled_for, scheduled_until) = match window {
        Some((from, until)) => (json!(at(now, from)), json!(at(now, until))),
        None => (Value::Null, Value::Null),
    };
    json!({
        "id": id, "name": format!("Slow I/O on /work ({id})"), "status": status, "impact": impact,
        "created_at": at(now, created), "updated_at": at(now, updated),
        "monitoring_at": null, "resolved_at": resolved.map(|r| at(now, r)),
        "started_at": at(now, created), "page_id": PAGE_ID,
        "shortlink": format!("https://stspg.io/{id}"),
        "scheduled_for": scheduled_for, "scheduled_until": scheduled_until,
        "incident_updates": history, "components": comps,
    })
}

fn is_maintenance(v: &Value) -> bool {
    !v["scheduled_for"].is_null()
}

fn is_open(v: &Value) -> bool {
    !matches!(v["status"].as_str(), Some("resolved" | "completed"))
}

fn items(spec: &Spec, now: Timestamp, marker: &str) -> Vec<Value> {
    (0..spec.items)
        .map(|i| item(spec, i, now, marker))
        .collect()
}

/// The v2 documents of a page of `spec`'s size, with times relative to `now`.
pub fn v2(spec: &Spec, now: Timestamp, marker: &str) -> V2 {
    let Rows { groups, components } = rows(spec, now);
    let all = items(spec, now, marker);
    let page = json!({
        "id": PAGE_ID, "name": "Synthetic HPC status", "url": "https://status.example.org",
        "time_zone": "Etc/UTC", "updated_at": now.to_string(),
    });
    let open_incidents: Vec<&Value> = all
        .iter()
        .filter(|v| !is_maintenance(v) && is_open(v))
        .collect();
    let open_maintenance: Vec<&Value> = all
        .iter()
        .filter(|v| is_maintenance(v) && is_open(v))
        .collect();
    let mut rows = groups;
    rows.extend(components);
    V2 {
        summary: json!({
            "page": page,
            "components": rows,
            "incidents": open_incidents,
            "scheduled_maintenances": open_maintenance,
            "status": {"indicator": "major", "description": "Partial System Outage"},
        }),
        incidents: json!({
            "page": page,
            "incidents": all.iter().filter(|v| !is_maintenance(v)).collect::<Vec<_>>(),
        }),
        maintenances: json!({
            "page": page,
            "scheduled_maintenances": all.iter().filter(|v| is_maintenance(v)).collect::<Vec<_>>(),
        }),
    }
}

impl V2 {
    /// Keeps only the `n` newest entries of `incidents.json` and
    /// `scheduled-maintenances.json`, as the real API does (50).
    pub fn recent_only(mut self, n: usize) -> Self {
        for (doc, key) in [
            (&mut self.incidents, "incidents"),
            (&mut self.maintenances, "scheduled_maintenances"),
        ] {
            if let Some(Value::Array(list)) = doc.get_mut(key) {
                newest_first(list);
                list.truncate(n);
            }
        }
        self
    }
}

/// Sorts by `created_at`, newest first; the times share one format, so
/// their text sorts as they do.
fn newest_first(list: &mut [Value]) {
    list.sort_by(|a, b| {
        b["created_at"]
            .as_str()
            .unwrap_or("")
            .cmp(a["created_at"].as_str().unwrap_or(""))
    });
}

/// The v1 lists of a page of `spec`'s size.
pub fn v1(spec: &Spec, now: Timestamp) -> V1 {
    let Rows { groups, components } = rows(spec, now);
    let mut all = items(spec, now, "");
    newest_first(&mut all);
    let pick =
        |f: &dyn Fn(&Value) -> bool| Value::Array(all.iter().filter(|v| f(v)).cloned().collect());
    V1 {
        components: Value::Array(components),
        groups: Value::Array(groups),
        unresolved: pick(&|v| !is_maintenance(v) && is_open(v)),
        upcoming: pick(&|v| is_maintenance(v) && v["status"] == "scheduled"),
        active_maintenance: pick(&|v| is_maintenance(v) && v["status"] == "in_progress"),
        incidents: Value::Array(all.clone()),
    }
}

/// A webhook body as Statuspage sends it for an incident update.
pub fn webhook_body(now: Timestamp) -> String {
    json!({
        "meta": {"unsubscribe": "https://status.example.org/unsubscribe", "documentation": "https://doers.statuspage.io/customer-notifications/webhooks/"},
        "page": {"id": PAGE_ID, "status_indicator": "major", "status_description": "Partial System Outage"},
        "incident": {"id": "inc000000", "name": "Slow I/O on /work", "status": "investigating",
                     "impact": "major", "updated_at": now.to_string(), "incident_updates": []},
    })
    .to_string()
}

/// A `mapping.toml` with one public source at `url` and one cluster per
/// group, listed by group name; `settings` is added to `[settings]` as is.
pub fn mapping_toml(spec: &Spec, url: &str, settings: &str, server: &str) -> String {
    let mut toml = format!(
        "[settings]\noutput_dir = \"out\"\nstate_dir = \"state\"\ntimezone = \"UTC\"\n{settings}\n\
         [sources.synth]\nkind = \"statuspage-public\"\nurl = \"{url}\"\n\n{server}\n"
    );
    for c in 0..spec.clusters {
        let _ = write!(
            toml,
            "[clusters.{}]\ngroups = [\"{}\"]\n",
            cluster_name(c),
            group_name(c)
        );
    }
    toml
}

/// The cluster -> group names table the baseline script reads.
pub fn baseline_clusters(spec: &Spec) -> String {
    let table: serde_json::Map<String, Value> = (0..spec.clusters)
        .map(|c| (cluster_name(c), json!([group_name(c)])))
        .collect();
    Value::Object(table).to_string()
}
