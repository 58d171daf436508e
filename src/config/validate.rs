//! The second step of reading: cross-checks that need the whole file, and
//! the value checks the raw types share.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::SignedDuration;

use super::alertmanager;
use super::raw::RawConfig;
use super::secret::BARE_SECRET;
use super::{
    config_dir, AlsoConfig, ClusterConfig, Config, OutputConfig, Secret, ServerConfig, Settings,
    SourceConfig, SourceKind, CONFIG_ENV, DEFAULT_LISTEN, DEFAULT_ON_CHANGE_TIMEOUT,
};
use crate::error::{Error, Result};

/// The next parse's [`Config::parse_id`], from 1: 0 stands for no parse.
static PARSES: AtomicU64 = AtomicU64::new(1);

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        Config::parse(&Config::read(path)?, path)
    }

    /// The text of the file at `path`, or what to do when it cannot be
    /// read.
    pub fn read(path: &Path) -> Result<String> {
        std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read `{}`: {e}\n\
                 hint: pass `--config PATH` or set `{CONFIG_ENV}`; the example \
                 `mapping.toml` shipped with statusmotd is a starting point",
                path.display()
            ))
        })
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
            state_dir: join(
                s.state_dir
                    .unwrap_or_else(|| super::DEFAULT_STATE_DIR.into()),
            ),
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
            let cx = super::probes::Context {
                config_file: path,
                base: &base,
                state_dir: &settings.state_dir,
            };
            let kind = source
                .validate(&name, &cx)
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
                SourceKind::Slurm(mut s) => {
                    // A bare name is for PATH; a path with a slash is a file.
                    if s.scontrol.components().count() > 1 {
                        s.scontrol = join(s.scontrol);
                    }
                    SourceKind::Slurm(s)
                }
                SourceKind::Alertmanager(am) => SourceKind::Alertmanager(Box::new(
                    alertmanager::complete(*am, &name, &settings.state_dir, secret),
                )),
                probes @ SourceKind::Probes(_) => probes,
            };
            sources.insert(name.clone(), SourceConfig { name, kind });
        }
        super::probes::check_pushes(&sources).map_err(|m| {
            Error::Config(format!(
                "invalid configuration in `{}`\n{m}",
                path.display()
            ))
        })?;
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
            webhook_preview: raw.server.webhook_preview.unwrap_or(false),
        };
        if server.webhook_preview && server.webhook_token.is_none() {
            return Err(Error::Config(format!(
                "`[server] webhook_preview = true` in `{}`, but no `webhook_token` is set, so `serve` takes no webhooks\n\
                 hint: set `webhook_token` in `[server]`, or remove `webhook_preview`",
                path.display()
            )));
        }

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

        alertmanager::note_mapped(&mut sources, &clusters);

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

        let notify = super::notify::validate(raw.notify, &clusters, &secret)
            .map_err(|(span, m)| at(span, m))?;

        Ok(Config {
            path: path.to_owned(),
            settings,
            sources,
            server,
            clusters,
            outputs,
            notify,
            parse_id: PARSES.fetch_add(1, Ordering::Relaxed),
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

pub(super) fn backticked<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
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
    Calendar(&'a str),
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
            Claim::Calendar(c) => format!("the `maintenance.ics` of cluster `{c}`"),
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
            (
                Claim::ClusterDir(c),
                Claim::Motd(d) | Claim::Calendar(d) | Claim::Items(d) | Claim::Output(_, d),
            ) => c == d,
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
    // The clusters' own paths cannot collide: a name holds no `/`, starts
    // with no `.` (the staging directory does) and is not `index.json`
    // ([`validate_cluster_name`]). Every conflict needs an output, and a
    // large site without one is not walked path by path.
    if outputs.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = clusters.keys().map(String::as_str).collect();
    check_claims(&names, outputs)
}

/// [`check_layout`] for the clusters named `names`, walking every path.
pub(super) fn check_claims(
    names: &[&str],
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
    for &name in names {
        let own = [
            (name.to_owned(), Claim::ClusterDir(name)),
            (format!("{name}/motd"), Claim::Motd(name)),
            (
                format!("{name}/{}", crate::calendar::FILE_NAME),
                Claim::Calendar(name),
            ),
            (format!("{name}/items"), Claim::Items(name)),
        ];
        for (path, claim) in own {
            // Valid names never get here; the check keeps this walk whole.
            if let Some(other) = claims.insert(path, claim) {
                let (this, other) = (claim.describe(outputs), other.describe(outputs));
                return Err((usize::MAX, format!("{this} is also {other}")));
            }
        }
    }
    for (i, output) in outputs.iter().enumerate() {
        for &name in names {
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
