//! `[[notify]]`: the routes that tell people about changes beyond the login
//! banner. Raw serde types that refuse unknown keys, then [`validate`] for
//! what needs the rest of the file (the clusters a route names, one name per
//! route). The validated [`NotifyRoute`] is what `crate::notify` sends by.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{validate_cluster_name, ClusterConfig, Secret};
use crate::model::ItemKind;

/// What happened to an item, as a route's `on` names it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// An incident appeared (or came back after it was resolved).
    Opened,
    /// An item got a new update.
    Updated,
    /// An incident was resolved, a maintenance completed or cancelled.
    Resolved,
    /// A maintenance entered the `upcoming` window.
    Upcoming,
    /// A maintenance began.
    Started,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Opened,
        EventKind::Updated,
        EventKind::Resolved,
        EventKind::Upcoming,
        EventKind::Started,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Updated => "updated",
            EventKind::Resolved => "resolved",
            EventKind::Upcoming => "upcoming",
            EventKind::Started => "started",
        }
    }
}

/// Statuspage's impact levels, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impact {
    None,
    Minor,
    Major,
    Critical,
}

impl Impact {
    /// The level of an item's `impact`; `None` for a word that is not one
    /// of the four (a maintenance's `maintenance`, an empty field).
    pub fn of(word: &str) -> Option<Impact> {
        match word {
            "none" => Some(Impact::None),
            "minor" => Some(Impact::Minor),
            "major" => Some(Impact::Major),
            "critical" => Some(Impact::Critical),
            _ => None,
        }
    }
}

/// One `[[notify]]` route.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyRoute {
    /// Unique; used in metrics, logs and the outbox.
    pub name: String,
    /// Cluster names; empty means every cluster.
    pub clusters: Vec<String>,
    pub kinds: Vec<ItemKind>,
    pub on: Vec<EventKind>,
    pub min_impact: Impact,
    pub to: Receiver,
    /// A template name in `templates_dir`; the embedded `notify.txt.j2`
    /// when `None`.
    pub template: Option<String>,
    /// Announce what already exists when the route's clusters are first
    /// seen (no outbox yet).
    pub announce_existing: bool,
}

/// Where a route's messages go.
#[derive(Debug, Clone, PartialEq)]
pub enum Receiver {
    /// A Slack or Mattermost incoming webhook; its URL is the secret.
    Slack {
        url: Secret,
    },
    Matrix {
        /// Without a trailing slash.
        homeserver: String,
        room: String,
        token: Secret,
    },
    Email {
        to: Vec<String>,
        from: String,
        via: MailVia,
    },
    Webhook {
        url: String,
        secret: Option<Secret>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum MailVia {
    /// `smtp://host[:port]` (STARTTLS when the server offers it) or
    /// `smtps://host[:port]` (TLS from the start).
    Smtp {
        url: String,
        username: Option<String>,
        password: Option<Secret>,
    },
    /// A local `sendmail` program, run without a shell.
    Sendmail(PathBuf),
}

impl Receiver {
    /// `slack`, `matrix`, `email` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            Receiver::Slack { .. } => "slack",
            Receiver::Matrix { .. } => "matrix",
            Receiver::Email { .. } => "email",
            Receiver::Webhook { .. } => "webhook",
        }
    }

    /// Whether a second delivery of one event is recognised as the same
    /// message by the receiver (Matrix's transaction id, the webhook's
    /// `Idempotency-Key`), so a delivery cut short may be repeated.
    pub fn is_idempotent(&self) -> bool {
        matches!(self, Receiver::Matrix { .. } | Receiver::Webhook { .. })
    }
}

impl NotifyRoute {
    /// The secrets the route reads.
    pub fn secrets(&self) -> Vec<&Secret> {
        match &self.to {
            Receiver::Slack { url } => vec![url],
            Receiver::Matrix { token, .. } => vec![token],
            Receiver::Email {
                via: MailVia::Smtp { password, .. },
                ..
            } => password.iter().collect(),
            Receiver::Email { .. } => Vec::new(),
            Receiver::Webhook { secret, .. } => secret.iter().collect(),
        }
    }

    fn secrets_mut(&mut self) -> Vec<&mut Secret> {
        match &mut self.to {
            Receiver::Slack { url } => vec![url],
            Receiver::Matrix { token, .. } => vec![token],
            Receiver::Email {
                via: MailVia::Smtp { password, .. },
                ..
            } => password.iter_mut().collect(),
            Receiver::Email { .. } => Vec::new(),
            Receiver::Webhook { secret, .. } => secret.iter_mut().collect(),
        }
    }

    /// Whether the route covers `cluster`.
    pub fn covers(&self, cluster: &str) -> bool {
        self.clusters.is_empty() || self.clusters.iter().any(|c| c == cluster)
    }
}

// ---------------------------------------------------------------------------
// Raw types

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    name: Spanned<String>,
    #[serde(default)]
    clusters: Vec<Spanned<String>>,
    kinds: Option<Spanned<Vec<KindWord>>>,
    on: Option<Spanned<Vec<EventKind>>>,
    min_impact: Option<Impact>,
    to: Spanned<RawTo>,
    template: Option<Spanned<String>>,
    #[serde(default)]
    announce_existing: bool,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum KindWord {
    Incident,
    Maintenance,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum RawTo {
    Slack(RawSlack),
    Matrix(RawMatrix),
    Email(RawEmail),
    Webhook(RawWebhook),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    url: Secret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    homeserver: String,
    room: String,
    token: Secret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    to: Vec<String>,
    from: String,
    smtp: Option<String>,
    sendmail: Option<PathBuf>,
    username: Option<String>,
    password: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret: Option<Secret>,
}

type Located = (Range<usize>, String);

/// Checks every route against the clusters; relative secret files are
/// resolved by `secret`. An error carries the span to point at.
pub(super) fn validate(
    raw: Vec<RawRoute>,
    clusters: &BTreeMap<String, ClusterConfig>,
    secret: &dyn Fn(Secret) -> Secret,
) -> Result<Vec<NotifyRoute>, Located> {
    let mut routes: Vec<NotifyRoute> = Vec::new();
    for r in raw {
        let name_span = r.name.span();
        let name = r.name.into_inner();
        validate_cluster_name(&name)
            .map_err(|e| (name_span.clone(), format!("invalid `[[notify]]` name: {e}")))?;
        if routes.iter().any(|o| o.name == name) {
            return Err((
                name_span,
                format!("`[[notify]]` route `{name}` is defined twice\nhint: give each route its own `name`"),
            ));
        }
        let mut route_clusters = Vec::new();
        for c in r.clusters {
            let span = c.span();
            let c = c.into_inner();
            if !clusters.contains_key(&c) {
                return Err((
                    span,
                    format!(
                        "route `{name}`: cluster `{c}` is not defined\nhint: defined clusters: {}",
                        super::validate::backticked(clusters.keys())
                    ),
                ));
            }
            if !route_clusters.contains(&c) {
                route_clusters.push(c);
            }
        }
        let kinds = match r.kinds {
            None => vec![ItemKind::Incident, ItemKind::Maintenance],
            Some(k) if k.get_ref().is_empty() => {
                return Err((
                    k.span(),
                    format!("route `{name}`: `kinds` is empty, so it would send nothing\nhint: use `[\"incident\", \"maintenance\"]`, or remove the key for both"),
                ))
            }
            Some(k) => {
                let words = k.into_inner();
                [
                    (KindWord::Incident, ItemKind::Incident),
                    (KindWord::Maintenance, ItemKind::Maintenance),
                ]
                .into_iter()
                .filter(|(w, _)| words.contains(w))
                .map(|(_, k)| k)
                .collect()
            }
        };
        let on = match r.on {
            None => EventKind::ALL.to_vec(),
            Some(o) if o.get_ref().is_empty() => {
                return Err((
                    o.span(),
                    format!("route `{name}`: `on` is empty, so it would send nothing\nhint: remove the key for every event"),
                ))
            }
            Some(o) => {
                let mut on = o.into_inner();
                on.sort();
                on.dedup();
                on
            }
        };
        if let Some(t) = &r.template {
            let s = t.get_ref();
            if s.is_empty() || s.contains(['/', '\\']) || s.contains("..") {
                return Err((
                    t.span(),
                    format!(
                        "route `{name}`: invalid template name `{s}`\nhint: give a file name in \
                         `templates_dir`, e.g. `notify.txt.j2`, without `/` or `..`"
                    ),
                ));
            }
        }
        let to_span = r.to.span();
        let to = receiver(&name, r.to.into_inner()).map_err(|m| (to_span, m))?;
        let mut route = NotifyRoute {
            name,
            clusters: route_clusters,
            kinds,
            on,
            min_impact: r.min_impact.unwrap_or(Impact::None),
            to,
            template: r.template.map(Spanned::into_inner),
            announce_existing: r.announce_existing,
        };
        for s in route.secrets_mut() {
            *s = secret(s.clone());
        }
        routes.push(route);
    }
    Ok(routes)
}

fn http_url(route: &str, key: &str, s: &str) -> Result<String, String> {
    let host = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .map(|rest| rest.split('/').next().unwrap_or_default());
    match host {
        Some(host) if !host.is_empty() && !s.contains(char::is_whitespace) => {
            Ok(s.trim_end_matches('/').to_owned())
        }
        _ => Err(format!(
            "route `{route}`: invalid `{key}` `{s}`\nhint: give an `https://` URL"
        )),
    }
}

fn mailbox(route: &str, key: &str, s: &str) -> Result<String, String> {
    s.parse::<lettre::message::Mailbox>()
        .map(|_| s.to_owned())
        .map_err(|e| {
            format!(
                "route `{route}`: invalid e-mail address `{s}` in `{key}`: {e}\n\
                 hint: write `name@example.org` or `Name <name@example.org>`"
            )
        })
}

/// Where `smtp = "..."` points: (TLS from the start, host, port).
pub fn smtp_endpoint(url: &str) -> Result<(bool, String, u16), String> {
    let (wrapped, rest) = if let Some(rest) = url.strip_prefix("smtps://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("smtp://") {
        (false, rest)
    } else {
        return Err(format!(
            "invalid `smtp` `{url}`\nhint: write `smtp://host:port` (STARTTLS when offered) or `smtps://host:port`"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("invalid port `{port}` in `smtp` `{url}`"))?;
            (host, port)
        }
        _ => (rest, if wrapped { 465 } else { 25 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(format!(
            "invalid `smtp` `{url}`: no host\nhint: write `smtp://host:port`; credentials go in `username` and `password`"
        ));
    }
    Ok((wrapped, host.to_owned(), port))
}

fn receiver(route: &str, raw: RawTo) -> Result<Receiver, String> {
    Ok(match raw {
        RawTo::Slack(s) => Receiver::Slack { url: s.url },
        RawTo::Matrix(m) => {
            if m.room.trim().is_empty() || m.room.contains(char::is_whitespace) {
                return Err(format!(
                    "route `{route}`: invalid Matrix `room` `{}`\nhint: give the room id, e.g. `!abc123:example.org`",
                    m.room
                ));
            }
            Receiver::Matrix {
                homeserver: http_url(route, "homeserver", &m.homeserver)?,
                room: m.room,
                token: m.token,
            }
        }
        RawTo::Email(e) => {
            if e.to.is_empty() {
                return Err(format!(
                    "route `{route}`: e-mail `to` is empty\nhint: `to = [\"users@example.org\"]`"
                ));
            }
            let to =
                e.to.iter()
                    .map(|a| mailbox(route, "to", a))
                    .collect::<Result<Vec<_>, _>>()?;
            let from = mailbox(route, "from", &e.from)?;
            let via = match (e.smtp, e.sendmail) {
                (Some(url), None) => {
                    smtp_endpoint(&url).map_err(|m| format!("route `{route}`: {m}"))?;
                    if e.password.is_some() != e.username.is_some() {
                        return Err(format!(
                            "route `{route}`: SMTP `username` and `password` go together\nhint: give both, or neither"
                        ));
                    }
                    MailVia::Smtp {
                        url,
                        username: e.username,
                        password: e.password,
                    }
                }
                (None, Some(path)) => {
                    if e.username.is_some() || e.password.is_some() {
                        return Err(format!(
                            "route `{route}`: `username` and `password` are for `smtp`, not `sendmail`"
                        ));
                    }
                    if !path.is_absolute() {
                        return Err(format!(
                            "route `{route}`: `sendmail` must be an absolute path\nhint: `sendmail = \"/usr/sbin/sendmail\"`"
                        ));
                    }
                    MailVia::Sendmail(path)
                }
                _ => {
                    return Err(format!(
                        "route `{route}`: e-mail needs exactly one of `smtp` and `sendmail`\n\
                         hint: `smtp = \"smtp://localhost:25\"` or `sendmail = \"/usr/sbin/sendmail\"`"
                    ))
                }
            };
            Receiver::Email { to, from, via }
        }
        RawTo::Webhook(w) => Receiver::Webhook {
            url: http_url(route, "url", &w.url)?,
            secret: w.secret,
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, MailVia, Receiver, Secret};
    use crate::model::ItemKind;

    use super::{smtp_endpoint, EventKind, Impact};

    const BASE: &str = r#"
[sources.hpc]
kind = "statuspage-public"
url = "https://status.example.com"

[clusters.archer2]
components = ["Login"]

[clusters.cirrus]
components = ["Compute"]
"#;

    fn parse(routes: &str) -> Result<Config, String> {
        Config::parse(
            &format!("{BASE}\n{routes}"),
            std::path::Path::new("/srv/conf/mapping.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_route_reads_with_its_defaults() {
        let c = parse(
            r#"
[[notify]]
name = "archer2-users"
clusters = ["archer2"]
to = { slack = { url = { env = "ARCHER2_SLACK_HOOK" } } }
"#,
        )
        .unwrap();
        let r = &c.notify[0];
        assert_eq!(r.name, "archer2-users");
        assert_eq!(r.clusters, ["archer2"]);
        assert_eq!(r.kinds, [ItemKind::Incident, ItemKind::Maintenance]);
        assert_eq!(r.on, EventKind::ALL);
        assert_eq!(r.min_impact, Impact::None);
        assert!(!r.announce_existing);
        assert_eq!(
            r.to,
            Receiver::Slack {
                url: Secret::Env("ARCHER2_SLACK_HOOK".into())
            }
        );
        assert!(r.covers("archer2") && !r.covers("cirrus"));
    }

    #[test]
    fn every_receiver_reads_and_secret_files_join_the_config_dir() {
        let c = parse(
            r#"
[[notify]]
name = "m"
on = ["started", "opened"]
min_impact = "major"
kinds = ["maintenance"]
to = { matrix = { homeserver = "https://matrix.example.org/", room = "!abc:example.org", token = { file = "keys/matrix" } } }

[[notify]]
name = "mail"
to = { email = { to = ["archer2-users@example.org"], from = "Status <status@example.org>", smtp = "smtp://localhost:2525", username = "u", password = { env = "SMTP_PASSWORD" } } }

[[notify]]
name = "local-mail"
to = { email = { to = ["a@example.org"], from = "status@example.org", sendmail = "/usr/sbin/sendmail" } }

[[notify]]
name = "hook"
template = "hook.txt.j2"
announce_existing = true
to = { webhook = { url = "https://hooks.example.org/in", secret = { credential = "hook" } } }
"#,
        )
        .unwrap();
        assert_eq!(c.notify.len(), 4);
        assert_eq!(c.notify[0].on, [EventKind::Opened, EventKind::Started]);
        assert_eq!(c.notify[0].kinds, [ItemKind::Maintenance]);
        assert_eq!(c.notify[0].min_impact, Impact::Major);
        assert_eq!(
            c.notify[0].to,
            Receiver::Matrix {
                homeserver: "https://matrix.example.org".into(),
                room: "!abc:example.org".into(),
                token: Secret::File("/srv/conf/keys/matrix".into()),
            }
        );
        assert!(matches!(
            &c.notify[1].to,
            Receiver::Email { via: MailVia::Smtp { password: Some(Secret::Env(v)), .. }, .. } if v == "SMTP_PASSWORD"
        ));
        assert!(matches!(
            &c.notify[2].to,
            Receiver::Email {
                via: MailVia::Sendmail(_),
                ..
            }
        ));
        assert_eq!(c.notify[3].template.as_deref(), Some("hook.txt.j2"));
        assert!(c.notify[3].announce_existing);
        assert_eq!(c.notify[3].secrets().len(), 1);
    }

    #[test]
    fn mistakes_are_pointed_at() {
        let cases = [
            (
                "[[notify]]\nname = \"a\"\nclusters = [\"nope\"]\nto = { slack = { url = { env = \"X\" } } }\n",
                "cluster `nope` is not defined",
            ),
            (
                "[[notify]]\nname = \"a\"\nto = { slack = { url = \"https://hooks.slack.com/services/T/B/secretpart\" } }\n",
                "secrets are not written into mapping.toml",
            ),
            (
                "[[notify]]\nname = \"a\"\nto = { pager = { url = \"x\" } }\n",
                "unknown variant `pager`",
            ),
            (
                "[[notify]]\nname = \"a\"\non = [\"exploded\"]\nto = { slack = { url = { env = \"X\" } } }\n",
                "unknown variant `exploded`",
            ),
            (
                "[[notify]]\nname = \"a\"\nto = { email = { to = [\"a@example.org\"], from = \"b@example.org\" } }\n",
                "exactly one of `smtp` and `sendmail`",
            ),
            (
                "[[notify]]\nname = \"a\"\nto = { email = { to = [\"not an address\"], from = \"b@example.org\", smtp = \"smtp://localhost\" } }\n",
                "invalid e-mail address `not an address`",
            ),
            (
                "[[notify]]\nname = \"a\"\nto = { webhook = { url = \"ftp://x\" } }\n",
                "invalid `url` `ftp://x`",
            ),
            (
                "[[notify]]\nname = \"a\"\nto = { slack = { url = { env = \"X\" } } }\n[[notify]]\nname = \"a\"\nto = { slack = { url = { env = \"Y\" } } }\n",
                "route `a` is defined twice",
            ),
            (
                "[[notify]]\nname = \"a\"\nkinds = []\nto = { slack = { url = { env = \"X\" } } }\n",
                "`kinds` is empty",
            ),
        ];
        for (toml, want) in cases {
            let e = parse(toml).unwrap_err();
            assert!(e.contains(want), "{toml}\n-> {e}");
            assert!(!e.contains("secretpart"), "{e}");
        }
    }

    #[test]
    fn smtp_urls() {
        assert_eq!(
            smtp_endpoint("smtp://localhost").unwrap(),
            (false, "localhost".into(), 25)
        );
        assert_eq!(
            smtp_endpoint("smtps://mail.example.org").unwrap(),
            (true, "mail.example.org".into(), 465)
        );
        assert_eq!(
            smtp_endpoint("smtp://127.0.0.1:2525").unwrap(),
            (false, "127.0.0.1".into(), 2525)
        );
        assert!(smtp_endpoint("smtp://user:pw@host:25").is_err());
        assert!(smtp_endpoint("http://host").is_err());
    }

    #[test]
    fn impact_words() {
        assert!(Impact::of("critical") > Impact::of("minor"));
        assert_eq!(Impact::of("maintenance"), None);
    }
}
