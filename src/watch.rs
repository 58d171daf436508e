//! Reloading `mapping.toml` and the templates while `serve` runs: on a change
//! seen by the file watcher, or on SIGHUP.
//!
//! The watcher watches the configuration file's *directory*, not the file:
//! editors and configuration management save by writing a new file and
//! renaming it over the old one, which replaces the inode a file watch would
//! follow. The templates directory is watched as a whole. A burst of events
//! (write, rename, chmod) becomes one reload. A reload that fails keeps the
//! configuration in force, logs why and counts it in the metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::coordinator::{Coordinator, Live};
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
    }

    /// Whether an event concerns the configuration file or a template.
    fn concerns(&self, event: &notify::Event) -> bool {
        if matches!(event.kind, EventKind::Access(_)) {
            return false;
        }
        event.paths.iter().any(|p| self.concerns_path(p))
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
        is_config || is_template
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
            let mut relevant = match event {
                Ok(e) => watching.concerns(&e),
                Err(e) => {
                    tracing::warn!("file watcher: {e}");
                    false
                }
            };
            if !relevant {
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
                        Some(Ok(e)) => relevant |= watching.concerns(&e),
                        Some(Err(_)) => {}
                        None => break,
                    },
                }
            }
            if relevant && reload(&c, "file changed").await {
                watching.update(&mut watcher, &c.live());
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
        }
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
}
