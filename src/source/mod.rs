//! Statuspage clients: fetch one page's components, groups, incidents and
//! maintenance over the manage API v1 (with a key) or the public API v2, and
//! normalize them into a [`Snapshot`]; the other kinds beside them (a
//! status file in [`mod@file`], a Prometheus Alertmanager in
//! [`mod@alertmanager`]).
//!
//! This module owns the HTTP side both APIs share: per-request timeouts,
//! retries with backoff on 5xx and broken connections, waiting out `420`/`429`
//! `Retry-After` within a bound, a cap on body size, and error messages that
//! say what happened where without ever showing the API key.
//!
//! Decoding is lenient where one bad value must not cost a whole page: bytes
//! that are not UTF-8 and lone surrogate escapes become U+FFFD, nesting deeper
//! than any field this tool reads is dropped before parsing, and an item of
//! an impossible shape is skipped and reported (see [`Fetched::skipped`]).

pub mod alertmanager;
pub mod conditional;
pub mod file;
pub mod probes;
pub(crate) mod raw;
pub mod slurm;
mod v1;
pub mod v2;

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use std::borrow::Cow;

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::model::Snapshot;

/// Where the manage API v1 lives unless the configuration says otherwise.
pub const DEFAULT_API_BASE: &str = "https://api.statuspage.io/v1";

/// The largest response body read; a larger one is an error, not an
/// out-of-memory.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// How many times in a row a rate-limited request waits and tries again
/// before giving up, so a server that always answers 429 cannot keep a fetch
/// going forever.
const MAX_RATE_LIMIT_WAITS: u32 = 5;

/// Nesting deeper than this is replaced by `null` before parsing. No field
/// this tool reads is deeper than eight levels; `serde_json` itself refuses
/// more than 128, which one unknown field could otherwise reach.
const MAX_DEPTH: usize = 64;

/// The longest pause between two retries, however many there were.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Which Statuspage API to read, and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Manage API v1: `Authorization: OAuth <api_key>`.
    Manage {
        api_base: String,
        page_id: String,
        api_key: String,
    },
    /// Public API v2 of any page: `{url}/api/v2/...`.
    Public { url: String },
    /// A snapshot file written by a site script ([`mod@file`]).
    File { path: std::path::PathBuf },
    /// A Prometheus Alertmanager ([`mod@alertmanager`]), with the whole
    /// `Authorization` value when it has one.
    Alertmanager {
        config: Box<crate::config::AlertmanagerConfig>,
        authorization: Option<String>,
    },
    /// A Slurm controller, read with `scontrol` ([`mod@slurm`]).
    Slurm(crate::config::SlurmConfig),
    /// The state the probes of a `probes` source persisted ([`probes`]).
    Probes {
        source: String,
        config: std::sync::Arc<crate::config::ProbesConfig>,
    },
}

impl Endpoint {
    /// Where and how to fetch a configured source; reveals its secret, so a
    /// missing one is a configuration error before any request is made.
    pub fn of(source: &crate::config::SourceConfig) -> crate::Result<Endpoint> {
        use crate::config::SourceKind;
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
            SourceKind::File { path } => Endpoint::File { path: path.clone() },
            SourceKind::Alertmanager(am) => {
                use crate::config::Auth;
                let what = |key: &str| format!("the `{key}` of source `{}`", source.name);
                let authorization = match &am.auth {
                    Some(Auth::Bearer(token)) => {
                        Some(format!("Bearer {}", token.reveal(&what("bearer_token"))?))
                    }
                    Some(Auth::Basic { username, password }) => {
                        let password = password.reveal(&what("basic_auth"))?;
                        Some(format!(
                            "Basic {}",
                            alertmanager::base64(format!("{username}:{password}").as_bytes())
                        ))
                    }
                    None => None,
                };
                Endpoint::Alertmanager {
                    config: am.clone(),
                    authorization,
                }
            }
            SourceKind::Slurm(s) => Endpoint::Slurm(s.clone()),
            SourceKind::Probes(config) => Endpoint::Probes {
                source: source.name.clone(),
                config: std::sync::Arc::new((**config).clone()),
            },
        })
    }
}

// Written by hand so that the key never reaches a log line via `{:?}`.
impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Manage {
                api_base, page_id, ..
            } => f
                .debug_struct("Manage")
                .field("api_base", api_base)
                .field("page_id", page_id)
                .field("api_key", &"<hidden>")
                .finish(),
            Endpoint::Public { url } => f.debug_struct("Public").field("url", url).finish(),
            Endpoint::File { path } => f.debug_struct("File").field("path", path).finish(),
            Endpoint::Alertmanager {
                config,
                authorization,
            } => f
                .debug_struct("Alertmanager")
                .field("url", &config.url)
                .field("authorization", &authorization.as_ref().map(|_| "<hidden>"))
                .finish(),
            Endpoint::Slurm(s) => f.debug_tuple("Slurm").field(s).finish(),
            Endpoint::Probes { source, .. } => {
                f.debug_struct("Probes").field("source", source).finish()
            }
        }
    }
}

/// How patient a fetch is.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchOptions {
    /// Per request, from connecting to the last byte of the body.
    pub timeout: Duration,
    /// Extra attempts after a 5xx, a timeout or a broken connection.
    pub retries: u32,
    /// The longest `Retry-After` waited out; a longer one fails at once.
    pub max_retry_after: Duration,
    /// v1: stop paging `/incidents` once a page is entirely older than this.
    /// `None` reads every page.
    pub resolved_since: Option<Timestamp>,
    /// The pause before the first retry; it doubles with each further one.
    pub backoff: Duration,
    /// Environment variables the configuration reads secrets from: a source
    /// that runs a program (`scontrol`) never passes them on.
    pub withheld_env: std::sync::Arc<std::collections::BTreeSet<String>>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retries: 3,
            max_retry_after: Duration::from_secs(60),
            resolved_since: None,
            backoff: Duration::from_millis(250),
            withheld_env: std::sync::Arc::default(),
        }
    }
}

/// The HTTP client every fetch uses: rustls with the system's CA store, a
/// `statusmotd/<version>` user agent, and proxies from `HTTPS_PROXY` and
/// friends.
pub fn client() -> reqwest::Client {
    client_with(|b| b)
}

/// [`client`]'s setup, with more settings (probes choose their redirect
/// policy).
pub fn client_with(
    configure: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> reqwest::Client {
    let builder = || {
        configure(
            reqwest::Client::builder()
                .user_agent(concat!("statusmotd/", env!("CARGO_PKG_VERSION"))),
        )
    };
    builder().build().unwrap_or_else(|e| {
        // Only a broken system CA store gets here. Carry on without it so
        // that plain-http endpoints work and https ones fail with a TLS error
        // that names the host, rather than refusing to start.
        tracing::warn!("cannot load the system CA store ({e}); https requests will fail");
        builder()
            .tls_built_in_root_certs(false)
            .build()
            .unwrap_or_default()
    })
}

/// A snapshot, and what had to be left out of it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub snapshot: Snapshot,
    /// One line per item skipped because it had an impossible shape (an
    /// incident whose `incident_updates` is a number): the rest of the page
    /// is still good, so one broken item costs that item alone.
    pub skipped: Vec<String>,
}

/// Fetches one page and returns its normalized, sanitized snapshot. Either
/// everything needed arrives or the fetch fails: there is no half-new
/// snapshot. Items skipped for their shape are logged as warnings; see
/// [`fetch_reporting`] to handle them.
pub async fn fetch(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    opts: &FetchOptions,
) -> Result<Snapshot, FetchError> {
    let fetched = fetch_reporting(client, endpoint, opts).await?;
    for s in &fetched.skipped {
        tracing::warn!("{s}");
    }
    Ok(fetched.snapshot)
}

/// [`fetch`], returning the skipped items instead of logging them.
pub async fn fetch_reporting(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    opts: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let result = match endpoint {
        Endpoint::File { path } => {
            // The reader sanitizes what it returns, and it blocks.
            let path = path.clone();
            let read = tokio::task::spawn_blocking(move || file::read_reporting(&path))
                .await
                .map_err(|e| {
                    FetchError::new(
                        FetchErrorKind::UnexpectedShape,
                        format!("reading the status file failed: {e}"),
                    )
                })?;
            return read
                .map(|(snapshot, skipped)| Fetched { snapshot, skipped })
                .map_err(FetchError::from);
        }
        Endpoint::Probes { source, config } => {
            // The state file is written by `statusmotd probe` or `serve`;
            // reading it runs no probe. The snapshot comes sanitized.
            let (source, config) = (source.clone(), config.clone());
            let read = tokio::task::spawn_blocking(move || probes::read(&source, &config))
                .await
                .map_err(|e| {
                    FetchError::new(
                        FetchErrorKind::UnexpectedShape,
                        format!("reading the probes state failed: {e}"),
                    )
                })?;
            return read.map(|snapshot| Fetched {
                snapshot,
                skipped: Vec::new(),
            });
        }
        Endpoint::Manage {
            api_base,
            page_id,
            api_key,
        } => {
            v1::fetch(
                &Http::manage(client, opts, api_key, None),
                api_base,
                page_id,
            )
            .await
        }
        Endpoint::Slurm(s) => {
            // The source's own timeout bounds all its scontrol runs together.
            let timeout = s
                .request_timeout
                .and_then(|t| Duration::try_from(t).ok())
                .unwrap_or(opts.timeout);
            slurm::fetch(s, timeout, &opts.withheld_env).await
        }
        Endpoint::Public { url } => v2::fetch(&Http::public(client, opts, None), url).await,
        Endpoint::Alertmanager {
            config,
            authorization,
        } => {
            let http = Http {
                client,
                opts,
                authorization: authorization.clone(),
                api: Api::Alertmanager,
                validators: None,
            };
            alertmanager::fetch(&http, config).await
        }
    };
    match (result, endpoint) {
        (Ok((snapshot, skipped)), _) => {
            let snapshot = sanitized(snapshot).await?;
            Ok(Fetched { snapshot, skipped })
        }
        // Nothing above formats the key into a message, but a key pasted
        // into `api_base` by mistake would show up in a URL: hide it anyway.
        (Err(e), Endpoint::Manage { api_key, .. }) => Err(e.redact(api_key)),
        (
            Err(e),
            Endpoint::Alertmanager {
                authorization: Some(authorization),
                ..
            },
        ) => {
            // The header value and the credential in it, in case either was
            // pasted into `url`.
            let credential = authorization
                .split_once(' ')
                .map_or(authorization.as_str(), |(_, c)| c);
            Err(e.redact(authorization).redact(credential))
        }
        (Err(e), _) => Err(e),
    }
}

/// `snapshot` sanitized, off the async workers.
/// Runs `decode` on the blocking pool: parsing a large page takes
/// milliseconds of CPU, off the async workers, so that webhook answers
/// never wait behind it.
async fn off_the_workers<T: Send + 'static>(
    decode: impl FnOnce() -> Result<T, FetchError> + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(decode)
        .await
        .unwrap_or_else(|e| {
            Err(FetchError::new(
                FetchErrorKind::UnexpectedShape,
                format!("decoding the answer failed: {e}"),
            ))
        })
}

/// The answer `(body, content_type)` of `url` decoded as JSON off the
/// async workers.
async fn decode_off<T: DeserializeOwned + Send + 'static>(
    url: &str,
    (body, content_type): (Vec<u8>, Option<String>),
    expect: Expect,
) -> Result<T, FetchError> {
    let url = url.to_owned();
    off_the_workers(move || decode_answer(&url, &body, content_type, expect)).await
}

async fn sanitized(snapshot: Snapshot) -> Result<Snapshot, FetchError> {
    tokio::task::spawn_blocking(move || snapshot.sanitized())
        .await
        .map_err(|e| {
            FetchError::new(
                FetchErrorKind::UnexpectedShape,
                format!("sanitizing the answer failed: {e}"),
            )
        })
}

/// A `file` source's failure, kept as the kind the snapshot store acts on:
/// a missing or unreadable file is permanent (a build step must notice), a
/// file cut short or malformed is a bad answer that keeps the last good
/// snapshot.
impl From<file::FileSourceError> for FetchError {
    fn from(e: file::FileSourceError) -> Self {
        let kind = match e.kind() {
            file::FileSourceErrorKind::Unreadable => FetchErrorKind::Unreadable,
            file::FileSourceErrorKind::TooLarge => FetchErrorKind::TooLarge,
            file::FileSourceErrorKind::InvalidJson => FetchErrorKind::InvalidJson,
            _ => FetchErrorKind::UnexpectedShape,
        };
        FetchError {
            kind,
            message: e.to_string(),
            hint: e.hint().map(str::to_owned),
            note: Some(e.note()),
            api: None,
        }
    }
}

/// What kind of failure a [`FetchError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// The server answered with this status (after any retries).
    Status(u16),
    /// 420 or 429 with a `Retry-After` too long to wait, or too many in a row.
    RateLimited,
    /// No complete answer within the timeout.
    Timeout,
    /// Connecting failed or the connection broke.
    Connection,
    /// The body is not JSON (garbage, or cut short).
    InvalidJson,
    /// Valid JSON, but not what a Statuspage API sends.
    UnexpectedShape,
    /// The body is larger than [`MAX_BODY_BYTES`].
    TooLarge,
    /// A `file` source's file is missing, not a regular file, or cannot be
    /// read.
    Unreadable,
}

/// A fetch that did not produce a snapshot. `Display` is one lowercase line
/// saying what happened and where; the alternate form (`{:#}`) adds the
/// `hint:` line when there is something to do. Neither ever contains the API
/// key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    kind: FetchErrorKind,
    message: String,
    hint: Option<String>,
    /// Set when the kind alone would say it wrongly (a login page is
    /// "invalid JSON" too).
    note: Option<&'static str>,
    /// Which API answered, when a status says more for one than the other
    /// (401 is a rejected key for the manage API, a private page for v2).
    api: Option<Api>,
}

impl FetchError {
    fn new(kind: FetchErrorKind, message: String) -> Self {
        Self {
            kind,
            message,
            hint: None,
            note: None,
            api: None,
        }
    }

    /// Whether retrying can never help: the key was rejected (401, 403) or
    /// the page does not exist (404, 410). Such a failure must be noticed,
    /// not waited out: `render` exits 1 and `serve` reports it.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.kind,
            FetchErrorKind::Status(401 | 403 | 404 | 410) | FetchErrorKind::Unreadable
        )
    }

    /// What went wrong, in a few words fit for a MOTD's stale note: fixed
    /// text, never anything upstream sent.
    pub fn note(&self) -> &'static str {
        if let Some(note) = self.note {
            return note;
        }
        match self.kind {
            FetchErrorKind::Status(s) if s >= 500 => "the status page answered with a server error",
            FetchErrorKind::Status(401 | 403) if self.api == Some(Api::Manage) => {
                "the status page rejected the API key"
            }
            FetchErrorKind::Status(401 | 403) if self.api == Some(Api::Alertmanager) => {
                "Alertmanager refused the credentials"
            }
            FetchErrorKind::Status(401 | 403) => "the status page is not public",
            FetchErrorKind::Status(404 | 410) => "the status page was not found",
            FetchErrorKind::Status(_) => "the status page refused the request",
            FetchErrorKind::RateLimited => "the status page is limiting requests",
            FetchErrorKind::Timeout => "the status page did not answer in time",
            FetchErrorKind::Connection => "the status page could not be reached",
            FetchErrorKind::InvalidJson => "the status page sent an answer that is not valid JSON",
            FetchErrorKind::UnexpectedShape => "the status page sent data of an unexpected shape",
            FetchErrorKind::TooLarge => "the status page sent an answer too large to read",
            FetchErrorKind::Unreadable => "the status file cannot be read",
        }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn redact(mut self, secret: &str) -> Self {
        if !secret.is_empty() {
            self.message = self.message.replace(secret, "<api key>");
            self.hint = self.hint.map(|h| h.replace(secret, "<api key>"));
        }
        self
    }

    pub fn kind(&self) -> FetchErrorKind {
        self.kind
    }

    /// The HTTP status the server answered with, when that was the failure.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            FetchErrorKind::Status(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the server kept saying "too many requests".
    pub fn is_rate_limited(&self) -> bool {
        self.kind == FetchErrorKind::RateLimited
    }

    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let (true, Some(hint)) = (f.alternate(), &self.hint) {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FetchError {}

impl From<FetchError> for crate::Error {
    fn from(e: FetchError) -> Self {
        crate::Error::Runtime(format!("{e:#}"))
    }
}

/// Which API a request belongs to, for hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Manage,
    Public,
    Alertmanager,
}

/// What the top level of a JSON answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Object,
    Array,
}

/// The shared request machinery of one fetch.
struct Http<'a> {
    client: &'a reqwest::Client,
    opts: &'a FetchOptions,
    /// The whole `Authorization` value; never logged or formatted.
    authorization: Option<String>,
    api: Api,
    /// Conditional requests: what the previous answers carried, and what
    /// this fetch's answers carry (see [`conditional`]).
    validators: Option<conditional::Exchange<'a>>,
}

/// Why one attempt failed, and so what the retry loop does next.
enum Failure {
    /// Worth another attempt (5xx, timeout, broken connection).
    Retry(Retryable),
    /// 420/429: wait `Retry-After` (when given) and try again.
    RateLimited {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Trying again will not help.
    Fatal(FetchError),
}

struct Retryable {
    kind: FetchErrorKind,
    message: String,
}

impl<'a> Http<'a> {
    /// The public API v2, no credentials.
    fn public(
        client: &'a reqwest::Client,
        opts: &'a FetchOptions,
        validators: Option<conditional::Exchange<'a>>,
    ) -> Self {
        Http {
            client,
            opts,
            authorization: None,
            api: Api::Public,
            validators,
        }
    }

    /// The manage API v1 with `api_key`.
    fn manage(
        client: &'a reqwest::Client,
        opts: &'a FetchOptions,
        api_key: &str,
        validators: Option<conditional::Exchange<'a>>,
    ) -> Self {
        Http {
            client,
            opts,
            authorization: Some(format!("OAuth {api_key}")),
            api: Api::Manage,
            validators,
        }
    }

    /// The same client, API and credentials, asking without validators
    /// but noting what the answers carry: a document that answered `304`
    /// with nothing kept to stand for it is read again in full.
    fn unconditional(&self) -> Http<'a> {
        Http {
            client: self.client,
            opts: self.opts,
            authorization: self.authorization.clone(),
            api: self.api,
            validators: Some(conditional::Exchange::new(None)),
        }
    }
}

impl Http<'_> {
    /// GETs `url` and decodes its JSON, retrying as [`FetchOptions`] allows.
    async fn get_json<T: DeserializeOwned + Send + 'static>(
        &self,
        url: &str,
        expect: Expect,
    ) -> Result<T, FetchError> {
        decode_off(url, self.get(url).await?, expect).await
    }

    /// The digest of `body`, just received from `url`: as taken while it
    /// came (a conditional fetch), or taken now.
    fn hash_of(&self, url: &str, body: &[u8]) -> crate::hash::Hash {
        self.validators
            .as_ref()
            .and_then(|e| e.hash_received(url))
            .unwrap_or_else(|| crate::hash::of(body))
    }

    /// The body of a successful answer, and its `Content-Type`.
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<String>), FetchError> {
        let mut attempts: u32 = 0;
        let mut failures: u32 = 0;
        let mut rate_waits: u32 = 0;
        loop {
            attempts += 1;
            let failure = match self.attempt(url).await {
                Ok(body) => return Ok(body),
                Err(failure) => failure,
            };
            match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::Retry(r) => {
                    if failures >= self.opts.retries {
                        let message = match (r.kind, attempts) {
                            (_, 1) => r.message,
                            (FetchErrorKind::Status(_), n) => {
                                format!("{} after {n} attempts", r.message)
                            }
                            (_, n) => format!("{} (gave up after {n} attempts)", r.message),
                        };
                        return Err(FetchError::new(r.kind, message));
                    }
                    failures += 1;
                    let wait = backoff(self.opts.backoff, failures);
                    tracing::debug!(
                        url,
                        attempt = attempts,
                        wait_ms = wait.as_millis(),
                        "{}; retrying",
                        r.message
                    );
                    tokio::time::sleep(wait).await;
                }
                Failure::RateLimited {
                    status,
                    retry_after,
                } => {
                    let wait = match retry_after {
                        Some(wait) if wait > self.opts.max_retry_after => {
                            return Err(FetchError::new(
                                FetchErrorKind::RateLimited,
                                format!(
                                    "`{url}` answered {status} with Retry-After {}, longer than the {} this tool waits",
                                    show_duration(wait),
                                    show_duration(self.opts.max_retry_after)
                                ),
                            )
                            .with_hint(rate_limit_hint(self.api)));
                        }
                        Some(wait) => wait,
                        // No usable Retry-After: back off as for a 5xx, but
                        // at least a second, the rate limit's own unit.
                        None => backoff(self.opts.backoff, rate_waits + 1)
                            .max(Duration::from_secs(1))
                            .min(self.opts.max_retry_after),
                    };
                    if rate_waits >= MAX_RATE_LIMIT_WAITS {
                        return Err(FetchError::new(
                            FetchErrorKind::RateLimited,
                            format!(
                                "`{url}` still answered {status} after waiting out its rate limit {rate_waits} times"
                            ),
                        )
                        .with_hint(rate_limit_hint(self.api)));
                    }
                    rate_waits += 1;
                    tracing::warn!(
                        url,
                        status,
                        wait_ms = wait.as_millis(),
                        "rate limited; waiting before the next attempt"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One request, bounded by the timeout from connecting to the last byte.
    async fn attempt(&self, url: &str) -> Result<(Vec<u8>, Option<String>), Failure> {
        let timeout = self.opts.timeout;
        match tokio::time::timeout(timeout, self.request(url)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Retry(Retryable {
                kind: FetchErrorKind::Timeout,
                message: format!(
                    "timed out after {} waiting for `{url}`",
                    show_duration(timeout)
                ),
            })),
        }
    }

    async fn request(&self, url: &str) -> Result<(Vec<u8>, Option<String>), Failure> {
        let mut request = self.client.get(url).header(ACCEPT, "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        if let Some(exchange) = &self.validators {
            request = exchange.ask(request, url);
        }
        let mut response = request.send().await.map_err(|e| {
            let what = if e.is_connect() {
                "could not connect to"
            } else {
                "request failed for"
            };
            Failure::Retry(Retryable {
                kind: FetchErrorKind::Connection,
                message: format!("{what} `{url}`: {}", root_cause(&e)),
            })
        })?;
        let status = response.status();
        if let Some(exchange) = &self.validators {
            if exchange.answered(url, status, response.headers()) {
                // 304: the caller reuses what it already has.
                return Ok((Vec::new(), None));
            }
        }
        if !status.is_success() {
            return Err(self.status_failure(url, status, response.headers()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(Failure::Fatal(too_large(url)));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A conditional fetch digests each body as it comes, behind the
        // network rather than after the last byte.
        let read = match &self.validators {
            Some(exchange) => read_capped_digested(&mut response, MAX_BODY_BYTES)
                .await
                .map(|read| {
                    read.map(|(body, hash)| {
                        exchange.received(url, hash);
                        body
                    })
                }),
            None => read_capped(&mut response, MAX_BODY_BYTES).await,
        };
        match read {
            Ok(Some(body)) => Ok((body, content_type)),
            Ok(None) => Err(Failure::Fatal(too_large(url))),
            Err(e) => Err(Failure::Retry(Retryable {
                kind: FetchErrorKind::Connection,
                message: format!("reading the answer from `{url}` failed: {}", root_cause(&e)),
            })),
        }
    }

    fn status_failure(&self, url: &str, status: StatusCode, headers: &HeaderMap) -> Failure {
        let code = status.as_u16();
        let shown = show_status(status);
        if code == 420 || code == 429 {
            let retry_after = headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Failure::RateLimited {
                status: code,
                retry_after,
            };
        }
        if status.is_server_error() {
            return Failure::Retry(Retryable {
                kind: FetchErrorKind::Status(code),
                message: format!("`{url}` answered {shown}"),
            });
        }
        let mut error = FetchError::new(
            FetchErrorKind::Status(code),
            format!("`{url}` answered {shown}"),
        );
        error.api = Some(self.api);
        let error = match (code, self.api) {
            (401 | 403, Api::Manage) => error.with_hint(
                "check the source's `api_key`: it must be a Statuspage API key with access to this page",
            ),
            (401 | 403, Api::Public) => {
                error.with_hint("this page is not public; use the manage API (`kind = \"statuspage\"`) with an API key")
            }
            (404, Api::Manage) => error.with_hint("check the source's `page_id` and `api_base`"),
            (401 | 403, Api::Alertmanager) => error.with_hint(
                "check the source's `bearer_token` or `basic_auth`: the proxy in front of Alertmanager refused them",
            ),
            (404, Api::Alertmanager) => error.with_hint(
                "check the source's `url`: it must be the address of an Alertmanager with API v2, e.g. `http://alertmanager:9093`",
            ),
            (404, Api::Public) => {
                error.with_hint("check the source's `url`: it must be the address of a Statuspage status page")
            }
            _ => error,
        };
        Failure::Fatal(error)
    }
}

/// The body of `response`, or `None` when it is longer than `limit` bytes
/// (read no further than that, whatever `Content-Length` said).
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    read_capped_with(response, limit, |_| ()).await
}

/// [`read_capped`], and the digest of the body ([`crate::hash`]), taken
/// chunk by chunk as the body comes.
async fn read_capped_digested(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Option<(Vec<u8>, crate::hash::Hash)>, reqwest::Error> {
    let mut hasher = crate::hash::Hasher::default();
    let body = read_capped_with(response, limit, |chunk| hasher.update(chunk)).await?;
    Ok(body.map(|body| (body, hasher.finalize())))
}

/// [`read_capped`], handing each chunk to `each` as it comes.
async fn read_capped_with(
    response: &mut reqwest::Response,
    limit: usize,
    mut each: impl FnMut(&[u8]),
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    // Sized once when the length is known: a page of megabytes would
    // otherwise be copied on every doubling.
    let expected = response
        .content_length()
        .map_or(0, |n| usize::try_from(n).unwrap_or(0).min(limit));
    let mut body: Vec<u8> = Vec::with_capacity(expected);
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        each(&chunk);
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// [`decode`], telling an HTML answer (a proxy's or a login page) by its
/// `Content-Type`.
fn decode_answer<T: DeserializeOwned>(
    url: &str,
    body: &[u8],
    content_type: Option<String>,
    expect: Expect,
) -> Result<T, FetchError> {
    decode(url, body, expect).map_err(|e| match content_type {
        Some(t) if e.kind == FetchErrorKind::InvalidJson && is_html(&t) => html_answer(url, &t),
        _ => e,
    })
}

/// Parses a body as JSON of the expected top level, then as `T`. Syntax
/// errors and shape errors are told apart, since one is a broken transfer or
/// a wrong URL and the other a changed API. Bad bytes, lone surrogates and
/// deep nesting are repaired first ([`lenient_text`]).
fn decode<T: DeserializeOwned>(url: &str, body: &[u8], expect: Expect) -> Result<T, FetchError> {
    let text = lenient_text(body);
    // Straight into `T` first: a good answer is read once, without a
    // `serde_json::Value` of it in between. Only a failure takes the long
    // way, which tells broken JSON from JSON of another shape.
    let opens = match expect {
        Expect::Object => b'{',
        Expect::Array => b'[',
    };
    if text.trim_start().as_bytes().first() == Some(&opens) {
        if let Ok(value) = serde_json::from_str::<T>(&text) {
            return Ok(value);
        }
    }
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        FetchError::new(
            FetchErrorKind::InvalidJson,
            format!("invalid JSON from `{url}`: {e}"),
        )
    })?;
    let found = match &value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    };
    let wanted = match expect {
        Expect::Object if !value.is_object() => Some("an object"),
        Expect::Array if !value.is_array() => Some("a list"),
        _ => None,
    };
    if let Some(wanted) = wanted {
        return Err(FetchError::new(
            FetchErrorKind::UnexpectedShape,
            format!("unexpected JSON from `{url}`: expected {wanted}, found {found}"),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        FetchError::new(
            FetchErrorKind::UnexpectedShape,
            format!("unexpected JSON from `{url}`: {e}"),
        )
    })
}

/// JSON text `serde_json` reads whatever one value inside holds: bytes that are
/// not UTF-8 become U+FFFD, as do `\uD8xx` escapes without their low half
/// (and low halves without a high one), and any array or object nested
/// deeper than [`MAX_DEPTH`] becomes `null`. One linear scan without
/// recursion, so a 100 000-deep document costs no stack. Text that needs
/// none of this is returned as it is.
fn lenient_text(body: &[u8]) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(body);
    let bytes = text.as_bytes();
    let mut out = String::new();
    // `text[copied..i]` is yet to be copied to `out`; every index it is
    // sliced at is that of an ASCII byte, so always a char boundary.
    let mut copied = 0;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'"' => in_string = false,
                b'\\' => {
                    let unit = if bytes.get(i + 1) == Some(&b'u') {
                        hex4(bytes, i + 2)
                    } else {
                        None
                    };
                    let Some(unit) = unit else {
                        // `\"`, `\\` and the like: the escaped byte is no quote.
                        i += 2;
                        continue;
                    };
                    let pair = (0xD800..0xDC00).contains(&unit)
                        && bytes.get(i + 6) == Some(&b'\\')
                        && bytes.get(i + 7) == Some(&b'u')
                        && hex4(bytes, i + 8).is_some_and(|low| (0xDC00..0xE000).contains(&low));
                    if pair {
                        i += 12;
                    } else if (0xD800..0xE000).contains(&unit) {
                        out.push_str(&text[copied..i]);
                        out.push_str("\\uFFFD");
                        i += 6;
                        copied = i;
                    } else {
                        i += 6;
                    }
                    continue;
                }
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' if depth >= MAX_DEPTH => {
                    out.push_str(&text[copied..i]);
                    out.push_str("null");
                    i = skip_nested(bytes, i);
                    copied = i;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    if copied == 0 {
        return text;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The four hex digits at `at`, as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    let digits = std::str::from_utf8(digits).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// The index just past the array or object opening at `start`, or the end
/// of the text when it is never closed.
fn skip_nested(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = start;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'{' | b'[') => depth += 1,
            (false, b'}' | b']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Whether a `Content-Type` is HTML: what captive portals, proxy login
/// pages and error pages send.
fn is_html(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("text/html")
        || essence.eq_ignore_ascii_case("application/xhtml+xml")
}

fn html_answer(url: &str, content_type: &str) -> FetchError {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let mut error = FetchError::new(
        FetchErrorKind::InvalidJson,
        format!(
            "the answer from `{url}` was {}, not JSON: a proxy or login page?",
            essence.to_ascii_lowercase()
        ),
    )
    .with_hint(
        "fetch the URL from this host (`curl -i URL`); if a proxy or captive portal answers, \
         let this host through it or set `HTTPS_PROXY`",
    );
    error.note =
        Some("the status page answered with a web page (a proxy or login page?), not status data");
    error
}

fn too_large(url: &str) -> FetchError {
    FetchError::new(
        FetchErrorKind::TooLarge,
        format!(
            "`{url}` sent more than {} MiB, the most this tool reads",
            MAX_BODY_BYTES / (1024 * 1024)
        ),
    )
}

fn rate_limit_hint(api: Api) -> &'static str {
    match api {
        Api::Manage => "the manage API allows 1 request per second per key over a minute; does another program use the same key?",
        Api::Public | Api::Alertmanager => {
            "poll less often, or raise `debounce` and `poll_interval`"
        }
    }
}

/// The pause before retry number `n` (1-based): `base`, doubled for each
/// further retry, plus up to a tenth more so that clients do not retry in
/// lockstep.
fn backoff(base: Duration, n: u32) -> Duration {
    let doubled = base.saturating_mul(1 << n.saturating_sub(1).min(16));
    let jitter_ms = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    ) % (u64::try_from(doubled.as_millis() / 10).unwrap_or(0) + 1);
    (doubled + Duration::from_millis(jitter_ms)).min(MAX_BACKOFF)
}

/// `Retry-After` is either seconds or an HTTP date. Seconds too many to
/// count are [`Duration::MAX`], so that they read as "too long to wait"
/// rather than as no header at all.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            value
                .parse::<u64>()
                .map_or(Duration::MAX, Duration::from_secs),
        );
    }
    let at = http_date(value)?;
    let wait = at.duration_since(Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// An HTTP date in any of the three forms RFC 9110 says to accept: the
/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
fn http_date(value: &str) -> Option<Timestamp> {
    if let Ok(at) = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value) {
        return Some(at);
    }
    let utc = |dt: jiff::civil::DateTime| {
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    };
    if let Some(rest) = value.strip_suffix("GMT") {
        // RFC 850: a two-digit year is within 50 years of now, in practice
        // this century.
        let (_, rest) = rest.split_once(", ")?;
        let (date, time) = rest.trim().split_once(' ')?;
        let mut parts = date.split('-');
        let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
        let year: i16 = year.parse().ok()?;
        let year = if year < 100 { 2000 + year } else { year };
        let text = format!("{day} {month} {year} {time}");
        let dt = jiff::fmt::strtime::parse("%d %b %Y %H:%M:%S", &text)
            .ok()?
            .to_datetime()
            .ok()?;
        return utc(dt);
    }
    let squeezed = value.split_whitespace().collect::<Vec<_>>().join(" ");
    let dt = jiff::fmt::strtime::parse("%a %b %d %H:%M:%S %Y", &squeezed)
        .ok()?
        .to_datetime()
        .ok()?;
    utc(dt)
}

fn show_status(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// `1s`, `90s`, `500ms`: short, and exact for the values people configure.
fn show_duration(d: Duration) -> String {
    if d >= Duration::from_secs(366 * 24 * 3600) {
        "over a year".to_owned()
    } else if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The innermost cause of a transport error ("connection refused"), which
/// says more than reqwest's outer "error sending request" and never repeats
/// the URL or any header.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        let soon = Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let header = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&soon)
            .unwrap();
        let wait = parse_retry_after(&header).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        let first = backoff(base, 1);
        let third = backoff(base, 3);
        assert!(
            first >= base && first <= Duration::from_millis(110),
            "{first:?}"
        );
        assert!(
            third >= Duration::from_millis(400) && third <= Duration::from_millis(440),
            "{third:?}"
        );
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

    #[test]
    fn durations_read_like_configuration() {
        assert_eq!(show_duration(Duration::from_secs(60)), "60s");
        assert_eq!(show_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn the_debug_form_of_an_endpoint_hides_the_key() {
        let e = Endpoint::Manage {
            api_base: DEFAULT_API_BASE.into(),
            page_id: "p".into(),
            api_key: "sekrit-key".into(),
        };
        assert!(!format!("{e:?}").contains("sekrit-key"));
    }

    #[test]
    fn json_of_the_wrong_shape_is_told_apart_from_broken_json() {
        let e = decode::<serde_json::Value>("u", b"[]", Expect::Object).unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::UnexpectedShape);
        assert_eq!(
            e.to_string(),
            "unexpected JSON from `u`: expected an object, found a list"
        );
        let e = decode::<serde_json::Value>("u", b"{\"a\": [", Expect::Object).unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::InvalidJson);
        assert!(
            e.to_string()
                .starts_with("invalid JSON from `u`: EOF while parsing"),
            "{e}"
        );
    }

    #[test]
    fn a_retry_after_too_large_to_count_is_too_long_not_absent() {
        assert_eq!(
            parse_retry_after("99999999999999999999"),
            Some(Duration::MAX)
        );
        assert_eq!(show_duration(Duration::MAX), "over a year");
    }

    #[test]
    fn retry_after_takes_the_obsolete_http_date_forms() {
        let soon = Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let utc = soon.to_zoned(jiff::tz::TimeZone::UTC);
        for header in [
            utc.strftime("%A, %d-%b-%y %H:%M:%S GMT").to_string(),
            utc.strftime("%a %b %e %H:%M:%S %Y").to_string(),
        ] {
            let wait = parse_retry_after(&header).unwrap_or_else(|| panic!("{header}"));
            assert!(
                wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
                "{header}: {wait:?}"
            );
        }
    }

    #[test]
    fn bad_bytes_and_lone_surrogates_become_replacement_characters() {
        let body = b"{\"a\": \"x\xffy\", \"b\": \"\\ud800\", \"c\": \"\\udc00z\", \
                     \"d\": \"\\ud83d\\ude00\", \"e\": \"\\\\ud800\", \"f\": \"\\ud800\\ud83d\\ude00\"}";
        let v: serde_json::Value = decode("u", body, Expect::Object).unwrap();
        assert_eq!(v["a"], "x\u{fffd}y");
        assert_eq!(v["b"], "\u{fffd}");
        assert_eq!(v["c"], "\u{fffd}z");
        assert_eq!(v["d"], "\u{1f600}", "a proper pair stays");
        assert_eq!(v["e"], "\\ud800", "an escaped backslash is no escape");
        assert_eq!(v["f"], "\u{fffd}\u{1f600}");
        // Clean text is not copied.
        assert!(matches!(lenient_text(b"{\"a\": [1]}"), Cow::Borrowed(_)));
    }

    #[test]
    fn deep_nesting_is_cut_without_recursion() {
        for depth in [200, 100_000] {
            let body = format!(
                "{{\"id\": \"x\", \"deep\": {}{}, \"after\": \"]}}\\\"\"}}",
                "[{\"k\": ".repeat(depth / 2) + "[",
                "]".to_string() + &"}]".repeat(depth / 2)
            );
            let v: serde_json::Value = decode("u", body.as_bytes(), Expect::Object)
                .unwrap_or_else(|e| panic!("{depth}: {e}"));
            assert_eq!(v["id"], "x");
            assert_eq!(v["after"], "]}\"");
        }
        // Cut short inside the deep part: still an error, not a success.
        let body = format!("{{\"a\": {}", "[".repeat(1000));
        let e = decode::<serde_json::Value>("u", body.as_bytes(), Expect::Object).unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::InvalidJson);
    }

    #[test]
    fn an_html_answer_says_proxy_or_login_page() {
        let e = html_answer("u", "text/html; charset=utf-8");
        assert_eq!(
            e.to_string(),
            "the answer from `u` was text/html, not JSON: a proxy or login page?"
        );
        assert!(e.hint().unwrap().contains("proxy"));
        assert!(is_html("Text/HTML ; charset=x"));
        assert!(!is_html("application/json"));
    }
}
