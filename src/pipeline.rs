//! The one-shot pipeline shared by `render`, `show`, `gate` and `serve`:
//! gather snapshots (fetch, falling back to the last good one), then plan every
//! file from (snapshots, config, now), then apply the plan to the output
//! directory.
//!
//! Planning is pure, so `render --check`, `show` and the server's status
//! endpoints see exactly what `render` would write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{ClusterConfig, Config, SourceConfig, SourceKind};
use crate::error::{Error, Result};
use crate::mapping::{ClusterIds, KnownIds};
use crate::model::{Snapshot, SnapshotIndex};
use crate::output::{self, OutputDir, Written};
use crate::render::{Renderer, ViewContext};
use crate::snapshot::{self, Snapshots};
use crate::source::{self, Endpoint, FetchOptions};
use crate::view::{self, ClusterView, ViewOptions};

/// The data of one source for one run.
#[derive(Debug, Clone)]
pub struct SourceData {
    pub snapshot: Snapshot,
    /// Why the fetch failed, when this is the last good snapshot instead.
    pub fetch_error: Option<FetchFailure>,
}

/// Why a fetch gave no usable snapshot: the whole message for logs and
/// stderr, and a few fixed words for the MOTD's stale note, which must say
/// what happened ("the status page sent data of an unexpected shape") and
/// never quote upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFailure {
    pub message: String,
    pub note: &'static str,
}

impl FetchFailure {
    /// The note when nothing more is known than that the fetch failed.
    pub const GENERIC_NOTE: &'static str = "the status page could not be read";

    pub fn new(message: impl Into<String>, note: &'static str) -> Self {
        Self {
            message: message.into(),
            note,
        }
    }
}

impl From<String> for FetchFailure {
    fn from(message: String) -> Self {
        Self::new(message, Self::GENERIC_NOTE)
    }
}

impl From<&source::FetchError> for FetchFailure {
    fn from(e: &source::FetchError) -> Self {
        Self::new(format!("{e:#}"), e.note())
    }
}

impl std::fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What gathering found: data per source, and the sources with none at all.
#[derive(Debug, Default)]
pub struct Gathered {
    pub sources: BTreeMap<String, SourceData>,
    /// Source name -> why there is no data.
    pub missing: BTreeMap<String, String>,
    /// The ids each cluster's entries last resolved to, for entries that no
    /// longer resolve (see [`crate::mapping::resolve_with_known`]).
    pub known: KnownIds,
}

/// The fetch settings of `config`.
pub fn fetch_options(config: &Config, now: Timestamp) -> FetchOptions {
    FetchOptions {
        timeout: std::time::Duration::try_from(config.settings.request_timeout)
            .unwrap_or(std::time::Duration::from_secs(10)),
        retries: config.settings.retries,
        resolved_since: now.checked_sub(config.settings.recent_resolved).ok(),
        ..FetchOptions::default()
    }
}

/// The endpoint of a configured source; reveals its secret.
pub fn endpoint(source: &SourceConfig) -> Result<Endpoint> {
    Ok(match &source.kind {
        SourceKind::Manage {
            page_id,
            api_key,
            api_base,
        } => Endpoint::Manage {
            api_base: api_base.clone(),
            page_id: page_id.clone(),
            api_key: api_key.reveal(&format!("the `api_key` of source `{}`", source.name))?,
        },
        SourceKind::Public { url } => Endpoint::Public { url: url.clone() },
    })
}

/// Fetches `names` concurrently. Secrets are revealed first, so a missing one
/// is a configuration error before any request is made. Items a source had
/// to skip are said on stderr.
pub async fn fetch_sources(
    config: &Config,
    names: &[String],
    opts: &FetchOptions,
) -> Result<BTreeMap<String, std::result::Result<Snapshot, String>>> {
    Ok(fetch_sources_failing(config, names, opts)
        .await?
        .into_iter()
        .map(|(name, r)| (name, r.map_err(|e| e.message)))
        .collect())
}

async fn fetch_sources_failing(
    config: &Config,
    names: &[String],
    opts: &FetchOptions,
) -> Result<BTreeMap<String, std::result::Result<Snapshot, FetchFailure>>> {
    let client = source::client();
    let mut tasks = tokio::task::JoinSet::new();
    for name in names {
        let Some(src) = config.sources.get(name) else {
            continue;
        };
        let endpoint = endpoint(src)?;
        let (client, opts, name) = (client.clone(), opts.clone(), name.clone());
        tasks.spawn(async move {
            let result = source::fetch_reporting(&client, &endpoint, &opts).await;
            let result = match result {
                Ok(fetched) => {
                    for s in &fetched.skipped {
                        eprintln!("warning: source `{name}`: {s}");
                    }
                    Ok(fetched.snapshot)
                }
                Err(e) => Err(FetchFailure::new(e.to_string(), e.note())),
            };
            (name, result)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (name, result) =
            joined.map_err(|e| Error::Runtime(format!("fetch task failed: {e}")))?;
        out.insert(name, result);
    }
    Ok(out)
}

/// Fetches every source used by `clusters`; on failure falls back to the last
/// good snapshot in `state_dir`, saying so on stderr. Good fetches are kept
/// as the new last good snapshot unless `persist` is false.
pub async fn gather(
    config: &Config,
    clusters: &[&ClusterConfig],
    now: Timestamp,
    persist: bool,
) -> Result<Gathered> {
    let names: Vec<String> = clusters
        .iter()
        .map(|c| c.source.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let fetched = fetch_sources_failing(config, &names, &fetch_options(config, now)).await?;
    let state_dir = &config.settings.state_dir;
    let mut gathered = Gathered {
        known: KnownIds::load(state_dir),
        ..Gathered::default()
    };
    for (name, result) in fetched {
        let result = result.and_then(|snap| {
            // Only an empty fresh snapshot needs the last good one read.
            let last = if snap.components.is_empty() {
                snapshot::load_state(state_dir, &name).ok().flatten()
            } else {
                None
            };
            match suspicious_drop(&snap, last.as_ref()) {
                Some(why) => Err(FetchFailure::new(
                    format!(
                        "{why}\n  (if the page really has no components now, delete `{}`)",
                        snapshot::state_path(state_dir, &name).display()
                    ),
                    SUSPICIOUS_DROP_NOTE,
                )),
                None => Ok(snap),
            }
        });
        match result {
            Ok(snap) => {
                gathered.sources.insert(
                    name,
                    SourceData {
                        snapshot: snap,
                        fetch_error: None,
                    },
                );
            }
            Err(error) => match snapshot::load_state(state_dir, &name) {
                Ok(Some(snap)) => {
                    eprintln!(
                        "warning: source `{name}`: {error}\n  using the last good snapshot, fetched {} ({} ago)",
                        snap.fetched_at,
                        view::short_duration(now.duration_since(snap.fetched_at))
                    );
                    gathered.sources.insert(
                        name,
                        SourceData {
                            snapshot: snap,
                            fetch_error: Some(error),
                        },
                    );
                }
                Ok(None) => {
                    gathered.missing.insert(
                        name,
                        format!(
                            "{error}\n  and no earlier good snapshot is kept in `{}`",
                            state_dir.display()
                        ),
                    );
                }
                Err(e) => {
                    gathered.missing.insert(
                        name,
                        format!("{error}\n  and the last good snapshot cannot be used: {e}"),
                    );
                }
            },
        }
    }
    if persist {
        keep_good_snapshots(config, &gathered);
    }
    Ok(gathered)
}

/// Keeps each freshly fetched snapshot as its source's last good one in
/// `state_dir`. A failure is a warning: the render goes on, and the previous
/// good snapshot stays whole.
pub fn keep_good_snapshots(config: &Config, data: &Gathered) {
    for (name, source) in &data.sources {
        if source.fetch_error.is_none() {
            if let Err(e) = snapshot::save_state(&config.settings.state_dir, name, &source.snapshot)
            {
                eprintln!("warning: {e}");
            }
        }
    }
}

/// The stale note of a [`suspicious_drop`].
pub const SUSPICIOUS_DROP_NOTE: &str = "the status page listed no components";

/// Why a fresh snapshot must not replace `last_good`, if it must not: it
/// lists no component at all while the last good one listed some. A page
/// does not lose every component at once in earnest; an upstream that does
/// is broken (a half-migrated page, an API answering an empty list), and
/// rendering from it would erase every banner. Treated as a failed fetch, so
/// the last good data stays in use and the reason is said.
pub fn suspicious_drop(fresh: &Snapshot, last_good: Option<&Snapshot>) -> Option<String> {
    let last = last_good?;
    if !fresh.components.is_empty() || last.components.is_empty() {
        return None;
    }
    Some(format!(
        "upstream listed no components, while the last good snapshot listed {}: \
         a suspicious drop, treated as a failed fetch",
        last.components.len()
    ))
}

/// Keeps the ids every rendered cluster's entries resolved to in
/// `state_dir`, for when a name stops resolving. Clusters this plan did not
/// render keep theirs; clusters no longer configured lose theirs. A failure
/// is a warning, as for snapshots.
pub fn keep_known_ids(config: &Config, data: &Gathered, plan: &Plan) {
    let mut known = data.known.clone();
    known
        .clusters
        .retain(|name, _| config.clusters.contains_key(name));
    for (name, ids) in &plan.ids {
        known.clusters.insert(name.clone(), ids.clone());
    }
    if known != data.known {
        if let Err(e) = known.save(&config.settings.state_dir) {
            eprintln!("warning: {e}");
        }
    }
}

/// Data from a snapshot file instead of the network. A file holding one
/// snapshot serves a config with one source whatever its name.
pub fn from_file(config: &Config, path: &Path) -> Result<Gathered> {
    let mut snaps: Snapshots = snapshot::load(path)?;
    if snaps.len() == 1 && config.sources.len() == 1 {
        let only = snaps.pop_first().map(|(_, s)| s);
        let name = config.sources.keys().next().cloned();
        if let (Some(snap), Some(name)) = (only, name) {
            snaps.insert(name, snap);
        }
    }
    let mut gathered = Gathered::default();
    for name in config.sources.keys() {
        match snaps.remove(name) {
            Some(snapshot) => {
                gathered.sources.insert(
                    name.clone(),
                    SourceData {
                        snapshot,
                        fetch_error: None,
                    },
                );
            }
            None => {
                gathered.missing.insert(
                    name.clone(),
                    format!("snapshot `{}` holds no source `{name}`", path.display()),
                );
            }
        }
    }
    Ok(gathered)
}

/// The clusters `names` selects (all when empty); an unknown name is a usage
/// error listing the known ones.
pub fn select_clusters<'c>(config: &'c Config, names: &[String]) -> Result<Vec<&'c ClusterConfig>> {
    if names.is_empty() {
        return Ok(config.clusters.values().collect());
    }
    names
        .iter()
        .map(|n| {
            config.clusters.get(n).ok_or_else(|| {
                let known: Vec<String> = config.clusters.keys().map(|k| format!("`{k}`")).collect();
                Error::Usage(format!(
                    "no cluster `{n}` in `{}`\nhint: known clusters: {}",
                    config.path.display(),
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// The view of one cluster, or why there is none.
pub fn cluster_view(
    config: &Config,
    cluster: &ClusterConfig,
    data: &Gathered,
    now: Timestamp,
) -> Result<ClusterView> {
    let index = data
        .sources
        .get(&cluster.source)
        .map(|s| SnapshotIndex::new(&s.snapshot));
    cluster_view_indexed(config, cluster, data, index.as_ref(), now).map(|r| r.view)
}

/// A cluster's view, and how its entries resolved.
struct Resolved {
    view: ClusterView,
    ids: ClusterIds,
    warnings: Vec<String>,
}

/// [`cluster_view`] with the index of the cluster's snapshot at hand (when
/// there is a snapshot), built once for all the clusters of a plan.
fn cluster_view_indexed(
    config: &Config,
    cluster: &ClusterConfig,
    data: &Gathered,
    index: Option<&SnapshotIndex<'_>>,
    now: Timestamp,
) -> Result<Resolved> {
    let (Some(source), Some(index)) = (data.sources.get(&cluster.source), index) else {
        let why = data
            .missing
            .get(&cluster.source)
            .map_or("no data", String::as_str);
        return Err(Error::Runtime(format!(
            "cluster `{}`: no data from source `{}`: {why}",
            cluster.name, cluster.source
        )));
    };
    let resolution = crate::mapping::resolve_with_known(
        cluster,
        &source.snapshot,
        index,
        data.known.clusters.get(&cluster.name),
    )?;
    let selection = resolution.selection;
    let opts = ViewOptions {
        upcoming: config.settings.upcoming,
        recent_resolved: config.settings.recent_resolved,
        stale_after: config.settings.stale_after,
        page_wide: cluster.page_wide,
        timezone: config.timezone_for(cluster),
    };
    let mut v = view::build_indexed(
        &cluster.name,
        &cluster.source,
        &source.snapshot,
        index,
        &selection,
        &opts,
        now,
    );
    if let Some(failure) = &source.fetch_error {
        // The data is the last good snapshot: say so even before it is
        // stale, and why there is nothing newer.
        for s in &mut v.sources {
            s.stale = v.stale;
            s.error = Some(failure.note.to_owned());
        }
    }
    Ok(Resolved {
        view: v,
        ids: resolution.ids,
        warnings: resolution.warnings,
    })
}

/// One file to write.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Relative to the output directory.
    pub rel: PathBuf,
    pub bytes: Vec<u8>,
    /// Newest upstream change among the items in the file (mtime rule).
    pub newest: Option<Timestamp>,
}

/// Snippets written per cluster at most, in the order the MOTD shows the
/// items (open incidents first). A page with thousands of open items would
/// otherwise fill `items/` with thousands of files at every render; the MOTD
/// itself is capped at 64 KiB, so no reader gets that far anyway.
/// `index.json` says how many were left out.
pub const MAX_ITEM_FILES: usize = 100;

/// Everything one cluster renders to.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub view: ClusterView,
    pub files: Vec<PlannedFile>,
    /// Snippet file names to keep in `items/`.
    pub items: BTreeSet<String>,
    /// Items shown that got no snippet, over [`MAX_ITEM_FILES`].
    pub items_left_out: usize,
}

/// The files of every cluster that could be rendered, and the errors of those
/// that could not (their files are left as they are).
#[derive(Debug, Default)]
pub struct Plan {
    pub clusters: BTreeMap<String, ClusterPlan>,
    pub errors: Vec<Error>,
    /// Entries that no longer resolve and use the ids they last resolved
    /// to: the cluster is rendered, but the mapping wants a look.
    pub warnings: Vec<String>,
    /// Cluster -> what its entries resolved to, to keep for next time.
    pub ids: BTreeMap<String, ClusterIds>,
    /// Whether this plan covers every cluster of the configuration; then
    /// `index.json` is written from it alone.
    pub complete: bool,
}

/// Plans every file of `clusters`. Pure: reads nothing, writes nothing.
pub fn plan(
    config: &Config,
    renderer: &Renderer,
    clusters: &[&ClusterConfig],
    data: &Gathered,
    now: Timestamp,
) -> Plan {
    let mut plan = Plan {
        complete: clusters.len() == config.clusters.len(),
        ..Plan::default()
    };
    // One index per snapshot, shared by all the clusters that read it.
    let indexes: BTreeMap<&str, SnapshotIndex<'_>> = data
        .sources
        .iter()
        .map(|(name, s)| (name.as_str(), SnapshotIndex::new(&s.snapshot)))
        .collect();
    for cluster in clusters {
        let index = indexes.get(cluster.source.as_str());
        match plan_cluster(config, renderer, cluster, data, index, now) {
            Ok((p, ids, warnings)) => {
                plan.clusters.insert(cluster.name.clone(), p);
                plan.ids.insert(cluster.name.clone(), ids);
                plan.warnings.extend(warnings);
            }
            Err(e) => plan.errors.push(e),
        }
    }
    plan
}

fn plan_cluster(
    config: &Config,
    renderer: &Renderer,
    cluster: &ClusterConfig,
    data: &Gathered,
    index: Option<&SnapshotIndex<'_>>,
    now: Timestamp,
) -> Result<(ClusterPlan, ClusterIds, Vec<String>)> {
    let Resolved {
        view,
        ids,
        warnings,
    } = cluster_view_indexed(config, cluster, data, index, now)?;
    let dir = PathBuf::from(&cluster.name);
    let template = cluster.template.as_deref().unwrap_or("motd.txt.j2");
    let newest = view.newest_change();
    // The view becomes a template context once: per snippet, it cost as
    // much as the view, so a cluster cost its item count squared.
    let ctx = ViewContext::new(&view);
    let mut files = vec![PlannedFile {
        rel: dir.join("motd"),
        bytes: renderer.render_in(template, &ctx)?.into_bytes(),
        newest,
    }];
    let mut items = BTreeSet::new();
    let mut items_left_out = 0;
    for item in view.items() {
        let name = view::Item::file_name(item.kind, &item.id);
        if items.contains(&name) {
            continue;
        }
        if items.len() >= MAX_ITEM_FILES {
            items_left_out += 1;
            continue;
        }
        files.push(PlannedFile {
            rel: dir.join("items").join(&name),
            bytes: renderer.render_item_in(&ctx, item)?.into_bytes(),
            newest: item.last_change,
        });
        items.insert(name);
    }
    for extra in &config.outputs {
        files.push(PlannedFile {
            rel: PathBuf::from(extra.path.replace("{cluster}", &cluster.name)),
            bytes: renderer.render_in(&extra.template, &ctx)?.into_bytes(),
            newest,
        });
    }
    Ok((
        ClusterPlan {
            view,
            files,
            items,
            items_left_out,
        },
        ids,
        warnings,
    ))
}

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub path: String,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Removed,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match self.action {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Removed => "removed",
        };
        write!(f, "{verb} {}", self.path)
    }
}

impl Change {
    /// The change as `render --check` reports it: "would create archer2/motd".
    pub fn planned(&self) -> String {
        let verb = match self.action {
            Action::Created => "create",
            Action::Updated => "update",
            Action::Removed => "remove",
        };
        format!("would {verb} {}", self.path)
    }

    /// The cluster a change belongs to (the first path component), if any.
    pub fn cluster(&self) -> Option<&str> {
        self.path.split_once('/').map(|(c, _)| c)
    }
}

/// Writes the plan under `dir`, then `index.json`. Takes the output lock for
/// the whole run, so overlapping runs do not interleave.
pub fn apply(plan: &Plan, dir: &Path, now: Timestamp) -> Result<Vec<Change>> {
    let out = OutputDir::open(dir)?;
    let mut changes = Vec::new();
    for (name, cluster) in &plan.clusters {
        for file in &cluster.files {
            let written = out.write(&file.rel, &file.bytes, file.newest, now)?;
            if let Some(action) = action_of(written) {
                changes.push(Change {
                    path: display_rel(&file.rel),
                    action,
                });
            }
        }
        for removed in out.prune_items(name, &cluster.items)? {
            changes.push(Change {
                path: display_rel(&removed),
                action: Action::Removed,
            });
        }
    }
    let index = index_json(plan, &out.peek()?);
    let written = out.write(Path::new("index.json"), index.as_bytes(), None, now)?;
    if let Some(action) = action_of(written) {
        changes.push(Change {
            path: "index.json".into(),
            action,
        });
    }
    Ok(changes)
}

/// The changes `apply` would make, without writing anything. It looks at
/// `dir` by the same rules, so what `apply` would refuse (a symlinked
/// directory inside `dir`) is refused here too, with the same error.
pub fn check(plan: &Plan, dir: &Path) -> Result<Vec<Change>> {
    let peek = output::Peek::open(dir)?;
    let mut changes = Vec::new();
    for (name, cluster) in &plan.clusters {
        for file in &cluster.files {
            if let Some(action) = action_of(peek.would_write(&file.rel, &file.bytes)?) {
                changes.push(Change {
                    path: display_rel(&file.rel),
                    action,
                });
            }
        }
        for removed in peek.would_prune(name, &cluster.items)? {
            changes.push(Change {
                path: display_rel(&removed),
                action: Action::Removed,
            });
        }
    }
    let index = index_json(plan, &peek);
    if let Some(action) = action_of(peek.would_write(Path::new("index.json"), index.as_bytes())?) {
        changes.push(Change {
            path: "index.json".into(),
            action,
        });
    }
    Ok(changes)
}

fn action_of(w: Written) -> Option<Action> {
    match w {
        Written::Created => Some(Action::Created),
        Written::Updated => Some(Action::Updated),
        Written::Unchanged => None,
    }
}

fn display_rel(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

/// `index.json`: every cluster's status, items, files and their mtimes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    pub clusters: BTreeMap<String, IndexEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexEntry {
    pub status: String,
    pub stale: bool,
    pub source: String,
    pub items: Vec<IndexItem>,
    /// Items shown but not in `items` and without a snippet: those past the
    /// first [`MAX_ITEM_FILES`].
    #[serde(default)]
    pub items_left_out: usize,
    /// Path (relative to the output directory) -> mtime.
    pub files: BTreeMap<String, Option<Timestamp>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexItem {
    pub kind: String,
    pub id: String,
    pub name: String,
    pub status: String,
    pub file: String,
}

/// Builds `index.json`, keeping the entries of clusters this plan did not
/// render (`render --cluster`), so the index always covers every cluster.
fn index_json(plan: &Plan, dir: &output::Peek) -> String {
    // A partial plan (`--cluster`, or clusters that failed) keeps the other
    // clusters' entries; a complete one also drops clusters no longer
    // configured.
    let mut index: Index = if plan.complete && plan.errors.is_empty() {
        Index::default()
    } else {
        dir.read(Path::new("index.json"))
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    };
    for (name, cluster) in &plan.clusters {
        let v = &cluster.view;
        let files = cluster
            .files
            .iter()
            .map(|f| (display_rel(&f.rel), dir.mtime(&f.rel)))
            .collect();
        let items = v
            .items()
            .filter(|i| {
                cluster
                    .items
                    .contains(&view::Item::file_name(i.kind, &i.id))
            })
            .map(|i| IndexItem {
                kind: i.kind.as_str().to_owned(),
                id: i.id.clone(),
                name: i.name.clone(),
                status: i.status.clone(),
                file: format!("{name}/{}", i.file),
            })
            .collect();
        index.clusters.insert(
            name.clone(),
            IndexEntry {
                status: v.status.as_str().to_owned(),
                stale: v.stale,
                source: v
                    .sources
                    .first()
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                items,
                items_left_out: cluster.items_left_out,
                files,
            },
        );
    }
    let mut text = serde_json::to_string_pretty(&index).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Component, ComponentStatus, Page};

    fn snap(components: usize) -> Snapshot {
        Snapshot {
            page: Page {
                id: "p".into(),
                name: "p".into(),
                url: None,
            },
            fetched_at: "2025-06-01T12:00:00Z".parse().unwrap(),
            components: (0..components)
                .map(|i| Component {
                    id: format!("c{i}"),
                    name: format!("C{i}"),
                    status: ComponentStatus::Operational,
                    group_id: None,
                    description: None,
                    updated_at: None,
                })
                .collect(),
            groups: Vec::new(),
            incidents: Vec::new(),
        }
    }

    #[test]
    fn an_empty_component_list_after_a_full_one_is_a_suspicious_drop() {
        let why = suspicious_drop(&snap(0), Some(&snap(3))).unwrap();
        assert!(why.contains("no components"), "{why}");
        assert!(why.contains("listed 3"), "{why}");
    }

    #[test]
    fn fewer_components_or_no_history_is_not_a_drop() {
        assert_eq!(suspicious_drop(&snap(0), None), None, "first fetch ever");
        assert_eq!(suspicious_drop(&snap(0), Some(&snap(0))), None);
        assert_eq!(suspicious_drop(&snap(1), Some(&snap(40))), None);
        assert_eq!(suspicious_drop(&snap(5), Some(&snap(3))), None);
    }
}
