//! `mapping.toml`: where it is found, how it is read, and what it may say.
//!
//! Reading happens in two steps, as ripgrep splits low-level from high-level
//! arguments: serde reads the file into raw types that refuse unknown keys and
//! check every value they can check alone (durations, names, secrets, time
//! zones), so the toml crate can point at the offending line; then
//! [`Config::parse`] cross-checks what needs the whole file (a cluster's
//! source exists, a source has the keys its kind needs) and resolves relative
//! paths against the file's directory. The rest of the program only ever sees
//! the validated [`Config`].
//!
//! Secrets are references (`{ env = .. }`, `{ file = .. }`,
//! `{ credential = .. }`), never values: the value is read by
//! [`Secret::reveal`] when it is needed and is never stored, printed or logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;

mod alertmanager;
pub use alertmanager::{AlertmanagerConfig, Auth, MatchOp, Matcher};

mod slurm;
pub use slurm::{Reservations, SlurmConfig};

mod notify;
pub use self::notify::{smtp_endpoint, EventKind, Impact, MailVia, NotifyRoute, Receiver};

/// The file read when neither `--config` nor `$STATUSMOTD_CONFIG` says
/// otherwise and there is no `./mapping.toml`.
pub const SYSTEM_CONFIG: &str = "/etc/statusmotd/mapping.toml";

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "STATUSMOTD_CONFIG";

/// The base URL of the Statuspage manage API v1.
pub const DEFAULT_API_BASE: &str = "https://api.statuspage.io/v1";

/// The address `serve` listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8089";

/// `state_dir` when the configuration names none, beside the file.
pub const DEFAULT_STATE_DIR: &str = "state";

/// `[server] on_change_timeout` when not set.
pub const DEFAULT_ON_CHANGE_TIMEOUT: SignedDuration = SignedDuration::from_mins(5);

/// A validated `mapping.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file read.
    pub path: PathBuf,
    pub settings: Settings,
    pub sources: BTreeMap<String, SourceConfig>,
    /// Defaults when `[server]` is absent.
    pub server: ServerConfig,
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// Extra files rendered per cluster (`[[outputs]]`).
    pub outputs: Vec<OutputConfig>,
    /// Notification routes (`[[notify]]`).
    pub notify: Vec<NotifyRoute>,
    /// Tells this parse from every other one in the process, even of the
    /// same bytes, so two parses are never `==` (a clone keeps it): what
    /// was worked out under one configuration is not taken for another's
    /// (`serve::incremental`).
    pub(crate) parse_id: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Absolute, or joined to the configuration file's directory.
    pub output_dir: PathBuf,
    pub state_dir: PathBuf,
    pub templates_dir: Option<PathBuf>,
    /// A valid IANA name; `None` means the system's local zone.
    pub timezone: Option<String>,
    pub upcoming: SignedDuration,
    pub recent_resolved: SignedDuration,
    pub stale_after: SignedDuration,
    pub poll_interval: SignedDuration,
    pub debounce: SignedDuration,
    /// Time allowed for one upstream request (not in `DESIGN.md`).
    pub request_timeout: SignedDuration,
    /// Further attempts after a failed upstream request (not in `DESIGN.md`).
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// `kind = "statuspage"`: the authenticated manage API v1.
    Manage {
        page_id: String,
        api_key: Secret,
        /// Without a trailing slash.
        api_base: String,
    },
    /// `kind = "statuspage-public"`: the public API v2 of any page.
    Public {
        /// The page's base URL, without a trailing slash.
        url: String,
    },
    /// `kind = "file"`: a snapshot file in statusmotd's own format, written
    /// by a site script (`statusmotd schema` prints the format).
    File {
        /// Relative paths are relative to the configuration file.
        path: PathBuf,
    },
    /// `kind = "alertmanager"`: a Prometheus Alertmanager's alerts and
    /// silences (API v2).
    Alertmanager(Box<AlertmanagerConfig>),
    /// `kind = "slurm"`: partitions and reservations read with `scontrol`.
    Slurm(SlurmConfig),
    /// `kind = "probes"`: health checks statusmotd runs itself.
    Probes(Box<ProbesConfig>),
}

/// One key of a `[sources.NAME]` table, as `mapping init` writes it back.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceField<'a> {
    Text(std::borrow::Cow<'a, str>),
    Secret(&'a Secret),
    /// A TOML value (a list or an inline table), written as it is.
    Toml(String),
}

/// How a Statuspage webhook's page id picks a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookPage<'a> {
    /// The configuration names the page.
    Id(&'a str),
    /// The page its last snapshot came from.
    Fetched,
    /// Not a Statuspage page: webhooks never name it.
    Never,
    /// An Alertmanager: its own webhooks (`receivers: webhook_configs`)
    /// refresh it, Statuspage ones never name it.
    Alertmanager,
}

/// What the rest of the program asks of a source kind, answered here so that
/// a new kind adds its arms in this file and in `source`, nowhere else.
impl SourceKind {
    /// `kind = "..."` in `mapping.toml`.
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Manage { .. } => "statuspage",
            SourceKind::Public { .. } => "statuspage-public",
            SourceKind::File { .. } => "file",
            SourceKind::Alertmanager(_) => "alertmanager",
            SourceKind::Slurm(_) => "slurm",
            SourceKind::Probes(_) => "probes",
        }
    }

    /// The keys of the source's table besides `kind`, in the order written.
    pub fn fields(&self) -> Vec<(&'static str, SourceField<'_>)> {
        use std::borrow::Cow;
        match self {
            SourceKind::Manage {
                page_id,
                api_key,
                api_base,
            } => vec![
                ("page_id", SourceField::Text(Cow::Borrowed(page_id))),
                ("api_key", SourceField::Secret(api_key)),
                ("api_base", SourceField::Text(Cow::Borrowed(api_base))),
            ],
            SourceKind::Public { url } => vec![("url", SourceField::Text(Cow::Borrowed(url)))],
            SourceKind::File { path } => {
                vec![("path", SourceField::Text(path.to_string_lossy()))]
            }
            SourceKind::Alertmanager(am) => am.fields(),
            SourceKind::Slurm(s) => s.fields(),
            // Probes are tables `mapping init` does not write back.
            SourceKind::Probes(_) => Vec::new(),
        }
    }

    /// The secrets the source reads.
    pub fn secrets(&self) -> Vec<&Secret> {
        match self {
            SourceKind::Manage { api_key, .. } => vec![api_key],
            SourceKind::Public { .. }
            | SourceKind::File { .. }
            | SourceKind::Slurm(_)
            | SourceKind::Probes(_) => Vec::new(),
            SourceKind::Alertmanager(am) => am.secrets(),
        }
    }

    /// How a webhook's page id selects this source.
    pub fn webhook_page(&self) -> WebhookPage<'_> {
        match self {
            SourceKind::Manage { page_id, .. } => WebhookPage::Id(page_id),
            SourceKind::Public { .. } => WebhookPage::Fetched,
            SourceKind::File { .. } | SourceKind::Slurm(_) | SourceKind::Probes(_) => {
                WebhookPage::Never
            }
            SourceKind::Alertmanager(_) => WebhookPage::Alertmanager,
        }
    }

    /// Whether the source is a batch scheduler, whose maintenance holds
    /// back jobs that would run into it (`jobs_must_end_by` in the view).
    pub fn holds_jobs(&self) -> bool {
        matches!(self, SourceKind::Slurm(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Parses as a [`std::net::SocketAddr`].
    pub listen: String,
    pub webhook_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    /// Program and arguments, run without a shell; empty when not configured.
    pub on_change: Vec<String>,
    /// How long `on_change` may run before its process group is killed.
    pub on_change_timeout: SignedDuration,
    /// Apply a Statuspage webhook's incident or component to the last good
    /// snapshot at once, before the fetch it triggers confirms it. Off by
    /// default: webhooks are unsigned.
    pub webhook_preview: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.to_owned(),
            webhook_token: None,
            refresh_token: None,
            on_change: Vec::new(),
            on_change_timeout: DEFAULT_ON_CHANGE_TIMEOUT,
            webhook_preview: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub name: String,
    /// Always set: when the file leaves it out there is exactly one source.
    pub source: String,
    /// Group names or ids, as written.
    pub groups: Vec<String>,
    /// Component names or ids, as written.
    pub components: Vec<String>,
    pub page_wide: bool,
    pub template: Option<String>,
    pub timezone: Option<String>,
    /// Further sources (`[clusters.NAME.also.SOURCE]`), by source name.
    pub also: Vec<AlsoConfig>,
}

/// A further source of a cluster and what the cluster selects from it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlsoConfig {
    /// A name in `[sources]`, never the cluster's primary `source`.
    pub source: String,
    pub groups: Vec<String>,
    pub components: Vec<String>,
    /// Default false: a vendor's page-wide incident rarely concerns a
    /// cluster.
    pub page_wide: bool,
}

impl ClusterConfig {
    /// Every source the cluster reads, its primary first.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.source.as_str()).chain(self.also.iter().map(|a| a.source.as_str()))
    }

    /// What the cluster selects from each of its sources, its primary
    /// first, each as a cluster of one source (same name, no `also`), which
    /// is what the mapping and the view take.
    pub fn parts(&self) -> Vec<ClusterConfig> {
        let primary = ClusterConfig {
            also: Vec::new(),
            ..self.clone()
        };
        std::iter::once(primary)
            .chain(self.also.iter().map(|a| ClusterConfig {
                name: self.name.clone(),
                source: a.source.clone(),
                groups: a.groups.clone(),
                components: a.components.clone(),
                page_wide: a.page_wide,
                template: self.template.clone(),
                timezone: self.timezone.clone(),
                also: Vec::new(),
            }))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    pub template: String,
    /// Relative to the output directory; contains `{cluster}`, no `..`.
    pub path: String,
}

mod probes;
mod raw;
mod secret;
#[cfg(test)]
mod tests;
mod validate;

pub use probes::{include_matches, Check, HttpCheck, Probe, ProbesConfig, PushTarget};
pub use secret::Secret;
pub use validate::{check_output_dir, parse_duration, validate_cluster_name};

/// `--config`, else `$STATUSMOTD_CONFIG`, else `./mapping.toml` if it exists,
/// else `/etc/statusmotd/mapping.toml`.
pub fn locate(cli: Option<&Path>) -> PathBuf {
    if let Some(path) = cli {
        return path.to_owned();
    }
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return path.into();
    }
    let local = Path::new("mapping.toml");
    if local.is_file() {
        return local.to_owned();
    }
    PathBuf::from(SYSTEM_CONFIG)
}

/// The directory relative paths in the file at `path` are taken from.
pub(crate) fn config_dir(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match absolute.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}
