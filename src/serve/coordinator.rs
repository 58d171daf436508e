//! The refresh coordinator of `serve`: the one place every trigger lands
//! (webhook, `POST /refresh`, the poll timer, a configuration change, SIGHUP)
//! and the one renderer task that writes files.
//!
//! Each source has a worker with a pending flag: a trigger sets the flag and
//! wakes the worker, which waits `debounce` so a burst becomes one fetch, then
//! clears the flag and fetches. Triggers that arrive while it fetches set the
//! flag again, so per source there is at most one fetch in flight and one
//! queued, however many webhooks arrive. Fetch results go over a channel to
//! the renderer task, the only code that changes the current snapshots or
//! writes under `output_dir`: it takes every result waiting, keeps a failed
//! source's last good snapshot, persists good ones to `state_dir`, and runs
//! `pipeline::plan` + `pipeline::apply` once for the lot. Writes never race,
//! and a failed fetch never blanks a file.
//!
//! Handlers only read: [`Coordinator::live`] (configuration, templates,
//! tokens) and [`Coordinator::data`] (current snapshots) are swapped whole
//! behind `Arc`s, so a request never waits for a fetch or a render.
//!
//! Nothing here can hold the service hostage: a render runs on a blocking
//! thread that shutdown does not wait for (templates are bounded by fuel, and
//! a render still running after [`SLOW_RENDER`] shows in `/readyz`), and
//! `on_change` runs in a process group of its own that is killed after
//! `on_change_timeout` and at shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, SourceConfig};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::model::Snapshot;
use crate::notify::Notifier;
use crate::pipeline::{self, Change, FetchFailure, Gathered};
use crate::render::Renderer;
use crate::source::conditional::{self, Outcome};
use crate::source::{self, FetchErrorKind};
use crate::store::{self, Event, Store};
use crate::view::short_duration;

use super::incremental::{Inputs, Previewed};
use super::kept::Kept;
use super::validators::{Fetched, Held};

/// The configuration in force, with what was derived from it: compiled
/// templates and the revealed tokens of `[server]`. Replaced whole on reload.
pub struct Live {
    pub config: Config,
    pub renderer: Renderer,
    pub webhook_token: Option<String>,
    pub refresh_token: Option<String>,
}

// By hand, so that no `{:?}` shows a token.
impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("config", &self.config.path)
            .field(
                "webhook_token",
                &self.webhook_token.as_ref().map(|_| "<hidden>"),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<hidden>"),
            )
            .finish_non_exhaustive()
    }
}

impl Live {
    /// Reads and validates `path`, compiles its templates and reveals its
    /// tokens: anything wrong is found here, before it replaces what runs.
    pub fn load(path: &Path) -> Result<Live> {
        Live::new(Config::load(path)?)
    }

    pub fn new(config: Config) -> Result<Live> {
        let renderer = Renderer::new(config.settings.templates_dir.as_deref())?;
        let webhook_token = config
            .server
            .webhook_token
            .as_ref()
            .map(|s| s.reveal("the `webhook_token` of `[server]`"))
            .transpose()?;
        let refresh_token = config
            .server
            .refresh_token
            .as_ref()
            .map(|s| s.reveal("the `refresh_token` of `[server]`"))
            .transpose()?;
        Ok(Live {
            config,
            renderer,
            webhook_token,
            refresh_token,
        })
    }

    /// The sources some cluster uses: the ones worth fetching.
    pub fn used_sources(&self) -> BTreeSet<String> {
        self.config
            .clusters
            .values()
            .flat_map(|c| c.sources().map(str::to_owned))
            .collect()
    }
}

/// What a refresh changed, as `POST /refresh?wait=true` answers it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub changed: Vec<Change>,
    /// Failed fetches and clusters that could not be rendered (their files
    /// are left as they were).
    pub errors: Vec<String>,
}

impl Report {
    fn merge(&mut self, other: Report) {
        for c in other.changed {
            if !self.changed.iter().any(|d| d.path == c.path) {
                self.changed.push(c);
            }
        }
        for e in other.errors {
            if !self.errors.contains(&e) {
                self.errors.push(e);
            }
        }
    }
}

type Waiter = oneshot::Sender<Report>;

/// What the renderer task is asked to do.
enum RenderMsg {
    /// A fetch finished; render with its result.
    Fetched {
        source: String,
        result: std::result::Result<Box<Snapshot>, FetchFailure>,
        waiters: Vec<Waiter>,
    },
    /// A fetch found the page unchanged (`304`, or the same bytes):
    /// the snapshot held is confirmed, nothing else changes.
    Unchanged {
        source: String,
        validators: Box<crate::source::conditional::Validators>,
        waiters: Vec<Waiter>,
    },
    /// The configuration or templates changed (or the process started):
    /// render from the current snapshots.
    Rerender,
    /// A webhook for the page of `sources` (`[server] webhook_preview`):
    /// apply what it says to their snapshots, render at once, then fetch
    /// them.
    Preview {
        sources: Vec<String>,
        payload: serde_json::Value,
    },
}

#[derive(Default)]
struct Pending {
    queued: bool,
    waiters: Vec<Waiter>,
}

/// The trigger slot of one source's worker.
struct SourceQueue {
    name: String,
    pending: Mutex<Pending>,
    wake: Notify,
}

/// A render running longer than this makes `/readyz` answer 503 until it
/// ends; real renders take milliseconds.
pub const SLOW_RENDER: Duration = Duration::from_secs(10);

/// `on_change` running longer than this (or half its timeout, when that is
/// shorter) makes `/readyz` answer 503 until it ends or is killed.
pub const SLOW_ON_CHANGE: Duration = Duration::from_secs(60);

/// The outcome of the last completed render, and the render under way, for
/// `/readyz`.
#[derive(Debug, Clone, Default)]
struct Health {
    rendered_at: Option<Timestamp>,
    /// Sources whose latest fetch failed for good, with why.
    permanent: BTreeMap<String, FetchFailure>,
    errors: Vec<String>,
    rendering_since: Option<Instant>,
}

/// The coordinator: shared state of `serve` and the handle triggers go
/// through. Create it with [`Coordinator::start`].
pub struct Coordinator {
    live: RwLock<Arc<Live>>,
    data: RwLock<Arc<Gathered>>,
    health: Mutex<Health>,
    pub metrics: Metrics,
    /// The notification outbox and its deliveries.
    pub notifier: Arc<Notifier>,
    queues: Mutex<BTreeMap<String, Arc<SourceQueue>>>,
    render_tx: mpsc::UnboundedSender<RenderMsg>,
    changed_clusters: Mutex<BTreeSet<String>>,
    on_change_wake: Notify,
    /// Set by the poll timer: the next render plans every cluster.
    plan_all: AtomicBool,
    client: reqwest::Client,
    /// What each Statuspage source is asked "changed since?" with.
    validators: Held,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").finish_non_exhaustive()
    }
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(PoisonError::into_inner).clone()
}

fn write<T>(lock: &RwLock<T>, value: T) {
    *lock.write().unwrap_or_else(PoisonError::into_inner) = value;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A configured duration as a timer duration, never shorter than `min` (a
/// zero poll interval would spin).
fn std_duration(d: SignedDuration, min: Duration) -> Duration {
    Duration::try_from(d).unwrap_or(min).max(min)
}

impl Coordinator {
    /// Starts the renderer, the poll timer and the `on_change` runner on
    /// `tracker`, renders at once from the snapshots persisted in
    /// `state_dir`, then refreshes every source. Every task stops when
    /// `cancel` is cancelled; a render under way finishes first. Must be
    /// called within a Tokio runtime.
    pub fn start(live: Live, cancel: CancellationToken, tracker: &TaskTracker) -> Arc<Coordinator> {
        let (render_tx, render_rx) = mpsc::unbounded_channel();
        let persisted = load_persisted(&live);
        let have_data = persisted.has_data();
        let metrics = Metrics::new();
        let notifier = Arc::new(Notifier::open(&live.config, Some(&metrics)));
        for route in &live.config.notify {
            metrics.notification_route(&route.name);
        }
        let coordinator = Arc::new(Coordinator {
            live: RwLock::new(Arc::new(live)),
            data: RwLock::new(Arc::new(Gathered::default())),
            health: Mutex::new(Health::default()),
            metrics,
            notifier,
            queues: Mutex::new(BTreeMap::new()),
            render_tx,
            changed_clusters: Mutex::new(BTreeSet::new()),
            on_change_wake: Notify::new(),
            plan_all: AtomicBool::new(false),
            client: source::client(),
            validators: Held::default(),
            cancel,
            tracker: tracker.clone(),
        });
        tracker.spawn(renderer_task(coordinator.clone(), render_rx, persisted));
        tracker.spawn(poll_task(coordinator.clone()));
        tracker.spawn(on_change_task(coordinator.clone()));
        tracker.spawn(notify_task(coordinator.clone()));
        tracker.spawn(super::probes::probes_task(coordinator.clone()));
        if have_data {
            coordinator.send(RenderMsg::Rerender);
        } else {
            tracing::info!("no persisted snapshot: the first render waits for the first fetch");
        }
        coordinator.refresh(None, "start");
        coordinator
    }

    /// Cancelled when the service stops.
    pub(super) fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The configuration in force.
    pub fn live(&self) -> Arc<Live> {
        read(&self.live)
    }

    /// The current snapshot of every source (the last good one when a fetch
    /// failed), and why a source has none.
    pub fn data(&self) -> Arc<Gathered> {
        read(&self.data)
    }

    fn send(&self, msg: RenderMsg) {
        // Fails only once the renderer has stopped, at shutdown.
        let _ = self.render_tx.send(msg);
    }

    /// The sources to fetch for `names`: all used ones when `None`.
    fn targets(&self, names: Option<&[String]>) -> Vec<String> {
        match names {
            Some(names) => names.to_vec(),
            None => self.live().used_sources().into_iter().collect(),
        }
    }

    fn queue(self: &Arc<Self>, name: &str) -> Arc<SourceQueue> {
        let mut queues = lock(&self.queues);
        if let Some(q) = queues.get(name) {
            return q.clone();
        }
        let q = Arc::new(SourceQueue {
            name: name.to_owned(),
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
        });
        queues.insert(name.to_owned(), q.clone());
        self.tracker.spawn(source_worker(self.clone(), q.clone()));
        q
    }

    fn enqueue(self: &Arc<Self>, name: &str, waiter: Option<Waiter>) {
        let q = self.queue(name);
        {
            let mut p = lock(&q.pending);
            p.queued = true;
            p.waiters.extend(waiter);
        }
        q.wake.notify_one();
    }

    /// Asks for a refresh of `sources` (every used source when `None`) and
    /// returns at once.
    pub fn refresh(self: &Arc<Self>, sources: Option<&[String]>, reason: &str) {
        let targets = self.targets(sources);
        tracing::debug!(reason, sources = ?targets, "refresh requested");
        for name in &targets {
            self.enqueue(name, None);
        }
    }

    /// Refreshes `sources` (every used source when `None`) and returns once
    /// the result is rendered, with what changed.
    pub async fn refresh_and_wait(
        self: &Arc<Self>,
        sources: Option<&[String]>,
        reason: &str,
    ) -> Report {
        let targets = self.targets(sources);
        tracing::debug!(reason, sources = ?targets, "refresh requested, waiting");
        let mut receivers = Vec::new();
        for name in &targets {
            let (tx, rx) = oneshot::channel();
            self.enqueue(name, Some(tx));
            receivers.push(rx);
        }
        let mut report = Report::default();
        for rx in receivers {
            match rx.await {
                Ok(r) => report.merge(r),
                Err(_) => report.merge(Report {
                    changed: Vec::new(),
                    errors: vec!["the refresh was cancelled: the service is stopping".into()],
                }),
            }
        }
        report
    }

    /// The sources a webhook about `page_id` concerns: the manage source with
    /// that page id, or a public one whose snapshot has it. `None` (refresh
    /// all) when the payload names no page or no source matches.
    pub fn sources_for_page(&self, page_id: Option<&str>) -> Option<Vec<String>> {
        let page_id = page_id?;
        let live = self.live();
        let data = self.data();
        let matched: Vec<String> =
            live.config
                .sources
                .values()
                .filter(|s| match s.kind.webhook_page() {
                    crate::config::WebhookPage::Id(p) => p == page_id,
                    crate::config::WebhookPage::Fetched => data
                        .sources
                        .get(&s.name)
                        .is_some_and(|d| d.snapshot.page.id == page_id),
                    crate::config::WebhookPage::Never
                    | crate::config::WebhookPage::Alertmanager => false,
                })
                .map(|s| s.name.clone())
                .collect();
        (!matched.is_empty()).then_some(matched)
    }

    /// With `[server] webhook_preview`, hands a Statuspage webhook for the
    /// page of `sources` to the renderer, which applies it to their last
    /// good snapshots, renders the clusters it concerns, and then asks for
    /// the fetch that confirms it: the preview does not share the two cores
    /// with parsing the page. Returns at once: whether it did (otherwise
    /// the caller asks for the fetch itself).
    pub fn preview(&self, sources: &[String], payload: serde_json::Value) -> bool {
        if !self.live().config.server.webhook_preview {
            return false;
        }
        self.send(RenderMsg::Preview {
            sources: sources.to_vec(),
            payload,
        });
        true
    }

    /// The sources an Alertmanager webhook concerns: every source of kind
    /// `alertmanager`. `None` (refresh all) when there is none.
    pub fn alertmanager_sources(&self) -> Option<Vec<String>> {
        let live = self.live();
        let matched: Vec<String> = live
            .config
            .sources
            .values()
            .filter(|s| s.kind.webhook_page() == crate::config::WebhookPage::Alertmanager)
            .map(|s| s.name.clone())
            .collect();
        (!matched.is_empty()).then_some(matched)
    }

    /// Puts a new configuration in force: re-renders from the current
    /// snapshots, and fetches the sources that are new or changed.
    pub fn reload(self: &Arc<Self>, live: Live) {
        let old = self.live();
        let changed: Vec<String> = live
            .used_sources()
            .into_iter()
            .filter(|name| {
                old.config.sources.get(name) != live.config.sources.get(name)
                    || !self.data().sources.contains_key(name)
            })
            .collect();
        if live.config.server.listen != old.config.server.listen {
            tracing::warn!(
                "`[server] listen` changed to `{}`; it takes effect at the next start",
                live.config.server.listen
            );
        }
        write(&self.live, Arc::new(live));
        self.metrics.config_reload(true);
        self.send(RenderMsg::Rerender);
        if !changed.is_empty() {
            self.refresh(Some(&changed), "configuration change");
        }
    }

    /// `Ok` when the files are rendered from data no older than
    /// `stale_after`; otherwise every reason why not.
    pub fn readiness(&self, now: Timestamp) -> std::result::Result<(), Vec<String>> {
        let live = self.live();
        let data = self.data();
        let health = lock(&self.health).clone();
        let stale_after = live.config.settings.stale_after;
        let mut reasons = Vec::new();
        if health.rendered_at.is_none() {
            reasons.push("nothing has been rendered yet".to_owned());
        }
        for name in live.used_sources() {
            if let Some(f) = health.permanent.get(&name) {
                reasons.push(format!(
                    "source `{name}`: {}, which retrying cannot mend: {f}",
                    f.note
                ));
            }
            let Some(d) = data.sources.get(&name) else {
                let why = data
                    .missing
                    .get(&name)
                    .map_or("not fetched yet", String::as_str);
                reasons.push(format!("source `{name}`: no data: {why}"));
                continue;
            };
            let age = now.duration_since(d.snapshot.fetched_at);
            if age > stale_after {
                let why = d
                    .fetch_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                reasons.push(format!(
                    "source `{name}`: the last good fetch was {} ago, more than `stale_after` ({}){why}",
                    short_duration(age),
                    short_duration(stale_after)
                ));
            }
        }
        reasons.extend(health.errors);
        reasons.extend(self.notifier.failing(&live.config, now));
        if let Some(since) = health.rendering_since {
            let running = since.elapsed();
            if running > SLOW_RENDER {
                reasons.push(format!(
                    "a render has been running for {} s; the files stay as they were until it ends\n\
                     hint: a template may loop for too long; fix it in `templates_dir`",
                    running.as_secs()
                ));
            }
        }
        if let Some(running) = self.metrics.on_change_elapsed() {
            let timeout = std_duration(live.config.server.on_change_timeout, Duration::ZERO);
            if running > SLOW_ON_CHANGE.min(timeout / 2) {
                reasons.push(format!(
                    "on_change has been running for {} s; changed files are not distributed until it ends \
                     (it is killed after `on_change_timeout`, {})",
                    running.as_secs(),
                    short_duration(live.config.server.on_change_timeout)
                ));
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    /// Logs, at error level, each source that starts (or stops) failing for
    /// good, once per change rather than once per poll, and keeps the set
    /// for `/readyz` and `/metrics`.
    fn note_permanent_failures(&self, live: &Live, store: &Store) {
        let now: BTreeMap<String, FetchFailure> = store
            .permanent_failures()
            .into_iter()
            .filter(|(name, _)| live.config.sources.contains_key(name))
            .collect();
        let mut health = lock(&self.health);
        for (name, f) in &now {
            if health.permanent.get(name) != Some(f) {
                tracing::error!(
                    source = %name,
                    "{}: {f}; serving the last good data until this is fixed",
                    f.note
                );
            }
        }
        for name in health.permanent.keys() {
            if !now.contains_key(name) {
                tracing::info!(source = %name, "the source answers again");
            }
        }
        for name in live.config.sources.keys() {
            self.metrics.permanent_failure(name, now.contains_key(name));
        }
        health.permanent = now;
    }

    async fn fetch(
        &self,
        src: &SourceConfig,
        config: &Config,
    ) -> std::result::Result<Fetched, FetchFailure> {
        let started = Instant::now();
        let endpoint = match crate::source::Endpoint::of(src) {
            Ok(e) => e,
            Err(e) => {
                self.metrics.fetch(&src.name, "config_error", 0.0);
                return Err(e.to_string().into());
            }
        };
        let opts = pipeline::fetch_options(config, Timestamp::now());
        // A Statuspage page is asked only for what changed since the
        // snapshot held (see `validators`); other kinds are read in full.
        let prior = self.validators.prior(&src.name);
        let result = conditional::fetch(&self.client, &endpoint, &opts, prior.as_deref()).await;
        let label = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => fetch_error_label(e.kind()),
        };
        self.metrics
            .fetch(&src.name, &label, started.elapsed().as_secs_f64());
        match result {
            Ok(Outcome::Unchanged(validators)) => {
                tracing::debug!(source = %src.name, elapsed_ms = started.elapsed().as_millis(), "unchanged upstream");
                Ok(Fetched::Unchanged(validators))
            }
            Ok(Outcome::Changed(fetched, validators)) => {
                tracing::info!(source = %src.name, elapsed_ms = started.elapsed().as_millis(), "fetched");
                for s in &fetched.skipped {
                    tracing::warn!(source = %src.name, "{s}");
                }
                self.metrics.items_skipped(&src.name, fetched.skipped.len());
                let at = fetched.snapshot.fetched_at;
                self.validators
                    .offer(&src.name, validators, prior.as_deref(), at);
                Ok(Fetched::Snapshot(fetched.snapshot))
            }
            Err(e) => {
                let failure = FetchFailure::from(&e);
                // Said at error level by the renderer, once per change.
                if failure.is_permanent() {
                    tracing::debug!(source = %src.name, "fetch failed: {e}");
                } else {
                    tracing::warn!(source = %src.name, "fetch failed: {e}");
                }
                Err(failure)
            }
        }
    }
}

fn fetch_error_label(kind: FetchErrorKind) -> String {
    match kind {
        FetchErrorKind::Status(s) => format!("status_{s}"),
        FetchErrorKind::RateLimited => "rate_limited".into(),
        FetchErrorKind::Timeout => "timeout".into(),
        FetchErrorKind::Connection => "connection".into(),
        FetchErrorKind::InvalidJson => "invalid_json".into(),
        FetchErrorKind::UnexpectedShape => "unexpected_shape".into(),
        FetchErrorKind::TooLarge => "too_large".into(),
        FetchErrorKind::Unreadable => "unreadable".into(),
    }
}

/// The persisted snapshot of every configured source.
fn load_persisted(live: &Live) -> Store {
    let state_dir = &live.config.settings.state_dir;
    // What a killed process left half-written there goes before anything
    // is kept again.
    crate::output::remove_dead_temps_in(state_dir);
    let (store, events) = Store::load(state_dir, live.config.sources.keys());
    for e in events {
        tracing::warn!("{e}");
    }
    for name in live.config.sources.keys() {
        if let Some(s) = store.snapshot(name) {
            tracing::info!(source = %name, fetched_at = %s.fetched_at, "loaded the persisted snapshot");
        }
    }
    store
}

/// The data every configured source has, in the form `pipeline` takes:
/// the snapshots shared with `store`, the resolved ids and calendar memory
/// as `kept` holds them.
fn gathered(config: &Config, store: &Store, kept: &mut Kept) -> Gathered {
    let mut data = store.gathered(config.sources.keys(), crate::mapping::KnownIds::default());
    kept.fill(&config.settings.state_dir, &mut data);
    data
}

async fn source_worker(c: Arc<Coordinator>, q: Arc<SourceQueue>) {
    loop {
        tokio::select! {
            () = c.cancel.cancelled() => return,
            () = q.wake.notified() => {}
        }
        // A wake-up stored while the last fetch ran may already be served.
        if !lock(&q.pending).queued {
            continue;
        }
        let debounce = std_duration(c.live().config.settings.debounce, Duration::ZERO);
        tokio::select! {
            () = c.cancel.cancelled() => return,
            () = tokio::time::sleep(debounce) => {}
        }
        let waiters = {
            let mut p = lock(&q.pending);
            p.queued = false;
            std::mem::take(&mut p.waiters)
        };
        let live = c.live();
        let result = match live.config.sources.get(&q.name) {
            Some(src) => tokio::select! {
                () = c.cancel.cancelled() => return,
                r = c.fetch(src, &live.config) => r,
            },
            None => Err(format!("no source `{}` is configured", q.name).into()),
        };
        let source = q.name.clone();
        c.send(match result {
            Ok(Fetched::Unchanged(validators)) => RenderMsg::Unchanged {
                source,
                validators: Box::new(validators),
                waiters,
            },
            Ok(Fetched::Snapshot(snap)) => RenderMsg::Fetched {
                source,
                result: Ok(Box::new(snap)),
                waiters,
            },
            Err(e) => RenderMsg::Fetched {
                source,
                result: Err(e),
                waiters,
            },
        });
    }
}

async fn renderer_task(
    c: Arc<Coordinator>,
    mut rx: mpsc::UnboundedReceiver<RenderMsg>,
    mut store: Store,
) {
    let mut inputs = Inputs::default();
    let mut kept = Kept::default();
    let mut boundary: Option<Timestamp> = None;
    loop {
        // A message, or the clock passing a time window boundary: then the
        // clusters whose items crossed it are planned from the same data.
        let first = tokio::select! {
            biased;
            () = c.cancel.cancelled() => break,
            m = rx.recv() => match m {
                Some(m) => Some(m),
                None => break,
            },
            () = sleep_until(boundary) => None,
        };
        // Everything that arrived meanwhile goes into this one render.
        let mut batch: Vec<RenderMsg> = first.into_iter().collect();
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let mut plan_all = c.plan_all.swap(false, Ordering::SeqCst);
        let mut confirm: Vec<String> = Vec::new();
        let mut waiters = Vec::new();
        let mut fetch_errors = Vec::new();
        let mut fetch_outcomes = Vec::new();
        let mut keep = Vec::new();
        let mut confirmed: Vec<String> = Vec::new();
        let mut previewed = BTreeMap::new();
        // Copies no longer needed, dropped on the blocking thread.
        let mut spent = Vec::new();
        // A batch of webhook previews alone is rendered on this thread (see
        // `on_this_thread` below).
        let previews_only =
            !batch.is_empty() && batch.iter().all(|m| matches!(m, RenderMsg::Preview { .. }));
        for msg in batch {
            match msg {
                RenderMsg::Fetched {
                    source,
                    result,
                    waiters: w,
                } => {
                    previewed.remove(&source);
                    spent.extend(store.take_spare(&source));
                    let events = store.accept(
                        &source,
                        result.map(|snap| (*snap, Vec::new())),
                        Timestamp::now(),
                    );
                    let failure = store.error(&source).cloned();
                    fetch_outcomes.push(failure.is_none());
                    waiters.extend(w);
                    let taken = failure
                        .is_none()
                        .then(|| store.snapshot(&source).map(|s| s.fetched_at))
                        .flatten();
                    if let Some(v) = c.validators.accepted(&source, taken) {
                        keep.extend(taken.map(|at| (source.clone(), v, at)));
                    }
                    match failure {
                        None => {
                            if let Some(snap) = store.snapshot(&source) {
                                c.metrics.good_fetch(&source, snap.fetched_at);
                            }
                        }
                        Some(e) => {
                            // As in `render`: a page that lost every
                            // component at once keeps its last good data
                            // rather than erase every banner.
                            if e.note == pipeline::SUSPICIOUS_DROP_NOTE {
                                tracing::warn!(source = %source, "{e}; keeping the last good snapshot");
                            }
                            for event in events {
                                if let Event::NotKept { .. } | Event::Unreadable { .. } = event {
                                    tracing::warn!("{event}");
                                }
                            }
                            fetch_errors.push(format!("source `{source}`: {e}"));
                        }
                    }
                }
                RenderMsg::Unchanged {
                    source,
                    validators,
                    waiters: w,
                } => {
                    let now = Timestamp::now();
                    if c.validators.unchanged(&source, *validators) && store.renew(&source, now) {
                        tracing::debug!(source = %source, "the page is unchanged: the data held is confirmed");
                        c.metrics.good_fetch(&source, now);
                        fetch_outcomes.push(true);
                        waiters.extend(w);
                        confirmed.push(source);
                    } else {
                        // Not about the snapshot held: asked again in full.
                        tracing::debug!(source = %source, "unchanged, but not from the data held; fetching in full");
                        c.validators.forget(&source);
                        if w.is_empty() {
                            c.enqueue(&source, None);
                        }
                        for w in w {
                            c.enqueue(&source, Some(w));
                        }
                    }
                }
                RenderMsg::Rerender => plan_all = true,
                RenderMsg::Preview { sources, payload } => {
                    // The snapshot changes in place: upstream's "unchanged"
                    // would no longer be about it.
                    for s in &sources {
                        c.validators.forget(s);
                    }
                    apply_preview(&mut store, &sources, &payload, &mut previewed);
                    confirm.extend(sources);
                }
            }
        }
        let live = c.live();
        let data = Arc::new(gathered(&live.config, &store, &mut kept));
        write(&c.data, data.clone());
        c.note_permanent_failures(&live, &store);
        let good = store.take_fresh();
        if plan_all {
            inputs.forget();
        }

        // Copies of the snapshots a webhook preview may change, made after
        // the files: the preview then changes one in place rather than copy
        // what this render shares on its way to the MOTD.
        let spare_for: Vec<(String, Arc<Snapshot>)> = if live.config.server.webhook_preview {
            data.sources
                .iter()
                .filter(|(name, _)| previewable(&live.config, name) && store.wants_spare(name))
                .map(|(name, d)| (name.clone(), Arc::clone(&d.snapshot)))
                .collect()
        } else {
            Vec::new()
        };
        let started = Instant::now();
        lock(&c.health).rendering_since = Some(started);
        let previews_alone = previews_only && !plan_all;
        let work = {
            let (live, data, c) = (live.clone(), data.clone(), c.clone());
            let mut inputs = std::mem::take(&mut inputs);
            let mut kept = std::mem::take(&mut kept);
            move || {
                let outcome = render_all(
                    &live,
                    data,
                    &previewed,
                    previews_alone,
                    &c,
                    &mut inputs,
                    &mut kept,
                );
                // After the files: a webhook's change reaches the MOTD
                // without waiting for the snapshot's own fsync.
                for e in store::save(&live.config.settings.state_dir, &good) {
                    tracing::warn!(source = e.source(), "cannot keep the snapshot: {e}");
                }
                drop(spent);
                let spares: Vec<_> = spare_for
                    .into_iter()
                    .map(|(name, snap)| (name, Arc::downgrade(&snap), Snapshot::clone(&snap)))
                    .collect();
                (outcome, inputs, kept, spares)
            }
        };
        let outcome = if previews_alone && on_this_thread() {
            // A preview plans a cluster or two: handing it to a blocking
            // thread would cost that thread's wake-up on the way to the
            // MOTD, more than the render itself on a busy machine. The
            // thread that answered the webhook renders it, having handed
            // its other tasks to another worker.
            tokio::task::block_in_place(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                    .map_err(|_| "it panicked".to_owned())
            })
        } else {
            let job = tokio::task::spawn_blocking(work);
            // Shutdown does not wait for a render: the blocking thread is
            // left to the process's exit. Files are replaced atomically, so
            // none is left half written.
            tokio::select! {
                biased;
                () = c.cancel.cancelled() => {
                    tracing::warn!(
                        elapsed_ms = started.elapsed().as_millis(),
                        "stopping while a render is under way; it is not waited for"
                    );
                    break;
                }
                r = job => r.map_err(|e| e.to_string()),
            }
        };
        let (changes, mut errors) = match outcome {
            Ok((r, back, back_kept, spares)) => {
                inputs = back;
                kept = back_kept;
                for (name, of, copy) in spares {
                    store.keep_spare(&name, &of, copy);
                }
                r
            }
            Err(e) => (Vec::new(), vec![format!("the render failed: {e}")]),
        };
        if !keep.is_empty() || !confirmed.is_empty() {
            // Beside the snapshots just saved, off the way to the next
            // render: what is not kept only costs a restart's first fetch.
            let dir = live.config.settings.state_dir.clone();
            c.tracker
                .spawn_blocking(move || super::validators::keep(&dir, keep, &confirmed));
        }
        boundary = inputs.next_boundary(&live.config, Timestamp::now());
        c.metrics
            .render_duration
            .observe(started.elapsed().as_secs_f64());
        for change in &changes {
            c.metrics.file_written(change.action);
            tracing::info!("{change}");
        }
        {
            // Said once per change, not once per render.
            let before = &lock(&c.health).errors;
            for e in errors.iter().filter(|e| !before.contains(e)) {
                tracing::warn!("{e}");
            }
        }
        {
            let mut health = lock(&c.health);
            health.rendered_at = Some(Timestamp::now());
            health.errors.clone_from(&errors);
            health.rendering_since = None;
        }
        for fetched_ok in fetch_outcomes {
            c.metrics.refresh(fetched_ok && errors.is_empty());
        }
        let clusters: BTreeSet<String> = changes
            .iter()
            .filter_map(|ch| ch.cluster().map(str::to_owned))
            .collect();
        if !clusters.is_empty() && !live.config.server.on_change.is_empty() {
            lock(&c.changed_clusters).extend(clusters);
            c.on_change_wake.notify_one();
        }
        fetch_errors.append(&mut errors);
        let report = Report {
            changed: changes,
            errors: fetch_errors,
        };
        for w in waiters {
            let _ = w.send(report.clone());
        }
        if !confirm.is_empty() {
            confirm.sort();
            confirm.dedup();
            c.refresh(Some(&confirm), "webhook");
        }
    }
    tracing::debug!("renderer stopped");
}

/// At most this many clusters get their MOTD written ahead of the rest of
/// their files after a webhook preview: rendering a MOTD twice costs little
/// for a few clusters, and would double a whole page's render.
const MOTDS_FIRST_MAX: usize = 16;

/// Whether this task may block its worker thread: only on a runtime with
/// other workers to take over its tasks (`serve`'s; tests may run the
/// renderer on a single-threaded one).
fn on_this_thread() -> bool {
    tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
}

/// Applies a webhook's incident or component to the snapshots of
/// `sources` (see [`super::preview`]), noting in `previewed` what it
/// changed.
fn apply_preview(
    store: &mut Store,
    sources: &[String],
    payload: &serde_json::Value,
    previewed: &mut BTreeMap<String, Previewed>,
) {
    let Some(preview) = super::preview::parse(payload) else {
        tracing::debug!("the webhook carries no incident or component to preview");
        return;
    };
    for name in sources {
        let Some(held) = store.shared(name) else {
            continue;
        };
        if !super::preview::applies(held, &preview) {
            tracing::info!(source = %name, "webhook preview not newer than the data held: ignored");
            continue;
        }
        let applied_to = Arc::downgrade(held);
        let Some(touched) = store
            .snapshot_mut(name)
            .and_then(|snap| super::preview::apply(snap, &preview))
        else {
            continue;
        };
        tracing::info!(source = %name, "webhook preview applied; the fetch confirms it");
        let p = previewed.entry(name.clone()).or_insert_with(|| Previewed {
            applied_to,
            touched: super::preview::Touched::default(),
        });
        p.touched.components.extend(touched.components);
        p.touched.page_wide |= touched.page_wide;
    }
}

/// Whether a webhook preview can change the snapshot of source `name`.
fn previewable(config: &Config, name: &str) -> bool {
    config.sources.get(name).is_some_and(|s| {
        matches!(
            s.kind.webhook_page(),
            crate::config::WebhookPage::Id(_) | crate::config::WebhookPage::Fetched
        )
    })
}

/// Waits until just past `t`, or for ever when there is none.
async fn sleep_until(t: Option<Timestamp>) {
    match t {
        Some(t) => {
            let wait = std_duration(Timestamp::now().duration_until(t), Duration::ZERO);
            tokio::time::sleep(wait + Duration::from_millis(5)).await;
        }
        None => std::future::pending().await,
    }
}

/// Plans and writes the clusters whose inputs changed (see
/// [`super::incremental`]), every cluster when `inputs` says so. Returns
/// what changed and what could not be rendered.
///
/// The events of the clusters rendered are queued in the notification
/// outbox here, on the renderer's thread, before anything is sent: the
/// delivery task sends them, so a receiver never delays a render. The
/// outbox always sees every cluster's latest view.
fn render_all(
    live: &Live,
    data: Arc<Gathered>,
    previewed: &BTreeMap<String, Previewed>,
    previews_alone: bool,
    c: &Coordinator,
    inputs: &mut Inputs,
    kept: &mut Kept,
) -> (Vec<Change>, Vec<String>) {
    let now = Timestamp::now();
    let clusters: Vec<_> = match inputs.dirty(&live.config, &data, now, previewed) {
        None => live.config.clusters.values().collect(),
        Some(names) => names
            .iter()
            .filter_map(|n| live.config.clusters.get(n))
            .collect(),
    };
    if clusters.is_empty() {
        inputs.record(&live.config, data, pipeline::Plan::default(), now);
        return (Vec::new(), Vec::new());
    }
    // What webhook previews alone changed reaches the login banners first:
    // their MOTDs, then everything else as always. A page-wide item
    // concerns every cluster; its MOTDs are not rendered twice.
    let first = if previews_alone && clusters.len() <= MOTDS_FIRST_MAX {
        pipeline::write_motds_first(
            &live.config,
            &live.renderer,
            &clusters,
            &data,
            &live.config.settings.output_dir,
            now,
        )
    } else {
        Vec::new()
    };
    tracing::debug!(clusters = clusters.len(), "planning");
    let plan = pipeline::plan(&live.config, &live.renderer, &clusters, &data, now);
    let mut errors: Vec<String> = plan.errors.iter().map(ToString::to_string).collect();
    // A name that no longer resolves is rendered from its last known ids,
    // yet stays a reason in `/readyz` until the mapping is fixed.
    errors.extend(plan.warnings.iter().cloned());
    let applied = pipeline::apply(&plan, &live.config.settings.output_dir, now);
    // After the files: what a webhook changed reaches them first. The
    // calendars remember only what was written.
    for e in kept.keep(&live.config, &data, &plan, applied.is_ok()) {
        tracing::warn!("{e}");
    }
    let mut changes = first;
    changes.extend(applied.unwrap_or_else(|e| {
        errors.push(e.to_string());
        Vec::new()
    }));
    inputs.record(&live.config, data, plan, now);
    if !errors.is_empty() {
        inputs.forget();
    }
    if let Err(e) = c
        .notifier
        .enqueue(&live.config, &inputs.views(), Some(&c.metrics))
    {
        tracing::error!("notifications are not queued: {e}");
        errors.push(format!("notifications are not queued: {e}"));
    }
    (changes, errors)
}

/// Delivers notifications: at once when some are queued, else when the
/// next retry is due. Each route's deliveries run side by side, each
/// bounded by a timeout, so one receiver that hangs holds up no other. At
/// shutdown no new delivery starts; the ones under way finish.
async fn notify_task(c: Arc<Coordinator>) {
    let busy: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    loop {
        let live = c.live();
        if !live.config.notify.is_empty() {
            let due = c
                .notifier
                .due_by_route(&live.config, false, Some(&c.metrics));
            for (name, ids) in due {
                if !lock(&busy).insert(name.clone()) {
                    continue; // this route is still busy with earlier ones
                }
                let (c2, live, busy) = (c.clone(), live.clone(), busy.clone());
                c.tracker.spawn(async move {
                    if let Some(route) = live.config.notify.iter().find(|r| r.name == name) {
                        c2.notifier
                            .deliver_route(
                                &live.config,
                                &live.renderer,
                                Some(&c2.metrics),
                                route,
                                ids,
                                None,
                            )
                            .await;
                    }
                    lock(&busy).remove(&name);
                    // What this route has left may be due: look again.
                    c2.notifier.wake();
                });
            }
        }
        let (size, oldest) = c.notifier.backlog();
        c.metrics.outbox(size, oldest);
        // Never longer than a minute: the ages in the metrics move on.
        let wait = c
            .notifier
            .next_due_in()
            .unwrap_or(Duration::from_secs(60))
            .clamp(Duration::from_millis(50), Duration::from_secs(60));
        tokio::select! {
            () = c.cancel.cancelled() => return,
            () = c.notifier.wait(wait) => {}
        }
    }
}

async fn poll_task(c: Arc<Coordinator>) {
    loop {
        let interval = std_duration(
            c.live().config.settings.poll_interval,
            Duration::from_secs(1),
        );
        tokio::select! {
            () = c.cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {
                // A custom template may show relative times: a poll plans
                // every cluster, so they follow the clock as before. Else
                // a page found unchanged plans nothing.
                let clock = c.live().config.settings.templates_dir.as_deref()
                    .is_some_and(crate::oneshot::templates_read_the_clock);
                if clock {
                    c.plan_all.store(true, Ordering::SeqCst);
                }
                c.refresh(None, "poll");
            }
        }
    }
}

/// Runs `on_change` after files changed: one run at a time; changes made
/// while it runs are collected for the next run.
///
/// The command runs in a process group of its own, without the secret
/// variables of the configuration. It is killed, with its whole group, after
/// `on_change_timeout` and when the service stops, so a hung command neither
/// blocks later runs for ever nor outlives the service.
async fn on_change_task(c: Arc<Coordinator>) {
    loop {
        tokio::select! {
            () = c.cancel.cancelled() => return,
            () = c.on_change_wake.notified() => {}
        }
        let clusters = std::mem::take(&mut *lock(&c.changed_clusters));
        let live = c.live();
        let Some((program, args)) = live.config.server.on_change.split_first() else {
            continue;
        };
        if clusters.is_empty() {
            continue;
        }
        let list = clusters.into_iter().collect::<Vec<_>>().join(" ");
        let timeout = live.config.server.on_change_timeout;
        tracing::info!(clusters = %list, "running on_change `{program}`");
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("STATUSMOTD_CHANGED_CLUSTERS", &list)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .process_group(0);
        for name in live.config.secret_env_vars() {
            cmd.env_remove(name);
        }
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                c.metrics.on_change("error");
                tracing::error!("cannot run on_change `{program}`: {e}");
                continue;
            }
        };
        c.metrics.on_change_running(Some(Instant::now()));
        let status = tokio::select! {
            () = c.cancel.cancelled() => {
                tracing::warn!("stopping while on_change `{program}` still runs: killing its process group");
                crate::child::kill_group(&mut child).await;
                c.metrics.on_change_running(None);
                return;
            }
            () = tokio::time::sleep(std_duration(timeout, Duration::ZERO)) => None,
            s = child.wait() => Some(s),
        };
        match status {
            None => {
                tracing::error!(
                    "on_change `{program}` still runs after `on_change_timeout` ({}): killing its process group",
                    short_duration(timeout)
                );
                crate::child::kill_group(&mut child).await;
                c.metrics.on_change("timeout");
            }
            Some(Ok(s)) if s.success() => c.metrics.on_change("ok"),
            Some(Ok(s)) => {
                c.metrics.on_change("error");
                tracing::error!("on_change `{program}` failed: {s}");
            }
            Some(Err(e)) => {
                c.metrics.on_change("error");
                tracing::error!("cannot wait for on_change `{program}`: {e}");
            }
        }
        c.metrics.on_change_running(None);
    }
}

#[cfg(test)]
// The tests write their mapping and templates into a scratch directory.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;
    use tokio::sync::Semaphore;

    /// A Statuspage v2 page on `127.0.0.1:0` that counts requests to
    /// `summary.json` and holds each one until the test hands out a permit,
    /// so a fetch stays in flight exactly as long as a test wants.
    struct Upstream {
        summaries: AtomicUsize,
        gate: Semaphore,
    }

    impl Upstream {
        async fn start() -> (Arc<Upstream>, String) {
            let up = Arc::new(Upstream {
                summaries: AtomicUsize::new(0),
                gate: Semaphore::new(0),
            });
            let page = || json!({"id": "pg", "name": "Page", "url": "https://status.example.com"});
            let app = Router::new()
                .route(
                    "/api/v2/summary.json",
                    get(move |State(up): State<Arc<Upstream>>| async move {
                        up.summaries.fetch_add(1, Ordering::SeqCst);
                        up.gate.acquire().await.expect("the gate is never closed").forget();
                        Json(json!({
                            "page": page(),
                            "components": [
                                {"id": "c1", "name": "Storage", "status": "operational", "group_id": null},
                            ],
                            "incidents": [],
                            "scheduled_maintenances": [],
                        }))
                    }),
                )
                .route(
                    "/api/v2/incidents.json",
                    get(move || async move { Json(json!({"page": page(), "incidents": []})) }),
                )
                .route(
                    "/api/v2/scheduled-maintenances.json",
                    get(move || async move {
                        Json(json!({"page": page(), "scheduled_maintenances": []}))
                    }),
                )
                .with_state(up.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            (up, url)
        }

        fn summaries(&self) -> usize {
            self.summaries.load(Ordering::SeqCst)
        }

        /// Lets `n` held or future requests to `summary.json` answer.
        fn release(&self, n: usize) {
            self.gate.add_permits(n);
        }
    }

    /// A `mapping.toml` in `dir` with one public source at `url` and the
    /// given clusters (all on its `Storage` component). Time is paused in
    /// these tests and jumps ahead whenever every task waits, even on the
    /// loopback socket: the long `request_timeout` and `poll_interval` keep
    /// those jumps from timing out a fetch or adding a poll.
    fn live(dir: &Path, url: &str, debounce: &str, clusters: &[&str], extra: &str) -> Live {
        use std::fmt::Write as _;
        let mut table = String::new();
        for c in clusters {
            let _ = write!(
                table,
                "[clusters.{c}]\nsource = \"up\"\ncomponents = [\"Storage\"]\n"
            );
        }
        let text = format!(
            "[settings]\ndebounce = \"{debounce}\"\npoll_interval = \"30d\"\n\
             request_timeout = \"1h\"\n{extra}\n\
             [sources.up]\nkind = \"statuspage-public\"\nurl = \"{url}\"\n{table}"
        );
        let path = dir.join("mapping.toml");
        std::fs::write(&path, &text).unwrap();
        Live::new(Config::parse(&text, &path).unwrap()).unwrap()
    }

    /// A coordinator started on `live`, with what stops it.
    fn start(live: Live) -> (Arc<Coordinator>, CancellationToken, TaskTracker) {
        let (cancel, tracker) = (CancellationToken::new(), TaskTracker::new());
        let c = Coordinator::start(live, cancel.clone(), &tracker);
        (c, cancel, tracker)
    }

    /// Stops a coordinator of [`start`] and waits for its tasks.
    async fn stop(cancel: &CancellationToken, tracker: &TaskTracker) {
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
    }

    /// Waits (in paused time, so at once) until `cond` holds.
    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        for _ in 0..100_000 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("still waiting for {what}");
    }

    /// Lets every task run and timers shorter than `d` fire.
    async fn settle(d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn motd(dir: &Path, cluster: &str) -> PathBuf {
        dir.join("out").join(cluster).join("motd")
    }

    /// Every file under `dir`, relative.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_hundred_triggers_during_a_fetch_give_one_more_fetch() {
        let (up, url) = Upstream::start().await;
        let tmp = tempfile::tempdir().unwrap();
        let (c, cancel, tracker) = start(live(tmp.path(), &url, "0s", &["alpha"], ""));
        // The fetch of `start` is held upstream.
        until("the first fetch", || up.summaries() == 1).await;
        for _ in 0..100 {
            c.refresh(None, "test");
        }
        settle(Duration::from_secs(60)).await;
        assert_eq!(up.summaries(), 1, "a second fetch while one is in flight");

        up.release(1);
        until("the queued fetch", || up.summaries() == 2).await;
        up.release(1000);
        settle(Duration::from_secs(600)).await;
        assert_eq!(
            up.summaries(),
            2,
            "100 triggers during a fetch give one more fetch"
        );
        assert!(motd(tmp.path(), "alpha").is_file());

        stop(&cancel, &tracker).await;
    }

    #[tokio::test(start_paused = true)]
    async fn triggers_within_the_debounce_give_one_fetch() {
        let (up, url) = Upstream::start().await;
        up.release(1000);
        let tmp = tempfile::tempdir().unwrap();
        let (c, cancel, tracker) = start(live(tmp.path(), &url, "1s", &["alpha"], ""));
        until("the first render", || motd(tmp.path(), "alpha").is_file()).await;
        settle(Duration::from_secs(60)).await;
        assert_eq!(up.summaries(), 1);

        // Five triggers over 800 ms, within the 1 s debounce of the first.
        for _ in 0..5 {
            c.refresh(None, "test");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        settle(Duration::from_secs(60)).await;
        assert_eq!(up.summaries(), 2, "a burst within `debounce` is one fetch");

        // Further apart than the debounce, they are two.
        c.refresh(None, "test");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        c.refresh(None, "test");
        settle(Duration::from_secs(60)).await;
        assert_eq!(up.summaries(), 4);

        stop(&cancel, &tracker).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_during_a_fetch_renders_the_new_clusters_and_loses_no_trigger() {
        let (up, url) = Upstream::start().await;
        let tmp = tempfile::tempdir().unwrap();
        let (c, cancel, tracker) = start(live(tmp.path(), &url, "0s", &["alpha"], ""));
        until("the first fetch", || up.summaries() == 1).await;
        c.reload(live(tmp.path(), &url, "0s", &["alpha", "beta"], ""));
        // A trigger after the reload, while the fetch is still held.
        c.refresh(None, "test");
        settle(Duration::from_secs(60)).await;
        assert_eq!(c.live().config.clusters.len(), 2);

        up.release(1000);
        until("both clusters rendered", || {
            motd(tmp.path(), "alpha").is_file() && motd(tmp.path(), "beta").is_file()
        })
        .await;
        settle(Duration::from_secs(600)).await;
        // The fetch under way finished, and the triggers it could not serve
        // gave one more.
        assert_eq!(up.summaries(), 2);

        // The coordinator still answers.
        let report = c.refresh_and_wait(None, "test").await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(up.summaries(), 3);

        stop(&cancel, &tracker).await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_during_a_render_is_prompt_and_leaves_no_partial_file() {
        let (up, url) = Upstream::start().await;
        up.release(1000);
        let tmp = tempfile::tempdir().unwrap();
        let templates = tmp.path().join("templates");
        std::fs::create_dir(&templates).unwrap();
        // A render that takes seconds, within the templates' fuel.
        std::fs::write(
            templates.join("motd.txt.j2"),
            "{% for a in range(10000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}complete\n",
        )
        .unwrap();
        let (c, cancel, tracker) = start(live(
            tmp.path(),
            &url,
            "0s",
            &["alpha"],
            "templates_dir = \"templates\"",
        ));
        // The renderer publishes the data and starts the render in one step.
        // Time stands still while a blocking task runs, so a sleep would
        // only wake after the render: spin instead.
        let mut spins = 0u64;
        while !c.data().sources.contains_key("up") {
            spins += 1;
            assert!(spins < 100_000_000, "still waiting for the render");
            tokio::task::yield_now().await;
        }

        let stopping = std::time::Instant::now();
        stop(&cancel, &tracker).await;
        let took = stopping.elapsed();
        // The render takes about a second; shutdown does not wait for it.
        assert!(took < Duration::from_millis(500), "shutdown took {took:?}");
        let out = tmp.path().join("out");
        assert!(
            !motd(tmp.path(), "alpha").exists(),
            "the render was over before the shutdown"
        );
        for f in files(&out) {
            assert_eq!(
                f, ".statusmotd/lock",
                "a file written before the render ended"
            );
        }

        // The abandoned render ends on its blocking thread: its files are
        // whole, and nothing half written is left beside them.
        let waiting = std::time::Instant::now();
        while !(motd(tmp.path(), "alpha").exists() && out.join("index.json").exists()) {
            assert!(
                waiting.elapsed() < Duration::from_secs(60),
                "the render never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(motd(tmp.path(), "alpha")).unwrap();
        assert_eq!(text, "complete\n");
        assert_eq!(
            files(&out),
            [
                ".statusmotd/lock",
                "alpha/maintenance.ics",
                "alpha/motd",
                "index.json"
            ],
            "a temp file is left"
        );
    }

    #[test]
    fn secret_env_vars_are_every_env_secret_of_sources_and_server() {
        let text = r#"
[sources.a]
kind = "statuspage"
page_id = "p1"
api_key = { env = "KEY_A" }
[sources.b]
kind = "statuspage"
page_id = "p2"
api_key = { file = "/etc/key" }
[sources.c]
kind = "statuspage-public"
url = "https://status.example.com"
[server]
webhook_token = { env = "HOOK" }
refresh_token = { env = "REFRESH" }
[clusters.x]
source = "c"
components = ["Storage"]
"#;
        let config = Config::parse(text, Path::new("/etc/statusmotd/mapping.toml")).unwrap();
        let names: Vec<String> = config.secret_env_vars().into_iter().collect();
        assert_eq!(names, ["HOOK", "KEY_A", "REFRESH"]);
    }

    #[test]
    fn secret_env_vars_include_every_secret_of_the_notify_routes() {
        let text = r#"
[sources.c]
kind = "statuspage-public"
url = "https://status.example.com"
[server]
refresh_token = { env = "REFRESH" }
[clusters.x]
source = "c"
components = ["Storage"]
[[notify]]
name = "chat"
to = { slack = { url = { env = "SLACK_HOOK" } } }
[[notify]]
name = "room"
to = { matrix = { homeserver = "https://m.example.org", room = "!r:m", token = { env = "MATRIX_TOKEN" } } }
[[notify]]
name = "hook"
to = { webhook = { url = "https://h.example.org", secret = { env = "HOOK_SECRET" } } }
[[notify]]
name = "mail"
to = { email = { to = ["a@example.org"], from = "s@example.org", smtp = "smtp://mail.example.org", username = "u", password = { env = "SMTP_PASSWORD" } } }
"#;
        let config = Config::parse(text, Path::new("/etc/statusmotd/mapping.toml")).unwrap();
        let names: Vec<String> = config.secret_env_vars().into_iter().collect();
        assert_eq!(
            names,
            [
                "HOOK_SECRET",
                "MATRIX_TOKEN",
                "REFRESH",
                "SLACK_HOOK",
                "SMTP_PASSWORD"
            ]
        );
    }
}
