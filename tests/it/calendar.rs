//! The maintenance calendar end to end: the real binary renders
//! `<cluster>/maintenance.ics` from the fake Statuspage, a real iCalendar
//! parser (Python's `icalendar`) reads it, and `statusmotd serve` serves it
//! at `/calendar/{cluster}.ics`.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{code, eventually, http_exchange, http_get, stderr, stdout, Served, Site};
use crate::fake::FakeStatuspage;
use crate::support::ical;

const CALENDAR: &str = "archer2/maintenance.ics";

fn mapping(url: &str) -> String {
    format!(
        r#"[settings]
timezone = "UTC"
request_timeout = "5s"
retries = 1
recent_resolved = "24h"

[sources.status]
kind = "statuspage-public"
url = "{url}"

[server]
listen = "127.0.0.1:0"

[clusters.archer2]
components = ["Login nodes"]
page_wide = false

[clusters.cirrus]
components = ["Storage"]
page_wide = false
"#
    )
}

/// A scheduled maintenance of `Login nodes` with one update.
fn maintenance(id: &str, from: &str, until: &str, body: &str, updated: &str) -> Value {
    json!({
        "id": id,
        "name": format!("Login node upgrade {id}"),
        "status": "scheduled",
        "impact": "maintenance",
        "created_at": "2024-06-01T09:00:00Z",
        "updated_at": updated,
        "scheduled_for": from,
        "scheduled_until": until,
        "shortlink": format!("https://stspg.io/{id}"),
        "components": [{"id": "c1", "name": "Login nodes", "status": "operational"}],
        "incident_updates": [{
            "id": format!("{id}-u1"),
            "status": "scheduled",
            "body": body,
            "created_at": updated,
            "display_at": updated,
            "updated_at": updated
        }]
    })
}

/// Serves a page with `Login nodes` (archer2) and `Storage` (cirrus) and
/// these maintenances.
fn set_page(fake: &FakeStatuspage, maintenances: &[Value]) {
    fake.set_v2_page(
        json!({"id": "pg1", "name": "Example HPC", "url": "https://status.example.org"}),
        json!([
            {"id": "c1", "name": "Login nodes", "status": "operational"},
            {"id": "c2", "name": "Storage", "status": "operational"}
        ]),
        json!([]),
        json!(maintenances),
    );
}

/// Long enough to fold, with multibyte characters, commas, semicolons, a
/// backslash and a line break, and a line that looks like a property.
const BODY: &str = "Kernel 6.1 on login1, login2; ssh sessions end at 08:00.\n\
     END:VEVENT\nPlease save your work — Wartung der Anmeldeknoten, Grüße ✓ 😀 \
     C:\\scratch stays mounted.";

/// The events `icalendar` reads from `bytes`, by UID.
fn events(bytes: &[u8]) -> (Value, std::collections::BTreeMap<String, Value>) {
    ical::assert_wire_format(bytes);
    let parsed = ical::parse(bytes);
    let by_uid = parsed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["uid"].as_str().unwrap().to_owned(), e.clone()))
        .collect();
    (parsed, by_uid)
}

fn inode_and_mtime(site: &Site, rel: &str) -> (u64, i64, i64) {
    let m = fs::metadata(site.out(rel)).unwrap();
    (m.ino(), m.mtime(), m.mtime_nsec())
}

#[test]
fn the_calendar_keeps_uids_raises_sequences_and_cancels_what_was_removed() {
    let fake = FakeStatuspage::spawn();
    let m1 = maintenance(
        "mnt0001",
        // 08:00 UTC, written with an offset as Statuspage does.
        "2024-06-05T01:00:00.000-07:00",
        "2024-06-05T12:00:00Z",
        BODY,
        "2024-06-01T09:00:00Z",
    );
    let m2 = maintenance(
        "mnt0002",
        "2024-06-06T08:00:00Z",
        "2024-06-06T10:00:00Z",
        "Storage firmware",
        "2024-06-01T10:00:00Z",
    );
    set_page(&fake, &[m1.clone(), m2.clone()]);
    let site = Site::new(&mapping(&fake.url()));
    let render = |now: &str| {
        let o = site.run(&["render", "--now", now]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        stdout(&o)
    };

    // 1. Both upcoming maintenances, as a calendar app reads them.
    let out = render("2024-06-03T12:00:00Z");
    assert!(out.contains(&format!("created {CALENDAR}\n")), "{out}");
    let first = fs::read(site.out(CALENDAR)).unwrap();
    let (cal, by_uid) = events(&first);
    assert_eq!(cal["name"], "VCALENDAR");
    assert_eq!(cal["version"], "2.0");
    assert_eq!(cal["method"], "PUBLISH");
    assert_eq!(cal["calname"], "archer2 maintenance");
    let uids: Vec<&String> = by_uid.keys().collect();
    assert_eq!(
        uids,
        ["status-mnt0001@statusmotd", "status-mnt0002@statusmotd"]
    );
    let e1 = &by_uid["status-mnt0001@statusmotd"];
    assert_eq!(e1["sequence"], 0);
    assert_eq!(e1["status"], "CONFIRMED");
    assert_eq!(e1["summary"], "Login node upgrade mnt0001");
    assert_eq!(
        e1["description"],
        format!("{BODY}\n\nAffects: Login nodes"),
        "the text comes back as it was, line that looks like a property included"
    );
    assert_eq!(e1["url"], "https://stspg.io/mnt0001");
    assert_eq!(
        e1["dtstart"],
        json!({"iso": "2024-06-05T08:00:00+00:00", "utc": true})
    );
    assert_eq!(
        e1["dtend"],
        json!({"iso": "2024-06-05T12:00:00+00:00", "utc": true})
    );
    assert_eq!(
        e1["dtstamp"],
        json!({"iso": "2024-06-01T09:00:00+00:00", "utc": true})
    );
    // The long description was folded, and a line that looks like a
    // property stayed inside its value.
    let text = String::from_utf8(first.clone()).unwrap();
    assert!(text.contains("\r\n "), "{text}");
    assert_eq!(text.matches("\r\nEND:VEVENT\r\n").count(), 2, "{text}");
    // The mtime rule: the newest change among the events.
    assert_eq!(
        fs::metadata(site.out(CALENDAR)).unwrap().mtime(),
        "2024-06-01T10:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second()
    );

    // cirrus has no maintenance: an empty calendar, still one to subscribe to.
    let (cirrus, cirrus_events) = events(&fs::read(site.out("cirrus/maintenance.ics")).unwrap());
    assert_eq!(cirrus["calname"], "cirrus maintenance");
    assert!(cirrus_events.is_empty());

    // 2. Nothing new, now or an hour later: the file is not touched.
    let before = inode_and_mtime(&site, CALENDAR);
    for now in ["2024-06-03T12:00:00Z", "2024-06-03T13:00:00Z"] {
        let out = render(now);
        assert!(!out.contains("maintenance.ics"), "{out}");
        assert_eq!(inode_and_mtime(&site, CALENDAR), before, "at {now}");
    }
    let check = site.run(&["render", "--check", "--now", "2024-06-03T13:00:00Z"]);
    assert_eq!(code(&check), 0, "{}", stdout(&check));

    // 3. m1 moves by two hours: `--check` says so, then its SEQUENCE
    // rises; m2's does not, and no UID changes.
    let mut moved = maintenance(
        "mnt0001",
        "2024-06-05T10:00:00Z",
        "2024-06-05T14:00:00Z",
        "Moved by two hours.",
        "2024-06-03T14:00:00Z",
    );
    moved["incident_updates"][0]["id"] = json!("mnt0001-u2");
    set_page(&fake, &[moved.clone(), m2.clone()]);
    let check = site.run(&["render", "--check", "--now", "2024-06-03T15:00:00Z"]);
    assert_eq!(code(&check), 1, "{}", stderr(&check));
    assert!(
        stdout(&check).contains(&format!("would update {CALENDAR}\n")),
        "{}",
        stdout(&check)
    );
    let out = render("2024-06-03T15:00:00Z");
    assert!(out.contains(&format!("updated {CALENDAR}\n")), "{out}");
    let (_, by_uid) = events(&fs::read(site.out(CALENDAR)).unwrap());
    let uids: Vec<&String> = by_uid.keys().collect();
    assert_eq!(
        uids,
        ["status-mnt0001@statusmotd", "status-mnt0002@statusmotd"]
    );
    let e1 = &by_uid["status-mnt0001@statusmotd"];
    assert_eq!(e1["sequence"], 1);
    assert_eq!(e1["dtstart"]["iso"], "2024-06-05T10:00:00+00:00");
    assert_eq!(
        e1["description"],
        "Moved by two hours.\n\nAffects: Login nodes"
    );
    assert_eq!(by_uid["status-mnt0002@statusmotd"]["sequence"], 0);

    // 4. m2 is deleted upstream before it starts: it stays, cancelled.
    set_page(&fake, std::slice::from_ref(&moved));
    render("2024-06-03T16:00:00Z");
    let (_, by_uid) = events(&fs::read(site.out(CALENDAR)).unwrap());
    let e2 = &by_uid["status-mnt0002@statusmotd"];
    assert_eq!(e2["status"], "CANCELLED");
    assert_eq!(e2["sequence"], 1);
    assert_eq!(e2["summary"], "Login node upgrade mnt0002");
    assert_eq!(by_uid["status-mnt0001@statusmotd"]["status"], "CONFIRMED");
    assert_eq!(by_uid["status-mnt0001@statusmotd"]["sequence"], 1);

    // ... and unchanged while within `recent_resolved` ...
    let before = inode_and_mtime(&site, CALENDAR);
    render("2024-06-04T16:00:00Z");
    assert_eq!(inode_and_mtime(&site, CALENDAR), before);

    // 5. ... then gone.
    let out = render("2024-06-04T16:00:01Z");
    assert!(out.contains(&format!("updated {CALENDAR}\n")), "{out}");
    let (_, by_uid) = events(&fs::read(site.out(CALENDAR)).unwrap());
    let uids: Vec<&String> = by_uid.keys().collect();
    assert_eq!(uids, ["status-mnt0001@statusmotd"]);
    assert_eq!(by_uid["status-mnt0001@statusmotd"]["sequence"], 1);

    // `index.json` lists the calendar with the other files.
    let index: Value = serde_json::from_str(&site.read("index.json")).unwrap();
    assert!(
        index["clusters"]["archer2"]["files"][CALENDAR].is_string(),
        "{index:#}"
    );
}

/// The head of a raw HTTP answer, lowercased, and its body.
fn split_answer(answer: &str) -> (String, &str) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    (head.to_ascii_lowercase(), body)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

#[test]
fn serve_answers_the_calendar_with_validators_and_304() {
    let fake = FakeStatuspage::spawn();
    let in_two_days = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(48))
        .unwrap();
    let until = in_two_days
        .checked_add(jiff::SignedDuration::from_hours(3))
        .unwrap();
    set_page(
        &fake,
        &[maintenance(
            "mnt0009",
            &in_two_days.to_string(),
            &until.to_string(),
            "Login nodes reboot; sessions end.",
            "2024-06-01T09:00:00Z",
        )],
    );
    let site = Site::new(&mapping(&fake.url()));
    let served = Served::spawn(site.serve_cmd());
    let limit = Duration::from_secs(10);
    let path = "/calendar/archer2.ics";

    let mut answer = String::new();
    eventually("the calendar to be served", 30, || {
        answer = http_get(served.addr(), path, limit).map_or_else(String::new, |(_, a)| a);
        answer.starts_with("HTTP/1.1 200") && answer.contains("mnt0009")
    });
    let (head, body) = split_answer(&answer);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/calendar; charset=utf-8")
    );
    assert!(header(&head, "last-modified").is_some(), "{head}");
    let etag = header(&head, "etag").expect("an etag").to_owned();
    // The same bytes as the file the renderer wrote.
    assert_eq!(body.as_bytes(), fs::read(site.out(CALENDAR)).unwrap());
    let (_, by_uid) = events(body.as_bytes());
    let e = &by_uid["status-mnt0009@statusmotd"];
    assert_eq!(e["status"], "CONFIRMED");
    assert_eq!(e["summary"], "Login node upgrade mnt0009");
    assert_eq!(e["dtstart"]["utc"], true);

    // A calendar app asking again with the ETag gets a 304 and no body.
    let conditional = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    );
    let (status, answer) = http_exchange(served.addr(), conditional.as_bytes(), limit).unwrap();
    assert_eq!(status, 304, "{answer}");
    assert_eq!(split_answer(&answer).1, "");
    // Another ETag gets the calendar.
    let stale = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"0-0\"\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        http_exchange(served.addr(), stale.as_bytes(), limit)
            .unwrap()
            .0,
        200
    );

    // Unknown clusters and other names are not found.
    for other in [
        "/calendar/nosuch.ics",
        "/calendar/archer2",
        "/calendar/archer2.ics.bak",
        "/calendar/..%2Farcher2.ics",
    ] {
        assert_eq!(
            http_get(served.addr(), other, limit).unwrap().0,
            404,
            "{other}"
        );
    }
    // The cluster index links it.
    let (status, answer) = http_get(served.addr(), "/clusters", limit).unwrap();
    assert_eq!(status, 200);
    assert!(answer.contains("\"/calendar/archer2.ics\""), "{answer}");
}
