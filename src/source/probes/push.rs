//! Pushing a probe's transitions to the site's own Statuspage page
//! (`statuspage = { source, component, incident }` on a probe; `DESIGN.md`,
//! "Probes (0.2)").
//!
//! A transition queues a [`PendingPush`] in the probes' state file, saved
//! with the counters before anything is sent ([`queue`], called from
//! [`super::record`]). [`deliver`] sends what is due, over the manage API v1
//! of the named `statuspage` source, and marks each step done in the state
//! file after its 2xx, so a push survives a restart, is retried with backoff
//! and is never sent twice. The request shapes are those of the Statuspage
//! manage API reference (developer.statuspage.io: "Update a component",
//! "Create an incident", "Update an incident"):
//!
//! - `PATCH /v1/pages/{page}/components/{id}` with
//!   `{"component": {"status": ".."}}`;
//! - `POST /v1/pages/{page}/incidents` with `{"incident": {"name", "status",
//!   "body", "component_ids", "components": {id: status}, "metadata"}}`;
//! - `PATCH /v1/pages/{page}/incidents/{id}` with the same `incident` object
//!   (`status = "resolved"`).
//!
//! Never override a person: just before pushing, the page's components and
//! unresolved incidents are read; a component `under_maintenance`, or an
//! open incident statusmotd did not create (not one of the ids in the state
//! file, and without statusmotd's `metadata`) that names the component, drops
//! the push unsent, and says so.
//!
//! Rate: one request a second per API key across every probe of the process
//! (one [`Pace`] per key); `420`/`429` answers are waited out as their
//! `Retry-After` says and the push is kept.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash as _, Hasher as _};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::state::{ProbesState, Transition};
use crate::config::{Config, ProbesConfig, PushTarget, SourceKind};
use crate::error::{Error, Result};
use crate::model::ComponentStatus;
use crate::sanitize::sanitize_line;

/// The Statuspage API allows one request a second per key.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// The longest `Retry-After` waited out within one delivery; a longer one
/// leaves the push for later.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Rate-limited answers waited out in a row before the push is left for
/// later.
const MAX_RATE_LIMIT_WAITS: u32 = 5;

/// The longest pause between two attempts of a push that keeps failing.
const MAX_BACKOFF: SignedDuration = SignedDuration::from_mins(10);

/// The largest page the API hands out.
const PER_PAGE: usize = 100;

/// A bound on pages read per list.
const MAX_PAGES: usize = 20;

/// The largest answer read.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// The `id` of an item of the page's answers, when it is one: ids go into
/// request paths and output lines, so anything but letters, digits, `-` and
/// `_` (Statuspage's ids are short alphanumerics) is taken for no id.
fn api_id(item: &Value) -> Option<&str> {
    item.get("id")
        .and_then(Value::as_str)
        .filter(|id| is_api_id(id))
}

fn is_api_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A push queued by a transition and not yet done. Each step is marked done
/// in the state file after its 2xx.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingPush {
    /// Unique within the state file: a later transition of the same probe
    /// replaces the push under a new id, so a step done for the old one is
    /// not taken for the new one.
    pub id: u64,
    pub probe: String,
    /// The `statuspage` source pushed to.
    pub source: String,
    /// The component's name on the page.
    pub component: String,
    /// The component's new status.
    pub status: ComponentStatus,
    /// One sanitized line: the incident's body.
    pub reason: String,
    pub queued_at: Timestamp,
    #[serde(default)]
    pub component_done: bool,
    /// An incident is to be opened (or adopted).
    #[serde(default)]
    pub open_incident: bool,
    /// statusmotd's incident for the probe is to be resolved.
    #[serde(default)]
    pub resolve_incident: bool,
    /// Attempts that failed so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not tried again before this.
    #[serde(default)]
    pub not_before: Option<Timestamp>,
    /// The incident to resolve, when the push carries it itself (its probe
    /// was removed from the configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}

/// The Statuspage incident statusmotd opened for a probe and has not
/// resolved yet, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedIncident {
    pub id: String,
    /// The `statuspage` source.
    pub source: String,
    /// The component's name on the page.
    pub component: String,
}

/// Queues the push of `transition` of `probe` to `target`, replacing one
/// of the same probe not yet done (the page only needs the latest status).
pub fn queue(
    state: &mut ProbesState,
    probe: &str,
    target: &PushTarget,
    transition: Transition,
    reason: &str,
    at: Timestamp,
) {
    let down = transition.to != ComponentStatus::Operational;
    state.push_seq = state.push_seq.saturating_add(1);
    let ours = state.pushed_incidents.contains_key(probe);
    let previous = state.pushes.iter().position(|p| p.probe == probe);
    let (attempts, not_before) = previous.map_or((0, None), |i| {
        (state.pushes[i].attempts, state.pushes[i].not_before)
    });
    let push = PendingPush {
        id: state.push_seq,
        probe: probe.to_owned(),
        source: target.source.clone(),
        component: target.component.clone(),
        status: transition.to,
        reason: sanitize_line(reason),
        queued_at: at,
        component_done: false,
        open_incident: target.incident && down && !ours,
        resolve_incident: target.incident && !down,
        attempts,
        not_before,
        incident: None,
    };
    match previous {
        Some(i) => state.pushes[i] = push,
        None => state.pushes.push(push),
    }
}

/// Resolves the Statuspage incidents of probes no longer in `keep`
/// (removed from the configuration), as their incidents in the view
/// resolve: a push that sets the component operational and resolves the
/// incident, queued once.
pub fn retire(state: &mut ProbesState, keep: &std::collections::BTreeSet<&str>, at: Timestamp) {
    let gone: Vec<String> = state
        .pushed_incidents
        .keys()
        .filter(|p| !keep.contains(p.as_str()))
        .cloned()
        .collect();
    for probe in gone {
        let Some(open) = state.pushed_incidents.remove(&probe) else {
            continue;
        };
        state.push_seq = state.push_seq.saturating_add(1);
        let push = PendingPush {
            id: state.push_seq,
            probe: probe.clone(),
            source: open.source,
            component: open.component,
            status: ComponentStatus::Operational,
            reason: "the probe was removed from the configuration".to_owned(),
            queued_at: at,
            component_done: false,
            open_incident: false,
            resolve_incident: true,
            attempts: 0,
            not_before: None,
            incident: Some(open.id),
        };
        state.pushes.retain(|p| p.probe != probe);
        state.pushes.push(push);
    }
}

/// What became of one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushResult {
    /// Every step done.
    Sent,
    /// Kept, to be tried again (5xx, no answer, rate limited).
    Retrying,
    /// Dropped: the API refused it (4xx) or its source is gone.
    Failed,
    /// Dropped unsent: a person is handling the component.
    SkippedPerson,
    /// Dropped unsent: the page has no component of that name.
    SkippedUnknownComponent,
}

impl PushResult {
    /// Every result, for dropping a removed probe's series.
    pub const ALL: [PushResult; 5] = [
        PushResult::Sent,
        PushResult::Retrying,
        PushResult::Failed,
        PushResult::SkippedPerson,
        PushResult::SkippedUnknownComponent,
    ];

    /// As metrics label it.
    pub fn label(self) -> &'static str {
        match self {
            PushResult::Sent => "sent",
            PushResult::Retrying => "retrying",
            PushResult::Failed => "failed",
            PushResult::SkippedPerson => "skipped_person",
            PushResult::SkippedUnknownComponent => "skipped_unknown_component",
        }
    }
}

/// One push's outcome, for the log, `/metrics` and `statusmotd probe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub probe: String,
    /// The `statuspage` source.
    pub source: String,
    pub result: PushResult,
    /// What was done or why not, one line.
    pub detail: String,
}

/// Requests to one API key, at most one per [`MIN_GAP`], and none before a
/// `Retry-After` has passed.
#[derive(Debug, Default)]
pub struct Pace {
    next: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pace {
    /// Waits for this key's turn and takes it.
    pub async fn wait(&self) {
        let mut next = self.next.lock().await;
        if let Some(at) = *next {
            tokio::time::sleep_until(at).await;
        }
        *next = Some(tokio::time::Instant::now() + MIN_GAP);
    }

    /// No request with this key for `wait` from now.
    pub async fn defer(&self, wait: Duration) {
        let mut next = self.next.lock().await;
        let at = tokio::time::Instant::now() + wait;
        *next = Some(next.map_or(at, |n| n.max(at)));
    }
}

/// The process's one [`Pace`] for `key`. Keys are told apart by a hash,
/// so the table holds no key.
pub fn pace_for(key: &str) -> Arc<Pace> {
    static PACES: LazyLock<Mutex<HashMap<u64, Arc<Pace>>>> = LazyLock::new(Mutex::default);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    PACES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(hasher.finish())
        .or_default()
        .clone()
}

/// One page's manage API, as a push uses it.
struct Api<'a> {
    /// `{api_base}/pages/{page_id}`.
    base: String,
    /// The whole `Authorization` value; never logged or formatted.
    authorization: String,
    pace: Arc<Pace>,
    timeout: Duration,
    client: &'a reqwest::Client,
}

/// Why a request did not succeed.
#[derive(Debug)]
enum Failure {
    /// Worth trying again later (5xx, no answer, a long `Retry-After`).
    Retry {
        message: String,
        wait: Option<Duration>,
    },
    /// Trying again will not help (4xx).
    Fatal { status: u16, message: String },
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Failure::Retry { message, .. } | Failure::Fatal { message, .. } => message,
        }
    }
}

impl Api<'_> {
    /// One request, paced; `420`/`429` are waited out as `Retry-After` says
    /// (at most [`MAX_RETRY_AFTER`], [`MAX_RATE_LIMIT_WAITS`] times). The
    /// answer's JSON, or `null` when it has none.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Value, Failure> {
        let url = format!("{}/{path}", self.base);
        let mut waits = 0;
        loop {
            self.pace.wait().await;
            let mut request = self
                .client
                .request(method.clone(), &url)
                .timeout(self.timeout)
                .header(ACCEPT, "application/json")
                .header(AUTHORIZATION, &self.authorization);
            if let Some(body) = body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.map_err(|e| Failure::Retry {
                message: format!("{method} `{url}` failed: {}", super::super::root_cause(&e)),
                wait: None,
            })?;
            let status = response.status();
            let code = status.as_u16();
            if code == 420 || code == 429 {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(super::super::parse_retry_after);
                // No usable Retry-After: a few seconds, the rate limit's unit.
                let wait = retry_after.unwrap_or(Duration::from_secs(2 << waits.min(4)));
                self.pace.defer(wait.min(MAX_BACKOFF.unsigned_abs())).await;
                if wait > MAX_RETRY_AFTER || waits >= MAX_RATE_LIMIT_WAITS {
                    return Err(Failure::Retry {
                        message: format!(
                            "{method} `{url}` answered {code} (rate limited) with Retry-After {}s",
                            wait.as_secs()
                        ),
                        wait: Some(wait),
                    });
                }
                waits += 1;
                tracing::warn!(
                    url,
                    status = code,
                    wait_ms = wait.as_millis(),
                    "rate limited; waiting before the next attempt"
                );
                continue;
            }
            if status.is_server_error() || code == 408 {
                return Err(Failure::Retry {
                    message: format!("{method} `{url}` answered {status}"),
                    wait: None,
                });
            }
            if !status.is_success() {
                let hint = match code {
                    401 | 403 => "; check the `api_key` of the `statuspage` source: it must be allowed to change this page",
                    404 => "; check the `page_id` and `api_base` of the `statuspage` source",
                    _ => "",
                };
                return Err(Failure::Fatal {
                    status: code,
                    message: format!("{method} `{url}` answered {status}{hint}"),
                });
            }
            // The change is made once the answer is 2xx; a body that cannot
            // be read, or is too long, costs its details, not the step.
            let mut response = response;
            let bytes = super::super::read_capped(&mut response, MAX_ANSWER)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            return Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
        }
    }

    /// Every item of a paged list (`components`, `incidents/unresolved`).
    async fn list(&self, path: &str) -> std::result::Result<Vec<Value>, Failure> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let answer = self
                .call(
                    Method::GET,
                    &format!("{path}?page={page}&per_page={PER_PAGE}"),
                    None,
                )
                .await?;
            let Value::Array(items) = answer else {
                return Err(Failure::Retry {
                    message: format!("`{}/{path}` did not answer a JSON list", self.base),
                    wait: None,
                });
            };
            let short = items.len() < PER_PAGE;
            all.extend(items);
            if short {
                break;
            }
        }
        Ok(all)
    }
}

/// The lock that lets one process at a time deliver a source's pushes
/// (`<source>.probes.push.lock`); `None` when another holds it.
fn try_lock(state_file: &Path) -> Result<Option<std::fs::File>> {
    let (file, lock_path) = ProbesState::lock_file(state_file, "push.lock")?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::io("cannot lock the probes' pushes", &lock_path)(e))
        }
    }
}

/// Loads the state file under its lock, changes it, and saves it.
fn update(state_file: &Path, change: impl FnOnce(&mut ProbesState)) -> Result<()> {
    let _lock = ProbesState::lock(state_file)?;
    let mut state = ProbesState::load(state_file)?;
    change(&mut state);
    state.save(state_file)
}

/// Sends the pushes of the `probes` source `source` that are due, and
/// returns what became of each. Another process delivering the same
/// source's pushes at the moment: nothing is done here.
pub async fn deliver(
    source: &str,
    probes: &ProbesConfig,
    config: &Config,
    client: &reqwest::Client,
) -> Result<Vec<Pushed>> {
    let state_file = &probes.state_file;
    let Some(_pushing) = try_lock(state_file)? else {
        return Ok(Vec::new());
    };
    let state = {
        let _lock = ProbesState::lock(state_file)?;
        ProbesState::load(state_file)?
    };
    let now = Timestamp::now();
    let mut by_target: BTreeMap<String, Vec<PendingPush>> = BTreeMap::new();
    for push in state
        .pushes
        .iter()
        .filter(|p| p.not_before.is_none_or(|t| t <= now))
    {
        by_target
            .entry(push.source.clone())
            .or_default()
            .push(push.clone());
    }
    let timeout =
        Duration::try_from(config.settings.request_timeout).unwrap_or(Duration::from_secs(10));
    let mut out = Vec::new();
    for (target, pushes) in by_target {
        let mut delivery = Delivery {
            state_file,
            ours: state
                .pushed_incidents
                .iter()
                .map(|(probe, i)| (probe.clone(), i.id.clone()))
                .collect(),
            out: &mut out,
        };
        delivery
            .deliver_to(config, client, timeout, &target, pushes)
            .await?;
    }
    for p in &out {
        let what = format!(
            "probe `{}` of source `{source}`: push to `{}`: {}",
            p.probe, p.source, p.detail
        );
        match p.result {
            PushResult::Sent => {
                tracing::info!(probe = %p.probe, result = p.result.label(), "{what}");
            }
            PushResult::Retrying
            | PushResult::SkippedPerson
            | PushResult::SkippedUnknownComponent => {
                tracing::warn!(probe = %p.probe, result = p.result.label(), "{what}");
            }
            PushResult::Failed => {
                tracing::error!(probe = %p.probe, result = p.result.label(), "{what}");
            }
        }
    }
    Ok(out)
}

/// The pushes of one `probes` source under way.
struct Delivery<'a> {
    state_file: &'a Path,
    /// Probe name -> the id of the incident statusmotd opened for it.
    ours: BTreeMap<String, String>,
    out: &'a mut Vec<Pushed>,
}

impl Delivery<'_> {
    fn done(&mut self, push: &PendingPush, result: PushResult, detail: String) {
        self.out.push(Pushed {
            probe: push.probe.clone(),
            source: push.source.clone(),
            result,
            detail,
        });
    }

    /// Drops `push` from the state file (it is done, or never will be).
    fn drop_push(&mut self, push: &PendingPush, result: PushResult, detail: String) -> Result<()> {
        let id = push.id;
        update(self.state_file, |s| s.pushes.retain(|p| p.id != id))?;
        self.done(push, result, detail);
        Ok(())
    }

    /// Keeps `push` for a later attempt, after a backoff that doubles with
    /// each failure, or after `wait` when the API said how long.
    fn keep(&mut self, push: &PendingPush, failure: &Failure) -> Result<()> {
        let id = push.id;
        let attempts = push.attempts.saturating_add(1);
        let backoff = SignedDuration::from_secs(1_i64 << (attempts - 1).min(10)).min(MAX_BACKOFF);
        let wait = match failure {
            Failure::Retry { wait: Some(w), .. } => SignedDuration::try_from(*w)
                .unwrap_or(MAX_BACKOFF)
                .max(backoff),
            _ => backoff,
        };
        let not_before = Timestamp::now().saturating_add(wait).ok();
        update(self.state_file, |s| {
            if let Some(p) = s.pushes.iter_mut().find(|p| p.id == id) {
                p.attempts = attempts;
                p.not_before = not_before;
            }
        })?;
        self.done(
            push,
            PushResult::Retrying,
            format!(
                "{}; kept, attempt {attempts}, tried again in {}s",
                failure.message(),
                wait.as_secs()
            ),
        );
        Ok(())
    }

    /// A failed request: kept for later, or dropped when retrying cannot help.
    fn failed(&mut self, push: &PendingPush, failure: &Failure) -> Result<()> {
        match failure {
            Failure::Retry { .. } => self.keep(push, failure),
            Failure::Fatal { .. } => self.drop_push(
                push,
                PushResult::Failed,
                format!("{}; dropped", failure.message()),
            ),
        }
    }

    async fn deliver_to(
        &mut self,
        config: &Config,
        client: &reqwest::Client,
        timeout: Duration,
        target: &str,
        pushes: Vec<PendingPush>,
    ) -> Result<()> {
        let Some(SourceKind::Manage {
            page_id,
            api_key,
            api_base,
        }) = config.sources.get(target).map(|s| &s.kind)
        else {
            for push in &pushes {
                self.drop_push(
                    push,
                    PushResult::Failed,
                    format!(
                        "no source `{target}` of kind `statuspage` is configured any more; dropped"
                    ),
                )?;
            }
            return Ok(());
        };
        let key = match api_key.reveal(&format!("the `api_key` of source `{target}`")) {
            Ok(key) => key,
            Err(e) => {
                let failure = Failure::Retry {
                    message: e.to_string().lines().next().unwrap_or_default().to_owned(),
                    wait: None,
                };
                for push in &pushes {
                    self.keep(push, &failure)?;
                }
                return Ok(());
            }
        };
        let api = Api {
            base: format!("{}/pages/{page_id}", api_base.trim().trim_end_matches('/')),
            pace: pace_for(&key),
            authorization: format!("OAuth {key}"),
            timeout,
            client,
        };
        // Fresh, just before pushing: what a person may have done since.
        let page = async {
            let components = api.list("components").await?;
            let unresolved = api.list("incidents/unresolved").await?;
            Ok::<_, Failure>((components, unresolved))
        };
        let (mut components, mut unresolved) = match page.await {
            Ok(page) => page,
            Err(failure) => {
                for push in &pushes {
                    self.failed(push, &failure)?;
                }
                return Ok(());
            }
        };
        for push in pushes {
            self.one(&api, push, &mut components, &mut unresolved)
                .await?;
        }
        Ok(())
    }

    /// Whether `incident` is one statusmotd opened.
    fn is_ours(&self, incident: &Value) -> bool {
        let id = api_id(incident);
        id.is_some_and(|id| self.ours.values().any(|o| o == id))
            || incident
                .pointer("/metadata/statusmotd")
                .is_some_and(Value::is_object)
    }

    async fn one(
        &mut self,
        api: &Api<'_>,
        mut push: PendingPush,
        components: &mut [Value],
        unresolved: &mut Vec<Value>,
    ) -> Result<()> {
        // The name as configured, to match the page's exactly; as shown,
        // one sanitized line.
        let shown = sanitize_line(&push.component);
        let Some(component) = components
            .iter_mut()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(push.component.as_str()))
        else {
            let detail = format!("the page has no component named `{shown}`; nothing sent");
            return self.drop_push(&push, PushResult::SkippedUnknownComponent, detail);
        };
        let Some(component_id) = api_id(component).map(str::to_owned) else {
            let detail =
                format!("the component `{shown}` has no usable id on the page; nothing sent");
            return self.drop_push(&push, PushResult::SkippedUnknownComponent, detail);
        };
        // Never override a person.
        if component.get("status").and_then(Value::as_str) == Some("under_maintenance") {
            let detail = format!(
                "the component `{shown}` is under maintenance on the page: a person is handling it; changed nothing");
            return self.drop_push(&push, PushResult::SkippedPerson, detail);
        }
        let names_it = |i: &Value| {
            i.get("components")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| api_id(c) == Some(component_id.as_str())))
        };
        if let Some(theirs) = unresolved.iter().find(|i| names_it(i) && !self.is_ours(i)) {
            let name = sanitize_line(theirs.get("name").and_then(Value::as_str).unwrap_or("?"));
            let detail = format!(
                "the open incident `{name}`, not statusmotd's, names the component `{shown}`: a person is handling it; changed nothing");
            return self.drop_push(&push, PushResult::SkippedPerson, detail);
        }
        let mut said = Vec::new();
        if !push.component_done {
            let body = json!({"component": {"status": push.status.as_str()}});
            let path = format!("components/{component_id}");
            if let Err(f) = api.call(Method::PATCH, &path, Some(&body)).await {
                return self.failed(&push, &f);
            }
            let id = push.id;
            update(self.state_file, |s| {
                if let Some(p) = s.pushes.iter_mut().find(|p| p.id == id) {
                    p.component_done = true;
                }
            })?;
            push.component_done = true;
            component["status"] = Value::from(push.status.as_str());
            said.push(format!(
                "component `{}` set to {}",
                shown,
                push.status.as_str()
            ));
        }
        // statusmotd's open incident for the probe: the one in the state
        // file, else one on the page tagged with the probe's name (opened
        // by a run that stopped before it could save the id).
        let probe = push.probe.clone();
        let tagged = |i: &&Value| {
            i.pointer("/metadata/statusmotd/probe")
                .and_then(Value::as_str)
                == Some(probe.as_str())
        };
        // The state file's ids came from the page too: checked the same.
        let ours = self
            .ours
            .get(&push.probe)
            .cloned()
            .or_else(|| push.incident.clone())
            .filter(|id| is_api_id(id))
            .or_else(|| {
                unresolved
                    .iter()
                    .find(tagged)
                    .and_then(api_id)
                    .map(str::to_owned)
            });
        if push.open_incident {
            let id = if let Some(id) = ours.clone() {
                said.push(format!("incident `{id}` already open"));
                Some(id)
            } else {
                let body = json!({"incident": {
                    "name": push.probe,
                    "status": "investigating",
                    "body": push.reason,
                    "component_ids": [component_id],
                    "components": {component_id.as_str(): push.status.as_str()},
                    "metadata": {"statusmotd": {"probe": push.probe}},
                }});
                let answer = match api.call(Method::POST, "incidents", Some(&body)).await {
                    Ok(answer) => answer,
                    Err(f) => return self.failed(&push, &f),
                };
                let id = api_id(&answer).map(str::to_owned);
                said.push(match &id {
                    Some(id) => format!("incident `{id}` opened"),
                    None => "incident opened".to_owned(),
                });
                unresolved.push(answer);
                id
            };
            let push_id = push.id;
            let probe = push.probe.clone();
            let (source, component) = (push.source.clone(), push.component.clone());
            update(self.state_file, |s| {
                if let Some(id) = &id {
                    s.pushed_incidents.insert(
                        probe,
                        PushedIncident {
                            id: id.clone(),
                            source,
                            component,
                        },
                    );
                }
                if let Some(p) = s.pushes.iter_mut().find(|p| p.id == push_id) {
                    p.open_incident = false;
                }
            })?;
            if let Some(id) = id {
                self.ours.insert(push.probe.clone(), id);
            }
        }
        if push.resolve_incident {
            if let Some(id) = &ours {
                let body = json!({"incident": {
                    "status": "resolved",
                    "body": format!("recovered: {}", push.reason),
                    "component_ids": [component_id],
                    "components": {component_id.as_str(): ComponentStatus::Operational.as_str()},
                }});
                match api
                    .call(Method::PATCH, &format!("incidents/{id}"), Some(&body))
                    .await
                {
                    Ok(_) => said.push(format!("incident `{id}` resolved")),
                    // Deleted by a person meanwhile: nothing left to resolve.
                    Err(Failure::Fatal { status: 404, .. }) => {
                        said.push(format!("incident `{id}` is gone"));
                    }
                    Err(f) => return self.failed(&push, &f),
                }
                unresolved.retain(|i| api_id(i) != Some(id.as_str()));
            }
            let probe = push.probe.clone();
            update(self.state_file, |s| {
                s.pushed_incidents.remove(&probe);
            })?;
            self.ours.remove(&push.probe);
        }
        if said.is_empty() {
            said.push("nothing left to send".to_owned());
        }
        self.drop_push(&push, PushResult::Sent, said.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(incident: bool) -> PushTarget {
        PushTarget {
            source: "hpc".into(),
            component: "Lustre /work".into(),
            incident,
        }
    }

    fn pushed(id: &str) -> PushedIncident {
        PushedIncident {
            id: id.into(),
            source: "hpc".into(),
            component: "Lustre /work".into(),
        }
    }

    #[test]
    fn a_removed_probe_resolves_its_incident_once() {
        let mut s = ProbesState::default();
        s.pushed_incidents.insert("web".into(), pushed("inc1"));
        s.pushed_incidents.insert("db".into(), pushed("inc2"));
        let keep = std::collections::BTreeSet::from(["db"]);
        retire(&mut s, &keep, Timestamp::now());
        assert_eq!(s.pushes.len(), 1);
        let p = &s.pushes[0];
        assert_eq!(
            (p.probe.as_str(), p.status),
            ("web", ComponentStatus::Operational)
        );
        assert!(p.resolve_incident && !p.open_incident);
        assert_eq!(p.incident.as_deref(), Some("inc1"));
        assert_eq!(s.pushed_incidents.keys().collect::<Vec<_>>(), ["db"]);
        retire(&mut s, &keep, Timestamp::now());
        assert_eq!(s.pushes.len(), 1, "queued once");
    }

    fn t(from: ComponentStatus, to: ComponentStatus) -> Transition {
        Transition { from, to }
    }

    #[test]
    fn a_later_transition_replaces_a_push_not_yet_done() {
        use ComponentStatus::{MajorOutage, Operational};
        let mut s = ProbesState::default();
        let now = Timestamp::now();
        queue(
            &mut s,
            "web",
            &target(true),
            t(Operational, MajorOutage),
            "down\nand out",
            now,
        );
        assert_eq!(s.pushes.len(), 1);
        let first = s.pushes[0].clone();
        assert!(first.open_incident && !first.resolve_incident);
        assert_eq!(first.reason, "down and out", "one sanitized line");
        queue(
            &mut s,
            "web",
            &target(true),
            t(MajorOutage, Operational),
            "ok",
            now,
        );
        assert_eq!(s.pushes.len(), 1, "one push per probe");
        let second = &s.pushes[0];
        assert_ne!(
            second.id, first.id,
            "a new id: steps of the old one do not count"
        );
        assert_eq!(second.status, Operational);
        assert!(!second.open_incident && second.resolve_incident);
    }

    #[test]
    fn no_second_incident_while_ours_is_open() {
        use ComponentStatus::{DegradedPerformance, MajorOutage};
        let mut s = ProbesState::default();
        s.pushed_incidents.insert("web".into(), pushed("inc1"));
        queue(
            &mut s,
            "web",
            &target(true),
            t(DegradedPerformance, MajorOutage),
            "worse",
            Timestamp::now(),
        );
        assert!(!s.pushes[0].open_incident);
        queue(
            &mut s,
            "db",
            &target(false),
            t(ComponentStatus::Operational, MajorOutage),
            "x",
            Timestamp::now(),
        );
        assert!(
            !s.pushes[1].open_incident,
            "`incident = false`: the component only"
        );
    }

    #[test]
    fn pushes_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checks.probes.json");
        let mut s = ProbesState::default();
        queue(
            &mut s,
            "web",
            &target(true),
            t(ComponentStatus::Operational, ComponentStatus::MajorOutage),
            "down",
            Timestamp::now(),
        );
        s.pushed_incidents.insert("db".into(), pushed("inc9"));
        s.save(&path).unwrap();
        let loaded = ProbesState::load(&path).unwrap();
        assert_eq!(loaded.pushes, s.pushes);
        assert_eq!(loaded.pushed_incidents, s.pushed_incidents);
    }

    #[tokio::test]
    async fn one_request_a_second_per_key_and_none_before_retry_after() {
        let a = pace_for("key-one-request-a-second");
        let b = pace_for("another-key-one-request-a-second");
        assert!(Arc::ptr_eq(&a, &pace_for("key-one-request-a-second")));
        let start = tokio::time::Instant::now();
        a.wait().await;
        b.wait().await;
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "keys are paced apart"
        );
        a.wait().await;
        assert!(start.elapsed() >= MIN_GAP, "the same key waits a second");
        a.defer(Duration::from_millis(1500)).await;
        let deferred = tokio::time::Instant::now();
        a.wait().await;
        assert!(deferred.elapsed() >= Duration::from_millis(1400));
    }

    #[test]
    fn only_plain_ids_from_the_page_are_used() {
        for id in ["c1", "inc-left", "2xz_9"] {
            assert_eq!(api_id(&json!({ "id": id })), Some(id));
        }
        for id in ["", "c0/../c1", "c1?x=1", "c1#", "a b", "\u{1b}[2J", "é"] {
            assert_eq!(api_id(&json!({ "id": id })), None, "{id:?}");
        }
        assert_eq!(api_id(&json!({ "id": 7 })), None);
        assert_eq!(api_id(&json!({ "id": "x".repeat(65) })), None);
    }

    #[test]
    fn results_have_metric_labels() {
        assert_eq!(PushResult::SkippedPerson.label(), "skipped_person");
        assert_eq!(PushResult::Sent.label(), "sent");
    }
}
