//! The output directory: atomic writes that happen only when the bytes change,
//! the mtime rule of `DESIGN.md` ("Files written"), removal of snippets that
//! left the view, and the lock that keeps two renders from writing at once.
//!
//! `make` and `rsync -t` on the login nodes decide what to copy by mtime, so a
//! file is never touched when its bytes are the same, and a changed file gets
//! an mtime that says when its news last changed upstream (see [`next_mtime`]).
//!
//! Every write goes through a temp file in `<root>/.statusmotd/`: the same
//! filesystem as the target, so the final `rename` is atomic, but never a
//! cluster directory, because `pam_motd` shows dotfiles and `*.tmp` from the
//! directories it reads.
//!
//! No symlink inside the root is ever followed. A render often runs as root
//! over a directory that the service user owns, and a link planted there
//! (`archer2 -> /etc`, `items -> /var/log`, `motd -> /etc/shadow`) must not
//! turn it into writes or removals elsewhere. Every directory below the root
//! is opened one component at a time with `O_NOFOLLOW`, and files are
//! created, renamed and removed relative to those open directories, so a link
//! swapped in between two steps is refused too. A directory that is a link
//! is an error naming it; a file that is a link is replaced by the rename,
//! never written through. The root itself is the administrator's choice and
//! may be reached through links (`/srv -> /data/srv`).

// This module is the one place that creates, replaces, removes and stamps
// files: `clippy.toml` bans those calls everywhere else.
#![allow(clippy::disallowed_methods)]

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Read as _, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use jiff::Timestamp;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Directory under the output root that holds the lock and the temp files.
pub const STAGING_DIR: &str = ".statusmotd";

const LOCK_FILE: &str = "lock";
const TEMP_SUFFIX: &str = ".tmp";
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

/// Makes temp names unique within this process; the pid makes them unique
/// across processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What [`OutputDir::write`] did to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The file did not exist before.
    Created,
    /// The file existed with other bytes (or was not a regular file) and was
    /// replaced.
    Updated,
    /// The file already held these bytes and was not touched.
    Unchanged,
}

impl Written {
    /// Whether the file on disk changed, i.e. whether `render` reports it.
    pub fn is_change(self) -> bool {
        self != Written::Unchanged
    }
}

/// Size, inode, modification and change times of a file: any write,
/// rename or removal changes at least one of them.
pub type FileState = [i64; 6];

/// What [`OutputDir::write_left`] did to a file, and how it left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    pub written: Written,
    /// The file's mtime as left (as [`Peek::mtime`] reads it); `None` in a
    /// dry run or when it could not be read.
    pub mtime: Option<Timestamp>,
    /// The file's state after the call; `None` in a dry run or when it
    /// could not be read.
    pub state: Option<FileState>,
}

impl Left {
    fn new(written: Written) -> Self {
        Left {
            written,
            mtime: None,
            state: None,
        }
    }
}

/// The [`FileState`] of a `stat` answer.
pub(crate) fn state_of_stat(st: &rfs::Stat) -> FileState {
    let n = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    [
        n(st.st_size.into()),
        n(st.st_ino.into()),
        n(st.st_mtime.into()),
        n(st.st_mtime_nsec.into()),
        n(st.st_ctime.into()),
        n(st.st_ctime_nsec.into()),
    ]
}

/// The [`FileState`] of a file's metadata.
pub(crate) fn state_of_metadata(m: &fs::Metadata) -> FileState {
    use std::os::unix::fs::MetadataExt;
    let ino = i64::try_from(m.ino()).unwrap_or(i64::MAX);
    let len = i64::try_from(m.len()).unwrap_or(i64::MAX);
    [
        len,
        ino,
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ]
}

/// The mtime a [`FileState`] records.
pub(crate) fn state_mtime(state: &FileState) -> Option<Timestamp> {
    Timestamp::new(state[2], i32::try_from(state[3]).ok()?).ok()
}

/// What [`OutputDir::kind_and_state_at`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Directory,
    File,
    /// A symlink, a device, a socket…
    Other,
}

/// The output directory of one render run, held under an exclusive lock;
/// or a dry run of it ([`OutputDir::dry_run`]), which decides every file
/// the same way and changes nothing.
///
/// The lock is released when this value is dropped.
#[derive(Debug)]
pub struct OutputDir {
    root: PathBuf,
    /// `None` only in a dry run over a root that does not exist yet: then
    /// every file would be created.
    tree: Option<Tree>,
    /// `None` in a dry run: nothing is created, written, removed or locked.
    writer: Option<Writer>,
    /// Names this value among the directories each thread keeps open
    /// ([`KEPT_DIRS`]).
    id: u64,
}

/// Numbers the [`OutputDir`]s of this process.
static OUTPUT_DIRS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The directories the last files this thread wrote went to, still
    /// open, with the [`OutputDir`] they belong to: a plan writes a
    /// cluster's files one after the other, and opening every component of
    /// the path again for each costs more than the comparison itself. Kept
    /// per thread, so threads writing side by side never wait for each
    /// other; an `OutputDir` dropped takes its own from this thread.
    static KEPT_DIRS: RefCell<Vec<(u64, PathBuf, Arc<OwnedFd>)>> = const { RefCell::new(Vec::new()) };
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        let id = self.id;
        let _ = KEPT_DIRS.try_with(|kept| kept.borrow_mut().retain(|(of, _, _)| *of != id));
    }
}

/// What a real run holds beyond a dry run.
#[derive(Debug)]
struct Writer {
    staging: PathBuf,
    staging_fd: OwnedFd,
    // Held only for its advisory lock, which closing the file releases.
    _lock: File,
}

impl OutputDir {
    /// Creates `root` if needed, takes an exclusive lock on
    /// `<root>/.statusmotd/lock`, and removes temp files that a killed run
    /// left in the staging directory.
    ///
    /// The lock is blocking: a render started by an overlapping cron job
    /// waits until the first one drops its `OutputDir`, then proceeds.
    pub fn open(root: &Path) -> Result<Self> {
        create_dirs(root)?;
        // The configuration refuses `/` as written; this catches it reached
        // through links or `--out`.
        if fs::canonicalize(root).is_ok_and(|p| p.parent().is_none()) {
            return Err(Error::Runtime(format!(
                "refusing to use `{}` as the output directory: it is the root directory\n\
                 hint: give `output_dir` (or `--out`) a directory of its own, e.g. `/srv/motd`",
                root.display()
            )));
        }
        let tree = Tree::open(root)?.ok_or_else(|| {
            Error::io("cannot open output directory", root)(io::ErrorKind::NotFound.into())
        })?;
        let staging = root.join(STAGING_DIR);
        let staging_fd = open_dir_at(tree.fd.as_fd(), STAGING_DIR.as_ref(), &staging, true)?
            .ok_or_else(|| {
                Error::io("cannot create directory", &staging)(io::ErrorKind::NotFound.into())
            })?;

        let lock_path = staging.join(LOCK_FILE);
        let lock = rfs::openat(
            &staging_fd,
            LOCK_FILE,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        )
        .map(File::from)
        .map_err(|e| match e {
            Errno::LOOP if is_symlink_at(staging_fd.as_fd(), LOCK_FILE.as_ref()) => {
                symlink_refused(&lock_path)
            }
            e => Error::io("cannot open lock file", &lock_path)(e.into()),
        })?;
        lock.lock()
            .map_err(Error::io("cannot lock output directory", &lock_path))?;

        remove_leftover_temps(staging_fd.as_fd(), &staging)?;

        Ok(OutputDir {
            root: root.to_path_buf(),
            tree: Some(tree),
            writer: Some(Writer {
                staging,
                staging_fd,
                _lock: lock,
            }),
            id: OUTPUT_DIRS.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// A dry run over `root` (`render --check`): [`OutputDir::write`] and
    /// [`OutputDir::prune_items`] take every decision a real run takes, by
    /// the same code, and report it, but create, write, remove and lock
    /// nothing. What a real run would refuse (a symlinked directory inside
    /// the root) is refused with the same error.
    pub fn dry_run(root: &Path) -> Result<Self> {
        Ok(OutputDir {
            root: root.to_path_buf(),
            tree: Tree::open(root)?,
            writer: None,
            id: OUTPUT_DIRS.fetch_add(1, Ordering::Relaxed),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A read-only look at the directory, for what is read back after the
    /// writes (`index.json`, the files' mtimes).
    pub fn peek(&self) -> Result<Peek> {
        Peek::open(&self.root)
    }

    /// Writes `rel` (e.g. `archer2/motd`, `archer2/items/incident-abc.txt`,
    /// `index.json`) under the root by the mtime rule, creating parent
    /// directories (0755) as needed.
    ///
    /// `newest` is the newest `updated_at` among the items rendered into the
    /// file, `None` when there are none; `now` is the render time.
    ///
    /// When the target is a symlink, the link itself is replaced by a regular
    /// file (rename does not follow it); whatever it pointed at is left alone.
    /// When a directory on the way is a symlink, nothing is written and the
    /// error names it.
    pub fn write(
        &self,
        rel: &Path,
        bytes: &[u8],
        newest: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Written> {
        self.write_left(rel, bytes, newest, now, None)
            .map(|left| left.written)
    }

    /// What is at `rel` (relative to the root), looked at with one
    /// `fstatat` from the root that does not follow a last symlink: whether
    /// it is a directory or a regular file, and its [`FileState`]. `None`
    /// when it cannot be looked at, and in a dry run, which tells no
    /// states.
    ///
    /// The directories on the way are not opened, so a symlink among them
    /// is followed: this serves to find a file exactly as it was left (its
    /// inode and change time included), never to decide where to write.
    pub fn kind_and_state_at(&self, rel: &Path) -> Option<(Kind, FileState)> {
        self.writer.as_ref()?;
        let tree = self.tree.as_ref()?;
        check_relative(rel).ok()?;
        let st = rfs::statat(&tree.fd, rel, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Kind::Directory,
            FileType::RegularFile => Kind::File,
            _ => Kind::Other,
        };
        Some((kind, state_of_stat(&st)))
    }

    /// [`OutputDir::write`], and how the file was left ([`Left`]): for a
    /// file left untouched, its mtime as [`Peek::mtime`] would read it.
    ///
    /// `vouched` is a [`FileState`] in which the caller knows
    /// the file to hold `bytes` already: an earlier render left it so, and
    /// the digest of its bytes then equals that of `bytes`. When the file
    /// is still in that state (no write, rename or removal since changes
    /// size, inode and change time alike), it is left untouched after one
    /// `stat`, without opening or reading it.
    pub fn write_left(
        &self,
        rel: &Path,
        bytes: &[u8],
        newest: Option<Timestamp>,
        now: Timestamp,
        vouched: Option<&FileState>,
    ) -> Result<Left> {
        check_relative(rel)?;
        let target = self.root.join(rel);
        let (parent, name) = split_rel(rel)?;
        let Some(tree) = &self.tree else {
            return Ok(Left::new(Written::Created));
        };
        let dir = self.open_dir(tree, parent).map_err(|e| match e {
            // Name the file being written, not only the directory that
            // failed: that is what the user asked for.
            Error::Io { source, .. } => {
                Error::io("cannot create the directories of", &target)(source)
            }
            e => e,
        })?;
        let Some(dir) = dir else {
            // Only a dry run finds a directory on the way missing.
            return match self.writer {
                None => Ok(Left::new(Written::Created)),
                Some(_) => Err(Error::io("cannot create the directories of", &target)(
                    io::ErrorKind::NotFound.into(),
                )),
            };
        };

        if let Some(vouched) = vouched {
            if let Ok(st) = rfs::statat(&*dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                let state = state_of_stat(&st);
                if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && &state == vouched
                {
                    return Ok(Left {
                        written: Written::Unchanged,
                        mtime: state_mtime(&state),
                        state: Some(state),
                    });
                }
            }
        }

        let previous = existing(dir.as_fd(), name, &target, bytes)?;
        let previous_mtime = match previous {
            Existing::Same(mtime, state) => {
                return Ok(Left {
                    written: Written::Unchanged,
                    mtime,
                    state: Some(state),
                });
            }
            Existing::Different(mtime) => mtime,
            // Nothing there; or a symlink or something else that is not our
            // regular file: it will be replaced, and its mtime says nothing
            // about the news.
            Existing::Missing | Existing::Other => None,
        };
        let written = if previous == Existing::Missing {
            Written::Created
        } else {
            Written::Updated
        };
        let Some(writer) = &self.writer else {
            return Ok(Left::new(written));
        };

        let mtime = next_mtime(previous_mtime, newest, now);
        writer.replace(dir.as_fd(), name, &target, bytes, mtime)?;
        let state = rfs::statat(&*dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| state_of_stat(&st));
        Ok(Left {
            written,
            mtime: state.as_ref().and_then(state_mtime),
            state,
        })
    }

    /// The directory `rel` below the root, as [`Tree::open_dir`] opens it
    /// (created when this is a real run).
    fn open_dir(&self, tree: &Tree, rel: &Path) -> Result<Option<Arc<OwnedFd>>> {
        self.open_dir_kept(tree, rel, self.writer.is_some())
    }

    /// [`Tree::open_dir`] through the directories this thread opened last:
    /// the same one again costs nothing, and one inside it (a cluster's
    /// `items/`) one `openat`.
    fn open_dir_kept(&self, tree: &Tree, rel: &Path, create: bool) -> Result<Option<Arc<OwnedFd>>> {
        /// Directories kept open per thread: a cluster's, its `items/` and
        /// those of further outputs.
        const KEPT: usize = 4;
        let same = |path: &Path, other: &Path| path.as_os_str() == other.as_os_str();
        let parent = KEPT_DIRS.with(|kept| {
            let kept = kept.borrow();
            let find = |want: &Path| {
                kept.iter()
                    .find(|(of, path, _)| *of == self.id && same(path, want))
                    .map(|(_, _, fd)| Arc::clone(fd))
            };
            find(rel).ok_or_else(|| {
                rel.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .and_then(find)
            })
        });
        let parent = match parent {
            Ok(fd) => return Ok(Some(fd)),
            Err(parent) => parent,
        };
        let fd = match (parent, rel.components().next_back()) {
            (Some(parent), Some(Component::Normal(name))) => {
                open_dir_at(parent.as_fd(), name, &self.root.join(rel), create)?
            }
            _ => tree.open_dir(rel, create)?,
        };
        let Some(fd) = fd else {
            return Ok(None);
        };
        let fd = Arc::new(fd);
        KEPT_DIRS.with(|kept| {
            let mut kept = kept.borrow_mut();
            kept.retain(|(of, _, _)| *of == self.id);
            if kept.len() >= KEPT {
                kept.remove(0);
            }
            kept.push((self.id, rel.to_path_buf(), Arc::clone(&fd)));
        });
        Ok(Some(fd))
    }

    /// Removes the files in `<root>/<cluster>/items/` whose names are not in
    /// `keep` (file names such as `incident-abc.txt`, not paths): snippets of
    /// items that left the view. Only regular files named `*.txt` are
    /// touched. Returns the removed paths, relative to the root, sorted.
    pub fn prune_items(&self, cluster: &str, keep: &BTreeSet<String>) -> Result<Vec<PathBuf>> {
        self.prune_items_left(cluster, keep, None)
            .map(|(removed, _)| removed)
    }

    /// [`OutputDir::prune_items`], and the state of the cluster's
    /// directories after it: its own and `items/` (`None` where there is
    /// none, or in a dry run).
    ///
    /// `vouched` is a state of `items/` in which the caller knows it to
    /// hold the snippets `keep` names and no other: an earlier render left
    /// it so, with the same names. While `items/` is in that state (no
    /// entry created, renamed or removed since), it is not listed.
    pub fn prune_items_left(
        &self,
        cluster: &str,
        keep: &BTreeSet<String>,
        vouched: Option<&FileState>,
    ) -> Result<(Vec<PathBuf>, [Option<FileState>; 2])> {
        let items_rel = items_rel(cluster)?;
        let items = self.root.join(&items_rel);
        let Some(tree) = &self.tree else {
            return Ok((Vec::new(), [None, None]));
        };
        let state = |dir: &OwnedFd| {
            self.writer
                .as_ref()
                .and_then(|_| rfs::fstat(dir).ok())
                .map(|st| state_of_stat(&st))
        };
        let cluster_state = || -> Result<Option<FileState>> {
            Ok(self
                .open_dir_kept(tree, Path::new(cluster), false)?
                .and_then(|dir| state(&dir)))
        };
        let Some(dir) = self.open_dir_kept(tree, &items_rel, false)? else {
            return Ok((Vec::new(), [cluster_state()?, None]));
        };
        let before = state(&dir);
        if before.is_some() && before.as_ref() == vouched {
            return Ok((Vec::new(), [cluster_state()?, before]));
        }

        let mut removed = Vec::new();
        for name in stale_snippets(dir.as_fd(), &items, keep)? {
            if self.writer.is_some() {
                match rfs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(Error::io("cannot remove", items.join(&name))(e.into())),
                }
            }
            removed.push(items_rel.join(name));
        }

        if self.writer.is_some() && !removed.is_empty() {
            rfs::fsync(&dir).map_err(|e| Error::io("cannot sync directory", &items)(e.into()))?;
        }
        let after = if removed.is_empty() {
            before
        } else {
            state(&dir)
        };
        Ok((removed, [cluster_state()?, after]))
    }
}

impl Writer {
    /// Puts `bytes` at `name` in `dir` through a temp file in the staging
    /// directory. On failure the temp file is removed and the target is left
    /// as it was.
    fn replace(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        target: &Path,
        bytes: &[u8],
        mtime: Timestamp,
    ) -> Result<()> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = format!("write-{}-{n}{TEMP_SUFFIX}", std::process::id());
        let staging = self.staging_fd.as_fd();

        let result = rfs::openat(
            staging,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            // 0600 until complete; the final mode is set in `write_temp`.
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io("cannot create temp file", self.staging.join(&temp))(e.into()))
        .and_then(|file| write_temp(File::from(file), target, bytes, mtime, true))
        .and_then(|()| {
            rfs::renameat(staging, temp.as_str(), dir, name)
                .map_err(|e| Error::io("cannot rename into place", target)(e.into()))
        });
        if let Err(e) = result {
            // The temp file may or may not exist by now; either way it must go.
            let _ = rfs::unlinkat(staging, temp.as_str(), AtFlags::empty());
            return Err(e);
        }

        let parent = target.parent().unwrap_or(target);
        rfs::fsync(dir).map_err(|e| Error::io("cannot sync directory", parent)(e.into()))
    }
}

/// A read-only look at an output directory, by the same rules as
/// [`OutputDir`]: no symlink inside the root is followed. Creates nothing
/// and takes no lock.
#[derive(Debug)]
pub struct Peek {
    /// `None` when the root does not exist yet: then every file is missing.
    tree: Option<Tree>,
}

impl Peek {
    pub fn open(root: &Path) -> Result<Peek> {
        Ok(Peek {
            tree: Tree::open(root)?,
        })
    }

    /// The bytes of the regular file at `rel`, `None` if it is absent, not a
    /// regular file, under a symlink, or unreadable.
    pub fn read(&self, rel: &Path) -> Option<Vec<u8>> {
        let (mut file, _) = self.open_file(rel)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    /// The mtime of the regular file at `rel`, on the same terms as
    /// [`Peek::read`].
    pub fn mtime(&self, rel: &Path) -> Option<Timestamp> {
        let (_, meta) = self.open_file(rel)?;
        Timestamp::try_from(meta.modified().ok()?).ok()
    }

    fn open_file(&self, rel: &Path) -> Option<(File, fs::Metadata)> {
        check_relative(rel).ok()?;
        let tree = self.tree.as_ref()?;
        let (parent, name) = split_rel(rel).ok()?;
        let dir = tree.open_dir(parent, false).ok()??;
        open_regular(dir.as_fd(), name).ok()?
    }
}

/// The root of an output directory, open.
#[derive(Debug)]
struct Tree {
    root: PathBuf,
    fd: OwnedFd,
}

impl Tree {
    /// Opens `root`, following symlinks in the path given (an administrator's
    /// choice); `None` when it does not exist.
    fn open(root: &Path) -> Result<Option<Tree>> {
        match rfs::openat(
            rfs::CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(Tree {
                root: root.to_path_buf(),
                fd,
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io("cannot open output directory", root)(e.into())),
        }
    }

    /// Opens the directory `rel` below the root one component at a time,
    /// following no symlink; creates missing ones when `create`, otherwise
    /// `None` when one is missing.
    fn open_dir(&self, rel: &Path, create: bool) -> Result<Option<OwnedFd>> {
        let mut current: Option<OwnedFd> = None;
        let mut path = self.root.clone();
        for component in rel.components() {
            let Component::Normal(name) = component else {
                return Err(Error::Runtime(format!(
                    "refusing to open `{}`: not a plain relative path",
                    rel.display()
                )));
            };
            path.push(name);
            let parent = current.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
            match open_dir_at(parent, name, &path, create)? {
                Some(fd) => current = Some(fd),
                None => return Ok(None),
            }
        }
        match current {
            Some(fd) => Ok(Some(fd)),
            // The root itself: a descriptor of our own to hand out.
            None => rfs::openat(
                &self.fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map(Some)
            .map_err(|e| Error::io("cannot open output directory", &self.root)(e.into())),
        }
    }
}

/// Opens the directory `name` in `parent` without following a symlink;
/// `path` names it in errors. Creates it (0755, whatever the umask) when
/// missing and `create`; otherwise a missing directory is `None`.
fn open_dir_at(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    create: bool,
) -> Result<Option<OwnedFd>> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut created = false;
    // Twice at most: once before creating it, once after.
    for _ in 0..2 {
        match rfs::openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => {
                if created {
                    // Login nodes and web servers read these directories as
                    // other users.
                    rfs::fchmod(&fd, Mode::from_raw_mode(DIR_MODE))
                        .map_err(|e| Error::io("cannot set permissions of", path)(e.into()))?;
                }
                return Ok(Some(fd));
            }
            Err(Errno::NOENT) if create => {
                match rfs::mkdirat(parent, name, Mode::from_raw_mode(DIR_MODE)) {
                    Ok(()) => created = true,
                    // Another process created it meanwhile.
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(Error::io("cannot create directory", path)(e.into())),
                }
            }
            Err(Errno::NOENT) => return Ok(None),
            // `O_NOFOLLOW` on a link fails with ELOOP, `O_DIRECTORY` on
            // anything else but a directory with ENOTDIR.
            Err(_) if is_symlink_at(parent, name) => return Err(symlink_refused(path)),
            Err(e) => return Err(Error::io("cannot open directory", path)(e.into())),
        }
    }
    Err(Error::io("cannot create directory", path)(
        io::ErrorKind::NotFound.into(),
    ))
}

fn is_symlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// The error for a directory inside the output root that is a symlink.
fn symlink_refused(path: &Path) -> Error {
    Error::Runtime(format!(
        "refusing to follow `{path}`: it is a symbolic link inside the output directory, \
         and statusmotd writes and removes files only in real directories there\n\
         hint: remove the link (`rm {path}`) and render again, which recreates it as a \
         directory; to keep the files elsewhere, point `output_dir` (or `--out`) there instead",
        path = path.display()
    ))
}

/// What is at a file's place before a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    Missing,
    /// A regular file holding exactly the bytes to write, and its mtime.
    Same(Option<Timestamp>, FileState),
    /// A regular file with other bytes, and its mtime.
    Different(Option<Timestamp>),
    /// A symlink, a directory or anything else that is not a regular file.
    Other,
}

/// Looks at `name` in `dir` without following a symlink and compares a
/// regular file with `bytes`. A read error counts as "different", so the
/// file gets rewritten.
fn existing(dir: BorrowedFd<'_>, name: &OsStr, target: &Path, bytes: &[u8]) -> Result<Existing> {
    let (file, meta) = match open_regular(dir, name) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Existing::Other),
        Err(Errno::NOENT) => return Ok(Existing::Missing),
        Err(e) => return Err(Error::io("cannot read metadata of", target)(e.into())),
    };
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| Timestamp::try_from(t).ok());
    // Comparing the length first spares reading a file that must change.
    if meta.len() != bytes.len() as u64 {
        return Ok(Existing::Different(mtime));
    }
    // As long as the length just seen: one read, no second one to find
    // the end.
    let mut old = vec![0; bytes.len()];
    let same = (&file).read_exact(&mut old).is_ok() && old == bytes;
    Ok(if same {
        Existing::Same(mtime, state_of_metadata(&meta))
    } else {
        Existing::Different(mtime)
    })
}

/// Opens `name` in `dir` for reading if it is a regular file: `Ok(None)` when
/// it is something else (a symlink is never followed, and a FIFO or device
/// is never opened).
fn open_regular(
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> std::result::Result<Option<(File, fs::Metadata)>, Errno> {
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let file = match rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => File::from(fd),
        // Swapped for a link since the stat.
        Err(Errno::LOOP) => return Ok(None),
        Err(e) => return Err(e),
    };
    // Swapped for something else since the stat.
    Ok(file
        .metadata()
        .ok()
        .filter(fs::Metadata::is_file)
        .map(|m| (file, m)))
}

/// The `*.txt` regular files in the open directory `dir` (shown as `path`)
/// whose names are not in `keep`, sorted.
fn stale_snippets(
    dir: BorrowedFd<'_>,
    path: &Path,
    keep: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let entries = rfs::Dir::read_from(dir).map_err(|e| Error::io("cannot list", path)(e.into()))?;
    let mut stale = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", path)(e.into()))?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        // Case-sensitive on purpose: snippets are always written `.txt`.
        let is_snippet = Path::new(name).extension() == Some("txt".as_ref());
        if !is_snippet || keep.contains(name) {
            continue;
        }
        // Not following symlinks: a link is not a snippet.
        let is_file = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::RegularFile,
            Err(Errno::NOENT) => false,
            Err(e) => {
                return Err(Error::io("cannot read metadata of", path.join(name))(
                    e.into(),
                ))
            }
        };
        if is_file {
            stale.push(name.to_owned());
        }
    }
    stale.sort();
    Ok(stale)
}

/// `<cluster>/items`, for a cluster name that is a single directory name.
fn items_rel(cluster: &str) -> Result<PathBuf> {
    let cluster_rel = Path::new(cluster);
    check_relative(cluster_rel)?;
    if cluster_rel.components().count() != 1 {
        return Err(Error::Runtime(format!(
            "refusing to prune items of cluster `{cluster}`: a cluster name is a single directory name"
        )));
    }
    Ok(cluster_rel.join("items"))
}

/// The parent directory and file name of a path [`check_relative`] passed.
fn split_rel(rel: &Path) -> Result<(&Path, &OsStr)> {
    match (rel.parent(), rel.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(Error::Runtime(format!(
            "refusing to write `{}`: not a file path",
            rel.display()
        ))),
    }
}

/// Replaces the file at `path` atomically with `bytes` (mtime now), through a
/// hidden temp file beside it: for files outside an output directory, such as
/// snapshots and the state kept in `state_dir`.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file_with(path, bytes, true)
}

/// [`replace_file`] for a file that only saves work, whose loss or an older
/// copy after a crash costs that work and nothing else (the one-shot
/// stamp): the same atomic rename, without waiting for the disk.
pub fn replace_cache_file(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file_with(path, bytes, false)
}

/// Removes a file that only saved work (see [`replace_cache_file`]): one
/// already gone is no error.
pub fn remove_cache_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("cannot remove", path)(e)),
        _ => Ok(()),
    }
}

fn replace_file_with(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    remove_dead_temps(dir, &name);
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".{name}.{}-{n}{TEMP_SUFFIX}", std::process::id()));
    let result = write_new_temp(&temp, path, bytes, Timestamp::now(), durable).and_then(|()| {
        fs::rename(&temp, path).map_err(Error::io("cannot rename into place", path))
    });
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// A temp file older than this is left over whoever wrote it: a write takes
/// moments. Used only where `/proc` cannot tell whether its writer lives.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the temp files of [`replace_file`] for `name` in `dir` that a
/// process killed mid-write left behind (`.{name}.{pid}-{n}.tmp`). Without
/// this, every crash during a state save would leave one in `state_dir` for
/// good. A temp file whose writer still runs is left alone: it is about to
/// be renamed. Best effort: a file that cannot be removed is left.
fn remove_dead_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.");
    remove_dead_temps_where(dir, |file_name| {
        file_name
            .strip_prefix(&prefix)
            .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
            .and_then(temp_pid)
    });
}

/// Removes the temp files of [`replace_file`] for every name in `dir`,
/// a directory only statusmotd writes (`state_dir`), that processes killed
/// mid-write left behind. [`replace_file`] removes those of the file it
/// writes; a file that is not written again, because what it holds came
/// back to what it held, would keep a killed writer's temp file for good.
pub fn remove_dead_temps_in(dir: &Path) {
    remove_dead_temps_where(dir, |file_name| {
        let rest = file_name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
        let (name, counted) = rest.rsplit_once('.')?;
        (!name.is_empty()).then_some(())?;
        temp_pid(counted)
    });
}

/// The writer's pid in the `{pid}-{n}` of a temp file's name.
fn temp_pid(counted: &str) -> Option<u32> {
    let (pid, n) = counted.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Removes the files in `dir` whose name `pid_of` reads as a temp file of
/// [`replace_file`] and whose writer is dead.
fn remove_dead_temps_where(dir: &Path, pid_of: impl Fn(&str) -> Option<u32>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let proc_works = Path::new("/proc/self").exists();
    for entry in entries.filter_map(std::result::Result::ok) {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(&pid_of) else {
            continue;
        };
        if pid == std::process::id() || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let dead = if proc_works {
            !Path::new("/proc").join(pid.to_string()).exists()
                || entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|written| pid_given_again(pid, written))
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TEMP_AGE)
        };
        if dead {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// How much later than a temp file's last write its pid's process must
/// have started to be another process: the boot time in `/proc/stat` is
/// in whole seconds.
const PID_REUSE_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the process now running as `pid` started after a temp file was
/// `written`: then it is not the writer, whose pid the kernel gave again
/// (pids wrap at `pid_max`, 32768 on many systems).
fn pid_given_again(pid: u32, written: SystemTime) -> bool {
    process_started(pid).is_some_and(|started| {
        written
            .checked_add(PID_REUSE_MARGIN)
            .is_some_and(|later| started > later)
    })
}

/// When process `pid` started: its start in clock ticks after boot
/// (`/proc/{pid}/stat`, field 22) and the boot time (`btime` in
/// `/proc/stat`). `None` when either cannot be read.
fn process_started(pid: u32) -> Option<SystemTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces and parentheses.
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let per_second = rustix::param::clock_ticks_per_second();
    if per_second == 0 {
        return None;
    }
    let since_boot = std::time::Duration::from_millis(ticks.saturating_mul(1000) / per_second);
    SystemTime::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(boot))?
        .checked_add(since_boot)
}

/// The mtime rule for a file whose bytes change.
///
/// It is the newest `updated_at` among the items rendered into the file
/// (`newest`), clamped to `now`, so an mtime says when the news last changed
/// upstream. It is `now` when there are no items, or when that time is not
/// later than the file's `previous` mtime: the bytes changed for another
/// reason (a template edit, an item leaving the view), and `make` and
/// `rsync -t` must still see a newer file.
pub fn next_mtime(
    previous: Option<Timestamp>,
    newest: Option<Timestamp>,
    now: Timestamp,
) -> Timestamp {
    let Some(newest) = newest else {
        return now;
    };
    let candidate = newest.min(now);
    match previous {
        Some(previous) if candidate <= previous => now,
        _ => candidate,
    }
}

/// The file's mtime (following symlinks), `None` if it is absent or the
/// time cannot be represented. For files outside an output directory; in
/// one, [`Peek::mtime`] follows no link.
pub fn mtime(path: &Path) -> Option<Timestamp> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    Timestamp::try_from(modified).ok()
}

/// Rejects paths that could leave the output root or reach the staging
/// directory. Cluster names are validated with the configuration; this is
/// defence in depth.
fn check_relative(rel: &Path) -> Result<()> {
    let mut components = rel.components().peekable();
    let inside = components.peek().is_some()
        && components.all(|c| matches!(c, Component::Normal(_)))
        && rel.components().next() != Some(Component::Normal(STAGING_DIR.as_ref()));
    if inside {
        Ok(())
    } else {
        Err(Error::Runtime(format!(
            "refusing to write `{}`: output paths must be relative, without `..`, and outside `{STAGING_DIR}`",
            rel.display()
        )))
    }
}

/// Writes the temp file completely, with its final mode and mtime, and makes
/// it durable before it is renamed over `target` (unless it is a cache, see
/// [`replace_cache_file`]).
fn write_temp(
    mut file: File,
    target: &Path,
    bytes: &[u8],
    mtime: Timestamp,
    durable: bool,
) -> Result<()> {
    file.write_all(bytes)
        .map_err(Error::io("cannot write", target))?;
    // The final mode, whatever the umask.
    file.set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(Error::io("cannot set permissions of", target))?;
    // After the last write, which would otherwise bump the mtime again.
    file.set_times(FileTimes::new().set_modified(SystemTime::from(mtime)))
        .map_err(Error::io("cannot set modification time of", target))?;
    if !durable {
        return Ok(());
    }
    file.sync_all().map_err(Error::io("cannot sync", target))
}

/// Writes a whole new file at `temp` (which must not exist) for
/// [`replace_file`].
fn write_new_temp(
    temp: &Path,
    target: &Path,
    bytes: &[u8],
    mtime: Timestamp,
    durable: bool,
) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(Error::io("cannot create temp file", temp))?;
    write_temp(file, target, bytes, mtime, durable)
}

/// Creates `dir` and any missing parents with mode 0755, whatever the umask:
/// login nodes and web servers read these directories as other users.
fn create_dirs(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
            .map_err(Error::io("cannot set permissions of", dir)),
        // Another process may have created it meanwhile.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(Error::io("cannot create directory", dir)(e)),
    }
}

/// Makes renames and removals in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("cannot sync directory", dir))
}

/// Removes `*.tmp` files left in the staging directory (open as `dir`) by a
/// run that was killed mid-write. Called with the lock held, so no live
/// writer owns them.
fn remove_leftover_temps(dir: BorrowedFd<'_>, staging: &Path) -> Result<()> {
    let entries =
        rfs::Dir::read_from(dir).map_err(|e| Error::io("cannot list", staging)(e.into()))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", staging)(e.into()))?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        let is_temp = name.ends_with(TEMP_SUFFIX)
            && rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
        if is_temp {
            match rfs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => {
                    return Err(Error::io(
                        "cannot remove leftover temp file",
                        staging.join(name),
                    )(e.into()))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn ino(path: &Path) -> u64 {
        fs::symlink_metadata(path).unwrap().ino()
    }

    /// Names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    const NOW: &str = "2025-06-01T12:00:00Z";

    /// What a write of `bytes` to `rel` under `root` would do.
    fn would_write(root: &Path, rel: &str, bytes: &[u8]) -> Written {
        OutputDir::dry_run(root)
            .unwrap()
            .write(Path::new(rel), bytes, None, ts(NOW))
            .unwrap()
    }

    #[test]
    fn new_file_is_created_with_content_mode_and_the_items_time() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        let newest = ts("2025-06-01T10:30:00.5Z");

        let written = out
            .write(Path::new("archer2/motd"), b"hello\n", Some(newest), ts(NOW))
            .unwrap();

        let path = tmp.path().join("archer2/motd");
        assert_eq!(written, Written::Created);
        assert!(written.is_change());
        assert_eq!(fs::read(&path).unwrap(), b"hello\n");
        assert_eq!(mode(&path), 0o644);
        assert_eq!(mode(&tmp.path().join("archer2")), 0o755);
        assert_eq!(mtime(&path), Some(newest));
    }

    #[test]
    fn a_vouched_state_spares_the_comparison_only_while_the_file_is_in_it() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        let rel = Path::new("archer2/motd");
        let path = tmp.path().join(rel);
        let newest = Some(ts("2025-06-01T10:00:00Z"));
        let first = out
            .write_left(rel, b"news\n", newest, ts(NOW), None)
            .unwrap();
        assert_eq!(first.written, Written::Created);
        let left = first.state.expect("the state of a written file");
        assert_eq!(Some(left), crate::oneshot::state_of(&path));

        // Still as it was left: untouched, its mtime seen on the way.
        let again = out
            .write_left(rel, b"news\n", None, ts(NOW), Some(&left))
            .unwrap();
        assert_eq!(again.written, Written::Unchanged);
        assert_eq!(again.state, Some(left));
        assert_eq!(again.mtime, mtime(&path));

        // Edited to other bytes of the same length, the mtime put back:
        // the change time tells, so the file is compared and repaired.
        // (Past the coarse clock that stamps files: a few milliseconds.)
        std::thread::sleep(Duration::from_millis(20));
        let when = fs::metadata(&path).unwrap().modified().unwrap();
        fs::write(&path, b"edit\n").unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        let repaired = out
            .write_left(rel, b"news\n", None, ts(NOW), Some(&left))
            .unwrap();
        assert_eq!(repaired.written, Written::Updated);
        assert_eq!(fs::read(&path).unwrap(), b"news\n");
        assert_ne!(repaired.state, Some(left));
        assert_eq!(repaired.state, crate::oneshot::state_of(&path));
    }

    #[test]
    fn same_bytes_leave_the_file_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        let rel = Path::new("archer2/motd");
        let path = tmp.path().join(rel);
        out.write(rel, b"same\n", Some(ts("2025-06-01T10:00:00Z")), ts(NOW))
            .unwrap();
        let (ino_before, mtime_before) = (ino(&path), mtime(&path));

        let written = out
            .write(rel, b"same\n", None, ts("2025-06-02T00:00:00Z"))
            .unwrap();

        assert_eq!(written, Written::Unchanged);
        assert!(!written.is_change());
        assert_eq!(ino(&path), ino_before);
        assert_eq!(mtime(&path), mtime_before);
    }

    #[test]
    fn changed_bytes_with_newer_news_take_the_news_time() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        let rel = Path::new("archer2/motd");
        out.write(rel, b"old\n", Some(ts("2025-06-01T09:00:00Z")), ts(NOW))
            .unwrap();

        let newer = ts("2025-06-01T11:00:00Z");
        let written = out.write(rel, b"new\n", Some(newer), ts(NOW)).unwrap();

        let path = tmp.path().join(rel);
        assert_eq!(written, Written::Updated);
        assert_eq!(fs::read(&path).unwrap(), b"new\n");
        assert_eq!(mtime(&path), Some(newer));
    }

    #[test]
    fn changed_bytes_without_newer_news_take_now() {
        // A template edit or an item leaving the view changes the bytes but
        // not the newest `updated_at`; `make` must still see a newer file.
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        let rel = Path::new("archer2/motd");
        let news = ts("2025-06-01T09:00:00Z");
        out.write(rel, b"old\n", Some(news), ts(NOW)).unwrap();

        let later = ts("2025-06-01T13:00:00Z");
        let older_news = ts("2025-06-01T08:00:00Z");
        out.write(rel, b"edited\n", Some(older_news), later)
            .unwrap();
        assert_eq!(mtime(&tmp.path().join(rel)), Some(later));

        // Equal to the previous mtime counts as "not later" too.
        let even_later = ts("2025-06-01T14:00:00Z");
        out.write(rel, b"edited again\n", Some(later), even_later)
            .unwrap();
        assert_eq!(mtime(&tmp.path().join(rel)), Some(even_later));
    }

    #[test]
    fn changed_bytes_without_items_take_now() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        let rel = Path::new("archer2/motd");
        out.write(
            rel,
            b"incident\n",
            Some(ts("2025-06-01T09:00:00Z")),
            ts(NOW),
        )
        .unwrap();

        let later = ts("2025-06-01T15:00:00Z");
        let written = out.write(rel, b"", None, later).unwrap();

        assert_eq!(written, Written::Updated);
        assert_eq!(fs::read(tmp.path().join(rel)).unwrap(), b"");
        assert_eq!(mtime(&tmp.path().join(rel)), Some(later));
    }

    #[test]
    fn future_news_time_is_clamped_to_now() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        let rel = Path::new("index.json");
        out.write(rel, b"{}", Some(ts("2030-01-01T00:00:00Z")), ts(NOW))
            .unwrap();
        assert_eq!(mtime(&tmp.path().join(rel)), Some(ts(NOW)));
    }

    #[test]
    fn next_mtime_follows_the_rule() {
        let now = ts(NOW);
        let prev = ts("2025-06-01T09:00:00Z");
        let before_prev = ts("2025-06-01T08:00:00Z");
        let after_prev = ts("2025-06-01T10:00:00Z");
        let future = ts("2025-06-01T12:00:01Z");
        #[rustfmt::skip]
        let cases = [
            // (previous, newest, expected)
            (None,       None,              now),
            (Some(prev), None,              now),
            (None,       Some(before_prev), before_prev),
            (Some(prev), Some(after_prev),  after_prev),
            (Some(prev), Some(prev),        now),
            (Some(prev), Some(before_prev), now),
            (None,       Some(future),      now),
            (Some(prev), Some(future),      now),
            (Some(now),  Some(after_prev),  now),
        ];
        for (previous, newest, expected) in cases {
            assert_eq!(
                next_mtime(previous, newest, now),
                expected,
                "previous {previous:?}, newest {newest:?}"
            );
        }
    }

    #[test]
    fn writes_leave_no_temp_files_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        for (i, body) in ["a", "b", "b", "c"].iter().enumerate() {
            let now = ts(NOW) + jiff::SignedDuration::from_secs(i64::try_from(i).unwrap());
            out.write(Path::new("archer2/motd"), body.as_bytes(), None, now)
                .unwrap();
            out.write(
                Path::new("archer2/items/incident-x.txt"),
                body.as_bytes(),
                None,
                now,
            )
            .unwrap();
        }

        assert_eq!(names(&tmp.path().join(STAGING_DIR)), ["lock"]);
        assert_eq!(names(&tmp.path().join("archer2")), ["items", "motd"]);
        assert_eq!(names(&tmp.path().join("archer2/items")), ["incident-x.txt"]);
    }

    /// Whether this process is held back by permission bits (not when root).
    fn permissions_enforced(dir: &Path) -> bool {
        let probe = dir.join("probe");
        fs::create_dir(&probe).unwrap();
        fs::set_permissions(&probe, Permissions::from_mode(0o555)).unwrap();
        let enforced = File::create(probe.join("x")).is_err();
        fs::set_permissions(&probe, Permissions::from_mode(0o755)).unwrap();
        fs::remove_dir_all(&probe).unwrap();
        enforced
    }

    #[test]
    fn failed_write_names_the_path_and_keeps_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path().join("out").as_path()).unwrap();
        let old = out.root().join("archer2/motd");
        out.write(Path::new("archer2/motd"), b"old\n", None, ts(NOW))
            .unwrap();

        let (result, target) = if permissions_enforced(tmp.path()) {
            let cluster = out.root().join("archer2");
            fs::set_permissions(&cluster, Permissions::from_mode(0o555)).unwrap();
            let result = out.write(Path::new("archer2/motd"), b"new\n", None, ts(NOW));
            fs::set_permissions(&cluster, Permissions::from_mode(0o755)).unwrap();
            (result, old.clone())
        } else {
            // Root ignores permission bits: make the target's parent the
            // old regular file instead.
            let rel = Path::new("archer2/motd/x");
            let result = out.write(rel, b"new\n", None, ts(NOW));
            (result, out.root().join(rel))
        };

        let err = result.unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&format!("`{}`", target.display())),
            "{err}"
        );
        assert_eq!(fs::read(&old).unwrap(), b"old\n");
        assert_eq!(names(&out.root().join(STAGING_DIR)), ["lock"]);
        assert_eq!(names(&out.root().join("archer2")), ["motd"]);
    }

    #[test]
    fn failed_rename_removes_the_temp_file() {
        // Fails as root too: a file cannot be renamed over a directory.
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        fs::create_dir_all(tmp.path().join("archer2/motd/sub")).unwrap();

        let err = out
            .write(Path::new("archer2/motd"), b"x", None, ts(NOW))
            .unwrap_err();

        let message = err.to_string();
        assert!(message.starts_with("cannot rename into place"), "{message}");
        assert!(message.contains("archer2/motd`"), "{message}");
        assert_eq!(names(&tmp.path().join(STAGING_DIR)), ["lock"]);
        assert!(tmp.path().join("archer2/motd/sub").is_dir());
    }

    #[test]
    fn symlink_target_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::write(&elsewhere, b"do not touch\n").unwrap();
        fs::create_dir(tmp.path().join("archer2")).unwrap();
        let link = tmp.path().join("archer2/motd");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert_eq!(
            would_write(tmp.path(), "archer2/motd", b"do not touch\n"),
            Written::Updated
        );

        let written = out
            .write(Path::new("archer2/motd"), b"do not touch\n", None, ts(NOW))
            .unwrap();

        assert_eq!(written, Written::Updated);
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(fs::read(&link).unwrap(), b"do not touch\n");
        assert_eq!(fs::read(&elsewhere).unwrap(), b"do not touch\n");
    }

    /// Every entry under `dir` (not following links): path -> (kind and
    /// bytes or link target, mtime in ns, inode).
    fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, (String, i128, u64)> {
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let what = if meta.is_symlink() {
                    format!("link {}", fs::read_link(&path).unwrap().display())
                } else if meta.is_dir() {
                    stack.push(path.clone());
                    "dir".to_owned()
                } else {
                    format!(
                        "file {}",
                        String::from_utf8_lossy(&fs::read(&path).unwrap())
                    )
                };
                let mtime =
                    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
                out.insert(path, (what, mtime, meta.ino()));
            }
        }
        out
    }

    /// A directory outside the output root holding what a planted link
    /// would expose: a `motd`, snippets, a temp file.
    fn outside(tmp: &Path) -> PathBuf {
        let dir = tmp.join("outside");
        fs::create_dir_all(dir.join("items")).unwrap();
        for name in [
            "motd",
            "notes.txt",
            "old.tmp",
            "items/incident-gone.txt",
            "lock",
        ] {
            fs::write(dir.join(name), format!("{name} stays\n")).unwrap();
        }
        dir
    }

    fn assert_refused(err: &Error, link: &Path) {
        let message = err.to_string();
        assert!(matches!(err, Error::Runtime(_)), "{err:?}");
        assert!(
            message.starts_with(&format!("refusing to follow `{}`", link.display())),
            "{message}"
        );
        assert!(
            message.contains("symbolic link") && message.contains("hint:"),
            "{message}"
        );
    }

    #[test]
    fn symlinked_cluster_dir_is_refused_and_nothing_outside_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = outside(tmp.path());
        let root = tmp.path().join("out");
        let out = OutputDir::open(&root).unwrap();
        let link = root.join("archer2");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let before = tree(&outside);

        for rel in [
            "archer2/motd",
            "archer2/items/incident-new.txt",
            "archer2/ood/motd.md",
        ] {
            let err = out
                .write(Path::new(rel), b"new\n", None, ts(NOW))
                .unwrap_err();
            assert_refused(&err, &link);
        }
        let err = out.prune_items("archer2", &BTreeSet::new()).unwrap_err();
        assert_refused(&err, &link);
        // `render --check` refuses the same way.
        let dry = OutputDir::dry_run(&root).unwrap();
        assert_refused(
            &dry.write(Path::new("archer2/motd"), b"x", None, ts(NOW))
                .unwrap_err(),
            &link,
        );
        assert_refused(
            &dry.prune_items("archer2", &BTreeSet::new()).unwrap_err(),
            &link,
        );
        let peek = Peek::open(&root).unwrap();
        assert_eq!(peek.read(Path::new("archer2/motd")), None);
        assert_eq!(peek.mtime(Path::new("archer2/motd")), None);

        assert_eq!(tree(&outside), before);
        assert_eq!(names(&root.join(STAGING_DIR)), ["lock"]);
    }

    #[test]
    fn symlinked_items_dir_is_refused_by_write_and_prune() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = outside(tmp.path());
        let root = tmp.path().join("out");
        let out = OutputDir::open(&root).unwrap();
        fs::create_dir(root.join("archer2")).unwrap();
        let link = root.join("archer2/items");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let before = tree(&outside);

        let err = out
            .write(
                Path::new("archer2/items/incident-new.txt"),
                b"new\n",
                None,
                ts(NOW),
            )
            .unwrap_err();
        assert_refused(&err, &link);
        let err = out.prune_items("archer2", &BTreeSet::new()).unwrap_err();
        assert_refused(&err, &link);
        // The cluster's own motd is still written: only the link is refused.
        out.write(Path::new("archer2/motd"), b"motd\n", None, ts(NOW))
            .unwrap();

        assert_eq!(tree(&outside), before);
    }

    #[test]
    fn symlinked_staging_dir_or_lock_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = outside(tmp.path());
        let root = tmp.path().join("out");
        fs::create_dir(&root).unwrap();
        let link = root.join(STAGING_DIR);
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let before = tree(&outside);

        let err = OutputDir::open(&root).unwrap_err();
        assert_refused(&err, &link);
        assert_eq!(
            tree(&outside),
            before,
            "no temp removed, no lock taken there"
        );

        fs::remove_file(&link).unwrap();
        fs::create_dir(&link).unwrap();
        let lock = link.join(LOCK_FILE);
        std::os::unix::fs::symlink(outside.join("lock"), &lock).unwrap();
        let err = OutputDir::open(&root).unwrap_err();
        assert_refused(&err, &lock);
        assert_eq!(tree(&outside), before);
    }

    #[test]
    fn symlink_to_a_directory_is_replaced_not_entered() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = outside(tmp.path());
        let root = tmp.path().join("out");
        let out = OutputDir::open(&root).unwrap();
        fs::create_dir(root.join("archer2")).unwrap();
        let link = root.join("archer2/motd");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let before = tree(&outside);

        let written = out
            .write(
                Path::new("archer2/motd"),
                b"motd\n",
                Some(ts("2025-06-01T09:00:00Z")),
                ts(NOW),
            )
            .unwrap();

        assert_eq!(written, Written::Updated);
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(fs::read(&link).unwrap(), b"motd\n");
        assert_eq!(tree(&outside), before);
    }

    #[test]
    fn a_root_reached_through_a_link_is_the_administrators_choice() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("data/srv");
        fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("data"), tmp.path().join("srv")).unwrap();
        let out = OutputDir::open(&tmp.path().join("srv/srv")).unwrap();
        out.write(Path::new("archer2/motd"), b"motd\n", None, ts(NOW))
            .unwrap();
        assert_eq!(fs::read(real.join("archer2/motd")).unwrap(), b"motd\n");
    }

    #[test]
    fn prune_removes_only_snippets_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        let items = tmp.path().join("archer2/items");
        fs::create_dir_all(items.join("subdir.txt")).unwrap();
        for name in [
            "incident-keep.txt",
            "incident-gone.txt",
            "maintenance-gone.txt",
            "README",
            "notes.md",
        ] {
            fs::write(items.join(name), name).unwrap();
        }
        std::os::unix::fs::symlink(items.join("README"), items.join("link.txt")).unwrap();
        fs::write(tmp.path().join("archer2/motd"), b"motd").unwrap();
        fs::create_dir_all(tmp.path().join("cirrus/items")).unwrap();
        fs::write(tmp.path().join("cirrus/items/incident-gone.txt"), b"x").unwrap();

        let keep = BTreeSet::from(["incident-keep.txt".to_owned()]);
        let removed = out.prune_items("archer2", &keep).unwrap();

        assert_eq!(
            removed,
            [
                PathBuf::from("archer2/items/incident-gone.txt"),
                PathBuf::from("archer2/items/maintenance-gone.txt"),
            ]
        );
        assert_eq!(
            names(&items),
            [
                "README",
                "incident-keep.txt",
                "link.txt",
                "notes.md",
                "subdir.txt"
            ]
        );
        assert!(tmp.path().join("archer2/motd").exists());
        assert!(tmp.path().join("cirrus/items/incident-gone.txt").exists());
    }

    #[test]
    fn prune_without_items_dir_removes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        let removed = out.prune_items("archer2", &BTreeSet::new()).unwrap();
        assert!(removed.is_empty());
        assert!(!tmp.path().join("archer2").exists());
    }

    #[test]
    fn prune_rejects_cluster_names_that_leave_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        for cluster in ["..", "a/b", "/etc", ""] {
            let err = out.prune_items(cluster, &BTreeSet::new()).unwrap_err();
            assert!(matches!(err, Error::Runtime(_)), "{cluster}: {err:?}");
        }
    }

    #[test]
    fn second_open_waits_for_the_first_to_be_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let events = Arc::new(Mutex::new(Vec::new()));
        let first = OutputDir::open(&root).unwrap();

        let (started_tx, started_rx) = mpsc::channel();
        let second = {
            let events = Arc::clone(&events);
            std::thread::spawn(move || {
                started_tx.send(()).unwrap();
                let out = OutputDir::open(&root).unwrap();
                events.lock().unwrap().push("second acquired");
                drop(out);
            })
        };
        started_rx.recv().unwrap();
        // Gives a second open that does not block the chance to run first,
        // so the ordering below would catch it.
        std::thread::sleep(Duration::from_millis(200));
        events.lock().unwrap().push("first released");
        drop(first);
        second.join().unwrap();

        assert_eq!(
            *events.lock().unwrap(),
            ["first released", "second acquired"]
        );
    }

    #[test]
    fn open_removes_leftover_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = tmp.path().join(STAGING_DIR);
        fs::create_dir_all(&staging).unwrap();
        fs::write(staging.join("write-4242-7.tmp"), b"half a fi").unwrap();
        fs::write(tmp.path().join("keep.tmp"), b"not ours").unwrap();

        let _out = OutputDir::open(tmp.path()).unwrap();

        assert_eq!(names(&staging), ["lock"]);
        assert!(tmp.path().join("keep.tmp").exists());
    }

    #[test]
    fn replace_file_removes_temps_of_dead_writers_only() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("hpc.snapshot.json");
        // A pid that cannot be running: above the kernel's pid limit.
        let dead = tmp.path().join(".hpc.snapshot.json.4194305-3.tmp");
        let mine = tmp
            .path()
            .join(format!(".hpc.snapshot.json.{}-999.tmp", std::process::id()));
        // pid 1 is always running.
        let live = tmp.path().join(".hpc.snapshot.json.1-0.tmp");
        let other = tmp.path().join(".other.json.4194305-0.tmp");
        for p in [&dead, &mine, &live, &other] {
            fs::write(p, b"half").unwrap();
        }

        replace_file(&path, b"whole\n").unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"whole\n");
        assert!(!dead.exists(), "a dead writer's temp file is removed");
        assert!(
            mine.exists() && live.exists(),
            "live writers' temp files stay"
        );
        assert!(other.exists(), "another file's temp files stay");
    }

    /// In `state_dir`, the temp files of killed writers go whatever file
    /// they were for; those of live writers, and files that only look
    /// somewhat like temp files, stay.
    #[test]
    fn every_dead_writers_temp_in_a_directory_of_ours_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let at = |name: &str| tmp.path().join(name);
        // Pids above the kernel's limit cannot be running; pid 1 always is.
        let dead = [
            ".hpc.snapshot.json.4194305-3.tmp",
            ".render.stamp.4194306-0.tmp",
            ".a.b.4194307-12.tmp",
        ];
        let mine = format!(".render.files.{}-1.tmp", std::process::id());
        let kept = [
            ".hpc.snapshot.json.1-0.tmp",
            mine.as_str(),
            "notes.tmp",
            "..4194305-1.tmp",
            ".x.4194305-y.tmp",
            ".x.4194305.tmp",
            ".hpc.snapshot.json.4194305-3.tmp.bak",
            "hpc.snapshot.json",
        ];
        for name in dead.iter().chain(&kept) {
            fs::write(at(name), b"half").unwrap();
        }
        fs::create_dir(at(".dir.4194305-1.tmp")).unwrap();

        remove_dead_temps_in(tmp.path());

        for name in dead {
            assert!(!at(name).exists(), "{name} is removed");
        }
        for name in kept {
            assert!(at(name).exists(), "{name} stays");
        }
        assert!(at(".dir.4194305-1.tmp").is_dir(), "a directory stays");
    }

    #[test]
    fn a_temp_whose_pid_now_names_a_later_process_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("hpc.snapshot.json");
        // A process that runs through the test: its pid is alive.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        // Written an hour before that process started: a dead writer's,
        // whose pid was given again.
        let reused = tmp.path().join(format!(".hpc.snapshot.json.{pid}-0.tmp"));
        // Written after it started: perhaps its own.
        let current = tmp.path().join(format!(".hpc.snapshot.json.{pid}-1.tmp"));
        for p in [&reused, &current] {
            fs::write(p, b"half").unwrap();
        }
        let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&reused)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();

        replace_file(&path, b"whole\n").unwrap();
        child.kill().unwrap();
        child.wait().unwrap();

        assert!(
            !reused.exists(),
            "the temp older than its pid's process is removed"
        );
        assert!(
            current.exists(),
            "the temp of a process that may be writing stays"
        );
    }

    #[test]
    fn open_creates_a_missing_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("a/b/out");
        let out = OutputDir::open(&root).unwrap();
        assert_eq!(out.root(), root);
        assert_eq!(mode(&root), 0o755);
        assert!(root.join(STAGING_DIR).join("lock").is_file());
    }

    #[test]
    fn would_write_compares_bytes_and_creates_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("archer2/motd");
        assert_eq!(
            would_write(tmp.path(), "archer2/motd", b""),
            Written::Created
        );
        assert_eq!(
            would_write(tmp.path(), "archer2/motd", b"x"),
            Written::Created
        );
        assert!(!tmp.path().join("archer2").exists());
        assert!(names(tmp.path()).is_empty());

        fs::create_dir(tmp.path().join("archer2")).unwrap();
        fs::write(&path, b"same\n").unwrap();
        for (bytes, expected) in [
            (&b"same\n"[..], Written::Unchanged),
            (b"same!\n", Written::Updated),
            (b"sam\n", Written::Updated),
        ] {
            assert_eq!(would_write(tmp.path(), "archer2/motd", bytes), expected);
        }
        assert_eq!(names(tmp.path()), ["archer2"]);
        // A root that does not exist yet: everything would be created.
        let missing = tmp.path().join("nope");
        assert_eq!(
            would_write(&missing, "archer2/motd", b"x"),
            Written::Created
        );
        assert!(!missing.exists());
    }

    #[test]
    fn paths_leaving_the_root_are_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path().join("out").as_path()).unwrap();
        for rel in [
            "../x",
            "/abs",
            "archer2/../../x",
            "",
            ".statusmotd/lock",
            "./x",
        ] {
            let err = out.write(Path::new(rel), b"x", None, ts(NOW)).unwrap_err();
            assert!(matches!(err, Error::Runtime(_)), "{rel}: {err:?}");
            assert!(err.to_string().starts_with("refusing to write"), "{err}");
        }
        assert_eq!(names(tmp.path()), ["out"]);
        assert_eq!(names(out.root()), [STAGING_DIR]);
    }
}
