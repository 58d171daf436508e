//! `kind = "alertmanager"`: the keys of a Prometheus Alertmanager source,
//! read and checked while the toml crate still knows their line, and the
//! matcher syntax the source shares with Alertmanager (`name="value"`,
//! `name!="value"`, `name=~"regex"`, `name!~"regex"`).
//!
//! Severity maps are merged over the defaults (`critical` -> `major` /
//! `major_outage`, `warning` -> `minor` / `degraded_performance`), so a site
//! that adds `page = "critical"` keeps the two it did not write.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::raw::{Located, RawSource};
use super::{ClusterConfig, Secret, SourceConfig, SourceKind};
use crate::model::ComponentStatus;

/// `component_label` when not set.
pub const DEFAULT_COMPONENT_LABEL: &str = "cluster";

/// A validated `[sources.NAME]` of kind `alertmanager`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerConfig {
    /// Without a trailing slash.
    pub url: String,
    pub auth: Option<Auth>,
    /// Sent as `filter` with every alert request, in the order written.
    pub matchers: Vec<Matcher>,
    /// Each distinct value is a component.
    pub component_label: String,
    /// Each distinct value is a group of the components its alerts name.
    pub group_label: Option<String>,
    /// Component names declared ahead of any alert (`components = [...]`):
    /// always in the snapshot, and, when given, the only names a cluster may
    /// select besides those alerts and silences name.
    pub components: Vec<String>,
    /// Severity -> incident impact (`none`, `minor`, `major`, `critical`).
    pub impact: BTreeMap<String, String>,
    /// Severity -> the status of the components a firing alert names.
    pub status: BTreeMap<String, ComponentStatus>,
    /// Component values the clusters select from this source, filled in by
    /// [`super::Config::parse`]: a healthy cluster has no alert, and its name
    /// must still resolve. Left empty when `components` is declared, so that
    /// `mapping check` flags a name outside it.
    pub mapped_components: Vec<String>,
    /// Group values the clusters select from this source.
    pub mapped_groups: Vec<String>,
    /// Where the source keeps what it saw, for "recently resolved".
    pub memory: PathBuf,
}

/// How requests to Alertmanager authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic <username:password>`.
    Basic { username: String, password: Secret },
}

impl AlertmanagerConfig {
    /// The secrets the source reads.
    pub fn secrets(&self) -> Vec<&Secret> {
        match &self.auth {
            Some(Auth::Bearer(token)) => vec![token],
            Some(Auth::Basic { password, .. }) => vec![password],
            None => Vec::new(),
        }
    }

    /// The impact of an alert of `severity`: the configured map, else `none`
    /// (shown, but not counted as an outage).
    pub fn impact_of(&self, severity: Option<&str>) -> &str {
        severity
            .and_then(|s| self.impact.get(s))
            .map_or("none", String::as_str)
    }

    /// The status an alert of `severity` gives the components it names.
    pub fn status_of(&self, severity: Option<&str>) -> ComponentStatus {
        severity
            .and_then(|s| self.status.get(s))
            .copied()
            .unwrap_or_default()
    }

    /// The keys as `mapping init` writes them back: plain strings, secrets
    /// as their references, lists and maps as TOML values.
    pub fn fields(&self) -> Vec<(&'static str, super::SourceField<'_>)> {
        use super::SourceField;
        use std::borrow::Cow;
        let mut out = vec![("url", SourceField::Text(Cow::Borrowed(&self.url)))];
        match &self.auth {
            Some(Auth::Bearer(token)) => out.push(("bearer_token", SourceField::Secret(token))),
            Some(Auth::Basic { username, password }) => out.push((
                "basic_auth",
                SourceField::Toml(format!(
                    "{{ username = {}, password = {} }}",
                    toml_string(username),
                    secret_toml(password)
                )),
            )),
            None => {}
        }
        if !self.matchers.is_empty() {
            out.push((
                "matchers",
                SourceField::Toml(toml_list(self.matchers.iter().map(Matcher::to_string))),
            ));
        }
        out.push((
            "component_label",
            SourceField::Text(Cow::Borrowed(&self.component_label)),
        ));
        if let Some(group) = &self.group_label {
            out.push(("group_label", SourceField::Text(Cow::Borrowed(group))));
        }
        if !self.components.is_empty() {
            out.push((
                "components",
                SourceField::Toml(toml_list(self.components.iter().cloned())),
            ));
        }
        out.push((
            "impact",
            SourceField::Toml(toml_map(self.impact.iter().map(|(k, v)| (k, v.as_str())))),
        ));
        out.push((
            "status",
            SourceField::Toml(toml_map(self.status.iter().map(|(k, v)| (k, v.as_str())))),
        ));
        out
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn toml_list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.map(|s| toml_string(&s)).collect();
    format!("[{}]", items.join(", "))
}

fn toml_map<'a>(entries: impl Iterator<Item = (&'a String, &'a str)>) -> String {
    let entries: Vec<String> = entries
        .map(|(k, v)| format!("{} = {}", toml_key(k), toml_string(v)))
        .collect();
    format!("{{ {} }}", entries.join(", "))
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_owned()
    } else {
        toml_string(k)
    }
}

fn secret_toml(secret: &Secret) -> String {
    match secret {
        Secret::Env(name) => format!("{{ env = {} }}", toml_string(name)),
        Secret::File(path) => format!("{{ file = {} }}", toml_string(&path.to_string_lossy())),
        Secret::Credential(name) => format!("{{ credential = {} }}", toml_string(name)),
    }
}

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }

    /// `=` and `=~` select what they name; `!=` and `!~` what they do not.
    pub fn is_positive(self) -> bool {
        matches!(self, MatchOp::Equal | MatchOp::Regex)
    }
}

/// One Alertmanager label matcher. Regular expressions are anchored at both
/// ends, as Alertmanager anchors them.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.op, &self.value) == (&other.name, other.op, &other.value)
    }
}

impl Eq for Matcher {}

/// Matches a label name: `[a-zA-Z_][a-zA-Z0-9_]*`, as Prometheus has it.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const MATCHER_FORMS: &str = "write `name=\"value\"`, `name!=\"value\"`, `name=~\"regex\"` or \
                             `name!~\"regex\"`, e.g. `severity=~\"critical|warning\"`";

impl Matcher {
    /// A matcher from its parts, as a silence carries them; fails only on a
    /// regular expression that does not compile.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regular expression `{value}`: {e}"))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Reads one matcher in Alertmanager's syntax: a label name, an
    /// operator, and a value in double quotes (with `\"`, `\\` and `\n`
    /// escapes) or bare.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let s = text.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .map_or(s, str::trim);
        let name_len = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let (name, rest) = s.split_at(name_len);
        if !is_label_name(name) {
            return Err(format!(
                "invalid matcher `{text}`: it does not start with a label name\nhint: {MATCHER_FORMS}"
            ));
        }
        let rest = rest.trim_start();
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(format!(
                "invalid matcher `{text}`: no `=`, `!=`, `=~` or `!~` after `{name}`\nhint: {MATCHER_FORMS}"
            ));
        };
        let value = value.trim();
        let value = if let Some(quoted) = value.strip_prefix('"') {
            unquote(quoted).ok_or_else(|| {
                format!(
                    "invalid matcher `{text}`: the quoted value is not closed, or text follows it\n\
                     hint: {MATCHER_FORMS}; write `\\\"` for a quote inside the value"
                )
            })?
        } else if value.contains(['"', ',', '{', '}']) {
            return Err(format!(
                "invalid matcher `{text}`: the value holds `\"`, `,`, `{{` or `}}` without quotes\n\
                 hint: {MATCHER_FORMS}; give one matcher per list entry"
            ));
        } else {
            value.to_owned()
        };
        Matcher::new(name, op, &value).map_err(|e| {
            format!("invalid matcher `{text}`: {e}\nhint: Alertmanager regular expressions are RE2, anchored at both ends")
        })
    }

    /// Whether a label value (`None`: the label is absent, which matches as
    /// the empty string, as in Alertmanager) passes this matcher.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let value = value.unwrap_or_default();
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

/// The rest of a quoted value after its opening quote, unescaped; `None`
/// when it is not closed or text follows the closing quote.
fn unquote(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return chars.as_str().trim().is_empty().then_some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// The matcher as Alertmanager's `filter` parameter takes it.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escaped = self
            .value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        write!(f, "{}{}\"{escaped}\"", self.name, self.op.as_str())
    }
}

// ---------------------------------------------------------------------------
// Raw forms, read by the `RawSource` of `config.rs`.

/// `matchers = [...]` entry.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct RawMatcher(Matcher);

impl TryFrom<String> for RawMatcher {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Matcher::parse(&s).map(RawMatcher)
    }
}

/// `component_label` / `group_label`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct LabelName(String);

impl TryFrom<String> for LabelName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if is_label_name(&s) {
            Ok(LabelName(s))
        } else {
            Err(format!(
                "invalid label name `{s}`\nhint: a Prometheus label name is letters, digits and `_`, \
                 not starting with a digit, e.g. `cluster`"
            ))
        }
    }
}

/// A value of `impact = { severity = "..." }`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct ImpactName(String);

const IMPACTS: [&str; 4] = ["none", "minor", "major", "critical"];

impl TryFrom<String> for ImpactName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if IMPACTS.contains(&s.as_str()) {
            Ok(ImpactName(s))
        } else {
            Err(format!(
                "unknown impact `{s}`\nhint: an impact is one of `none`, `minor`, `major` or `critical`, \
                 e.g. `impact = {{ critical = \"major\", warning = \"minor\" }}`"
            ))
        }
    }
}

/// A value of `status = { severity = "..." }`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct StatusName(ComponentStatus);

impl TryFrom<String> for StatusName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        const ALL: [ComponentStatus; 5] = [
            ComponentStatus::Operational,
            ComponentStatus::UnderMaintenance,
            ComponentStatus::DegradedPerformance,
            ComponentStatus::PartialOutage,
            ComponentStatus::MajorOutage,
        ];
        ALL.into_iter()
            .find(|st| st.as_str() == s)
            .map(StatusName)
            .ok_or_else(|| {
                format!(
                    "unknown component status `{s}`\nhint: a status is one of `operational`, \
                     `under_maintenance`, `degraded_performance`, `partial_outage` or `major_outage`, \
                     e.g. `status = {{ critical = \"major_outage\", warning = \"degraded_performance\" }}`"
                )
            })
    }
}

/// `basic_auth = { username = "...", password = { env = "..." } }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBasicAuth {
    username: String,
    password: Secret,
}

/// A component name in `components = [...]`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct ComponentValue(String);

impl TryFrom<String> for ComponentValue {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.trim().is_empty() {
            Err("empty component name in `components`".to_owned())
        } else {
            Ok(ComponentValue(s))
        }
    }
}

/// The keys only kind `alertmanager` takes, for other kinds to refuse.
const KEYS: &str = "`url`, `bearer_token` or `basic_auth`, `matchers`, `component_label`, \
                    `group_label`, `components`, `impact` and `status`";

/// The hint line of a key given to the wrong kind.
pub(super) const KIND_HINT: &str =
    "kind `alertmanager` takes `url`, `bearer_token` or `basic_auth`, \
                                    `matchers`, `component_label`, `group_label`, `components`, \
                                    `impact` and `status`";

impl RawSource {
    /// The first key of kind `alertmanager` the table gives, for a table of
    /// another kind to refuse.
    pub(super) fn alertmanager_key(&self) -> Option<(&'static str, Range<usize>)> {
        [
            (
                "bearer_token",
                self.bearer_token.as_ref().map(Spanned::span),
            ),
            ("basic_auth", self.basic_auth.as_ref().map(Spanned::span)),
            ("matchers", self.matchers.as_ref().map(Spanned::span)),
            (
                "component_label",
                self.component_label.as_ref().map(Spanned::span),
            ),
            ("group_label", self.group_label.as_ref().map(Spanned::span)),
            ("components", self.components.as_ref().map(Spanned::span)),
            ("impact", self.impact.as_ref().map(Spanned::span)),
            ("status", self.status.as_ref().map(Spanned::span)),
        ]
        .into_iter()
        .find_map(|(key, span)| span.map(|s| (key, s)))
    }

    /// Checks a table of kind `alertmanager`. `memory` and the mapped
    /// names are filled in by [`super::Config::parse`].
    pub(super) fn validate_alertmanager(
        self,
        name: &str,
        kind_span: Range<usize>,
    ) -> Result<SourceKind, Located> {
        let given = [
            ("page_id", self.page_id.as_ref().map(Spanned::span)),
            ("api_key", self.api_key.as_ref().map(Spanned::span)),
            ("api_base", self.api_base.as_ref().map(Spanned::span)),
            ("path", self.path.as_ref().map(Spanned::span)),
        ];
        if let Some((key, Some(span))) = given.into_iter().find(|(_, s)| s.is_some()) {
            return Err((
                Some(span),
                format!(
                    "source `{name}`: `{key}` is not a key of kind `alertmanager`\nhint: kind \
                     `alertmanager` takes {KEYS}"
                ),
            ));
        }
        let url = self.url.ok_or_else(|| {
            (
                Some(kind_span),
                format!(
                    "source `{name}` of kind `alertmanager` needs `url`\n\
                     hint: add `url = \"http://alertmanager.example.org:9093\"`"
                ),
            )
        })?;
        let auth = match (self.bearer_token, self.basic_auth) {
            (Some(_), Some(basic)) => {
                return Err((
                    Some(basic.span()),
                    format!(
                        "source `{name}` has both `bearer_token` and `basic_auth`\n\
                         hint: Alertmanager takes one `Authorization` header; keep the one its proxy expects"
                    ),
                ))
            }
            (Some(token), None) => Some(Auth::Bearer(token.into_inner())),
            (None, Some(basic)) => {
                let basic = basic.into_inner();
                Some(Auth::Basic {
                    username: basic.username,
                    password: basic.password,
                })
            }
            (None, None) => None,
        };
        let mut impact: BTreeMap<String, String> = [("critical", "major"), ("warning", "minor")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        impact.extend(
            self.impact
                .map(Spanned::into_inner)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0)),
        );
        let mut status: BTreeMap<String, ComponentStatus> = [
            ("critical", ComponentStatus::MajorOutage),
            ("warning", ComponentStatus::DegradedPerformance),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        status.extend(
            self.status
                .map(Spanned::into_inner)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0)),
        );
        let url = url.into_inner().0 .0;
        Ok(SourceKind::Alertmanager(Box::new(AlertmanagerConfig {
            url,
            auth,
            matchers: self
                .matchers
                .map(|m| m.into_inner().into_iter().map(|m| m.0).collect())
                .unwrap_or_default(),
            component_label: self
                .component_label
                .map_or_else(|| DEFAULT_COMPONENT_LABEL.to_owned(), |l| l.into_inner().0),
            group_label: self.group_label.map(|l| l.into_inner().0),
            components: self
                .components
                .map(|c| {
                    c.into_inner()
                        .into_iter()
                        .map(|c| c.0)
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect()
                })
                .unwrap_or_default(),
            impact,
            status,
            mapped_components: Vec::new(),
            mapped_groups: Vec::new(),
            memory: PathBuf::new(),
        })))
    }
}

/// What [`super::Config::parse`] adds once the whole file is read: secret
/// files joined to the configuration's directory, where the source keeps
/// its memory, and the names the clusters select from it.
pub(super) fn complete(
    mut am: AlertmanagerConfig,
    name: &str,
    state_dir: &Path,
    secret: impl Fn(Secret) -> Secret,
) -> AlertmanagerConfig {
    am.auth = am.auth.map(|auth| match auth {
        Auth::Bearer(token) => Auth::Bearer(secret(token)),
        Auth::Basic { username, password } => Auth::Basic {
            username,
            password: secret(password),
        },
    });
    am.memory = state_dir.join(format!("{name}.alertmanager.json"));
    am
}

/// Tells each alertmanager source which values the clusters select from it.
pub(super) fn note_mapped(
    sources: &mut BTreeMap<String, SourceConfig>,
    clusters: &BTreeMap<String, ClusterConfig>,
) {
    // Most configurations have none: their clusters' parts are not listed.
    let any = sources
        .values()
        .any(|s| matches!(s.kind, SourceKind::Alertmanager(_)));
    if !any {
        return;
    }
    for part in clusters.values().flat_map(ClusterConfig::parts) {
        let Some(SourceConfig {
            kind: SourceKind::Alertmanager(am),
            ..
        }) = sources.get_mut(&part.source)
        else {
            continue;
        };
        if am.components.is_empty() {
            am.mapped_components.extend(part.components);
        }
        am.mapped_groups.extend(part.groups);
    }
    for source in sources.values_mut() {
        if let SourceKind::Alertmanager(am) = &mut source.kind {
            let am = &mut **am;
            for list in [&mut am.mapped_components, &mut am.mapped_groups] {
                list.sort();
                list.dedup();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> crate::Result<Config> {
        Config::parse(text, Path::new("/etc/statusmotd/mapping.toml"))
    }

    fn parse_err(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("expected an error, got {c:#?}"),
            Err(e) => {
                assert_eq!(e.exit_code(), 3, "{e}");
                e.to_string()
            }
        }
    }

    fn am(config: &Config, name: &str) -> AlertmanagerConfig {
        match &config.sources[name].kind {
            SourceKind::Alertmanager(am) => (**am).clone(),
            other => panic!("not an alertmanager source: {other:?}"),
        }
    }

    const FULL: &str = r#"
[settings]
state_dir = "/var/lib/statusmotd"

[sources.prom]
kind = "alertmanager"
url = "http://alertmanager.example.org:9093/"
basic_auth = { username = "motd", password = { file = "am-password" } }
matchers = ['severity=~"critical|warning"', "team != storage", '{env="prod"}']
component_label = "system"
group_label = "site"
components = ["cirrus", "archer2", "archer2"]
impact = { page = "critical", warning = "none" }
status = { page = "major_outage" }

[clusters.archer2]
source = "prom"
components = ["archer2"]
groups = ["EPCC"]

[clusters.cirrus]
source = "prom"
components = ["cirrus"]
"#;

    #[test]
    fn every_key_is_read_and_maps_merge_over_the_defaults() {
        let c = parse(FULL).unwrap();
        let am = am(&c, "prom");
        assert_eq!(am.url, "http://alertmanager.example.org:9093");
        assert_eq!(
            am.auth,
            Some(Auth::Basic {
                username: "motd".into(),
                password: Secret::File("/etc/statusmotd/am-password".into()),
            })
        );
        let filters: Vec<String> = am.matchers.iter().map(ToString::to_string).collect();
        assert_eq!(
            filters,
            [
                r#"severity=~"critical|warning""#,
                r#"team!="storage""#,
                r#"env="prod""#
            ]
        );
        assert_eq!(am.component_label, "system");
        assert_eq!(am.group_label.as_deref(), Some("site"));
        assert_eq!(am.components, ["archer2", "cirrus"]);
        assert_eq!(am.impact_of(Some("critical")), "major");
        assert_eq!(am.impact_of(Some("page")), "critical");
        assert_eq!(am.impact_of(Some("warning")), "none");
        assert_eq!(am.impact_of(Some("info")), "none");
        assert_eq!(am.impact_of(None), "none");
        assert_eq!(am.status_of(Some("page")), ComponentStatus::MajorOutage);
        assert_eq!(
            am.status_of(Some("warning")),
            ComponentStatus::DegradedPerformance
        );
        assert_eq!(am.status_of(Some("info")), ComponentStatus::Operational);
        assert_eq!(
            am.memory,
            Path::new("/var/lib/statusmotd/prom.alertmanager.json")
        );
        // Declared components: mapped names are not added, so a typo fails.
        assert!(am.mapped_components.is_empty());
        assert_eq!(am.mapped_groups, ["EPCC"]);
        assert_eq!(
            c.sources["prom"].kind.secrets(),
            [&Secret::File("/etc/statusmotd/am-password".into())]
        );
    }

    #[test]
    fn defaults_and_mapped_names() {
        let c = parse(
            "[sources.am]\nkind = \"alertmanager\"\nurl = \"https://am.example.org\"\n\
             bearer_token = { env = \"AM_TOKEN\" }\n\
             [clusters.a]\ncomponents = [\"archer2\", \"x\"]\n\
             [clusters.b]\ncomponents = [\"x\"]\n",
        )
        .unwrap();
        let am = am(&c, "am");
        assert_eq!(am.component_label, "cluster");
        assert_eq!(am.group_label, None);
        assert!(am.matchers.is_empty());
        assert_eq!(am.auth, Some(Auth::Bearer(Secret::Env("AM_TOKEN".into()))));
        assert_eq!(am.impact_of(Some("critical")), "major");
        assert_eq!(am.impact_of(Some("warning")), "minor");
        assert_eq!(am.status_of(Some("critical")), ComponentStatus::MajorOutage);
        assert_eq!(am.mapped_components, ["archer2", "x"]);
        assert_eq!(c.sources["am"].kind.name(), "alertmanager");
        assert_eq!(
            c.sources["am"].kind.secrets(),
            [&Secret::Env("AM_TOKEN".into())]
        );
    }

    const HEAD: &str = "[sources.am]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\n";
    const TAIL: &str = "[clusters.a]\ncomponents = [\"a\"]\n";

    #[test]
    fn bad_values_are_refused_at_their_line_with_a_hint() {
        let cases: [(&str, &[&str]); 9] = [
            (
                "matchers = ['severity=~\"(critical\"']\n",
                &["line 4", "invalid matcher", "regular expression", "hint:"],
            ),
            (
                "matchers = ['severity']\n",
                &["line 4", "no `=`, `!=`, `=~` or `!~`", "hint:"],
            ),
            (
                "matchers = ['9x=\"a\"']\n",
                &["line 4", "does not start with a label name"],
            ),
            (
                "matchers = ['a=\"b\", c=\"d\"']\n",
                &["line 4", "text follows it"],
            ),
            (
                "impact = { critical = \"huge\" }\n",
                &["line 4", "unknown impact `huge`", "`none`, `minor`, `major` or `critical`"],
            ),
            (
                "status = { critical = \"down\" }\n",
                &["line 4", "unknown component status `down`", "major_outage"],
            ),
            (
                "component_label = \"the cluster\"\n",
                &["line 4", "invalid label name", "hint:"],
            ),
            (
                "bearer_token = \"abc123\"\n",
                &["secrets are not written into mapping.toml"],
            ),
            (
                "bearer_token = { env = \"T\" }\nbasic_auth = { username = \"u\", password = { env = \"P\" } }\n",
                &["line 5", "both `bearer_token` and `basic_auth`"],
            ),
        ];
        for (line, wanted) in cases {
            let e = parse_err(&format!("{HEAD}{line}{TAIL}"));
            for w in wanted {
                assert!(e.contains(w), "{line}: {w:?} not in {e}");
            }
            assert!(!e.contains("abc123"), "{e}");
        }
    }

    #[test]
    fn url_must_be_http_and_is_required() {
        let e = parse_err(&format!(
            "[sources.am]\nkind = \"alertmanager\"\nurl = \"alertmanager:9093\"\n{TAIL}"
        ));
        assert!(e.contains("invalid URL `alertmanager:9093`"), "{e}");
        assert!(e.contains("hint:"), "{e}");
        let e = parse_err(&format!("[sources.am]\nkind = \"alertmanager\"\n{TAIL}"));
        assert!(e.contains("needs `url`"), "{e}");
    }

    #[test]
    fn keys_of_other_kinds_are_refused_both_ways() {
        let e = parse_err(&format!("{HEAD}page_id = \"abc\"\n{TAIL}"));
        assert!(
            e.contains("`page_id` is not a key of kind `alertmanager`"),
            "{e}"
        );
        let e = parse_err(
            "[sources.gh]\nkind = \"statuspage-public\"\nurl = \"https://x.example\"\n\
             matchers = ['a=\"b\"']\n[clusters.a]\ncomponents = [\"a\"]\n",
        );
        assert!(
            e.contains("`matchers` is not a key of kind `statuspage-public`"),
            "{e}"
        );
        assert!(e.contains("kind `alertmanager` takes"), "{e}");
        let e = parse_err(
            "[sources.f]\nkind = \"file\"\npath = \"s.json\"\ncomponent_label = \"x\"\n\
             [clusters.a]\ncomponents = [\"a\"]\n",
        );
        assert!(
            e.contains("`component_label` is not a key of kind `file`"),
            "{e}"
        );
    }

    #[test]
    fn matchers_parse_and_match_as_alertmanager_does() {
        let m = Matcher::parse(r#"cluster=~"arch.*""#).unwrap();
        assert!(m.matches(Some("archer2")));
        assert!(!m.matches(Some("xarcher2")), "anchored at the start");
        let m = Matcher::parse(r#"cluster=~"a|b""#).unwrap();
        assert!(m.matches(Some("a")) && m.matches(Some("b")));
        assert!(
            !m.matches(Some("ab")),
            "anchored around the whole alternation"
        );
        let m = Matcher::parse("cluster!=cirrus").unwrap();
        assert!(m.matches(Some("archer2")) && !m.matches(Some("cirrus")));
        assert!(m.matches(None));
        let m = Matcher::parse(r#"msg="say \"hi\"\n""#).unwrap();
        assert_eq!(m.value, "say \"hi\"\n");
        assert_eq!(m.to_string(), r#"msg="say \"hi\"\n""#);
        let m = Matcher::parse(r#"x!~"""#).unwrap();
        assert!(m.matches(Some("y")) && !m.matches(None));
    }

    #[test]
    fn the_readme_example_loads() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("## The `alertmanager` source")
            .nth(1)
            .expect("README has an alertmanager section");
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the section has a TOML example");
        let c = parse(example).unwrap();
        let am = am(&c, "prom");
        assert_eq!(am.matchers.len(), 1);
        assert_eq!(am.mapped_components, ["archer2", "cirrus"]);
    }

    #[test]
    fn mapping_init_fields_are_valid_toml() {
        use std::fmt::Write as _;
        let c = parse(FULL).unwrap();
        let mut text = String::from("kind = \"alertmanager\"\n");
        for (key, value) in c.sources["prom"].kind.fields() {
            let value = match value {
                crate::config::SourceField::Text(t) => toml_string(&t),
                crate::config::SourceField::Secret(s) => secret_toml(s),
                crate::config::SourceField::Toml(t) => t,
            };
            writeln!(text, "{key} = {value}").unwrap();
        }
        let again = parse(&format!("[sources.prom]\n{text}{TAIL}")).unwrap();
        let (mut a, mut b) = (am(&c, "prom"), am(&again, "prom"));
        a.mapped_groups.clear();
        b.mapped_groups.clear();
        b.memory.clone_from(&a.memory);
        assert_eq!(a, b, "{text}");
    }
}
