//! The one-shot pipeline shared by `render`, `show`, `gate` and `serve`:
//! gather snapshots (fetch, falling back to the last good one), then plan every
//! file from (snapshots, config, now), then apply the plan to the output
//! directory.
//!
//! Planning is pure, so `render --check`, `show` and the server's status
//! endpoints see exactly what `render` would write.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::calendar;
use crate::config::{ClusterConfig, Config};
use crate::error::{Error, Result};
use crate::mapping::{ClusterIds, KnownIds};
use crate::model::{IndexKeys, Snapshot, SnapshotIndex};
use crate::output::{self, FileState, Kind, OutputDir, Written};
use crate::render::{ItemTexts, Renderer, ViewContext};
use crate::snapshot::{self, Snapshots};
use crate::source::{self, Endpoint, FetchOptions};
pub use crate::store::{suspicious_drop, FetchResult, SUSPICIOUS_DROP_NOTE};
use crate::store::{Event, Store};
use crate::view::{self, ClusterView, ViewOptions};

/// The data of one source for one run. The snapshot is shared with the
/// store that holds it (and, in `serve`, with the data of the last render),
/// so handing it to a plan copies nothing.
#[derive(Debug, Clone)]
pub struct SourceData {
    pub snapshot: Arc<Snapshot>,
    /// Why the fetch failed, when this is the last good snapshot instead.
    pub fetch_error: Option<FetchFailure>,
}

/// Why a fetch gave no usable snapshot: the whole message for logs and
/// stderr, a few fixed words for the MOTD's stale note, which must say
/// what happened ("the status page sent data of an unexpected shape") and
/// never quote upstream, and what kind of failure it is, which decides
/// whether waiting can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFailure {
    pub message: String,
    pub note: &'static str,
    pub kind: FailureKind,
}

/// What kind of failure a [`FetchFailure`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureKind {
    /// May pass by itself: a server error, a timeout, a broken connection.
    #[default]
    Transient,
    /// Can never succeed by retrying: the key was rejected, the page is
    /// gone. `render` exits 1 for it; `serve` reports it in `/readyz`.
    Permanent,
    /// The page keeps saying "too many requests".
    RateLimited,
    /// The page answered, with something that is not a status page's data
    /// (not JSON, an unexpected shape, too large, a suspicious drop).
    BadAnswer,
}

impl FailureKind {
    /// The kind as a fixed word, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Permanent => "permanent",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::BadAnswer => "bad_answer",
        }
    }
}

impl FetchFailure {
    /// The note when nothing more is known than that the fetch failed.
    pub const GENERIC_NOTE: &'static str = "the status page could not be read";

    pub fn new(message: impl Into<String>, note: &'static str) -> Self {
        Self {
            message: message.into(),
            note,
            kind: FailureKind::Transient,
        }
    }

    #[must_use]
    pub fn with_kind(mut self, kind: FailureKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn is_permanent(&self) -> bool {
        self.kind == FailureKind::Permanent
    }

    /// `error` as a failure, its message with (`hint`) or without its hint
    /// line.
    pub fn of(error: &source::FetchError, hint: bool) -> Self {
        use source::FetchErrorKind as K;
        let kind = if error.is_permanent() {
            FailureKind::Permanent
        } else {
            match error.kind() {
                K::RateLimited => FailureKind::RateLimited,
                K::InvalidJson | K::UnexpectedShape | K::TooLarge => FailureKind::BadAnswer,
                _ => FailureKind::Transient,
            }
        };
        let message = if hint {
            format!("{error:#}")
        } else {
            error.to_string()
        };
        Self {
            message,
            note: error.note(),
            kind,
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
        Self::of(e, true)
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
    /// longer resolve (see [`crate::mapping::resolve_with_known`]). Shared:
    /// `serve` keeps it in memory between renders.
    pub known: Arc<KnownIds>,
    /// What each cluster's calendar last said (see [`crate::calendar`]).
    pub calendar: Arc<calendar::Memory>,
    /// Source name -> the index keys of its snapshot, where they are kept
    /// with it, built by the first plan that reads it (`serve` builds them
    /// once per fetched snapshot); the others are indexed by each plan.
    pub indexes: BTreeMap<String, Arc<OnceLock<IndexKeys>>>,
}

impl Gathered {
    /// The index of the snapshot of source `name`: from the keys kept with
    /// it, or built now.
    pub fn index(&self, name: &str) -> Option<SnapshotIndex<'_>> {
        let s = self.sources.get(name)?;
        Some(match self.indexes.get(name) {
            Some(keys) => SnapshotIndex::with_keys(
                &s.snapshot,
                keys.get_or_init(|| IndexKeys::new(&s.snapshot)),
            ),
            None => SnapshotIndex::new(&s.snapshot),
        })
    }
}

/// The fetch settings of `config`.
pub fn fetch_options(config: &Config, now: Timestamp) -> FetchOptions {
    FetchOptions {
        timeout: std::time::Duration::try_from(config.settings.request_timeout)
            .unwrap_or(std::time::Duration::from_secs(10)),
        retries: config.settings.retries,
        resolved_since: now.checked_sub(config.settings.recent_resolved).ok(),
        withheld_env: std::sync::Arc::new(config.secret_env_vars()),
        ..FetchOptions::default()
    }
}

/// Fetches `names` concurrently. Secrets are revealed first, so a missing one
/// is a configuration error before any request is made. Each result keeps
/// its failure typed, and a good one the items its source had to skip.
pub async fn fetch_sources(
    config: &Config,
    names: &[String],
    opts: &FetchOptions,
) -> Result<BTreeMap<String, FetchResult>> {
    let client = source::client();
    let mut tasks = tokio::task::JoinSet::new();
    for name in names {
        let Some(src) = config.sources.get(name) else {
            continue;
        };
        let endpoint = Endpoint::of(src)?;
        let (client, opts, name) = (client.clone(), opts.clone(), name.clone());
        tasks.spawn(async move {
            let result = source::fetch_reporting(&client, &endpoint, &opts)
                .await
                .map(|fetched| (fetched.snapshot, fetched.skipped))
                .map_err(|e| FetchFailure::of(&e, false));
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

/// What [`gather`] found: the data, the store it came from (to persist the
/// good snapshots once the files are written), and what happened on the
/// way, for the caller to say.
#[derive(Debug)]
pub struct Gather {
    pub data: Gathered,
    pub store: Store,
    pub events: Vec<Event>,
}

/// Fetches every source used by `clusters` and hands the results to the
/// snapshot store, which falls back to the last good snapshot in
/// `state_dir` on failure. Good fetches are kept as the new last good
/// snapshots only when `persist` is true; otherwise call
/// [`Store::persist`] on the returned store.
pub async fn gather(
    config: &Config,
    clusters: &[&ClusterConfig],
    now: Timestamp,
    persist: bool,
) -> Result<Gather> {
    let names: Vec<String> = clusters
        .iter()
        .flat_map(|c| c.sources())
        .map(str::to_owned)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let fetched = fetch_sources(config, &names, &fetch_options(config, now)).await?;
    let state_dir = &config.settings.state_dir;
    let mut store = Store::new(state_dir);
    let mut events = Vec::new();
    for (name, result) in fetched {
        events.extend(store.accept(&name, result, now));
    }
    if persist {
        events.extend(store.persist());
    }
    let mut data = store.gathered(&names, KnownIds::load(state_dir));
    data.calendar = Arc::new(calendar::Memory::load(state_dir));
    Ok(Gather {
        data,
        store,
        events,
    })
}

/// Keeps the ids every rendered cluster's entries resolved to in
/// `state_dir`, for when a name stops resolving. Clusters this plan did not
/// render keep theirs; clusters no longer configured lose theirs. Returns
/// why they could not be kept, a warning for the caller to say.
pub fn keep_known_ids(config: &Config, data: &Gathered, plan: &Plan) -> Option<String> {
    let known = known_ids_after(config, &data.known, plan)?;
    known
        .save(&config.settings.state_dir)
        .err()
        .map(|e| e.to_string())
}

/// The ids to keep after `plan`, from those kept before (`was`): `None`
/// when they are the same. See [`keep_known_ids`].
pub fn known_ids_after(config: &Config, was: &KnownIds, plan: &Plan) -> Option<KnownIds> {
    let mut known = was.clone();
    known
        .clusters
        .retain(|name, _| config.clusters.contains_key(name));
    known
        .also
        .retain(|name, _| config.clusters.contains_key(name));
    for (name, ids) in &plan.ids {
        known.clusters.insert(name.clone(), ids.clone());
        // A cluster that no longer reads a further source forgets it.
        match plan.also_ids.get(name) {
            Some(also) => known.also.insert(name.clone(), also.clone()),
            None => known.also.remove(name),
        };
    }
    (known != *was).then_some(known)
}

/// Keeps what every rendered cluster's calendar said in `state_dir`, once
/// the files are written, so the next render knows which events changed
/// (their `SEQUENCE` rises) and which left (they stay cancelled for a
/// while). Clusters this plan did not render keep theirs; clusters no
/// longer configured lose theirs. Returns why it could not be kept, a
/// warning for the caller to say.
pub fn keep_calendar(config: &Config, data: &Gathered, plan: &Plan) -> Option<String> {
    let memory = calendar_after(config, &data.calendar, plan)?;
    memory
        .save(&config.settings.state_dir)
        .err()
        .map(|e| e.to_string())
}

/// What the calendars remember after `plan`, from what they did before
/// (`was`): `None` when it is the same. See [`keep_calendar`].
pub fn calendar_after(
    config: &Config,
    was: &calendar::Memory,
    plan: &Plan,
) -> Option<calendar::Memory> {
    let mut memory = was.clone();
    memory
        .clusters
        .retain(|name, _| config.clusters.contains_key(name));
    for (name, cluster) in &plan.clusters {
        if cluster.calendar.is_empty() {
            memory.clusters.remove(name);
        } else {
            memory
                .clusters
                .insert(name.clone(), cluster.calendar.clone());
        }
    }
    (memory != *was).then_some(memory)
}

/// Data from a snapshot file instead of the network. A file holding one
/// snapshot serves a config with one source whatever its name.
pub fn from_file(config: &Config, path: &Path) -> Result<Gathered> {
    Ok(from_snapshots(config, snapshot::load(path)?, path))
}

/// Data from the snapshots parsed from the file at `path`.
pub fn from_snapshots(config: &Config, mut snaps: Snapshots, path: &Path) -> Gathered {
    if snaps.len() == 1 && config.sources.len() == 1 {
        let only = snaps.pop_first().map(|(_, s)| s);
        let name = config.sources.keys().next().cloned();
        if let (Some(snap), Some(name)) = (only, name) {
            snaps.insert(name, snap);
        }
    }
    // The calendars go on from what they last said, whatever the data.
    let mut gathered = Gathered {
        calendar: Arc::new(calendar::Memory::load(&config.settings.state_dir)),
        ..Gathered::default()
    };
    for name in config.sources.keys() {
        match snaps.remove(name) {
            Some(snapshot) => {
                gathered.sources.insert(
                    name.clone(),
                    SourceData {
                        snapshot: Arc::new(snapshot),
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
    gathered
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

/// The view of one cluster over all its sources, or why there is none.
pub fn cluster_view(
    config: &Config,
    cluster: &ClusterConfig,
    data: &Gathered,
    now: Timestamp,
) -> Result<ClusterView> {
    let indexes: BTreeMap<&str, SnapshotIndex<'_>> = cluster
        .sources()
        .filter_map(|name| data.index(name).map(|index| (name, index)))
        .collect();
    cluster_view_indexed(config, cluster, data, &indexes, now).map(|(view, _)| view)
}

/// How a cluster's entries resolved.
struct Resolved {
    /// The primary source's entries.
    ids: ClusterIds,
    /// Each further source's entries.
    also_ids: BTreeMap<String, ClusterIds>,
    warnings: Vec<String>,
}

/// [`cluster_view`] with the indexes of the snapshots at hand, built once
/// for all the clusters of a plan. Each of the cluster's sources is
/// resolved and viewed on its own, then the views are merged; a source
/// without any data (not even a last good snapshot) fails the cluster, whose
/// files then stay as they are.
fn cluster_view_indexed(
    config: &Config,
    cluster: &ClusterConfig,
    data: &Gathered,
    indexes: &BTreeMap<&str, SnapshotIndex<'_>>,
    now: Timestamp,
) -> Result<(ClusterView, Resolved)> {
    let mut views = Vec::new();
    let mut ids = ClusterIds::default();
    let mut also_ids = BTreeMap::new();
    let mut warnings = Vec::new();
    for (n, part) in cluster.parts().iter().enumerate() {
        let primary = n == 0;
        let (Some(source), Some(index)) = (
            data.sources.get(&part.source),
            indexes.get(part.source.as_str()),
        ) else {
            let why = data
                .missing
                .get(&part.source)
                .map_or("no data", String::as_str);
            return Err(Error::Runtime(format!(
                "cluster `{}`: no data from source `{}`: {why}",
                cluster.name, part.source
            )));
        };
        let known = if primary {
            data.known.clusters.get(&cluster.name)
        } else {
            data.known
                .also
                .get(&cluster.name)
                .and_then(|a| a.get(&part.source))
        };
        let resolution = crate::mapping::resolve_with_known(part, &source.snapshot, index, known)?;
        let opts = ViewOptions {
            upcoming: config.settings.upcoming,
            recent_resolved: config.settings.recent_resolved,
            stale_after: config.settings.stale_after,
            page_wide: part.page_wide,
            timezone: config.timezone_for(cluster),
        };
        let mut v = view::build_indexed(
            &cluster.name,
            &part.source,
            &source.snapshot,
            index,
            &resolution.selection,
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
        if config
            .sources
            .get(&part.source)
            .is_some_and(|s| s.kind.holds_jobs())
        {
            for item in v
                .maintenance
                .active
                .iter_mut()
                .chain(&mut v.maintenance.upcoming)
            {
                item.hold_jobs();
            }
        }
        if !primary {
            for item in v
                .incidents
                .iter_mut()
                .chain(&mut v.maintenance.active)
                .chain(&mut v.maintenance.upcoming)
                .chain(&mut v.resolved)
            {
                item.mark_further_source();
            }
        }
        if primary {
            ids = resolution.ids;
        } else {
            also_ids.insert(part.source.clone(), resolution.ids);
        }
        warnings.extend(resolution.warnings);
        views.push(v);
    }
    crate::source::probes::maintenance_wins(&mut views, |name| {
        config
            .sources
            .get(name)
            .is_some_and(|s| matches!(s.kind, crate::config::SourceKind::Probes(_)))
    });
    let view = ClusterView::merge(views)
        .ok_or_else(|| Error::Runtime(format!("cluster `{}` reads no source", cluster.name)))?;
    Ok((
        view,
        Resolved {
            ids,
            also_ids,
            warnings,
        },
    ))
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
    /// What the cluster's calendar says, to remember for next time.
    pub calendar: calendar::ClusterMemory,
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
    /// Cluster -> further source -> what its entries there resolved to.
    pub also_ids: BTreeMap<String, BTreeMap<String, ClusterIds>>,
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
    let indexes = indexes(data);
    let mut made = ItemTexts::default();
    for cluster in clusters {
        match plan_cluster(config, renderer, cluster, data, &indexes, now, &mut made) {
            Ok((p, resolved)) => {
                plan.clusters.insert(cluster.name.clone(), p);
                plan.ids.insert(cluster.name.clone(), resolved.ids);
                if !resolved.also_ids.is_empty() {
                    plan.also_ids
                        .insert(cluster.name.clone(), resolved.also_ids);
                }
                plan.warnings.extend(resolved.warnings);
            }
            Err(e) => plan.errors.push(e),
        }
    }
    plan
}

/// One index per snapshot, shared by all the clusters that read it.
fn indexes(data: &Gathered) -> BTreeMap<&str, SnapshotIndex<'_>> {
    data.sources
        .keys()
        .filter_map(|name| data.index(name).map(|index| (name.as_str(), index)))
        .collect()
}

/// Writes the MOTDs of `clusters` alone, ahead of their [`plan`]: a webhook
/// preview's way to the login banner, before the snippets, calendars and
/// `index.json`, which `plan` and [`apply`] then write as always, finding
/// these MOTDs as planned (the same data at the same `now`: the same bytes
/// and mtime). A cluster that cannot be rendered is skipped here, for the
/// plan to report. Returns the changes made, which `apply` will not see
/// again.
pub fn write_motds_first(
    config: &Config,
    renderer: &Renderer,
    clusters: &[&ClusterConfig],
    data: &Gathered,
    dir: &Path,
    now: Timestamp,
) -> Vec<Change> {
    let Ok(out) = OutputDir::open(dir) else {
        return Vec::new();
    };
    let indexes = indexes(data);
    let mut made = ItemTexts::default();
    let mut changes = Vec::new();
    for cluster in clusters {
        let Ok((view, _)) = cluster_view_indexed(config, cluster, data, &indexes, now) else {
            continue;
        };
        let ctx = ViewContext::new(&view);
        let Ok(motd) = motd_file(renderer, cluster, &view, &ctx, &mut made) else {
            continue;
        };
        if let Some(action) = out
            .write(&motd.rel, &motd.bytes, motd.newest, now)
            .ok()
            .and_then(action_of)
        {
            changes.push(Change {
                path: display_rel(&motd.rel),
                action,
            });
        }
    }
    changes
}

/// The MOTD of `cluster`, its view made a template context as `ctx`.
fn motd_file(
    renderer: &Renderer,
    cluster: &ClusterConfig,
    view: &ClusterView,
    ctx: &ViewContext<'_>,
    made: &mut ItemTexts,
) -> Result<PlannedFile> {
    let template = cluster.template.as_deref().unwrap_or("motd.txt.j2");
    Ok(PlannedFile {
        rel: Path::new(&cluster.name).join("motd"),
        bytes: renderer.render_kept(template, ctx, made)?.into_bytes(),
        newest: view.newest_change(),
    })
}

fn plan_cluster(
    config: &Config,
    renderer: &Renderer,
    cluster: &ClusterConfig,
    data: &Gathered,
    indexes: &BTreeMap<&str, SnapshotIndex<'_>>,
    now: Timestamp,
    made: &mut ItemTexts,
) -> Result<(ClusterPlan, Resolved)> {
    let (view, resolved) = cluster_view_indexed(config, cluster, data, indexes, now)?;
    let dir = PathBuf::from(&cluster.name);
    let newest = view.newest_change();
    // The view becomes a template context once: per snippet, it cost as
    // much as the view, so a cluster cost its item count squared.
    let ctx = ViewContext::new(&view);
    let mut files = vec![motd_file(renderer, cluster, &view, &ctx, made)?];
    let mut items = BTreeSet::new();
    let mut items_left_out = 0;
    for item in view.items() {
        let name = item.snippet_name().to_owned();
        if items.contains(&name) {
            continue;
        }
        if items.len() >= MAX_ITEM_FILES {
            items_left_out += 1;
            continue;
        }
        files.push(PlannedFile {
            rel: dir.join("items").join(&name),
            bytes: renderer.render_item_kept(&ctx, item, made)?.into_bytes(),
            newest: item.last_change,
        });
        items.insert(name);
    }
    let cal = calendar::render(
        &view,
        data.calendar.clusters.get(&cluster.name),
        config.settings.recent_resolved,
    );
    files.push(PlannedFile {
        rel: dir.join(calendar::FILE_NAME),
        bytes: cal.bytes,
        newest: cal.newest,
    });
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
            calendar: cal.memory,
        },
        resolved,
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
    write_plan(plan, &OutputDir::open(dir)?, now)
}

fn write_plan(plan: &Plan, out: &OutputDir, now: Timestamp) -> Result<Vec<Change>> {
    let none = KnownFiles::new();
    let mut changes = Vec::new();
    let mut seen = Seen::new();
    for (name, cluster) in &plan.clusters {
        let written = write_cluster(name, cluster, out, now, &none)?;
        changes.extend(written.changes);
        seen.insert(name.clone(), written.seen);
    }
    let index = index_json(plan, &out.peek()?, &seen, &BTreeMap::new());
    let (change, _) = write_index(&index, out, now, None)?;
    changes.extend(change);
    Ok(changes)
}

const INDEX_FILE: &str = "index.json";

/// A digest of a file's bytes: the first half of their [`crate::hash`].
pub type Digest = [u8; 16];

pub fn digest(bytes: &[u8]) -> Digest {
    let full = crate::hash::of(bytes);
    let mut d = [0; 16];
    d.copy_from_slice(&full[..16]);
    d
}

/// The [`digest`] of the snippet names a cluster's `items/` holds.
pub fn names_digest(names: &BTreeSet<String>) -> Digest {
    let mut all = String::new();
    for name in names {
        all.push_str(name);
        all.push('\n');
    }
    digest(all.as_bytes())
}

/// Files an earlier render left (relative to the output directory): the
/// state it left each in and the [`digest`] of its bytes. A file still in
/// that state holds those bytes, so one whose new bytes have the same
/// digest needs a `stat`, not a read (see [`OutputDir::write_left`]).
pub type KnownFiles = HashMap<String, (FileState, Digest)>;

/// A file a render wrote, or found as planned, as it left it.
#[derive(Debug, Clone)]
pub struct LeftFile {
    /// Relative to the output directory.
    pub rel: PathBuf,
    pub state: Option<FileState>,
    pub digest: Digest,
}

/// What [`plan_and_write`] made.
#[derive(Debug)]
pub struct Rendered {
    /// The plan, its files' bytes dropped once written.
    pub plan: Plan,
    /// The changes, or the first write error in cluster order.
    pub outcome: Result<Vec<Change>>,
    /// Every file planned and `index.json`, as left (when the outcome is
    /// a success).
    pub left: Vec<LeftFile>,
    /// Each cluster's directory and its `items/`, as left; the digest of
    /// `items/` is that of the snippet names it holds ([`names_digest`]).
    pub dirs: Vec<LeftFile>,
}

/// Clusters planned and written as one piece of work.
const CHUNK: usize = 16;

/// [`plan`], then [`apply`], cluster by cluster on up to two threads:
/// each cluster's files are compared and written as soon as they are
/// planned, and their bytes dropped, so the whole plan's bytes are never
/// held at once. Changes come in the order [`apply`] gives them (by
/// cluster name), and a write error stops the work after the clusters
/// before it, as [`apply`] does.
///
/// Over [`OutputDir::dry_run`] this is `render --check`: every decision
/// taken by the same code, and what a real run would refuse (a symlinked
/// directory inside the output) refused with the same error.
///
/// Each cluster's entry of `index.json` is made on the same threads. Without
/// `views`, the plan's views are emptied once that is done: a render that
/// sends no notification does not read them again.
#[allow(clippy::too_many_arguments)]
pub fn plan_and_write(
    config: &Config,
    renderer: &Renderer,
    clusters: &[&ClusterConfig],
    data: &Gathered,
    out: &OutputDir,
    now: Timestamp,
    known: KnownFiles,
    views: bool,
) -> Rendered {
    let mut order = clusters.to_vec();
    order.sort_by(|a, b| a.name.cmp(&b.name));
    order.dedup_by(|a, b| a.name == b.name);
    let chunks: Vec<&[&ClusterConfig]> = order.chunks(CHUNK).collect();
    let indexes = indexes(data);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let work = || {
        let mut parts = Vec::new();
        // Item files and MOTD blocks that clusters share, kept by each
        // thread for its own.
        let mut made = ItemTexts::default();
        while !stop.load(Ordering::Relaxed) {
            let at = next.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = chunks.get(at) else {
                break;
            };
            let part = write_chunk(
                config, renderer, chunk, data, &indexes, out, now, &known, views, &mut made,
            );
            if part.failed.is_some() {
                // The chunks before this one were all handed out already
                // and finish; none after it starts.
                stop.store(true, Ordering::Relaxed);
            }
            parts.push((at, part));
        }
        parts
    };
    let two = chunks.len() > 1 && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let mut parts = std::thread::scope(|scope| {
        let other = two.then(|| scope.spawn(work));
        let mut parts = work();
        if let Some(other) = other {
            parts.extend(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        parts
    });
    parts.sort_by_key(|(at, _)| *at);
    // Dropped before `index.json` is made, the largest allocation of a
    // render's end.
    let index_known = known.get(INDEX_FILE).copied();
    drop(known);

    let complete = clusters.len() == config.clusters.len();
    // A complete plan's `index.json` is its entries, already made: written
    // on a second thread while the plan is put together from the parts.
    // Any other is merged with the one on disk, after.
    let entries: BTreeMap<String, String> = parts
        .iter_mut()
        .flat_map(|(_, part)| std::mem::take(&mut part.entries))
        .collect();
    let made = complete
        && parts
            .iter()
            .all(|(_, part)| part.errors.is_empty() && part.failed.is_none())
        && entries.len() == parts.iter().map(|(_, p)| p.planned.len()).sum::<usize>();
    let write_made = || {
        out.peek()
            .and_then(|_| write_index(&index_of_entries(&entries), out, now, index_known.as_ref()))
    };
    let (whole, written) = std::thread::scope(|scope| {
        let writing = (made && two).then(|| scope.spawn(write_made));
        let whole = Whole::of(parts, complete, order.len());
        let written = match writing {
            Some(thread) => Some(
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            ),
            None => made.then(write_made),
        };
        (whole, written)
    });
    let Whole {
        plan,
        mut changes,
        mut left,
        dirs,
        seen,
        failed,
    } = whole;
    let outcome = match (failed, written) {
        (Some(e), _) => Err(e),
        (None, Some(written)) => written,
        (None, None) => {
            let seen: Seen = seen.into_iter().collect();
            out.peek()
                .map(|dir| index_json(&plan, &dir, &seen, &entries))
                .and_then(|index| write_index(&index, out, now, index_known.as_ref()))
        }
    }
    .map(|(change, file)| {
        changes.extend(change);
        left.push(file);
        changes
    });
    Rendered {
        plan,
        outcome,
        left,
        dirs,
    }
}

/// The parts of [`plan_and_write`] put together, in cluster order; what
/// follows a part that failed to write is planned, not written.
struct Whole {
    plan: Plan,
    changes: Vec<Change>,
    left: Vec<LeftFile>,
    dirs: Vec<LeftFile>,
    seen: Vec<(String, Vec<Option<Timestamp>>)>,
    failed: Option<Error>,
}

impl Whole {
    fn of(parts: Vec<(usize, Part)>, complete: bool, clusters: usize) -> Self {
        let mut plan = Plan {
            complete,
            ..Plan::default()
        };
        let mut changes = Vec::new();
        let mut left = Vec::with_capacity(parts.iter().map(|(_, p)| p.left.len()).sum());
        let mut dirs = Vec::with_capacity(parts.iter().map(|(_, p)| p.dirs.len()).sum());
        // The parts come in cluster order: each map is built at once from
        // its sorted entries rather than one insertion at a time.
        let mut seen = Vec::with_capacity(clusters);
        let mut ids = Vec::with_capacity(clusters);
        let mut planned = Vec::with_capacity(clusters);
        let mut also_ids = Vec::new();
        let mut failed = None;
        for (_, part) in parts {
            seen.extend(part.seen);
            for (name, p, resolved) in part.planned {
                ids.push((name.clone(), resolved.ids));
                if !resolved.also_ids.is_empty() {
                    also_ids.push((name.clone(), resolved.also_ids));
                }
                plan.warnings.extend(resolved.warnings);
                planned.push((name, p));
            }
            plan.errors.extend(part.errors);
            if failed.is_none() {
                changes.extend(part.changes);
                left.extend(part.left);
                dirs.extend(part.dirs);
                failed = part.failed;
            }
        }
        plan.ids = ids.into_iter().collect();
        plan.also_ids = also_ids.into_iter().collect();
        plan.clusters = planned.into_iter().collect();
        Whole {
            plan,
            changes,
            left,
            dirs,
            seen,
            failed,
        }
    }
}

/// What one chunk of clusters planned and wrote.
#[derive(Default)]
struct Part {
    planned: Vec<(String, ClusterPlan, Resolved)>,
    errors: Vec<Error>,
    changes: Vec<Change>,
    left: Vec<LeftFile>,
    dirs: Vec<LeftFile>,
    /// Cluster -> the mtimes of its files as left, in plan order.
    seen: Vec<(String, Vec<Option<Timestamp>>)>,
    /// Cluster -> its entry of `index.json` as JSON text, when all its
    /// mtimes were known.
    entries: Vec<(String, String)>,
    /// The write error that stopped the chunk.
    failed: Option<Error>,
}

#[allow(clippy::too_many_arguments)]
fn write_chunk(
    config: &Config,
    renderer: &Renderer,
    chunk: &[&ClusterConfig],
    data: &Gathered,
    indexes: &BTreeMap<&str, SnapshotIndex<'_>>,
    out: &OutputDir,
    now: Timestamp,
    known: &KnownFiles,
    views: bool,
    made: &mut ItemTexts,
) -> Part {
    let mut part = Part::default();
    for cluster in chunk {
        let planned = plan_cluster(config, renderer, cluster, data, indexes, now, made);
        let (mut p, resolved) = match planned {
            Ok(planned) => planned,
            Err(e) => {
                part.errors.push(e);
                continue;
            }
        };
        match write_cluster(&cluster.name, &p, out, now, known) {
            Ok(written) => {
                // The cluster's entry of `index.json`, made here on the
                // writing threads; only with every mtime known, as a run
                // that writes gives them.
                if written.seen.iter().all(Option::is_some) {
                    let entry = index_entry_text(&cluster.name, &p, |at| written.seen[at]);
                    part.entries.push((cluster.name.clone(), entry));
                    if !views {
                        let_go(&mut p.view);
                    }
                }
                part.changes.extend(written.changes);
                part.left.extend(written.left);
                part.dirs.extend(written.dirs);
                part.seen.push((cluster.name.clone(), written.seen));
            }
            Err(e) => {
                part.failed = Some(e);
                return part;
            }
        }
        // Written: the bytes are not needed again.
        for file in &mut p.files {
            file.bytes = Vec::new();
        }
        part.planned.push((cluster.name.clone(), p, resolved));
    }
    part
}

/// What writing one cluster's files did.
struct ClusterWritten {
    changes: Vec<Change>,
    /// The mtime of each file as left, in plan order.
    seen: Vec<Option<Timestamp>>,
    /// Each file as left.
    left: Vec<LeftFile>,
    /// The cluster's directory and its `items/`, as left.
    dirs: [LeftFile; 2],
}

/// Writes the files of one cluster's plan, then removes the snippets that
/// left its view; `known` spares the comparison of files and the listing
/// of `items/` an earlier render left as planned. What [`apply`] and
/// [`plan_and_write`] both do for each cluster.
fn write_cluster(
    name: &str,
    p: &ClusterPlan,
    out: &OutputDir,
    now: Timestamp,
    known: &KnownFiles,
) -> Result<ClusterWritten> {
    let digests: Vec<Digest> = p.files.iter().map(|f| digest(&f.bytes)).collect();
    let names = names_digest(&p.items);
    if let Some(written) = left_as_known(name, p, &digests, names, out, known) {
        return Ok(written);
    }
    let vouched = |rel: &Path, digest: &Digest| {
        known
            .get(rel.to_string_lossy().as_ref())
            .filter(|(_, d)| d == digest)
            .map(|(state, _)| *state)
    };
    let mut changes = Vec::new();
    let mut seen = Vec::with_capacity(p.files.len());
    let mut left = Vec::with_capacity(p.files.len());
    for (file, digest) in p.files.iter().zip(digests) {
        let state = vouched(&file.rel, &digest);
        let was = out.write_left(&file.rel, &file.bytes, file.newest, now, state.as_ref())?;
        seen.push(was.mtime);
        if let Some(action) = action_of(was.written) {
            changes.push(Change {
                path: display_rel(&file.rel),
                action,
            });
        }
        left.push(LeftFile {
            rel: file.rel.clone(),
            state: was.state,
            digest,
        });
    }
    let items = Path::new(name).join("items");
    let state = vouched(&items, &names);
    let (removed, [own, items_state]) = out.prune_items_left(name, &p.items, state.as_ref())?;
    changes.extend(removed.iter().map(|removed| Change {
        path: display_rel(removed),
        action: Action::Removed,
    }));
    let dirs = [
        LeftFile {
            rel: PathBuf::from(name),
            state: own,
            digest: [0; 16],
        },
        LeftFile {
            rel: items,
            state: items_state,
            digest: names,
        },
    ];
    Ok(ClusterWritten {
        changes,
        seen,
        left,
        dirs,
    })
}

/// A cluster that the last render left as `p` would leave it, untouched
/// since: its directory, its `items/` and each file in the state the table
/// of files (`known`) records, each file's bytes with the digest recorded
/// (`digests`, in the order of `p.files`), the snippet names with theirs
/// (`names`). Each is looked at with one `stat` from the output directory,
/// without opening the cluster's directories, which for a render of a
/// thousand clusters that changed nothing is most of the writing side's
/// time. `None` when anything differs, or a file lies outside the
/// cluster's directory and its `items/`: then the files are compared and
/// written one by one, which also refuses a link in a directory's place.
fn left_as_known(
    name: &str,
    p: &ClusterPlan,
    digests: &[Digest],
    names: Digest,
    out: &OutputDir,
    known: &KnownFiles,
) -> Option<ClusterWritten> {
    if known.is_empty() {
        return None;
    }
    let own = Path::new(name);
    let items = own.join("items");
    // What is at `rel` is of `kind`, in the recorded state; a file's bytes
    // as well. The table first: a path it does not hold costs no `stat`.
    let as_known = |rel: &Path, kind: Kind, digest: Option<&Digest>| {
        let (was, recorded) = known.get(rel.to_str()?)?;
        let (found, state) = out.kind_and_state_at(rel)?;
        let same = found == kind && state == *was && digest.is_none_or(|d| d == recorded);
        same.then_some(state)
    };
    let own_state = as_known(own, Kind::Directory, None)?;
    let items_state = as_known(&items, Kind::Directory, Some(&names))?;
    let mut seen = Vec::with_capacity(p.files.len());
    let mut left = Vec::with_capacity(p.files.len());
    for (file, &digest) in p.files.iter().zip(digests) {
        let parent = file.rel.parent()?;
        if parent != own && parent != items {
            return None;
        }
        let state = as_known(&file.rel, Kind::File, Some(&digest))?;
        seen.push(output::state_mtime(&state));
        left.push(LeftFile {
            rel: file.rel.clone(),
            state: Some(state),
            digest,
        });
    }
    let dirs = [
        LeftFile {
            rel: own.to_path_buf(),
            state: Some(own_state),
            digest: [0; 16],
        },
        LeftFile {
            rel: items,
            state: Some(items_state),
            digest: names,
        },
    ];
    Some(ClusterWritten {
        changes: Vec::new(),
        seen,
        left,
        dirs,
    })
}

/// Cluster -> the mtimes of its files as left, in plan order.
type Seen = BTreeMap<String, Vec<Option<Timestamp>>>;

/// Writes `index.json`, its text `index`; `known` is how an earlier render
/// left it.
fn write_index(
    index: &str,
    out: &OutputDir,
    now: Timestamp,
    known: Option<&(FileState, Digest)>,
) -> Result<(Option<Change>, LeftFile)> {
    let rel = Path::new(INDEX_FILE);
    let digest = digest(index.as_bytes());
    let vouched = known.filter(|(_, d)| *d == digest).map(|(state, _)| state);
    let left = out.write_left(rel, index.as_bytes(), None, now, vouched)?;
    let change = action_of(left.written).map(|action| Change {
        path: "index.json".into(),
        action,
    });
    Ok((
        change,
        LeftFile {
            rel: rel.to_path_buf(),
            state: left.state,
            digest,
        },
    ))
}

fn action_of(w: Written) -> Option<Action> {
    match w {
        Written::Created => Some(Action::Created),
        Written::Updated => Some(Action::Updated),
        Written::Unchanged => None,
    }
}

fn display_rel(p: &Path) -> String {
    display_rel_cow(p).into_owned()
}

/// A relative path as `index.json` shows it, with `/` between names.
fn display_rel_cow(p: &Path) -> Cow<'_, str> {
    let text = p.to_string_lossy();
    if text.contains('\\') {
        Cow::Owned(text.replace('\\', "/"))
    } else {
        text
    }
}

fn one_or_none(v: &[String]) -> bool {
    v.len() <= 1
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
    /// The primary source.
    pub source: String,
    /// Every source the cluster reads, the primary first; left out for a
    /// cluster of one source, whose entry is as it always was.
    #[serde(default, skip_serializing_if = "one_or_none")]
    pub sources: Vec<String>,
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
    /// The source the item is from, when it is not the cluster's primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub kind: String,
    pub id: String,
    pub name: String,
    pub status: String,
    pub file: String,
}

/// Builds `index.json`, keeping the entries of clusters this plan did not
/// render (`render --cluster`), so the index always covers every cluster.
/// `made` holds the entries the writing threads made already.
fn index_json(
    plan: &Plan,
    dir: &output::Peek,
    seen: &Seen,
    made: &BTreeMap<String, String>,
) -> String {
    // A partial plan (`--cluster`, or clusters that failed) keeps the other
    // clusters' entries; a complete one also drops clusters no longer
    // configured.
    let mut entries: BTreeMap<String, String> = if plan.complete && plan.errors.is_empty() {
        BTreeMap::new()
    } else {
        dir.read(Path::new("index.json"))
            .and_then(|b| serde_json::from_slice::<Index>(&b).ok())
            .unwrap_or_default()
            .clusters
            .into_iter()
            .map(|(name, entry)| (name, nested_text(&entry)))
            .collect()
    };
    for (name, cluster) in &plan.clusters {
        // Made on a writing thread (its cluster's view may be gone).
        let entry = if let Some(entry) = made.get(name) {
            entry.clone()
        } else {
            let seen = seen.get(name);
            index_entry_text(name, cluster, |at| {
                let mtime = seen.and_then(|s| s.get(at).copied().flatten());
                mtime.or_else(|| dir.mtime(&cluster.files[at].rel))
            })
        };
        entries.insert(name.clone(), entry);
    }
    index_of_entries(&entries)
}

/// The entry of `index.json` for the plan of cluster `name`, `mtime`
/// giving the mtime of its `n`th file: an [`IndexEntry`] as the text
/// `serde_json::to_string_pretty` gives it inside the whole [`Index`].
/// Serialized from borrowed text ([`EntryText`]) straight into that
/// layout ([`nested_text`]), with nothing copied.
fn index_entry_text(
    name: &str,
    cluster: &ClusterPlan,
    mtime: impl Fn(usize) -> Option<Timestamp>,
) -> String {
    let v = &cluster.view;
    let primary = v.sources.first().map(|s| s.name.as_str());
    let mut files: Vec<(Cow<'_, str>, Option<Timestamp>)> = cluster
        .files
        .iter()
        .enumerate()
        .map(|(at, f)| (display_rel_cow(&f.rel), mtime(at)))
        .collect();
    // Sorted and without repeats, as the map of `IndexEntry::files` is:
    // the last of a path's mtimes wins there, as here.
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.reverse();
    files.dedup_by(|later, kept| later.0 == kept.0);
    files.reverse();
    let entry = EntryText {
        status: v.status.as_str(),
        stale: v.stale,
        source: primary.unwrap_or_default(),
        sources: v.sources.iter().map(|s| s.name.as_str()).collect(),
        items: v
            .items()
            .filter(|i| cluster.items.contains(i.snippet_name()))
            .map(|i| ItemText {
                source: (Some(i.source.as_str()) != primary).then_some(i.source.as_str()),
                kind: i.kind.as_str(),
                id: &i.id,
                name: &i.name,
                status: &i.status,
                file: Joined(name, &i.file),
            })
            .collect(),
        items_left_out: cluster.items_left_out,
        files: Files(&files),
    };
    nested_text(&entry)
}

/// `value` as the text `serde_json::to_string_pretty` gives it two levels
/// into a document: an entry of `index.json`, its lines after the first
/// indented as inside the whole [`Index`].
fn nested_text(value: &impl Serialize) -> String {
    crate::layout::Layout::from_depth(2)
        .text(value, 1024)
        .unwrap_or_default()
}

/// [`IndexEntry`] borrowing its text from the plan: the same fields, in
/// the same order, with the same rules for leaving them out.
#[derive(Serialize)]
struct EntryText<'a> {
    status: &'a str,
    stale: bool,
    source: &'a str,
    #[serde(skip_serializing_if = "one_or_none_of")]
    sources: Vec<&'a str>,
    items: Vec<ItemText<'a>>,
    items_left_out: usize,
    files: Files<'a>,
}

/// [`IndexItem`] borrowing its text.
#[derive(Serialize)]
struct ItemText<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    kind: &'a str,
    id: &'a str,
    name: &'a str,
    status: &'a str,
    file: Joined<'a>,
}

fn one_or_none_of(v: &[&str]) -> bool {
    v.len() <= 1
}

/// `cluster/file`, written as one JSON string without being put together
/// first.
struct Joined<'a>(&'a str, &'a str);

impl Serialize for Joined<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}/{}", self.0, self.1))
    }
}

/// Sorted paths and their mtimes, written as a JSON object.
struct Files<'a>(&'a [(Cow<'a, str>, Option<Timestamp>)]);

impl Serialize for Files<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(path, mtime)| (path.as_ref(), mtime)))
    }
}

/// `index.json` put together from its entries ([`index_entry_text`]),
/// sorted by cluster, byte for byte what `serde_json::to_string_pretty`
/// gives for the whole [`Index`].
fn index_of_entries(entries: &BTreeMap<String, String>) -> String {
    let size: usize = entries.iter().map(|(n, e)| n.len() + e.len() + 16).sum();
    let mut text = String::with_capacity(size + 32);
    text.push_str("{\n  \"clusters\": {");
    let mut any = false;
    for (name, entry) in entries {
        text.push_str(if any { ",\n    " } else { "\n    " });
        any = true;
        text.push_str(&serde_json::to_string(name).unwrap_or_default());
        text.push_str(": ");
        text.push_str(entry);
    }
    text.push_str(if any { "\n  }\n}\n" } else { "}\n}\n" });
    text
}

/// Lets go of what a view holds, once its cluster's files and entry of
/// `index.json` are made, in a render that does not read it again (no
/// notification to send): 1,000 clusters' views are megabytes.
fn let_go(view: &mut ClusterView) {
    view.incidents = Vec::new();
    view.maintenance = crate::view::Maintenance::default();
    view.resolved = Vec::new();
    view.components = Vec::new();
    view.unknown = Vec::new();
}

#[cfg(test)]
// Tests set the scene by hand.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fmt::Write as _;

    /// `n` clusters of one component each, and `lost`: one whose component
    /// is not on the page.
    fn config_of(n: usize, lost: bool) -> Config {
        let mut toml = String::from(
            "[settings]\ntimezone = \"UTC\"\n\n[sources.status]\nkind = \"statuspage-public\"\nurl = \"https://status.example.org\"\n\n",
        );
        for i in 0..n {
            let _ = writeln!(toml, "[clusters.c{i:02}]\ncomponents = [\"Part {i}\"]");
        }
        if lost {
            toml.push_str("[clusters.lost]\ncomponents = [\"Nowhere\"]\n");
        }
        Config::parse(&toml, Path::new("/srv/motd/mapping.toml")).unwrap()
    }

    /// A page with `n` components, an open incident on every third one
    /// (named `tag`), and one page-wide incident.
    fn data(n: usize, tag: &str) -> Gathered {
        let page = json!({"id": "p", "name": "Site", "url": "https://status.example.org"});
        let components: Vec<_> = (0..n)
            .map(|i| json!({"id": format!("id{i}"), "name": format!("Part {i}"), "status": "operational"}))
            .collect();
        let incident = |id: String, name: String, components: serde_json::Value| {
            json!({
                "id": id, "name": name, "status": "investigating", "impact": "minor",
                "created_at": "2025-06-01T09:00:00Z", "updated_at": "2025-06-01T09:30:00Z",
                "shortlink": "https://stspg.io/x", "components": components,
                "incident_updates": [{"id": "u", "status": "investigating", "body": "Looking.",
                    "created_at": "2025-06-01T09:30:00Z", "display_at": "2025-06-01T09:30:00Z"}],
            })
        };
        let mut incidents: Vec<_> = (0..n)
            .step_by(3)
            .map(|i| {
                incident(
                    format!("{}{i}", tag.to_lowercase()),
                    format!("{tag} {i}"),
                    json!([{"id": format!("id{i}"), "name": format!("Part {i}")}]),
                )
            })
            .collect();
        incidents.push(incident("all".into(), "Everything".into(), json!([])));
        let summary = json!({"page": page, "components": components, "incidents": incidents,
            "scheduled_maintenances": []});
        let snapshot = source::v2::from_payloads(
            "https://status.example.org",
            summary.to_string().as_bytes(),
            None,
            None,
        )
        .unwrap();
        Gathered {
            sources: BTreeMap::from([(
                "status".to_owned(),
                SourceData {
                    snapshot: Arc::new(snapshot),
                    fetch_error: None,
                },
            )]),
            missing: BTreeMap::new(),
            known: Arc::default(),
            calendar: Arc::default(),
            indexes: BTreeMap::new(),
        }
    }

    /// Every file under `root` but the staging directory: path, bytes, mtime.
    fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
        let mut files = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.ends_with(output::STAGING_DIR) {
                    continue;
                }
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let meta = std::fs::metadata(&path).unwrap();
                    let rel = path.strip_prefix(root).unwrap().to_path_buf();
                    files.push((rel, std::fs::read(&path).unwrap(), meta.modified().unwrap()));
                }
            }
        }
        files.sort();
        files
    }

    fn lines(changes: &[Change]) -> Vec<String> {
        changes.iter().map(ToString::to_string).collect()
    }

    /// The entries made on the writing threads, put together, are byte for
    /// byte the whole index as `serde_json` lays it out, and an entry kept
    /// from the index on disk (`render --cluster`) is written again as it
    /// was made: a render of every cluster and one of a few leave the same
    /// `index.json`. Clusters of one source and of two, an item of a
    /// further source, and item names that need escaping.
    #[test]
    fn entries_made_apart_are_laid_out_as_the_whole_index() {
        let toml = "[settings]\ntimezone = \"UTC\"\n\n\
            [sources.status]\nkind = \"statuspage-public\"\nurl = \"https://status.example.org\"\n\n\
            [sources.vendor]\nkind = \"statuspage-public\"\nurl = \"https://vendor.example.org\"\n\n\
            [clusters.one]\nsource = \"status\"\ncomponents = [\"Part 0\"]\n\n\
            [clusters.two]\nsource = \"status\"\ncomponents = [\"Part 1\"]\n\
            [clusters.two.also.vendor]\ncomponents = [\"Part 3\"]\n";
        let config = Config::parse(toml, Path::new("/srv/motd/mapping.toml")).unwrap();
        let renderer = Renderer::new(None).unwrap();
        let clusters: Vec<&ClusterConfig> = config.clusters.values().collect();
        let mut data = data(6, "Outage \"quoted\"");
        let vendor = data.sources["status"].clone();
        data.sources.insert("vendor".to_owned(), vendor);
        let now: Timestamp = "2025-06-01T10:00:00Z".parse().unwrap();
        let plan = plan(&config, &renderer, &clusters, &data, now);
        let two = &plan.clusters["two"];
        assert_eq!(two.view.sources.len(), 2, "the cluster reads both sources");
        assert!(
            two.view.items().any(|i| i.source == "vendor"),
            "an item of the further source is shown"
        );
        let mtime = |at: usize| {
            Some(Timestamp::from_second(1_750_000_000 + i64::try_from(at).unwrap()).unwrap())
        };
        let entries: BTreeMap<String, String> = plan
            .clusters
            .iter()
            .map(|(name, cluster)| (name.clone(), index_entry_text(name, cluster, mtime)))
            .collect();
        let text = index_of_entries(&entries);
        let index: Index = serde_json::from_str(&text).unwrap();
        let mut again = serde_json::to_string_pretty(&index).unwrap();
        again.push('\n');
        assert_eq!(text, again);
        for (name, entry) in &index.clusters {
            assert_eq!(nested_text(entry), entries[name], "{name} kept as made");
            let cluster = &plan.clusters[name];
            for (at, f) in cluster.files.iter().enumerate() {
                assert_eq!(entry.files[&display_rel(&f.rel)], mtime(at), "{name}");
            }
            assert_eq!(entry.files.len(), cluster.files.len());
            assert!(!entry.items.is_empty(), "{name} shows items");
            for item in &entry.items {
                assert!(item.file.starts_with(&format!("{name}/items/")), "{item:?}");
            }
        }
        let (one, two) = (&index.clusters["one"], &index.clusters["two"]);
        assert_eq!((one.source.as_str(), one.sources.len()), ("status", 0));
        assert_eq!(two.sources, ["status", "vendor"]);
        assert!(two
            .items
            .iter()
            .any(|i| i.source.as_deref() == Some("vendor")));
        assert!(two
            .items
            .iter()
            .all(|i| i.source.as_deref() != Some("status")));
        assert!(one.items.iter().all(|i| i.source.is_none()));
        assert!(two.items.iter().any(|i| i.name.contains("\"quoted\"")));
    }

    #[test]
    fn an_index_without_clusters_is_laid_out_as_serde_json_lays_it_out() {
        let mut whole = serde_json::to_string_pretty(&Index::default()).unwrap();
        whole.push('\n');
        assert_eq!(index_of_entries(&BTreeMap::new()), whole);
    }

    /// A cluster the last render left as planned is found so with one
    /// `stat` per path, and reported as the comparison would report it; a
    /// file written again with the same bytes, a cluster's directory
    /// reached through a link, or a dry run is left to the comparison.
    #[test]
    fn a_cluster_left_as_known_is_found_so_and_nothing_else_is() {
        let config = config_of(2, false);
        let renderer = Renderer::new(None).unwrap();
        let clusters: Vec<&ClusterConfig> = config.clusters.values().collect();
        let root = tempfile::tempdir().unwrap();
        let data = data(2, "Outage");
        let now: Timestamp = "2025-06-01T10:00:00Z".parse().unwrap();
        let planned = plan(&config, &renderer, &clusters, &data, now);
        let write = |known: KnownFiles| {
            let out = OutputDir::open(root.path()).unwrap();
            plan_and_write(&config, &renderer, &clusters, &data, &out, now, known, true)
        };
        let table = |made: &Rendered| -> KnownFiles {
            made.left
                .iter()
                .chain(&made.dirs)
                .map(|f| {
                    (
                        f.rel.to_string_lossy().into_owned(),
                        (f.state.unwrap(), f.digest),
                    )
                })
                .collect()
        };
        let shown = |files: &[LeftFile]| -> Vec<(PathBuf, Option<FileState>, Digest)> {
            files
                .iter()
                .map(|f| (f.rel.clone(), f.state, f.digest))
                .collect()
        };
        let look = |name: &str, out: &OutputDir, known: &KnownFiles| {
            let p = &planned.clusters[name];
            let digests: Vec<Digest> = p.files.iter().map(|f| digest(&f.bytes)).collect();
            left_as_known(name, p, &digests, names_digest(&p.items), out, known)
        };
        let made = write(KnownFiles::new());
        let known = table(&made);
        let out = OutputDir::open(root.path()).unwrap();
        let found = look("c00", &out, &known).expect("as the last render left it");
        assert!(found.changes.is_empty());
        let of_c00 = |files: &[LeftFile]| -> Vec<LeftFile> {
            files
                .iter()
                .filter(|f| f.rel.starts_with("c00"))
                .cloned()
                .collect()
        };
        assert_eq!(shown(&found.left), shown(&of_c00(&made.left)));
        assert_eq!(shown(&found.dirs), shown(&of_c00(&made.dirs)));
        assert!(found.seen.iter().all(Option::is_some));
        // The same bytes written again: another inode and change time.
        let motd = root.path().join("c00/motd");
        let bytes = std::fs::read(&motd).unwrap();
        std::fs::remove_file(&motd).unwrap();
        std::fs::write(&motd, &bytes).unwrap();
        assert!(look("c00", &out, &known).is_none());
        drop(out);
        let made = write(known);
        assert!(made.outcome.is_ok());
        let known = table(&made);
        let out = OutputDir::open(root.path()).unwrap();
        assert!(look("c00", &out, &known).is_some());
        assert!(look("c00", &OutputDir::dry_run(root.path()).unwrap(), &known).is_none());
        // The directory moved and linked back: the same files, through a link.
        std::fs::rename(root.path().join("c00"), root.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(root.path().join("moved"), root.path().join("c00")).unwrap();
        assert!(look("c00", &out, &known).is_none());
        assert!(look("c01", &out, &known).is_some());
    }

    #[test]
    fn planning_and_writing_by_chunks_gives_what_plan_and_apply_give() {
        // With a cluster that cannot be rendered, `index.json` is merged
        // as `apply` merges it; without one, it is put together from the
        // entries the writing threads made.
        // Views let go of or kept, the files are the same.
        for lost in [true, false] {
            for views in [true, false] {
                by_chunks_as_plan_and_apply(lost, views);
            }
        }
    }

    fn by_chunks_as_plan_and_apply(lost: bool, views: bool) {
        let n = 3 * CHUNK + 5;
        let config = config_of(n, lost);
        let renderer = Renderer::new(None).unwrap();
        let clusters: Vec<&ClusterConfig> = config.clusters.values().collect();
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut known = KnownFiles::new();
        // A first render, the same page again, then a page where every
        // incident changed name: created, unchanged, updated and removed.
        for (round, (tag, now)) in [
            ("Outage", "2025-06-01T10:00:00Z"),
            ("Outage", "2025-06-01T10:05:00Z"),
            ("Slowness", "2025-06-01T10:10:00Z"),
        ]
        .into_iter()
        .enumerate()
        {
            if round == 1 {
                // A snippet left by hand: `items/` changed since it was
                // vouched for, so it is listed and the stray one removed.
                for root in [one.path(), two.path()] {
                    std::fs::write(root.join("c03/items/incident-stray.txt"), "old\n").unwrap();
                }
            }
            let data = data(n, tag);
            let now: Timestamp = now.parse().unwrap();
            let plan = plan(&config, &renderer, &clusters, &data, now);
            let changes = apply(&plan, one.path(), now).unwrap();
            let out = OutputDir::open(two.path()).unwrap();
            let made = plan_and_write(
                &config,
                &renderer,
                &clusters,
                &data,
                &out,
                now,
                std::mem::take(&mut known),
                views,
            );
            drop(out);
            let got = made.outcome.unwrap();
            assert_eq!(lines(&got), lines(&changes), "round {round}");
            assert_eq!(tree(two.path()), tree(one.path()), "round {round}");
            assert_eq!(
                made.plan.errors.len(),
                usize::from(lost),
                "the cluster that cannot be rendered"
            );
            assert_eq!(made.plan.errors.len(), plan.errors.len());
            assert_eq!(
                made.plan.clusters.keys().collect::<Vec<_>>(),
                plan.clusters.keys().collect::<Vec<_>>()
            );
            assert_eq!(made.plan.ids, plan.ids);
            for (name, p) in &made.plan.clusters {
                let kept = &plan.clusters[name].view;
                assert_eq!(
                    p.view.incidents.len(),
                    if views { kept.incidents.len() } else { 0 }
                );
            }
            match round {
                0 => assert!(got.iter().all(|c| c.action == Action::Created)),
                1 => assert_eq!(lines(&got), ["removed c03/items/incident-stray.txt"]),
                _ => assert!(got.iter().any(|c| c.action == Action::Removed)),
            }
            // Every file as left: its state and digest are what the disk says.
            assert_eq!(made.left.len(), tree(two.path()).len());
            for f in &made.left {
                let path = two.path().join(&f.rel);
                assert_eq!(
                    f.state,
                    crate::oneshot::state_of(&path),
                    "{}",
                    f.rel.display()
                );
                assert_eq!(f.digest, digest(&std::fs::read(&path).unwrap()));
            }
            // And every cluster's directories, `items/` with the names in it.
            assert_eq!(made.dirs.len(), 2 * made.plan.clusters.len());
            for d in &made.dirs {
                let path = two.path().join(&d.rel);
                assert_eq!(
                    d.state,
                    crate::oneshot::state_of(&path),
                    "{}",
                    d.rel.display()
                );
                if d.rel.ends_with("items") {
                    let names: BTreeSet<String> = std::fs::read_dir(&path)
                        .unwrap()
                        .map(|e| e.unwrap().file_name().into_string().unwrap())
                        .collect();
                    assert_eq!(d.digest, names_digest(&names), "{}", d.rel.display());
                }
            }
            known = made
                .left
                .iter()
                .chain(&made.dirs)
                .map(|f| {
                    (
                        f.rel.to_string_lossy().into_owned(),
                        (f.state.unwrap(), f.digest),
                    )
                })
                .collect();
        }
    }
}
