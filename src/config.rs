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
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

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
}

/// One key of a `[sources.NAME]` table, as `mapping init` writes it back.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceField<'a> {
    Text(std::borrow::Cow<'a, str>),
    Secret(&'a Secret),
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
        }
    }

    /// The secrets the source reads.
    pub fn secrets(&self) -> Vec<&Secret> {
        match self {
            SourceKind::Manage { api_key, .. } => vec![api_key],
            SourceKind::Public { .. } | SourceKind::File { .. } => Vec::new(),
        }
    }

    /// How a webhook's page id selects this source.
    pub fn webhook_page(&self) -> WebhookPage<'_> {
        match self {
            SourceKind::Manage { page_id, .. } => WebhookPage::Id(page_id),
            SourceKind::Public { .. } => WebhookPage::Fetched,
            SourceKind::File { .. } => WebhookPage::Never,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Parses as a [`SocketAddr`].
    pub listen: String,
    pub webhook_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    /// Program and arguments, run without a shell; empty when not configured.
    pub on_change: Vec<String>,
    /// How long `on_change` may run before its process group is killed.
    pub on_change_timeout: SignedDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.to_owned(),
            webhook_token: None,
            refresh_token: None,
            on_change: Vec::new(),
            on_change_timeout: DEFAULT_ON_CHANGE_TIMEOUT,
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

/// Where a secret is read from. The value itself is never held here, so no
/// `Debug` or error message can show it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// `{ env = "NAME" }`
    Env(String),
    /// `{ file = "/path" }`; relative paths are joined to the configuration
    /// file's directory.
    File(PathBuf),
    /// `{ credential = "name" }`: `$CREDENTIALS_DIRECTORY/<name>`, as systemd's
    /// `LoadCredential=` provides it.
    Credential(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only where the secret lives, which is already in the configuration.
        match self {
            Secret::Env(name) => write!(f, "Secret::Env({name:?})"),
            Secret::File(path) => write!(f, "Secret::File({path:?})"),
            Secret::Credential(name) => write!(f, "Secret::Credential({name:?})"),
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env(name) => write!(f, "environment variable `{name}`"),
            Secret::File(path) => write!(f, "file `{}`", path.display()),
            Secret::Credential(name) => write!(f, "credential `{name}`"),
        }
    }
}

impl Secret {
    /// Reads the secret's value. `what` says what it is for (e.g. "the
    /// `api_key` of source `hpc`") and appears in errors; the value never does.
    pub fn reveal(&self, what: &str) -> Result<String> {
        self.reveal_with(what, |name| std::env::var_os(name))
    }

    /// [`Secret::reveal`] with the environment passed in, so tests need not
    /// change the process's environment.
    fn reveal_with(
        &self,
        what: &str,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<String> {
        match self {
            Secret::Env(name) => match env(name) {
                Some(value) if !value.is_empty() => value.into_string().map_err(|_| {
                    Error::Config(format!(
                        "environment variable `{name}` (needed for {what}) is not valid UTF-8"
                    ))
                }),
                _ => Err(Error::Config(format!(
                    "environment variable `{name}` is not set (needed for {what})\n\
                     hint: export `{name}`, or use `{{ file = \"/path\" }}` or \
                     `{{ credential = \"name\" }}` in mapping.toml"
                ))),
            },
            Secret::File(path) => read_secret_file(path, what, None),
            Secret::Credential(name) => {
                let Some(dir) = env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) else {
                    return Err(Error::Config(format!(
                        "credential `{name}` (needed for {what}) cannot be read: \
                         `CREDENTIALS_DIRECTORY` is not set\n\
                         hint: run under systemd with `LoadCredential={name}:/path/to/secret`, \
                         or use `{{ env = \"NAME\" }}` or `{{ file = \"/path\" }}` in mapping.toml"
                    )));
                };
                read_secret_file(&Path::new(&dir).join(name), what, Some(name))
            }
        }
    }
}

fn read_secret_file(path: &Path, what: &str, credential: Option<&str>) -> Result<String> {
    let origin = match credential {
        Some(name) => format!("credential `{name}` at `{}`", path.display()),
        None => format!("`{}`", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "cannot read {origin} (needed for {what}): {e}\n\
             hint: check that the file exists and that this user may read it"
        ))
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(Error::Config(format!(
            "{origin} (needed for {what}) is empty"
        )));
    }
    Ok(value.to_owned())
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read `{}`: {e}\n\
                 hint: pass `--config PATH` or set `{CONFIG_ENV}`; the example \
                 `mapping.toml` shipped with statusmotd is a starting point",
                path.display()
            ))
        })?;
        Config::parse(&text, path)
    }

    /// Validates `text` as the contents of the file at `path`; relative paths
    /// in it are taken relative to `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // The toml crate quotes the offending line; when that line holds a
            // secret written in the clear, say where it is without quoting it.
            let shown = match e.span() {
                Some(span) if e.message().starts_with(BARE_SECRET) => {
                    let line = text
                        .get(..span.start)
                        .unwrap_or_default()
                        .matches('\n')
                        .count()
                        + 1;
                    format!("at line {line}\n{}", e.message())
                }
                _ => e.to_string(),
            };
            Error::Config(format!(
                "invalid configuration in `{}`\n{}",
                path.display(),
                shown.trim_end()
            ))
        })?;
        let at = |span: Range<usize>, message: String| {
            Error::Config(format!(
                "invalid configuration in `{}`\n{}{message}",
                path.display(),
                excerpt(text, span)
            ))
        };
        let base = config_dir(path);
        let join = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let secret = |s: Secret| match s {
            Secret::File(p) => Secret::File(join(p)),
            other => other,
        };

        let s = raw.settings;
        let output_dir = match s.output_dir {
            Some(dir) => {
                let span = dir.span();
                let dir = join(dir.into_inner());
                check_output_dir(&dir, "`output_dir`").map_err(|m| at(span, m))?;
                dir
            }
            None => join("out".into()),
        };
        let settings = Settings {
            output_dir,
            state_dir: join(s.state_dir.unwrap_or_else(|| "state".into())),
            templates_dir: s.templates_dir.map(join),
            timezone: s.timezone.map(|t| t.0),
            upcoming: s
                .upcoming
                .map_or(SignedDuration::from_hours(7 * 24), |d| d.0),
            recent_resolved: s
                .recent_resolved
                .map_or(SignedDuration::from_hours(24), |d| d.0),
            stale_after: s.stale_after.map_or(SignedDuration::from_mins(30), |d| d.0),
            poll_interval: s
                .poll_interval
                .map_or(SignedDuration::from_mins(5), |d| d.0),
            debounce: s.debounce.map_or(SignedDuration::from_secs(1), |d| d.0),
            request_timeout: s
                .request_timeout
                .map_or(SignedDuration::from_secs(10), |d| d.0),
            retries: s.retries.unwrap_or(3),
        };

        if raw.sources.is_empty() {
            return Err(Error::Config(format!(
                "invalid configuration in `{}`\nno source is defined\n\
                 hint: add one, e.g. `[sources.github]` with `kind = \"statuspage-public\"` \
                 and `url = \"https://www.githubstatus.com\"`",
                path.display()
            )));
        }
        let mut sources = BTreeMap::new();
        for (name, source) in raw.sources {
            let span = name.span();
            let name = name.into_inner().0;
            let kind = source
                .validate(&name)
                .map_err(|(s, m)| at(s.unwrap_or(span), m))?;
            let kind = match kind {
                SourceKind::Manage {
                    page_id,
                    api_key,
                    api_base,
                } => SourceKind::Manage {
                    page_id,
                    api_key: secret(api_key),
                    api_base,
                },
                public @ SourceKind::Public { .. } => public,
                SourceKind::File { path } => SourceKind::File { path: join(path) },
            };
            sources.insert(name.clone(), SourceConfig { name, kind });
        }
        let source_list = backticked(sources.keys());

        let server = ServerConfig {
            listen: raw
                .server
                .listen
                .map_or_else(|| DEFAULT_LISTEN.to_owned(), |l| l.0),
            webhook_token: raw.server.webhook_token.map(secret),
            refresh_token: raw.server.refresh_token.map(secret),
            on_change: raw.server.on_change.map(|a| a.0).unwrap_or_default(),
            on_change_timeout: raw
                .server
                .on_change_timeout
                .map_or(DEFAULT_ON_CHANGE_TIMEOUT, |d| d.0),
        };

        let mut clusters = BTreeMap::new();
        for (name, cluster) in raw.clusters {
            let span = name.span();
            let name = name.into_inner().0;
            let source = match cluster.source {
                Some(source) if sources.contains_key(source.get_ref()) => source.into_inner(),
                Some(source) => {
                    return Err(at(
                        source.span(),
                        format!(
                            "cluster `{name}`: source `{}` is not defined\n\
                             hint: defined sources: {source_list}",
                            source.get_ref()
                        ),
                    ))
                }
                None if sources.len() == 1 => sources.keys().next().cloned().unwrap_or_default(),
                None => {
                    return Err(at(
                        span,
                        format!(
                            "cluster `{name}` does not say which source it reads\n\
                             hint: add `source = \"NAME\"`; defined sources: {source_list}"
                        ),
                    ))
                }
            };
            if cluster.groups.is_empty() && cluster.components.is_empty() {
                return Err(at(
                    span,
                    format!(
                        "cluster `{name}` selects nothing: it has neither `groups` nor `components`\n\
                         hint: add `groups = [\"GROUP NAME\"]` or `components = [\"COMPONENT NAME\"]`; \
                         `statusmotd mapping init` lists what the source offers"
                    ),
                ));
            }
            let mut also = Vec::new();
            for (other, entry) in cluster.also {
                let other_span = other.span();
                let other = other.into_inner();
                if !sources.contains_key(&other) {
                    return Err(at(
                        other_span,
                        format!(
                            "cluster `{name}`: source `{other}` in `also` is not defined\n\
                             hint: defined sources: {source_list}"
                        ),
                    ));
                }
                if other == source {
                    return Err(at(
                        other_span,
                        format!(
                            "cluster `{name}`: source `{other}` is its primary `source` and cannot be in `also` too\n\
                             hint: put its `groups` and `components` in `[clusters.{name}]`"
                        ),
                    ));
                }
                if entry.groups.is_empty() && entry.components.is_empty() && !entry.page_wide {
                    return Err(at(
                        other_span,
                        format!(
                            "cluster `{name}` selects nothing from source `{other}`: \
                             its `also` table has neither `groups` nor `components`\n\
                             hint: add `components = [\"COMPONENT NAME\"]`, or `page_wide = true` \
                             for the page's incidents that name no component"
                        ),
                    ));
                }
                also.push(AlsoConfig {
                    source: other,
                    groups: entry.groups.into_iter().map(|e| e.0).collect(),
                    components: entry.components.into_iter().map(|e| e.0).collect(),
                    page_wide: entry.page_wide,
                });
            }
            clusters.insert(
                name.clone(),
                ClusterConfig {
                    also,
                    name,
                    source,
                    groups: cluster.groups.into_iter().map(|e| e.0).collect(),
                    components: cluster.components.into_iter().map(|e| e.0).collect(),
                    page_wide: cluster.page_wide,
                    template: cluster.template.map(|t| t.0),
                    timezone: cluster.timezone.map(|t| t.0),
                },
            );
        }

        let mut outputs: Vec<OutputConfig> = Vec::new();
        let mut output_spans = Vec::new();
        for output in raw.outputs {
            let span = output.path.span();
            let path = output.path.into_inner().0;
            if outputs.iter().any(|o| o.path == path) {
                return Err(at(
                    span,
                    format!("output path `{path}` is given twice in `[[outputs]]`"),
                ));
            }
            outputs.push(OutputConfig {
                template: output.template.0,
                path,
            });
            output_spans.push(span);
        }
        check_layout(&clusters, &outputs).map_err(|(entry, message)| {
            let span = output_spans.get(entry).cloned().unwrap_or_default();
            at(span, message)
        })?;

        let notify = self::notify::validate(raw.notify, &clusters, &secret)
            .map_err(|(span, m)| at(span, m))?;

        Ok(Config {
            path: path.to_owned(),
            settings,
            sources,
            server,
            clusters,
            outputs,
            notify,
        })
    }

    pub fn cluster_names(&self) -> impl Iterator<Item = &str> {
        self.clusters.keys().map(String::as_str)
    }

    /// The IANA name times are printed in for `cluster`: its own `timezone`,
    /// else `[settings] timezone`, else the system's zone, else `UTC`.
    pub fn timezone_for(&self, cluster: &ClusterConfig) -> String {
        cluster
            .timezone
            .clone()
            .or_else(|| self.settings.timezone.clone())
            .or_else(|| jiff::tz::TimeZone::system().iana_name().map(str::to_owned))
            .unwrap_or_else(|| "UTC".to_owned())
    }
}

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
fn config_dir(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match absolute.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Shows the line of `text` that `span` starts in, the way the toml crate
/// shows its own errors, so cross-check errors point at the line too.
fn excerpt(text: &str, span: Range<usize>) -> String {
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or_default();
    let line_index = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let content = text.lines().nth(line_index).unwrap_or_default();
    let column = before.get(line_start..).unwrap_or_default().chars().count();
    let marked = text
        .get(start..span.end.max(start).min(text.len()))
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        .max(1);
    let line_no = line_index + 1;
    let gutter = " ".repeat(line_no.to_string().len());
    format!(
        "at line {line_no}, column {}\n{gutter} |\n{line_no} | {content}\n{gutter} | {}{}\n",
        column + 1,
        " ".repeat(column),
        "^".repeat(marked)
    )
}

fn backticked<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a duration: one or more `<digits><unit>` pairs with units `s`, `m`,
/// `h`, `d` (24 hours) and `w` (7 days), e.g. `90s`, `1h30m`, `7d`, `0s`.
pub fn parse_duration(s: &str) -> std::result::Result<SignedDuration, String> {
    const UNITS: &str = "use a number followed by a unit: `s` seconds, `m` minutes, `h` hours, \
                         `d` days, `w` weeks, e.g. `90s`, `30m`, `1h30m`, `7d`";
    if s.is_empty() {
        return Err(format!("empty duration; {UNITS}"));
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!("invalid duration `{s}`; {UNITS}"));
        }
        let (number, tail) = rest.split_at(digits);
        let mut chars = tail.chars();
        let unit: i64 = match chars.next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            Some('w') => 604_800,
            Some(_) => return Err(format!("invalid unit in duration `{s}`; {UNITS}")),
            None => return Err(format!("duration `{s}` has no unit; {UNITS}")),
        };
        let too_long = || format!("duration `{s}` is too long");
        let n: i64 = number.parse().map_err(|_| too_long())?;
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(too_long)?;
        rest = chars.as_str();
    }
    Ok(SignedDuration::from_secs(total))
}

/// Checks a name that becomes a directory name: only `[A-Za-z0-9._-]`, not
/// empty, no leading dot (`pam_motd` shows dotfiles; `..` climbs out), no
/// leading `-` (read as an option by every tool handed the path), at most
/// 64 characters, and not `index.json`, which the output directory holds.
pub fn validate_cluster_name(s: &str) -> std::result::Result<(), String> {
    const RULE: &str = "names may contain only letters, digits, `.`, `_` and `-`, \
                        must not start with `.` or `-`, and are at most 64 characters long";
    if s.is_empty() {
        return Err(format!("the name is empty; {RULE}"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("`{s}` contains `{}`; {RULE}", c.escape_default()));
    }
    if s.starts_with('.') {
        return Err(format!("`{s}` starts with `.`; {RULE}"));
    }
    if s.starts_with('-') {
        // `show -x`, `rm -r out/-x`, `rsync out/-x`: read as an option.
        return Err(format!("`{s}` starts with `-`; {RULE}"));
    }
    if s.len() > 64 {
        return Err(format!("`{s}` is longer than 64 characters; {RULE}"));
    }
    if s == "index.json" {
        return Err("`index.json` is the name of the index file in the output directory".into());
    }
    Ok(())
}

/// Refuses an output directory that is the filesystem root: statusmotd
/// creates `.statusmotd/`, `index.json` and a directory per cluster in it,
/// and removes snippets there. Judged on the path as written (`/`, `/.`,
/// `/..`, `/srv/..`).
pub fn check_output_dir(dir: &Path, what: &str) -> std::result::Result<(), String> {
    use std::path::Component;
    let depth = dir.components().fold(0usize, |depth, c| match c {
        Component::Normal(_) => depth + 1,
        Component::ParentDir => depth.saturating_sub(1),
        _ => depth,
    });
    if dir.is_absolute() && depth == 0 {
        return Err(format!(
            "{what} `{}` is the root directory: statusmotd creates a directory per \
             cluster, `index.json` and `.statusmotd/` in it, and removes files there\n\
             hint: give it a directory of its own, e.g. `/srv/motd`",
            dir.display()
        ));
    }
    Ok(())
}

/// What one path in the output directory is for, in [`check_layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim<'a> {
    Index,
    Staging,
    ClusterDir(&'a str),
    Motd(&'a str),
    Items(&'a str),
    /// `[[outputs]]` entry (0-based) rendered for a cluster.
    Output(usize, &'a str),
}

impl Claim<'_> {
    fn describe(self, outputs: &[OutputConfig]) -> String {
        match self {
            Claim::Index => "the index file `index.json`".to_owned(),
            Claim::Staging => format!(
                "`{}`, statusmotd's own lock and temp files",
                crate::output::STAGING_DIR
            ),
            Claim::ClusterDir(c) => format!("the directory of cluster `{c}`"),
            Claim::Motd(c) => format!("the `motd` of cluster `{c}`"),
            Claim::Items(c) => format!("the `items/` of cluster `{c}`, which is pruned"),
            Claim::Output(i, c) => format!(
                "output path `{}` (`[[outputs]]` entry {}) for cluster `{c}`",
                outputs.get(i).map_or("", |o| o.path.as_str()),
                i + 1
            ),
        }
    }

    fn is_dir(self) -> bool {
        matches!(
            self,
            Claim::Staging | Claim::ClusterDir(_) | Claim::Items(_)
        )
    }

    /// Whether `inner` may lie below this claim: a cluster's own files in
    /// its directory.
    fn may_hold(self, inner: Claim<'_>) -> bool {
        match (self, inner) {
            (Claim::ClusterDir(c), Claim::Motd(d) | Claim::Items(d) | Claim::Output(_, d)) => {
                c == d
            }
            _ => false,
        }
    }
}

/// Refuses outputs that cannot all be written: two files at one path, a
/// file where a directory must be, or a cluster's file inside another
/// cluster's directory, the index or the staging directory. Every path is
/// expanded for every cluster, so `{cluster}-ood/motd.md` is refused when a
/// cluster is named `a-ood` and another `a`. On error, the `[[outputs]]`
/// entry to blame (0-based) and the message.
fn check_layout(
    clusters: &BTreeMap<String, ClusterConfig>,
    outputs: &[OutputConfig],
) -> std::result::Result<(), (usize, String)> {
    let entry_of = |claim: Claim<'_>| match claim {
        Claim::Output(i, _) => Some(i),
        _ => None,
    };
    let conflict = |claim: Claim<'_>, path: &str, why: String| {
        // Clusters alone cannot collide (their names are checked), so one
        // side of every conflict is an output.
        let (i, cluster) = match claim {
            Claim::Output(i, cluster) => (i, cluster),
            _ => (usize::MAX, ""),
        };
        let written = outputs.get(i).map_or("", |o| o.path.as_str());
        (
            i,
            format!(
                "output path `{written}` (`[[outputs]]` entry {}) is `{path}` for cluster \
                 `{cluster}`, which {why}; every render would stop there\n\
                 hint: give extra files paths inside the cluster's own directory, e.g. \
                 `{{cluster}}/motd.md`, or rename the clusters so that no name is another's \
                 output path",
                i + 1
            ),
        )
    };

    let mut claims: BTreeMap<String, Claim<'_>> = BTreeMap::new();
    claims.insert("index.json".to_owned(), Claim::Index);
    claims.insert(crate::output::STAGING_DIR.to_owned(), Claim::Staging);
    for name in clusters.keys() {
        claims.insert(name.clone(), Claim::ClusterDir(name));
        claims.insert(format!("{name}/motd"), Claim::Motd(name));
        claims.insert(format!("{name}/items"), Claim::Items(name));
    }
    for (i, output) in outputs.iter().enumerate() {
        for name in clusters.keys() {
            let path = output.path.replace("{cluster}", name);
            let claim = Claim::Output(i, name);
            if path
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
            {
                return Err(conflict(claim, &path, "leaves the output directory".into()));
            }
            if let Some(&other) = claims.get(&path) {
                let why = format!("is also {}", other.describe(outputs));
                return Err(conflict(claim, &path, why));
            }
            claims.insert(path, claim);
        }
    }
    // A path below another claim: allowed only for a cluster's own files in
    // its own directory.
    for (path, &claim) in &claims {
        let mut prefix = path.as_str();
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            prefix = parent;
            let Some(&outer) = claims.get(parent) else {
                continue;
            };
            if outer.may_hold(claim) {
                continue;
            }
            return Err(if entry_of(claim).is_some() {
                let why = if outer.is_dir() {
                    format!("lies inside {}", outer.describe(outputs))
                } else {
                    format!(
                        "needs `{parent}` to be a directory, but that is {}",
                        outer.describe(outputs)
                    )
                };
                conflict(claim, path, why)
            } else {
                let why = format!(
                    "would make `{parent}` a file, while {} lies inside it",
                    claim.describe(outputs)
                );
                conflict(outer, parent, why)
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Raw types: what serde reads. Each newtype checks its value while the toml
// crate still knows where it is, so errors point at the line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    settings: RawSettings,
    #[serde(default)]
    sources: BTreeMap<Spanned<SourceName>, RawSource>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    clusters: BTreeMap<Spanned<ClusterName>, RawCluster>,
    #[serde(default)]
    outputs: Vec<RawOutput>,
    #[serde(default)]
    notify: Vec<self::notify::RawRoute>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    output_dir: Option<Spanned<PathBuf>>,
    state_dir: Option<PathBuf>,
    templates_dir: Option<PathBuf>,
    timezone: Option<TzName>,
    upcoming: Option<Duration>,
    recent_resolved: Option<Duration>,
    stale_after: Option<Duration>,
    poll_interval: Option<PositiveDuration>,
    debounce: Option<Duration>,
    request_timeout: Option<PositiveDuration>,
    retries: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Spanned<Kind>,
    page_id: Option<Spanned<PageId>>,
    api_key: Option<Spanned<Secret>>,
    api_base: Option<Spanned<HttpUrl>>,
    url: Option<Spanned<PageUrl>>,
    path: Option<Spanned<PathBuf>>,
}

type Located = (Option<Range<usize>>, String);

impl RawSource {
    /// Checks that the keys fit the kind; an error carries the span to point
    /// at (`None`: the source's name).
    fn validate(self, name: &str) -> std::result::Result<SourceKind, Located> {
        let kind_span = self.kind.span();
        let extra = |key: &str, span: Range<usize>, kind: &str| {
            (
                Some(span),
                format!(
                    "source `{name}`: `{key}` is not a key of kind `{kind}`\n\
                     hint: kind `statuspage` takes `page_id`, `api_key` and `api_base`; \
                     kind `statuspage-public` takes `url`; kind `file` takes `path`"
                ),
            )
        };
        let missing = |key: &str, kind: &str, example: &str| {
            (
                Some(kind_span.clone()),
                format!(
                    "source `{name}` of kind `{kind}` needs `{key}`\nhint: add `{key} = {example}`"
                ),
            )
        };
        match self.kind.into_inner() {
            Kind::Manage => {
                if let Some(url) = self.url {
                    return Err(extra("url", url.span(), "statuspage"));
                }
                if let Some(v) = self.path {
                    return Err(extra("path", v.span(), "statuspage"));
                }
                let page_id = self
                    .page_id
                    .ok_or_else(|| missing("page_id", "statuspage", "\"PAGE_ID\""))?;
                let api_key = self.api_key.ok_or_else(|| {
                    missing("api_key", "statuspage", "{ env = \"STATUSPAGE_API_KEY\" }")
                })?;
                Ok(SourceKind::Manage {
                    page_id: page_id.into_inner().0,
                    api_key: api_key.into_inner(),
                    api_base: self
                        .api_base
                        .map_or_else(|| DEFAULT_API_BASE.to_owned(), |b| b.into_inner().0),
                })
            }
            Kind::Public => {
                if let Some(v) = self.page_id {
                    return Err(extra("page_id", v.span(), "statuspage-public"));
                }
                if let Some(v) = self.api_key {
                    return Err(extra("api_key", v.span(), "statuspage-public"));
                }
                if let Some(v) = self.api_base {
                    return Err(extra("api_base", v.span(), "statuspage-public"));
                }
                if let Some(v) = self.path {
                    return Err(extra("path", v.span(), "statuspage-public"));
                }
                let url = self.url.ok_or_else(|| {
                    missing("url", "statuspage-public", "\"https://status.example.com\"")
                })?;
                Ok(SourceKind::Public {
                    url: url.into_inner().0 .0,
                })
            }
            Kind::File => {
                let given = [
                    ("page_id", self.page_id.map(|v| v.span())),
                    ("api_key", self.api_key.map(|v| v.span())),
                    ("api_base", self.api_base.map(|v| v.span())),
                    ("url", self.url.map(|v| v.span())),
                ];
                if let Some((key, Some(span))) = given.into_iter().find(|(_, s)| s.is_some()) {
                    return Err(extra(key, span, "file"));
                }
                let path = self.path.ok_or_else(|| {
                    missing("path", "file", "\"/var/lib/site-status/status.json\"")
                })?;
                Ok(SourceKind::File {
                    path: path.into_inner(),
                })
            }
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Listen>,
    webhook_token: Option<Secret>,
    refresh_token: Option<Secret>,
    on_change: Option<Argv>,
    on_change_timeout: Option<PositiveDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    source: Option<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Entry>,
    #[serde(default)]
    components: Vec<Entry>,
    #[serde(default = "yes")]
    page_wide: bool,
    template: Option<TemplateName>,
    timezone: Option<TzName>,
    #[serde(default)]
    also: BTreeMap<Spanned<String>, RawAlso>,
}

/// `[clusters.NAME.also.SOURCE]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlso {
    #[serde(default)]
    groups: Vec<Entry>,
    #[serde(default)]
    components: Vec<Entry>,
    #[serde(default)]
    page_wide: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    template: TemplateName,
    path: Spanned<OutputPath>,
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
enum Kind {
    Manage,
    Public,
    File,
}

impl TryFrom<String> for Kind {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "statuspage" => Ok(Kind::Manage),
            "statuspage-public" => Ok(Kind::Public),
            "file" => Ok(Kind::File),
            _ => Err(format!(
                "unknown source kind `{s}`\n\
                 hint: use `statuspage` (manage API v1: `page_id` and `api_key`), \
                 `statuspage-public` (public API v2 of any page: `url`) or \
                 `file` (a snapshot file a site script writes: `path`)"
            )),
        }
    }
}

/// Declares a newtype read from a string through a checking function, so
/// serde reports the function's error at the value's position.
macro_rules! checked_string {
    ($(#[$meta:meta])* $name:ident, $check:expr) => {
        $(#[$meta])*
        #[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
        #[serde(try_from = "String")]
        struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> std::result::Result<Self, String> {
                let check: fn(&str) -> std::result::Result<(), String> = $check;
                check(&s).map(|()| $name(s))
            }
        }
    };
}

checked_string!(ClusterName, |s| validate_cluster_name(s)
    .map_err(|e| format!("invalid cluster name: {e}")));
checked_string!(
    /// Source names end up in file names under `state_dir`.
    SourceName,
    |s| validate_cluster_name(s).map_err(|e| format!("invalid source name: {e}"))
);
checked_string!(TzName, |s| jiff::tz::TimeZone::get(s).map(|_| ()).map_err(
    |_| format!(
        "unknown time zone `{s}`\nhint: use an IANA name such as `UTC` or `Europe/London` \
         (see `/usr/share/zoneinfo`)"
    )
));
checked_string!(
    /// Statuspage page ids are short alphanumeric strings; they end up in
    /// URL paths.
    PageId,
    |s| {
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(())
        } else {
            Err(format!(
                "invalid page id `{s}`\nhint: the page id is the letters and digits \
                 after `/pages/` in the Statuspage dashboard's URL"
            ))
        }
    }
);
checked_string!(Listen, |s| {
    s.parse::<SocketAddr>().map(|_| ()).map_err(
    |_| format!(
        "invalid listen address `{s}`\nhint: give an IP address and port, e.g. `127.0.0.1:8089` or `[::]:8089`"
    )
)
});
checked_string!(
    /// A group or component name or id in a cluster.
    Entry,
    |s| {
        if s.trim().is_empty() {
            Err("empty group or component name".to_owned())
        } else {
            Ok(())
        }
    }
);
checked_string!(TemplateName, |s| {
    if s.is_empty() || s.contains(['/', '\\']) || s.contains("..") {
        Err(format!(
            "invalid template name `{s}`\nhint: give a file name in `templates_dir`, \
             e.g. `motd.txt.j2`, without `/` or `..`"
        ))
    } else {
        Ok(())
    }
});
checked_string!(
    /// Where an extra output goes under `output_dir`.
    OutputPath,
    |s| {
        let hint = "hint: give a relative path containing `{cluster}`, e.g. `{cluster}/motd.md`";
        if !s.contains("{cluster}") {
            return Err(format!("output path `{s}` does not contain `{{cluster}}`\n{hint}"));
        }
        if s.replace("{cluster}", "").contains(['{', '}']) {
            return Err(format!(
                "output path `{s}` has a placeholder other than `{{cluster}}`\n{hint}"
            ));
        }
        if s.starts_with('/') || s.split('/').any(|part| part.is_empty() || part == ".." || part == ".") {
            return Err(format!(
                "output path `{s}` must be relative, without `..`, `.` or empty parts\n{hint}"
            ));
        }
        if s == "{cluster}" {
            return Err(format!(
                "output path `{s}` is the cluster's directory itself, which holds its `motd`\n{hint}"
            ));
        }
        if s.split('/').next() == Some(crate::output::STAGING_DIR) {
            return Err(format!(
                "output path `{s}` is inside `{}`, statusmotd's own lock and temp files\n{hint}",
                crate::output::STAGING_DIR
            ));
        }
        if s == "{cluster}/motd" || s.starts_with("{cluster}/items/") || s == "{cluster}/items" {
            return Err(format!(
                "output path `{s}` would overwrite the default `motd` or `items/`\n{hint}"
            ));
        }
        Ok(())
    }
);

/// An `http://` or `https://` URL, kept without a trailing slash.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct HttpUrl(String);

impl TryFrom<String> for HttpUrl {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        let host = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .map(|rest| rest.split('/').next().unwrap_or_default());
        match host {
            Some(host) if !host.is_empty() && !s.contains(char::is_whitespace) => {
                Ok(HttpUrl(s.trim_end_matches('/').to_owned()))
            }
            _ => Err(format!(
                "invalid URL `{s}`\nhint: give an `https://` URL, e.g. `https://status.example.com`"
            )),
        }
    }
}

/// The base URL of a public status page.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct PageUrl(HttpUrl);

impl TryFrom<String> for PageUrl {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        if let Some(i) = s.find("/api/v2") {
            return Err(format!(
                "`url` should be the page's address, not an API endpoint\nhint: use `url = \"{}\"`",
                s.get(..i).unwrap_or_default()
            ));
        }
        HttpUrl::try_from(s).map(PageUrl)
    }
}

/// A duration string such as `"30m"`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Duration(SignedDuration);

impl TryFrom<String> for Duration {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        parse_duration(&s).map(Duration)
    }
}

/// A duration that must be longer than zero: a zero poll interval would spin,
/// a zero timeout would fail every request.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct PositiveDuration(SignedDuration);

impl TryFrom<String> for PositiveDuration {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match parse_duration(&s)? {
            d if d.is_zero() => Err(format!("`{s}` is zero; this duration must be longer")),
            d => Ok(PositiveDuration(d)),
        }
    }
}

/// `on_change`: a program and its arguments.
#[derive(Deserialize)]
#[serde(try_from = "Vec<String>")]
struct Argv(Vec<String>);

impl TryFrom<Vec<String>> for Argv {
    type Error = String;
    fn try_from(v: Vec<String>) -> std::result::Result<Self, String> {
        match v.first() {
            Some(program) if !program.trim().is_empty() => Ok(Argv(v)),
            _ => Err("`on_change` needs a program to run, e.g. \
                      `on_change = [\"make\", \"-C\", \"/srv/motd\", \"deploy\"]`\n\
                      hint: remove the key to run nothing"
                .to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

const SECRET_FORMS: &str =
    "`{ env = \"NAME\" }`, `{ file = \"/path\" }` or `{ credential = \"name\" }`";

/// Starts the error for a secret written in the clear, which [`Config::parse`]
/// recognises so as not to quote the line.
const BARE_SECRET: &str = "secrets are not written into mapping.toml";

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a secret reference: {SECRET_FORMS}")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Secret, E> {
        // The value is not repeated: it may well be the secret itself.
        Err(E::custom(format!(
            "{BARE_SECRET}\n\
             hint: use {SECRET_FORMS}, so the key does not sit in a file others may read"
        )))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Secret, A::Error> {
        let mut secret = None;
        while let Some(key) = map.next_key::<String>()? {
            if secret.is_some() {
                return Err(de::Error::custom(format!(
                    "a secret has exactly one of `env`, `file` or `credential`; `{key}` is one too many"
                )));
            }
            let value: String = map.next_value()?;
            secret = Some(match key.as_str() {
                "env" if !value.is_empty() && !value.contains(['=', '\0']) => Secret::Env(value),
                "env" => {
                    return Err(de::Error::custom(format!(
                        "invalid environment variable name `{value}`"
                    )))
                }
                "file" if !value.is_empty() => Secret::File(value.into()),
                "file" => return Err(de::Error::custom("empty file name for a secret")),
                "credential"
                    if !value.is_empty()
                        && !value.contains(['/', '\0'])
                        && value != "."
                        && value != ".." =>
                {
                    Secret::Credential(value)
                }
                "credential" => {
                    return Err(de::Error::custom(format!(
                        "invalid credential name `{value}`\nhint: give the name used in \
                         systemd's `LoadCredential=NAME:/path`, without `/`"
                    )))
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown secret source `{other}`\nhint: use {SECRET_FORMS}"
                    )))
                }
            });
        }
        secret.ok_or_else(|| de::Error::custom(format!("empty secret; use {SECRET_FORMS}")))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests build their own scratch files
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/statusmotd/mapping.toml"))
    }

    fn parse_err(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, got {config:#?}"),
            Err(e) => {
                assert_eq!(e.exit_code(), 3, "{e}");
                e.to_string()
            }
        }
    }

    const PUBLIC: &str =
        "[sources.github]\nkind = \"statuspage-public\"\nurl = \"https://www.githubstatus.com\"\n";

    const FULL: &str = r#"
[settings]
output_dir = "/srv/motd"
state_dir = "/var/lib/statusmotd"
templates_dir = "templates"
timezone = "Europe/London"
upcoming = "3d"
recent_resolved = "12h"
stale_after = "1h"
poll_interval = "2m"
debounce = "0s"
request_timeout = "20s"
retries = 5

[sources.hpc]
kind = "statuspage"
page_id = "kctbh9vrtdwd"
api_key = { env = "STATUSPAGE_API_KEY" }
api_base = "http://127.0.0.1:9000/v1/"

[sources.github]
kind = "statuspage-public"
url = "https://www.githubstatus.com/"

[server]
listen = "[::]:8090"
webhook_token = { file = "webhook-token" }
refresh_token = { credential = "refresh-token" }
on_change = ["make", "-C", "/srv/motd", "deploy"]
on_change_timeout = "90s"

[clusters.archer2]
source = "hpc"
groups = ["ARCHER2"]
components = ["Lustre /work"]
page_wide = false
template = "archer2.txt.j2"
timezone = "UTC"

[clusters.gh]
source = "github"
components = ["Git Operations"]

[[outputs]]
template = "ood.md.j2"
path = "{cluster}/motd.md"
"#;

    #[test]
    fn full_example_parses_with_every_key() {
        let c = parse(FULL).unwrap();
        let s = &c.settings;
        assert_eq!(s.output_dir, Path::new("/srv/motd"));
        assert_eq!(s.state_dir, Path::new("/var/lib/statusmotd"));
        assert_eq!(
            s.templates_dir.as_deref(),
            Some(Path::new("/etc/statusmotd/templates"))
        );
        assert_eq!(s.timezone.as_deref(), Some("Europe/London"));
        assert_eq!(s.upcoming, SignedDuration::from_hours(72));
        assert_eq!(s.recent_resolved, SignedDuration::from_hours(12));
        assert_eq!(s.stale_after, SignedDuration::from_hours(1));
        assert_eq!(s.poll_interval, SignedDuration::from_mins(2));
        assert_eq!(s.debounce, SignedDuration::ZERO);
        assert_eq!(s.request_timeout, SignedDuration::from_secs(20));
        assert_eq!(s.retries, 5);

        assert_eq!(
            c.sources["hpc"].kind,
            SourceKind::Manage {
                page_id: "kctbh9vrtdwd".into(),
                api_key: Secret::Env("STATUSPAGE_API_KEY".into()),
                api_base: "http://127.0.0.1:9000/v1".into(),
            }
        );
        assert_eq!(
            c.sources["github"].kind,
            SourceKind::Public {
                url: "https://www.githubstatus.com".into()
            }
        );
        assert_eq!(c.server.listen, "[::]:8090");
        assert_eq!(
            c.server.webhook_token,
            Some(Secret::File("/etc/statusmotd/webhook-token".into()))
        );
        assert_eq!(
            c.server.refresh_token,
            Some(Secret::Credential("refresh-token".into()))
        );
        assert_eq!(c.server.on_change, ["make", "-C", "/srv/motd", "deploy"]);
        assert_eq!(c.server.on_change_timeout, SignedDuration::from_secs(90));

        let a = &c.clusters["archer2"];
        assert_eq!(a.name, "archer2");
        assert_eq!(a.source, "hpc");
        assert_eq!(a.groups, ["ARCHER2"]);
        assert_eq!(a.components, ["Lustre /work"]);
        assert!(!a.page_wide);
        assert_eq!(a.template.as_deref(), Some("archer2.txt.j2"));
        assert_eq!(c.timezone_for(a), "UTC");
        let gh = &c.clusters["gh"];
        assert!(gh.page_wide);
        assert_eq!(c.timezone_for(gh), "Europe/London");
        assert_eq!(c.cluster_names().collect::<Vec<_>>(), ["archer2", "gh"]);

        assert_eq!(
            c.outputs,
            [OutputConfig {
                template: "ood.md.j2".into(),
                path: "{cluster}/motd.md".into()
            }]
        );
    }

    #[test]
    fn defaults_apply_and_relative_dirs_join_the_config_dir() {
        let text = format!("{PUBLIC}[clusters.web]\ncomponents = [\"Pages\"]\n");
        let c = Config::parse(&text, Path::new("/srv/conf/mapping.toml")).unwrap();
        let s = &c.settings;
        assert_eq!(s.output_dir, Path::new("/srv/conf/out"));
        assert_eq!(s.state_dir, Path::new("/srv/conf/state"));
        assert_eq!(s.templates_dir, None);
        assert_eq!(s.timezone, None);
        assert_eq!(s.upcoming, SignedDuration::from_hours(7 * 24));
        assert_eq!(s.recent_resolved, SignedDuration::from_hours(24));
        assert_eq!(s.stale_after, SignedDuration::from_mins(30));
        assert_eq!(s.poll_interval, SignedDuration::from_mins(5));
        assert_eq!(s.debounce, SignedDuration::from_secs(1));
        assert_eq!(s.request_timeout, SignedDuration::from_secs(10));
        assert_eq!(s.retries, 3);
        assert_eq!(c.server, ServerConfig::default());
        assert_eq!(c.server.listen, "127.0.0.1:8089");
        assert!(c.outputs.is_empty());
        // One source: the cluster reads it without saying so.
        assert_eq!(c.clusters["web"].source, "github");
        assert!(c.clusters["web"].page_wide);
        assert!(!c.timezone_for(&c.clusters["web"]).is_empty());
    }

    #[test]
    fn relative_config_path_still_gives_absolute_dirs() {
        let c = Config::parse(PUBLIC, Path::new("mapping.toml")).unwrap();
        assert!(c.settings.output_dir.is_absolute());
        assert!(c.settings.output_dir.ends_with("out"));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse_err(&format!("{PUBLIC}\n[settings]\noutput_dri = \"x\"\n"));
        assert!(
            e.contains("invalid configuration in `/etc/statusmotd/mapping.toml`"),
            "{e}"
        );
        assert!(e.contains("line 6"), "{e}");
        assert!(e.contains("output_dri"), "{e}");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn bad_duration_names_its_line() {
        let e = parse_err(&format!("{PUBLIC}[settings]\nupcoming = \"7 days\"\n"));
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("upcoming = \"7 days\""), "{e}");
        assert!(e.contains("`d` days"), "{e}");
    }

    #[test]
    fn zero_poll_interval_is_rejected() {
        let e = parse_err(&format!("{PUBLIC}[settings]\npoll_interval = \"0s\"\n"));
        assert!(e.contains("line 5") && e.contains("zero"), "{e}");
    }

    #[test]
    fn unsafe_cluster_names_are_rejected_naming_the_cluster() {
        for (name, why) in [
            ("a/b", "`/`"),
            ("..", "starts with `.`"),
            (".x", "starts with `.`"),
        ] {
            let e = parse_err(&format!(
                "{PUBLIC}[clusters.\"{name}\"]\ncomponents = [\"Pages\"]\n"
            ));
            assert!(e.contains(&format!("`{name}`")), "{e}");
            assert!(e.contains(why), "{e}");
            assert!(e.contains("line 4"), "{e}");
            assert!(e.contains("invalid cluster name"), "{e}");
        }
    }

    #[test]
    fn bad_timezones_are_rejected() {
        let e = parse_err(&format!(
            "{PUBLIC}[settings]\ntimezone = \"Mars/Olympus\"\n"
        ));
        assert!(
            e.contains("unknown time zone `Mars/Olympus`") && e.contains("line 5"),
            "{e}"
        );
        let e = parse_err(&format!(
            "{PUBLIC}[clusters.x]\ncomponents = [\"Pages\"]\ntimezone = \"Europe/Londn\"\n"
        ));
        assert!(e.contains("Europe/Londn") && e.contains("line 6"), "{e}");
    }

    #[test]
    fn unknown_kind_lists_the_kinds() {
        let e = parse_err("[sources.x]\nkind = \"statuspage-v3\"\n");
        assert!(e.contains("unknown source kind `statuspage-v3`"), "{e}");
        assert!(
            e.contains("`statuspage`") && e.contains("`statuspage-public`"),
            "{e}"
        );
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn kind_keys_are_cross_checked() {
        let e = parse_err("[sources.hpc]\nkind = \"statuspage\"\napi_key = { env = \"K\" }\n");
        assert!(
            e.contains("source `hpc` of kind `statuspage` needs `page_id`"),
            "{e}"
        );
        assert!(e.contains("line 2"), "{e}");
        let e = parse_err(
            "[sources.gh]\nkind = \"statuspage-public\"\nurl = \"https://x.example\"\npage_id = \"abc\"\n",
        );
        assert!(
            e.contains("`page_id` is not a key of kind `statuspage-public`"),
            "{e}"
        );
        assert!(e.contains("line 4"), "{e}");
        let e = parse_err(
            "[sources.gh]\nkind = \"statuspage-public\"\nurl = \"https://www.githubstatus.com/api/v2/summary.json\"\n",
        );
        assert!(e.contains("url = \"https://www.githubstatus.com\""), "{e}");
    }

    #[test]
    fn bare_string_secret_is_rejected_without_echoing_it() {
        let e = parse_err(
            "[sources.hpc]\nkind = \"statuspage\"\npage_id = \"abc\"\napi_key = \"s3cr3t-value\"\n",
        );
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("{ env = \"NAME\" }"), "{e}");
        assert!(e.contains("hint:"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn secret_forms_are_checked() {
        let e = parse_err(&format!(
            "{PUBLIC}[server]\nwebhook_token = {{ credential = \"../x\" }}\n"
        ));
        assert!(e.contains("invalid credential name `../x`"), "{e}");
        let e = parse_err(&format!(
            "{PUBLIC}[server]\nwebhook_token = {{ env = \"A\", file = \"b\" }}\n"
        ));
        assert!(e.contains("exactly one"), "{e}");
        let e = parse_err(&format!(
            "{PUBLIC}[server]\nwebhook_token = {{ vault = \"x\" }}\n"
        ));
        assert!(e.contains("unknown secret source `vault`"), "{e}");
    }

    #[test]
    fn env_secret_names_the_variable_and_never_the_value() {
        let secret = Secret::Env("STATUSMOTD_TEST_SECRET_ENV_1".into());
        let e = secret.reveal("the `api_key` of source `hpc`").unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("environment variable `STATUSMOTD_TEST_SECRET_ENV_1` is not set"),
            "{e}"
        );
        assert!(e.contains("the `api_key` of source `hpc`"), "{e}");

        std::env::set_var("STATUSMOTD_TEST_SECRET_ENV_2", "hunter2-value");
        let secret = Secret::Env("STATUSMOTD_TEST_SECRET_ENV_2".into());
        assert_eq!(secret.reveal("test").unwrap(), "hunter2-value");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));

        let empty = |_: &str| Some(std::ffi::OsString::new());
        let e = secret.reveal_with("test", empty).unwrap_err().to_string();
        assert!(e.contains("is not set"), "{e}");
    }

    #[test]
    fn file_and_credential_secrets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("api-key"), "k3y\n").unwrap();
        let no_env = |_: &str| None;

        let file = Secret::File(dir.path().join("api-key"));
        assert_eq!(file.reveal_with("test", no_env).unwrap(), "k3y");
        let missing = Secret::File(dir.path().join("nope"));
        let e = missing.reveal_with("test", no_env).unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("nope"), "{e}");

        let cred = Secret::Credential("api-key".into());
        let e = cred.reveal_with("test", no_env).unwrap_err().to_string();
        assert!(e.contains("`CREDENTIALS_DIRECTORY` is not set"), "{e}");
        assert!(e.contains("LoadCredential=api-key"), "{e}");
        let dir_path = dir.path().as_os_str().to_owned();
        let with_dir =
            move |name: &str| (name == "CREDENTIALS_DIRECTORY").then(|| dir_path.clone());
        assert_eq!(cred.reveal_with("test", with_dir).unwrap(), "k3y");
    }

    #[test]
    fn relative_secret_files_join_the_config_dir() {
        let text = "[sources.hpc]\nkind = \"statuspage\"\npage_id = \"abc\"\napi_key = { file = \"keys/api\" }\n";
        let c = Config::parse(text, Path::new("/srv/conf/mapping.toml")).unwrap();
        let SourceKind::Manage {
            api_key, api_base, ..
        } = &c.sources["hpc"].kind
        else {
            panic!("wrong kind")
        };
        assert_eq!(api_key, &Secret::File("/srv/conf/keys/api".into()));
        assert_eq!(api_base, DEFAULT_API_BASE);
    }

    #[test]
    fn also_sources_are_read_checked_and_listed_after_the_primary() {
        let two = format!(
            "{PUBLIC}[sources.hpc]\nkind = \"statuspage-public\"\nurl = \"https://status.example.org\"\n"
        );
        let c = parse(&format!(
            "{two}[clusters.a]\nsource = \"hpc\"\ngroups = [\"A\"]\n\
             [clusters.a.also.github]\ncomponents = [\"Actions\"]\n"
        ))
        .unwrap();
        let a = &c.clusters["a"];
        assert_eq!(a.sources().collect::<Vec<_>>(), ["hpc", "github"]);
        assert!(!a.also[0].page_wide, "default false for `also`");
        let parts = a.parts();
        assert_eq!(parts[1].source, "github");
        assert_eq!(parts[1].components, ["Actions"]);
        assert!(parts[1].groups.is_empty());

        let e = parse_err(&format!(
            "{two}[clusters.a]\nsource = \"hpc\"\ngroups = [\"A\"]\n[clusters.a.also.nope]\ncomponents = [\"x\"]\n"
        ));
        assert!(e.contains("source `nope` in `also` is not defined"), "{e}");
        assert!(e.contains("line 10"), "{e}");
        let e = parse_err(&format!(
            "{two}[clusters.a]\nsource = \"hpc\"\ngroups = [\"A\"]\n[clusters.a.also.hpc]\ncomponents = [\"x\"]\n"
        ));
        assert!(e.contains("is its primary `source`"), "{e}");
        let e = parse_err(&format!(
            "{two}[clusters.a]\nsource = \"hpc\"\ngroups = [\"A\"]\n[clusters.a.also.github]\n"
        ));
        assert!(e.contains("selects nothing from source `github`"), "{e}");
        let e = parse_err(&format!(
            "{two}[clusters.a]\nsource = \"hpc\"\ngroups = [\"A\"]\n[clusters.a.also.github]\ncomponent = [\"x\"]\n"
        ));
        assert!(e.contains("unknown field `component`"), "{e}");
    }

    #[test]
    fn cluster_source_is_resolved_or_required() {
        let two = format!(
            "{PUBLIC}[sources.other]\nkind = \"statuspage-public\"\nurl = \"https://status.example.com\"\n"
        );
        let e = parse_err(&format!("{two}[clusters.web]\ncomponents = [\"Pages\"]\n"));
        assert!(
            e.contains("cluster `web` does not say which source it reads"),
            "{e}"
        );
        assert!(e.contains("`github`, `other`"), "{e}");
        assert!(e.contains("line 7"), "{e}");

        let e = parse_err(&format!(
            "{two}[clusters.web]\nsource = \"gihtub\"\ncomponents = [\"Pages\"]\n"
        ));
        assert!(
            e.contains("cluster `web`: source `gihtub` is not defined"),
            "{e}"
        );
        assert!(e.contains("line 8") && e.contains("^^^^^^^^"), "{e}");
    }

    #[test]
    fn empty_cluster_and_no_source_are_errors() {
        let e = parse_err(&format!("{PUBLIC}[clusters.web]\npage_wide = true\n"));
        assert!(e.contains("cluster `web` selects nothing"), "{e}");
        let e = parse_err("[settings]\nretries = 1\n");
        assert!(e.contains("no source is defined"), "{e}");
    }

    #[test]
    fn template_and_output_paths_are_checked() {
        let e = parse_err(&format!(
            "{PUBLIC}[clusters.web]\ncomponents = [\"Pages\"]\ntemplate = \"../motd.txt.j2\"\n"
        ));
        assert!(e.contains("invalid template name `../motd.txt.j2`"), "{e}");
        for bad in [
            "motd.md",
            "/abs/{cluster}.md",
            "{cluster}/../x",
            "{cluster}/motd",
            "{name}/{cluster}",
        ] {
            let e = parse_err(&format!(
                "{PUBLIC}[[outputs]]\ntemplate = \"ood.md.j2\"\npath = \"{bad}\"\n"
            ));
            assert!(e.contains(&format!("output path `{bad}`")), "{e}");
        }
        let e = parse_err(&format!("{PUBLIC}[server]\non_change = []\n"));
        assert!(e.contains("`on_change` needs a program"), "{e}");
        let e = parse_err(&format!("{PUBLIC}[server]\nlisten = \"localhost\"\n"));
        assert!(e.contains("invalid listen address `localhost`"), "{e}");
    }

    /// A config with one cluster per name (all reading `Pages`) and the
    /// given `[[outputs]]` paths.
    fn with_outputs(clusters: &[&str], paths: &[&str]) -> String {
        let clusters = clusters
            .iter()
            .map(|c| format!("[clusters.\"{c}\"]\ncomponents = [\"Pages\"]\n"));
        let outputs = paths
            .iter()
            .map(|p| format!("[[outputs]]\ntemplate = \"ood.md.j2\"\npath = \"{p}\"\n"));
        std::iter::once(PUBLIC.to_owned())
            .chain(clusters)
            .chain(outputs)
            .collect()
    }

    #[test]
    fn outputs_that_cannot_be_written_are_refused_naming_the_entry() {
        #[rustfmt::skip]
        let cases: [(&[&str], &[&str], &str); 8] = [
            (&["web"], &["{cluster}"], "the cluster's directory itself"),
            (&["web"], &[".statusmotd/{cluster}"], "inside `.statusmotd`"),
            (&["a", "a-ood"], &["{cluster}-ood/motd.md"], "lies inside the directory of cluster `a-ood`"),
            (&["a", "a.md"], &["{cluster}.md"], "is also the directory of cluster `a.md`"),
            (&["a", "ood"], &["ood/{cluster}.md"], "lies inside the directory of cluster `ood`"),
            (&["index"], &["{cluster}.json"], "is also the index file `index.json`"),
            (&["web"], &["{cluster}/x", "{cluster}/x/y"], "needs `web/x` to be a directory, but that is output path `{cluster}/x`"),
            (&["o"], &["o{cluster}/m", "{cluster}o/m"], "is also output path `o{cluster}/m` (`[[outputs]]` entry 1) for cluster `o`"),
        ];
        for (clusters, paths, why) in cases {
            let e = parse_err(&with_outputs(clusters, paths));
            assert!(e.contains(why), "{paths:?}: {e}");
            assert!(e.contains("hint:"), "{paths:?}: {e}");
            assert!(e.contains("at line"), "points at the entry: {e}");
        }
        // The entry blamed is named, and its line is the one shown.
        let e = parse_err(&with_outputs(
            &["a", "a-ood"],
            &["{cluster}/motd.md", "{cluster}-ood/motd.md"],
        ));
        assert!(
            e.contains("(`[[outputs]]` entry 2) is `a-ood/motd.md` for cluster `a`"),
            "{e}"
        );
        assert!(e.contains("| path = \"{cluster}-ood/motd.md\""), "{e}");
    }

    #[test]
    fn outputs_that_fit_are_accepted() {
        let text = with_outputs(
            &["a", "b", "a-b"],
            &[
                "{cluster}/motd.md",
                "ood/{cluster}.md",
                "{cluster}/ood/banner.txt",
            ],
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.outputs.len(), 3);
    }

    #[test]
    fn output_dir_must_not_be_the_root() {
        for bad in ["/", "/.", "//", "/srv/..", "/../.."] {
            let e = parse_err(&format!("{PUBLIC}[settings]\noutput_dir = \"{bad}\"\n"));
            assert!(e.contains("is the root directory"), "{bad}: {e}");
            assert!(e.contains("hint:") && e.contains("at line"), "{bad}: {e}");
        }
        for ok in ["/srv/motd", ".", "out", "../out"] {
            let text = format!("{PUBLIC}[settings]\noutput_dir = \"{ok}\"\n");
            assert!(parse(&text).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_shipped_mapping_toml_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mapping.toml");
        let c = Config::load(&path).unwrap();
        assert!(c.sources.contains_key("github"));
        assert!(c.clusters.len() >= 2);
        assert!(c.clusters.values().all(|cl| cl.source == "github"));
    }

    #[test]
    fn missing_file_is_a_config_error() {
        let e = Config::load(Path::new("/nonexistent/mapping.toml")).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e
            .to_string()
            .contains("cannot read `/nonexistent/mapping.toml`"));
    }

    #[test]
    fn durations() {
        let ok = [
            ("0s", 0),
            ("90s", 90),
            ("30m", 1800),
            ("24h", 86_400),
            ("7d", 604_800),
            ("1w", 604_800),
            ("1h30m", 5400),
            ("1d12h", 129_600),
        ];
        for (s, secs) in ok {
            assert_eq!(
                parse_duration(s),
                Ok(SignedDuration::from_secs(secs)),
                "{s}"
            );
        }
        for bad in [
            "",
            "5",
            "-5m",
            "5x",
            "m",
            "1.5h",
            " 5m",
            "5m ",
            "1h30",
            "99999999999999999999s",
            "9223372036854775807w",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(parse_duration("5x").unwrap_err().contains("`s` seconds"));
    }

    #[test]
    fn cluster_names() {
        for ok in ["archer2", "cirrus-ex", "A_b.c", "x", &"a".repeat(64)] {
            assert_eq!(validate_cluster_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "..",
            ".",
            ".hidden",
            "a b",
            "ä",
            &"a".repeat(65),
            "index.json",
            "a\\b",
            "-x",
            "--help",
        ] {
            assert!(validate_cluster_name(bad).is_err(), "{bad}");
        }
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn cluster_name_never_escapes(s in ".{0,70}") {
                if validate_cluster_name(&s).is_ok() {
                    prop_assert!(!s.contains('/'));
                    prop_assert!(s != ".." && s != ".");
                    prop_assert!(!s.starts_with('.'));
                }
            }

            #[test]
            fn cluster_name_with_slash_rejected(a in "[a-z.]{0,10}", b in "[a-z.]{0,10}") {
                let name = format!("{a}/{b}");
                prop_assert!(validate_cluster_name(&name).is_err());
            }

            // Random strings are almost never valid names, so the property
            // above rarely sees an accepted one. These draw from the allowed
            // alphabet plus the characters that matter for paths, so both
            // answers come up often, and compare with the rule written out.
            #[test]
            fn cluster_name_accepted_exactly_by_the_rule(
                s in "[A-Za-z0-9._/\\\\ %\\x00\\n\\u{2024}\\u{202e}-]{0,70}"
            ) {
                let by_rule = !s.is_empty()
                    && s.len() <= 64
                    && !s.starts_with('.')
                    && !s.starts_with('-')
                    && s != "index.json"
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                prop_assert_eq!(validate_cluster_name(&s).is_ok(), by_rule, "{:?}", s);
            }

            #[test]
            fn cluster_name_from_the_alphabet_is_accepted(s in "[A-Za-z0-9_][A-Za-z0-9._-]{0,63}") {
                prop_assume!(s != "index.json");
                prop_assert!(validate_cluster_name(&s).is_ok(), "{:?}", s);
                // And it stays one directory below the output root.
                let path = std::path::Path::new("out").join(&s);
                prop_assert_eq!(path.parent(), Some(std::path::Path::new("out")));
                prop_assert_eq!(path.components().count(), 2);
            }

            #[test]
            fn cluster_name_with_one_bad_character_is_rejected(
                a in "[a-z0-9]{1,20}",
                bad in "[^A-Za-z0-9._-]",
                b in "[a-z0-9]{0,20}",
            ) {
                let name = format!("{a}{bad}{b}");
                prop_assert!(validate_cluster_name(&name).is_err(), "{:?}", name);
            }

            #[test]
            fn parse_duration_adds_its_parts(h in 0i64..100_000, m in 0i64..100_000, s in 0i64..100_000) {
                prop_assert_eq!(
                    parse_duration(&format!("{h}h{m}m{s}s")),
                    Ok(SignedDuration::from_secs(h * 3600 + m * 60 + s))
                );
            }

            #[test]
            fn parse_duration_overflow_is_an_error(n in 16_000_000_000_000u64..u64::MAX, unit in "[smhdw]") {
                // Above i64::MAX seconds for every unit but `s` with small
                // numbers; never a panic, never a wrapped value.
                let text = format!("{n}{unit}{n}{unit}");
                match parse_duration(&text) {
                    Ok(d) => prop_assert!(d.as_secs() >= 0, "{} -> {:?}", text, d),
                    Err(e) => prop_assert!(e.contains("too long"), "{}", e),
                }
            }

            #[test]
            fn parse_duration_rejects_what_is_not_number_and_unit(s in "[0-9smhdw .,:+-]{0,20}") {
                let well_formed = !s.is_empty() && {
                    let mut rest = s.as_str();
                    let mut ok = true;
                    while !rest.is_empty() {
                        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                        let unit = rest[digits..].chars().next();
                        if digits == 0 || !matches!(unit, Some('s' | 'm' | 'h' | 'd' | 'w')) {
                            ok = false;
                            break;
                        }
                        rest = &rest[digits + 1..];
                    }
                    ok
                };
                if !well_formed {
                    prop_assert!(parse_duration(&s).is_err(), "{:?} accepted", s);
                }
            }

            #[test]
            fn parse_duration_never_panics(s in "\\PC{0,30}") {
                let _ = parse_duration(&s);
            }

            #[test]
            fn parse_duration_round_trips(n in 0i64..1_000_000_000, unit in 0usize..5) {
                let (suffix, secs) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800)][unit];
                prop_assert_eq!(
                    parse_duration(&format!("{n}{suffix}")),
                    Ok(SignedDuration::from_secs(n * secs))
                );
            }
        }
    }
}
