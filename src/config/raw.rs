//! The first step of reading: what serde reads. Each newtype checks its
//! value while the toml crate still knows where it is, so errors point at
//! the line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use jiff::SignedDuration;
use serde::Deserialize;
use toml::Spanned;

use super::{alertmanager, slurm};
use super::{parse_duration, validate_cluster_name, Secret, SourceKind, DEFAULT_API_BASE};

// ---------------------------------------------------------------------------
// Raw types: what serde reads. Each newtype checks its value while the toml
// crate still knows where it is, so errors point at the line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) settings: RawSettings,
    #[serde(default)]
    pub(super) sources: BTreeMap<Spanned<SourceName>, RawSource>,
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) clusters: BTreeMap<Spanned<ClusterName>, RawCluster>,
    #[serde(default)]
    pub(super) outputs: Vec<RawOutput>,
    #[serde(default)]
    pub(super) notify: Vec<super::notify::RawRoute>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    pub(super) output_dir: Option<Spanned<PathBuf>>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) templates_dir: Option<PathBuf>,
    pub(super) timezone: Option<TzName>,
    pub(super) upcoming: Option<Duration>,
    pub(super) recent_resolved: Option<Duration>,
    pub(super) stale_after: Option<Duration>,
    pub(super) poll_interval: Option<PositiveDuration>,
    pub(super) debounce: Option<Duration>,
    pub(super) request_timeout: Option<PositiveDuration>,
    pub(super) retries: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) kind: Spanned<Kind>,
    pub(super) page_id: Option<Spanned<PageId>>,
    pub(super) api_key: Option<Spanned<Secret>>,
    pub(super) api_base: Option<Spanned<HttpUrl>>,
    pub(super) url: Option<Spanned<PageUrl>>,
    pub(super) path: Option<Spanned<PathBuf>>,
    // Kind `alertmanager`, checked in `config/alertmanager.rs`.
    pub(super) bearer_token: Option<Spanned<Secret>>,
    pub(super) basic_auth: Option<Spanned<alertmanager::RawBasicAuth>>,
    pub(super) matchers: Option<Spanned<Vec<alertmanager::RawMatcher>>>,
    pub(super) component_label: Option<Spanned<alertmanager::LabelName>>,
    pub(super) group_label: Option<Spanned<alertmanager::LabelName>>,
    pub(super) components: Option<Spanned<Vec<alertmanager::ComponentValue>>>,
    pub(super) impact: Option<Spanned<BTreeMap<String, alertmanager::ImpactName>>>,
    pub(super) status: Option<Spanned<BTreeMap<String, alertmanager::StatusName>>>,
    // Kind `slurm`, checked in `config/slurm.rs`.
    pub(super) scontrol: Option<Spanned<String>>,
    pub(super) cluster: Option<Spanned<String>>,
    pub(super) reservations: Option<Spanned<String>>,
    pub(super) drain: Option<Spanned<String>>,
    pub(super) state: Option<Spanned<BTreeMap<String, String>>>,
    pub(super) request_timeout: Option<Spanned<String>>,
    // Keys of kind `probes` (see `super::probes`).
    pub(super) interval: Option<Spanned<PositiveDuration>>,
    pub(super) timeout: Option<Spanned<PositiveDuration>>,
    pub(super) failure_threshold: Option<Spanned<super::probes::Threshold>>,
    pub(super) success_threshold: Option<Spanned<super::probes::Threshold>>,
    pub(super) include: Option<Spanned<Vec<String>>>,
    pub(super) probe: Option<Spanned<Vec<Spanned<super::probes::RawProbe>>>>,
}

pub(super) type Located = (Option<Range<usize>>, String);

impl RawSource {
    /// Checks that the keys fit the kind; an error carries the span to point
    /// at (`None`: the source's name).
    pub(super) fn validate(
        mut self,
        name: &str,
        cx: &super::probes::Context<'_>,
    ) -> std::result::Result<SourceKind, Located> {
        let kind_span = self.kind.span();
        let probe_keys = super::probes::RawProbeKeys {
            interval: self.interval.take(),
            timeout: self.timeout.take(),
            failure_threshold: self.failure_threshold.take(),
            success_threshold: self.success_threshold.take(),
            include: self.include.take(),
            probe: self.probe.take(),
        };
        let extra = |key: &str, span: Range<usize>, kind: &str| {
            (
                Some(span),
                format!(
                    "source `{name}`: `{key}` is not a key of kind `{kind}`\n\
                     hint: kind `statuspage` takes `page_id`, `api_key` and `api_base`; \
                     kind `statuspage-public` takes `url`; kind `file` takes `path`; \
                     kind `slurm` takes `scontrol`, `cluster`, `reservations`, `drain`, \
                     `state` and `request_timeout`; kind `probes` takes `interval`, `timeout`, \
                     `failure_threshold`, `success_threshold`, `include` and \
                     `[[sources.{name}.probe]]` tables; {}",
                    alertmanager::KIND_HINT
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
        let kind = *self.kind.get_ref();
        if let (false, Some((key, span))) = (kind == Kind::Alertmanager, self.alertmanager_key()) {
            return Err(extra(key, span, kind.name()));
        }
        let slurm = slurm::RawSlurm {
            scontrol: self.scontrol.take(),
            cluster: self.cluster.take(),
            reservations: self.reservations.take(),
            drain: self.drain.take(),
            state: self.state.take(),
            request_timeout: self.request_timeout.take(),
        };
        if let (false, Some((key, span))) = (kind == Kind::Slurm, slurm.first_given()) {
            return Err(extra(key, span, kind.name()));
        }
        if let (false, Some((key, span))) = (kind == Kind::Probes, probe_keys.first_given()) {
            return Err(extra(key, span, kind.name()));
        }
        match kind {
            Kind::Alertmanager => self.validate_alertmanager(name, kind_span),
            Kind::Probes => {
                let given = [
                    ("page_id", self.page_id.map(|v| v.span())),
                    ("api_key", self.api_key.map(|v| v.span())),
                    ("api_base", self.api_base.map(|v| v.span())),
                    ("url", self.url.map(|v| v.span())),
                    ("path", self.path.map(|v| v.span())),
                ];
                if let Some((key, Some(span))) = given.into_iter().find(|(_, s)| s.is_some()) {
                    return Err(extra(key, span, "probes"));
                }
                super::probes::validate(name, probe_keys, cx)
                    .map(|p| SourceKind::Probes(Box::new(p)))
            }
            Kind::Slurm => {
                let given = [
                    ("page_id", self.page_id.map(|v| v.span())),
                    ("api_key", self.api_key.map(|v| v.span())),
                    ("api_base", self.api_base.map(|v| v.span())),
                    ("url", self.url.map(|v| v.span())),
                    ("path", self.path.map(|v| v.span())),
                ];
                if let Some((key, Some(span))) = given.into_iter().find(|(_, s)| s.is_some()) {
                    return Err(extra(key, span, "slurm"));
                }
                slurm.validate(name).map(SourceKind::Slurm)
            }
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
pub(super) struct RawServer {
    pub(super) listen: Option<Listen>,
    pub(super) webhook_token: Option<Secret>,
    pub(super) refresh_token: Option<Secret>,
    pub(super) on_change: Option<Argv>,
    pub(super) on_change_timeout: Option<PositiveDuration>,
    pub(super) webhook_preview: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) source: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) groups: Vec<Entry>,
    #[serde(default)]
    pub(super) components: Vec<Entry>,
    #[serde(default = "yes")]
    pub(super) page_wide: bool,
    pub(super) template: Option<TemplateName>,
    pub(super) timezone: Option<TzName>,
    #[serde(default)]
    pub(super) also: BTreeMap<Spanned<String>, RawAlso>,
}

/// `[clusters.NAME.also.SOURCE]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlso {
    #[serde(default)]
    pub(super) groups: Vec<Entry>,
    #[serde(default)]
    pub(super) components: Vec<Entry>,
    #[serde(default)]
    pub(super) page_wide: bool,
}

pub(super) fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    pub(super) template: TemplateName,
    pub(super) path: Spanned<OutputPath>,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(super) enum Kind {
    Manage,
    Public,
    File,
    Alertmanager,
    Slurm,
    Probes,
}

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Manage => "statuspage",
            Kind::Public => "statuspage-public",
            Kind::File => "file",
            Kind::Alertmanager => "alertmanager",
            Kind::Slurm => "slurm",
            Kind::Probes => "probes",
        }
    }
}

impl TryFrom<String> for Kind {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "statuspage" => Ok(Kind::Manage),
            "statuspage-public" => Ok(Kind::Public),
            "file" => Ok(Kind::File),
            "alertmanager" => Ok(Kind::Alertmanager),
            "slurm" => Ok(Kind::Slurm),
            "probes" => Ok(Kind::Probes),
            _ => Err(format!(
                "unknown source kind `{s}`\n\
                 hint: use `statuspage` (manage API v1: `page_id` and `api_key`), \
                 `statuspage-public` (public API v2 of any page: `url`), \
                 `file` (a snapshot file a site script writes: `path`), \
                 `alertmanager` (a Prometheus Alertmanager: `url`), \
                 `slurm` (partitions and reservations read with `scontrol`) or \
                 `probes` (health checks statusmotd runs: `[[sources.NAME.probe]]`)"
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
        pub(super) struct $name(pub(super) String);

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
checked_string!(TzName, |s| if known_time_zone(s) {
    Ok(())
} else {
    Err(format!(
        "unknown time zone `{s}`\nhint: use an IANA name such as `UTC` or `Europe/London` \
         (see `/usr/share/zoneinfo`)"
    ))
});

/// Whether `name` is a time zone the renderers can use: asked of their own
/// look-up ([`crate::render::time_zone`]), so that the two never disagree.
fn known_time_zone(name: &str) -> bool {
    crate::render::time_zone(name).is_ok()
}
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
        if s == format!("{{cluster}}/{}", crate::calendar::FILE_NAME) {
            return Err(format!(
                "output path `{s}` would overwrite the cluster's maintenance calendar\n{hint}"
            ));
        }
        Ok(())
    }
);

/// An `http://` or `https://` URL, kept without a trailing slash.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct HttpUrl(pub(super) String);

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
pub(super) struct PageUrl(pub(super) HttpUrl);

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
pub(super) struct Duration(pub(super) SignedDuration);

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
pub(super) struct PositiveDuration(pub(super) SignedDuration);

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
pub(super) struct Argv(pub(super) Vec<String>);

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
