//! `render` when nothing changed: the run a build step makes every few
//! minutes. The output is a function of (upstream answers, configuration,
//! templates, now), and `now` matters only where a view's time window
//! starts or ends. So `render` keeps a stamp in `state_dir`: a digest of
//! the answers of every source, a fingerprint of the configuration, the
//! templates and the program, the next moment a window boundary is crossed
//! (`valid_until`), and how every file it wrote was left. When the next run
//! gets the same answers (or `304 Not Modified`), before `valid_until`, with
//! the same inputs, and every file is still as it was left, nothing can
//! change: the run stops there, without parsing, planning or writing.
//!
//! Anything else takes the whole pipeline, which repairs an edited or
//! missing file as always. The shortcut is taken only where it is sure:
//! every source read is a Statuspage page (`statuspage-public`, or
//! `statuspage` through the manage API), all clusters,
//! no `--check`, `--snapshot` or `--now`, no notifications, and templates
//! that print no clock-dependent value (`now`, `generated_at`, `ago`, ...).
//!
//! `render --snapshot FILE` takes the same shortcut with the file's bytes as
//! its one answer ([`snapshot_eligible`]), `--now` or not: the same file,
//! inputs and files, at a moment no later than `valid_until` and no earlier
//! than the render that left the stamp, give the same output. Data that was
//! already stale then prints its age, which moves with the clock: such a
//! stamp holds only at that very moment.
//!
//! Each source's validators (`ETag`, `Last-Modified`, the digest) are kept
//! beside its last good snapshot in `state_dir/<source>.validators.json`,
//! with the time upstream last confirmed that snapshot: a later fallback to
//! it counts its age from then ([`confirmed_at`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;

use crate::cli::RenderArgs;
use crate::config::{Config, SourceKind};
use crate::mapping::KnownIds;
use crate::model::Snapshot;
use crate::output::FileState;
use crate::pipeline::{Digest as FileDigest, FetchFailure, Gathered, KnownFiles, LeftFile};
use crate::source::conditional::{self, Outcome, Validators};
use crate::source::{self, Endpoint, FetchOptions};
use crate::store::Store;

mod plan;

pub use plan::{state_dir_named, Early, Plan};

/// The stamp's file in `state_dir`: text, a line per field and per file
/// ([`Stamp::text`]).
const STAMP_FILE: &str = "render.stamp";

/// The first line of [`STAMP_FILE`]: its format.
const STAMP_HEADER: &str = "statusmotd render stamp 1";

/// Where the stamp was kept as JSON, before [`STAMP_FILE`]: removed when
/// the stamp is next kept.
const STAMP_FILE_BEFORE: &str = "render.stamp.json";

/// How many files [`Stamp::files_hold_in_steps`] looks at between two
/// reads of the answers: about 0.1 ms of `stat`s.
const FILES_PER_STEP: usize = 64;

/// How many turns of the runtime the shortcut's check lets the fetch take
/// first: enough to connect and send the requests (two on loopback), so
/// that the check runs while upstream prepares its answers. Requests sent
/// before the configuration is read ([`Plan::send`]) take as many.
const TURNS_BEFORE_CHECK: usize = 4;

/// How often at most the confirmation time of an unchanged source is
/// written: a fallback may count its age from up to this much too early.
const CONFIRM_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// What the last complete render was made from and left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamp {
    /// [`fingerprint`] of the configuration, templates, program and output
    /// directory.
    pub inputs: String,
    /// Source -> digest of its answers.
    pub sources: BTreeMap<String, String>,
    /// The output is right until this moment.
    pub valid_until: Timestamp,
    /// The moment of the render that left the stamp: before it, a window
    /// may be on its other side. A stamp without it never holds.
    pub from: Option<Timestamp>,
    /// The output printed the age of stale data: it holds only at `from`.
    pub only_then: bool,
    /// Every file and directory the render wrote, as it was left.
    pub files: Vec<StampedFile>,
}

/// How a file was left: any write, rename or removal changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedFile {
    /// Relative to the output directory.
    pub path: String,
    pub state: Option<FileState>,
}

impl StampedFile {
    /// One line of the stamp's files (see [`Stamp::text`]).
    fn parse(line: &[u8]) -> Option<StampedFile> {
        // `-` alone, not a negative number: no state.
        let (state, path) = match line.strip_prefix(b"- ") {
            Some(path) => (None, std::str::from_utf8(path).ok()?),
            None => state_and_path(line).map(|(state, path)| (Some(state), path))?,
        };
        (!path.is_empty()).then(|| StampedFile {
            path: path.to_owned(),
            state,
        })
    }

    /// Whether the file is still as the render left it.
    fn holds(&self, states: &States<'_>) -> bool {
        states.of(Path::new(&self.path)) == self.state
    }
}

/// A source's validators as kept beside its last good snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub validators: Validators,
    /// `fetched_at` of the snapshot they describe: validators of another
    /// snapshot are not used.
    pub snapshot_fetched_at: Timestamp,
    /// When upstream last said that snapshot is current.
    pub confirmed_at: Timestamp,
}

/// Where the answers' bodies of `source` are kept for a later `304`.
fn bodies_dir(state_dir: &Path, source: &str) -> PathBuf {
    state_dir.join(format!("{source}.answers"))
}

fn kept_path(state_dir: &Path, source: &str) -> PathBuf {
    state_dir.join(format!("{source}.validators.json"))
}

impl Kept {
    /// The validators kept for `source`, if any can be read.
    pub fn load(state_dir: &Path, source: &str) -> Option<Kept> {
        let bytes = std::fs::read(kept_path(state_dir, source)).ok()?;
        let mut kept: Kept = serde_json::from_slice(&bytes).ok()?;
        kept.validators.kept_in = Some(bodies_dir(state_dir, source));
        Some(kept)
    }

    /// Says upstream confirmed these validators of `source` at `now`, at
    /// most once a minute.
    fn confirmed(&self, state_dir: &Path, source: &str, now: Timestamp) {
        if now.duration_since(self.confirmed_at) >= CONFIRM_EVERY {
            let confirmed = Kept {
                confirmed_at: now,
                ..self.clone()
            };
            let _ = confirmed.save(state_dir, source);
        }
    }

    /// Keeps the new bodies first, then the validators naming them: a
    /// body without its validators is never used.
    fn save(&self, state_dir: &Path, source: &str) -> crate::Result<()> {
        if !self.validators.bodies.is_empty() {
            let dir = bodies_dir(state_dir, source);
            // A directory, not a file: the files go through
            // `output::replace_file`.
            #[allow(clippy::disallowed_methods)]
            std::fs::create_dir_all(&dir)
                .map_err(crate::Error::io("cannot create a state directory", &dir))?;
            crate::output::remove_dead_temps_in(&dir);
            for (url, body) in &self.validators.bodies {
                crate::output::replace_file(&Validators::body_path(&dir, url), body)?;
            }
        }
        let text = serde_json::to_vec(self)
            .map_err(|e| crate::Error::Runtime(format!("cannot serialize the validators: {e}")))?;
        crate::output::replace_file(&kept_path(state_dir, source), &text)
    }
}

/// When upstream last confirmed `snap`, the last good snapshot of
/// `source`: its `fetched_at`, or later when a later fetch found the page
/// unchanged.
pub fn confirmed_at(state_dir: &Path, source: &str, snap: &Snapshot) -> Timestamp {
    Kept::load(state_dir, source)
        .filter(|k| k.snapshot_fetched_at == snap.fetched_at)
        .map_or(snap.fetched_at, |k| k.confirmed_at.max(snap.fetched_at))
}

/// Whether `render` with `args` may take the shortcut at all (see the
/// module documentation).
pub fn eligible(config: &Config, args: &RenderArgs) -> bool {
    eligible_args(args)
        && config.notify.is_empty()
        && !config.sources.is_empty()
        && config.sources.values().all(|s| {
            matches!(
                s.kind,
                SourceKind::Public { .. } | SourceKind::Manage { .. }
            )
        })
        && config
            .settings
            .templates_dir
            .as_deref()
            .is_none_or(|dir| !templates_read_the_clock(dir))
}

/// Whether `args` allow the shortcut: all clusters, no `--check`,
/// `--snapshot` or `--now`.
pub fn eligible_args(args: &RenderArgs) -> bool {
    !args.check && args.snapshot.is_none() && args.now.is_none() && args.clusters.is_empty()
}

/// Whether `render --snapshot` with `args` may take the shortcut: as
/// [`eligible`], with the file's bytes as the one answer, whatever kinds
/// the sources are and whatever `[[notify]]` says (`--snapshot` notifies
/// no one). Templates must not print the data's age either, which
/// a snapshot's data has (`data_age`, `data_age_seconds`).
pub fn snapshot_eligible(config: &Config, args: &RenderArgs) -> bool {
    !args.check
        && args.snapshot.is_some()
        && args.clusters.is_empty()
        && config
            .settings
            .templates_dir
            .as_deref()
            .is_none_or(|dir| !templates_read_the_clock(dir) && !templates_name(dir, &AGE_NAMES))
}

/// The key of a snapshot file's digest among a stamp's sources: no source
/// can be named so.
pub const SNAPSHOT_ANSWER: &str = "--snapshot";

/// The digest a stamp keeps of a snapshot file's bytes.
pub fn snapshot_digest(bytes: &[u8]) -> BTreeMap<String, String> {
    BTreeMap::from([(
        SNAPSHOT_ANSWER.to_owned(),
        hex::encode(crate::hash::of(bytes)),
    )])
}

/// Names a template may use that change with the clock alone: printed,
/// they would change the output between two runs with the same data.
/// (`data_age` and `data_age_seconds` do not: the shortcut is taken only
/// when every source answered just now, so the age is always zero.)
const CLOCK_NAMES: [&str; 5] = ["now", "ago", "until", "generated_at", "fetched_at"];

/// The data's age, which only a fetch just now keeps at zero.
const AGE_NAMES: [&str; 2] = ["data_age", "data_age_seconds"];

/// Whether any template under `dir` names a [`CLOCK_NAMES`] value inside
/// `{{ }}` or `{% %}` (outside string literals). Unreadable counts as yes.
pub(crate) fn templates_read_the_clock(dir: &Path) -> bool {
    templates_name(dir, &CLOCK_NAMES)
}

/// Whether any template under `dir` names one of `names` inside `{{ }}` or
/// `{% %}` (outside string literals). Unreadable counts as yes.
fn templates_name(dir: &Path, names: &[&str]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    entries.into_iter().any(|entry| {
        let Ok(entry) = entry else { return true };
        let path = entry.path();
        if path.is_dir() {
            return templates_name(&path, names);
        }
        std::fs::read_to_string(&path).map_or(true, |text| names_any(&text, names))
    })
}

/// [`templates_name`] of one template's text.
fn names_any(text: &str, names: &[&str]) -> bool {
    let mut rest = text;
    while let Some(open) = rest.find(['{']) {
        let after = &rest[open + 1..];
        let close = match after.as_bytes().first() {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        let end = body.find(close).unwrap_or(body.len());
        if code_names(&body[..end], names) {
            return true;
        }
        rest = &body[end..];
    }
    false
}

fn code_names(code: &str, names: &[&str]) -> bool {
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in code.chars().chain([' ']) {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if names.contains(&word.as_str()) {
            return true;
        }
        word.clear();
    }
    false
}

/// A digest of everything but upstream and the clock that the output is
/// made of: this program, the configuration (`text`, the very bytes
/// `config` was parsed from: the file read again could already be
/// another), the templates, the time zone of the system, and where the
/// files go.
pub fn fingerprint(config: &Config, text: &str, out: &Path) -> String {
    let mut h = crate::hash::Hasher::default();
    let mut part = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(env!("CARGO_PKG_VERSION").as_bytes());
    if let Ok(exe) = std::env::current_exe() {
        part(format!("{:?}", state_of(&exe)).as_bytes());
    }
    part(text.as_bytes());
    part(out.as_os_str().as_encoded_bytes());
    part(std::env::var("TZ").unwrap_or_default().as_bytes());
    part(format!("{:?}", state_of(Path::new("/etc/localtime"))).as_bytes());
    if let Some(dir) = &config.settings.templates_dir {
        let mut files = Vec::new();
        collect_files(dir, &mut files);
        files.sort();
        for f in files {
            part(f.as_os_str().as_encoded_bytes());
            part(&std::fs::read(&f).unwrap_or_default());
        }
    }
    hex::encode(h.finalize())
}

fn collect_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, into);
        } else {
            into.push(path);
        }
    }
}

/// [`state_of`] of paths relative to one directory, opened once: each
/// path is one `fstatat` from there (the kernel walks the few components
/// left in its cache), instead of resolving the whole path from `/` or
/// opening and closing each directory on the way.
struct States<'a> {
    root: &'a Path,
    /// The directory; `None` when it cannot be opened (then every path's
    /// state is `None`, as [`state_of`] would say).
    fd: Option<OwnedFd>,
}

impl<'a> States<'a> {
    fn under(root: &'a Path) -> Self {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rfs::open(root, flags, Mode::empty()).ok();
        States { root, fd }
    }

    fn of(&self, rel: &Path) -> Option<FileState> {
        if rel.as_os_str().is_empty() || rel.is_absolute() {
            return state_of(&self.root.join(rel));
        }
        let dir = self.fd.as_ref()?;
        let st = rfs::statat(dir, rel, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        Some(crate::output::state_of_stat(&st))
    }
}

/// The first component of a relative path written with `/`.
fn top_dir(path: &str) -> &str {
    // A look at a few bytes: a search set up for long text costs more.
    let end = path.bytes().position(|b| b == b'/').unwrap_or(path.len());
    &path[..end]
}

/// Size, inode, modification and change times of `path` (not following a
/// last symlink), or `None` when it is gone.
pub(crate) fn state_of(path: &Path) -> Option<FileState> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some(crate::output::state_of_metadata(&m))
}

impl Stamp {
    fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(STAMP_FILE)
    }

    /// The stamp of the last complete render, if one can be read.
    pub fn load(state_dir: &Path) -> Option<Stamp> {
        let text = std::fs::read(Self::path(state_dir)).ok()?;
        Self::parse(&text, |_| true)
    }

    /// [`Stamp::load`], when the stamp [`Stamp::holds`] for `inputs`,
    /// `digests` and `now`. Its list of files, most of its bytes, is read
    /// only then: after a new snapshot it is not parsed at all.
    pub fn load_holding(
        state_dir: &Path,
        inputs: &str,
        digests: &BTreeMap<String, String>,
        now: Timestamp,
    ) -> Option<Stamp> {
        Self::load_if(state_dir, |head| head.holds(inputs, digests, now))
    }

    /// Whether the stamp kept in `state_dir` may hold for answers whose
    /// digests are `digests`: `false` only when none is kept there, or the
    /// one kept is of other answers. Told by the stamp's head alone.
    pub fn may_hold_in(state_dir: &Path, digests: &BTreeMap<String, String>) -> bool {
        let mut same = false;
        // Told by the head: saying no to it leaves the files unread.
        Self::load_if(state_dir, |head| {
            same = head.sources == *digests;
            false
        });
        same
    }

    /// A stamp of answers whose digests are `sources`, of no file and no
    /// moment: it never holds, and tells [`Stamp::may_hold_in`] apart.
    #[cfg(test)]
    pub(crate) fn of_answers(sources: BTreeMap<String, String>) -> Stamp {
        Stamp {
            inputs: "in".into(),
            sources,
            valid_until: "2026-03-10T14:00:00Z".parse().expect("time"),
            from: None,
            only_then: false,
            files: Vec::new(),
        }
    }

    /// [`Stamp::load`], when `wanted` says yes to the stamp without its
    /// files, before they are read.
    fn load_if(state_dir: &Path, wanted: impl FnOnce(&Stamp) -> bool) -> Option<Stamp> {
        let text = std::fs::read(Self::path(state_dir)).ok()?;
        Self::parse(&text, wanted)
    }

    /// The stamp [`Stamp::text`] wrote; its files are read only when
    /// `wanted` says yes to the rest. `None` for anything else: one
    /// spoiled line spoils the stamp.
    fn parse(text: &[u8], wanted: impl FnOnce(&Stamp) -> bool) -> Option<Stamp> {
        fn field<'t>(lines: &mut impl Iterator<Item = &'t [u8]>, name: &str) -> Option<&'t str> {
            let line = lines.next()?.strip_prefix(name.as_bytes())?;
            std::str::from_utf8(line.strip_prefix(b" ")?).ok()
        }
        let mut lines = lines_of(text);
        (lines.next()? == STAMP_HEADER.as_bytes()).then_some(())?;
        let inputs = field(&mut lines, "inputs")?.to_owned();
        let valid_until = field(&mut lines, "valid_until")?.parse().ok()?;
        let from = match field(&mut lines, "from")? {
            "-" => None,
            from => Some(from.parse().ok()?),
        };
        let only_then = match field(&mut lines, "only_then")? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let mut sources = BTreeMap::new();
        loop {
            let line = lines.next()?;
            if line == b"files" {
                break;
            }
            let source = std::str::from_utf8(line.strip_prefix(b"source ")?).ok()?;
            let (digest, name) = source.split_once(' ')?;
            sources.insert(name.to_owned(), digest.to_owned());
        }
        let mut stamp = Stamp {
            inputs,
            sources,
            valid_until,
            from,
            only_then,
            files: Vec::new(),
        };
        if !wanted(&stamp) {
            return None;
        }
        stamp.files = lines.map(StampedFile::parse).collect::<Option<_>>()?;
        Some(stamp)
    }

    /// The stamp as [`Stamp::parse`] reads it: its fields a line each, a
    /// line per source (its digest, then its name), then `files` and a
    /// line per file (its state, or `-` when it was gone, then its path).
    /// `None` when a name or a path holds a line break.
    fn text(&self) -> Option<String> {
        if self.inputs.contains('\n') {
            return None;
        }
        let mut text = String::with_capacity(256 + self.files.len() * 96);
        let from = self.from.map(|t| t.to_string());
        for line in [
            STAMP_HEADER,
            "\ninputs ",
            &self.inputs,
            "\nvalid_until ",
            &self.valid_until.to_string(),
            "\nfrom ",
            from.as_deref().unwrap_or("-"),
            "\nonly_then ",
            if self.only_then { "1" } else { "0" },
            "\n",
        ] {
            text.push_str(line);
        }
        for (name, digest) in &self.sources {
            if digest.contains([' ', '\n']) || name.contains('\n') {
                return None;
            }
            for part in ["source ", digest, " ", name, "\n"] {
                text.push_str(part);
            }
        }
        text.push_str("files\n");
        let mut numbers = itoa::Buffer::new();
        for f in &self.files {
            if f.path.is_empty() || f.path.contains('\n') {
                return None;
            }
            match &f.state {
                Some(state) => push_state_and_path(&mut text, &mut numbers, state, &f.path),
                None => {
                    for part in ["- ", &f.path, "\n"] {
                        text.push_str(part);
                    }
                }
            }
        }
        Some(text)
    }

    /// Whether the output under `out` is still what a render now would
    /// write: same inputs, the answers' `digests`, before `valid_until`,
    /// and [`Stamp::files_hold`] (checked apart, while the answers come).
    pub fn holds(&self, inputs: &str, digests: &BTreeMap<String, String>, now: Timestamp) -> bool {
        let in_time = match self.from {
            Some(from) if self.only_then => now == from,
            Some(from) => from <= now && now < self.valid_until,
            None => false,
        };
        self.inputs == inputs && &self.sources == digests && in_time
    }

    /// Whether every file under `out` is as the render left it.
    pub fn files_hold(&self, out: &Path) -> bool {
        let states = States::under(out);
        self.files.iter().all(|f| f.holds(&states))
    }

    /// [`Stamp::files_hold`] a few files at a time, letting the runtime's
    /// thread read what has come between each few: the check shares that
    /// thread with the fetch instead of a core with everything else.
    pub async fn files_hold_in_steps(&self, out: &Path) -> bool {
        let states = States::under(out);
        for step in self.files.chunks(FILES_PER_STEP) {
            if !step.iter().all(|f| f.holds(&states)) {
                return false;
            }
            tokio::task::yield_now().await;
        }
        true
    }

    /// The stamp of a render just done under `out` from `data`, whose
    /// sources answered `digests`; `left` says how every file it planned,
    /// `index.json` and the clusters' directories were left (other
    /// directories, and a path written twice, are looked at now).
    pub fn of_render<'a>(
        config: &Config,
        inputs: String,
        digests: BTreeMap<String, String>,
        data: &Gathered,
        left: &'a [LeftFile],
        out: &Path,
        now: Timestamp,
    ) -> Stamp {
        // Paths as text: sorting and looking up 3,000 `Path`s compares
        // them component by component.
        // Borrowed: only the paths of the stamp's list are copied.
        let text = |p: &'a Path| p.to_string_lossy();
        // Every file left, and every directory holding one, each as written
        // (`Some`) or to be looked at (`None`). A cluster's files come one
        // after the other, so its directory is named once per run of them.
        let mut entries: Vec<(Cow<'a, str>, Option<Option<FileState>>)> =
            Vec::with_capacity(left.len() * 2);
        let mut last_parent: Option<Cow<'a, str>> = None;
        for f in left {
            let path = text(&f.rel);
            // Its directory, taken from the text: the paths are relative,
            // made of names joined by `/`.
            let parent = match &path {
                Cow::Borrowed(p) => p.rsplit_once('/').map(|(dir, _)| Cow::Borrowed(dir)),
                Cow::Owned(p) => p
                    .rsplit_once('/')
                    .map(|(dir, _)| Cow::Owned(dir.to_owned())),
            };
            entries.push((path, Some(f.state)));
            if parent.is_some() && parent != last_parent {
                entries.extend(parent.clone().map(|p| (p, None)));
                last_parent = parent;
            }
        }
        // Each cluster's few entries sorted among themselves first: the
        // whole is then long runs in order (the clusters come in name
        // order), which the sort merges instead of comparing its way
        // through thousands of paths.
        for cluster in entries.chunk_by_mut(|a, b| top_dir(&a.0) == top_dir(&b.0)) {
            cluster.sort_by(|a, b| a.0.cmp(&b.0));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let states = States::under(out);
        let mut files: Vec<StampedFile> = Vec::with_capacity(entries.len());
        let mut entries = entries.into_iter().peekable();
        while let Some((path, mut once)) = entries.next() {
            let mut writes = usize::from(once.is_some());
            while let Some((_, also)) = entries.next_if(|(p, _)| *p == path) {
                writes += usize::from(also.is_some());
                once = once.or(also);
            }
            // Written once: as the write left it. Written twice (two
            // clusters' outputs on one path), or a directory: which write
            // came last, or how it is now, is for the disk to say.
            let state = match once {
                Some(state) if writes == 1 => state,
                _ => states.of(Path::new(path.as_ref())),
            };
            files.push(StampedFile {
                path: path.into_owned(),
                state,
            });
        }
        let stale_after = config.settings.stale_after;
        Stamp {
            inputs,
            sources: digests,
            valid_until: valid_until(config, data, now),
            from: Some(now),
            only_then: data
                .sources
                .values()
                .any(|s| now.duration_since(s.snapshot.fetched_at) > stale_after),
            files,
        }
    }

    /// Keeps the stamp; a failure only costs the next run the shortcut.
    pub fn save(&self, state_dir: &Path) -> crate::Result<()> {
        let text = self.text().ok_or_else(|| {
            crate::Error::Runtime("cannot keep the stamp: a path holds a line break".into())
        })?;
        // A stamp lost or older after a crash describes files that are no
        // longer as it says: it costs one full render, never a wrong one.
        keep_in_state(state_dir, STAMP_FILE, text.as_bytes())?;
        // Never read again: a stamp of the format before that cannot be
        // removed costs a few bytes, not the new one.
        let _ = crate::output::remove_cache_file(&state_dir.join(STAMP_FILE_BEFORE));
        Ok(())
    }

    /// Forgets the stamp: the next run renders in full.
    pub fn forget(state_dir: &Path) {
        let path = Self::path(state_dir);
        if path.exists() {
            let _ = crate::output::replace_cache_file(&path, b"");
        }
    }
}

/// Keeps `bytes` as `state_dir/name`, a file that only saves work
/// ([`crate::output::replace_cache_file`]), creating the state directory
/// if this is the first thing kept there.
fn keep_in_state(state_dir: &Path, name: &str, bytes: &[u8]) -> crate::Result<()> {
    // The state directory itself, not a file.
    #[allow(clippy::disallowed_methods)]
    std::fs::create_dir_all(state_dir)
        .map_err(crate::Error::io("cannot create state directory", state_dir))?;
    crate::output::replace_cache_file(&state_dir.join(name), bytes)
}

/// Where [`keep_files`] keeps how the last render left its files.
const FILES_FILE: &str = "render.files";

/// The first line of [`FILES_FILE`]: its format.
const FILES_HEADER: &str = "statusmotd render files 1";

/// Where the table of files was kept as JSON, before [`FILES_FILE`]:
/// removed when the table is next kept.
const FILES_FILE_BEFORE: &str = "render.files.json";

/// How the last render into `out` left its files ([`KnownFiles`]); empty
/// when it cannot be read whole (one spoiled entry spoils the table). Each
/// entry vouches for a file only while the file is in the state it
/// records, so an old or lost table costs reads, never a wrong decision.
///
/// The table is text, a line per file (see [`keep_files`]): thousands of
/// entries are read here on every render that plans, split and parsed
/// in place rather than through a general parser.
pub fn known_files(state_dir: &Path, out: &Path) -> KnownFiles {
    let Ok(text) = std::fs::read(state_dir.join(FILES_FILE)) else {
        return KnownFiles::new();
    };
    let parse = || -> Option<KnownFiles> {
        let mut lines = lines_of(&text);
        (lines.next()? == FILES_HEADER.as_bytes()).then_some(())?;
        let kept_out = std::str::from_utf8(lines.next()?.strip_prefix(b"out ")?).ok()?;
        (Some(Path::new(kept_out)) == std::path::absolute(out).ok().as_deref()).then_some(())?;
        let mut known = KnownFiles::with_capacity(text.len() / 80);
        for line in lines {
            let (entry, rel) = file_entry(line)?;
            known.insert(rel.to_owned(), entry);
        }
        Some(known)
    };
    parse().unwrap_or_default()
}

/// The lines of `text`, each without its `\n`; a last one without a `\n`
/// is a line too.
fn lines_of(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        Some(line)
    })
}

/// One line of the table of files: the digest in hex, the six numbers of
/// the state, then the path, which runs to the end of the line.
fn file_entry(line: &[u8]) -> Option<((FileState, FileDigest), &str)> {
    let mut digest: FileDigest = [0; 16];
    hex::decode_to_slice(line.get(..32)?, &mut digest).ok()?;
    let (state, rel) = state_and_path(line.get(32..)?.strip_prefix(b" ")?)?;
    (!rel.is_empty()).then_some(((state, digest), rel))
}

/// The end of a line of the stamp or of the table of files: a file's
/// state (six numbers), then its path, which runs to the end of the line.
fn push_state_and_path(
    text: &mut String,
    numbers: &mut itoa::Buffer,
    state: &FileState,
    path: &str,
) {
    for (at, n) in state.iter().enumerate() {
        if at > 0 {
            text.push(' ');
        }
        text.push_str(numbers.format(*n));
    }
    for part in [" ", path, "\n"] {
        text.push_str(part);
    }
}

/// What [`push_state_and_path`] wrote, read back.
fn state_and_path(line: &[u8]) -> Option<(FileState, &str)> {
    let mut state: FileState = [0; 6];
    let mut rest = line;
    for (at, n) in state.iter_mut().enumerate() {
        let digits = if at == 0 {
            rest
        } else {
            rest.strip_prefix(b" ")?
        };
        (*n, rest) = number(digits)?;
    }
    let path = std::str::from_utf8(rest.strip_prefix(b" ")?).ok()?;
    Some((state, path))
}

/// The decimal number `text` starts with, and what follows it.
fn number(text: &[u8]) -> Option<(i64, &[u8])> {
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    let end = digits
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let mut n: i64 = 0;
    for &c in &digits[..end] {
        let digit = i64::from(c - b'0');
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(digit)?
        } else {
            n.checked_add(digit)?
        };
    }
    Some((n, &digits[end..]))
}

/// Keeps how a render into `out` left its files, for [`known_files`]. As
/// with the stamp, a failure or a crash only costs the next render reads;
/// so does a path that cannot be a line of the table (one not UTF-8, or
/// holding a line break), which is left out.
pub fn keep_files(state_dir: &Path, out: &Path, left: &[LeftFile]) {
    let Some(out) = std::path::absolute(out).ok() else {
        return;
    };
    let Some(out) = out.to_str().filter(|out| !out.contains('\n')) else {
        return;
    };
    let mut text = String::with_capacity(64 + left.len() * 96);
    for line in [FILES_HEADER, "\nout ", out, "\n"] {
        text.push_str(line);
    }
    let mut numbers = itoa::Buffer::new();
    for f in left {
        let (Some(state), Some(rel)) = (f.state, f.rel.to_str()) else {
            continue;
        };
        if rel.is_empty() || rel.contains('\n') {
            continue;
        }
        let mut hex = [0u8; 32];
        if hex::encode_to_slice(f.digest, &mut hex).is_err() {
            continue;
        }
        text.push_str(std::str::from_utf8(&hex).unwrap_or_default());
        text.push(' ');
        push_state_and_path(&mut text, &mut numbers, &state, rel);
    }
    if keep_in_state(state_dir, FILES_FILE, text.as_bytes()).is_ok() {
        let _ = crate::output::remove_cache_file(&state_dir.join(FILES_FILE_BEFORE));
    }
}

/// The first moment after `now` at which a view of `data` could change
/// with the clock alone: where an item enters or leaves a window
/// (`upcoming`, `recent_resolved`, as [`crate::view::boundaries`] says,
/// the same moments `serve` renders again at), where data turns stale,
/// where a calendar forgets a cancelled event. At most a day away.
pub fn valid_until(config: &Config, data: &Gathered, now: Timestamp) -> Timestamp {
    let s = &config.settings;
    let day = now
        .checked_add(SignedDuration::from_hours(24))
        .unwrap_or(Timestamp::MAX);
    let items = data.sources.values().flat_map(|source| {
        let snap = &source.snapshot;
        snap.incidents
            .iter()
            .flat_map(|i| crate::view::boundaries(i, s.upcoming, s.recent_resolved))
            .chain(crate::view::turns_stale(snap.fetched_at, s.stale_after))
    });
    // The calendar's own windows: every time of an event, shifted by every
    // window either way (conservative: it may end the shortcut early).
    let windows = [
        SignedDuration::ZERO,
        s.upcoming,
        s.recent_resolved,
        s.stale_after,
    ];
    let calendar = data
        .calendar
        .clusters
        .values()
        .flat_map(|cluster| cluster.values())
        .flat_map(|r| {
            [
                Some(r.event.start),
                r.event.end,
                r.gone_at,
                Some(r.event.stamp),
            ]
        })
        .flatten()
        .flat_map(|t| windows.map(|w| [t.checked_add(w).ok(), t.checked_sub(w).ok()]))
        .flatten()
        .flatten();
    items
        .chain(calendar)
        .filter(|t| *t > now)
        .fold(day, Timestamp::min)
}

/// Keeps `validators` for the last good snapshot of `source`, fetched at
/// `fetched_at`, confirmed at `now`.
pub fn keep_validators(
    state_dir: &Path,
    source: &str,
    validators: Validators,
    fetched_at: Timestamp,
    now: Timestamp,
) -> crate::Result<()> {
    Kept {
        validators,
        snapshot_fetched_at: fetched_at,
        confirmed_at: now.max(fetched_at),
    }
    .save(state_dir, source)
}

/// What the sources of a render answered, fetched conditionally.
#[derive(Debug, Default)]
pub struct Answers {
    results: BTreeMap<String, Result<Outcome, FetchFailure>>,
    kept: BTreeMap<String, Kept>,
}

/// Sends on `rt` the requests of the sources of `config` in `names`, each
/// asking only for what changed since its kept validators. Secrets are
/// revealed first, so a missing one is a configuration error before any
/// request is made.
pub fn send_for(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    names: &[String],
    now: Timestamp,
) -> crate::Result<Pending> {
    let requests = endpoints(config, names.iter().cloned())?;
    let opts = crate::pipeline::fetch_options(config, now);
    Ok(send(rt, requests, &opts, &config.settings.state_dir))
}

/// Where each of the sources `names` of `config` is asked, by name; a name
/// the configuration lacks is left out.
fn endpoints(
    config: &Config,
    names: impl IntoIterator<Item = String>,
) -> crate::Result<Vec<(String, Endpoint)>> {
    names
        .into_iter()
        .filter_map(|name| Some((config.sources.get(&name)?, name)))
        .map(|(src, name)| Ok((name, Endpoint::of(src)?)))
        .collect()
}

/// The requests of a fetch, on their way: each source's answers as they
/// come.
pub struct Pending {
    kept: BTreeMap<String, Kept>,
    tasks: tokio::task::JoinSet<(String, Result<Outcome, FetchFailure>)>,
}

/// Starts a request of each of `requests` (source, where) on `rt`, asking
/// only for what changed since the validators kept in `state_dir`. The
/// HTTPS client with the system's CA store is built only when some page or
/// proxy is reached over https.
fn send(
    rt: &tokio::runtime::Runtime,
    requests: Vec<(String, Endpoint)>,
    opts: &FetchOptions,
    state_dir: &Path,
) -> Pending {
    let _in = rt.enter();
    let client = client_for(requests.iter().map(|(_, endpoint)| endpoint));
    let mut kept_all = BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (name, endpoint) in requests {
        let kept = Kept::load(state_dir, &name);
        if let Some(k) = &kept {
            kept_all.insert(name.clone(), k.clone());
        }
        let (client, opts) = (client.clone(), opts.clone());
        tasks.spawn(async move {
            let prior = kept.map(|k| k.validators);
            let result = conditional::fetch(&client, &endpoint, &opts, prior.as_ref())
                .await
                .map_err(|e| FetchFailure::of(&e, false));
            (name, result)
        });
    }
    Pending {
        kept: kept_all,
        tasks,
    }
}

impl Pending {
    /// Every answer, once the last has come.
    pub async fn answers(mut self) -> crate::Result<Answers> {
        let mut answers = Answers {
            results: BTreeMap::new(),
            kept: self.kept,
        };
        while let Some(joined) = self.tasks.join_next().await {
            let (name, result) =
                joined.map_err(|e| crate::Error::Runtime(format!("fetch task failed: {e}")))?;
            answers.results.insert(name, result);
        }
        Ok(answers)
    }
}

fn client_for<'a>(mut endpoints: impl Iterator<Item = &'a Endpoint>) -> reqwest::Client {
    let https_proxy = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|p| p.trim_start().starts_with("https")));
    let https = https_proxy
        || endpoints.any(|e| match e {
            Endpoint::Public { url } => !url.trim_start().starts_with("http://"),
            _ => true,
        });
    if https {
        source::client()
    } else {
        source::client_with(|b| b.tls_built_in_root_certs(false))
    }
}

/// What the shortcut compares the answers with, made while they come: the
/// [`fingerprint`] of the inputs now, and the stamp of the last complete
/// render into `out` when the inputs are those it was made from and every
/// file is as it left them.
///
/// Runs beside the fetch ([`Pending::answers`]) on the runtime's one
/// thread, after the fetch has had a few turns to send its requests:
/// upstream then prepares its answers while the files are looked at, and
/// the bytes that come are read between every few files.
pub async fn check(config: &Config, text: &str, out: &Path) -> (String, Option<Stamp>) {
    for _ in 0..TURNS_BEFORE_CHECK {
        tokio::task::yield_now().await;
    }
    let inputs = fingerprint(config, text, out);
    let stamp = match Stamp::load_if(&config.settings.state_dir, |head| head.inputs == inputs) {
        Some(stamp) if stamp.files_hold_in_steps(out).await => Some(stamp),
        _ => None,
    };
    (inputs, stamp)
}

/// Each of `sources`' kept validators say upstream confirmed them at `now`
/// (at most once a minute).
pub fn confirm(state_dir: &Path, sources: &[String], now: Timestamp) {
    for name in sources {
        if let Some(kept) = Kept::load(state_dir, name) {
            kept.confirmed(state_dir, name, now);
        }
    }
}

impl Answers {
    /// After the shortcut: [`confirm`] with the validators read before the
    /// fetch, which the shortcut found unchanged.
    pub fn confirm(&self, state_dir: &Path, now: Timestamp) {
        for (name, kept) in &self.kept {
            kept.confirmed(state_dir, name, now);
        }
    }

    /// Source -> digest of its answers, when every source answered.
    pub fn digests(&self) -> Option<BTreeMap<String, String>> {
        self.results
            .iter()
            .map(|(name, r)| match r {
                Ok(Outcome::Unchanged(v) | Outcome::Changed(_, v)) if !v.digest.is_empty() => {
                    Some((name.clone(), v.digest.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// The answers handed to the snapshot store, as `pipeline::gather`
    /// does: "unchanged" keeps the last good snapshot, fetched now; when
    /// there is none (or not the one the validators describe) the source
    /// is fetched again in full. Returns the validators to keep once the
    /// files are written.
    pub async fn gather(
        self,
        config: &Config,
        now: Timestamp,
    ) -> crate::Result<(crate::pipeline::Gather, BTreeMap<String, Validators>)> {
        let state_dir = &config.settings.state_dir;
        let mut store = Store::new(state_dir);
        let mut events = Vec::new();
        let mut keep = BTreeMap::new();
        let mut again = Vec::new();
        let names: Vec<String> = self.results.keys().cloned().collect();
        for (name, result) in self.results {
            let result = match result {
                Ok(Outcome::Unchanged(_)) => {
                    let read = self.kept.get(&name).map(|k| k.snapshot_fetched_at);
                    if !read.is_some_and(|at| store.confirm(&name, at, now)) {
                        again.push(name);
                    }
                    continue;
                }
                Ok(Outcome::Changed(fetched, v)) => {
                    keep.insert(name.clone(), v);
                    Ok((fetched.snapshot, fetched.skipped))
                }
                Err(f) => Err(f),
            };
            events.extend(store.accept(&name, result, now));
        }
        if !again.is_empty() {
            let opts = crate::pipeline::fetch_options(config, now);
            let again = endpoints(config, again)?;
            let client = client_for(again.iter().map(|(_, endpoint)| endpoint));
            for (name, endpoint) in again {
                let result = match conditional::fetch(&client, &endpoint, &opts, None).await {
                    Ok(Outcome::Changed(fetched, v)) => {
                        keep.insert(name.clone(), v);
                        Ok((fetched.snapshot, fetched.skipped))
                    }
                    Ok(Outcome::Unchanged(_)) => Err(FetchFailure::new(
                        format!("source `{name}`: the page answered \"not modified\" to a plain request"),
                        FetchFailure::GENERIC_NOTE,
                    )),
                    Err(e) => Err(FetchFailure::of(&e, false)),
                };
                events.extend(store.accept(&name, result, now));
            }
        }
        let mut data = store.gathered(&names, KnownIds::load(state_dir));
        data.calendar = std::sync::Arc::new(crate::calendar::Memory::load(state_dir));
        Ok((
            crate::pipeline::Gather {
                data,
                store,
                events,
            },
            keep,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of files comes back as it was kept: each file with a
    /// state, its digest; one without a state is not vouched for; a table
    /// of another output directory, or one that cannot be read, is empty.
    #[test]
    // The test spoils the table by hand.
    #[allow(clippy::disallowed_methods)]
    fn the_table_of_files_comes_back_as_kept_and_only_for_its_directory() {
        let state_dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let left = [
            LeftFile {
                rel: PathBuf::from("alpha/motd"),
                state: Some([901, 7, 1_773_144_000, 0, 1_796_083_830, 724_190_041]),
                digest: [0xab; 16],
            },
            LeftFile {
                rel: PathBuf::from("alpha/items"),
                state: Some([4096, 8, 1, 2, 3, 4]),
                digest: *b"0123456789abcdef",
            },
            LeftFile {
                rel: PathBuf::from("beta/motd"),
                state: None,
                digest: [1; 16],
            },
        ];
        keep_files(state_dir.path(), out.path(), &left);
        let known = known_files(state_dir.path(), out.path());
        assert_eq!(known.len(), 2, "{known:?}");
        assert_eq!(known["alpha/motd"], (left[0].state.unwrap(), [0xab; 16]));
        assert_eq!(
            known["alpha/items"],
            (left[1].state.unwrap(), *b"0123456789abcdef")
        );
        let text = std::fs::read_to_string(state_dir.path().join(FILES_FILE)).unwrap();
        assert!(
            text.contains(
                "\nabababababababababababababababab 901 7 1773144000 0 1796083830 724190041 alpha/motd\n"
            ),
            "{text}"
        );
        let elsewhere = tempfile::tempdir().unwrap();
        assert!(known_files(state_dir.path(), elsewhere.path()).is_empty());
        // One spoiled entry, or a table cut short, spoils the table.
        let spoil = |text: &str| {
            std::fs::write(state_dir.path().join(FILES_FILE), text).unwrap();
            known_files(state_dir.path(), out.path())
        };
        assert!(spoil(&text.replace("abab", "zz")).is_empty());
        assert!(spoil(&text.replace(" 1773144000 ", " 17x3144000 ")).is_empty());
        assert!(spoil(&text.replace(" alpha/motd\n", "\n")).is_empty());
        assert!(spoil(&text.replace("files 1\n", "files 2\n")).is_empty());
        let cut = text.rfind(" alpha/items").unwrap();
        assert!(spoil(&text[..cut]).is_empty());
        assert_eq!(spoil(&text).len(), 2);
    }

    /// Every field and file of a stamp comes back as kept: a state or none,
    /// a path with a space, a source's name with one; the stamp of the JSON
    /// format before is removed, and one that cannot be kept is not.
    #[test]
    #[allow(clippy::disallowed_methods)] // a scratch state directory
    fn a_stamp_comes_back_as_kept() {
        let state_dir = tempfile::tempdir().expect("temp dir");
        let before = state_dir.path().join(STAMP_FILE_BEFORE);
        std::fs::write(&before, "{}").expect("write");
        let mut kept = stamp(None, true);
        kept.sources.insert("a page".into(), "00ff".into());
        kept.files = vec![
            StampedFile {
                path: "a b/motd".into(),
                state: Some([-1, 2, i64::MAX, 0, 5, 999_999_999]),
            },
            StampedFile {
                path: "a b".into(),
                state: None,
            },
        ];
        kept.save(state_dir.path()).expect("save");
        assert_eq!(Stamp::load(state_dir.path()), Some(kept.clone()));
        assert!(!before.exists());
        kept.from = Some("2026-03-10T12:00:00.5Z".parse().expect("time"));
        kept.save(state_dir.path()).expect("save");
        assert_eq!(Stamp::load(state_dir.path()), Some(kept.clone()));
        // A render with no window ahead keeps the end of time.
        for (from, until) in [
            (Timestamp::MIN, Timestamp::MAX),
            (Timestamp::MAX, Timestamp::MIN),
        ] {
            let mut far = kept.clone();
            far.from = Some(from);
            far.valid_until = until;
            far.save(state_dir.path()).expect("save");
            assert_eq!(Stamp::load(state_dir.path()), Some(far));
        }
        Stamp::forget(state_dir.path());
        assert_eq!(Stamp::load(state_dir.path()), None);
        let mut broken = kept.clone();
        broken.files[1].path = "a\nb".into();
        assert!(broken.save(state_dir.path()).is_err());
        assert_eq!(Stamp::load(state_dir.path()), None);
    }

    #[test]
    fn numbers_of_the_table_read_back_whole_or_not_at_all() {
        for n in [0, 7, -1, 1_796_083_830, i64::MAX, i64::MIN] {
            let text = format!("{n} x");
            assert_eq!(number(text.as_bytes()), Some((n, &b" x"[..])), "{n}");
        }
        for text in [
            "",
            "-",
            "x1",
            " 1",
            "9223372036854775808",
            "-9223372036854775809",
        ] {
            assert_eq!(number(text.as_bytes()), None, "{text:?}");
        }
    }

    /// A path with a space keeps it; one that cannot be a line of the table
    /// is left out, and the table of the format before is removed.
    #[test]
    #[allow(clippy::disallowed_methods)] // a scratch state directory
    fn the_table_of_files_keeps_any_path_it_can_read_back() {
        let state_dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let file = |rel: &str| LeftFile {
            rel: PathBuf::from(rel),
            state: Some([1, 2, 3, 4, 5, 6]),
            digest: [7; 16],
        };
        let before = state_dir.path().join(FILES_FILE_BEFORE);
        std::fs::write(&before, "{}").unwrap();
        keep_files(
            state_dir.path(),
            out.path(),
            &[file("a b/motd"), file("x\ny/motd"), file("c/motd")],
        );
        let known = known_files(state_dir.path(), out.path());
        let mut paths: Vec<&str> = known.keys().map(String::as_str).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["a b/motd", "c/motd"]);
        assert!(!before.exists());
    }

    #[test]
    fn templates_that_print_the_clock_are_told_apart() {
        for t in [
            "{{ now }}",
            "{{ item.created_at|ago }}",
            "{% if generated_at %}at {{ generated_at }}{% endif %}",
            "{{ x|until }}",
            "{{ sources[0].fetched_at|localtime }}",
        ] {
            assert!(names_any(t, &CLOCK_NAMES), "{t}");
        }
        for t in [
            "until now, {{ cluster }} ago",
            "{{ item.scheduled_until|localtime(\"%H:%M\") }}",
            "{{ \"(until \" ~ end ~ \")\" }}",
            "{# now #}{{ status_label }}",
            "{{ data_age }} old",
        ] {
            assert!(!names_any(t, &CLOCK_NAMES), "{t}");
        }
        assert!(names_any("{{ data_age }} old", &AGE_NAMES));
        assert!(names_any("{% if s.data_age_seconds > 60 %}", &AGE_NAMES));
    }

    #[test]
    fn the_default_templates_do_not_print_the_clock() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for name in ["motd.txt.j2", "item.txt.j2", "ood.md.j2"] {
            let text = std::fs::read_to_string(dir.join(name)).expect("template");
            assert!(!names_any(&text, &CLOCK_NAMES), "{name}");
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the test lays out an output directory
    fn the_stamp_keeps_each_write_and_looks_at_directories_and_paths_written_twice() {
        let out = tempfile::tempdir().unwrap();
        for rel in ["a/items/x.txt", "a/motd", "b/motd", "index.json"] {
            let path = out.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, rel).unwrap();
        }
        let on_disk = |rel: &str| state_of(&out.path().join(rel));
        let written = |n: i64| Some([n; 6]);
        let left = |rel: &str, state| LeftFile {
            rel: rel.into(),
            state,
            digest: [0; 16],
        };
        let config = Config::parse(
            "[sources.s]\nkind = \"statuspage-public\"\nurl = \"https://status.example.org\"\n[clusters.a]\ncomponents = [\"x\"]\n",
            Path::new("/srv/motd/mapping.toml"),
        )
        .unwrap();
        let now = "2026-03-10T12:00:00Z".parse().unwrap();
        let stamp = Stamp::of_render(
            &config,
            "in".into(),
            BTreeMap::new(),
            &Gathered::default(),
            &[
                left("a/motd", written(1)),
                left("a/items/x.txt", written(2)),
                left("b/motd", None),
                // Two clusters' outputs on one path.
                left("a/motd", written(3)),
                left("index.json", written(4)),
            ],
            out.path(),
            now,
        );
        let files: Vec<(&str, Option<FileState>)> = stamp
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.state))
            .collect();
        assert_eq!(
            files,
            [
                ("a", on_disk("a")),
                ("a/items", on_disk("a/items")),
                ("a/items/x.txt", written(2)),
                ("a/motd", on_disk("a/motd")),
                ("b", on_disk("b")),
                ("b/motd", None),
                ("index.json", written(4)),
            ]
        );
        assert!(files
            .iter()
            .all(|(_, s)| *s != written(1) && *s != written(3)));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the test lays out an output directory
    fn the_check_in_steps_sees_a_change_in_any_step_as_the_whole_check_does() {
        let out = tempfile::tempdir().unwrap();
        let count = FILES_PER_STEP * 3 + 5;
        let rels: Vec<String> = (0..count).map(|n| format!("c{n:04}/motd")).collect();
        for rel in &rels {
            let path = out.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, rel).unwrap();
        }
        let stamp = Stamp {
            files: rels
                .iter()
                .map(|rel| StampedFile {
                    path: rel.clone(),
                    state: state_of(&out.path().join(rel)),
                })
                .collect(),
            ..stamp(None, false)
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let in_steps = |stamp: &Stamp| runtime.block_on(stamp.files_hold_in_steps(out.path()));
        assert!(in_steps(&stamp) && stamp.files_hold(out.path()));
        // The last file, in the last step, edited; then one in the middle
        // removed.
        std::fs::write(out.path().join(&rels[count - 1]), "edited by hand").unwrap();
        assert!(!in_steps(&stamp) && !stamp.files_hold(out.path()));
        let mut stamp = stamp;
        stamp.files[count - 1].state = state_of(&out.path().join(&rels[count - 1]));
        assert!(in_steps(&stamp));
        std::fs::remove_file(out.path().join(&rels[FILES_PER_STEP + 1])).unwrap();
        assert!(!in_steps(&stamp) && !stamp.files_hold(out.path()));
    }

    fn stamp(from: Option<Timestamp>, only_then: bool) -> Stamp {
        Stamp {
            from,
            only_then,
            ..Stamp::of_answers(snapshot_digest(b"{}"))
        }
    }

    #[test]
    fn a_stamp_holds_from_its_render_until_the_next_boundary_only() {
        let t = |s: &str| -> Timestamp { s.parse().expect("time") };
        let digests = snapshot_digest(b"{}");
        let s = stamp(Some(t("2026-03-10T12:00:00Z")), false);
        assert!(s.holds("in", &digests, t("2026-03-10T12:00:00Z")));
        assert!(s.holds("in", &digests, t("2026-03-10T13:59:59Z")));
        // Past the next boundary, or before the render (a window may lie
        // between): the whole pipeline.
        assert!(!s.holds("in", &digests, t("2026-03-10T14:00:00Z")));
        assert!(!s.holds("in", &digests, t("2026-03-10T11:59:59Z")));
        assert!(!s.holds("other", &digests, t("2026-03-10T12:30:00Z")));
        assert!(!s.holds("in", &snapshot_digest(b"[]"), t("2026-03-10T12:30:00Z")));
        // Stale data printed its age: only that moment.
        let s = stamp(Some(t("2026-03-10T12:00:00Z")), true);
        assert!(s.holds("in", &digests, t("2026-03-10T12:00:00Z")));
        assert!(!s.holds("in", &digests, t("2026-03-10T12:00:01Z")));
        // A stamp of an older version, without its moment, never holds.
        assert!(!stamp(None, false).holds("in", &digests, t("2026-03-10T12:30:00Z")));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a scratch state directory
    fn a_stamp_that_does_not_hold_is_not_loaded_and_one_that_does_is_whole() {
        let t = |s: &str| -> Timestamp { s.parse().expect("time") };
        let state_dir = tempfile::tempdir().expect("temp dir");
        let digests = snapshot_digest(b"{}");
        let mut kept = stamp(Some(t("2026-03-10T12:00:00Z")), false);
        kept.files = vec![StampedFile {
            path: "a/motd".into(),
            state: state_of(state_dir.path()),
        }];
        kept.save(state_dir.path()).expect("save");
        let load = |inputs: &str, digests: &BTreeMap<String, String>, now: &str| {
            Stamp::load_holding(state_dir.path(), inputs, digests, t(now))
        };
        assert_eq!(
            load("in", &digests, "2026-03-10T12:30:00Z"),
            Some(kept.clone())
        );
        assert_eq!(load("other", &digests, "2026-03-10T12:30:00Z"), None);
        assert_eq!(
            load("in", &snapshot_digest(b"[]"), "2026-03-10T12:30:00Z"),
            None
        );
        assert_eq!(load("in", &digests, "2026-03-10T14:00:00Z"), None);
        // Stale data printed its age: that moment only, as `holds` says.
        let mut once = kept.clone();
        once.only_then = true;
        once.save(state_dir.path()).expect("save");
        assert_eq!(load("in", &digests, "2026-03-10T12:00:00Z"), Some(once));
        assert_eq!(load("in", &digests, "2026-03-10T12:00:01Z"), None);
        // A spoiled list of files spoils the stamp, whatever its head says.
        let text = kept.text().expect("text");
        let spoiled = text.replace(" a/motd", " ");
        assert_ne!(spoiled, text);
        std::fs::write(Stamp::path(state_dir.path()), spoiled).expect("write");
        assert_eq!(load("in", &digests, "2026-03-10T12:30:00Z"), None);
        std::fs::write(Stamp::path(state_dir.path()), "{}").expect("write");
        assert_eq!(load("in", &digests, "2026-03-10T12:30:00Z"), None);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a scratch configuration and state
    fn a_stamp_may_hold_for_its_own_answers_only() {
        let state_dir = tempfile::tempdir().expect("temp dir");
        let state_dir = state_dir.path();
        let ours = snapshot_digest(b"{}");
        let theirs = snapshot_digest(b"[]");
        // No stamp: none can hold, the parse need not wait.
        assert!(!Stamp::may_hold_in(state_dir, &ours));
        stamp(None, false).save(state_dir).expect("save");
        assert!(Stamp::may_hold_in(state_dir, &ours));
        assert!(!Stamp::may_hold_in(state_dir, &theirs));
        // Whatever else the head says: the rest is for the whole check.
        let mut other = stamp(None, true);
        other.inputs = "other".into();
        other.save(state_dir).expect("save");
        assert!(Stamp::may_hold_in(state_dir, &ours));
        // A stamp that is not one holds for nothing.
        std::fs::write(Stamp::path(state_dir), "{}").expect("write");
        assert!(!Stamp::may_hold_in(state_dir, &ours));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a scratch tree
    fn states_read_through_open_directories_are_those_of_the_paths() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/items")).expect("dirs");
        for p in ["index.json", "a/motd", "a/items/x.txt", "a/items/y.txt"] {
            std::fs::write(root.join(p), p).expect("write");
        }
        std::os::unix::fs::symlink("motd", root.join("a/link")).expect("link");
        // A directory replaced by a link: followed on the way, as a path is.
        std::os::unix::fs::symlink("a/items", root.join("c")).expect("link");
        let states = States::under(root);
        for p in [
            "a",
            "a/items",
            "a/items/x.txt",
            "a/items/y.txt",
            "a/link",
            "a/motd",
            "a/gone",
            "b/gone",
            "c",
            "c/x.txt",
            "index.json",
            "a/../index.json",
        ] {
            assert_eq!(states.of(Path::new(p)), state_of(&root.join(p)), "{p}");
        }
        assert!(states.of(Path::new("a/gone")).is_none());
        assert!(states.of(Path::new("a/motd")).is_some());
        // A file changed in place: its state is not the one seen before.
        let before = states.of(Path::new("a/items/x.txt"));
        std::fs::write(root.join("a/items/x.txt"), "changed").expect("write");
        assert_ne!(States::under(root).of(Path::new("a/items/x.txt")), before);
        // An output directory that is gone: nothing is as it was left.
        let gone = root.join("nowhere");
        assert!(States::under(&gone).of(Path::new("a/motd")).is_none());
    }
}
