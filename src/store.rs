//! The snapshot store: the last good snapshot of every source, held in memory
//! and persisted in `state_dir`, and the one owner of "fetch; on failure or a
//! suspicious answer keep the last good snapshot; persist good ones; say
//! why". `render`, `show`, `gate` (through `pipeline::gather`) and `serve`
//! (through the coordinator's renderer task) both feed their fetch results
//! to [`Store::accept`].
//!
//! The store prints nothing: it returns what happened as [`Event`]s (items
//! skipped, fallbacks, sources without data, snapshots that could not be
//! kept), and the CLI and the server decide how to say it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

use jiff::Timestamp;

use crate::mapping::KnownIds;
use crate::model::{IndexKeys, Snapshot};
use crate::pipeline::{FailureKind, FetchFailure, Gathered, SourceData};
use crate::snapshot;
use crate::view;

/// The stale note of a [`suspicious_drop`].
pub const SUSPICIOUS_DROP_NOTE: &str = "the status page listed no components";

/// Why a fresh snapshot must not replace `last_good`, if it must not: it
/// lists no component at all while the last good one listed some. A page
/// does not lose every component at once in earnest; an upstream that does
/// is broken (a half-migrated page, an API answering an empty list), and
/// rendering from it would erase every banner. Treated as a failed fetch, so
/// the last good data stays in use and the reason is said.
pub fn suspicious_drop(fresh: &Snapshot, last_good: Option<&Snapshot>) -> Option<String> {
    let last = last_good?;
    if !fresh.components.is_empty() || last.components.is_empty() {
        return None;
    }
    Some(format!(
        "upstream listed no components, while the last good snapshot listed {}: \
         a suspicious drop, treated as a failed fetch",
        last.components.len()
    ))
}

/// A fetch as the store takes it: a snapshot with the items that had to be
/// left out of it, or why there is none.
pub type FetchResult = std::result::Result<(Snapshot, Vec<String>), FetchFailure>;

/// Something the store did that a person may need to hear of.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An item of an impossible shape was left out of a good fetch.
    Skipped { source: String, item: String },
    /// A fetch failed (or answered suspiciously): the last good snapshot,
    /// fetched at `fetched_at`, stays in use.
    FellBack {
        source: String,
        failure: FetchFailure,
        fetched_at: Timestamp,
        age: String,
    },
    /// A fetch failed and there is no last good snapshot to use.
    NoData { source: String, why: String },
    /// A good snapshot could not be kept in `state_dir`; the previous one
    /// stays whole.
    NotKept { source: String, error: String },
    /// The persisted snapshot of a source cannot be used.
    Unreadable { source: String, error: String },
}

impl Event {
    /// The source the event is about.
    pub fn source(&self) -> &str {
        match self {
            Event::Skipped { source, .. }
            | Event::FellBack { source, .. }
            | Event::NoData { source, .. }
            | Event::NotKept { source, .. }
            | Event::Unreadable { source, .. } => source,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Skipped { source, item } => write!(f, "source `{source}`: {item}"),
            Event::FellBack {
                source,
                failure,
                fetched_at,
                age,
            } => write!(
                f,
                "source `{source}`: {failure}\n  using the last good snapshot, fetched {fetched_at} ({age} ago)"
            ),
            Event::NoData { source, why } => write!(f, "source `{source}`: {why}"),
            Event::NotKept { error, .. } => write!(f, "{error}"),
            Event::Unreadable { source, error } => write!(
                f,
                "source `{source}`: the persisted snapshot cannot be used: {error}"
            ),
        }
    }
}

/// Keeps `fresh` snapshots as their sources' last good ones in `state_dir`;
/// what could not be kept is an event.
pub fn save(state_dir: &Path, fresh: &[(String, Arc<Snapshot>)]) -> Vec<Event> {
    fresh
        .iter()
        .filter_map(|(name, snap)| {
            snapshot::save_state(state_dir, name, snap)
                .err()
                .map(|e| Event::NotKept {
                    source: name.clone(),
                    error: e.to_string(),
                })
        })
        .collect()
}

/// What the store holds of one source.
#[derive(Debug, Clone, Default)]
struct Held {
    /// The last good snapshot, once read from `state_dir` or fetched;
    /// shared with the data handed to plans, never copied for them.
    snapshot: Option<Arc<Snapshot>>,
    /// Whether `state_dir` was read for this source (or need not be).
    loaded: bool,
    /// Why the persisted snapshot cannot be used.
    unreadable: Option<String>,
    /// Why the latest fetch failed; `None` after a good one.
    error: Option<FetchFailure>,
    /// A good snapshot fetched since the last [`Store::persist`].
    fresh: bool,
    /// That fetched snapshot as it came, when [`Store::snapshot_mut`]
    /// changed it since: only what upstream answered is saved.
    unsaved: Option<Arc<Snapshot>>,
    /// `fetched_at` of the snapshot as read from `state_dir`.
    read_fetched_at: Option<Timestamp>,
    /// The index keys of `snapshot`, built by the first plan that reads it;
    /// a change in place keeps them (see [`Store::snapshot_mut`]).
    keys: Arc<OnceLock<IndexKeys>>,
    /// A copy of `snapshot` made ahead ([`Store::keep_spare`]), so that a
    /// change in place need not copy the snapshot renders share on the
    /// way to the files. Dropped whenever `snapshot` changes.
    spare: Option<Snapshot>,
}

/// The last good snapshot of every source. See the module documentation.
#[derive(Debug, Clone)]
pub struct Store {
    state_dir: PathBuf,
    held: BTreeMap<String, Held>,
}

impl Store {
    /// A store over `state_dir` that reads a persisted snapshot only when it
    /// needs one: a one-shot run reads none when every fetch is good.
    pub fn new(state_dir: &Path) -> Store {
        Store {
            state_dir: state_dir.to_owned(),
            held: BTreeMap::new(),
        }
    }

    /// A store holding the persisted snapshot of each of `names` now (what
    /// `serve` renders from at start), with what could not be read.
    pub fn load<'n>(
        state_dir: &Path,
        names: impl IntoIterator<Item = &'n String>,
    ) -> (Store, Vec<Event>) {
        let mut store = Store::new(state_dir);
        let mut events = Vec::new();
        for name in names {
            store.last_good(name);
            if let Some(error) = store.held.get(name).and_then(|h| h.unreadable.clone()) {
                events.push(Event::Unreadable {
                    source: name.clone(),
                    error,
                });
            }
        }
        (store, events)
    }

    /// The last good snapshot of `name`, read from `state_dir` the first
    /// time it is asked for.
    fn last_good(&mut self, name: &str) -> Option<&Snapshot> {
        let held = self.held.entry(name.to_owned()).or_default();
        if !held.loaded {
            held.loaded = true;
            match snapshot::load_state(&self.state_dir, name) {
                Ok(s) => {
                    held.keys = Arc::default();
                    held.spare = None;
                    // Its age counts from when upstream last confirmed it.
                    held.read_fetched_at = s.as_ref().map(|s| s.fetched_at);
                    held.snapshot = s.map(|mut s| {
                        s.fetched_at = crate::oneshot::confirmed_at(&self.state_dir, name, &s);
                        Arc::new(s)
                    });
                }
                Err(e) => held.unreadable = Some(e.to_string()),
            }
        }
        held.snapshot.as_deref()
    }

    /// Takes "unchanged" as the result of a fetch of `name` (a `304`, or
    /// the same bytes as before): the last good snapshot stays, now
    /// fetched at `now`, and needs no saving. False when there is no last
    /// good snapshot to keep, or it is not the one `fetched_at` names: the
    /// caller must fetch in full.
    pub fn confirm(&mut self, name: &str, fetched_at: Timestamp, now: Timestamp) -> bool {
        self.last_good(name);
        let Some(held) = self.held.get_mut(name) else {
            return false;
        };
        if held.snapshot.is_none() || held.read_fetched_at != Some(fetched_at) {
            return false;
        }
        self.renew(name, now)
    }

    /// `serve`: upstream said the snapshot held for `name` is still
    /// current (a `304`, or the same bytes): as after a good fetch of it,
    /// it counts as fetched at `now` and no failure stands, but it is not
    /// saved again. False when none is held.
    pub fn renew(&mut self, name: &str, now: Timestamp) -> bool {
        let Some(held) = self.held.get_mut(name) else {
            return false;
        };
        let spare = held.spare.take();
        let Some(snap) = &mut held.snapshot else {
            return false;
        };
        // As `snapshot_mut`: the copy made ahead instead of copying the
        // snapshot a render still shares.
        if Arc::strong_count(snap) > 1 {
            if let Some(spare) = spare {
                *snap = Arc::new(spare);
            }
        }
        Arc::make_mut(snap).fetched_at = now;
        held.error = None;
        true
    }

    /// The snapshot held for `name`, if any.
    pub fn snapshot(&self, name: &str) -> Option<&Snapshot> {
        self.held.get(name).and_then(|h| h.snapshot.as_deref())
    }

    /// The snapshot held for `name`, as it is shared with the data of
    /// renders.
    pub fn shared(&self, name: &str) -> Option<&Arc<Snapshot>> {
        self.held.get(name).and_then(|h| h.snapshot.as_ref())
    }

    /// The snapshot held for `name`, to change in place: `serve`'s webhook
    /// preview. A change made here is never persisted as the last good
    /// snapshot; only a good fetch is. The snapshot is copied first when
    /// it is shared (with the data of a render, or kept unsaved). The
    /// change must keep the components and groups it lists, their ids,
    /// names, groups and order (a preview changes statuses and items): its
    /// index keys are kept.
    pub fn snapshot_mut(&mut self, name: &str) -> Option<&mut Snapshot> {
        let held = self.held.get_mut(name)?;
        if held.fresh && held.unsaved.is_none() {
            held.unsaved.clone_from(&held.snapshot);
        }
        let spare = held.spare.take();
        let snap = held.snapshot.as_mut()?;
        if Arc::strong_count(snap) > 1 {
            if let Some(spare) = spare {
                *snap = Arc::new(spare);
            }
        }
        Some(Arc::make_mut(snap))
    }

    /// Whether `name` has a snapshot but no spare copy of it.
    pub fn wants_spare(&self, name: &str) -> bool {
        self.held
            .get(name)
            .is_some_and(|h| h.snapshot.is_some() && h.spare.is_none())
    }

    /// Takes the spare copy of the snapshot of `name`, for the caller to
    /// drop where it costs nothing (a whole snapshot is thousands of
    /// allocations).
    pub fn take_spare(&mut self, name: &str) -> Option<Snapshot> {
        self.held.get_mut(name).and_then(|h| h.spare.take())
    }

    /// Keeps `copy`, a copy of `of`, for the next [`Store::snapshot_mut`]
    /// of `name` (`serve`'s webhook preview): it is made after a render's
    /// files are written, and the preview then changes it in place. Kept
    /// only while `of` is still the snapshot held.
    pub fn keep_spare(&mut self, name: &str, of: &Weak<Snapshot>, copy: Snapshot) {
        if let Some(held) = self.held.get_mut(name) {
            let current = held
                .snapshot
                .as_ref()
                .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), of.as_ptr()));
            if current {
                held.spare = Some(copy);
            }
        }
    }

    /// Takes the result of a fetch of `name`. A good snapshot replaces the
    /// last good one, unless it is a [`suspicious_drop`]; a failure keeps
    /// the last good one and records why.
    pub fn accept(&mut self, name: &str, result: FetchResult, now: Timestamp) -> Vec<Event> {
        let mut events = Vec::new();
        let result = result.and_then(|(snap, skipped)| {
            // Only an empty fresh snapshot needs the last good one read.
            let last = if snap.components.is_empty() {
                self.last_good(name)
            } else {
                None
            };
            match suspicious_drop(&snap, last) {
                Some(why) => Err(FetchFailure::new(
                    format!(
                        "{why}\n  (if the page really has no components now, delete `{}`)",
                        snapshot::state_path(&self.state_dir, name).display()
                    ),
                    SUSPICIOUS_DROP_NOTE,
                )
                .with_kind(FailureKind::BadAnswer)),
                None => Ok((snap, skipped)),
            }
        });
        match result {
            Ok((snap, skipped)) => {
                events.extend(skipped.into_iter().map(|item| Event::Skipped {
                    source: name.to_owned(),
                    item,
                }));
                let held = self.held.entry(name.to_owned()).or_default();
                held.snapshot = Some(Arc::new(snap));
                held.keys = Arc::default();
                held.spare = None;
                held.unsaved = None;
                held.loaded = true;
                held.unreadable = None;
                held.error = None;
                held.fresh = true;
                held.read_fetched_at = None;
            }
            Err(failure) => {
                self.last_good(name);
                let state_dir = self.state_dir.display().to_string();
                let held = self.held.entry(name.to_owned()).or_default();
                match (&held.snapshot, &held.unreadable) {
                    (Some(snap), _) => events.push(Event::FellBack {
                        source: name.to_owned(),
                        failure: failure.clone(),
                        fetched_at: snap.fetched_at,
                        age: view::short_duration(now.duration_since(snap.fetched_at)),
                    }),
                    (None, Some(e)) => events.push(Event::NoData {
                        source: name.to_owned(),
                        why: format!("{failure}\n  and the last good snapshot cannot be used: {e}"),
                    }),
                    (None, None) => events.push(Event::NoData {
                        source: name.to_owned(),
                        why: format!(
                            "{failure}\n  and no earlier good snapshot is kept in `{state_dir}`"
                        ),
                    }),
                }
                held.error = Some(failure);
            }
        }
        events
    }

    /// Keeps each snapshot fetched since the last call as its source's last
    /// good one in `state_dir`. A failure is an event: the render goes on,
    /// and the previous good snapshot stays whole.
    pub fn persist(&mut self) -> Vec<Event> {
        let fresh = self.take_fresh();
        save(&self.state_dir, &fresh)
    }

    /// The snapshots fetched since the last call, to [`save`] elsewhere
    /// (`serve` writes them on a blocking thread).
    pub fn take_fresh(&mut self) -> Vec<(String, Arc<Snapshot>)> {
        self.held
            .iter_mut()
            .filter_map(|(name, h)| {
                let fresh = std::mem::take(&mut h.fresh);
                let unsaved = h.unsaved.take();
                let snap = unsaved.or_else(|| h.snapshot.clone()).filter(|_| fresh)?;
                Some((name.clone(), snap))
            })
            .collect()
    }

    /// Why the latest fetch of `name` failed, if it did.
    pub fn error(&self, name: &str) -> Option<&FetchFailure> {
        self.held.get(name).and_then(|h| h.error.as_ref())
    }

    /// Whether any source has a snapshot.
    pub fn has_data(&self) -> bool {
        self.held.values().any(|h| h.snapshot.is_some())
    }

    /// The data of `names` in the form `pipeline` takes: the snapshot of
    /// each (the last good one after a failure, with why), and why the
    /// others have none.
    pub fn gathered<'n>(
        &self,
        names: impl IntoIterator<Item = &'n String>,
        known: KnownIds,
    ) -> Gathered {
        let mut g = Gathered {
            known: Arc::new(known),
            ..Gathered::default()
        };
        for name in names {
            let held = self.held.get(name);
            match held {
                Some(Held {
                    snapshot: Some(snap),
                    error,
                    keys,
                    ..
                }) => {
                    g.indexes.insert(name.clone(), Arc::clone(keys));
                    g.sources.insert(
                        name.clone(),
                        SourceData {
                            snapshot: Arc::clone(snap),
                            fetch_error: error.clone(),
                        },
                    );
                }
                Some(Held {
                    snapshot: None,
                    error: Some(e),
                    unreadable,
                    ..
                }) => {
                    let why = match unreadable {
                        Some(u) => {
                            format!("{e}\n  and the last good snapshot cannot be used: {u}")
                        }
                        None => format!(
                            "{e}\n  and no earlier good snapshot is kept in `{}`",
                            self.state_dir.display()
                        ),
                    };
                    g.missing.insert(name.clone(), why);
                }
                _ => {
                    g.missing.insert(name.clone(), "not fetched yet".into());
                }
            }
        }
        g
    }

    /// The sources whose latest fetch failed in a way that retrying cannot
    /// mend, with why.
    pub fn permanent_failures(&self) -> BTreeMap<String, FetchFailure> {
        self.held
            .iter()
            .filter_map(|(name, h)| {
                h.error
                    .as_ref()
                    .filter(|e| e.is_permanent())
                    .map(|e| (name.clone(), e.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Component, ComponentStatus, Page};

    fn snap(components: usize) -> Snapshot {
        Snapshot {
            page: Page {
                id: "p".into(),
                name: "p".into(),
                url: None,
            },
            fetched_at: "2025-06-01T12:00:00Z".parse().unwrap(),
            components: (0..components)
                .map(|i| Component {
                    id: format!("c{i}"),
                    name: format!("C{i}"),
                    status: ComponentStatus::Operational,
                    group_id: None,
                    description: None,
                    updated_at: None,
                    unknown: None,
                })
                .collect(),
            groups: Vec::new(),
            incidents: Vec::new(),
        }
    }

    fn now() -> Timestamp {
        "2025-06-01T13:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_kept_snapshot_counts_its_age_from_its_last_confirmation_and_confirm_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let fetched = snap(1).fetched_at;
        let later: Timestamp = "2025-06-01T12:40:00Z".parse().unwrap();
        snapshot::save_state(dir.path(), "s", &snap(1)).unwrap();
        let validators = crate::source::conditional::Validators::default();
        crate::oneshot::keep_validators(dir.path(), "s", validators.clone(), fetched, later)
            .unwrap();
        let (store, _) = Store::load(dir.path(), [&"s".to_owned()]);
        assert_eq!(store.snapshot("s").unwrap().fetched_at, later);

        // Validators of another snapshot say nothing about this one.
        let other: Timestamp = "2025-06-01T11:00:00Z".parse().unwrap();
        crate::oneshot::keep_validators(dir.path(), "s", validators, other, later).unwrap();
        let mut store = Store::new(dir.path());
        assert!(
            !store.confirm("s", other, now()),
            "not the snapshot they describe"
        );
        assert_eq!(store.snapshot("s").unwrap().fetched_at, fetched);
        assert!(store.confirm("s", fetched, now()));
        assert_eq!(store.snapshot("s").unwrap().fetched_at, now());
        assert!(
            store.take_fresh().is_empty(),
            "a confirmed snapshot is not saved again"
        );
        assert!(
            !Store::new(dir.path()).confirm("t", fetched, now()),
            "no snapshot at all"
        );
    }

    #[test]
    fn a_change_in_place_is_never_saved_as_the_last_good_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        store.accept("s", Ok((snap(2), Vec::new())), now());
        // A webhook preview after the fetch, before the fetch is saved.
        store.snapshot_mut("s").unwrap().components[0].status = ComponentStatus::MajorOutage;
        let fresh = store.take_fresh();
        assert_eq!(fresh, [("s".to_owned(), Arc::new(snap(2)))], "as fetched");
        assert_eq!(
            store.snapshot("s").unwrap().components[0].status,
            ComponentStatus::MajorOutage,
            "still rendered"
        );
        store.snapshot_mut("s").unwrap().components[1].status = ComponentStatus::MajorOutage;
        assert!(store.take_fresh().is_empty(), "nothing fetched since");
    }

    #[test]
    fn a_change_in_place_leaves_what_a_render_shares_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        store.accept("s", Ok((snap(2), Vec::new())), now());
        let _ = store.take_fresh();
        let rendered = Arc::clone(store.shared("s").unwrap());
        assert!(store.wants_spare("s"));
        // A spare of a snapshot no longer held is not kept.
        let other = Arc::new(snap(2));
        store.keep_spare("s", &Arc::downgrade(&other), snap(2));
        assert!(store.wants_spare("s"));
        store.keep_spare("s", &Arc::downgrade(&rendered), Snapshot::clone(&rendered));
        assert!(!store.wants_spare("s"));

        store.snapshot_mut("s").unwrap().components[0].status = ComponentStatus::MajorOutage;
        assert_eq!(rendered.components[0].status, ComponentStatus::Operational);
        assert_eq!(
            store.snapshot("s").unwrap().components[0].status,
            ComponentStatus::MajorOutage
        );
        assert!(store.wants_spare("s"), "the spare was used");
        // Without a spare the shared snapshot is copied: still left alone.
        let rendered = Arc::clone(store.shared("s").unwrap());
        store.snapshot_mut("s").unwrap().components[1].status = ComponentStatus::MajorOutage;
        assert_eq!(rendered.components[1].status, ComponentStatus::Operational);
        // A new fetch drops a spare of the snapshot before.
        store.keep_spare("s", &Arc::downgrade(store.shared("s").unwrap()), snap(9));
        store.accept("s", Ok((snap(3), Vec::new())), now());
        assert!(store.wants_spare("s"));
        assert_eq!(
            store.snapshot_mut("s").unwrap().components.len(),
            3,
            "not the spare of the snapshot before"
        );
    }

    #[test]
    fn an_empty_component_list_after_a_full_one_is_a_suspicious_drop() {
        let why = suspicious_drop(&snap(0), Some(&snap(3))).unwrap();
        assert!(why.contains("no components"), "{why}");
        assert!(why.contains("listed 3"), "{why}");
    }

    #[test]
    fn fewer_components_or_no_history_is_not_a_drop() {
        assert_eq!(suspicious_drop(&snap(0), None), None, "first fetch ever");
        assert_eq!(suspicious_drop(&snap(0), Some(&snap(0))), None);
        assert_eq!(suspicious_drop(&snap(1), Some(&snap(40))), None);
        assert_eq!(suspicious_drop(&snap(5), Some(&snap(3))), None);
    }

    #[test]
    fn a_failure_keeps_the_last_good_snapshot_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        let events = store.accept("a", Ok((snap(2), vec!["odd item".into()])), now());
        assert!(matches!(&events[..], [Event::Skipped { item, .. }] if item == "odd item"));
        assert!(store.persist().is_empty());
        // A new store, as the next `render` is: it reads the kept snapshot.
        let mut store = Store::new(dir.path());
        let failure = FetchFailure::new("`x` answered 401", "the status page rejected the API key")
            .with_kind(FailureKind::Permanent);
        let events = store.accept("a", Err(failure), now());
        assert!(
            matches!(&events[..], [Event::FellBack { age, .. }] if age == "1h"),
            "{events:?}"
        );
        let g = store.gathered(&["a".to_owned()], KnownIds::default());
        assert_eq!(g.sources["a"].snapshot.components.len(), 2);
        assert!(g.sources["a"].fetch_error.as_ref().unwrap().is_permanent());
        assert_eq!(store.permanent_failures().len(), 1);
        // An empty answer after it is refused, as a bad answer.
        let events = store.accept("a", Ok((snap(0), Vec::new())), now());
        match &events[..] {
            [Event::FellBack { failure, .. }] => {
                assert_eq!(failure.kind, FailureKind::BadAnswer);
                assert_eq!(failure.note, SUSPICIOUS_DROP_NOTE);
            }
            other => panic!("{other:?}"),
        }
        assert!(store.permanent_failures().is_empty());
    }

    #[test]
    fn a_failure_without_history_is_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        let events = store.accept("b", Err("boom".to_owned().into()), now());
        assert!(
            matches!(&events[..], [Event::NoData { why, .. }] if why.contains("no earlier good snapshot"))
        );
        let g = store.gathered(&["b".to_owned()], KnownIds::default());
        assert!(g.missing["b"].starts_with("boom"));
    }
}
