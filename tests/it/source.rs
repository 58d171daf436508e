//! The Statuspage clients against the fake Statuspage, fed with real
//! payloads: what a snapshot holds, how paging, retries and rate limits
//! behave, and what the errors say.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{json, Value};
use statusmotd::model::{ComponentStatus, ItemKind, Snapshot};
use statusmotd::source::{self, Endpoint, FetchError, FetchErrorKind, FetchOptions};

use crate::common::quick_fetch_options;
use crate::fake::{FakeStatuspage, Fault};

const SUMMARY: &str = "/api/v2/summary.json";
const INCIDENTS: &str = "/api/v2/incidents.json";
const MAINTENANCES: &str = "/api/v2/scheduled-maintenances.json";

/// A key no message may ever show.
const KEY: &str = "sk-live-4f9c2b7e-DO-NOT-PRINT";
const PAGE: &str = "8m2l51279rpl";

async fn fetch_v2(fake: &FakeStatuspage, opts: &FetchOptions) -> Result<Snapshot, FetchError> {
    let endpoint = Endpoint::Public { url: fake.url() };
    source::fetch(&source::client(), &endpoint, opts).await
}

async fn fetch_v1(fake: &FakeStatuspage, opts: &FetchOptions) -> Result<Snapshot, FetchError> {
    let endpoint = Endpoint::Manage {
        api_base: fake.url(),
        page_id: PAGE.into(),
        api_key: KEY.into(),
    };
    source::fetch(&source::client(), &endpoint, opts).await
}

/// A healthy v2 page with this summary and empty incident lists.
async fn v2_page(summary: Value) -> FakeStatuspage {
    let fake = FakeStatuspage::start().await;
    fake.set_json(SUMMARY, summary);
    fake.set_json(INCIDENTS, json!({"incidents": []}));
    fake.set_json(MAINTENANCES, json!({"scheduled_maintenances": []}));
    fake
}

fn minimal_summary() -> Value {
    json!({
        "page": {"id": "p1", "name": "Example"},
        "components": [{"id": "c1", "name": "Login nodes", "status": "major_outage"}],
        "incidents": [],
        "scheduled_maintenances": []
    })
}

/// A healthy v1 page with these components and incidents, nothing else.
async fn v1_page(components: Value, incidents: Value) -> FakeStatuspage {
    let fake = FakeStatuspage::start().await;
    let base = format!("/pages/{PAGE}");
    fake.set_json(&format!("{base}/components"), components);
    fake.set_json(&format!("{base}/component-groups"), json!([]));
    fake.set_json(&format!("{base}/incidents/unresolved"), json!([]));
    fake.set_json(&format!("{base}/incidents/upcoming"), json!([]));
    fake.set_json(&format!("{base}/incidents/active_maintenance"), json!([]));
    fake.set_json(&format!("{base}/incidents"), incidents);
    fake
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn v2_github_incident_with_the_recent_incident_list() {
    let summary = shared_json!("v2-summary-github-incident.json");
    let incidents = shared_json!("v2-incidents-github.json");
    let fake = v2_page(summary).await;
    fake.set_json(INCIDENTS, incidents);
    // A trailing slash on the page url is fine.
    let endpoint = Endpoint::Public {
        url: format!("{}/", fake.url()),
    };
    let snap = source::fetch(&source::client(), &endpoint, &quick_fetch_options())
        .await
        .unwrap();

    assert_eq!(snap.page.name, "GitHub");
    assert_eq!(snap.components.len(), 11);
    assert!(snap.groups.is_empty());
    assert_eq!(
        snap.component("st3j38cctv9l").unwrap().status,
        ComponentStatus::PartialOutage
    );

    let ids: Vec<&str> = snap.incidents.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        ["69sb0f8lydp4", "r3x7x31k7nn1", "ljwdk6qml8z8"],
        "all incidents, newest first"
    );
    let active = &snap.incidents[2];
    assert_eq!(active.kind, ItemKind::Incident);
    assert_eq!(active.status, "investigating");
    assert_eq!(active.impact, "major");
    assert_eq!(
        active.shortlink.as_deref(),
        Some("https://stspg.io/33vh8r7z43kh")
    );
    assert_eq!(active.components, ["st3j38cctv9l", "vg70hn9s2tyj"]);
    // Seven updates, two of them with `affected_components: null`.
    assert_eq!(active.updates.len(), 7);
    assert_eq!(active.updates[0].id, "k0x2s8g2plxb");
    assert_eq!(active.updates[6].id, "n1dr3fb22655");
    assert!(active
        .updates
        .windows(2)
        .all(|w| w[0].display_at >= w[1].display_at));

    let resolved = &snap.incidents[0];
    assert_eq!(resolved.status, "resolved");
    assert_eq!(resolved.resolved_at, Some(ts("2024-09-16T22:08:39.333Z")));
    assert_eq!(resolved.components, ["br0l2tvcx85d", "vg70hn9s2tyj"]);
    assert_eq!(resolved.updates[0].body, "This incident has been resolved.");
    assert_eq!(
        fake.requests(),
        3,
        "summary, incidents and maintenances, once each"
    );
}

#[tokio::test]
async fn v2_docs_example_maintenance_and_offsets() {
    let summary = shared_json!("v2-summary-docs-example-maintenance.json");
    let fake = v2_page(summary).await;
    let snap = fetch_v2(&fake, &quick_fetch_options()).await.unwrap();

    assert_eq!(snap.page.url.as_deref(), Some("https://status.python.org"));
    let item = |id: &str| snap.incidents.iter().find(|i| i.id == id).unwrap();

    let outage = item("cp306tmzcl0y");
    assert_eq!(outage.kind, ItemKind::Incident);
    assert_eq!(outage.created_at, Some(ts("2014-05-14T20:22:39.441Z")));

    let scheduled = item("w1zdr745wmfy");
    assert_eq!(scheduled.kind, ItemKind::Maintenance);
    assert_eq!(scheduled.status, "scheduled");
    assert_eq!(scheduled.scheduled_for, Some(ts("2014-05-18T04:00:00Z")));
    assert_eq!(scheduled.scheduled_until, Some(ts("2014-05-18T05:30:00Z")));

    let in_progress = item("k7mf5z1gz05c");
    assert_eq!(in_progress.kind, ItemKind::Maintenance);
    assert_eq!(in_progress.status, "in_progress");
    assert_eq!(in_progress.updates[0].id, "drs62w8df6fs", "newest first");
    assert_eq!(
        in_progress.updates[0].display_at,
        Some(ts("2014-05-14T20:34:20.036Z"))
    );
}

#[tokio::test]
async fn v2_group_rows_become_groups_with_their_children() {
    let mut components = shared_json!("v2-components-hashicorp-groups.json");
    // `components.json` has no incident lists; `summary.json` always has.
    components["incidents"] = json!([]);
    components["scheduled_maintenances"] = json!([]);
    let fake = v2_page(components).await;
    let snap = fetch_v2(&fake, &quick_fetch_options()).await.unwrap();

    assert_eq!(snap.groups.len(), 6);
    assert_eq!(snap.components.len(), 48, "54 rows less the 6 groups");
    let hcp = snap.group("ym75hzpmfq4q").unwrap();
    assert_eq!(hcp.name, "HashiCorp Cloud Platform (HCP)");
    assert!(hcp.components.starts_with(&[
        "mgv1p2j9x444".to_string(),
        "b4pr9x7288zy".to_string(),
        "c32yfw32879v".to_string()
    ]));
    assert_eq!(
        snap.component("mgv1p2j9x444").unwrap().group_id.as_deref(),
        Some("ym75hzpmfq4q")
    );
    for c in &snap.components {
        if let Some(g) = &c.group_id {
            assert!(
                snap.group(g).unwrap().components.contains(&c.id),
                "`{}` is in its group `{g}`",
                c.name
            );
        }
    }
    let registry = snap.component("l8mnm91h3s7v").unwrap();
    let description = registry.description.as_deref().unwrap();
    assert!(!description.contains('\r'), "{description:?}");
    assert!(description.contains("Relies on the Fastly"));
}

#[tokio::test]
async fn v2_duplicates_keep_the_latest_copy() {
    let mut summary = minimal_summary();
    summary["scheduled_maintenances"] = json!([{
        "id": "m1", "name": "Lustre upgrade", "status": "in_progress",
        "updated_at": "2024-03-01T10:00:00Z", "scheduled_for": "2024-03-01T09:00:00Z"
    }]);
    let fake = v2_page(summary).await;
    fake.set_json(
        MAINTENANCES,
        json!({"scheduled_maintenances": [{
            "id": "m1", "name": "Lustre upgrade", "status": "scheduled",
            "updated_at": "2024-02-20T10:00:00Z", "scheduled_for": "2024-03-01T09:00:00Z"
        }]}),
    );
    let snap = fetch_v2(&fake, &quick_fetch_options()).await.unwrap();
    assert_eq!(snap.incidents.len(), 1);
    assert_eq!(snap.incidents[0].status, "in_progress");
    assert_eq!(snap.incidents[0].kind, ItemKind::Maintenance);
}

#[tokio::test]
async fn v2_missing_incident_lists_fall_back_to_the_summary() {
    let fake = v2_page(minimal_summary()).await;
    fake.set_raw(INCIDENTS, 404, r#"{"error":"not found"}"#);
    fake.set_raw(MAINTENANCES, 404, "Not Found");
    let snap = fetch_v2(&fake, &quick_fetch_options()).await.unwrap();
    assert_eq!(snap.components.len(), 1);
    assert_eq!(fake.requests(), 3, "a 404 is not retried");
}

#[tokio::test]
async fn v2_any_other_failure_of_an_incident_list_fails_the_fetch() {
    let fake = v2_page(minimal_summary()).await;
    fake.set_raw(INCIDENTS, 503, "down");
    let err = fetch_v2(&fake, &quick_fetch_options()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.to_string().contains("incidents.json"), "{err}");
}

#[tokio::test]
async fn v1_fixtures_key_header_and_grouped_names() {
    let incident = shared_json!("v1-incident.json");
    let component = shared_json!("v1-component.json");
    let group = shared_json!("v1-component_group.json");
    // The components the incident embeds are the page's components.
    let mut components = incident["components"].as_array().unwrap().clone();
    components.push(component);
    let fake = v1_page(Value::Array(components), json!([incident])).await;
    fake.set_json(&format!("/pages/{PAGE}/component-groups"), json!([group]));
    let snap = fetch_v1(&fake, &quick_fetch_options()).await.unwrap();

    assert_eq!(
        fake.last_authorization().as_deref(),
        Some(&*format!("OAuth {KEY}"))
    );
    assert_eq!(snap.page.id, PAGE);
    assert_eq!(snap.components.len(), 5);
    let backend = snap.group("9w477s340zqt").unwrap();
    assert_eq!(backend.name, "Backend");
    assert_eq!(backend.components, ["3chbmx8qmlny"]);
    assert_eq!(
        snap.component("3chbmx8qmlny").unwrap().group_id.as_deref(),
        Some("9w477s340zqt")
    );
    assert_eq!(
        snap.component("kvpxtsp2k1lf").unwrap().status,
        ComponentStatus::PartialOutage
    );

    assert_eq!(snap.incidents.len(), 1);
    let i = &snap.incidents[0];
    assert_eq!(i.kind, ItemKind::Incident);
    assert_eq!(i.status, "resolved");
    assert_eq!(i.resolved_at, Some(ts("2024-06-07T22:26:34Z")));
    // The update names it "Backend - Fraud Detection Service"; the id still maps.
    assert!(i.components.contains(&"3chbmx8qmlny".to_string()));
    assert_eq!(i.updates[0].body, "Resolved");
    assert_eq!(
        i.updates[0].created_at,
        Some(ts("2024-06-07T22:26:34.370Z"))
    );
}

#[tokio::test]
async fn v1_reads_component_groups_only_when_components_lack_group_rows() {
    // Group rows in `/components`: five requests make the whole refresh.
    let rows = json!([
        {"id": "g1", "name": "ARCHER2", "group": true, "components": ["c1"]},
        {"id": "c1", "name": "Login nodes", "group_id": "g1", "status": "major_outage"},
        {"id": "c2", "name": "Website", "group_id": null, "status": "operational"},
    ]);
    let fake = v1_page(rows, json!([])).await;
    let snap = fetch_v1(&fake, &quick_fetch_options()).await.unwrap();
    assert_eq!(
        fake.requests_to(&format!("/pages/{PAGE}/component-groups")),
        0
    );
    assert_eq!(fake.requests(), 5);
    assert_eq!(snap.group("g1").unwrap().name, "ARCHER2");
    assert_eq!(snap.group("g1").unwrap().components, ["c1"]);

    // A child whose group has no row: the group list names it.
    let rows =
        json!([{"id": "c1", "name": "Login nodes", "group_id": "g1", "status": "operational"}]);
    let fake = v1_page(rows, json!([])).await;
    fake.set_json(
        &format!("/pages/{PAGE}/component-groups"),
        json!([{"id": "g1", "name": "ARCHER2", "components": ["c1"]}]),
    );
    let snap = fetch_v1(&fake, &quick_fetch_options()).await.unwrap();
    assert_eq!(
        fake.requests_to(&format!("/pages/{PAGE}/component-groups")),
        1
    );
    assert_eq!(snap.group("g1").unwrap().name, "ARCHER2");
}

#[tokio::test]
async fn v1_lists_are_paged_until_a_short_page() {
    let components: Vec<Value> = (0..250)
        .map(|n| json!({"id": format!("c{n:03}"), "name": format!("Node {n}"), "status": "operational"}))
        .collect();
    let fake = v1_page(Value::Array(components), json!([])).await;
    let snap = fetch_v1(&fake, &quick_fetch_options()).await.unwrap();

    let path = format!("/pages/{PAGE}/components");
    assert_eq!(fake.requests_to(&path), 3);
    assert_eq!(snap.components.len(), 250);
    assert_eq!(snap.components[249].id, "c249");
    let log = fake.request_log();
    assert!(
        log.contains(&format!("{path}?page=3&per_page=100")),
        "{log:?}"
    );
    assert_eq!(
        fake.requests_to(&format!("/pages/{PAGE}/incidents/unresolved")),
        1
    );
    // Three pages of components, one request for each of the four incident
    // lists, and none for `/component-groups`: no component names a group.
    assert_eq!(fake.requests(), 3 + 4, "one request for each short list");
}

#[tokio::test]
async fn v1_incident_paging_stops_at_resolved_since() {
    // 250 incidents, one an hour, newest first, as the API lists them.
    let newest = ts("2024-06-10T00:00:00Z");
    let incidents: Vec<Value> = (0..250)
        .map(|n| {
            let at = newest - jiff::SignedDuration::from_hours(n);
            json!({"id": format!("i{n:03}"), "name": "x", "status": "resolved",
                   "created_at": at.to_string(), "updated_at": at.to_string()})
        })
        .collect();
    let fake = v1_page(json!([]), Value::Array(incidents)).await;
    // Page 1 holds hours 0..=99, at or after the bound; page 2 holds hours
    // 100..=199, all before it, so paging ends there.
    let mut options = quick_fetch_options();
    options.resolved_since = Some(newest - jiff::SignedDuration::from_hours(99));
    let snap = fetch_v1(&fake, &options).await.unwrap();
    assert_eq!(
        fake.requests_to(&format!("/pages/{PAGE}/incidents")),
        2,
        "page 2 is entirely older, so page 3 is not read"
    );
    assert!(snap.incidents.iter().any(|i| i.id == "i000"));
    let log = fake.request_log();
    assert!(
        log.contains(&format!("/pages/{PAGE}/incidents?limit=100&page=2")),
        "{log:?}"
    );

    // Without a bound, every page is read.
    let fake = v1_page(json!([]), fake_incidents(250)).await;
    let snap = fetch_v1(&fake, &quick_fetch_options()).await.unwrap();
    assert_eq!(fake.requests_to(&format!("/pages/{PAGE}/incidents")), 3);
    assert_eq!(snap.incidents.len(), 250);
}

fn fake_incidents(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"id": format!("i{i:03}"), "name": "x", "status": "resolved"}))
            .collect(),
    )
}

#[tokio::test]
async fn v1_maintenance_is_an_incident_with_scheduled_for() {
    let fake = v1_page(json!([]), json!([])).await;
    fake.set_json(
        &format!("/pages/{PAGE}/incidents/upcoming"),
        json!([{"id": "m1", "name": "Scratch purge", "status": "scheduled",
                "scheduled_for": "2024-07-01T08:00:00-06:00", "components": null}]),
    );
    let snap = fetch_v1(&fake, &quick_fetch_options()).await.unwrap();
    assert_eq!(snap.incidents[0].kind, ItemKind::Maintenance);
    assert_eq!(
        snap.incidents[0].scheduled_for,
        Some(ts("2024-07-01T14:00:00Z"))
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    let fake = v2_page(minimal_summary()).await;
    fake.fault_next(2, Fault::Status(500));
    let snap = fetch_v2(&fake, &quick_fetch_options()).await.unwrap();
    assert_eq!(snap.components[0].name, "Login nodes");
    assert_eq!(fake.requests(), 5, "three requests and two retries");
}

#[tokio::test]
async fn a_persistent_server_error_fails_after_every_attempt() {
    let fake = v2_page(minimal_summary()).await;
    fake.set_raw(SUMMARY, 500, "oops");
    let err = fetch_v2(&fake, &quick_fetch_options()).await.unwrap_err();
    assert_eq!(fake.requests_to(SUMMARY), 4, "one attempt and 3 retries");
    assert_eq!(
        err.to_string(),
        format!(
            "`{}/api/v2/summary.json` answered 500 Internal Server Error after 4 attempts",
            fake.url()
        )
    );
    assert_eq!(err.status(), Some(500));
}

async fn rate_limited_then_healthy(status: u16) {
    let fake = v2_page(minimal_summary()).await;
    fake.fault_next(
        1,
        Fault::RateLimited {
            status,
            retry_after: "1".into(),
        },
    );
    let started = Instant::now();
    let snap = fetch_v2(&fake, &quick_fetch_options()).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(snap.components.len(), 1);
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(4), "waited {elapsed:?}");
    assert_eq!(fake.requests(), 4);
}

#[tokio::test]
async fn status_429_waits_out_retry_after() {
    rate_limited_then_healthy(429).await;
}

#[tokio::test]
async fn status_420_waits_out_retry_after() {
    rate_limited_then_healthy(420).await;
}

#[tokio::test]
async fn a_retry_after_too_long_fails_at_once() {
    let fake = v2_page(minimal_summary()).await;
    fake.fault(Fault::RateLimited {
        status: 429,
        retry_after: "3600".into(),
    });
    let started = Instant::now();
    let err = fetch_v2(&fake, &quick_fetch_options()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(err.is_rate_limited());
    assert!(
        err.to_string()
            .ends_with("answered 429 with Retry-After 3600s, longer than the 5s this tool waits"),
        "{err}"
    );
}

#[tokio::test]
async fn endless_rate_limiting_gives_up() {
    let fake = v2_page(minimal_summary()).await;
    fake.fault(Fault::RateLimited {
        status: 429,
        retry_after: "0".into(),
    });
    let err = fetch_v2(&fake, &quick_fetch_options()).await.unwrap_err();
    assert!(err.is_rate_limited());
    assert!(err.to_string().contains("still answered 429"), "{err}");
}

#[tokio::test]
async fn garbage_is_invalid_json() {
    let fake = v2_page(minimal_summary()).await;
    fake.fault(Fault::Garbage);
    let err = fetch_v2(&fake, &quick_fetch_options()).await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::InvalidJson);
    assert!(
        err.to_string()
            .starts_with("invalid JSON from `http://127.0.0.1:"),
        "{err}"
    );
}

#[tokio::test]
async fn a_truncated_body_is_invalid_json() {
    let fake = v2_page(minimal_summary()).await;
    fake.fault(Fault::Truncated);
    let err = fetch_v2(&fake, &quick_fetch_options()).await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::InvalidJson);
    assert!(err.to_string().contains("EOF while parsing"), "{err}");
}

#[tokio::test]
async fn valid_json_of_the_wrong_shape_is_a_clear_error() {
    let fake = v2_page(json!([])).await;
    let err = fetch_v2(&fake, &quick_fetch_options()).await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::UnexpectedShape);
    assert!(
        err.to_string()
            .ends_with("expected an object, found a list"),
        "{err}"
    );

    fake.set_json(SUMMARY, json!({"components": 5}));
    let err = fetch_v2(&fake, &quick_fetch_options()).await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::UnexpectedShape);
    assert!(
        err.to_string().contains("invalid type: integer `5`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let fake = v2_page(minimal_summary()).await;
    fake.fault(Fault::Hang);
    let options = FetchOptions {
        timeout: Duration::from_millis(500),
        retries: 1,
        ..quick_fetch_options()
    };
    let started = Instant::now();
    let err = fetch_v2(&fake, &options).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.kind(), FetchErrorKind::Timeout);
    assert!(
        err.to_string()
            .starts_with("timed out after 500ms waiting for `"),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("(gave up after 2 attempts)"),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test]
async fn a_reset_connection_is_an_error() {
    let fake = v2_page(minimal_summary()).await;
    fake.fault(Fault::Reset);
    let err = fetch_v2(&fake, &quick_fetch_options()).await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::Connection);
    assert!(err.to_string().contains(&fake.url()), "{err}");
    assert!(fake.requests() >= 4, "resets are retried");
}

#[tokio::test]
async fn a_reset_once_is_survived() {
    let fake = v2_page(minimal_summary()).await;
    fake.fault_next(1, Fault::Reset);
    fetch_v2(&fake, &quick_fetch_options()).await.unwrap();
}

#[tokio::test]
async fn nobody_listening_is_a_connection_error() {
    // A port that was free a moment ago, with nothing listening on it now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let endpoint = Endpoint::Public { url };
    let options = FetchOptions {
        retries: 1,
        ..quick_fetch_options()
    };
    let err = source::fetch(&source::client(), &endpoint, &options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::Connection);
    assert!(
        err.to_string().starts_with("could not connect to `"),
        "{err}"
    );
}

#[tokio::test]
async fn a_huge_body_is_refused() {
    let fake = v2_page(minimal_summary()).await;
    let huge = format!("[\"{}\"]", "x".repeat(source::MAX_BODY_BYTES));
    fake.set_raw(SUMMARY, 200, &huge);
    let err = fetch_v2(&fake, &quick_fetch_options()).await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::TooLarge);
    assert!(err.to_string().contains("more than 32 MiB"), "{err}");
}

#[tokio::test]
async fn a_refused_key_says_to_check_it() {
    let fake = v1_page(json!([]), json!([])).await;
    fake.fault(Fault::StatusWithBody(
        401,
        r#"{"error":"Couldn't authenticate you"}"#.into(),
    ));
    let err = fetch_v1(&fake, &quick_fetch_options()).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    // One request for each of the five lists, none retried.
    assert_eq!(fake.requests(), 5, "a 401 is not retried");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    let full = format!("{err:#}");
    assert!(
        full.contains("\nhint: check the source's `api_key`"),
        "{full}"
    );
}

#[tokio::test]
async fn no_v1_error_shows_the_api_key() {
    let quick = FetchOptions {
        timeout: Duration::from_millis(300),
        retries: 0,
        ..quick_fetch_options()
    };
    let faults = [
        Fault::Status(401),
        Fault::Status(403),
        Fault::Status(404),
        Fault::Status(500),
        Fault::StatusWithBody(400, format!(r#"{{"error":"bad key {KEY}"}}"#)),
        Fault::RateLimited {
            status: 429,
            retry_after: "3600".into(),
        },
        Fault::RateLimited {
            status: 420,
            retry_after: "3600".into(),
        },
        Fault::Garbage,
        Fault::Truncated,
        Fault::Hang,
        Fault::Reset,
    ];
    let mut seen = Vec::new();
    for fault in faults {
        let fake = v1_page(json!([]), json!([])).await;
        fake.fault(fault.clone());
        let err = fetch_v1(&fake, &quick).await.unwrap_err();
        for text in [err.to_string(), format!("{err:#}"), format!("{err:?}")] {
            assert!(!text.contains(KEY), "{fault:?} showed the key: {text}");
        }
        seen.push(err.kind());
    }
    // A list of the wrong shape, and a key pasted into the api base.
    let fake = v1_page(json!({"components": []}), json!([])).await;
    let err = fetch_v1(&fake, &quick).await.unwrap_err();
    assert!(!format!("{err:#}").contains(KEY));
    seen.push(err.kind());

    let fake = v1_page(json!([]), json!([])).await;
    let endpoint = Endpoint::Manage {
        api_base: format!("{}/{KEY}", fake.url()),
        page_id: PAGE.into(),
        api_key: KEY.into(),
    };
    let err = source::fetch(&source::client(), &endpoint, &quick)
        .await
        .unwrap_err();
    assert!(!format!("{err:#}").contains(KEY), "{err:#}");
    assert_eq!(err.status(), Some(404));

    for kind in [
        FetchErrorKind::Status(401),
        FetchErrorKind::RateLimited,
        FetchErrorKind::InvalidJson,
        FetchErrorKind::Timeout,
        FetchErrorKind::Connection,
        FetchErrorKind::UnexpectedShape,
    ] {
        assert!(seen.contains(&kind), "{kind:?} not covered: {seen:?}");
    }
}

#[test]
fn the_fake_also_runs_without_a_runtime() {
    let fake = FakeStatuspage::spawn();
    fake.set_json(SUMMARY, minimal_summary());
    fake.set_json(INCIDENTS, json!({"incidents": []}));
    fake.set_json(MAINTENANCES, json!({"scheduled_maintenances": []}));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let snap = runtime
        .block_on(async {
            let endpoint = Endpoint::Public { url: fake.url() };
            source::fetch(&source::client(), &endpoint, &quick_fetch_options()).await
        })
        .unwrap();
    assert_eq!(snap.page.name, "Example");
    assert_eq!(fake.requests(), 3);
}
