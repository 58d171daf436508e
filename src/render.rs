//! Rendering: one minijinja environment holding the templates, the filters
//! they may use (`localtime`, `ago`, `until`, `wrap`, `lines`, `columns`,
//! `markdown`) and a formatter that makes every printed value terminal-safe.
//!
//! Templates are plain text written by the administrator and trusted as such;
//! values are upstream data and are not. Strings in a view have already been
//! through [`crate::sanitize::sanitize`]; the formatter runs its control stage
//! again on whatever `{{ }}` prints, so a view built some other way, or a
//! filter that puts text back together, still cannot reach the terminal with
//! an escape sequence. Templates can read only other templates, by plain
//! relative name inside `templates_dir`.
//!
//! Output is capped at [`MAX_FILE_BYTES`], cut at a line boundary with a note
//! pointing at the status page.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use minijinja::value::{Kwargs, Value};
use minijinja::{context, Environment, ErrorKind, State, UndefinedBehavior};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::error::{Error, Result};
use crate::sanitize::terminal_safe;
use crate::view::{ClusterView, Item};

mod builtin;

/// A cluster file is at most this long (`DESIGN.md`, "Files written").
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// The default MOTD; see `templates/motd.txt.j2`.
pub const MOTD_TEMPLATE: &str = "motd.txt.j2";
/// The default per-item snippet; see `templates/item.txt.j2`.
pub const ITEM_TEMPLATE: &str = "item.txt.j2";

const EMBEDDED: &[(&str, &str)] = &[
    (MOTD_TEMPLATE, include_str!("../templates/motd.txt.j2")),
    (ITEM_TEMPLATE, include_str!("../templates/item.txt.j2")),
    // Not used unless an `[[outputs]]` entry names it (Open OnDemand).
    ("ood.md.j2", include_str!("../templates/ood.md.j2")),
    // The messages of `[[notify]]` routes.
    (NOTIFY_TEMPLATE, include_str!("../templates/notify.txt.j2")),
];

/// The default notification message; see `templates/notify.txt.j2`.
pub const NOTIFY_TEMPLATE: &str = "notify.txt.j2";

/// A notification message is at most this long: chat rooms and mail
/// readers want a note, not a page.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// A template file larger than this is certainly a mistake (a log, a binary).
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

const DEFAULT_TIME_FORMAT: &str = "%a %d %b %Y %H:%M %Z";

pub struct Renderer {
    env: Environment<'static>,
    names: BTreeSet<String>,
    /// Where the administrator's templates are, for error messages.
    dir: Option<PathBuf>,
    /// Names loaded from `dir` rather than embedded.
    from_dir: BTreeSet<String>,
    /// Whether the embedded MOTD and snippet templates are rendered by
    /// their Rust form (`builtin`); always, except in the tests that
    /// compare the two.
    builtin: bool,
}

/// The last item files the built-in `item.txt.j2` made, and the last
/// blocks of items the built-in `motd.txt.j2` wrote, for the next view
/// that shows the same item: a page-wide incident is in every cluster's
/// `items/` and MOTD. Besides the item, the built-in templates read only
/// the view's time zone and first source, and its first link when a file
/// is cut.
#[derive(Default)]
pub struct ItemTexts {
    files: RecentTexts,
    blocks: RecentTexts,
}

/// The last texts made of items, each with the item and what else of the
/// view it depends on.
#[derive(Default)]
struct RecentTexts {
    kept: Vec<(ItemTextKey, Item, String)>,
    /// Where the next text goes once `kept` is full.
    next: usize,
}

impl RecentTexts {
    /// The text made of `item` for a view that shows it as `view` does.
    fn find(&self, view: &ClusterView, item: &Item) -> Option<&str> {
        self.kept
            .iter()
            .find(|(key, it, _)| it.id == item.id && key.fits(view) && it == item)
            .map(|(_, _, text)| text.as_str())
    }

    fn keep(&mut self, view: &ClusterView, item: &Item, text: String) {
        let entry = (ItemTextKey::of(view), item.clone(), text);
        if self.kept.len() < ITEM_TEXTS_KEPT {
            self.kept.push(entry);
        } else {
            self.kept[self.next] = entry;
            self.next = (self.next + 1) % ITEM_TEXTS_KEPT;
        }
    }
}

/// How many texts [`ItemTexts`] keeps of each kind: enough for the items
/// a site shows everywhere, few enough to cost no memory to speak of.
const ITEM_TEXTS_KEPT: usize = 32;

/// What an item file or MOTD block depends on besides the item.
struct ItemTextKey {
    timezone: String,
    primary: Option<String>,
    link: Option<String>,
}

impl ItemTextKey {
    fn of(view: &ClusterView) -> Self {
        Self {
            timezone: view.timezone.clone(),
            primary: view.sources.first().map(|s| s.name.clone()),
            link: first_link(view).map(str::to_owned),
        }
    }

    fn fits(&self, view: &ClusterView) -> bool {
        self.timezone == view.timezone
            && self.primary.as_deref() == view.sources.first().map(|s| s.name.as_str())
            && self.link.as_deref() == first_link(view)
    }
}

/// The link a file cut short points to ([`finish`]).
fn first_link(view: &ClusterView) -> Option<&str> {
    view.sources.iter().find_map(|s| s.url.as_deref())
}

/// A view turned into a template context once, for the MOTD and all the
/// snippets of one cluster. (Making it for every snippet made rendering a
/// cluster cost its item count squared.)
///
/// The value is made when a template first needs it: the built-in MOTD and
/// snippet templates do not (see `builtin`).
pub struct ViewContext<'v> {
    view: &'v ClusterView,
    value: std::cell::OnceCell<Value>,
}

impl<'v> ViewContext<'v> {
    pub fn new(view: &'v ClusterView) -> Self {
        Self {
            view,
            value: std::cell::OnceCell::new(),
        }
    }
}

impl ViewContext<'_> {
    /// The view as a template value.
    fn value(&self) -> &Value {
        self.value.get_or_init(|| Value::from_serialize(self.view))
    }

    /// `item` as a template value: taken from the context when it is one of
    /// the view's own items (the view's lists were turned into values with
    /// the view), turned into one otherwise.
    fn item_value(&self, item: &Item) -> Value {
        let view = self.view;
        let lists: [(&str, Option<&str>, &[Item]); 4] = [
            ("incidents", None, &view.incidents),
            ("maintenance", Some("active"), &view.maintenance.active),
            ("maintenance", Some("upcoming"), &view.maintenance.upcoming),
            ("resolved", None, &view.resolved),
        ];
        let at: *const Item = item;
        for (key, sub, items) in lists {
            // Found by its address in the list, not by comparing items: a
            // snippet per item must not cost the list's length.
            if !items.as_ptr_range().contains(&at) {
                continue;
            }
            let n = (at as usize - items.as_ptr() as usize) / std::mem::size_of::<Item>();
            let mut list = self.value().get_attr(key).ok();
            if let Some(sub) = sub {
                list = list.and_then(|l| l.get_attr(sub).ok());
            }
            if let Some(value) = list
                .and_then(|l| l.get_item_by_index(n).ok())
                .filter(|v| !v.is_undefined())
            {
                return value;
            }
        }
        Value::from_serialize(item)
    }
}

impl std::fmt::Debug for ViewContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewContext")
            .field("cluster", &self.view.cluster)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("names", &self.names)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// Templates from `templates_dir` when given (a name missing there falls
    /// back to the embedded default), else the embedded defaults.
    ///
    /// Every `*.j2` file directly inside `templates_dir` is compiled here, so
    /// a syntax error is reported at startup (or reload) rather than at the
    /// first render. Other files, and files in subdirectories, can be
    /// included by relative name and are read when first used.
    pub fn new(templates_dir: Option<&Path>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        // Plain text: nothing to escape, and `foo.html` must not change that.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // A template may test `item.latest.body` when `latest` is missing.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        // A template that loops for ever (or for 10^12 rounds) fails its
        // render instead of wedging `serve`; the shipped templates over a
        // 5,000-item cluster use well under a tenth of this.
        env.set_fuel(Some(50_000_000));
        env.set_formatter(|out, _state, value| {
            if value.is_undefined() || value.is_none() {
                return Ok(());
            }
            match value.as_str() {
                Some(s) => out.write_str(&terminal_safe(s))?,
                None => out.write_str(&terminal_safe(&value.to_string()))?,
            }
            Ok(())
        });
        env.add_filter("localtime", localtime);
        env.add_filter("ago", ago);
        env.add_filter("until", until);
        env.add_filter("wrap", wrap);
        env.add_filter("lines", lines);
        env.add_filter("columns", columns);
        env.add_filter("markdown", markdown);

        let mut names = BTreeSet::new();
        for (name, source) in EMBEDDED {
            env.add_template(name, source)
                .map_err(|e| template_error("invalid built-in template", &e, None))?;
            names.insert((*name).to_owned());
        }

        let dir = templates_dir.map(Path::to_path_buf);
        let mut from_dir = BTreeSet::new();
        if let Some(dir) = &dir {
            for name in list_templates(dir)? {
                let source = read_template(dir, &name).map_err(Error::Config)?;
                env.add_template_owned(name.clone(), source)
                    .map_err(|e| template_error("invalid template", &e, Some(dir)))?;
                names.insert(name.clone());
                from_dir.insert(name);
            }
        }
        let loader_dir = dir.clone();
        env.set_loader(move |name| {
            check_name(name)
                .map_err(|msg| minijinja::Error::new(ErrorKind::InvalidOperation, msg))?;
            let Some(dir) = &loader_dir else {
                return Ok(None);
            };
            if !dir.join(name).is_file() {
                return Ok(None);
            }
            read_template(dir, name)
                .map(Some)
                .map_err(|msg| minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        });

        Ok(Self {
            env,
            names,
            dir,
            from_dir,
            builtin: true,
        })
    }

    /// Whether `template` is an embedded one that `builtin` writes.
    fn is_builtin(&self, template: &str) -> bool {
        self.builtin && !self.from_dir.contains(template)
    }

    /// Renders `template` with the view as context.
    pub fn render(&self, template: &str, view: &ClusterView) -> Result<String> {
        self.render_in(template, &ViewContext::new(view))
    }

    /// Renders `item.txt.j2` with the view's fields plus `item`. Turning the
    /// view into a context costs as much as the view is long: to render the
    /// snippets of every item of a view, make one [`ViewContext`] and use
    /// [`Renderer::render_item_in`].
    pub fn render_item(&self, view: &ClusterView, item: &Item) -> Result<String> {
        self.render_item_in(&ViewContext::new(view), item)
    }

    /// Renders `template` with a context made once.
    pub fn render_in(&self, template: &str, ctx: &ViewContext<'_>) -> Result<String> {
        if template == MOTD_TEMPLATE && self.is_builtin(MOTD_TEMPLATE) {
            if let Some(out) = builtin::motd(ctx.view, None) {
                return Ok(finish(out, ctx.view));
            }
        }
        self.render_with(template, ctx.value().clone(), ctx.view)
    }

    /// [`Renderer::render_item_in`], taking the file from `made` when the
    /// built-in template already wrote it for a view that shows the item
    /// alike, and keeping it there otherwise.
    pub fn render_item_kept(
        &self,
        ctx: &ViewContext<'_>,
        item: &Item,
        made: &mut ItemTexts,
    ) -> Result<String> {
        if !self.is_builtin(ITEM_TEMPLATE) {
            return self.render_item_in(ctx, item);
        }
        if let Some(file) = made.files.find(ctx.view, item) {
            return Ok(file.to_owned());
        }
        // The built-in template only: what the interpreted one makes of
        // an item it cannot write may read anything of the view.
        let Some(out) = builtin::item(ctx.view, item) else {
            return self.render_item_in(ctx, item);
        };
        let out = finish(out, ctx.view);
        made.files.keep(ctx.view, item, out.clone());
        Ok(out)
    }

    /// [`Renderer::render_in`], the built-in MOTD taking the blocks of
    /// items from `made` as [`Renderer::render_item_kept`] takes files.
    pub fn render_kept(
        &self,
        template: &str,
        ctx: &ViewContext<'_>,
        made: &mut ItemTexts,
    ) -> Result<String> {
        if template == MOTD_TEMPLATE && self.is_builtin(MOTD_TEMPLATE) {
            if let Some(out) = builtin::motd(ctx.view, Some(&mut made.blocks)) {
                return Ok(finish(out, ctx.view));
            }
        }
        self.render_in(template, ctx)
    }

    /// Renders `item.txt.j2` with a context made once, plus `item`: the cost
    /// is the item's, not the view's.
    pub fn render_item_in(&self, ctx: &ViewContext<'_>, item: &Item) -> Result<String> {
        if self.is_builtin(ITEM_TEMPLATE) {
            if let Some(out) = builtin::item(ctx.view, item) {
                return Ok(finish(out, ctx.view));
            }
        }
        let value = context! { item => ctx.item_value(item), ..ctx.value().clone() };
        self.render_with(ITEM_TEMPLATE, value, ctx.view)
    }

    /// Renders a notification message: `template` with `ctx` (see
    /// `crate::notify`), every printed value made terminal-safe like a
    /// MOTD's, cut at a line boundary to [`MAX_MESSAGE_BYTES`].
    pub fn render_message(&self, template: &str, ctx: Value) -> Result<String> {
        let tmpl = self.env.get_template(template).map_err(|e| {
            if e.kind() == ErrorKind::TemplateNotFound {
                Error::Config(format!(
                    "no template named `{template}` for a `[[notify]]` route\nhint: put it in `templates_dir`, or remove `template` to use the built-in `{NOTIFY_TEMPLATE}`"
                ))
            } else {
                template_error("cannot load template", &e, self.dir.as_deref())
            }
        })?;
        let mut out = tmpl
            .render(ctx)
            .map_err(|e| template_error("cannot render template", &e, self.dir.as_deref()))?;
        if out.len() > MAX_MESSAGE_BYTES {
            let keep = out.as_bytes()[..MAX_MESSAGE_BYTES - 16]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            out.truncate(keep);
            out.push_str("[truncated]\n");
        }
        Ok(out)
    }

    /// Names of the templates available (embedded and from `templates_dir`),
    /// sorted.
    pub fn template_names(&self) -> Vec<String> {
        self.names.iter().cloned().collect()
    }

    fn render_with(&self, template: &str, ctx: Value, view: &ClusterView) -> Result<String> {
        let dir = self
            .from_dir
            .contains(template)
            .then_some(())
            .and(self.dir.as_deref());
        let tmpl = self.env.get_template(template).map_err(|e| {
            if e.kind() == ErrorKind::TemplateNotFound {
                Error::Config(format!(
                    "no template named `{template}`\nhint: the templates available are {}",
                    self.names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            } else {
                template_error("cannot load template", &e, self.dir.as_deref())
            }
        })?;
        let out = tmpl
            .render(ctx)
            .map_err(|e| template_error("cannot render template", &e, dir))?;
        Ok(finish(out, view))
    }
}

/// The `*.j2` files directly inside `dir`, sorted; hidden files are skipped.
fn list_templates(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::Config(format!(
            "cannot read templates directory `{}`: {e}\nhint: create it, or remove `templates_dir` from [settings] to use the built-in templates",
            dir.display()
        ))
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("read templates directory", dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let is_template = Path::new(&name)
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("j2"));
        if name.starts_with('.') || !is_template {
            continue;
        }
        // Follows symlinks: config management often links templates in.
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Only plain relative names: no absolute paths, no `..`, no backslashes, no
/// hidden files. This is what keeps `{% include %}` inside `templates_dir`.
fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.contains(['\\', '\0'])
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "template name `{}` is not allowed: templates are named by a relative path inside `templates_dir`, without `..`",
            name.escape_debug()
        ))
    }
}

fn read_template(dir: &Path, name: &str) -> std::result::Result<String, String> {
    let path = dir.join(name);
    let meta = std::fs::metadata(&path)
        .map_err(|e| format!("cannot read template `{}`: {e}", path.display()))?;
    if meta.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "template `{}` is {} bytes, over the limit of {MAX_TEMPLATE_BYTES}",
            path.display(),
            meta.len()
        ));
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| format!("cannot read template `{}`: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("template `{}` is not UTF-8", path.display()))
}

/// A configuration error naming the template file, the line and the cause.
fn template_error(what: &str, e: &minijinja::Error, dir: Option<&Path>) -> Error {
    let name = e.name().unwrap_or("?");
    let shown = match dir {
        Some(dir) => dir.join(name).display().to_string(),
        None => name.to_owned(),
    };
    let mut msg = format!("{what} `{shown}`");
    if let Some(line) = e.line() {
        let _ = write!(msg, ", line {line}");
    }
    let _ = write!(msg, ": {}", e.kind());
    if let Some(detail) = e.detail() {
        let _ = write!(msg, ": {detail}");
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let _ = write!(msg, ": {cause}");
        source = cause.source();
    }
    if dir.is_some() {
        msg.push_str("\nhint: fix the template, or remove it to use the built-in default");
    }
    Error::Config(msg)
}

/// Final touches every rendered file gets: a text that is only whitespace is
/// empty (no news is good news), a non-empty one ends with a newline (`pam_motd`
/// concatenates files), and the size cap.
fn finish(mut out: String, view: &ClusterView) -> String {
    if out.trim().is_empty() {
        return String::new();
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    if out.len() <= MAX_FILE_BYTES {
        return out;
    }
    let url = first_link(view)
        .map(terminal_safe)
        .filter(|u| !u.is_empty() && u.len() < 1024 && !u.contains('\n'));
    let note = match url {
        Some(url) => format!("[truncated: the full status is at {url}]\n"),
        None => "[truncated: see the status page for the full status]\n".to_owned(),
    };
    let room = MAX_FILE_BYTES - note.len();
    // A newline byte is always a character boundary.
    let keep = out.as_bytes()[..room]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    out.truncate(keep);
    out.push_str(&note);
    out
}

/// The timestamp a filter was given, as the view serializes them (RFC 3339).
/// `None` for none, undefined and anything that is not a time.
fn timestamp(value: &Value) -> Option<Timestamp> {
    value.as_str()?.trim().parse().ok()
}

/// The `now` of the context: the view's render time, so that output depends
/// on `--now` and not on the clock.
fn context_now(state: &State) -> Timestamp {
    state
        .lookup("now")
        .as_ref()
        .and_then(timestamp)
        .unwrap_or_else(Timestamp::now)
}

fn context_tz(state: &State) -> std::result::Result<TimeZone, minijinja::Error> {
    let name = state.lookup("timezone");
    let name = name.as_ref().and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        return Ok(TimeZone::system());
    }
    // One look-up in the time zone database per render and zone, not per
    // time printed: a template may print a dozen times per item.
    let zones = state.get_or_set_temp_object(ZONE_TEMP, ZoneOfRender::default);
    let mut held = zones
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((held_name, tz)) = held.as_ref() {
        if held_name == name {
            return Ok(tz.clone());
        }
    }
    let tz = time_zone(name).map_err(|e| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("unknown time zone `{name}`: {e}"),
        )
    })?;
    *held = Some((name.to_owned(), tz.clone()));
    Ok(tz)
}

/// The zone named `name`, as jiff's database finds it. The database lists
/// the whole `/usr/share/zoneinfo` on first use (milliseconds, a good share
/// of a quick `render`, and both planning threads wait for it), so `UTC`
/// and a readable file of that exact name there are taken first; anything
/// else is asked of the database. A file read is used for
/// [`ZONE_FILE_KEPT`], as the database keeps what it reads, so that a
/// long-running `serve` sees an updated `tzdata`.
pub(crate) fn time_zone(name: &str) -> std::result::Result<TimeZone, jiff::Error> {
    static READ: std::sync::Mutex<Vec<(String, TimeZone, std::time::Instant)>> =
        std::sync::Mutex::new(Vec::new());
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    let mut read = READ
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    read.retain(|(_, _, at)| at.elapsed() < ZONE_FILE_KEPT);
    if let Some((_, tz, _)) = read.iter().find(|(n, _, _)| n == name) {
        return Ok(tz.clone());
    }
    let plain = !name.is_empty()
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && std::env::var_os("TZDIR").is_none();
    if plain {
        let path = Path::new("/usr/share/zoneinfo").join(name);
        if let Ok(bytes) = std::fs::read(path) {
            if let Ok(tz) = TimeZone::tzif(name, &bytes) {
                read.push((name.to_owned(), tz.clone(), std::time::Instant::now()));
                return Ok(tz);
            }
        }
    }
    TimeZone::get(name)
}

/// How long [`time_zone`] uses a zone file it read: the time jiff's
/// database keeps one (`DEFAULT_TTL` in its `tz/db/zoneinfo`).
const ZONE_FILE_KEPT: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Where [`context_tz`] keeps the zone it looked up, for the rest of the
/// render (a render's temporaries die with it).
const ZONE_TEMP: &str = "statusmotd.timezone";

/// The zone a render looked up last, by name: the name is read from the
/// context at every call, since a template may set `timezone` itself.
#[derive(Debug, Default)]
struct ZoneOfRender(std::sync::Mutex<Option<(String, TimeZone)>>);

impl minijinja::value::Object for ZoneOfRender {}

/// `localtime(value, format="%a %d %b %Y %H:%M %Z")`: a time in the zone of
/// the context's `timezone`.
// minijinja hands filter arguments over by value.
#[allow(clippy::needless_pass_by_value)]
fn localtime(
    state: &State,
    value: Value,
    format: Option<String>,
    kwargs: Kwargs,
) -> std::result::Result<String, minijinja::Error> {
    let format = kwargs.get::<Option<String>>("format")?.or(format);
    kwargs.assert_all_used()?;
    let Some(ts) = timestamp(&value) else {
        return Ok(passthrough(&value));
    };
    let zoned = ts.to_zoned(context_tz(state)?);
    let format = format.as_deref().unwrap_or(DEFAULT_TIME_FORMAT);
    jiff::fmt::strtime::format(format, &zoned).map_err(|e| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("bad time format `{format}`: {e}"),
        )
    })
}

/// `ago(value)`: "5 minutes ago", "just now".
fn ago(state: &State, value: &Value) -> String {
    let Some(ts) = timestamp(value) else {
        return passthrough(value);
    };
    let secs = context_now(state).duration_since(ts).as_secs();
    match span_words(secs) {
        Some(words) => format!("{words} ago"),
        None => "just now".to_owned(),
    }
}

/// `until(value)`: "in 2 hours", "now".
fn until(state: &State, value: &Value) -> String {
    let Some(ts) = timestamp(value) else {
        return passthrough(value);
    };
    let secs = ts.duration_since(context_now(state)).as_secs();
    match span_words(secs) {
        Some(words) => format!("in {words}"),
        None => "now".to_owned(),
    }
}

/// What a time filter gives back for a value that is not a time: nothing
/// for none or undefined, the text itself otherwise.
fn passthrough(value: &Value) -> String {
    text_of(value).into_owned()
}

/// What a text filter works on: nothing for none or undefined, the text
/// itself otherwise, borrowed when the value is a string (its display is
/// then the string itself).
fn text_of(value: &Value) -> Cow<'_, str> {
    if value.is_none() || value.is_undefined() {
        Cow::Borrowed("")
    } else if let Some(s) = value.as_str() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(value.to_string())
    }
}

/// The terminal columns `s` takes, as [`UnicodeWidthStr::width`] counts
/// them: printable ASCII, which most text is, takes one a byte, and is
/// counted without the tables.
fn text_width(s: &str) -> usize {
    if s.bytes().all(|b| matches!(b, b' '..=b'~')) {
        s.len()
    } else {
        s.width()
    }
}

/// "5 minutes", "2 hours", "3 days", rounded down; `None` under a minute
/// (and for times on the wrong side of `now`).
fn span_words(secs: i64) -> Option<String> {
    let (n, unit) = match secs {
        ..60 => return None,
        60..3600 => (secs / 60, "minute"),
        3600..86_400 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    Some(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }))
}

/// `wrap(text, width=76, indent="")`: word wrap to `width` terminal columns,
/// the indent included, keeping existing line breaks and breaking words longer
/// than a line between characters as the reader sees them (grapheme
/// clusters). Columns are display widths: a CJK character or an emoji takes
/// two, a combining mark none.
// minijinja hands filter arguments over by value.
#[allow(clippy::needless_pass_by_value)]
fn wrap(
    value: Value,
    width: Option<usize>,
    indent: Option<String>,
    kwargs: Kwargs,
) -> std::result::Result<String, minijinja::Error> {
    let width = kwargs
        .get::<Option<usize>>("width")?
        .or(width)
        .unwrap_or(76);
    let indent = kwargs
        .get::<Option<String>>("indent")?
        .or(indent)
        .unwrap_or_default();
    kwargs.assert_all_used()?;
    Ok(wrap_text(&text_of(&value), width, &indent))
}

pub(crate) fn wrap_text(text: &str, width: usize, indent: &str) -> String {
    let room = width.saturating_sub(text_width(indent)).max(1);
    let mut out = String::with_capacity(text.len() + (text.len() / room + 2) * (indent.len() + 1));
    // The line being filled, written out when the next one starts; one
    // buffer for all of them.
    let mut line = String::new();
    let mut first = true;
    let mut put = |out: &mut String, line: &mut String| {
        if !std::mem::take(&mut first) {
            out.push('\n');
        }
        // Blank lines stay empty: trailing spaces would show as garbage in
        // some terminals and break `diff`.
        if !line.is_empty() {
            out.push_str(indent);
            out.push_str(line);
            line.clear();
        }
    };
    for source_line in text.split('\n') {
        let mut len = 0;
        for word in source_line.split_whitespace() {
            let word_len = text_width(word);
            if len > 0 && len + 1 + word_len <= room {
                line.push(' ');
                line.push_str(word);
                len += 1 + word_len;
                continue;
            }
            if len > 0 {
                put(&mut out, &mut line);
                len = 0;
            }
            if word_len <= room {
                line.push_str(word);
                len = word_len;
                continue;
            }
            for grapheme in word.graphemes(true) {
                let w = text_width(grapheme);
                if len > 0 && len + w > room {
                    put(&mut out, &mut line);
                    len = 0;
                }
                line.push_str(grapheme);
                len += w;
            }
        }
        put(&mut out, &mut line);
    }
    out
}

/// `columns(text)`: how many terminal columns the text takes (its widest
/// line), for centring or padding by what the reader sees rather than by
/// `length`, which counts characters.
fn columns(value: &Value) -> usize {
    text_of(value)
        .split('\n')
        .map(text_width)
        .max()
        .unwrap_or(0)
}

/// `markdown(text)`: upstream text made literal Markdown text, for
/// `ood.md.j2`. Markdown syntax (`*`, `_`, `` ` ``, `[`, `]`, `\`, `~`, `|`,
/// markers that start a heading, a list or a quote) is escaped, `<`, `>`
/// and `&` become entities, so nothing becomes a link, an image, raw HTML
/// or a comment; and addresses are defanged ([`defang`]) so that renderers
/// which link bare URLs and e-mail addresses (the Redcarpet of Open
/// `OnDemand`, with `autolink`; GFM; linkify) leave them as text. The only
/// links in the output are the ones the template writes itself.
fn markdown(value: &Value) -> String {
    markdown_text(&text_of(value))
}

pub(crate) fn markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        escape_markdown_line(&defang(line), &mut out);
    }
    out
}

/// Escapes one line of text for Markdown; see [`markdown`].
fn escape_markdown_line(line: &str, out: &mut String) {
    let body = line.trim_start_matches(' ');
    out.push_str(&line[..line.len() - body.len()]);
    // Block markers count only at the start of a line: `# `, `- `, `+ `,
    // `=`/`-` under a line (a heading), `1. ` and `1) `.
    let digits = body.len() - body.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let mut body = body;
    if digits > 0 && body[digits..].starts_with(['.', ')']) {
        out.push_str(&body[..digits]);
        out.push('\\');
        body = &body[digits..];
    } else if body.starts_with(['#', '+', '-', '=']) {
        out.push('\\');
    }
    for c in body.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
}

/// Defangs addresses in a line, word by word, the way security notices
/// write them: `https[:]//status[.]example[.]org`, `ops[@]example[.]org`.
/// A reader still understands them; no Markdown renderer links them.
///
/// In a word that holds `://` or `@`, or starts with `www.`, every dot
/// between two letters or digits becomes `[.]`; in any other word, a dot
/// followed by two or more letters does (`example.org`, `README.md`, which
/// linkers take for domains), while `1.2.3` and `e.g.` stay as written.
fn defang(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let mut rest = line;
    while !rest.is_empty() {
        let space = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        out.push_str(&rest[..space]);
        rest = &rest[space..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        defang_word(&rest[..end], &mut out);
        rest = &rest[end..];
    }
    out
}

fn defang_word(word: &str, out: &mut String) {
    if !word.contains(['.', ':', '@']) {
        out.push_str(word);
        return;
    }
    let core = word.trim_start_matches(|c: char| !c.is_alphanumeric());
    let linky = word.contains("://")
        || word.contains('@')
        || core
            .get(..4)
            .is_some_and(|w| w.eq_ignore_ascii_case("www."));
    let chars: Vec<char> = word.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let after = &chars[i + 1..];
        match c {
            ':' if after.starts_with(&['/', '/']) => out.push_str("[:]"),
            '.' if prev.is_some_and(char::is_alphanumeric)
                && next.is_some_and(char::is_alphanumeric)
                && (linky || {
                    let label: Vec<&char> =
                        after.iter().take_while(|c| c.is_alphanumeric()).collect();
                    label.len() >= 2 && label.iter().all(|c| c.is_alphabetic())
                }) =>
            {
                out.push_str("[.]");
            }
            '@' if prev.is_some() && next.is_some_and(char::is_alphanumeric) => {
                out.push_str("[@]");
            }
            c => out.push(c),
        }
    }
}

/// `lines(text, n=4)`: the first `n` lines; when lines were cut, the last
/// one kept ends with " …".
// minijinja hands filter arguments over by value.
#[allow(clippy::needless_pass_by_value)]
fn lines(
    value: Value,
    n: Option<usize>,
    kwargs: Kwargs,
) -> std::result::Result<String, minijinja::Error> {
    let n = kwargs.get::<Option<usize>>("n")?.or(n).unwrap_or(4);
    kwargs.assert_all_used()?;
    Ok(first_lines(&text_of(&value), n))
}

pub(crate) fn first_lines(text: &str, n: usize) -> String {
    let text = text.trim_end_matches('\n');
    let all: Vec<&str> = text.split('\n').collect();
    if all.len() <= n {
        return text.to_owned();
    }
    let mut kept = all[..n].to_vec();
    // Ending on a blank line would put the marker alone on a line of its own.
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    if kept.is_empty() {
        return "…".to_owned();
    }
    let mut out = kept.join("\n");
    out.push_str(" …");
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests build their own scratch files
mod tests {
    use super::*;
    use crate::model::{Component, ComponentStatus, Incident, ItemKind, Page, Snapshot, Update};
    use crate::view::{self, Selection, ViewOptions};
    use jiff::SignedDuration;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2024-05-14T14:34:00Z";

    fn opts(tz: &str) -> ViewOptions {
        ViewOptions {
            upcoming: SignedDuration::from_hours(24 * 7),
            recent_resolved: SignedDuration::from_hours(24),
            stale_after: SignedDuration::from_mins(30),
            page_wide: true,
            timezone: tz.into(),
        }
    }

    fn component(id: &str, name: &str, status: ComponentStatus) -> Component {
        Component {
            id: id.into(),
            name: name.into(),
            status,
            group_id: None,
            description: None,
            updated_at: Some(ts("2024-05-14T13:00:00Z")),
            unknown: None,
        }
    }

    fn incident(id: &str, kind: ItemKind, status: &str, name: &str, body: &str) -> Incident {
        Incident {
            id: id.into(),
            kind,
            name: name.into(),
            status: status.into(),
            impact: "major".into(),
            created_at: Some(ts("2024-05-14T13:22:00Z")),
            updated_at: Some(ts("2024-05-14T14:22:00Z")),
            started_at: Some(ts("2024-05-14T13:22:00Z")),
            monitoring_at: None,
            resolved_at: None,
            scheduled_for: None,
            scheduled_until: None,
            shortlink: Some(format!("https://stspg.io/{id}")),
            components: vec!["work".into()],
            updates: vec![Update {
                id: format!("{id}-u1"),
                status: status.into(),
                body: body.into(),
                created_at: Some(ts("2024-05-14T14:22:00Z")),
                display_at: Some(ts("2024-05-14T14:22:00Z")),
                updated_at: Some(ts("2024-05-14T14:22:00Z")),
            }],
        }
    }

    const BODY: &str = "We have identified the cause of the slow metadata operations on \
        Lustre /work: one of the metadata servers is overloaded by a job creating millions \
        of small files. We are working with the user to reduce the load and expect \
        performance to recover within the hour. Jobs reading from /work may run slower \
        than usual until then; jobs writing large numbers of files may fail.";

    fn snapshot(incidents: Vec<Incident>) -> Snapshot {
        Snapshot {
            page: Page {
                id: "page".into(),
                name: "HPC status".into(),
                url: Some("https://status.example.org".into()),
            },
            fetched_at: ts("2024-05-14T14:30:00Z"),
            components: vec![
                component("work", "Lustre /work", ComponentStatus::PartialOutage),
                component("login", "Login nodes", ComponentStatus::Operational),
            ],
            groups: vec![],
            incidents,
        }
    }

    fn view_of(snap: &Snapshot, tz: &str) -> ClusterView {
        let sel: Selection = ["work", "login"].iter().map(|s| (*s).to_owned()).collect();
        view::build("archer2", "hpc", snap, &sel, &opts(tz), ts(NOW))
    }

    fn busy_view(tz: &str) -> ClusterView {
        let inc = incident(
            "inc1",
            ItemKind::Incident,
            "identified",
            "Lustre /work slow",
            BODY,
        );
        let mut active = incident(
            "m1",
            ItemKind::Maintenance,
            "in_progress",
            "Login node reboots",
            "Login nodes are being rebooted one at a time.",
        );
        active.scheduled_for = Some(ts("2024-05-14T13:00:00Z"));
        active.scheduled_until = Some(ts("2024-05-14T17:00:00Z"));
        let mut upcoming = incident(
            "m2",
            ItemKind::Maintenance,
            "scheduled",
            "Lustre /work upgrade",
            "The file system will be unavailable.",
        );
        upcoming.scheduled_for = Some(ts("2024-05-17T21:00:00Z"));
        upcoming.scheduled_until = Some(ts("2024-05-17T22:30:00Z"));
        let mut resolved = incident(
            "r1",
            ItemKind::Incident,
            "resolved",
            "Slurm controller restart",
            "Fixed.",
        );
        resolved.resolved_at = Some(ts("2024-05-14T12:30:00Z"));
        view_of(&snapshot(vec![inc, active, upcoming, resolved]), tz)
    }

    fn render_motd(view: &ClusterView) -> String {
        Renderer::new(None)
            .unwrap()
            .render(MOTD_TEMPLATE, view)
            .unwrap()
    }

    fn assert_fits(out: &str, cols: usize) {
        for line in out.lines() {
            assert!(
                line.width() <= cols,
                "line over {cols} columns: {line:?}\n{out}"
            );
        }
    }

    #[test]
    fn empty_view_renders_an_empty_file() {
        let mut snap = snapshot(vec![]);
        snap.components[0].status = ComponentStatus::Operational;
        let view = view_of(&snap, "UTC");
        assert!(view.is_empty());
        assert_eq!(render_motd(&view), "");
    }

    #[test]
    fn incident_shows_name_wrapped_update_and_link() {
        let view = busy_view("UTC");
        let out = render_motd(&view);
        println!("{out}");
        assert!(out.starts_with("== archer2: Partial outage ==="), "{out}");
        assert!(
            out.contains("[INCIDENT] Lustre /work slow (identified, since Tue 14 May 13:22 UTC)"),
            "{out}"
        );
        assert!(out.contains("  Affects: Lustre /work\n"), "{out}");
        assert!(out.contains("\n  We have identified the cause"), "{out}");
        assert!(
            out.contains("  Updated Tue 14 May 14:22 UTC - https://stspg.io/inc1\n"),
            "{out}"
        );
        assert!(
            out.contains("[MAINTENANCE NOW] Login node reboots (until Tue 14 May 17:00 UTC)"),
            "{out}"
        );
        assert!(
            out.contains("[UPCOMING] Lustre /work upgrade\n  Fri 17 May 21:00 - 22:30 UTC\n"),
            "{out}"
        );
        assert!(out.contains("[RESOLVED] Slurm controller restart (resolved Tue 14 May 12:30 UTC)\n  https://stspg.io/r1\n"), "{out}");
        assert!(
            out.contains("Not operational: Lustre /work (partial outage)\n"),
            "{out}"
        );
        // The body is cut to four lines, the last marked.
        let body: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.contains("We have identified"))
            .take(5)
            .collect();
        assert!(body[3].ends_with(" …"), "{out}");
        assert!(body[4].starts_with("  Updated"), "{out}");
        assert_fits(&out, 80);
        assert!(out.ends_with('\n') && !out.ends_with("\n\n"));
        assert!(!out.contains("\n\n"), "no blank lines: {out}");
    }

    #[test]
    fn long_names_are_wrapped_within_80_columns() {
        let name = "Lustre /work and /home are very slow for everybody on every login node and compute node of the system";
        let snap = snapshot(vec![incident(
            "i",
            ItemKind::Incident,
            "investigating",
            name,
            BODY,
        )]);
        let out = render_motd(&view_of(&snap, "UTC"));
        assert_fits(&out, 80);
        assert!(
            out.contains("\n    "),
            "continuation lines are indented: {out}"
        );
    }

    #[test]
    fn times_are_printed_in_the_configured_zone() {
        let out = render_motd(&busy_view("Europe/London"));
        assert!(out.contains("since Tue 14 May 14:22 BST"), "{out}");
        let out = render_motd(&busy_view("America/New_York"));
        assert!(out.contains("since Tue 14 May 09:22 EDT"), "{out}");
    }

    #[test]
    fn unknown_time_zone_is_a_config_error() {
        let err = Renderer::new(None)
            .unwrap()
            .render(MOTD_TEMPLATE, &busy_view("Mars/Olympus"))
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
    }

    #[test]
    fn stale_data_is_announced() {
        let mut view = busy_view("UTC");
        view.stale = true;
        view.data_age = "2h".into();
        let out = render_motd(&view);
        assert!(
            out.ends_with("(status data is 2h old: the status page could not be reached)\n"),
            "{out}"
        );
    }

    #[test]
    fn values_that_bypassed_the_sanitizer_are_made_safe_when_printed() {
        let mut view = busy_view("UTC");
        view.cluster = "arch\x1b]52;c;QQ==\x07er2".into();
        view.incidents[0].name = "Lustre \x1b[2J\u{202E}slow\u{2066}".into();
        view.incidents[0].latest.as_mut().unwrap().body = "body\x1b[31m red\r\n\u{9b}1mmore".into();
        let out = render_motd(&view);
        assert!(out.contains("== archer2:"), "{out}");
        assert!(out.contains("[INCIDENT] Lustre slow ("), "{out}");
        assert!(out.contains("  body red\n  more\n"), "{out}");
        for c in out.chars() {
            assert!(c == '\n' || !c.is_control(), "{c:?} in {out:?}");
            assert!(!matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'));
        }
        let item = Renderer::new(None)
            .unwrap()
            .render_item(&view, &view.incidents[0])
            .unwrap();
        assert!(
            !item.contains('\x1b') && !item.contains('\u{202E}'),
            "{item:?}"
        );
    }

    #[test]
    fn item_snippet_has_the_full_update() {
        let view = busy_view("Europe/London");
        let out = Renderer::new(None)
            .unwrap()
            .render_item(&view, &view.incidents[0])
            .unwrap();
        println!("{out}");
        assert!(out.starts_with("[INCIDENT] Lustre /work slow\n"), "{out}");
        assert!(
            out.contains("  Started: Tue 14 May 2024 14:22 BST\n"),
            "{out}"
        );
        assert!(out.contains("\n  may fail.\n\n  Updated"), "{out}");
        assert!(
            out.contains("\n  Affects: Lustre /work\n\n  We have"),
            "{out}"
        );
        assert!(!out.contains('…'), "{out}");
        assert!(
            out.contains("  Updated Tue 14 May 2024 15:22 BST\n"),
            "{out}"
        );
        assert!(out.ends_with("  https://stspg.io/inc1\n"), "{out}");
        assert_fits(&out, 80);

        let upcoming = &view.maintenance.upcoming[0];
        let out = Renderer::new(None)
            .unwrap()
            .render_item(&view, upcoming)
            .unwrap();
        assert!(
            out.starts_with("[UPCOMING] Lustre /work upgrade\n"),
            "{out}"
        );
        assert!(
            out.contains("  Window: Fri 17 May 2024 22:00 BST - Fri 17 May 2024 23:30 BST\n"),
            "{out}"
        );
    }

    #[test]
    fn template_dir_overrides_one_template_and_falls_back_for_the_other() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("motd.txt.j2"),
            "custom {{ cluster }}: {{ incidents|length }}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("ood.md.j2"),
            "# {{ cluster }}\n{% include \"part/footer.txt\" %}",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("part")).unwrap();
        std::fs::write(dir.path().join("part/footer.txt"), "footer\n").unwrap();
        let r = Renderer::new(Some(dir.path())).unwrap();
        let view = busy_view("UTC");
        assert_eq!(
            r.render(MOTD_TEMPLATE, &view).unwrap(),
            "custom archer2: 1\n"
        );
        assert_eq!(r.render("ood.md.j2", &view).unwrap(), "# archer2\nfooter\n");
        let item = r.render_item(&view, &view.incidents[0]).unwrap();
        assert!(item.starts_with("[INCIDENT] Lustre /work slow\n"), "{item}");
        assert_eq!(
            r.template_names(),
            vec!["item.txt.j2", "motd.txt.j2", "notify.txt.j2", "ood.md.j2"]
        );
    }

    #[test]
    fn includes_cannot_leave_the_template_dir() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("templates");
        std::fs::create_dir(&inner).unwrap();
        std::fs::write(dir.path().join("secret"), "SECRET").unwrap();
        for (file, name) in [
            ("a.j2", "../secret"),
            ("b.j2", "/etc/passwd"),
            ("c.j2", "sub/../../secret"),
            ("d.j2", "..\\secret"),
        ] {
            std::fs::write(inner.join(file), format!("{{% include \"{name}\" %}}")).unwrap();
        }
        let r = Renderer::new(Some(&inner)).unwrap();
        let view = busy_view("UTC");
        for file in ["a.j2", "b.j2", "c.j2", "d.j2"] {
            let err = r.render(file, &view).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{file}: {err}");
            assert!(!err.to_string().contains("SECRET"));
        }
        // And without a template dir.
        let r = Renderer::new(None).unwrap();
        assert!(r.render("../secret", &view).is_err());
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("motd.txt.j2"),
            "line one\n{% if cluster %}\nno end\n",
        )
        .unwrap();
        let err = Renderer::new(Some(dir.path())).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{msg}");
        assert!(msg.contains("motd.txt.j2"), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains("line "), "{msg}");
        assert!(msg.contains("hint:"), "{msg}");
    }

    #[test]
    fn huge_output_is_cut_at_a_line_with_a_note() {
        let mut view = busy_view("UTC");
        let item = view.incidents[0].clone();
        view.incidents = (0..400).map(|_| item.clone()).collect();
        let out = render_motd(&view);
        assert!(out.len() <= MAX_FILE_BYTES, "{}", out.len());
        assert!(out.ends_with("\n[truncated: the full status is at https://status.example.org]\n"));
        // Cut at a line boundary: every kept line is a whole line of the template.
        let kept = out.lines().rev().nth(1).unwrap();
        assert!(
            kept.starts_with("[INCIDENT]") || kept.starts_with("  "),
            "{kept:?}"
        );
    }

    #[test]
    fn the_cap_holds_without_newlines_or_url() {
        let mut view = busy_view("UTC");
        view.sources.clear();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.j2"), "{{ 'a' * 100000 }}").unwrap();
        let out = Renderer::new(Some(dir.path()))
            .unwrap()
            .render("x.j2", &view)
            .unwrap();
        assert_eq!(
            out,
            "[truncated: see the status page for the full status]\n"
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let view = busy_view("Europe/London");
        let r = Renderer::new(None).unwrap();
        let a = r.render(MOTD_TEMPLATE, &view).unwrap();
        let b = Renderer::new(None)
            .unwrap()
            .render(MOTD_TEMPLATE, &view)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, r.render(MOTD_TEMPLATE, &view).unwrap());
    }

    #[test]
    fn default_motd_does_not_change_while_only_the_clock_moves() {
        let inc = incident("i", ItemKind::Incident, "identified", "Slow", BODY);
        let snap = snapshot(vec![inc]);
        let sel: Selection = ["work"].iter().map(|s| (*s).to_owned()).collect();
        let at = |now: &str| view::build("c", "s", &snap, &sel, &opts("UTC"), ts(now));
        let early = at("2024-05-14T14:31:00Z");
        let later = at("2024-05-14T14:59:00Z");
        assert!(!later.stale);
        assert_eq!(render_motd(&early), render_motd(&later));
        let r = Renderer::new(None).unwrap();
        assert_eq!(
            r.render_item(&early, &early.incidents[0]).unwrap(),
            r.render_item(&later, &later.incidents[0]).unwrap()
        );
    }

    #[test]
    fn a_zone_read_from_its_file_is_the_zone_of_the_database() {
        let times = [
            "2024-01-15T12:00:00Z",
            "2024-07-15T12:00:00Z",
            "2031-03-30T01:30:00Z",
        ];
        for name in [
            "UTC",
            "Europe/London",
            "America/New_York",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "Etc/GMT+5",
            "utc",
            "europe/london",
            "Nowhere/Else",
            "../etc/passwd",
            "Europe//London",
            "",
        ] {
            let (ours, db) = (time_zone(name), TimeZone::get(name));
            assert_eq!(ours.is_ok(), db.is_ok(), "{name}");
            let (Ok(ours), Ok(db)) = (ours, db) else {
                continue;
            };
            for at in times {
                let show = |tz: &TimeZone| {
                    ts(at)
                        .to_zoned(tz.clone())
                        .strftime("%F %T %Z %z")
                        .to_string()
                };
                assert_eq!(show(&ours), show(&db), "{name} at {at}");
            }
            // Twice: the second comes from what was read.
            assert_eq!(time_zone(name).unwrap(), ours, "{name}");
        }
    }

    #[test]
    fn an_item_file_kept_is_given_only_to_views_that_show_the_item_alike() {
        let r = Renderer::new(None).unwrap();
        let (london, utc) = (busy_view("Europe/London"), busy_view("UTC"));
        let mut renamed = busy_view("UTC");
        renamed.sources[0].name = "other".into();
        // What the kept files and MOTD blocks give is what is made anew,
        // view after view, with more of them than are kept.
        let mut made = ItemTexts::default();
        let (mut files, mut motds) = (BTreeSet::new(), BTreeSet::new());
        for round in 0..ITEM_TEXTS_KEPT {
            for view in [&london, &utc, &renamed] {
                let mut view = view.clone();
                let lists = [
                    &mut view.incidents,
                    &mut view.maintenance.active,
                    &mut view.maintenance.upcoming,
                    &mut view.resolved,
                ];
                for item in lists.into_iter().flatten() {
                    item.id = format!("{}-{}", item.id, round % 9);
                }
                let ctx = ViewContext::new(&view);
                for item in view.items() {
                    let kept = r.render_item_kept(&ctx, item, &mut made).unwrap();
                    assert_eq!(kept, r.render_item_in(&ctx, item).unwrap(), "{}", item.id);
                    files.insert(kept);
                }
                let motd = r.render_kept(MOTD_TEMPLATE, &ctx, &mut made).unwrap();
                assert_eq!(motd, r.render_in(MOTD_TEMPLATE, &ctx).unwrap(), "{round}");
                motds.insert(motd);
            }
        }
        // The time zone and the primary source change the files and the
        // MOTDs: the loop above compared texts that differ.
        let n = london.items().count();
        assert_eq!(files.len(), 3 * n, "{files:#?}");
        assert_eq!(motds.len(), 3, "{motds:#?}");
        // An item changed under the same id is made anew.
        let ctx = ViewContext::new(&london);
        let mut changed = london.incidents[0].clone();
        let before = r.render_item_kept(&ctx, &changed, &mut made).unwrap();
        changed.status = "monitoring".into();
        let after = r.render_item_kept(&ctx, &changed, &mut made).unwrap();
        assert_ne!(before, after);
        assert!(after.contains("Status: monitoring"), "{after}");
    }

    #[test]
    fn templates_of_the_site_are_rendered_for_every_view() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            (ITEM_TEMPLATE, "{{ cluster }}: {{ item.name }}\n"),
            (MOTD_TEMPLATE, "{{ cluster }}: {{ incidents[0].name }}\n"),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let r = Renderer::new(Some(dir.path())).unwrap();
        let a = busy_view("UTC");
        let mut b = busy_view("UTC");
        b.cluster = "other".into();
        // The item and the zone are the same in both views: only a kept
        // text could make `other` read `archer2`.
        let mut made = ItemTexts::default();
        for view in [&a, &b] {
            let ctx = ViewContext::new(view);
            let want = format!("{}: Lustre /work slow\n", view.cluster);
            let file = r
                .render_item_kept(&ctx, &view.incidents[0], &mut made)
                .unwrap();
            assert_eq!(file, want);
            assert_eq!(r.render_kept(MOTD_TEMPLATE, &ctx, &mut made).unwrap(), want);
        }
    }

    #[test]
    fn a_snippet_of_the_views_own_item_is_that_of_a_copy() {
        let mut view = busy_view("Europe/London");
        view.resolved.push(view.incidents[0].clone());
        let r = Renderer::new(None).unwrap();
        let ctx = ViewContext::new(&view);
        let mut seen = 0;
        for item in view.items() {
            // A copy is not in the view's lists: it is turned into a value
            // of its own.
            let copy = item.clone();
            assert_eq!(
                r.render_item_in(&ctx, item).unwrap(),
                r.render_item_in(&ctx, &copy).unwrap(),
                "{}",
                item.id
            );
            assert_eq!(ctx.item_value(item), Value::from_serialize(item));
            seen += 1;
        }
        assert!(seen >= 4, "{seen}");
        assert!(!view.maintenance.active.is_empty() && !view.maintenance.upcoming.is_empty());
    }

    #[test]
    fn missing_template_names_the_ones_available() {
        let err = Renderer::new(None)
            .unwrap()
            .render("nope.j2", &busy_view("UTC"))
            .unwrap_err();
        assert!(err.to_string().contains("`motd.txt.j2`"), "{err}");
    }

    fn filter(expr: &str) -> String {
        let r = Renderer::new(None).unwrap();
        let ctx = context! { now => "2024-05-14T12:00:00Z", timezone => "Europe/London" };
        r.env.render_str(expr, ctx).unwrap()
    }

    #[test]
    fn ago_filter() {
        assert_eq!(filter("{{ '2024-05-14T11:59:30Z'|ago }}"), "just now");
        assert_eq!(filter("{{ '2024-05-14T12:05:00Z'|ago }}"), "just now");
        assert_eq!(filter("{{ '2024-05-14T11:59:00Z'|ago }}"), "1 minute ago");
        assert_eq!(filter("{{ '2024-05-14T11:55:00Z'|ago }}"), "5 minutes ago");
        assert_eq!(
            filter("{{ '2024-05-14T10:00:00+00:00'|ago }}"),
            "2 hours ago"
        );
        assert_eq!(filter("{{ '2024-05-11T11:00:00Z'|ago }}"), "3 days ago");
        assert_eq!(
            filter("{{ none|ago }}|{{ missing|ago }}|{{ missing.deeper|ago }}"),
            "||"
        );
    }

    #[test]
    fn until_filter() {
        assert_eq!(filter("{{ '2024-05-14T14:00:00Z'|until }}"), "in 2 hours");
        assert_eq!(filter("{{ '2024-05-17T12:30:00Z'|until }}"), "in 3 days");
        assert_eq!(filter("{{ '2024-05-14T12:01:00Z'|until }}"), "in 1 minute");
        assert_eq!(filter("{{ '2024-05-14T12:00:30Z'|until }}"), "now");
        assert_eq!(filter("{{ '2024-05-14T10:00:00Z'|until }}"), "now");
        assert_eq!(filter("{{ none|until }}"), "");
    }

    #[test]
    fn localtime_filter() {
        assert_eq!(
            filter("{{ '2024-01-14T12:00:00Z'|localtime }}"),
            "Sun 14 Jan 2024 12:00 GMT"
        );
        assert_eq!(
            filter("{{ '2024-05-14T12:00:00Z'|localtime('%H:%M %Z') }}"),
            "13:00 BST"
        );
        assert_eq!(
            filter("{{ '2024-05-14T12:00:00Z'|localtime(format='%F') }}"),
            "2024-05-14"
        );
        assert_eq!(filter("{{ none|localtime }}|{{ missing|localtime }}"), "|");
    }

    #[test]
    fn localtime_follows_the_zone_the_template_sets_and_reports_a_bad_one() {
        // The zone is looked up once per render, by name: a template that
        // sets `timezone` half-way still gets the zone it named.
        assert_eq!(
            filter(
                "{% set t = '2024-05-14T12:00:00Z' %}{{ t|localtime('%H %Z') }} \
                 {% set timezone = 'Asia/Tokyo' %}{{ t|localtime('%H %Z') }} \
                 {{ t|localtime('%H %Z') }}"
            ),
            "13 BST 21 JST 21 JST"
        );
        let r = Renderer::new(None).unwrap();
        for _ in 0..2 {
            let ctx = context! { timezone => "Mars/Olympus" };
            let err = r
                .env
                .render_str("{{ '2024-05-14T12:00:00Z'|localtime }}", ctx)
                .unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains("unknown time zone `Mars/Olympus`"), "{msg}");
        }
    }

    /// `wrap_text` as it was before it counted printable ASCII without the
    /// width tables and filled one line buffer: the general path.
    fn wrap_text_general(text: &str, width: usize, indent: &str) -> String {
        let room = width.saturating_sub(indent.width()).max(1);
        let mut lines: Vec<String> = Vec::new();
        for source_line in text.split('\n') {
            let mut line = String::new();
            let mut len = 0;
            for word in source_line.split_whitespace() {
                let word_len = word.width();
                if len > 0 && len + 1 + word_len <= room {
                    line.push(' ');
                    line.push_str(word);
                    len += 1 + word_len;
                    continue;
                }
                if len > 0 {
                    lines.push(std::mem::take(&mut line));
                    len = 0;
                }
                if word_len <= room {
                    line.push_str(word);
                    len = word_len;
                    continue;
                }
                for grapheme in word.graphemes(true) {
                    let w = grapheme.width();
                    if len > 0 && len + w > room {
                        lines.push(std::mem::take(&mut line));
                        len = 0;
                    }
                    line.push_str(grapheme);
                    len += w;
                }
            }
            lines.push(line);
        }
        lines
            .iter()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{indent}{l}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    const WIDTH_SAMPLES: &[&str] = &[
        "",
        "plain ASCII words, digits 0123 and ~!@#$%^&*()_+{}|:<>?",
        "tab\tand\u{7f}delete and \u{1}controls\r\n",
        "文件系统维护中请稍候",
        "Ｗｉｄｅ and half",
        "e\u{0301}\u{0323}e\u{0301} combining",
        "\u{0301}\u{0301}\u{0301} lone marks",
        "🔥 fire 👨\u{200D}👩\u{200D}👧 family \u{2601}\u{FE0F} cloud",
        "soft\u{00AD}hyphen zero\u{200B}width \u{3164}filler",
        "ASCII then é",
        "é then ASCII",
    ];

    #[test]
    fn text_width_is_the_width_of_the_tables() {
        for s in WIDTH_SAMPLES {
            assert_eq!(text_width(s), s.width(), "{s:?}");
            for word in s.split_whitespace() {
                assert_eq!(text_width(word), word.width(), "{word:?}");
            }
        }
        for b in 0..=0x7f_u8 {
            let s = char::from(b).to_string().repeat(3);
            assert_eq!(text_width(&s), s.width(), "{s:?}");
        }
    }

    #[test]
    fn wrap_gives_what_the_general_path_gives() {
        for text in WIDTH_SAMPLES {
            let long = format!("{text} {}", text.repeat(7));
            for t in [*text, long.as_str()] {
                for width in [0, 1, 2, 3, 5, 9, 20, 76, 78] {
                    for indent in ["", "  ", "    ", "語語", "e\u{0301}"] {
                        assert_eq!(
                            wrap_text(t, width, indent),
                            wrap_text_general(t, width, indent),
                            "{t:?} {width} {indent:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn wrap_filter() {
        assert_eq!(
            wrap_text("one two three four", 9, ""),
            "one two\nthree\nfour"
        );
        assert_eq!(wrap_text("one two three", 10, "  "), "  one two\n  three");
        assert_eq!(
            wrap_text("para one\n\npara two", 76, "  "),
            "  para one\n\n  para two"
        );
        assert_eq!(wrap_text("x abcdefghij y", 4, ""), "x\nabcd\nefgh\nij y");
        assert_eq!(wrap_text("ééééé", 2, ""), "éé\néé\né");
        assert_eq!(wrap_text("", 10, "  "), "");
        assert_eq!(wrap_text("a b", 0, "    "), "    a\n    b");
        assert_eq!(
            filter("{{ 'aaa bbb'|wrap(5, indent='> ') }}"),
            "> aaa\n> bbb"
        );
        assert_eq!(filter("{{ 'aaa bbb'|wrap(width=5) }}"), "aaa\nbbb");
        assert_eq!(filter("{{ none|wrap }}"), "");
    }

    #[test]
    fn wrap_counts_columns_not_characters() {
        // Ten CJK characters take twenty columns.
        let cjk = "文件系统维护中请稍候".repeat(4);
        let out = wrap_text(&format!("{cjk} {cjk}"), 20, "");
        for line in out.lines() {
            assert!(line.width() <= 20, "{line:?} is {} columns", line.width());
        }
        assert_eq!(out.lines().next().unwrap(), "文件系统维护中请稍候");
        let emoji = "🔥".repeat(30);
        let out = wrap_text(&emoji, 10, "  ");
        assert_eq!(out.lines().count(), 8, "{out}");
        for line in out.lines().take(7) {
            assert_eq!(line.width(), 10, "{line:?}");
        }
        // Indents are measured the same way.
        assert_eq!(wrap_text("ab cd", 6, "語語"), "語語ab\n語語cd");
    }

    #[test]
    fn wrap_breaks_long_words_between_graphemes() {
        // A letter keeps its marks; a family emoji is not torn apart.
        let word = "e\u{0301}\u{0323}".repeat(10);
        let out = wrap_text(&word, 4, "");
        for line in out.lines() {
            assert!(
                line.starts_with('e'),
                "a line starts with a lone mark: {line:?}"
            );
            assert_eq!(line.width(), 4.min(line.width()), "{line:?}");
        }
        let family = "👨\u{200D}👩\u{200D}👧";
        let out = wrap_text(&format!("x{family}{family}"), 3, "");
        assert!(out.contains(family), "{out:?}");
    }

    #[test]
    fn columns_filter() {
        assert_eq!(filter("{{ 'abc'|columns }}"), "3");
        assert_eq!(filter("{{ '語語'|columns }}"), "4");
        assert_eq!(
            filter("{{ 'e\u{0301}'|columns }}|{{ '語語'|length }}"),
            "1|2"
        );
        assert_eq!(filter("{{ none|columns }}"), "0");
    }

    #[test]
    fn markdown_filter_escapes_and_defangs() {
        assert_eq!(
            markdown_text("see https://status.example.org/x or www.example.org"),
            "see https\\[:\\]//status\\[.\\]example\\[.\\]org/x or www\\[.\\]example\\[.\\]org"
        );
        assert_eq!(
            markdown_text("mail ops@example.ac.uk"),
            "mail ops\\[@\\]example\\[.\\]ac\\[.\\]uk"
        );
        assert_eq!(
            markdown_text("![x](http://evil) <img src=x> <!-- c --> a & b"),
            "!\\[x\\](http\\[:\\]//evil) &lt;img src=x&gt; &lt;!-- c --&gt; a &amp; b"
        );
        assert_eq!(
            markdown_text("*bold* _it_ `code` \\"),
            "\\*bold\\* \\_it\\_ \\`code\\` \\\\"
        );
        // Block syntax only counts at the start of a line.
        assert_eq!(
            markdown_text("# h\n- item\n1. one\n===\n> quote\na - b # c"),
            "\\# h\n\\- item\n1\\. one\n\\===\n&gt; quote\na - b # c"
        );
        // Versions, abbreviations and plain words stay readable.
        assert_eq!(
            markdown_text("Lustre 2.15.3, e.g. /work, i.e. now."),
            "Lustre 2.15.3, e.g. /work, i.e. now."
        );
        assert_eq!(markdown_text("status.io"), "status\\[.\\]io");
        assert_eq!(filter("{{ 'a_b'|markdown }}"), "a\\_b");
    }

    #[test]
    fn lines_filter() {
        assert_eq!(first_lines("a\nb\nc", 4), "a\nb\nc");
        assert_eq!(first_lines("a\nb\nc\nd", 4), "a\nb\nc\nd");
        assert_eq!(first_lines("a\nb\nc\nd\ne", 4), "a\nb\nc\nd …");
        assert_eq!(first_lines("a\n\nb", 2), "a …");
        assert_eq!(first_lines("a\nb", 0), "…");
        assert_eq!(first_lines("a\nb\n", 2), "a\nb");
        assert_eq!(filter("{{ 'a\nb\nc'|lines(n=1) }}"), "a …");
        assert_eq!(filter("{{ missing|lines }}"), "");
    }

    pub(super) fn hostile_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let pieces = prop::sample::select(vec![
            "a",
            "word",
            " ",
            " ",
            "\n",
            "<br>",
            "<p>",
            "\r",
            "\t",
            "語",
            "文件系统",
            "👩\u{200D}💻",
            "🔥",
            "\u{2601}\u{FE0F}",
            "e\u{0301}",
            "\u{0301}",
            "\u{0301}\u{0301}\u{0301}\u{0301}",
            "\u{E0041}",
            "\u{00AD}",
            "\u{3164}",
            "\u{200B}",
            "https://",
            "x.org/",
            "a@b.org",
            "Ｗｉｄｅ",
            "—",
            "…",
            "&nbsp;",
            "&#x1F525;",
            "&lt;",
            "==",
            "-",
            "\u{202E}",
            "\x1b[2J",
        ]);
        prop::collection::vec(pieces, 0..120).prop_map(|v| v.concat())
    }

    fn hostile_view(name: &str, body: &str, extra: &str) -> ClusterView {
        let mut inc = incident("i1", ItemKind::Incident, extra, name, body);
        inc.shortlink = Some(format!("https://stspg.io/{extra}{name}"));
        let mut now = incident("m1", ItemKind::Maintenance, "in_progress", body, name);
        now.scheduled_until = Some(ts("2024-05-14T17:00:00Z"));
        now.shortlink = Some(format!("https://{}", extra.repeat(40)));
        let mut soon = incident("m2", ItemKind::Maintenance, "scheduled", extra, body);
        soon.scheduled_for = Some(ts("2024-05-15T21:00:00Z"));
        soon.scheduled_until = Some(ts("2024-05-17T22:30:00Z"));
        let mut done = incident("r1", ItemKind::Incident, "resolved", name, body);
        done.resolved_at = Some(ts("2024-05-14T12:30:00Z"));
        let mut snap = snapshot(vec![inc, now, soon, done]);
        snap.components[0].name = format!("{name}{extra}");
        snap.components[1].name = extra.to_owned();
        snap.components[1].status = ComponentStatus::MajorOutage;
        view_of(&snap.sanitized(), "UTC")
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn wrap_and_columns_give_what_the_general_path_gives(
            text in hostile_text(),
            width in 0_usize..90,
            indent in proptest::sample::select(vec!["", "  ", "    ", "語", "\u{0301}"]),
        ) {
            assert_eq!(
                wrap_text(&text, width, indent),
                wrap_text_general(&text, width, indent)
            );
            assert_eq!(text_width(&text), text.width());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn default_templates_stay_within_80_columns(
            name in hostile_text(),
            body in hostile_text(),
            extra in hostile_text(),
        ) {
            let view = hostile_view(&name, &body, &extra);
            let r = Renderer::new(None).unwrap();
            let motd = r.render(MOTD_TEMPLATE, &view).unwrap();
            assert_fits(&motd, 80);
            for item in view.items() {
                assert_fits(&r.render_item(&view, item).unwrap(), 80);
            }
        }
    }

    #[test]
    fn long_unbroken_text_stays_within_80_columns() {
        let long = "x".repeat(10_000);
        let cjk = "語".repeat(75);
        let zalgo = format!("Z{}", "\u{0301}".repeat(500));
        for (name, body, extra) in [
            (long.as_str(), long.as_str(), long.as_str()),
            (cjk.as_str(), cjk.as_str(), cjk.as_str()),
            (zalgo.as_str(), zalgo.as_str(), "identified"),
        ] {
            let view = hostile_view(name, body, extra);
            let r = Renderer::new(None).unwrap();
            let motd = r.render(MOTD_TEMPLATE, &view).unwrap();
            assert_fits(&motd, 80);
            for item in view.items() {
                assert_fits(&r.render_item(&view, item).unwrap(), 80);
            }
        }
    }

    #[test]
    fn shipped_templates_load() {
        let r = Renderer::new(None).unwrap();
        assert_eq!(
            r.template_names(),
            vec!["item.txt.j2", "motd.txt.j2", "notify.txt.j2", "ood.md.j2"]
        );
    }

    #[test]
    fn a_scheduler_maintenance_says_when_jobs_must_end_only_while_upcoming() {
        let plain = busy_view("UTC");
        let mut held = plain.clone();
        for item in held
            .maintenance
            .active
            .iter_mut()
            .chain(&mut held.maintenance.upcoming)
        {
            item.hold_jobs();
        }
        let sentence = "  Jobs whose time limit runs past Fri 17 May 21:00 wait until it ends.\n";
        let (before, after) = (render_motd(&plain), render_motd(&held));
        assert!(!before.contains("Jobs whose"), "{before}");
        assert_eq!(after.matches("Jobs whose").count(), 1, "{after}");
        // The sentence under the upcoming item's window, nothing else changed.
        assert_eq!(after.replacen(sentence, "", 1), before, "{after}");
        assert!(
            after.contains(&format!("  Fri 17 May 21:00 - 22:30 UTC\n{sentence}")),
            "{after}"
        );

        let r = Renderer::new(None).unwrap();
        let upcoming = &held.maintenance.upcoming[0];
        let snippet = r.render_item(&held, upcoming).unwrap();
        assert!(snippet.contains(sentence), "{snippet}");
        assert_eq!(
            snippet.replacen(sentence, "", 1),
            r.render_item(&plain, &plain.maintenance.upcoming[0])
                .unwrap()
        );
        let active = r.render_item(&held, &held.maintenance.active[0]).unwrap();
        assert!(!active.contains("Jobs whose"), "{active}");

        let md = r.render("ood.md.j2", &held).unwrap();
        assert!(
            md.contains(
                "- **Jobs:** those whose time limit runs past Fri 17 May 21:00 UTC wait \
                 until it ends.\n"
            ),
            "{md}"
        );
        assert!(!r.render("ood.md.j2", &plain).unwrap().contains("**Jobs:**"));
        // `GET /status` shows it on that item alone.
        let json = serde_json::to_value(&held).unwrap();
        assert_eq!(
            json["maintenance"]["upcoming"][0]["jobs_must_end_by"],
            "2024-05-17T21:00:00Z"
        );
        assert!(json["incidents"][0].get("jobs_must_end_by").is_none());
    }
}
