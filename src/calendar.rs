//! The maintenance calendar: a cluster's upcoming, active and recently
//! completed maintenance as one iCalendar (RFC 5545) text, the bytes of
//! `<cluster>/maintenance.ics` and of `GET /calendar/{cluster}.ics`.
//!
//! Calendar apps that subscribe to a feed update an event in place only
//! when its `UID` stays the same and its `SEQUENCE` rises with each change;
//! an event that simply vanishes from the feed is deleted without a word.
//! So what each cluster's calendar last said is remembered in `state_dir`
//! ([`Memory`]): an event whose content changed gets the next `SEQUENCE`,
//! and maintenance that leaves the view before its end (deleted upstream,
//! or no longer concerning the cluster) stays as `STATUS:CANCELLED` for
//! `recent_resolved`, so subscribers see it called off rather than gone.
//!
//! Rendering is pure, a function of (view, memory, window): the caller
//! keeps the new memory once the file is written. Every time is printed in
//! UTC and `DTSTAMP` is the item's last upstream change, never the render
//! time, so a render with nothing new gives the same bytes and the file is
//! not touched.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::ItemKind;
use crate::sanitize::{sanitize, sanitize_line, sanitize_url};
use crate::view::{ClusterView, Item};

/// The calendar file in each cluster's directory.
pub const FILE_NAME: &str = "maintenance.ics";

/// A calendar is at most this large, like every cluster file: events past
/// it (the latest to start) are left out.
pub const MAX_BYTES: usize = crate::render::MAX_FILE_BYTES;

/// Octets per line before folding (RFC 5545, 3.1), line break excluded.
const FOLD_AT: usize = 75;

/// Where the memory is kept in `state_dir`.
const MEMORY_FILE: &str = "calendar.json";

/// What every cluster's calendar last said, by cluster, then `UID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterMemory>,
}

/// One cluster's calendar as last rendered, by `UID`.
pub type ClusterMemory = BTreeMap<String, Remembered>;

/// An event as last rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    pub sequence: u32,
    pub event: Event,
    /// When the item left the view without having ended: the event is
    /// cancelled from then, and forgotten `recent_resolved` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_at: Option<Timestamp>,
}

/// The content of one `VEVENT` but its `UID` and `SEQUENCE`: what, when
/// changed, raises the `SEQUENCE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub status: EventStatus,
    pub summary: String,
    pub description: String,
    pub url: Option<String>,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    /// `DTSTAMP`: the item's last upstream change (for a cancelled event,
    /// when it was seen gone).
    pub stamp: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Confirmed,
    Cancelled,
}

impl EventStatus {
    fn as_ical(self) -> &'static str {
        match self {
            EventStatus::Confirmed => "CONFIRMED",
            EventStatus::Cancelled => "CANCELLED",
        }
    }
}

impl Memory {
    /// Where it is kept.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(MEMORY_FILE)
    }

    /// The memory kept in `state_dir`; empty when there is none or it
    /// cannot be read (a warning says so: the calendars then start their
    /// sequences again, which calendar apps survive). The text in it is
    /// sanitized again, as a snapshot file's is.
    pub fn load(state_dir: &Path) -> Memory {
        let path = Self::path(state_dir);
        let mut memory = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ignoring `{}`: {e}", path.display());
                Memory::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Memory::default(),
            Err(e) => {
                tracing::warn!("cannot read `{}`: {e}", path.display());
                Memory::default()
            }
        };
        for r in memory.clusters.values_mut().flat_map(|c| c.values_mut()) {
            let e = &mut r.event;
            e.summary = sanitize_line(&e.summary);
            e.description = sanitize(&e.description);
            e.url = e.url.as_deref().and_then(sanitize_url);
        }
        memory
    }

    /// Keeps it in `state_dir`, replacing the file atomically.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        // The state directory itself, not a file: the file goes through
        // `output::replace_file`.
        #[allow(clippy::disallowed_methods)]
        std::fs::create_dir_all(state_dir)
            .map_err(Error::io("cannot create state directory", state_dir))?;
        let text = serde_json::to_vec(self)
            .map_err(|e| Error::Runtime(format!("cannot serialize the calendar memory: {e}")))?;
        crate::output::replace_file(&Self::path(state_dir), &text)
    }
}

/// A rendered calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub bytes: Vec<u8>,
    /// The newest `DTSTAMP` among the events written: the mtime rule's
    /// newest change.
    pub newest: Option<Timestamp>,
    /// What to remember for the next render.
    pub memory: ClusterMemory,
}

/// The calendar of `view`, given what it said last time (`before`).
/// Cancelled events are kept for `keep_cancelled` after the item left.
pub fn render(
    view: &ClusterView,
    before: Option<&ClusterMemory>,
    keep_cancelled: SignedDuration,
) -> Calendar {
    let memory = remember(view, before, keep_cancelled);
    let mut events: Vec<(&String, &Remembered)> = memory.iter().collect();
    events.sort_by(|(ua, a), (ub, b)| (a.event.start, ua).cmp(&(b.event.start, ub)));

    // Room for the head and tail of a calendar without events, most
    // clusters' calendar, in one allocation.
    let mut head = String::with_capacity(512);
    for line in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//statusmotd//maintenance calendar//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
    ] {
        push_line(&mut head, line);
    }
    push_property(
        &mut head,
        "X-WR-CALNAME",
        &format!("{} maintenance", view.cluster),
    );
    // Asks subscribed apps to look again every 15 minutes (RFC 7986, and
    // the older name that Outlook and Apple Calendar read).
    push_line(&mut head, "REFRESH-INTERVAL;VALUE=DURATION:PT15M");
    push_line(&mut head, "X-PUBLISHED-TTL:PT15M");
    let tail = "END:VCALENDAR\r\n";

    let mut body = String::new();
    let mut newest = None;
    for (uid, r) in events {
        let vevent = vevent(uid, r);
        if head.len() + body.len() + vevent.len() + tail.len() > MAX_BYTES {
            break;
        }
        body.push_str(&vevent);
        newest = newest.max(Some(r.event.stamp));
    }
    let mut bytes = head;
    bytes.push_str(&body);
    bytes.push_str(tail);
    Calendar {
        bytes: bytes.into_bytes(),
        newest,
        memory,
    }
}

/// The new memory of a cluster: the events of the view now, each with the
/// sequence it had, or the next one when its content changed; and the
/// events remembered that the view no longer has, cancelled or forgotten.
fn remember(
    view: &ClusterView,
    before: Option<&ClusterMemory>,
    keep_cancelled: SignedDuration,
) -> ClusterMemory {
    let empty = ClusterMemory::new();
    let before = before.unwrap_or(&empty);
    let now = view.now;
    let primary = view.sources.first().map(|s| s.name.as_str());
    let maintenance = view
        .maintenance
        .active
        .iter()
        .chain(&view.maintenance.upcoming)
        .chain(&view.resolved)
        .filter(|i| i.kind == ItemKind::Maintenance);

    let mut memory = ClusterMemory::new();
    for item in maintenance {
        let Some(event) = event_of(item, primary) else {
            continue;
        };
        let uid = uid_of(&item.source, &item.id);
        if memory.contains_key(&uid) {
            continue;
        }
        let remembered = match before.get(&uid) {
            Some(prev) if prev.event == event && prev.gone_at.is_none() => prev.clone(),
            Some(prev) => Remembered {
                sequence: prev.sequence.saturating_add(1),
                event,
                gone_at: None,
            },
            None => Remembered {
                sequence: 0,
                event,
                gone_at: None,
            },
        };
        memory.insert(uid, remembered);
    }
    for (uid, prev) in before {
        if memory.contains_key(uid) {
            continue;
        }
        if let Some(gone) = prev.gone_at {
            // Cancelled already: kept, unchanged, for the window.
            if now.duration_since(gone) <= keep_cancelled {
                memory.insert(uid.clone(), prev.clone());
            }
            continue;
        }
        // An event that ran to its end left the view because it is over,
        // not because it was called off.
        let ended = prev.event.status == EventStatus::Confirmed
            && prev.event.end.is_some_and(|end| end <= now);
        if !ended {
            memory.insert(
                uid.clone(),
                Remembered {
                    sequence: prev.sequence.saturating_add(1),
                    event: Event {
                        status: EventStatus::Cancelled,
                        stamp: now,
                        ..prev.event.clone()
                    },
                    gone_at: Some(now),
                },
            );
        }
    }
    memory
}

/// The event of one maintenance item; `None` for one with no time at all.
fn event_of(item: &Item, primary: Option<&str>) -> Option<Event> {
    let start = item.scheduled_for.or(item.started_at).or(item.created_at)?;
    let completed = is_completed(item);
    let end = if completed {
        item.resolved_at.or(item.scheduled_until)
    } else {
        item.scheduled_until
    }
    .filter(|end| *end >= start);
    let summary = if primary == Some(item.source.as_str()) {
        item.name.clone()
    } else {
        format!("[{}] {}", item.source_title, item.name)
    };
    let mut description = item
        .latest
        .as_ref()
        .map(|u| u.body.clone())
        .unwrap_or_default();
    if !item.components.is_empty() {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        let _ = write!(description, "Affects: {}", item.components.join(", "));
    }
    Some(Event {
        status: EventStatus::Confirmed,
        summary,
        description,
        url: item.shortlink.clone(),
        start,
        end,
        stamp: item.last_change.or(item.created_at).unwrap_or(start),
    })
}

/// Whether the item is completed maintenance (shown among the resolved).
fn is_completed(item: &Item) -> bool {
    matches!(
        item.status.as_str(),
        "completed" | "resolved" | "postmortem"
    )
}

/// The `UID` of an item: `<source>-<id>@statusmotd`, every character but
/// letters, digits, `.` and `_` percent-encoded (and `-` in the source's
/// name, so that the first `-` always ends it), so it is stable, unique and
/// plain ASCII.
pub fn uid_of(source: &str, id: &str) -> String {
    fn encode(s: &str, keep_dash: bool) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || (keep_dash && b == b'-') {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
        out
    }
    format!("{}-{}@statusmotd", encode(source, false), encode(id, true))
}

fn vevent(uid: &str, r: &Remembered) -> String {
    let e = &r.event;
    let mut out = String::new();
    push_line(&mut out, "BEGIN:VEVENT");
    push_property(&mut out, "UID", uid);
    push_line(&mut out, &format!("SEQUENCE:{}", r.sequence));
    push_line(&mut out, &format!("DTSTAMP:{}", utc(e.stamp)));
    push_line(&mut out, &format!("DTSTART:{}", utc(e.start)));
    if let Some(end) = e.end {
        push_line(&mut out, &format!("DTEND:{}", utc(end)));
    }
    push_property(&mut out, "SUMMARY", &e.summary);
    if !e.description.is_empty() {
        push_property(&mut out, "DESCRIPTION", &e.description);
    }
    if let Some(url) = e.url.as_deref().filter(|u| is_plain_uri(u)) {
        push_line(&mut out, &format!("URL:{url}"));
    }
    push_line(&mut out, &format!("STATUS:{}", e.status.as_ical()));
    push_line(&mut out, "TRANSP:OPAQUE");
    push_line(&mut out, "END:VEVENT");
    out
}

/// A time as an RFC 5545 UTC date-time: `20240312T190000Z`.
fn utc(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// A URI value is written as it is, unescaped: only one of visible ASCII
/// characters can be (links are sanitized to `http(s)` URLs already; this
/// keeps any other out of the file).
fn is_plain_uri(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// `NAME:value` with the value escaped as TEXT.
fn push_property(out: &mut String, name: &str, value: &str) {
    push_line(out, &format!("{name}:{}", escape_text(value)));
}

/// TEXT escaped per RFC 5545 (3.3.11): backslash, semicolon and comma
/// behind a backslash, a line break as `\n`. Any other control character is
/// dropped, so no value can end its line and start a property of its own.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends `line` folded at [`FOLD_AT`] octets, never inside a UTF-8
/// character, each physical line ended by CRLF and each continuation begun
/// by one space.
fn push_line(out: &mut String, line: &str) {
    if line.len() <= FOLD_AT {
        out.push_str(line);
        out.push_str("\r\n");
        return;
    }
    out.reserve(line.len() + line.len() / FOLD_AT * 3 + 2);
    let mut octets = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if octets + n > FOLD_AT {
            out.push_str("\r\n ");
            octets = 1;
        }
        out.push(c);
        octets += n;
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Incident, Page, Snapshot, Update};
    use crate::view::{self, ViewOptions};

    /// `line` folded (RFC 5545, 3.1), with its CRLF.
    fn fold(line: &str) -> String {
        let mut out = String::new();
        push_line(&mut out, line);
        out
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn maintenance(id: &str, status: &str, body: &str) -> Incident {
        Incident {
            id: id.into(),
            kind: ItemKind::Maintenance,
            name: format!("Upgrade {id}"),
            status: status.into(),
            impact: "maintenance".into(),
            created_at: Some(ts("2024-03-01T09:00:00Z")),
            updated_at: Some(ts("2024-03-01T09:00:00Z")),
            started_at: None,
            monitoring_at: None,
            resolved_at: None,
            scheduled_for: Some(ts("2024-03-05T08:00:00Z")),
            scheduled_until: Some(ts("2024-03-05T12:00:00Z")),
            shortlink: Some(format!("https://stspg.io/{id}")),
            components: vec!["c1".into()],
            updates: vec![Update {
                id: format!("{id}-u1"),
                status: status.into(),
                body: body.into(),
                created_at: Some(ts("2024-03-01T09:00:00Z")),
                display_at: Some(ts("2024-03-01T09:00:00Z")),
                updated_at: Some(ts("2024-03-01T09:00:00Z")),
            }],
        }
    }

    fn snapshot(incidents: Vec<Incident>) -> Snapshot {
        Snapshot {
            page: Page::default(),
            fetched_at: ts("2024-03-02T00:00:00Z"),
            components: vec![crate::model::Component {
                id: "c1".into(),
                name: "Lustre /work".into(),
                status: crate::model::ComponentStatus::Operational,
                group_id: None,
                description: None,
                updated_at: None,
                unknown: None,
            }],
            groups: vec![],
            incidents,
        }
    }

    fn view_of(incidents: Vec<Incident>, now: &str) -> ClusterView {
        let opts = ViewOptions {
            upcoming: SignedDuration::from_hours(24 * 7),
            recent_resolved: SignedDuration::from_hours(24),
            stale_after: SignedDuration::from_hours(24 * 365),
            page_wide: true,
            timezone: "UTC".into(),
        };
        let selection = ["c1".to_owned()].into_iter().collect();
        view::build(
            "archer2",
            "hpc",
            &snapshot(incidents),
            &selection,
            &opts,
            ts(now),
        )
    }

    const DAY: SignedDuration = SignedDuration::from_hours(24);

    fn text(c: &Calendar) -> String {
        String::from_utf8(c.bytes.clone()).unwrap()
    }

    /// The calendar's logical lines (unfolded), without their CRLF.
    fn unfolded(c: &Calendar) -> Vec<String> {
        text(c)
            .replace("\r\n ", "")
            .split_terminator("\r\n")
            .map(str::to_owned)
            .collect()
    }

    fn property<'a>(lines: &'a [String], name: &str) -> Vec<&'a str> {
        let prefix = format!("{name}:");
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect()
    }

    #[test]
    fn text_is_escaped_so_no_value_starts_a_property() {
        assert_eq!(
            escape_text("a\\b;c,d\ne\r\u{1b}[31mf\tg"),
            "a\\\\b\\;c\\,d\\ne[31mf g"
        );
        let v = view_of(
            vec![maintenance(
                "m1",
                "scheduled",
                "Down, then up; see\nEND:VEVENT\nBEGIN:VEVENT\nSUMMARY:owned",
            )],
            "2024-03-02T00:00:00Z",
        );
        let cal = render(&v, None, DAY);
        let lines = unfolded(&cal);
        assert_eq!(property(&lines, "BEGIN"), ["VCALENDAR", "VEVENT"]);
        assert_eq!(property(&lines, "SUMMARY"), ["Upgrade m1"]);
        assert_eq!(
            property(&lines, "DESCRIPTION"),
            ["Down\\, then up\\; see\\nEND:VEVENT\\nBEGIN:VEVENT\\nSUMMARY:owned\\n\\nAffects: Lustre /work"]
        );
        // Every line break in the file is a CRLF.
        assert!(!text(&cal).replace("\r\n", "").contains(['\r', '\n']));
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_a_character() {
        let line = format!("DESCRIPTION:{}", "ÄÖü€😀 ".repeat(40));
        let folded = fold(&line);
        assert!(folded.ends_with("\r\n"));
        let physical: Vec<&str> = folded.split_terminator("\r\n").collect();
        assert!(physical.len() > 3, "{physical:?}");
        for (n, l) in physical.iter().enumerate() {
            assert!(l.len() <= 75, "line {n} has {} octets", l.len());
            assert_eq!(n > 0, l.starts_with(' '), "line {n}: {l:?}");
        }
        // Each physical line is whole UTF-8 (a `&str` would not be
        // otherwise), and unfolding gives the line back.
        assert_eq!(folded.replace("\r\n ", "").trim_end_matches("\r\n"), line);
        // Exactly 75 octets stay on one line; 76 fold.
        assert_eq!(fold(&"x".repeat(75)), format!("{}\r\n", "x".repeat(75)));
        assert_eq!(
            fold(&"x".repeat(76)),
            format!("{}\r\n x\r\n", "x".repeat(75))
        );
        // A 4-octet character that would end at octet 76 goes to the next line.
        let folded = fold(&format!("{}😀", "x".repeat(72)));
        assert_eq!(folded, format!("{}\r\n 😀\r\n", "x".repeat(72)));
    }

    #[test]
    fn an_event_carries_the_items_fields_in_utc() {
        let v = view_of(
            vec![maintenance("m1", "scheduled", "Lustre 2.15")],
            "2024-03-02T00:00:00Z",
        );
        let cal = render(&v, None, DAY);
        let lines = unfolded(&cal);
        assert_eq!(property(&lines, "X-WR-CALNAME"), ["archer2 maintenance"]);
        assert_eq!(property(&lines, "METHOD"), ["PUBLISH"]);
        assert_eq!(property(&lines, "UID"), ["hpc-m1@statusmotd"]);
        assert_eq!(property(&lines, "SEQUENCE"), ["0"]);
        assert_eq!(property(&lines, "DTSTART"), ["20240305T080000Z"]);
        assert_eq!(property(&lines, "DTEND"), ["20240305T120000Z"]);
        assert_eq!(property(&lines, "DTSTAMP"), ["20240301T090000Z"]);
        assert_eq!(property(&lines, "URL"), ["https://stspg.io/m1"]);
        assert_eq!(property(&lines, "STATUS"), ["CONFIRMED"]);
        assert_eq!(cal.newest, Some(ts("2024-03-01T09:00:00Z")));
    }

    #[test]
    fn uids_are_stable_and_never_meet() {
        assert_eq!(uid_of("hpc", "kctbh9vrtdwd"), "hpc-kctbh9vrtdwd@statusmotd");
        assert_eq!(uid_of("site-a", "b"), "site%2Da-b@statusmotd");
        assert_ne!(uid_of("site-a", "b"), uid_of("site", "a-b"));
        assert_eq!(uid_of("s", "a b,c\n"), "s-a%20b%2Cc%0A@statusmotd");
        // The same item at another time has the same UID.
        let a = render(
            &view_of(
                vec![maintenance("m1", "scheduled", "x")],
                "2024-03-02T00:00:00Z",
            ),
            None,
            DAY,
        );
        let b = render(
            &view_of(
                vec![maintenance("m1", "in_progress", "y")],
                "2024-03-05T09:00:00Z",
            ),
            Some(&a.memory),
            DAY,
        );
        assert_eq!(
            property(&unfolded(&a), "UID"),
            property(&unfolded(&b), "UID")
        );
    }

    #[test]
    fn sequence_rises_with_each_change_and_not_otherwise() {
        let now = "2024-03-02T00:00:00Z";
        let first = render(
            &view_of(vec![maintenance("m1", "scheduled", "plan A")], now),
            None,
            DAY,
        );
        let again = render(
            &view_of(vec![maintenance("m1", "scheduled", "plan A")], now),
            Some(&first.memory),
            DAY,
        );
        assert_eq!(again.bytes, first.bytes, "nothing new, same bytes");
        // A later render with nothing new: still the same bytes.
        let later = render(
            &view_of(
                vec![maintenance("m1", "scheduled", "plan A")],
                "2024-03-03T00:00:00Z",
            ),
            Some(&again.memory),
            DAY,
        );
        assert_eq!(later.bytes, first.bytes);

        let mut changed = maintenance("m1", "scheduled", "plan B");
        changed.updates[0].updated_at = Some(ts("2024-03-03T10:00:00Z"));
        let second = render(
            &view_of(vec![changed.clone()], "2024-03-03T11:00:00Z"),
            Some(&later.memory),
            DAY,
        );
        let lines = unfolded(&second);
        assert_eq!(property(&lines, "SEQUENCE"), ["1"]);
        assert_eq!(property(&lines, "DTSTAMP"), ["20240303T100000Z"]);
        let same = render(
            &view_of(vec![changed.clone()], "2024-03-03T12:00:00Z"),
            Some(&second.memory),
            DAY,
        );
        assert_eq!(property(&unfolded(&same), "SEQUENCE"), ["1"]);

        changed.scheduled_until = Some(ts("2024-03-05T14:00:00Z"));
        let third = render(
            &view_of(vec![changed], "2024-03-03T12:00:00Z"),
            Some(&same.memory),
            DAY,
        );
        assert_eq!(property(&unfolded(&third), "SEQUENCE"), ["2"]);
    }

    #[test]
    fn removed_maintenance_is_cancelled_for_the_window_then_gone() {
        let first = render(
            &view_of(
                vec![
                    maintenance("m1", "scheduled", "x"),
                    maintenance("m2", "scheduled", "y"),
                ],
                "2024-03-02T00:00:00Z",
            ),
            None,
            DAY,
        );
        // m2 is deleted upstream before it starts.
        let gone_at = "2024-03-02T06:00:00Z";
        let cancelled = render(
            &view_of(vec![maintenance("m1", "scheduled", "x")], gone_at),
            Some(&first.memory),
            DAY,
        );
        let lines = unfolded(&cancelled);
        assert_eq!(
            property(&lines, "UID"),
            ["hpc-m1@statusmotd", "hpc-m2@statusmotd"]
        );
        assert_eq!(property(&lines, "STATUS"), ["CONFIRMED", "CANCELLED"]);
        assert_eq!(property(&lines, "SEQUENCE"), ["0", "1"]);
        assert_eq!(property(&lines, "DTSTAMP")[1], "20240302T060000Z");
        assert_eq!(cancelled.newest, Some(ts(gone_at)));

        // Within `recent_resolved` it stays, unchanged.
        let within = render(
            &view_of(
                vec![maintenance("m1", "scheduled", "x")],
                "2024-03-03T06:00:00Z",
            ),
            Some(&cancelled.memory),
            DAY,
        );
        assert_eq!(within.bytes, cancelled.bytes);
        // After it, it is gone, and forgotten.
        let after = render(
            &view_of(
                vec![maintenance("m1", "scheduled", "x")],
                "2024-03-03T06:00:01Z",
            ),
            Some(&within.memory),
            DAY,
        );
        assert_eq!(property(&unfolded(&after), "UID"), ["hpc-m1@statusmotd"]);
        assert!(!after.memory.contains_key("hpc-m2@statusmotd"));
        assert_eq!(after.bytes, first_only_m1(&first));
    }

    /// The first calendar with only m1 in it.
    fn first_only_m1(first: &Calendar) -> Vec<u8> {
        let mut memory = first.memory.clone();
        memory.remove("hpc-m2@statusmotd");
        render(
            &view_of(
                vec![maintenance("m1", "scheduled", "x")],
                "2024-03-02T00:00:00Z",
            ),
            Some(&memory),
            DAY,
        )
        .bytes
    }

    #[test]
    fn maintenance_that_ran_to_its_end_is_not_cancelled() {
        let mut running = maintenance("m1", "in_progress", "x");
        running.started_at = Some(ts("2024-03-05T08:00:00Z"));
        let first = render(
            &view_of(vec![running.clone()], "2024-03-05T09:00:00Z"),
            None,
            DAY,
        );
        // Completed: shown with its real end while recently resolved.
        let mut done = running;
        done.status = "completed".into();
        done.resolved_at = Some(ts("2024-03-05T11:00:00Z"));
        done.updated_at = done.resolved_at;
        let completed = render(
            &view_of(vec![done.clone()], "2024-03-05T11:30:00Z"),
            Some(&first.memory),
            DAY,
        );
        let lines = unfolded(&completed);
        assert_eq!(property(&lines, "STATUS"), ["CONFIRMED"]);
        assert_eq!(property(&lines, "DTEND"), ["20240305T110000Z"]);
        assert_eq!(property(&lines, "SEQUENCE"), ["1"]);
        // Out of the window: it leaves the calendar, not as cancelled.
        let later = render(
            &view_of(vec![done], "2024-03-07T00:00:00Z"),
            Some(&completed.memory),
            DAY,
        );
        assert!(property(&unfolded(&later), "UID").is_empty());
        assert!(later.memory.is_empty());
    }

    #[test]
    fn incidents_are_not_in_the_calendar_and_an_empty_one_is_a_calendar() {
        let mut incident = maintenance("i1", "investigating", "x");
        incident.kind = ItemKind::Incident;
        let cal = render(&view_of(vec![incident], "2024-03-02T00:00:00Z"), None, DAY);
        let lines = unfolded(&cal);
        assert!(property(&lines, "UID").is_empty());
        assert_eq!(lines.first().map(String::as_str), Some("BEGIN:VCALENDAR"));
        assert_eq!(lines.last().map(String::as_str), Some("END:VCALENDAR"));
        assert_eq!(cal.newest, None);
    }

    #[test]
    fn a_calendar_stays_within_the_file_cap() {
        let many: Vec<Incident> = (0..400)
            .map(|n| maintenance(&format!("m{n:03}"), "scheduled", &"long text ".repeat(40)))
            .collect();
        let cal = render(&view_of(many, "2024-03-02T00:00:00Z"), None, DAY);
        assert!(cal.bytes.len() <= MAX_BYTES, "{}", cal.bytes.len());
        assert!(text(&cal).ends_with("END:VCALENDAR\r\n"));
        assert!(property(&unfolded(&cal), "UID").len() > 10);
        assert_eq!(cal.memory.len(), 400, "all remembered");
    }
}
