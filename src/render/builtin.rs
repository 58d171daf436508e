//! The built-in `motd.txt.j2` and `item.txt.j2`, written out in Rust.
//!
//! Rendering a MOTD and its snippets through minijinja's interpreter was a
//! third of a large render's work: every `~`, filter and attribute makes a
//! value. These functions write the same bytes directly from the view. They
//! run only for the embedded templates (a site's own `motd.txt.j2` or
//! `item.txt.j2` in `templates_dir` goes through minijinja) and follow the
//! templates step by step, so that a change to one shows where the other
//! must change: the tests render both over the same views and compare every
//! byte.
//!
//! As in a template, every value printed by `{{ }}` is made terminal-safe
//! where the template prints it, and the template's own text is written as
//! it is. A time zone the templates could not use either gives `None`, and
//! the caller renders through minijinja for the same error.

use std::fmt::Write as _;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::{first_lines, text_width, wrap_text, RecentTexts};
use crate::model::ItemKind;
use crate::sanitize::terminal_safe;
use crate::view::{ClusterView, ComponentView, Item};

/// `motd.txt.j2`'s `when`.
const WHEN: &str = "%a %d %b %H:%M %Z";
/// `item.txt.j2`'s `when`.
const WHEN_LONG: &str = "%a %d %b %Y %H:%M %Z";
const UNREACHABLE: &str = "the status page could not be reached";

/// The zone of the view's `timezone`, as the `localtime` filter finds it:
/// the system's when empty.
fn zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() {
        return Some(TimeZone::system());
    }
    super::time_zone(name).ok()
}

/// What one render needs besides the view: its zone, and whether a time
/// failed to format (then the template would have failed too).
struct Clock {
    tz: TimeZone,
    failed: bool,
}

impl Clock {
    /// `value|localtime(format)`: nothing for no time.
    fn local(&mut self, at: Option<Timestamp>, format: &str) -> String {
        let Some(at) = at else {
            return String::new();
        };
        let zoned = at.to_zoned(self.tz.clone());
        jiff::fmt::strtime::format(format, &zoned).unwrap_or_else(|_| {
            self.failed = true;
            String::new()
        })
    }
}

/// `{{ text }}`: `text` made terminal-safe.
fn print(out: &mut String, text: &str) {
    out.push_str(&terminal_safe(text));
}

/// `{{ text|wrap(width, indent)|trim }}`.
fn print_wrapped(out: &mut String, text: &str, width: usize, indent: &str) {
    print(out, wrap_text(text, width, indent).trim());
}

/// `{{ "  " ~ (text|wrap(76, "    ")|trim) }}`, then a newline.
fn detail_line(out: &mut String, text: &str) {
    let mut line = String::from("  ");
    line.push_str(wrap_text(text, 76, "    ").trim());
    print(out, &line);
    out.push('\n');
}

/// A line of the form `{{ (text)|wrap(78, "    ")|trim }}`, then a newline.
fn heading_line(out: &mut String, text: &str) {
    print_wrapped(out, text, 78, "    ");
    out.push('\n');
}

/// `"[" ~ source_title ~ "] "` for a source other than `primary`, else
/// nothing: the tag that says where an item comes from.
fn tag(source: &str, source_title: &str, primary: &str) -> String {
    if !source.is_empty() && source != primary {
        format!("[{source_title}] ")
    } else {
        String::new()
    }
}

/// A template's `x or y` of two optional texts: the first that is not empty.
fn truthy(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|s| !s.is_empty())
}

/// `motd.txt.j2` over `view`; `None` when its time zone or a time cannot be
/// used, where the template fails.
///
/// The block of an open item is taken from `blocks` when a view that shows
/// it alike had it written, and kept there otherwise.
pub(super) fn motd(view: &ClusterView, mut blocks: Option<&mut RecentTexts>) -> Option<String> {
    if view.is_empty() {
        return Some(String::new());
    }
    let mut clock = Clock {
        tz: zone(&view.timezone)?,
        failed: false,
    };
    let mut out = String::with_capacity(512);

    let title = format!("== {}: {} ", view.cluster, view.status_label);
    let cols = title.split('\n').map(text_width).max().unwrap_or(0);
    if cols < 76 {
        print(&mut out, &title);
        print(&mut out, &"=".repeat(78 - cols));
        out.push('\n');
    } else {
        heading_line(&mut out, &format!("{title}=="));
    }

    let primary = view.sources.first().map_or("", |s| s.name.as_str());
    let open = view
        .incidents
        .iter()
        .chain(&view.maintenance.active)
        .chain(&view.maintenance.upcoming);
    for item in open {
        let Some(blocks) = blocks.as_deref_mut() else {
            open_item(&mut out, &mut clock, item, primary);
            continue;
        };
        if let Some(block) = blocks.find(view, item) {
            out.push_str(block);
            continue;
        }
        let from = out.len();
        open_item(&mut out, &mut clock, item, primary);
        if !clock.failed {
            blocks.keep(view, item, out[from..].to_owned());
        }
    }
    for item in &view.resolved {
        let tag = tag(&item.source, &item.source_title, primary);
        let at = item.resolved_at.or(item.updated_at);
        let done = if item.kind == ItemKind::Maintenance {
            "completed"
        } else {
            "resolved"
        };
        let mut line = format!("[{}] {tag}{}", done.to_uppercase(), item.name);
        if at.is_some() {
            let _ = write!(line, " ({done} {})", clock.local(at, WHEN));
        }
        heading_line(&mut out, &line);
        if let Some(link) = truthy(item.shortlink.as_ref()) {
            detail_line(&mut out, link);
        }
    }
    if !view.components.is_empty() {
        let mut names = String::new();
        let shown = &view.components[..view.components.len().min(6)];
        for (i, c) in shown.iter().enumerate() {
            if !c.source.is_empty() && c.source != primary {
                names.push('[');
                print(&mut names, &c.source_title);
                names.push_str("] ");
            }
            print(&mut names, &c.name);
            names.push_str(" (");
            print(&mut names, &c.status_label.to_lowercase());
            names.push(')');
            if i + 1 < shown.len() {
                names.push_str(", ");
            }
        }
        if view.components.len() > 6 {
            let _ = write!(names, " and {} more", view.components.len() - 6);
        }
        heading_line(&mut out, &format!("Not operational: {names}"));
    }
    for c in view.unknown.iter().take(3) {
        heading_line(&mut out, &not_checked(c, primary));
    }
    if view.unknown.len() > 3 {
        print(
            &mut out,
            &format!("Not checked: {} more", view.unknown.len() - 3),
        );
        out.push('\n');
    }
    if view.stale && view.sources.len() > 1 {
        for s in view.sources.iter().filter(|s| s.stale) {
            let why = truthy(s.error.as_ref()).unwrap_or(UNREACHABLE);
            heading_line(
                &mut out,
                &format!("({} status data is {} old: {why})", s.title, s.data_age),
            );
        }
    } else if view.stale {
        let why = view
            .sources
            .iter()
            .find_map(|s| truthy(s.error.as_ref()))
            .unwrap_or(UNREACHABLE);
        out.push_str("(status data is ");
        print(&mut out, &view.data_age);
        out.push_str(" old: ");
        print(&mut out, why);
        out.push_str(")\n");
    }
    (!clock.failed).then_some(out)
}

/// `"Not checked: " ~ tag ~ c.name ~ " (" ~ c.unknown ~ ")"`.
fn not_checked(c: &ComponentView, primary: &str) -> String {
    // A missing value joins as `None`, as minijinja's `~` joins it.
    let why = c.unknown.as_deref().unwrap_or("None");
    format!(
        "Not checked: {}{} ({why})",
        tag(&c.source, &c.source_title, primary),
        c.name
    )
}

/// One open incident or maintenance of the MOTD: the loop body of
/// `motd.txt.j2` over `incidents + maintenance.active + maintenance.upcoming`.
fn open_item(out: &mut String, clock: &mut Clock, item: &Item, primary: &str) {
    let mut n = 4;
    let tag = tag(&item.source, &item.source_title, primary);
    if item.kind == ItemKind::Incident {
        let since = clock.local(item.started_at.or(item.created_at), WHEN);
        let mut line = format!("[INCIDENT] {tag}{} ({}", item.name, item.status);
        if !since.is_empty() {
            let _ = write!(line, ", since {since}");
        }
        line.push(')');
        heading_line(out, &line);
    } else if matches!(item.status.as_str(), "in_progress" | "verifying") {
        let end = clock.local(item.scheduled_until, WHEN);
        let mut line = format!("[MAINTENANCE NOW] {tag}{}", item.name);
        if !end.is_empty() {
            let _ = write!(line, " (until {end})");
        }
        heading_line(out, &line);
    } else {
        n = 2;
        let same_day = item.scheduled_until.is_some()
            && clock.local(item.scheduled_for, "%F") == clock.local(item.scheduled_until, "%F");
        let end = if same_day {
            clock.local(item.scheduled_until, "%H:%M %Z")
        } else {
            clock.local(item.scheduled_until, WHEN)
        };
        heading_line(out, &format!("[UPCOMING] {tag}{}", item.name));
        if item.scheduled_for.is_some() {
            let mut line = String::from("  ");
            line.push_str(&clock.local(item.scheduled_for, "%a %d %b %H:%M"));
            if !end.is_empty() {
                line.push_str(" - ");
                line.push_str(&end);
            }
            print(out, &line);
            out.push('\n');
        }
        if item.jobs_must_end_by.is_some() {
            jobs_line(out, clock, item);
        }
    }
    if !item.components.is_empty() {
        detail_line(out, &format!("Affects: {}", item.components.join(", ")));
    }
    let latest = item.latest.as_ref();
    if let Some(body) = latest.map(|l| &l.body).filter(|b| !b.is_empty()) {
        print(out, &first_lines(&wrap_text(body, 76, "  "), n));
        out.push('\n');
    }
    let changed = latest.and_then(|l| l.display_at).or(item
        .updated_at
        .filter(|_| latest.is_none_or(|l| l.display_at.is_none())));
    let link = truthy(item.shortlink.as_ref());
    if changed.is_some() || link.is_some() {
        let mut updated = String::new();
        if changed.is_some() {
            updated.push_str("Updated ");
            updated.push_str(&clock.local(changed, WHEN));
        }
        if changed.is_some() && link.is_some() {
            updated.push_str(" - ");
        }
        updated.push_str(link.unwrap_or(""));
        detail_line(out, &updated);
    }
}

/// The line that says which jobs wait for a batch scheduler's maintenance.
fn jobs_line(out: &mut String, clock: &mut Clock, item: &Item) {
    let by = clock.local(item.jobs_must_end_by, "%a %d %b %H:%M");
    detail_line(
        out,
        &format!("Jobs whose time limit runs past {by} wait until it ends."),
    );
}

/// `item.txt.j2` for `item` of `view`; `None` where the template fails.
pub(super) fn item(view: &ClusterView, item: &Item) -> Option<String> {
    let mut clock = Clock {
        tz: zone(&view.timezone)?,
        failed: false,
    };
    let mut out = String::with_capacity(512);
    let maintenance = item.kind == ItemKind::Maintenance;
    let status = item.status.as_str();
    let label = if maintenance {
        match status {
            "completed" => "COMPLETED",
            "in_progress" | "verifying" => "MAINTENANCE NOW",
            _ => "UPCOMING",
        }
    } else if matches!(status, "resolved" | "postmortem") {
        "RESOLVED"
    } else {
        "INCIDENT"
    };
    let primary = view.sources.first().map(|s| s.name.as_str());
    let tag = match primary {
        Some(primary) => tag(&item.source, &item.source_title, primary),
        None => String::new(),
    };
    heading_line(&mut out, &format!("[{label}] {tag}{}", item.name));
    detail_line(&mut out, &format!("Status: {}", status.replace('_', " ")));
    if maintenance && item.scheduled_for.is_some() {
        let mut line = String::from("  Window: ");
        line.push_str(&clock.local(item.scheduled_for, WHEN_LONG));
        if item.scheduled_until.is_some() {
            line.push_str(" - ");
            line.push_str(&clock.local(item.scheduled_until, WHEN_LONG));
        }
        print(&mut out, &line);
        out.push('\n');
    }
    if maintenance && status == "scheduled" {
        if item.jobs_must_end_by.is_some() {
            jobs_line(&mut out, &mut clock, item);
        }
        if item.created_at.is_some() {
            let at = clock.local(item.created_at, WHEN_LONG);
            print(&mut out, &format!("  Announced: {at}"));
            out.push('\n');
        }
    } else if let Some(at) = item.started_at.or(item.created_at) {
        let at = clock.local(Some(at), WHEN_LONG);
        print(&mut out, &format!("  Started: {at}"));
        out.push('\n');
    }
    if item.resolved_at.is_some() {
        let at = clock.local(item.resolved_at, WHEN_LONG);
        print(&mut out, &format!("  Ended: {at}"));
        out.push('\n');
    }
    if !item.components.is_empty() {
        detail_line(
            &mut out,
            &format!("Affects: {}", item.components.join(", ")),
        );
    }
    if let Some(latest) = item.latest.as_ref().filter(|l| !l.body.is_empty()) {
        out.push('\n');
        print(&mut out, &wrap_text(&latest.body, 76, "  "));
        out.push('\n');
        if latest.display_at.is_some() {
            out.push('\n');
            let at = clock.local(latest.display_at, WHEN_LONG);
            print(&mut out, &format!("  Updated {at}"));
            out.push('\n');
        }
    }
    if let Some(link) = truthy(item.shortlink.as_ref()) {
        detail_line(&mut out, link);
    }
    (!clock.failed).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::hostile_text;
    use super::super::{Renderer, ViewContext, ITEM_TEMPLATE, MOTD_TEMPLATE};
    use super::*;
    use crate::model::ComponentStatus;
    use crate::view::{Maintenance, SourceView, UpdateView};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    /// The embedded templates through minijinja, and through this module.
    fn renderers() -> (Renderer, Renderer) {
        let mut interpreted = Renderer::new(None).unwrap();
        interpreted.builtin = false;
        (interpreted, Renderer::new(None).unwrap())
    }

    /// A time between 2020 and 2030, or none; whole minutes, seconds or
    /// nanoseconds, as upstream sends them.
    fn time() -> impl Strategy<Value = Option<Timestamp>> {
        let at = (1_577_836_800_i64..1_893_456_000, 0_i32..3).prop_map(|(s, shape)| {
            let s = if shape == 0 { s - s % 60 } else { s };
            let nanos = if shape == 2 { 123_456_789 } else { 0 };
            Timestamp::new(s, nanos).unwrap()
        });
        prop::option::weighted(0.8, at)
    }

    /// Either a fixed word the templates test for, or hostile text.
    fn word_or_text(words: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(words).prop_map(str::to_owned),
            1 => hostile_text(),
        ]
    }

    fn source() -> impl Strategy<Value = String> {
        word_or_text(&["", "main", "other"])
    }

    fn shortlink() -> impl Strategy<Value = Option<String>> {
        prop::option::of(word_or_text(&["", "https://stspg.io/abc"]))
    }

    fn any_item() -> impl Strategy<Value = Item> {
        let kind = prop::sample::select(vec![ItemKind::Incident, ItemKind::Maintenance]);
        let status = word_or_text(&[
            "investigating",
            "identified",
            "monitoring",
            "resolved",
            "postmortem",
            "scheduled",
            "in_progress",
            "verifying",
            "completed",
        ]);
        let update =
            prop::option::of(
                (hostile_text(), time()).prop_map(|(body, display_at)| UpdateView {
                    status: "identified".into(),
                    body,
                    display_at,
                }),
            );
        let names = (
            source(),
            hostile_text(),
            hostile_text(),
            shortlink(),
            prop::collection::vec(hostile_text(), 0..4),
        );
        let times = (time(), time(), time(), time(), time(), time(), time());
        (kind, status, update, names, times).prop_map(|(kind, status, latest, names, times)| {
            let (source, source_title, name, shortlink, components) = names;
            let (created, updated, started, scheduled_for, until, resolved, jobs) = times;
            Item {
                source,
                source_title,
                id: "i1".into(),
                kind,
                name,
                status,
                impact: "major".into(),
                created_at: created,
                updated_at: updated,
                started_at: started,
                scheduled_for,
                scheduled_until: until,
                resolved_at: resolved,
                shortlink,
                components,
                updates: latest.iter().cloned().collect(),
                latest,
                file: "items/incident-i1.txt".into(),
                jobs_must_end_by: jobs,
                last_change: None,
            }
        })
    }

    fn label() -> impl Strategy<Value = ComponentStatus> {
        prop::sample::select(vec![
            ComponentStatus::Operational,
            ComponentStatus::UnderMaintenance,
            ComponentStatus::DegradedPerformance,
            ComponentStatus::PartialOutage,
            ComponentStatus::MajorOutage,
        ])
    }

    fn component() -> impl Strategy<Value = ComponentView> {
        (
            source(),
            hostile_text(),
            hostile_text(),
            label(),
            prop::option::of(hostile_text()),
        )
            .prop_map(
                |(source, source_title, name, status, unknown)| ComponentView {
                    source,
                    source_title,
                    id: "c1".into(),
                    name,
                    group: None,
                    status,
                    status_label: status.label(),
                    updated_at: None,
                    unknown,
                },
            )
    }

    fn source_view() -> impl Strategy<Value = SourceView> {
        (
            source(),
            hostile_text(),
            any::<bool>(),
            prop::option::of(word_or_text(&[
                "",
                "the status page did not answer in time",
            ])),
        )
            .prop_map(|(name, title, stale, error)| SourceView {
                name,
                title,
                page: "page".into(),
                url: None,
                fetched_at: Timestamp::UNIX_EPOCH,
                data_age: "3h".into(),
                stale,
                error,
            })
    }

    fn view() -> impl Strategy<Value = ClusterView> {
        let items = || prop::collection::vec(any_item(), 0..3);
        let lists = (items(), items(), items(), items());
        let parts = (
            hostile_text(),
            prop::sample::select(vec![
                "",
                "UTC",
                "Europe/London",
                "Asia/Kolkata",
                "America/St_Johns",
            ]),
            label(),
            prop::collection::vec(component(), 0..9),
            prop::collection::vec(component(), 0..5),
            any::<bool>(),
            word_or_text(&["12m", "3h"]),
            prop::collection::vec(source_view(), 0..3),
        );
        (lists, parts).prop_map(|(lists, parts)| {
            let (incidents, active, upcoming, resolved) = lists;
            let (cluster, timezone, status, components, unknown, stale, data_age, sources) = parts;
            ClusterView {
                cluster,
                now: Timestamp::UNIX_EPOCH,
                generated_at: Timestamp::UNIX_EPOCH,
                timezone: timezone.into(),
                status,
                status_label: status.label(),
                incidents,
                maintenance: Maintenance { active, upcoming },
                resolved,
                components,
                unknown,
                stale,
                data_age,
                data_age_seconds: 0,
                sources,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn the_rust_templates_write_what_the_embedded_templates_write(view in view()) {
            let (interpreted, builtin) = renderers();
            let ctx = ViewContext::new(&view);
            // The Rust form answered itself: no fallback to the templates.
            prop_assert!(motd(&view, None).is_some());
            let expected = interpreted.render_in(MOTD_TEMPLATE, &ctx).unwrap();
            prop_assert_eq!(builtin.render_in(MOTD_TEMPLATE, &ctx).unwrap(), expected);
            for it in view.items() {
                prop_assert!(item(&view, it).is_some());
                let expected = interpreted.render_item_in(&ctx, it).unwrap();
                prop_assert_eq!(builtin.render_item_in(&ctx, it).unwrap(), expected);
            }
        }
    }

    #[test]
    fn an_unknown_time_zone_fails_as_the_template_fails() {
        let (interpreted, builtin) = renderers();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut view = view().new_tree(&mut runner).unwrap().current();
        view.timezone = "Mars/Olympus_Mons".into();
        view.resolved = vec![any_item().new_tree(&mut runner).unwrap().current()];
        view.resolved[0].resolved_at = Some(Timestamp::UNIX_EPOCH);
        let ctx = ViewContext::new(&view);
        assert!(motd(&view, None).is_none());
        let expected = interpreted.render_in(MOTD_TEMPLATE, &ctx).unwrap_err();
        let got = builtin.render_in(MOTD_TEMPLATE, &ctx).unwrap_err();
        assert_eq!(got.to_string(), expected.to_string());
        assert!(got
            .to_string()
            .contains("unknown time zone `Mars/Olympus_Mons`"));
        let it = &view.resolved[0];
        let expected = interpreted.render_item_in(&ctx, it).unwrap_err();
        assert_eq!(
            builtin.render_item_in(&ctx, it).unwrap_err().to_string(),
            expected.to_string()
        );
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the test writes a site's templates
    fn a_site_template_of_the_same_name_is_rendered_by_minijinja() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MOTD_TEMPLATE),
            "site motd for {{ cluster }}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(ITEM_TEMPLATE),
            "site item {{ item.name }}\n",
        )
        .unwrap();
        let r = Renderer::new(Some(dir.path())).unwrap();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut view = view().new_tree(&mut runner).unwrap().current();
        view.cluster = "archer2".into();
        let mut it = any_item().new_tree(&mut runner).unwrap().current();
        it.name = "Lustre".into();
        view.incidents = vec![it];
        let ctx = ViewContext::new(&view);
        assert_eq!(
            r.render_in(MOTD_TEMPLATE, &ctx).unwrap(),
            "site motd for archer2\n"
        );
        assert_eq!(
            r.render_item_in(&ctx, &view.incidents[0]).unwrap(),
            "site item Lustre\n"
        );
    }
}
