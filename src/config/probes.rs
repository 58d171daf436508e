//! `kind = "probes"`: health checks statusmotd runs itself (`DESIGN.md`,
//! "Probes (0.2)"). The raw keys of the source table and of each
//! `[[sources.NAME.probe]]` (or `[[probe]]` of an `include`d file), and
//! their validation into [`ProbesConfig`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use serde::Deserialize;
use toml::Spanned;

use super::raw::{Located, PositiveDuration};
use crate::model::ComponentStatus;

/// `interval` when neither the probe nor its source says.
pub const DEFAULT_INTERVAL: SignedDuration = SignedDuration::from_secs(30);
/// `timeout` when neither the probe nor its source says.
pub const DEFAULT_TIMEOUT: SignedDuration = SignedDuration::from_secs(5);
/// `failure_threshold` when neither the probe nor its source says.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// `success_threshold` when neither the probe nor its source says.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 2;

/// A validated `probes` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbesConfig {
    /// Every probe, from the source table and the included files, in the
    /// order read; names are unique.
    pub probes: Vec<Probe>,
    /// The `include` patterns, relative ones joined to the configuration
    /// file's directory.
    pub include: Vec<PathBuf>,
    /// Where the counters and incidents are kept: `state_dir` joined with
    /// `<source>.probes.json`.
    pub state_file: PathBuf,
}

/// One probe, its source's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub name: String,
    pub group: Option<String>,
    pub check: Check,
    /// The component's status while the probe is down.
    pub down: ComponentStatus,
    pub interval: SignedDuration,
    pub timeout: SignedDuration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// The file the probe is written in.
    pub file: PathBuf,
    /// `statuspage = { .. }`: also set a component of the site's page.
    pub push: Option<PushTarget>,
}

/// Where a probe's transitions are pushed: a component of the page of a
/// source of kind `statuspage` (the manage API, with a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// A source of kind `statuspage` (checked once every source is read).
    pub source: String,
    /// The component's name as on the page.
    pub component: String,
    /// Also open an incident while down, and resolve it on recovery.
    pub incident: bool,
}

/// `statuspage = { source = "hpc", component = "Lustre /work", incident = true }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPush {
    source: String,
    component: String,
    #[serde(default)]
    incident: bool,
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Connects to `host:port`.
    Tcp(String),
    Http(HttpCheck),
    /// Program and arguments, run without a shell.
    Command(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub url: String,
    /// Empty: any 2xx.
    pub expect_status: Vec<u16>,
    pub expect_body: Option<String>,
    /// JSON pointer to the value expected there.
    pub expect_json: BTreeMap<String, serde_json::Value>,
    pub slow: Option<SignedDuration>,
    /// A server certificate expiring sooner than this: degraded.
    pub tls_expires_within: Option<SignedDuration>,
    pub follow_redirects: bool,
}

/// The keys of a `[sources.NAME]` table that only `kind = "probes"` takes.
pub(super) struct RawProbeKeys {
    pub(super) interval: Option<Spanned<PositiveDuration>>,
    pub(super) timeout: Option<Spanned<PositiveDuration>>,
    pub(super) failure_threshold: Option<Spanned<Threshold>>,
    pub(super) success_threshold: Option<Spanned<Threshold>>,
    pub(super) include: Option<Spanned<Vec<String>>>,
    pub(super) probe: Option<Spanned<Vec<Spanned<RawProbe>>>>,
}

impl RawProbeKeys {
    /// The first key given, with its span: an error for any other kind.
    pub(super) fn first_given(&self) -> Option<(&'static str, Range<usize>)> {
        [
            ("interval", self.interval.as_ref().map(Spanned::span)),
            ("timeout", self.timeout.as_ref().map(Spanned::span)),
            (
                "failure_threshold",
                self.failure_threshold.as_ref().map(Spanned::span),
            ),
            (
                "success_threshold",
                self.success_threshold.as_ref().map(Spanned::span),
            ),
            ("include", self.include.as_ref().map(Spanned::span)),
            ("probe", self.probe.as_ref().map(Spanned::span)),
        ]
        .into_iter()
        .find_map(|(k, s)| s.map(|s| (k, s)))
    }
}

/// A threshold: at least 1.
#[derive(Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
pub(super) struct Threshold(u32);

impl TryFrom<i64> for Threshold {
    type Error = String;
    fn try_from(n: i64) -> std::result::Result<Self, String> {
        match u32::try_from(n) {
            Ok(n @ 1..=1000) => Ok(Threshold(n)),
            _ => Err(format!(
                "invalid threshold `{n}`\nhint: give how many results in a row count, from 1 to 1000"
            )),
        }
    }
}

/// One `[[probe]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    name: Spanned<String>,
    group: Option<String>,
    tcp: Option<Spanned<String>>,
    http: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    down: Option<Spanned<String>>,
    interval: Option<PositiveDuration>,
    timeout: Option<PositiveDuration>,
    failure_threshold: Option<Threshold>,
    success_threshold: Option<Threshold>,
    expect_status: Option<Spanned<Vec<u16>>>,
    expect_body: Option<Spanned<String>>,
    expect_json: Option<Spanned<BTreeMap<String, serde_json::Value>>>,
    slow: Option<Spanned<PositiveDuration>>,
    tls_expires_within: Option<Spanned<PositiveDuration>>,
    follow_redirects: Option<Spanned<bool>>,
    statuspage: Option<Spanned<RawPush>>,
}

/// An included file: `[[probe]]` tables and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInclude {
    #[serde(default)]
    probe: Vec<Spanned<RawProbe>>,
}

/// The source's defaults for its probes.
struct Defaults {
    interval: SignedDuration,
    timeout: SignedDuration,
    failure_threshold: u32,
    success_threshold: u32,
}

/// Where a `probes` source's paths are taken from.
pub(super) struct Context<'a> {
    /// The configuration file, named in errors.
    pub(super) config_file: &'a Path,
    /// Its directory: relative `include` patterns start there.
    pub(super) base: &'a Path,
    pub(super) state_dir: &'a Path,
}

/// Checks the source table's keys and probes, reads the files `include`
/// names, merges their probes and refuses a name given twice. An error with
/// a span points into the configuration file; one without is about an
/// included file and names it.
pub(super) fn validate(
    source: &str,
    keys: RawProbeKeys,
    cx: &Context<'_>,
) -> std::result::Result<ProbesConfig, Located> {
    let defaults = Defaults {
        interval: keys.interval.map_or(DEFAULT_INTERVAL, |d| d.into_inner().0),
        timeout: keys.timeout.map_or(DEFAULT_TIMEOUT, |d| d.into_inner().0),
        failure_threshold: keys
            .failure_threshold
            .map_or(DEFAULT_FAILURE_THRESHOLD, |t| t.into_inner().0),
        success_threshold: keys
            .success_threshold
            .map_or(DEFAULT_SUCCESS_THRESHOLD, |t| t.into_inner().0),
    };
    let include = keys
        .include
        .map(Spanned::into_inner)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                cx.base.join(p)
            }
        })
        .collect();
    let mut config = ProbesConfig {
        probes: Vec::new(),
        include,
        state_file: cx.state_dir.join(format!("{source}.probes.json")),
    };
    // Spans of the names of the probes written in the configuration file.
    let mut spans = Vec::new();
    for raw in keys.probe.map(Spanned::into_inner).unwrap_or_default() {
        let span = raw.span();
        let name_span = raw.get_ref().name.span();
        let probe = raw
            .into_inner()
            .validate(source, &defaults, cx.config_file)
            .map_err(|(s, m)| (Some(s.unwrap_or(span.clone())), m))?;
        if config.probes.iter().any(|p| p.name == probe.name) {
            return Err((
                Some(name_span),
                format!(
                    "source `{source}`: two probes are named `{}` in `{}`\n\
                     hint: give each probe its own name; it is the component's name",
                    probe.name,
                    cx.config_file.display()
                ),
            ));
        }
        spans.push(name_span);
        config.probes.push(probe);
    }
    if config.probes.is_empty() && config.include.is_empty() {
        return Err((
            None,
            format!(
                "source `{source}` of kind `probes` has no probe\n\
                 hint: add a `[[sources.{source}.probe]]` table with `name` and one of \
                 `tcp`, `http` or `command`, or `include = [\"/etc/statusmotd/probes.d/*.toml\"]`"
            ),
        ));
    }
    for pattern in &config.include {
        for file in glob(pattern).map_err(|m| (None, format!("source `{source}`: {m}")))? {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                (
                    None,
                    format!(
                        "source `{source}`: cannot read the probes file `{}`: {e}",
                        file.display()
                    ),
                )
            })?;
            let raw: RawInclude = toml::from_str(&text).map_err(|e| {
                (
                    None,
                    format!(
                        "source `{source}`: invalid probes file `{}`\n{}",
                        file.display(),
                        e.to_string().trim_end()
                    ),
                )
            })?;
            for raw in raw.probe {
                let probe = raw
                    .into_inner()
                    .validate(source, &defaults, &file)
                    .map_err(|(_, m)| (None, format!("in `{}`: {m}", file.display())))?;
                if let Some(at) = config.probes.iter().position(|p| p.name == probe.name) {
                    let first = &config.probes[at];
                    let span = spans.get(at).cloned();
                    return Err((
                        span,
                        format!(
                            "source `{source}`: the probe `{}` is defined twice, in `{}` and in `{}`\n\
                             hint: give each probe its own name; it is the component's name",
                            probe.name,
                            first.file.display(),
                            file.display()
                        ),
                    ));
                }
                config.probes.push(probe);
            }
        }
    }
    Ok(config)
}

impl RawProbe {
    fn validate(
        self,
        source: &str,
        defaults: &Defaults,
        file: &Path,
    ) -> std::result::Result<Probe, Located> {
        let name = crate::sanitize::sanitize_line(self.name.get_ref());
        let name_span = self.name.span();
        if name.trim().is_empty() || &name != self.name.get_ref() {
            return Err((
                Some(name_span),
                format!(
                    "source `{source}`: invalid probe name `{name}`\n\
                     hint: give a short name of printable characters on one line, e.g. \"login1 ssh\""
                ),
            ));
        }
        let probe_err =
            |span: Range<usize>, m: String| (Some(span), format!("probe `{name}`: {m}"));
        let checks = [
            ("tcp", self.tcp.as_ref().map(Spanned::span)),
            ("http", self.http.as_ref().map(Spanned::span)),
            ("command", self.command.as_ref().map(Spanned::span)),
        ];
        let given: Vec<_> = checks.iter().filter(|(_, s)| s.is_some()).collect();
        if given.len() != 1 {
            let span = given
                .get(1)
                .and_then(|(_, s)| s.clone())
                .unwrap_or(name_span.clone());
            return Err(probe_err(
                span,
                "needs exactly one of `tcp`, `http` or `command`\n\
                 hint: e.g. `tcp = \"login1.example.org:22\"`, `http = \"https://example.org/health\"` \
                 or `command = [\"/usr/lib/nagios/plugins/check_disk\", \"-w\", \"10%\"]`; \
                 write one probe per check"
                    .to_owned(),
            ));
        }
        let http_only = [
            (
                "expect_status",
                self.expect_status.as_ref().map(Spanned::span),
            ),
            ("expect_body", self.expect_body.as_ref().map(Spanned::span)),
            ("expect_json", self.expect_json.as_ref().map(Spanned::span)),
            ("slow", self.slow.as_ref().map(Spanned::span)),
            (
                "tls_expires_within",
                self.tls_expires_within.as_ref().map(Spanned::span),
            ),
            (
                "follow_redirects",
                self.follow_redirects.as_ref().map(Spanned::span),
            ),
        ];
        if self.http.is_none() {
            if let Some((key, Some(span))) = http_only.iter().find(|(_, s)| s.is_some()) {
                return Err(probe_err(
                    span.clone(),
                    format!("`{key}` is a key of `http` probes only\nhint: remove it"),
                ));
            }
        }
        if let (Some(t), Some(url)) = (&self.tls_expires_within, &self.http) {
            if !url.get_ref().starts_with("https://") {
                return Err(probe_err(
                    t.span(),
                    "`tls_expires_within` needs an `https://` URL: a plain `http` probe sees no certificate\n\
                     hint: remove it, or probe the `https://` URL"
                        .to_owned(),
                ));
            }
        }
        let check = if let Some(addr) = self.tcp {
            let span = addr.span();
            let addr = addr.into_inner();
            match addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
                _ => {
                    return Err(probe_err(
                        span,
                        format!(
                            "invalid `tcp` address `{addr}`\nhint: give `host:port`, e.g. \"login1.example.org:22\""
                        ),
                    ))
                }
            }
            Check::Tcp(addr)
        } else if let Some(url) = self.http {
            let span = url.span();
            let url = url.into_inner();
            if !reqwest::Url::parse(&url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            {
                return Err(probe_err(
                    span,
                    format!(
                        "invalid `http` URL `{url}`\nhint: give an http:// or https:// URL, e.g. \"https://example.org/health\""
                    ),
                ));
            }
            let expect_status = match self.expect_status {
                Some(s) => {
                    let span = s.span();
                    let s = s.into_inner();
                    if s.is_empty() || s.iter().any(|c| !(100..=599).contains(c)) {
                        return Err(probe_err(
                            span,
                            "`expect_status` needs HTTP status codes from 100 to 599\nhint: e.g. `expect_status = [200, 204]`"
                                .to_owned(),
                        ));
                    }
                    s
                }
                None => Vec::new(),
            };
            let expect_json = match self.expect_json {
                Some(j) => {
                    let span = j.span();
                    let j = j.into_inner();
                    if let Some(bad) = j.keys().find(|k| !k.is_empty() && !k.starts_with('/')) {
                        return Err(probe_err(
                            span,
                            format!(
                                "`expect_json` key `{bad}` is not a JSON pointer\nhint: start it with `/`, e.g. `\"/status\"`"
                            ),
                        ));
                    }
                    j
                }
                None => BTreeMap::new(),
            };
            Check::Http(HttpCheck {
                url,
                expect_status,
                expect_body: self.expect_body.map(Spanned::into_inner),
                expect_json,
                slow: self.slow.map(|s| s.into_inner().0),
                tls_expires_within: self.tls_expires_within.map(|s| s.into_inner().0),
                follow_redirects: self.follow_redirects.is_some_and(Spanned::into_inner),
            })
        } else if let Some(argv) = self.command {
            let span = argv.span();
            let argv = argv.into_inner();
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(probe_err(
                    span,
                    "`command` needs a program to run\n\
                     hint: e.g. `command = [\"/usr/lib/nagios/plugins/check_disk\", \"-w\", \"10%\", \"-p\", \"/work\"]`"
                        .to_owned(),
                ));
            }
            Check::Command(argv)
        } else {
            unreachable!("exactly one check is given")
        };
        let down = match self.down {
            Some(d) => {
                let span = d.span();
                match d.get_ref().as_str() {
                    "degraded_performance" => ComponentStatus::DegradedPerformance,
                    "partial_outage" => ComponentStatus::PartialOutage,
                    "major_outage" => ComponentStatus::MajorOutage,
                    other => {
                        return Err(probe_err(
                            span,
                            format!(
                                "invalid `down` status `{other}`\nhint: use `major_outage` (the default), \
                                 `partial_outage` or `degraded_performance`"
                            ),
                        ))
                    }
                }
            }
            None => ComponentStatus::MajorOutage,
        };
        let push = match self.statuspage {
            Some(p) => {
                let span = p.span();
                let p = p.into_inner();
                let component = p.component.trim().to_owned();
                if p.source.trim().is_empty() || component.is_empty() {
                    return Err(probe_err(
                        span,
                        "`statuspage` needs a `source` and a `component`\n\
                         hint: e.g. `statuspage = { source = \"hpc\", component = \"Lustre /work\" }`"
                            .to_owned(),
                    ));
                }
                Some(PushTarget {
                    source: p.source,
                    component,
                    incident: p.incident,
                })
            }
            None => None,
        };
        Ok(Probe {
            name,
            group: self.group.map(|g| crate::sanitize::sanitize_line(&g)),
            check,
            down,
            interval: self.interval.map_or(defaults.interval, |d| d.0),
            timeout: self.timeout.map_or(defaults.timeout, |d| d.0),
            failure_threshold: self
                .failure_threshold
                .map_or(defaults.failure_threshold, |t| t.0),
            success_threshold: self
                .success_threshold
                .map_or(defaults.success_threshold, |t| t.0),
            file: file.to_owned(),
            push,
        })
    }
}

/// Checks that every probe's `statuspage.source` names a source of kind
/// `statuspage`, the only kind with an API to push to; the error names the
/// probe and the file it is written in.
pub(super) fn check_pushes(
    sources: &BTreeMap<String, super::SourceConfig>,
) -> std::result::Result<(), String> {
    for source in sources.values() {
        let super::SourceKind::Probes(config) = &source.kind else {
            continue;
        };
        for probe in &config.probes {
            let Some(push) = &probe.push else { continue };
            let manage: Vec<&str> = sources
                .values()
                .filter(|s| matches!(s.kind, super::SourceKind::Manage { .. }))
                .map(|s| s.name.as_str())
                .collect();
            let hint = if manage.is_empty() {
                "add a source of kind `statuspage` (the manage API, with `page_id` and `api_key`) \
                 and name it in `statuspage = { source = .. }`"
                    .to_owned()
            } else {
                format!(
                    "sources of kind `statuspage`: {}",
                    manage
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let problem = match sources.get(&push.source).map(|s| &s.kind) {
                Some(super::SourceKind::Manage { .. }) => continue,
                Some(other) => format!(
                    "is of kind `{}`; a probe pushes only to a source of kind `statuspage`",
                    other.name()
                ),
                None => "is not defined".to_owned(),
            };
            return Err(format!(
                "source `{}`: probe `{}` (in `{}`): `statuspage` source `{}` {problem}\nhint: {hint}",
                source.name,
                probe.name,
                probe.file.display(),
                push.source,
            ));
        }
    }
    Ok(())
}

/// The files matching `pattern`, sorted: `*` and `?` in the last path
/// component only (`/etc/statusmotd/probes.d/*.toml`). A pattern without a
/// wildcard names one file, which must exist; a directory that does not
/// exist matches nothing (the first stack may not be deployed yet).
fn glob(pattern: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let text = pattern.to_string_lossy();
    let (dir, name) = match (pattern.parent(), pattern.file_name()) {
        (Some(dir), Some(name)) => (dir, name.to_string_lossy()),
        _ => {
            return Err(format!(
            "invalid `include` pattern `{text}`\nhint: e.g. \"/etc/statusmotd/probes.d/*.toml\""
        ))
        }
    };
    if dir.to_string_lossy().contains(['*', '?']) {
        return Err(format!(
            "`include` pattern `{text}`: wildcards are allowed in the file name only\n\
             hint: e.g. \"/etc/statusmotd/probes.d/*.toml\""
        ));
    }
    if !name.contains(['*', '?']) {
        return Ok(vec![pattern.to_owned()]);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                "cannot read the directory `{}`: {e}",
                dir.display()
            ))
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(std::result::Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            // Editors' and package managers' leftovers start with a dot.
            !n.starts_with('.') && wildcard(&name, &n) && e.path().is_file()
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Whether `file` is one the `include` pattern `pattern` names (for
/// `serve`'s watcher: a probes file added, changed or removed).
pub fn include_matches(pattern: &Path, file: &Path) -> bool {
    match (pattern.parent(), pattern.file_name(), file.file_name()) {
        (Some(dir), Some(want), Some(name)) => {
            file.parent() == Some(dir)
                && !name.to_string_lossy().starts_with('.')
                && wildcard(&want.to_string_lossy(), &name.to_string_lossy())
        }
        _ => false,
    }
}

/// Whether `name` matches `pattern`, where `*` is any run of characters and
/// `?` any one character.
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(wildcard("*.toml", "web.toml"));
        assert!(wildcard("*.toml", ".toml"));
        assert!(!wildcard("*.toml", "web.toml~"));
        assert!(wildcard("stack-?.toml", "stack-a.toml"));
        assert!(!wildcard("stack-?.toml", "stack-ab.toml"));
        assert!(wildcard("a*b*c", "aXXbYYc"));
        assert!(!wildcard("a*b*c", "aXXbYY"));
    }
}

#[cfg(test)]
mod config_tests {
    use std::path::Path;

    use crate::config::{Check, Config, SourceKind};
    use crate::model::ComponentStatus;

    fn parse(probes: &str) -> Result<Config, String> {
        Config::parse(
            &format!(
                "[sources.checks]\nkind = \"probes\"\ninterval = \"1m\"\nfailure_threshold = 5\n{probes}\n\
                 [clusters.alpha]\nsource = \"checks\"\ncomponents = [\"a\"]\n"
            ),
            Path::new("/etc/statusmotd/mapping.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn probes_take_the_source_defaults_unless_they_override_them() {
        let config = parse(
            "[[sources.checks.probe]]\nname = \"a\"\ntcp = \"h:22\"\n\
             [[sources.checks.probe]]\nname = \"b\"\ncommand = [\"/bin/true\"]\nfailure_threshold = 1\n\
             timeout = \"1s\"\ndown = \"degraded_performance\"\n",
        )
        .unwrap();
        let SourceKind::Probes(p) = &config.sources["checks"].kind else {
            panic!()
        };
        assert_eq!(
            p.state_file,
            Path::new("/etc/statusmotd/state/checks.probes.json")
        );
        let (a, b) = (&p.probes[0], &p.probes[1]);
        assert_eq!((a.interval.as_secs(), a.timeout.as_secs()), (60, 5));
        assert_eq!((a.failure_threshold, a.success_threshold), (5, 2));
        assert_eq!(a.down, ComponentStatus::MajorOutage);
        assert_eq!(a.check, Check::Tcp("h:22".into()));
        assert_eq!((b.failure_threshold, b.timeout.as_secs()), (1, 1));
        assert_eq!(b.down, ComponentStatus::DegradedPerformance);
    }

    #[test]
    fn mistakes_are_pointed_at_with_a_hint() {
        for (probes, wanted) in [
            (
                "[[sources.checks.probe]]\nname = \"a\"\ntcp = \"h:22\"\n[[sources.checks.probe]]\nname = \"a\"\ntcp = \"h:23\"\n",
                "two probes are named `a`",
            ),
            ("[[sources.checks.probe]]\nname = \"a\"\n", "exactly one of"),
            (
                "[[sources.checks.probe]]\nname = \"a\"\nhttp = \"ftp://h/\"\n",
                "invalid `http` URL",
            ),
            (
                "[[sources.checks.probe]]\nname = \"a\"\nhttp = \"http://h/\"\nexpect_json = { status = \"UP\" }\n",
                "not a JSON pointer",
            ),
            (
                "[[sources.checks.probe]]\nname = \"a\"\nhttp = \"http://h/\"\ntls_expires_within = \"14d\"\n",
                "`tls_expires_within` needs an `https://` URL",
            ),
            (
                "[[sources.checks.probe]]\nname = \"a\"\ntcp = \"h:22\"\nurl = \"x\"\n",
                "unknown field `url`",
            ),
            (
                "[[sources.checks.probe]]\nname = \"a\"\ncommand = []\n",
                "`command` needs a program",
            ),
        ] {
            let err = parse(probes).unwrap_err();
            assert!(err.contains(wanted), "wanted `{wanted}` in:\n{err}");
        }
        let err = Config::parse(
            "[sources.hpc]\nkind = \"statuspage-public\"\nurl = \"https://x.example\"\nfailure_threshold = 2\n",
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`failure_threshold` is not a key of kind `statuspage-public`"),
            "{err}"
        );
    }

    #[test]
    fn a_push_names_a_statuspage_source_and_incident_defaults_to_false() {
        let site = |push: &str| {
            Config::parse(
                &format!(
                    "[sources.hpc]\nkind = \"statuspage\"\npage_id = \"p\"\napi_key = {{ env = \"K\" }}\n\
                     [sources.checks]\nkind = \"probes\"\n\
                     [[sources.checks.probe]]\nname = \"a\"\ntcp = \"h:22\"\nstatuspage = {push}\n\
                     [clusters.alpha]\nsource = \"checks\"\ncomponents = [\"a\"]\n"
                ),
                Path::new("/etc/statusmotd/mapping.toml"),
            )
        };
        let config = site(r#"{ source = "hpc", component = "Lustre /work" }"#).unwrap();
        let SourceKind::Probes(p) = &config.sources["checks"].kind else {
            panic!()
        };
        assert_eq!(
            p.probes[0].push,
            Some(crate::config::PushTarget {
                source: "hpc".into(),
                component: "Lustre /work".into(),
                incident: false,
            })
        );
        for (push, wanted) in [
            (
                r#"{ source = "checks", component = "x" }"#,
                "probe `a` (in `/etc/statusmotd/mapping.toml`): `statuspage` source `checks` is of kind `probes`",
            ),
            (r#"{ source = "gone", component = "x" }"#, "`gone` is not defined"),
            (r#"{ source = "hpc", component = " " }"#, "needs a `source` and a `component`"),
        ] {
            let err = site(push).unwrap_err();
            assert_eq!(err.exit_code(), 3);
            let err = err.to_string();
            assert!(err.contains(wanted), "wanted `{wanted}` in:\n{err}");
            assert!(err.contains("hint:"), "{err}");
        }
    }
}
