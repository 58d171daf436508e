//! What `serve` counts, and `GET /metrics` in the Prometheus text format
//! (`OpenMetrics`): refreshes, upstream fetches and their duration, webhooks by
//! outcome, the last good fetch per source, render duration, files written,
//! configuration reloads, `on_change` runs and how long the current one has
//! been running, and per probe its checks by result, the last check's
//! duration, its failures in a row, whether it counts as up, and its pushes
//! to the site's Statuspage by result.
//!
//! Label values are fixed words or configured source names, never anything a
//! request carries, so a client cannot grow the set of series.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabel {
    pub source: String,
    pub result: String,
}

/// A notification route (a configured name) and what happened.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabel {
    pub source: String,
    pub probe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeResultLabel {
    pub source: String,
    pub probe: String,
    pub result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 5 ms .. about 80 s: a render takes milliseconds, a fetch with retries
    // against a slow upstream can take a minute.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Every metric `serve` exports.
pub struct Metrics {
    registry: Registry,
    /// A refresh is one source fetched and the result rendered.
    pub refreshes: Family<ResultLabel, Counter>,
    pub fetches: Family<FetchLabel, Counter>,
    pub fetch_duration: HistogramFamily<SourceLabel>,
    /// Upstream items left out of a snapshot for their impossible shape.
    pub items_skipped: Family<SourceLabel, Counter>,
    pub webhooks: Family<OutcomeLabel, Counter>,
    pub last_good_fetch: Family<SourceLabel, Gauge<f64, AtomicU64>>,
    /// 1 while a source's latest fetch failed for good (a rejected key, a
    /// page that is gone), else 0.
    pub permanent_failure: Family<SourceLabel, Gauge>,
    pub render_duration: Histogram,
    pub files_written: Family<ActionLabel, Counter>,
    pub config_reloads: Family<ResultLabel, Counter>,
    pub on_change_runs: Family<ResultLabel, Counter>,
    /// Seconds the `on_change` under way has been running; 0 when none is.
    on_change_running: Gauge<f64, AtomicU64>,
    on_change_started: Mutex<Option<Instant>>,
    /// Notification deliveries by route and result: `ok`, `error` (an
    /// attempt failed; it is retried), `dropped` (undeliverable for a day,
    /// or its route is gone), `abandoned` (under way when the process
    /// stopped, to a receiver that cannot recognise a repeat).
    pub notifications: Family<RouteLabel, Counter>,
    /// Events waiting in the outbox.
    pub outbox_size: Gauge,
    /// Age of the oldest event waiting in the outbox, 0 when none waits.
    pub outbox_oldest: Gauge<f64, AtomicU64>,
    /// Probe checks run by `serve`, by result (`ok`, `warning`, `critical`,
    /// `unknown`).
    pub probe_checks: Family<ProbeResultLabel, Counter>,
    pub probe_duration: Family<ProbeLabel, Gauge<f64, AtomicU64>>,
    pub probe_failures: Family<ProbeLabel, Gauge>,
    pub probe_up: Family<ProbeLabel, Gauge>,
    /// Pushes of probes' transitions to the site's Statuspage, by result
    /// (`sent`, `retrying`, `failed`, `skipped_person`,
    /// `skipped_unknown_component`).
    pub probe_pushes: Family<ProbeResultLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("statusmotd");
        let refreshes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "refreshes",
            "Refreshes of one source (fetch, then render), by result",
            refreshes.clone(),
        );
        let fetches = Family::<FetchLabel, Counter>::default();
        registry.register(
            "upstream_fetches",
            "Fetches of a Statuspage source, by result (ok, or why it failed)",
            fetches.clone(),
        );
        let fetch_duration: HistogramFamily<SourceLabel> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "upstream_fetch_duration_seconds",
            "Time to fetch a source, retries included",
            fetch_duration.clone(),
        );
        let items_skipped = Family::<SourceLabel, Counter>::default();
        registry.register(
            "upstream_items_skipped",
            "Upstream items (incidents, components) left out of a fetch for their impossible shape",
            items_skipped.clone(),
        );
        let webhooks = Family::<OutcomeLabel, Counter>::default();
        registry.register("webhooks", "Webhook requests, by outcome", webhooks.clone());
        let last_good_fetch = Family::<SourceLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "last_good_fetch_timestamp_seconds",
            "Unix time of the last good fetch of each source",
            last_good_fetch.clone(),
        );
        let permanent_failure = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "source_permanent_failure",
            "1 while the latest fetch of a source failed in a way retrying cannot mend \
             (401, 403, 404 of the page), else 0",
            permanent_failure.clone(),
        );
        let render_duration = duration_histogram();
        registry.register(
            "render_duration_seconds",
            "Time to render and write every cluster's files",
            render_duration.clone(),
        );
        let files_written = Family::<ActionLabel, Counter>::default();
        registry.register(
            "files_written",
            "Output files created, updated or removed",
            files_written.clone(),
        );
        let config_reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Reloads of mapping.toml and the templates, by result",
            config_reloads.clone(),
        );
        let on_change_runs = Family::<ResultLabel, Counter>::default();
        registry.register(
            "on_change_runs",
            "Runs of the on_change command, by result",
            on_change_runs.clone(),
        );
        let on_change_running = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "on_change_running_seconds",
            "How long the on_change command under way has been running (0: none is)",
            on_change_running.clone(),
        );
        let notifications = Family::<RouteLabel, Counter>::default();
        registry.register(
            "notifications",
            "Notification deliveries, by route and result (ok, error, dropped, abandoned)",
            notifications.clone(),
        );
        let outbox_size = Gauge::default();
        registry.register(
            "notify_outbox_size",
            "Notifications waiting in the outbox",
            outbox_size.clone(),
        );
        let outbox_oldest = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "notify_outbox_oldest_seconds",
            "Age of the oldest notification waiting in the outbox (0: none waits)",
            outbox_oldest.clone(),
        );
        let probe_checks = Family::<ProbeResultLabel, Counter>::default();
        registry.register(
            "probe_checks",
            "Checks of a probe, by result (ok, warning, critical, unknown)",
            probe_checks.clone(),
        );
        let probe_duration = Family::<ProbeLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "probe_duration_seconds",
            "How long the last check of a probe took",
            probe_duration.clone(),
        );
        let probe_failures = Family::<ProbeLabel, Gauge>::default();
        registry.register(
            "probe_failures_in_a_row",
            "Failed checks in a row of a probe (0 after a success)",
            probe_failures.clone(),
        );
        let probe_up = Family::<ProbeLabel, Gauge>::default();
        registry.register(
            "probe_up",
            "1 while a probe counts as operational (after its thresholds), else 0",
            probe_up.clone(),
        );
        let probe_pushes = Family::<ProbeResultLabel, Counter>::default();
        registry.register(
            "probe_pushes",
            "Pushes of a probe's transitions to Statuspage, by result (sent, retrying, failed, \
             skipped_person: a person's maintenance or incident holds the component, \
             skipped_unknown_component)",
            probe_pushes.clone(),
        );
        // Show the outcomes at zero from the start, so a dashboard or an
        // alert on "errors > 0" has a series to look at.
        for result in ["ok", "error"] {
            let _ = refreshes.get_or_create(&ResultLabel { result });
            let _ = config_reloads.get_or_create(&ResultLabel { result });
        }
        for outcome in Webhook::ALL {
            let _ = webhooks.get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            });
        }
        Self {
            registry,
            refreshes,
            fetches,
            fetch_duration,
            items_skipped,
            webhooks,
            last_good_fetch,
            permanent_failure,
            render_duration,
            files_written,
            config_reloads,
            on_change_runs,
            on_change_running,
            on_change_started: Mutex::new(None),
            notifications,
            outbox_size,
            outbox_oldest,
            probe_checks,
            probe_duration,
            probe_failures,
            probe_up,
            probe_pushes,
        }
    }

    /// Counts one push of `probe`'s transition by its result.
    pub fn probe_pushed(&self, label: &ProbeLabel, result: &'static str) {
        self.probe_pushes
            .get_or_create(&ProbeResultLabel {
                source: label.source.clone(),
                probe: label.probe.clone(),
                result,
            })
            .inc();
    }

    /// Notes one check of `probe` of `source`.
    pub fn probe_checked(
        &self,
        label: &ProbeLabel,
        result: &'static str,
        seconds: f64,
        failures: u32,
        up: bool,
    ) {
        self.probe_checks
            .get_or_create(&ProbeResultLabel {
                source: label.source.clone(),
                probe: label.probe.clone(),
                result,
            })
            .inc();
        self.probe_duration.get_or_create(label).set(seconds);
        self.probe_failures
            .get_or_create(label)
            .set(i64::from(failures));
        self.probe_up.get_or_create(label).set(i64::from(up));
    }

    /// Drops the series of a probe removed from the configuration.
    pub fn probe_removed(&self, label: &ProbeLabel) {
        self.probe_duration.remove(label);
        self.probe_failures.remove(label);
        self.probe_up.remove(label);
        for result in ["ok", "warning", "critical", "unknown"] {
            self.probe_checks.remove(&ProbeResultLabel {
                source: label.source.clone(),
                probe: label.probe.clone(),
                result,
            });
        }
        for result in crate::source::probes::push::PushResult::ALL {
            self.probe_pushes.remove(&ProbeResultLabel {
                source: label.source.clone(),
                probe: label.probe.clone(),
                result: result.label(),
            });
        }
    }

    /// Counts a notification delivery of `route`: `ok`, `error`, `dropped`
    /// or `abandoned`.
    pub fn notification(&self, route: &str, result: &'static str) {
        self.notifications
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
                result,
            })
            .inc();
    }

    /// Shows a route's series at zero, so an alert has something to read.
    pub fn notification_route(&self, route: &str) {
        for result in ["ok", "error", "dropped"] {
            let _ = self.notifications.get_or_create(&RouteLabel {
                route: route.to_owned(),
                result,
            });
        }
    }

    /// Sets the outbox's size and the age of its oldest entry.
    pub fn outbox(&self, size: usize, oldest: Option<Duration>) {
        self.outbox_size
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        self.outbox_oldest
            .set(oldest.map_or(0.0, |d| d.as_secs_f64()));
    }

    pub fn webhook(&self, outcome: Webhook) {
        self.webhooks
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn refresh(&self, ok: bool) {
        self.refreshes
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// Sets whether `source` is failing for good.
    pub fn permanent_failure(&self, source: &str, failing: bool) {
        self.permanent_failure
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .set(i64::from(failing));
    }

    pub fn config_reload(&self, ok: bool) {
        self.config_reloads
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// Counts a finished `on_change` run: `ok`, `error` or `timeout`.
    pub fn on_change(&self, result: &'static str) {
        self.on_change_runs
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Notes that an `on_change` run started (`Some(when)`) or ended (`None`).
    pub fn on_change_running(&self, started: Option<Instant>) {
        *self
            .on_change_started
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = started;
    }

    /// How long the `on_change` under way has been running, if one is.
    pub fn on_change_elapsed(&self) -> Option<Duration> {
        self.on_change_started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|started| started.elapsed())
    }

    pub fn fetch(&self, source: &str, result: &str, seconds: f64) {
        self.fetches
            .get_or_create(&FetchLabel {
                source: source.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.fetch_duration
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .observe(seconds);
    }

    pub fn items_skipped(&self, source: &str, n: usize) {
        let counter = self.items_skipped.get_or_create(&SourceLabel {
            source: source.to_owned(),
        });
        if n > 0 {
            counter.inc_by(n as u64);
        }
    }

    pub fn good_fetch(&self, source: &str, at: jiff::Timestamp) {
        #[allow(clippy::cast_precision_loss)] // seconds since 1970 fit in f64's 52 bits
        let secs = at.as_millisecond() as f64 / 1000.0;
        self.last_good_fetch
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .set(secs);
    }

    pub fn file_written(&self, action: crate::pipeline::Action) {
        let action = match action {
            crate::pipeline::Action::Created => "created",
            crate::pipeline::Action::Updated => "updated",
            crate::pipeline::Action::Removed => "removed",
        };
        self.files_written
            .get_or_create(&ActionLabel { action })
            .inc();
    }

    /// The text `GET /metrics` answers with.
    pub fn encode(&self) -> String {
        self.on_change_running
            .set(self.on_change_elapsed().map_or(0.0, |d| d.as_secs_f64()));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("cannot encode metrics: {e}");
        }
        out
    }
}

/// What became of a webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    Accepted,
    /// No `webhook_token` is configured.
    Disabled,
    WrongToken,
    NotJson,
    TooLarge,
    /// The body did not arrive within the request deadline.
    Timeout,
}

impl Webhook {
    const ALL: [Webhook; 6] = [
        Webhook::Accepted,
        Webhook::Disabled,
        Webhook::WrongToken,
        Webhook::NotJson,
        Webhook::TooLarge,
        Webhook::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Accepted => "accepted",
            Webhook::Disabled => "disabled",
            Webhook::WrongToken => "wrong_token",
            Webhook::NotJson => "not_json",
            Webhook::TooLarge => "too_large",
            Webhook::Timeout => "timeout",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_their_labels() {
        let m = Metrics::new();
        m.webhook(Webhook::Accepted);
        m.webhook(Webhook::Accepted);
        m.fetch("hpc", "status_500", 0.2);
        m.config_reload(false);
        let text = m.encode();
        assert!(
            text.contains("statusmotd_webhooks_total{outcome=\"accepted\"} 2"),
            "{text}"
        );
        assert!(text.contains("statusmotd_webhooks_total{outcome=\"wrong_token\"} 0"));
        assert!(text
            .contains("statusmotd_upstream_fetches_total{source=\"hpc\",result=\"status_500\"} 1"));
        assert!(text.contains("statusmotd_config_reloads_total{result=\"error\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_removed_probe_loses_every_push_series() {
        use crate::source::probes::push::PushResult;
        let m = Metrics::new();
        let label = ProbeLabel {
            source: "checks".into(),
            probe: "lustre".into(),
        };
        for result in PushResult::ALL {
            m.probe_pushed(&label, result.label());
        }
        assert_eq!(
            m.encode().matches("statusmotd_probe_pushes_total{").count(),
            PushResult::ALL.len()
        );
        m.probe_removed(&label);
        let text = m.encode();
        assert!(!text.contains("probe=\"lustre\""), "{text}");
    }

    #[test]
    fn on_change_running_seconds_follow_the_run() {
        let m = Metrics::new();
        assert!(m
            .encode()
            .contains("statusmotd_on_change_running_seconds 0.0"));
        m.on_change_running(Instant::now().checked_sub(Duration::from_secs(90)));
        let text = m.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("statusmotd_on_change_running_seconds "))
            .unwrap();
        let secs: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((90.0..100.0).contains(&secs), "{line}");
        m.on_change_running(None);
        m.on_change("timeout");
        let text = m.encode();
        assert!(
            text.contains("statusmotd_on_change_running_seconds 0.0"),
            "{text}"
        );
        assert!(text.contains("statusmotd_on_change_runs_total{result=\"timeout\"} 1"));
    }
}
