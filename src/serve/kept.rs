//! The resolved ids and the calendar memory of `serve`, held in memory
//! between renders.
//!
//! Every render used to read both files back from `state_dir` before
//! planning (and parse and sanitize the calendar memory again): about a
//! millisecond of a webhook preview's way to the MOTD. `serve` writes them
//! itself while it runs, so it keeps what it wrote. A one-shot `render` with
//! the same `state_dir` may write them too, so a file is read again when it
//! is no longer the one seen last: another inode (every write replaces the
//! file by a rename), size, mtime or ctime, as the one-shot stamp tells a
//! file it left from another. That costs one `stat` per file and render.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::calendar;
use crate::config::Config;
use crate::mapping::KnownIds;
use crate::oneshot;
use crate::pipeline::{self, Gathered, Plan};

/// One file and what it held when last seen.
#[derive(Debug)]
struct Held<T> {
    path: PathBuf,
    value: Arc<T>,
    /// Whether it was read once.
    read: bool,
    /// What [`oneshot::state_of`] said of the file when last seen: `None` when
    /// there was none.
    seen: Option<crate::output::FileState>,
}

impl<T> Held<T> {
    fn new(path: PathBuf, value: T) -> Self {
        Held {
            path,
            value: Arc::new(value),
            read: false,
            seen: None,
        }
    }

    /// What the file holds, read again only when it changed since it was
    /// last seen. The file is looked at before it is read: a write between
    /// the two makes the next call read it again.
    fn current(&mut self, load: impl FnOnce() -> T) -> Arc<T> {
        let now = oneshot::state_of(&self.path);
        if !self.read || self.seen != now {
            self.value = Arc::new(load());
            self.read = true;
            self.seen = now;
        }
        Arc::clone(&self.value)
    }

    /// `value` was just written to the file.
    fn wrote(&mut self, value: T) {
        self.value = Arc::new(value);
        self.read = true;
        self.seen = oneshot::state_of(&self.path);
    }
}

/// The resolved ids and calendar memory of one `state_dir`. See the module
/// documentation.
#[derive(Debug, Default)]
pub struct Kept {
    files: Option<(PathBuf, Held<KnownIds>, Held<calendar::Memory>)>,
}

impl Kept {
    /// Puts the current resolved ids and calendar memory of `state_dir`
    /// into `data`.
    pub fn fill(&mut self, state_dir: &Path, data: &mut Gathered) {
        let (_, known, cal) = self.files(state_dir);
        data.known = known.current(|| KnownIds::load(state_dir));
        data.calendar = cal.current(|| calendar::Memory::load(state_dir));
    }

    /// Keeps in `state_dir` what `plan`, made from `data`, changes of the
    /// resolved ids and the calendar memory; the calendar only when the
    /// files were written (`written`). Returns why something could not be
    /// kept.
    pub fn keep(
        &mut self,
        config: &Config,
        data: &Gathered,
        plan: &Plan,
        written: bool,
    ) -> Vec<String> {
        let state_dir = &config.settings.state_dir;
        let mut warnings = Vec::new();
        let known = pipeline::known_ids_after(config, &data.known, plan);
        let cal = written
            .then(|| pipeline::calendar_after(config, &data.calendar, plan))
            .flatten();
        let (_, held_known, held_cal) = self.files(state_dir);
        if let Some(known) = known {
            match known.save(state_dir) {
                Ok(()) => held_known.wrote(known),
                Err(e) => warnings.push(e.to_string()),
            }
        }
        if let Some(cal) = cal {
            match cal.save(state_dir) {
                Ok(()) => held_cal.wrote(cal),
                Err(e) => warnings.push(e.to_string()),
            }
        }
        warnings
    }

    fn files(
        &mut self,
        state_dir: &Path,
    ) -> &mut (PathBuf, Held<KnownIds>, Held<calendar::Memory>) {
        // A reload may name another `state_dir`: start over there.
        if self
            .files
            .as_ref()
            .is_some_and(|(dir, ..)| dir != state_dir)
        {
            self.files = None;
        }
        self.files.get_or_insert_with(|| {
            (
                state_dir.to_owned(),
                Held::new(KnownIds::path(state_dir), KnownIds::default()),
                Held::new(
                    calendar::Memory::path(state_dir),
                    calendar::Memory::default(),
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::ClusterIds;

    fn known(cluster: &str) -> KnownIds {
        let mut k = KnownIds::default();
        k.clusters.insert(cluster.to_owned(), ClusterIds::default());
        k
    }

    #[test]
    fn a_file_written_by_another_process_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = Kept::default();
        let mut data = Gathered::default();
        kept.fill(dir.path(), &mut data);
        assert_eq!(*data.known, KnownIds::default(), "no file yet");

        // A one-shot `render` with the same `state_dir` keeps its ids.
        known("a").save(dir.path()).unwrap();
        kept.fill(dir.path(), &mut data);
        assert_eq!(*data.known, known("a"));

        // What `serve` wrote itself is not read back.
        let (_, held, _) = kept.files(dir.path());
        held.wrote(known("b"));
        kept.fill(dir.path(), &mut data);
        assert_eq!(*data.known, known("b"));

        // Replaced again from outside, with the same size.
        known("c").save(dir.path()).unwrap();
        kept.fill(dir.path(), &mut data);
        assert_eq!(*data.known, known("c"));

        // Another `state_dir` after a reload starts over.
        let other = tempfile::tempdir().unwrap();
        kept.fill(other.path(), &mut data);
        assert_eq!(*data.known, KnownIds::default());
    }
}
