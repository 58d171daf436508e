//! Notifications (`[[notify]]`) through the real binary: e-mail to a real
//! SMTP server (aiosmtpd), Slack, Matrix and webhook receivers in process
//! that fail, hang and answer 429, the outbox across a server that is down
//! and across a `kill -9` of `serve`, the first run, and `notify test`.

use std::fs;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::cli::{code, stderr, stdout, Site};
use crate::common::{eventually, http_exchange, http_get, write_executable, Served};
use crate::fake::FakeStatuspage;
use crate::support::notify::{body, header, Answer, HttpReceiver, Seen, Smtp};

const REFRESH_TOKEN: &str = "rt-9c1e0f2a";
const INCIDENT: &str = "Login nodes unreachable";

/// Where the incident on `Login nodes` (archer2's component) stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Quiet,
    Opened,
    Updated,
    Resolved,
}

/// The time the page's times count from: fixed once, so that serving the
/// page again changes nothing but what a step changes.
static BASE: std::sync::LazyLock<jiff::Timestamp> = std::sync::LazyLock::new(jiff::Timestamp::now);

fn ago(mins: i64) -> String {
    (*BASE - jiff::SignedDuration::from_mins(mins)).to_string()
}

fn ahead(mins: i64) -> String {
    (*BASE + jiff::SignedDuration::from_mins(mins)).to_string()
}

/// Serves the page: `Login nodes` (archer2) and `Compute` (cirrus), the
/// incident at `step`, and with `maintenance` a maintenance on `Login
/// nodes` scheduled two hours ahead. Times are relative to the real clock,
/// so `render` and `serve` see the same.
fn set_page(fake: &FakeStatuspage, step: Step, maintenance: bool) {
    let update = |id: &str, status: &str, body: &str, mins: i64| {
        json!({"id": id, "status": status, "body": body,
               "created_at": ago(mins), "display_at": ago(mins)})
    };
    let mut updates = Vec::new();
    if step == Step::Resolved {
        updates.push(update("u3", "resolved", "Logins work again.", 1));
    }
    if matches!(step, Step::Updated | Step::Resolved) {
        updates.push(update(
            "u2",
            "identified",
            "A switch failed; replacing it.",
            10,
        ));
    }
    updates.push(update("u1", "investigating", "Logins time out.", 30));
    let mut incident = json!({
        "id": "inc1",
        "name": INCIDENT,
        "status": match step {
            Step::Resolved => "resolved",
            Step::Updated => "identified",
            _ => "investigating",
        },
        "impact": "major",
        "created_at": ago(30),
        "updated_at": ago(1),
        "shortlink": "https://stspg.io/inc1",
        "components": [{"id": "c1", "name": "Login nodes"}],
        "incident_updates": updates,
    });
    if step == Step::Resolved {
        incident["resolved_at"] = json!(ago(1));
    }
    let (open, all) = match step {
        Step::Quiet => (json!([]), json!([])),
        Step::Resolved => (json!([]), json!([incident])),
        _ => (json!([incident.clone()]), json!([incident])),
    };
    let maintenances = if maintenance {
        json!([{
            "id": "mnt1",
            "name": "Login node kernel upgrade",
            "status": "scheduled",
            "impact": "maintenance",
            "created_at": ago(60),
            "updated_at": ago(60),
            "scheduled_for": ahead(120),
            "scheduled_until": ahead(240),
            "shortlink": "https://stspg.io/mnt1",
            "components": [{"id": "c1", "name": "Login nodes"}],
            "incident_updates": [{"id": "mu1", "status": "scheduled", "body": "Rolling reboots.",
                                  "created_at": ago(60), "display_at": ago(60)}],
        }])
    } else {
        json!([])
    };
    fake.set_json(
        "/api/v2/summary.json",
        json!({
            "page": {"id": "hpcpage", "name": "HPC", "url": "https://status.example.org"},
            "components": [
                {"id": "c1", "name": "Login nodes", "status": "operational", "group_id": null},
                {"id": "c2", "name": "Compute", "status": "operational", "group_id": null},
            ],
            "incidents": open,
            "scheduled_maintenances": maintenances,
        }),
    );
    fake.set_json("/api/v2/incidents.json", json!({ "incidents": all }));
    fake.set_json(
        "/api/v2/scheduled-maintenances.json",
        json!({ "scheduled_maintenances": maintenances }),
    );
}

/// A site reading `fake`, with archer2 on `Login nodes`, cirrus on
/// `Compute`, `settings` added to `[settings]` and `routes` at the end.
fn site(fake: &FakeStatuspage, settings: &str, routes: &str) -> Site {
    let site = Site::new(&format!(
        r#"[settings]
output_dir = "out"
state_dir = "state"
timezone = "UTC"
retries = 0
poll_interval = "1h"
{settings}

[sources.hpc]
kind = "statuspage-public"
url = "{url}"

[server]
refresh_token = {{ file = "refresh-token" }}

[clusters.archer2]
components = ["Login nodes"]
page_wide = false

[clusters.cirrus]
components = ["Compute"]
page_wide = false

{routes}"#,
        url = fake.url()
    ));
    fs::write(site.path().join("refresh-token"), REFRESH_TOKEN).unwrap();
    site
}

fn render(site: &Site) -> std::process::Output {
    let out = site.run(&["render"]);
    assert_eq!(code(&out), 0, "render failed:\n{}", stderr(&out));
    out
}

fn serve(site: &Site, env: &[(&str, String)]) -> Served {
    let mut cmd = site.serve_cmd();
    for (k, v) in env {
        cmd.env(k, v);
    }
    Served::spawn(cmd)
}

/// `POST /refresh?wait=true`: returns once the refresh is rendered.
fn refresh(served: &Served) {
    let req = format!(
        "POST /refresh?wait=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {REFRESH_TOKEN}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (status, answer) =
        http_exchange(served.addr(), req.as_bytes(), Duration::from_secs(30)).unwrap();
    assert_eq!(status, 200, "{answer}");
}

fn metrics(served: &Served) -> String {
    http_get(served.addr(), "/metrics", Duration::from_secs(10))
        .unwrap()
        .1
}

/// The value of one sample line (a whole number) of `/metrics`, 0 when
/// absent.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_incident_opened_updated_and_resolved_gives_three_mails_to_its_cluster_only() {
    let smtp = Smtp::start();
    let fake = FakeStatuspage::spawn();
    set_page(&fake, Step::Quiet, false);
    let site = site(
        &fake,
        "",
        &format!(
            r#"[[notify]]
name = "archer2-users"
clusters = ["archer2"]
to = {{ email = {{ to = ["archer2-users@example.org"], from = "HPC status <status@example.org>", smtp = "{url}" }} }}

[[notify]]
name = "cirrus-users"
clusters = ["cirrus"]
to = {{ email = {{ to = ["cirrus-users@example.org"], from = "status@example.org", smtp = "{url}" }} }}
"#,
            url = smtp.url()
        ),
    );
    render(&site);
    assert!(smtp.mails().is_empty(), "nothing happened yet");
    for (n, step) in [(1, Step::Opened), (2, Step::Updated), (3, Step::Resolved)] {
        set_page(&fake, step, false);
        render(&site);
        assert_eq!(smtp.mails().len(), n, "after step {n}");
        if step == Step::Opened {
            assert!(site.read("archer2/motd").contains(INCIDENT));
        }
    }
    // Nothing new: nothing sent.
    render(&site);
    let mails = smtp.mails();
    assert_eq!(mails.len(), 3, "{mails:#?}");

    let subjects: Vec<String> = mails
        .iter()
        .map(|m| header(m, "Subject").unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            format!("[archer2] Incident: {INCIDENT}"),
            format!("[archer2] Incident update: {INCIDENT}"),
            format!("[archer2] Resolved: {INCIDENT}"),
        ]
    );
    let bodies: Vec<String> = mails.iter().map(String::as_str).map(body).collect();
    assert!(
        bodies[0].contains(&format!("Incident on archer2: {INCIDENT}")),
        "{}",
        bodies[0]
    );
    assert!(bodies[0].contains("Logins time out."), "{}", bodies[0]);
    assert!(
        bodies[1].contains("A switch failed; replacing it."),
        "{}",
        bodies[1]
    );
    assert!(bodies[2].contains("Logins work again."), "{}", bodies[2]);
    let mut ids = Vec::new();
    for m in &mails {
        assert_eq!(
            header(m, "X-Envelope-To").unwrap(),
            "archer2-users@example.org"
        );
        assert_eq!(header(m, "To").unwrap(), "archer2-users@example.org");
        assert_eq!(
            header(m, "From").unwrap(),
            "\"HPC status\" <status@example.org>"
        );
        assert!(
            header(m, "Content-Type").unwrap().starts_with("text/plain"),
            "{m}"
        );
        assert!(body(m).contains("https://stspg.io/inc1"), "{m}");
        assert!(body(m).contains("Affects: Login nodes"), "{m}");
        ids.push(header(m, "Message-ID").unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "one Message-ID per event");
}

#[test]
fn mails_queued_while_the_smtp_server_is_down_arrive_once_when_it_is_back() {
    let mut smtp = Smtp::start();
    let fake = FakeStatuspage::spawn();
    set_page(&fake, Step::Quiet, false);
    let site = site(
        &fake,
        "request_timeout = \"2s\"",
        &format!(
            r#"[[notify]]
name = "archer2-users"
clusters = ["archer2"]
to = {{ email = {{ to = ["archer2-users@example.org"], from = "status@example.org", smtp = "{}" }} }}
"#,
            smtp.url()
        ),
    );
    render(&site);
    smtp.stop();

    set_page(&fake, Step::Opened, false);
    let out = render(&site);
    assert!(
        stderr(&out).contains("1 notification(s) not delivered yet"),
        "{}",
        stderr(&out)
    );
    // The banner did not wait for the mail.
    assert!(site.read("archer2/motd").contains(INCIDENT));
    set_page(&fake, Step::Updated, false);
    let out = render(&site);
    assert!(
        stderr(&out).contains("2 notification(s) not delivered yet"),
        "{}",
        stderr(&out)
    );
    assert!(site.read("archer2/motd").contains("A switch failed"));
    assert!(smtp.mails().is_empty());

    smtp.resume();
    let out = render(&site);
    assert!(!stderr(&out).contains("not delivered"), "{}", stderr(&out));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    assert!(header(&mails[0], "Subject").unwrap().contains("Incident:"));
    assert!(header(&mails[1], "Subject")
        .unwrap()
        .contains("Incident update:"));
    render(&site);
    render(&site);
    assert_eq!(smtp.mails().len(), 2, "none twice");
}

#[test]
fn the_first_run_announces_nothing_unless_announce_existing() {
    let rx = HttpReceiver::spawn();
    let fake = FakeStatuspage::spawn();
    set_page(&fake, Step::Opened, true);
    let site = site(
        &fake,
        "",
        &format!(
            r#"[[notify]]
name = "quiet"
to = {{ webhook = {{ url = "{url}/quiet" }} }}

[[notify]]
name = "loud"
announce_existing = true
to = {{ webhook = {{ url = "{url}/loud" }} }}
"#,
            url = rx.url()
        ),
    );
    render(&site);
    let loud: Vec<Value> = rx.delivered_at("/loud").iter().map(Seen::json).collect();
    let kinds: Vec<&str> = loud.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opened", "upcoming"], "{loud:#?}");
    assert_eq!(loud[1]["item"]["name"], "Login node kernel upgrade");
    assert!(
        rx.seen_at("/quiet").is_empty(),
        "the first run announces nothing"
    );

    render(&site);
    assert_eq!(rx.delivered_at("/loud").len(), 2, "everything once");
    assert!(rx.seen_at("/quiet").is_empty());

    // From now on both hear of changes.
    set_page(&fake, Step::Updated, true);
    render(&site);
    assert_eq!(rx.delivered_at("/quiet").len(), 1);
    assert_eq!(rx.delivered_at("/quiet")[0].json()["event"], "updated");
    assert_eq!(rx.delivered_at("/loud").len(), 3);
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn serve_delivers_to_slack_matrix_and_webhook_through_failures_hangs_and_429() {
    let (slack, matrix, hook) = (
        HttpReceiver::spawn(),
        HttpReceiver::spawn(),
        HttpReceiver::spawn(),
    );
    slack.answer_next(&[Answer::Status(500), Answer::TooMany(1)]);
    matrix.answer_next(&[Answer::Hang]);
    hook.answer_next(&[Answer::Status(503)]);
    let fake = FakeStatuspage::spawn();
    set_page(&fake, Step::Quiet, false);
    let site = site(
        &fake,
        "request_timeout = \"1s\"",
        &format!(
            r#"[[notify]]
name = "chat"
clusters = ["archer2"]
to = {{ slack = {{ url = {{ env = "TEST_SLACK_URL" }} }} }}

[[notify]]
name = "room"
to = {{ matrix = {{ homeserver = "{matrix}", room = "!ops:example.org", token = {{ env = "TEST_MATRIX_TOKEN" }} }} }}

[[notify]]
name = "hook"
min_impact = "major"
to = {{ webhook = {{ url = "{hook}/in", secret = {{ env = "TEST_HOOK_SECRET" }} }} }}

[[notify]]
name = "cirrus-chat"
clusters = ["cirrus"]
to = {{ slack = {{ url = {{ env = "TEST_SLACK_URL" }} }} }}
"#,
            matrix = matrix.url(),
            hook = hook.url()
        ),
    );
    let secret = "hook-secret-5f2a";
    let served = serve(
        &site,
        &[
            (
                "TEST_SLACK_URL",
                format!("{}/services/T0/B0/slacksecret", slack.url()),
            ),
            ("TEST_MATRIX_TOKEN", "mx-token-77".to_owned()),
            ("TEST_HOOK_SECRET", secret.to_owned()),
        ],
    );
    refresh(&served);
    set_page(&fake, Step::Opened, false);
    let started = Instant::now();
    refresh(&served);
    // The banner is there at once, whatever the receivers do.
    assert!(site.read("archer2/motd").contains(INCIDENT));
    assert!(started.elapsed() < Duration::from_secs(5));

    eventually("every receiver has the message", 30, || {
        slack.delivered_at("/services/T0/B0/slacksecret").len() == 1
            && matrix.delivered_at_prefix("/_matrix/").len() == 1
            && hook.delivered_at("/in").len() == 1
    });

    // Slack: 500, then 429 with Retry-After: 1, then delivered.
    let tries = slack.seen();
    assert_eq!(tries.len(), 3, "{tries:#?}");
    let msg = tries[2].json();
    assert!(msg["text"].as_str().unwrap().contains(INCIDENT), "{msg}");
    assert!(msg["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("Logins time out."));
    assert_eq!(
        msg["blocks"][1]["elements"][0]["text"],
        "<https://stspg.io/inc1|Status page>"
    );

    // Matrix: the hung attempt and its retry carry the same txnId.
    let puts = matrix.seen();
    assert_eq!(puts.len(), 2, "{puts:#?}");
    assert_eq!(puts[0].path, puts[1].path, "the same txnId");
    assert!(
        puts[0].path.starts_with(
            "/_matrix/client/v3/rooms/%21ops%3Aexample.org/send/m.room.message/statusmotd-"
        ),
        "{}",
        puts[0].path
    );
    assert!(puts.iter().all(|p| p.method == "PUT"));
    assert_eq!(
        puts[1].header("authorization").unwrap(),
        "Bearer mx-token-77"
    );
    assert_eq!(puts[1].json()["msgtype"], "m.notice");

    // Webhook: signed, with the same Idempotency-Key on the retry.
    let posts = hook.seen();
    assert_eq!(posts.len(), 2);
    for p in &posts {
        assert_eq!(
            p.header("x-statusmotd-signature").unwrap(),
            hmac_hex(secret, &p.body)
        );
    }
    assert_eq!(
        posts[0].header("idempotency-key"),
        posts[1].header("idempotency-key")
    );
    let payload = posts[1].json();
    assert_eq!(payload["event"], "opened");
    assert_eq!(payload["clusters"], json!(["archer2"]));
    assert_eq!(payload["item"]["name"], INCIDENT);
    assert_eq!(payload["item"]["shortlink"], "https://stspg.io/inc1");

    let m = metrics(&served);
    assert_eq!(
        sample(
            &m,
            "statusmotd_notifications_total{route=\"chat\",result=\"error\"}"
        ),
        2,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "statusmotd_notifications_total{route=\"chat\",result=\"ok\"}"
        ),
        1,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "statusmotd_notifications_total{route=\"room\",result=\"ok\"}"
        ),
        1,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "statusmotd_notifications_total{route=\"cirrus-chat\",result=\"ok\"}"
        ),
        0
    );
    eventually("the outbox is empty", 10, || {
        sample(&metrics(&served), "statusmotd_notify_outbox_size") == 0
    });
    // No log line carries a secret.
    let log = served.log();
    for s in ["slacksecret", "mx-token-77", secret] {
        assert!(!log.contains(s), "`{s}` in the log:\n{log}");
    }
}

#[test]
fn a_kill_9_mid_delivery_sends_nothing_twice() {
    let (chat, room, hook) = (
        HttpReceiver::spawn(),
        HttpReceiver::spawn(),
        HttpReceiver::spawn(),
    );
    chat.answer_next(&[Answer::Hang]);
    room.answer_next(&[Answer::Hang]);
    hook.answer_always(Answer::Status(500));
    let fake = FakeStatuspage::spawn();
    set_page(&fake, Step::Quiet, false);
    let site = site(
        &fake,
        "request_timeout = \"30s\"",
        &format!(
            r#"[[notify]]
name = "chat"
to = {{ slack = {{ url = {{ env = "TEST_SLACK_URL" }} }} }}

[[notify]]
name = "room"
to = {{ matrix = {{ homeserver = "{room}", room = "!ops:example.org", token = {{ env = "TEST_MATRIX_TOKEN" }} }} }}

[[notify]]
name = "hook"
to = {{ webhook = {{ url = "{hook}/in" }} }}
"#,
            room = room.url(),
            hook = hook.url()
        ),
    );
    let env = [
        ("TEST_SLACK_URL", format!("{}/hook", chat.url())),
        ("TEST_MATRIX_TOKEN", "t".to_owned()),
    ];
    let mut served = serve(&site, &env);
    refresh(&served);
    set_page(&fake, Step::Opened, false);
    refresh(&served);
    eventually(
        "both deliveries under way and the webhook failing",
        20,
        || chat.seen().len() == 1 && room.seen().len() == 1 && !hook.seen().is_empty(),
    );
    served.kill();

    chat.answer_always(Answer::Ok);
    room.answer_always(Answer::Ok);
    hook.answer_always(Answer::Ok);
    let served = serve(&site, &env);
    eventually("the repeatable deliveries are made", 20, || {
        room.delivered_at_prefix("/_matrix/").len() == 1 && hook.delivered_at("/in").len() == 1
    });
    // Matrix got the in-flight one again, under the same txnId: the
    // homeserver takes it once.
    let puts = room.seen();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0].path, puts[1].path);
    std::thread::sleep(Duration::from_secs(2));
    // Slack cannot recognise a repeat: not sent again.
    assert_eq!(chat.seen().len(), 1, "{:#?}", chat.seen());
    assert_eq!(hook.delivered_at("/in").len(), 1, "none twice");
    assert!(
        served.log().contains("it is not sent again"),
        "{}",
        served.log()
    );
    let m = metrics(&served);
    assert_eq!(
        sample(
            &m,
            "statusmotd_notifications_total{route=\"chat\",result=\"abandoned\"}"
        ),
        1,
        "{m}"
    );
}

#[test]
fn notify_test_sends_a_test_message_and_prints_the_answer() {
    let rx = HttpReceiver::spawn();
    let fake = FakeStatuspage::spawn();
    set_page(&fake, Step::Quiet, false);
    let site = site(
        &fake,
        "",
        r#"[[notify]]
name = "chat"
to = { slack = { url = { env = "TEST_SLACK_URL" } } }
"#,
    );
    let out = site
        .cmd()
        .args(["notify", "test", "chat"])
        .env("TEST_SLACK_URL", format!("{}/hook", rx.url()))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "200 ok");
    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].json()["text"]
        .as_str()
        .unwrap()
        .contains("test message from statusmotd for the route `chat`"));

    rx.answer_next(&[Answer::Status(404)]);
    let out = site
        .cmd()
        .args(["notify", "test", "chat"])
        .env("TEST_SLACK_URL", format!("{}/hook", rx.url()))
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(
            "route `chat`: the test message was not delivered: the receiver answered 404"
        ),
        "{}",
        stderr(&out)
    );

    let out = site.run(&["notify", "test", "nope"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no `[[notify]]` route named `nope`"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("the routes are `chat`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sendmail_gets_the_addresses_as_arguments_and_no_secret_in_its_environment() {
    let fake = FakeStatuspage::spawn();
    set_page(&fake, Step::Quiet, false);
    let bin = tempfile::tempdir().unwrap();
    let sendmail = bin.path().join("sendmail");
    write_executable(
        &sendmail,
        "#!/bin/sh\nd=$(dirname \"$0\")\nprintf '%s\\n' \"$@\" > \"$d/args\"\nenv > \"$d/env\"\ncat > \"$d/mail\"\n",
    );
    let site = site(
        &fake,
        "",
        &format!(
            r#"[[notify]]
name = "local-mail"
clusters = ["archer2"]
to = {{ email = {{ to = ["archer2-users@example.org", "Ops <ops@example.org>"], from = "HPC status <status@example.org>", sendmail = "{}" }} }}

[[notify]]
name = "chat"
to = {{ slack = {{ url = {{ env = "TEST_SLACK_URL" }} }} }}
"#,
            sendmail.display()
        ),
    );
    let run = || {
        let out = site
            .cmd()
            .arg("render")
            .env("TEST_SLACK_URL", "http://127.0.0.1:9/slack-secret-value")
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    };
    run();
    set_page(&fake, Step::Opened, false);
    run();
    let args = fs::read_to_string(bin.path().join("args")).unwrap();
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            "-i",
            "-f",
            "status@example.org",
            "--",
            "archer2-users@example.org",
            "ops@example.org"
        ]
    );
    let env = fs::read_to_string(bin.path().join("env")).unwrap();
    assert!(!env.contains("slack-secret-value"), "{env}");
    assert!(!env.contains("TEST_SLACK_URL"), "{env}");
    let mail = fs::read_to_string(bin.path().join("mail")).unwrap();
    assert_eq!(
        header(&mail, "Subject").unwrap(),
        format!("[archer2] Incident: {INCIDENT}")
    );
    assert!(body(&mail).contains("Logins time out."), "{mail}");
}

#[test]
fn readyz_names_a_route_failing_for_longer_than_stale_after_until_it_delivers() {
    let rx = HttpReceiver::spawn();
    rx.answer_always(Answer::Status(500));
    let fake = FakeStatuspage::spawn();
    set_page(&fake, Step::Opened, false);
    let site = site(
        &fake,
        "stale_after = \"30m\"",
        r#"[[notify]]
name = "chat"
to = { slack = { url = { env = "TEST_SLACK_URL" } } }
"#,
    );
    // An outbox left by an earlier run: one event, failing for two hours.
    let since = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2)).to_string();
    let outbox = json!({
        "format": 1,
        "seen": {},
        "pending": [{
            "route": "chat",
            "event": {
                "id": "e1", "kind": "opened",
                "item": {"source": "hpc", "source_title": "HPC", "id": "inc0", "kind": "incident",
                         "name": "Old news", "status": "investigating", "impact": "minor",
                         "created_at": null, "updated_at": null, "started_at": null,
                         "scheduled_for": null, "scheduled_until": null, "resolved_at": null,
                         "shortlink": null, "components": [], "latest": null},
                "clusters": ["archer2"], "first_seen": [], "at": since,
            },
            "queued_at": since, "attempts": 0, "next_at": since, "in_flight": false,
            "failing_since": since, "last_error": "the receiver answered 500",
        }],
        "done": {},
    });
    fs::create_dir_all(site.path().join("state")).unwrap();
    fs::write(site.path().join("state/notify.json"), outbox.to_string()).unwrap();
    let served = serve(&site, &[("TEST_SLACK_URL", format!("{}/hook", rx.url()))]);
    refresh(&served);
    let readyz = || http_get(served.addr(), "/readyz", Duration::from_secs(10)).unwrap();
    let (status, answer) = readyz();
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer.contains("notification route `chat` has failed since"),
        "{answer}"
    );
    eventually("another attempt", 10, || !rx.seen().is_empty());

    rx.answer_always(Answer::Ok);
    eventually("the delivery and a ready service", 20, || readyz().0 == 200);
    assert_eq!(rx.delivered_at("/hook").len(), 1);
    assert!(rx.delivered_at("/hook")[0].json()["text"]
        .as_str()
        .unwrap()
        .contains("Old news"));
}
