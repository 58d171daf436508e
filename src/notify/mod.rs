//! Notifications: the per-cluster views, routed to people beyond the login
//! banner (`[[notify]]`).
//!
//! After every render, [`Notifier::enqueue`] compares each rendered
//! cluster's view with what was seen before ([`events::diff`]), queues
//! every (route, event) in the outbox ([`outbox::Outbox`], in `state_dir`)
//! and saves it, all before anything is sent. [`Notifier::deliver`] then
//! sends what is due, each route on its own (a receiver that hangs holds up
//! only its own route), each attempt bounded by a timeout, and records the
//! outcome in the outbox after each attempt. `serve` runs deliveries in a
//! task of their own, so a receiver that is down never delays a render;
//! `render` tries once, briefly, and leaves the rest for the next run.

pub mod events;
pub mod outbox;
pub mod receivers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use minijinja::context;
use minijinja::value::Value;
use sha2::{Digest, Sha256};

use crate::config::{Config, EventKind, NotifyRoute};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::ItemKind;
use crate::render::{Renderer, NOTIFY_TEMPLATE};
use crate::view::ClusterView;

pub use events::Event;
pub use outbox::{Dropped, Outbox};
pub use receivers::{Message, Outcome};

/// How long one delivery may take: `request_timeout`, within 1-30 s.
pub fn attempt_timeout(config: &Config) -> Duration {
    Duration::try_from(config.settings.request_timeout)
        .unwrap_or(Duration::from_secs(10))
        .clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// The id a receiver recognises a repeat by: Matrix's txnId, the webhook's
/// `Idempotency-Key`, the e-mail's `Message-ID`. Derived from the route and
/// the event, so every attempt of one delivery carries the same.
pub fn delivery_key(route: &str, event_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(event_id.as_bytes());
    format!("statusmotd-{}", hex::encode(&h.finalize()[..16]))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The outbox of one `state_dir` and the deliveries from it.
pub struct Notifier {
    state_dir: PathBuf,
    outbox: Mutex<Outbox>,
    client: reqwest::Client,
    /// Woken when something is queued.
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// Says what happened to events dropped outside a delivery, and counts it.
fn report_dropped(dropped: Vec<Dropped>, metrics: Option<&Metrics>) {
    for d in dropped {
        let (result, p) = match &d {
            Dropped::Expired(p) => {
                tracing::error!(
                    route = %p.route,
                    "dropping the `{}` notification of `{}` on {}: undeliverable since {} (last error: {})",
                    p.event.kind.as_str(),
                    p.event.item.name,
                    p.event.clusters.join(", "),
                    p.queued_at,
                    p.last_error.as_deref().unwrap_or("none")
                );
                ("dropped", p)
            }
            Dropped::Abandoned(p) => {
                tracing::error!(
                    route = %p.route,
                    "the `{}` notification of `{}` was being delivered when statusmotd stopped; \
                     it is not sent again (this receiver cannot recognise a repeat), so it may not have arrived",
                    p.event.kind.as_str(),
                    p.event.item.name
                );
                ("abandoned", p)
            }
            Dropped::NoRoute(p) => {
                tracing::warn!(
                    route = %p.route,
                    "dropping a pending notification: the route is no longer configured"
                );
                ("dropped", p)
            }
        };
        if let Some(m) = metrics {
            m.notification(&p.route, result);
        }
    }
}

impl Notifier {
    /// Opens the outbox of `config`'s `state_dir` (an empty one when there
    /// is none, or when it cannot be read, said at error level) and settles
    /// deliveries a stopped process left under way.
    pub fn open(config: &Config, metrics: Option<&Metrics>) -> Notifier {
        let state_dir = config.settings.state_dir.clone();
        let mut outbox = match Outbox::load(&state_dir) {
            Ok(Some(o)) => o,
            Ok(None) => Outbox::new(),
            Err(e) => {
                tracing::error!("{e}");
                Outbox::new()
            }
        };
        let before = outbox.clone();
        let dropped = outbox.recover(&config.notify, Timestamp::now());
        report_dropped(dropped, metrics);
        if outbox != before {
            if let Err(e) = outbox.save(&state_dir) {
                tracing::error!("cannot keep the notification outbox: {e}");
            }
        }
        Notifier {
            state_dir,
            outbox: Mutex::new(outbox),
            client: receivers::client(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Where the outbox lives.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Finds the events of `views` and queues them for every route, then
    /// keeps the outbox: before anything is sent. Nothing at all without
    /// routes (so adding the first route later is a first run). Returns how
    /// many (route, event) were queued.
    pub fn enqueue(
        &self,
        config: &Config,
        views: &[&ClusterView],
        metrics: Option<&Metrics>,
    ) -> Result<usize> {
        if config.notify.is_empty() {
            return Ok(0);
        }
        let now = Timestamp::now();
        let mut outbox = lock(&self.outbox);
        let before = outbox.clone();
        let dropped = outbox.expire(now);
        let queued = outbox.enqueue(&config.notify, views, now);
        // A cluster removed from the configuration is forgotten: should it
        // come back, it is seen for the first time again.
        outbox.seen.retain(|c, _| config.clusters.contains_key(c));
        if *outbox != before {
            outbox.save(&self.state_dir)?;
        }
        drop(outbox);
        report_dropped(dropped, metrics);
        if queued > 0 {
            tracing::info!("{queued} notification(s) queued");
            self.wake.notify_one();
        }
        Ok(queued)
    }

    /// Wakes [`Notifier::wait`].
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until [`Notifier::enqueue`] queued something (or
    /// [`Notifier::wake`]) or `timeout` passed.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    /// The time until the next entry is due, if one waits.
    pub fn next_due_in(&self) -> Option<Duration> {
        let next = lock(&self.outbox).next_due()?;
        let wait = Timestamp::now().duration_until(next);
        Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
    }

    /// Pending (route, event)s and the age of the oldest, for the metrics.
    pub fn backlog(&self) -> (usize, Option<Duration>) {
        let outbox = lock(&self.outbox);
        let now = Timestamp::now();
        let oldest = outbox
            .pending
            .iter()
            .map(|p| p.queued_at)
            .min()
            .map(|t| Duration::try_from(now.duration_since(t)).unwrap_or(Duration::ZERO));
        (outbox.pending.len(), oldest)
    }

    /// Routes whose oldest undelivered event has failed for longer than
    /// `stale_after`, in words for `/readyz`.
    pub fn failing(&self, config: &Config, now: Timestamp) -> Vec<String> {
        let stale_after = config.settings.stale_after;
        lock(&self.outbox)
            .failing_routes()
            .into_iter()
            .filter(|(_, (since, _))| now.duration_since(*since) > stale_after)
            .map(|(route, (since, error))| {
                format!(
                    "notification route `{route}` has failed since {since}, more than `stale_after` ({}): {error}",
                    crate::view::short_duration(stale_after)
                )
            })
            .collect()
    }

    fn save(&self, outbox: &Outbox) {
        if let Err(e) = outbox.save(&self.state_dir) {
            tracing::error!("cannot keep the notification outbox: {e}");
        }
    }

    /// Per route, the ids of the events to send now, in order: those due,
    /// or with `everything` also those waiting for their backoff. Drops
    /// what waited too long, and what belongs to no configured route,
    /// first.
    pub fn due_by_route(
        &self,
        config: &Config,
        everything: bool,
        metrics: Option<&Metrics>,
    ) -> BTreeMap<String, Vec<String>> {
        let due: Vec<(String, String)> = {
            let mut outbox = lock(&self.outbox);
            let now = Timestamp::now();
            let mut dropped = outbox.forget_routes(&config.notify);
            dropped.extend(outbox.expire(now));
            if !dropped.is_empty() {
                self.save(&outbox);
            }
            report_dropped(dropped, metrics);
            if everything {
                outbox
                    .pending
                    .iter()
                    .filter(|p| !p.in_flight)
                    .map(|p| (p.route.clone(), p.event.id.clone()))
                    .collect()
            } else {
                outbox.due(now)
            }
        };
        let mut per_route: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (route, id) in due {
            per_route.entry(route).or_default().push(id);
        }
        per_route
    }

    /// Sends what is due (see [`Notifier::due_by_route`]), each route
    /// concurrently, its events in order. No attempt starts after `until`;
    /// each is bounded by [`attempt_timeout`]. Returns how many were
    /// delivered.
    pub async fn deliver(
        &self,
        config: &Config,
        renderer: &Renderer,
        metrics: Option<&Metrics>,
        everything: bool,
        until: Option<Instant>,
    ) -> usize {
        let per_route = self.due_by_route(config, everything, metrics);
        let runs = per_route.into_iter().filter_map(|(name, ids)| {
            let route = config.notify.iter().find(|r| r.name == name)?;
            Some(self.deliver_route(config, renderer, metrics, route, ids, until))
        });
        futures_util::future::join_all(runs).await.into_iter().sum()
    }

    /// Sends the events `ids` of `route`, in order, one at a time. Returns
    /// how many were delivered.
    pub async fn deliver_route(
        &self,
        config: &Config,
        renderer: &Renderer,
        metrics: Option<&Metrics>,
        route: &NotifyRoute,
        ids: Vec<String>,
        until: Option<Instant>,
    ) -> usize {
        let timeout = attempt_timeout(config);
        let scrub = config.secret_env_vars();
        let mut sent = 0;
        for id in ids {
            if until.is_some_and(|u| Instant::now() >= u) {
                break;
            }
            let pending = {
                let mut outbox = lock(&self.outbox);
                let Some(p) = outbox.start(&route.name, &id) else {
                    continue;
                };
                // Kept before sending: a crash now is seen at the next start.
                self.save(&outbox);
                p
            };
            let event = &pending.event;
            let (msg, payload) = compose(config, renderer, route, Some(event));
            let key = delivery_key(&route.name, &event.id);
            let outcome =
                receivers::send(&self.client, route, &msg, &payload, &key, timeout, &scrub).await;
            let now = Timestamp::now();
            let mut outbox = lock(&self.outbox);
            match outcome {
                Outcome::Sent(answer) => {
                    outbox.delivered(&route.name, &id, now);
                    tracing::info!(
                        route = %route.name,
                        "sent `{}` of `{}` on {} to {}: {answer}",
                        event.kind.as_str(),
                        event.item.name,
                        event.clusters.join(", "),
                        route.to.kind()
                    );
                    if let Some(m) = metrics {
                        m.notification(&route.name, "ok");
                    }
                    sent += 1;
                }
                Outcome::Failed { error, retry_after } => {
                    outbox.failed(&route.name, &id, &error, retry_after, now);
                    tracing::warn!(
                        route = %route.name,
                        attempts = pending.attempts + 1,
                        "cannot send `{}` of `{}` to {}: {error}; retrying later",
                        event.kind.as_str(),
                        event.item.name,
                        route.to.kind()
                    );
                    if let Some(m) = metrics {
                        m.notification(&route.name, "error");
                    }
                    self.save(&outbox);
                    // The rest waits behind it, in order.
                    break;
                }
            }
            self.save(&outbox);
        }
        sent
    }
}

/// The words a subject starts with.
fn label(kind: ItemKind, event: EventKind, status: &str) -> &'static str {
    match (kind, event) {
        (ItemKind::Incident, EventKind::Resolved) => "Resolved",
        (ItemKind::Incident, EventKind::Updated) => "Incident update",
        (ItemKind::Incident, _) => "Incident",
        (ItemKind::Maintenance, EventKind::Resolved) if status == "cancelled" => {
            "Maintenance cancelled"
        }
        (ItemKind::Maintenance, EventKind::Resolved) => "Maintenance completed",
        (ItemKind::Maintenance, EventKind::Updated) => "Maintenance update",
        (ItemKind::Maintenance, EventKind::Started) => "Maintenance started",
        (ItemKind::Maintenance, _) => "Upcoming maintenance",
    }
}

fn timezone(config: &Config) -> String {
    config
        .settings
        .timezone
        .clone()
        .or_else(|| jiff::tz::TimeZone::system().iana_name().map(str::to_owned))
        .unwrap_or_else(|| "UTC".to_owned())
}

/// The message of `event` (a test message when `None`) for `route`, and the
/// JSON a webhook gets. A route's own template that fails is said at error
/// level and the built-in one is used: the news still goes out.
pub fn compose(
    config: &Config,
    renderer: &Renderer,
    route: &NotifyRoute,
    event: Option<&Event>,
) -> (Message, serde_json::Value) {
    let tz = timezone(config);
    let ctx = if let Some(e) = event {
        context! {
            test => false,
            event => e.kind.as_str(),
            item => Value::from_serialize(&e.item),
            clusters => e.clusters.clone(),
            route => route.name.clone(),
            now => e.at.to_string(),
            timezone => tz,
        }
    } else {
        context! {
            test => true,
            event => "test",
            clusters => route.clusters.clone(),
            route => route.name.clone(),
            now => Timestamp::now().to_string(),
            timezone => tz,
        }
    };
    let template = route.template.as_deref().unwrap_or(NOTIFY_TEMPLATE);
    let text = renderer
        .render_message(template, ctx.clone())
        .or_else(|e| {
            tracing::error!(route = %route.name, "{e}; using the built-in `{NOTIFY_TEMPLATE}`");
            renderer.render_message(NOTIFY_TEMPLATE, ctx)
        })
        .unwrap_or_else(|e| format!("(the message could not be rendered: {e})\n"));
    let Some(e) = event else {
        let msg = Message {
            subject: format!("statusmotd test message for route {}", route.name),
            text: text.clone(),
            link: None,
        };
        let payload = serde_json::json!({
            "event": "test",
            "route": route.name,
            "text": text,
        });
        return (msg, payload);
    };
    let subject = format!(
        "[{}] {}: {}",
        e.clusters.join(", "),
        label(e.item.kind, e.kind, &e.item.status),
        e.item.name
    );
    let msg = Message {
        subject: crate::sanitize::sanitize_line(&subject),
        text: text.clone(),
        link: e.item.shortlink.clone(),
    };
    let payload = serde_json::json!({
        "event": e.kind.as_str(),
        "id": e.id,
        "route": route.name,
        "at": e.at,
        "clusters": e.clusters,
        "item": e.item,
        "text": text,
    });
    (msg, payload)
}

/// `statusmotd notify test ROUTE`: sends a test message and returns the
/// receiver's answer.
pub async fn send_test(config: &Config, renderer: &Renderer, name: &str) -> Result<String> {
    let Some(route) = config.notify.iter().find(|r| r.name == name) else {
        let names: Vec<String> = config
            .notify
            .iter()
            .map(|r| format!("`{}`", r.name))
            .collect();
        return Err(Error::Usage(format!(
            "no `[[notify]]` route named `{name}`\nhint: {}",
            if names.is_empty() {
                "the configuration defines no route".to_owned()
            } else {
                format!("the routes are {}", names.join(", "))
            }
        )));
    };
    let (msg, payload) = compose(config, renderer, route, None);
    // Unique, so a homeserver does not take a second test for a repeat.
    let key = delivery_key(name, &format!("test-{}", Timestamp::now()));
    let outcome = receivers::send(
        &receivers::client(),
        route,
        &msg,
        &payload,
        &key,
        attempt_timeout(config),
        &config.secret_env_vars(),
    )
    .await;
    match outcome {
        Outcome::Sent(answer) => Ok(answer),
        Outcome::Failed { error, .. } => Err(Error::Runtime(format!(
            "route `{name}`: the test message was not delivered: {error}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::outbox::Pending;

    fn config(dir: &Path) -> Config {
        Config::parse(
            r#"
[settings]
state_dir = "state"
stale_after = "30m"
timezone = "UTC"
[sources.hpc]
kind = "statuspage-public"
url = "https://status.example.com"
[clusters.archer2]
components = ["Login"]
[[notify]]
name = "chat"
to = { slack = { url = { env = "X" } } }
"#,
            &dir.join("mapping.toml"),
        )
        .unwrap()
    }

    #[test]
    fn a_route_failing_longer_than_stale_after_is_a_readiness_reason() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let now = Timestamp::now();
        let event = |id: &str| Event {
            id: id.into(),
            kind: EventKind::Opened,
            item: serde_json::from_value(serde_json::json!({
                "source": "hpc", "source_title": "HPC", "id": "i1", "kind": "incident",
                "name": "Slow logins", "status": "investigating", "impact": "minor",
                "created_at": null, "updated_at": null, "started_at": null,
                "scheduled_for": null, "scheduled_until": null, "resolved_at": null,
                "shortlink": null, "components": [], "latest": null
            }))
            .unwrap(),
            clusters: vec!["archer2".into()],
            first_seen: vec![],
            at: now,
        };
        let mut outbox = Outbox::new();
        for (id, failing) in [("a", 20), ("b", 45)] {
            outbox.pending.push(Pending {
                route: "chat".into(),
                event: event(id),
                queued_at: now - jiff::SignedDuration::from_mins(failing),
                attempts: 3,
                next_at: now,
                in_flight: false,
                failing_since: Some(now - jiff::SignedDuration::from_mins(failing)),
                last_error: Some("the receiver answered 500".into()),
            });
        }
        outbox.save(&config.settings.state_dir).unwrap();
        let n = Notifier::open(&config, None);
        let reasons = n.failing(&config, now);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].contains("route `chat` has failed since"),
            "{}",
            reasons[0]
        );
        assert!(
            reasons[0].contains("the receiver answered 500"),
            "{}",
            reasons[0]
        );
        assert!(n
            .failing(&config, now - jiff::SignedDuration::from_mins(20))
            .is_empty());
        assert_eq!(n.backlog().0, 2);
    }

    #[test]
    fn a_message_names_the_event_clusters_update_and_link_and_is_terminal_safe() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let renderer = Renderer::new(None).unwrap();
        let mut item: events::ItemInfo = serde_json::from_value(serde_json::json!({
            "source": "hpc", "source_title": "HPC", "id": "i1", "kind": "incident",
            "name": "Slow logins", "status": "identified", "impact": "major",
            "created_at": null, "updated_at": null, "started_at": null,
            "scheduled_for": null, "scheduled_until": null, "resolved_at": null,
            "shortlink": "https://stspg.io/i1", "components": ["Login nodes"],
            "latest": {"status": "identified", "body": "x", "display_at": "2025-06-01T09:00:00Z"}
        }))
        .unwrap();
        // Values that bypassed the sanitizer: the formatter still cleans them.
        item.name = "Slow\u{1b}[2J logins".into();
        if let Some(u) = &mut item.latest {
            u.body = "A switch\u{202e} failed.".into();
        }
        let event = Event {
            id: "e1".into(),
            kind: EventKind::Updated,
            item,
            clusters: vec!["archer2".into(), "cirrus".into()],
            first_seen: vec![],
            at: "2025-06-01T10:00:00Z".parse().unwrap(),
        };
        let (msg, payload) = compose(&config, &renderer, &config.notify[0], Some(&event));
        assert!(
            !msg.text.contains('\u{1b}') && !msg.text.contains('\u{202e}'),
            "{:?}",
            msg.text
        );
        assert!(
            msg.text
                .starts_with("Incident update on archer2, cirrus: Slow"),
            "{}",
            msg.text
        );
        assert!(
            msg.text.contains("Status: identified (impact: major)"),
            "{}",
            msg.text
        );
        assert!(msg.text.contains("Affects: Login nodes"), "{}", msg.text);
        assert!(msg.text.contains("A switch failed."), "{}", msg.text);
        assert!(
            msg.text.contains("(Sun 01 Jun 2025 09:00 UTC)"),
            "{}",
            msg.text
        );
        assert!(msg.text.contains("https://stspg.io/i1"), "{}", msg.text);
        assert!(
            msg.subject
                .starts_with("[archer2, cirrus] Incident update: Slow"),
            "{}",
            msg.subject
        );
        assert!(!msg.subject.contains('\u{1b}'));
        assert_eq!(payload["event"], "updated");
        assert_eq!(
            payload["clusters"],
            serde_json::json!(["archer2", "cirrus"])
        );
    }

    #[test]
    fn delivery_keys_differ_per_route_and_event() {
        assert_eq!(delivery_key("a", "e1"), delivery_key("a", "e1"));
        assert_ne!(delivery_key("a", "e1"), delivery_key("b", "e1"));
        assert_ne!(delivery_key("a", "e1"), delivery_key("a", "e2"));
        assert!(delivery_key("a", "e1").starts_with("statusmotd-"));
    }
}
