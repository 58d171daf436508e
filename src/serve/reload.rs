//! Reloading `mapping.toml` and the templates while `serve` runs: on a change
//! seen by the file watcher, or on SIGHUP.
//!
//! The watcher watches the configuration file's *directory*, not the file:
//! editors and configuration management save by writing a new file and
//! renaming it over the old one, which replaces the inode a file watch would
//! follow. The templates directory is watched as a whole. A burst of events
//! (write, rename, chmod) becomes one reload. A reload that fails keeps the
//! configuration in force, logs why and counts it in the metrics.
//!
//! The file of each `file` source is watched the same way (its directory),
//! and a change of it refreshes that source, as a webhook would.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Coordinator, Live};
use crate::config::SourceKind;
use crate::error::{Error, Result};

/// How long to wait for more events after the first before reloading.
const SETTLE: Duration = Duration::from_millis(250);

/// Reads the configuration file again and, when it is valid, puts it in
/// force. Returns whether it did.
pub async fn reload(c: &Arc<Coordinator>, why: &str) -> bool {
    let path = c.live().config.path.clone();
    let loaded = tokio::task::spawn_blocking(move || Live::load(&path)).await;
    match loaded {
        Ok(Ok(live)) => {
            tracing::info!("reloaded `{}` ({why})", live.config.path.display());
            c.reload(live);
            true
        }
        Ok(Err(e)) => {
            c.metrics.config_reload(false);
            tracing::error!("keeping the configuration in force: {e}");
            false
        }
        Err(e) => {
            c.metrics.config_reload(false);
            tracing::error!("keeping the configuration in force: the reload failed: {e}");
            false
        }
    }
}

/// What is being watched, so a reload that moves `templates_dir` can move
/// the watch too.
#[derive(Debug, Default)]
struct Watched {
    config_dir: Option<PathBuf>,
    config_name: Option<std::ffi::OsString>,
    templates_dir: Option<PathBuf>,
    /// The directory of each `file` source's file -> (file name, source).
    status_files: BTreeMap<PathBuf, Vec<(OsString, String)>>,
    /// The `include` patterns of `probes` sources, by their directory: a
    /// probes file added, changed or removed there reloads the configuration.
    includes: BTreeMap<PathBuf, Vec<PathBuf>>,
}

/// What a batch of events asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Wanted {
    /// The configuration or a template changed.
    reload: bool,
    /// These `file` sources' files changed.
    refresh: BTreeSet<String>,
}

impl Watched {
    /// Watches what `live` points at, dropping watches no longer needed.
    fn update(&mut self, watcher: &mut impl Watcher, live: &Live) {
        let path = &live.config.path;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = dir.canonicalize().unwrap_or(dir);
        if self.config_dir.as_ref() != Some(&dir) {
            if let Some(old) = self.config_dir.take() {
                let _ = watcher.unwatch(&old);
            }
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => self.config_dir = Some(dir),
                Err(e) => tracing::warn!(
                    "cannot watch `{}` for changes: {e}; send SIGHUP to reload",
                    dir.display()
                ),
            }
        }
        self.config_name = path.file_name().map(ToOwned::to_owned);

        let templates = live
            .config
            .settings
            .templates_dir
            .as_ref()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()));
        if self.templates_dir != templates {
            if let Some(old) = self.templates_dir.take() {
                let _ = watcher.unwatch(&old);
            }
            if let Some(t) = templates {
                match watcher.watch(&t, RecursiveMode::Recursive) {
                    Ok(()) => self.templates_dir = Some(t),
                    Err(e) => tracing::warn!(
                        "cannot watch `{}` for changes: {e}; send SIGHUP to reload",
                        t.display()
                    ),
                }
            }
        }
        let mut files: BTreeMap<PathBuf, Vec<(OsString, String)>> = BTreeMap::new();
        for source in live.config.sources.values() {
            if let SourceKind::File { path } = &source.kind {
                let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                    continue;
                };
                let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
                files
                    .entry(dir)
                    .or_default()
                    .push((name.to_owned(), source.name.clone()));
            }
        }
        for dir in self.status_files.keys() {
            if !files.contains_key(dir) && self.config_dir.as_ref() != Some(dir) {
                let _ = watcher.unwatch(dir);
            }
        }
        for dir in files.keys() {
            let new = !self.status_files.contains_key(dir) && self.config_dir.as_ref() != Some(dir);
            if new {
                if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(
                        "cannot watch `{}` for changes: {e}; its status files are read at each poll",
                        dir.display()
                    );
                }
            }
        }
        self.status_files = files;

        let mut includes: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for source in live.config.sources.values() {
            if let SourceKind::Probes(probes) = &source.kind {
                for pattern in &probes.include {
                    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
                        continue;
                    };
                    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
                    includes
                        .entry(dir.clone())
                        .or_default()
                        .push(dir.join(name));
                }
            }
        }
        let watched_elsewhere = |dir: &PathBuf, this: &Watched| {
            this.config_dir.as_ref() == Some(dir) || this.status_files.contains_key(dir)
        };
        for dir in self.includes.keys() {
            if !includes.contains_key(dir) && !watched_elsewhere(dir, self) {
                let _ = watcher.unwatch(dir);
            }
        }
        for dir in includes.keys() {
            if !self.includes.contains_key(dir) && !watched_elsewhere(dir, self) {
                if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(
                        "cannot watch `{}` for changes: {e}; send SIGHUP to read its probes files again",
                        dir.display()
                    );
                }
            }
        }
        self.includes = includes;
    }

    /// Adds to `wanted` what an event asks for.
    fn note(&self, event: &notify::Event, wanted: &mut Wanted) {
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for p in &event.paths {
            wanted.reload |= self.concerns_path(p);
            wanted.refresh.extend(self.status_sources(p));
        }
    }

    /// The `file` sources whose file `p` is.
    fn status_sources<'a>(&'a self, p: &'a Path) -> impl Iterator<Item = String> + 'a {
        p.parent()
            .and_then(|dir| self.status_files.get(dir))
            .into_iter()
            .flatten()
            .filter(move |(name, _)| p.file_name() == Some(name.as_os_str()))
            .map(|(_, source)| source.clone())
    }

    fn concerns_path(&self, p: &Path) -> bool {
        let is_config = self.config_name.as_deref().is_some_and(|name| {
            p.file_name() == Some(name)
                && self
                    .config_dir
                    .as_deref()
                    .is_some_and(|d| p.parent() == Some(d))
        });
        let is_template = self
            .templates_dir
            .as_deref()
            .is_some_and(|t| p.starts_with(t));
        let is_probes_file = p
            .parent()
            .and_then(|dir| self.includes.get(dir))
            .is_some_and(|patterns| {
                patterns
                    .iter()
                    .any(|pattern| crate::config::include_matches(pattern, p))
            });
        is_config || is_template || is_probes_file
    }
}

/// Starts watching the configuration file's directory and the templates
/// directory; a change reloads the configuration.
pub fn spawn(c: Arc<Coordinator>, cancel: CancellationToken, tracker: &TaskTracker) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .map_err(|e| Error::Runtime(format!("cannot start the file watcher: {e}")))?;
    let mut watching = Watched::default();
    watching.update(&mut watcher, &c.live());
    tracker.spawn(async move {
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => break,
                e = rx.recv() => match e {
                    Some(e) => e,
                    None => break,
                },
            };
            let mut wanted = Wanted::default();
            match event {
                Ok(e) => watching.note(&e, &mut wanted),
                Err(e) => tracing::warn!("file watcher: {e}"),
            }
            if wanted == Wanted::default() {
                continue;
            }
            // Let the editor finish (write, rename, chmod) before reading.
            let settle = tokio::time::sleep(SETTLE);
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    () = &mut settle => break,
                    () = cancel.cancelled() => return,
                    e = rx.recv() => match e {
                        Some(Ok(e)) => watching.note(&e, &mut wanted),
                        Some(Err(_)) => {}
                        None => break,
                    },
                }
            }
            if wanted.reload && reload(&c, "file changed").await {
                watching.update(&mut watcher, &c.live());
            }
            if !wanted.refresh.is_empty() {
                let sources: Vec<String> = wanted.refresh.into_iter().collect();
                c.refresh(Some(&sources), "status file changed");
            }
        }
        drop(watcher);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched() -> Watched {
        Watched {
            config_dir: Some(PathBuf::from("/etc/statusmotd")),
            config_name: Some("mapping.toml".into()),
            templates_dir: Some(PathBuf::from("/etc/statusmotd/templates")),
            status_files: BTreeMap::from([(
                PathBuf::from("/var/lib/site-status"),
                vec![("status.json".into(), "site".to_owned())],
            )]),
            includes: BTreeMap::from([(
                PathBuf::from("/etc/statusmotd/probes.d"),
                vec![PathBuf::from("/etc/statusmotd/probes.d/*.toml")],
            )]),
        }
    }

    #[test]
    fn a_status_file_refreshes_its_source_and_nothing_else() {
        let w = watched();
        let sources = |p: &str| w.status_sources(Path::new(p)).collect::<Vec<_>>();
        assert_eq!(sources("/var/lib/site-status/status.json"), ["site"]);
        assert!(sources("/var/lib/site-status/.status.json.tmp").is_empty());
        assert!(sources("/var/lib/other/status.json").is_empty());
        assert!(!w.concerns_path(Path::new("/var/lib/site-status/status.json")));
    }

    #[test]
    fn only_the_config_file_and_templates_concern_a_reload() {
        let w = watched();
        assert!(w.concerns_path(Path::new("/etc/statusmotd/mapping.toml")));
        assert!(w.concerns_path(Path::new("/etc/statusmotd/templates/motd.txt.j2")));
        // The temporary file an editor writes before renaming it over.
        assert!(!w.concerns_path(Path::new("/etc/statusmotd/.mapping.toml.swp")));
        assert!(!w.concerns_path(Path::new("/etc/statusmotd/out/archer2/motd")));
        assert!(!w.concerns_path(Path::new("/srv/other/mapping.toml")));
    }

    #[test]
    fn a_probes_file_added_or_removed_reloads() {
        let w = watched();
        assert!(w.concerns_path(Path::new("/etc/statusmotd/probes.d/web.toml")));
        assert!(!w.concerns_path(Path::new("/etc/statusmotd/probes.d/web.toml.swp")));
        assert!(!w.concerns_path(Path::new("/etc/statusmotd/probes.d/.web.toml")));
        assert!(!w.concerns_path(Path::new("/etc/statusmotd/other/web.toml")));
    }
}
