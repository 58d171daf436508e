//! A one-shot `render` when nothing changed upstream: conditional requests
//! (`ETag` / `Last-Modified` sent back, `304` taken as unchanged), a page
//! that ignores them, a `304` with no last good snapshot to reuse, and the
//! stamp that lets such a run stop early, which must not hide a crossed
//! time window, a configuration or template edit, or a damaged file.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{code, stderr, stdout, use_motd_template, Site};
use crate::fake::{FakeStatuspage, Validators};

fn mapping(url: &str, extra: &str) -> String {
    format!(
        r#"[settings]
timezone = "UTC"
request_timeout = "2s"
retries = 1
upcoming = "1h"
{extra}
[sources.status]
kind = "statuspage-public"
url = "{url}"

[clusters.alpha]
components = ["Lustre"]
"#
    )
}

fn components(status: &str) -> Value {
    json!([{"id": "c1", "name": "Lustre", "status": status}])
}

fn incident(name: &str) -> Value {
    json!([{
        "id": "inc1", "name": name, "status": "investigating", "impact": "minor",
        "created_at": "2025-06-01T10:00:00Z", "updated_at": "2025-06-01T10:00:00Z",
        "components": [{"id": "c1", "name": "Lustre"}],
        "incident_updates": [{"id": "u1", "status": "investigating",
            "body": "Slow.", "created_at": "2025-06-01T10:00:00Z"}],
    }])
}

fn page(fake: &FakeStatuspage, incident_name: &str, maintenances: Value) {
    fake.set_v2_page(
        json!({"id": "p", "name": "Site"}),
        components("degraded_performance"),
        incident(incident_name),
        maintenances,
    );
}

fn render(site: &Site) -> String {
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "render failed: {}", stderr(&o));
    assert_eq!(stderr(&o), "", "no warning expected");
    stdout(&o)
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn site_with(validators: Option<(Validators, bool)>) -> (FakeStatuspage, Site) {
    let fake = FakeStatuspage::spawn();
    if let Some((which, honour)) = validators {
        fake.send_validators(which, honour);
    }
    page(&fake, "Lustre slow", json!([]));
    let site = Site::new(&mapping(&fake.url(), ""));
    (fake, site)
}

/// Renders, renders again with nothing changed, then changes the page:
/// the second run asks conditionally and changes nothing, the third sees
/// the change. Three requests per run whatever the answers.
fn unchanged_then_changed(which: Validators) {
    let (fake, site) = site_with(Some((which, true)));
    assert!(render(&site).contains("created alpha/motd"));
    let motd = site.out("alpha/motd");
    let before = mtime(&motd);
    assert_eq!(fake.requests(), 3);
    assert_eq!(fake.conditional_requests(), 0);

    assert_eq!(render(&site), "", "nothing changed");
    assert_eq!(fake.requests(), 6, "v2 stays at 3 requests per refresh");
    assert_eq!(fake.conditional_requests(), 3);
    assert_eq!(fake.not_modified_answers(), 3);
    assert_eq!(mtime(&motd), before, "an unchanged file is not touched");

    page(&fake, "Lustre very slow", json!([]));
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(site.read("alpha/motd").contains("Lustre very slow"));
    // The maintenance list did not change and answered 304: its body was
    // kept, so no request more.
    assert_eq!(fake.not_modified_answers(), 4);
    assert_eq!(fake.requests(), 9, "v2 stays at 3 requests per refresh");
}

#[test]
fn an_etag_is_sent_back_and_a_304_changes_nothing() {
    unchanged_then_changed(Validators::ETag);
}

#[test]
fn a_last_modified_is_sent_back_and_a_304_changes_nothing() {
    unchanged_then_changed(Validators::LastModified);
}

#[test]
fn a_304_makes_the_data_fresh_for_a_later_fallback() {
    let (fake, site) = site_with(Some((Validators::Both, true)));
    render(&site);
    let kept_path = site.path().join("state/status.validators.json");
    let read_kept = || -> Value {
        serde_json::from_str(&std::fs::read_to_string(&kept_path).unwrap()).unwrap()
    };
    // Last confirmed long ago (confirmations are written at most once a
    // minute), so this run's must be kept.
    let mut kept = read_kept();
    kept["confirmed_at"] = json!("2020-01-01T00:00:00Z");
    std::fs::write(&kept_path, kept.to_string()).unwrap();
    // The stamp is gone, so the next run goes the whole way: the 304 reuses
    // the last good snapshot and confirms it now.
    std::fs::remove_file(site.path().join("state/render.stamp")).unwrap();
    assert_eq!(render(&site), "");
    assert_eq!(fake.not_modified_answers(), 3);
    let kept = read_kept();
    let at = |k: &str| {
        kept[k]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    assert!(
        at("confirmed_at") > at("snapshot_fetched_at"),
        "a later fallback counts the data's age from this run: {kept}"
    );
    assert!(kept["validators"]["documents"]
        .as_object()
        .unwrap()
        .values()
        .all(|d| d["etag"].is_string() && d["last_modified"].is_string()));
}

/// A render killed while it saved leaves a temp file in `state_dir`. When
/// the page comes back to what was kept, the file it was for is not
/// written again: the next render removes the temp all the same, whether
/// nothing changed or it plans, and one among the kept answers goes when
/// answers are kept again. A live writer's temp file stays.
#[test]
fn temp_files_of_killed_renders_go_with_the_next_render() {
    let (fake, site) = site_with(Some((Validators::ETag, true)));
    render(&site);
    let state = site.path().join("state");
    let answers = state.join("status.answers");
    assert!(answers.is_dir(), "the answers are kept");
    // Pids above the kernel's limit cannot be running; pid 1 always is.
    let dead = |name: &str| {
        let path = state.join(format!(".{name}.4194305-0.tmp"));
        std::fs::write(&path, b"{\"half").unwrap();
        path
    };
    let live = state.join(".status.snapshot.json.1-0.tmp");
    std::fs::write(&live, b"{\"half").unwrap();
    let dead_answer = answers.join(".an-answer.4194305-2.tmp");
    std::fs::write(&dead_answer, b"{\"half").unwrap();
    let snapshot = state.join("status.snapshot.json");
    let kept = mtime(&snapshot);

    // Nothing changed: the run stops early (a killed run's stamp
    // forgotten halfway), and still removes it.
    let stamp = dead("render.stamp");
    assert_eq!(render(&site), "");
    assert_eq!(fake.not_modified_answers(), 3);
    assert!(!stamp.exists(), "a killed writer's temp file is removed");

    // The stamp gone, the page unchanged: the run plans, and finds the
    // snapshot as it was kept.
    let snapshot_temp = dead("status.snapshot.json");
    std::fs::remove_file(state.join("render.stamp")).unwrap();
    assert_eq!(render(&site), "");
    assert_eq!(fake.not_modified_answers(), 6);
    assert_eq!(mtime(&snapshot), kept, "the snapshot is not written again");
    assert!(
        !snapshot_temp.exists(),
        "a killed writer's temp file is removed"
    );
    assert!(live.exists(), "a live writer's temp file stays");

    page(&fake, "Lustre very slow", json!([]));
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(
        !dead_answer.exists(),
        "a killed writer's temp among the answers is removed"
    );
    assert!(live.exists());
}

#[test]
fn a_page_that_ignores_validators_is_read_in_full_and_nothing_changes() {
    let (fake, site) = site_with(Some((Validators::Both, false)));
    render(&site);
    let motd = site.out("alpha/motd");
    let before = mtime(&motd);
    assert_eq!(render(&site), "");
    assert_eq!(fake.conditional_requests(), 3, "the validators were sent");
    assert_eq!(fake.not_modified_answers(), 0);
    assert_eq!(fake.requests(), 6);
    assert_eq!(mtime(&motd), before);
    page(&fake, "Lustre down", json!([]));
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(site.read("alpha/motd").contains("Lustre down"));
}

#[test]
fn a_304_without_a_last_good_snapshot_falls_back_to_a_full_request() {
    let (fake, site) = site_with(Some((Validators::ETag, true)));
    render(&site);
    let good = site.read("alpha/motd");
    assert!(good.contains("Lustre slow"), "{good}");
    // The snapshot is lost but the validators are kept, and the MOTD was
    // damaged, so the next run must render: it gets 304s, has nothing to
    // reuse, and asks again in full. The file is repaired, never blanked.
    std::fs::remove_file(site.path().join("state/status.snapshot.json")).unwrap();
    std::fs::write(site.out("alpha/motd"), "damaged\n").unwrap();
    assert!(render(&site).contains("updated alpha/motd"));
    assert_eq!(site.read("alpha/motd"), good);
    assert_eq!(fake.not_modified_answers(), 3);
    assert_eq!(fake.requests(), 9, "3 conditional, then 3 plain requests");
    assert!(site.path().join("state/status.snapshot.json").exists());
}

#[test]
fn without_validators_an_unchanged_page_changes_nothing_and_v2_makes_three_requests() {
    let (fake, site) = site_with(None);
    render(&site);
    let before = mtime(&site.out("alpha/motd"));
    assert_eq!(render(&site), "");
    assert_eq!(fake.requests(), 6);
    assert_eq!(fake.conditional_requests(), 0);
    assert_eq!(mtime(&site.out("alpha/motd")), before);
}

#[test]
fn a_missing_or_edited_file_is_repaired_and_check_still_sees_it() {
    let (_fake, site) = site_with(Some((Validators::ETag, true)));
    render(&site);
    let good = site.read("alpha/motd");
    std::fs::write(site.out("alpha/motd"), "edited by hand\n").unwrap();
    let check = site.run(&["render", "--check"]);
    assert_eq!(code(&check), 1, "--check sees the edited file");
    assert!(stdout(&check).contains("would update alpha/motd"));
    assert!(render(&site).contains("updated alpha/motd"));
    assert_eq!(site.read("alpha/motd"), good);

    std::fs::remove_file(site.out("alpha/motd")).unwrap();
    assert!(render(&site).contains("created alpha/motd"));
    assert_eq!(site.read("alpha/motd"), good);
    let check = site.run(&["render", "--check"]);
    assert_eq!(code(&check), 0, "{}", stdout(&check));
    assert_eq!(render(&site), "");
}

#[test]
fn a_maintenance_entering_the_upcoming_window_is_rendered_though_nothing_changed_upstream() {
    let fake = FakeStatuspage::spawn();
    // Starts 1 h 3 s from now: outside `upcoming = "1h"` for 3 seconds.
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600 + 3);
    let end = start + jiff::SignedDuration::from_hours(2);
    let maintenance = json!([{
        "id": "m1", "name": "Lustre upgrade", "status": "scheduled", "impact": "maintenance",
        "created_at": "2025-06-01T10:00:00Z", "updated_at": "2025-06-01T10:00:00Z",
        "scheduled_for": start.to_string(), "scheduled_until": end.to_string(),
        "components": [{"id": "c1", "name": "Lustre"}],
        "incident_updates": [],
    }]);
    page(&fake, "Lustre slow", maintenance);
    fake.send_validators(Validators::ETag, true);
    let site = Site::new(&mapping(&fake.url(), ""));
    render(&site);
    assert!(!site.read("alpha/motd").contains("Lustre upgrade"));
    assert_eq!(render(&site), "", "nothing changed yet");
    std::thread::sleep(Duration::from_secs(4));
    let said = render(&site);
    assert!(said.contains("updated alpha/motd"), "{said}");
    assert!(site.read("alpha/motd").contains("Lustre upgrade"));
    assert!(fake.not_modified_answers() >= 6, "upstream said unchanged");
}

#[test]
fn a_configuration_or_template_edit_renders_again() {
    let (_fake, site) = site_with(Some((Validators::ETag, true)));
    render(&site);
    assert_eq!(render(&site), "");
    // Another cluster: its files are created though upstream is unchanged.
    let mut text = std::fs::read_to_string(site.path().join("mapping.toml")).unwrap();
    text.push_str("\n[clusters.beta]\ncomponents = [\"Lustre\"]\n");
    std::fs::write(site.path().join("mapping.toml"), &text).unwrap();
    assert!(render(&site).contains("created beta/motd"));
    assert_eq!(render(&site), "");

    // Templates of its own, then an edit of one.
    let templates = use_motd_template(site.path(), "{{ cluster }}: {{ status_label }}\n");
    assert!(render(&site).contains("updated alpha/motd"));
    assert_eq!(render(&site), "");
    std::fs::write(
        templates.join("motd.txt.j2"),
        "{{ cluster }} is {{ status_label }}\n",
    )
    .unwrap();
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(site.read("alpha/motd").starts_with("alpha is "));
    assert_eq!(render(&site), "");
}

/// Where a render keeps the requests it made, for the next one to send
/// before it reads `mapping.toml`.
fn plan_file(site: &Site) -> std::path::PathBuf {
    site.path().join("state/render.requests.json")
}

#[test]
fn the_requests_kept_from_the_last_render_go_out_and_an_edited_address_is_asked_instead() {
    let (old, site) = site_with(Some((Validators::ETag, true)));
    render(&site);
    assert!(plan_file(&site).is_file(), "the requests are kept");
    assert_eq!(render(&site), "");
    assert_eq!(
        old.requests(),
        6,
        "three requests per run, sent early or not"
    );

    // The page moves: the next render asks the new address only.
    let new = FakeStatuspage::spawn();
    page(&new, "Lustre down", json!([]));
    std::fs::write(site.path().join("mapping.toml"), mapping(&new.url(), "")).unwrap();
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(site.read("alpha/motd").contains("Lustre down"));
    assert_eq!(old.requests(), 6, "the kept requests name another file");
    assert_eq!(new.requests(), 3);
    assert_eq!(render(&site), "");
    assert_eq!((old.requests(), new.requests()), (6, 6));
}

#[test]
fn kept_requests_that_differ_from_the_configuration_are_dropped_and_asked_again() {
    let (page_fake, site) = site_with(Some((Validators::ETag, true)));
    render(&site);
    let motd = site.read("alpha/motd");
    // The kept requests say another page, for these very bytes of
    // `mapping.toml`: they go out, and are then found not to be what the
    // configuration asks.
    let other = FakeStatuspage::spawn();
    page(&other, "Something else", json!([]));
    let kept = std::fs::read_to_string(plan_file(&site)).unwrap();
    assert!(kept.contains(&page_fake.url()), "{kept}");
    std::fs::write(
        plan_file(&site),
        kept.replace(&page_fake.url(), &other.url()),
    )
    .unwrap();
    assert_eq!(render(&site), "", "the page itself is unchanged");
    assert_eq!(site.read("alpha/motd"), motd);
    assert_eq!(page_fake.requests(), 6);
    // They did go out, before `mapping.toml` was read (a request whose
    // connection is dropped that soon may or may not reach the handler).
    crate::common::eventually("an early request to arrive", 10, || other.requests() >= 1);
    // The configuration's own plan replaces the altered one.
    let kept_again = std::fs::read_to_string(plan_file(&site)).unwrap();
    assert!(!kept_again.contains(&other.url()), "{kept_again}");
}

#[test]
fn a_template_that_prints_the_clock_renders_every_time() {
    let (_fake, site) = site_with(Some((Validators::ETag, true)));
    use_motd_template(site.path(), "{{ cluster }} at {{ now }}\n");
    render(&site);
    std::thread::sleep(Duration::from_millis(1100));
    assert!(render(&site).contains("updated alpha/motd"));
}

#[test]
fn a_304_whose_body_was_not_kept_next_to_a_change_is_read_again_in_full() {
    let (fake, site) = site_with(Some((Validators::ETag, true)));
    render(&site);
    // The kept bodies are lost (or damaged): the unchanged maintenance list
    // answers 304 next to a changed summary and incident list, and is read
    // once more in full rather than rendered from nothing.
    std::fs::write(
        site.path()
            .join("state/status.answers/scheduled-maintenances.json"),
        "{}",
    )
    .unwrap();
    page(&fake, "Lustre very slow", json!([]));
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(site.read("alpha/motd").contains("Lustre very slow"));
    assert_eq!(fake.not_modified_answers(), 1);
    assert_eq!(fake.requests(), 7, "3, then 3 and the list again");
    // Kept again: the next change costs 3 requests.
    page(&fake, "Lustre down", json!([]));
    assert!(render(&site).contains("updated alpha/motd"));
    assert_eq!(fake.requests(), 10);
}

#[test]
fn a_large_list_kept_next_to_a_change_is_recognised_by_the_digest_taken_as_it_came() {
    // A maintenance list of about 1 MB comes in many chunks, each digested
    // as it arrives: the digest kept must be the whole body's, or the kept
    // body is refused next to a change and read again.
    let maintenances: Vec<Value> = (0..2_000)
        .map(|n| {
            json!({
                "id": format!("m{n:05}"), "name": format!("Upgrade {n}"),
                "status": "completed", "impact": "maintenance",
                "created_at": "2025-05-01T10:00:00Z", "updated_at": "2025-05-01T10:00:00Z",
                "scheduled_for": "2025-05-01T10:00:00Z", "scheduled_until": "2025-05-01T11:00:00Z",
                "components": [],
                "incident_updates": [{"id": format!("mu{n:05}"), "status": "completed",
                    "body": "x".repeat(400), "created_at": "2025-05-01T10:00:00Z"}],
            })
        })
        .collect();
    let maintenances = Value::Array(maintenances);
    let fake = FakeStatuspage::spawn();
    fake.send_validators(Validators::ETag, true);
    page(&fake, "Lustre slow", maintenances.clone());
    let site = Site::new(&mapping(&fake.url(), ""));
    render(&site);
    let kept = site
        .path()
        .join("state/status.answers/scheduled-maintenances.json");
    assert!(std::fs::metadata(&kept).unwrap().len() > 900_000);
    page(&fake, "Lustre very slow", maintenances);
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(site.read("alpha/motd").contains("Lustre very slow"));
    assert_eq!(fake.not_modified_answers(), 1);
    assert_eq!(fake.requests(), 6, "the kept list stood for the 304");
}

#[test]
fn a_change_at_the_start_of_a_large_answer_without_validators_is_rendered() {
    // No validators: only the digest of the bodies tells a new answer from
    // the same bytes again. The open incident comes first in a list of
    // about 1 MB and its new name is as long as the old one, so a digest of
    // anything less than the whole body (its last chunks) would call the
    // changed list unchanged.
    let incidents = |name: &str| {
        let mut list = vec![incident(name)[0].clone()];
        list.extend((0..2_000).map(|n| {
            json!({
                "id": format!("old{n:05}"), "name": format!("Old trouble {n}"),
                "status": "resolved", "impact": "minor",
                "created_at": "2025-05-01T10:00:00Z", "updated_at": "2025-05-01T11:00:00Z",
                "resolved_at": "2025-05-01T11:00:00Z", "components": [],
                "incident_updates": [{"id": format!("ou{n:05}"), "status": "resolved",
                    "body": "y".repeat(400), "created_at": "2025-05-01T11:00:00Z"}],
            })
        }));
        Value::Array(list)
    };
    let fake = FakeStatuspage::spawn();
    let set = |name: &str| {
        fake.set_v2_page(
            json!({"id": "p", "name": "Site"}),
            components("degraded_performance"),
            incidents(name),
            json!([]),
        );
    };
    set("Lustre slow");
    let site = Site::new(&mapping(&fake.url(), ""));
    assert!(render(&site).contains("created alpha/motd"));
    assert_eq!(render(&site), "", "the same bytes again: nothing changed");
    set("Lustre SLOW");
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(site.read("alpha/motd").contains("Lustre SLOW"));
    assert_eq!(fake.conditional_requests(), 0, "nothing to ask with");
}

// The manage API v1: the same, over five lists and their pages.

const V1_PAGE: &str = "v1page00001";

fn v1_mapping(url: &str) -> String {
    format!(
        r#"[settings]
timezone = "UTC"
request_timeout = "2s"
retries = 1

[sources.hpc]
kind = "statuspage"
page_id = "{V1_PAGE}"
api_key = {{ file = "api-key" }}
api_base = "{url}"

[clusters.alpha]
components = ["Lustre"]
"#
    )
}

/// 100 open incidents of another component, then one of `Lustre` named
/// `name`: the one that reaches the MOTD is on page 2 of `/incidents`.
fn v1_page(fake: &FakeStatuspage, name: &str) {
    // An hour ago, the same in every call of one test run: page 1 is
    // recent enough that `/incidents` is paged on.
    static RECENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string()
    });
    let base = format!("/pages/{V1_PAGE}");
    let recent = RECENT.as_str();
    let incident = |id: String, name: &str, component: (&str, &str)| {
        json!({
            "id": id, "name": name, "status": "investigating", "impact": "minor",
            "created_at": recent, "updated_at": recent,
            "components": [{"id": component.0, "name": component.1}],
            "incident_updates": [{"id": format!("u-{id}"), "status": "investigating",
                "body": "Looking.", "created_at": recent}],
        })
    };
    let mut incidents: Vec<Value> = (0..100)
        .map(|n| incident(format!("other{n}"), "Other trouble", ("c2", "Other")))
        .collect();
    incidents.push(incident("lustre1".into(), name, ("c1", "Lustre")));
    fake.set_json(
        &format!("{base}/components"),
        json!([
            {"id": "c1", "name": "Lustre", "status": "degraded_performance"},
            {"id": "c2", "name": "Other", "status": "degraded_performance"},
        ]),
    );
    fake.set_json(&format!("{base}/incidents"), Value::Array(incidents));
    for list in [
        "incidents/unresolved",
        "incidents/upcoming",
        "incidents/active_maintenance",
    ] {
        fake.set_json(&format!("{base}/{list}"), json!([]));
    }
}

fn v1_site(validators: Option<(Validators, bool)>) -> (FakeStatuspage, Site) {
    let fake = FakeStatuspage::spawn();
    if let Some((which, honour)) = validators {
        fake.send_validators(which, honour);
    }
    v1_page(&fake, "Lustre slow");
    let site = Site::new(&v1_mapping(&fake.url()));
    std::fs::write(site.path().join("api-key"), "k3yV1conditional").unwrap();
    (fake, site)
}

/// Every file under `out/` and `state/`: equal before and after a run
/// that touched none.
fn all_files(site: &Site) -> Vec<crate::common::FileState> {
    let mut files = crate::common::files_under(&site.path().join("out"));
    files.extend(crate::common::files_under(&site.path().join("state")));
    files
}

/// A v1 refresh: components, the three incident sub-lists, and two pages
/// of `/incidents`.
const V1_REQUESTS: usize = 6;

#[test]
fn v1_sends_validators_back_and_304s_on_every_page_change_nothing() {
    let (fake, site) = v1_site(Some((Validators::ETag, true)));
    assert!(render(&site).contains("created alpha/motd"));
    assert!(site.read("alpha/motd").contains("Lustre slow"));
    assert_eq!(
        fake.requests(),
        V1_REQUESTS,
        "5 lists, /incidents on 2 pages"
    );
    assert_eq!(fake.conditional_requests(), 0);
    let before = all_files(&site);

    assert_eq!(render(&site), "", "nothing changed");
    assert_eq!(
        fake.requests(),
        2 * V1_REQUESTS,
        "as many requests as before"
    );
    assert_eq!(fake.conditional_requests(), V1_REQUESTS, "each one asked");
    assert_eq!(fake.not_modified_answers(), V1_REQUESTS);
    assert_eq!(all_files(&site), before, "no file touched");
    let log = fake.request_log();
    assert!(
        log.contains(&format!("/pages/{V1_PAGE}/incidents?limit=100&page=2")),
        "{log:?}"
    );

    // The incident on page 2 changes: that page answers anew, every other
    // one 304 with its body kept from before.
    v1_page(&fake, "Lustre very slow");
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(site.read("alpha/motd").contains("Lustre very slow"));
    assert_eq!(fake.requests(), 3 * V1_REQUESTS);
    assert_eq!(fake.not_modified_answers(), 2 * V1_REQUESTS - 1);
}

#[test]
fn v1_with_validators_ignored_and_the_same_bytes_touches_no_file() {
    let (fake, site) = v1_site(Some((Validators::Both, false)));
    render(&site);
    let before = all_files(&site);
    assert_eq!(render(&site), "");
    assert_eq!(
        fake.conditional_requests(),
        V1_REQUESTS,
        "the validators were sent"
    );
    assert_eq!(fake.not_modified_answers(), 0);
    assert_eq!(fake.requests(), 2 * V1_REQUESTS);
    assert_eq!(all_files(&site), before, "no file touched");
    v1_page(&fake, "Lustre down");
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(site.read("alpha/motd").contains("Lustre down"));
}

#[test]
fn v1_without_validators_an_unchanged_page_touches_no_file() {
    let (fake, site) = v1_site(None);
    render(&site);
    let before = all_files(&site);
    assert_eq!(render(&site), "");
    assert_eq!(fake.requests(), 2 * V1_REQUESTS);
    assert_eq!(fake.conditional_requests(), 0);
    assert_eq!(all_files(&site), before, "no file touched");
    v1_page(&fake, "Lustre down");
    assert!(render(&site).contains("updated alpha/motd"));
    assert!(site.read("alpha/motd").contains("Lustre down"));
    assert_eq!(fake.requests(), 3 * V1_REQUESTS);
}

#[test]
fn v1_a_304_whose_body_is_lost_is_asked_again_and_the_key_stays_out_of_state() {
    let (fake, site) = v1_site(Some((Validators::ETag, true)));
    render(&site);
    // The kept bodies are gone: the lists answer 304 next to a changed
    // page 2, and are read once more in full rather than from nothing.
    std::fs::remove_dir_all(site.path().join("state/hpc.answers")).unwrap();
    v1_page(&fake, "Lustre very slow");
    assert!(render(&site).contains("updated alpha/motd"));
    let motd = site.read("alpha/motd");
    assert!(motd.contains("Lustre very slow"), "{motd}");
    assert_eq!(fake.not_modified_answers(), V1_REQUESTS - 1);
    assert_eq!(
        fake.requests(),
        3 * V1_REQUESTS - 1,
        "6, then 6 and the 5 unchanged pages again"
    );
    for f in all_files(&site) {
        assert!(
            !String::from_utf8_lossy(&f.1).contains("k3yV1conditional"),
            "{}",
            f.0
        );
    }
}

#[test]
fn v1_reads_the_group_list_again_only_when_it_did_before_and_asks_it_conditionally() {
    let (fake, site) = v1_site(Some((Validators::ETag, true)));
    // `Lustre` names a group with no row in `/components`: the group list
    // is read too, six lists then.
    fake.set_json(
        &format!("/pages/{V1_PAGE}/components"),
        json!([
            {"id": "c1", "name": "Lustre", "status": "degraded_performance", "group_id": "g1"},
            {"id": "c2", "name": "Other", "status": "degraded_performance"},
        ]),
    );
    fake.set_json(
        &format!("/pages/{V1_PAGE}/component-groups"),
        json!([{"id": "g1", "name": "Storage", "components": ["c1"]}]),
    );
    render(&site);
    let with_groups = V1_REQUESTS + 1;
    assert_eq!(fake.requests(), with_groups);
    assert_eq!(
        fake.requests_to(&format!("/pages/{V1_PAGE}/component-groups")),
        1
    );
    let before = all_files(&site);
    assert_eq!(render(&site), "");
    assert_eq!(
        fake.requests(),
        2 * with_groups,
        "the group list asked again"
    );
    assert_eq!(fake.not_modified_answers(), with_groups);
    assert_eq!(all_files(&site), before);
}
