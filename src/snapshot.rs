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

#[derive(Debug, Deserialize)]
struct SnapshotFile {
    format: u32,
    sources: BTreeMap<String, Snapshot>,
}

/// The same document, borrowed, for writing without copying snapshots.
#[derive(Serialize)]
struct SnapshotFileRef<'a> {
    format: u32,
    sources: BTreeMap<&'a str, &'a Snapshot>,
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
    let wrong_format = |format: u32| {
        format!(
            "format {format} is not the format {SNAPSHOT_FORMAT} this version reads\nhint: fetch it again with `statusmotd fetch --save FILE`"
        )
    };
    // One parse in the usual case; the version alone is read only to explain
    // a file this version cannot read.
    let file: SnapshotFile = match serde_json::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            return Err(match serde_json::from_str::<Version>(text) {
                Ok(v) if v.format != SNAPSHOT_FORMAT => wrong_format(v.format),
                _ => e.to_string(),
            })
        }
    };
    if file.format != SNAPSHOT_FORMAT {
        return Err(wrong_format(file.format));
    }
    Ok(file
        .sources
        .into_iter()
        .map(|(name, snap)| (name, snap.sanitized()))
        .collect())
}

/// Serializes snapshots as a snapshot file: the pretty layout down to each
/// snapshot's lists, then one line per component, group and item (see
/// [`crate::layout`]).
pub fn to_json(snapshots: &Snapshots) -> String {
    let file = SnapshotFileRef {
        format: SNAPSHOT_FORMAT,
        sources: snapshots.iter().map(|(k, v)| (k.as_str(), v)).collect(),
    };
    let mut text = crate::layout::Layout::lines_to(SNAPSHOT_LINES_TO)
        .text(&file, 64 * 1024)
        .unwrap_or_default();
    text.push('\n');
    text
}

/// The depth of a snapshot's lists in a snapshot file: the file, `sources`,
/// one snapshot, one list.
const SNAPSHOT_LINES_TO: usize = 4;

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
    // The state directory itself, not a file: the file goes through
    // `output::replace_file`.
    #[allow(clippy::disallowed_methods)]
    std::fs::create_dir_all(state_dir)
        .map_err(Error::io("cannot create state directory", state_dir))?;
    // Compact: written after every good fetch, read by no person.
    let file = SnapshotFileRef {
        format: SNAPSHOT_FORMAT,
        sources: BTreeMap::from([(source, snap)]),
    };
    let text = serde_json::to_vec(&file)
        .map_err(|e| Error::Runtime(format!("cannot serialize the snapshot of `{source}`: {e}")))?;
    crate::output::replace_file(&state_path(state_dir, source), &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Component, ComponentStatus, Page};

    fn one(name: &str) -> Snapshots {
        let snap = Snapshot {
            page: Page {
                id: "p1".into(),
                name: name.into(),
                url: None,
            },
            fetched_at: "2024-05-14T12:00:00Z".parse().unwrap(),
            components: vec![Component {
                id: "c1".into(),
                name: "Login nodes".into(),
                status: ComponentStatus::MajorOutage,
                group_id: None,
                description: None,
                updated_at: None,
                unknown: None,
            }],
            groups: vec![],
            incidents: vec![],
        };
        Snapshots::from([("hpc".to_owned(), snap)])
    }

    #[test]
    fn a_saved_snapshot_reads_back_the_same() {
        let snaps = one("Example");
        assert_eq!(parse(&to_json(&snaps)).unwrap(), snaps);
    }

    #[test]
    fn a_saved_snapshot_has_a_line_per_component() {
        let snaps = one("Example");
        let text = to_json(&snaps);
        let line = text.lines().find(|l| l.contains("\"c1\"")).unwrap();
        let component: Component = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(component, snaps["hpc"].components[0]);
        assert!(text.contains("\n  \"format\": 1,\n"), "{text}");
    }

    #[test]
    fn another_format_says_to_fetch_again() {
        let text = to_json(&one("Example")).replace("\"format\": 1", "\"format\": 7");
        let err = parse(&text).unwrap_err();
        assert!(
            err.contains("format 7") && err.contains("fetch --save"),
            "{err}"
        );
        let err = parse(r#"{"format": 9, "sources": 5}"#).unwrap_err();
        assert!(err.contains("format 9"), "{err}");
        assert!(parse("{\"format\": 1").unwrap_err().contains("EOF"));
    }

    #[test]
    fn loading_sanitizes_a_hand_edited_file() {
        let text = to_json(&one("Example")).replace("Example", "Ex\\u001b[2Jample");
        let snaps = parse(&text).unwrap();
        assert_eq!(snaps["hpc"].page.name, "Example");
    }

    #[test]
    fn state_is_kept_per_source_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_state(dir.path(), "hpc").unwrap().is_none());
        let snaps = one("First");
        save_state(dir.path(), "hpc", &snaps["hpc"]).unwrap();
        save_state(dir.path(), "hpc", &one("Second")["hpc"]).unwrap();
        assert_eq!(
            load_state(dir.path(), "hpc").unwrap().unwrap().page.name,
            "Second"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["hpc.snapshot.json"], "no temp file left beside it");
    }
}
