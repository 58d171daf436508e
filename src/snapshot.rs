//! Snapshot files: what `fetch --save` writes and `--snapshot` reads, and the
//! last good snapshot of each source kept in `state_dir`.
//!
//! Both are the same JSON document, `{"format": 1, "sources": {name: Snapshot}}`,
//! written by replacing the file atomically, so a crash leaves the previous
//! good data in place. Loading sanitizes every string again: a snapshot file
//! may have been edited by hand or written by another version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Snapshot, SNAPSHOT_FORMAT};

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    format: u32,
    sources: BTreeMap<String, Snapshot>,
}

/// Snapshots by source name.
pub type Snapshots = BTreeMap<String, Snapshot>;

/// Reads a snapshot file.
pub fn load(path: &Path) -> Result<Snapshots> {
    let text = std::fs::read_to_string(path).map_err(Error::io("cannot read snapshot", path))?;
    parse(&text).map_err(|e| Error::Runtime(format!("invalid snapshot `{}`: {e}", path.display())))
}

/// Parses snapshot JSON. Errors are plain text for the caller to place.
pub fn parse(text: &str) -> std::result::Result<Snapshots, String> {
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let version: Version = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if version.format != SNAPSHOT_FORMAT {
        return Err(format!(
            "format {} is not the format {SNAPSHOT_FORMAT} this version reads\nhint: fetch it again with `statusmotd fetch --save FILE`",
            version.format
        ));
    }
    let file: SnapshotFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(file
        .sources
        .into_iter()
        .map(|(name, snap)| (name, snap.sanitized()))
        .collect())
}

/// Serializes snapshots as a snapshot file.
pub fn to_json(snapshots: &Snapshots) -> String {
    let file = SnapshotFile {
        format: SNAPSHOT_FORMAT,
        sources: snapshots.clone(),
    };
    let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes a snapshot file, replacing any previous one atomically.
pub fn save(path: &Path, snapshots: &Snapshots) -> Result<()> {
    crate::output::replace_file(path, to_json(snapshots).as_bytes())
}

/// Where the last good snapshot of `source` is kept.
pub fn state_path(state_dir: &Path, source: &str) -> PathBuf {
    state_dir.join(format!("{source}.snapshot.json"))
}

/// The last good snapshot of `source`, if one was kept.
pub fn load_state(state_dir: &Path, source: &str) -> Result<Option<Snapshot>> {
    let path = state_path(state_dir, source);
    if !path.exists() {
        return Ok(None);
    }
    let mut snaps = load(&path)?;
    Ok(snaps.remove(source))
}

/// Keeps `snap` as the last good snapshot of `source`.
pub fn save_state(state_dir: &Path, source: &str, snap: &Snapshot) -> Result<()> {
    std::fs::create_dir_all(state_dir)
        .map_err(Error::io("cannot create state directory", state_dir))?;
    let snaps = Snapshots::from([(source.to_owned(), snap.clone())]);
    save(&state_path(state_dir, source), &snaps)
}
