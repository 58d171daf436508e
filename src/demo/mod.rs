//! `statusmotd demo`: a bundled Statuspage page and mapping, compiled into the
//! binary, rendered with the real pipeline. The page is written in the shape of
//! the public API v2 payloads (`summary.json`, `incidents.json`,
//! `scheduled-maintenances.json`) and goes through the same normalizer as a
//! live fetch, hostile bytes in an update body included.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::pipeline::{Gathered, SourceData};

const SUMMARY: &str = include_str!("summary.json");
const INCIDENTS: &str = include_str!("incidents.json");
const MAINTENANCES: &str = include_str!("scheduled-maintenances.json");
const MAPPING: &str = include_str!("mapping.toml");

/// The cluster whose MOTD the demo prints.
pub const SHOWN_CLUSTER: &str = "archer2";

/// The moment the demo renders at, so its output is the same every run.
pub fn now() -> Timestamp {
    Timestamp::constant(1_795_168_800, 0) // 2026-11-20T10:00:00Z
}

/// The output directory (given, or a new temporary one that is kept) and the
/// demo's configuration.
pub fn prepare(out: Option<&Path>) -> Result<(PathBuf, Config)> {
    let dir = match out {
        Some(dir) => dir.to_path_buf(),
        None => tempfile::Builder::new()
            .prefix("statusmotd-demo-")
            .tempdir()
            .map_err(Error::io(
                "cannot create a temporary directory in",
                std::env::temp_dir(),
            ))?
            .keep(),
    };
    let config = Config::parse(MAPPING, &dir.join("mapping.toml"))?;
    Ok((dir, config))
}

/// The bundled page, normalized as a fetch would, fetched at [`now`].
pub fn data(config: &Config) -> Result<Gathered> {
    let mut snapshot = crate::source::v2::from_payloads(
        "https://status.example.ac.uk",
        SUMMARY.as_bytes(),
        Some(INCIDENTS.as_bytes()),
        Some(MAINTENANCES.as_bytes()),
    )
    .map_err(|e| Error::Runtime(format!("bundled demo data: {e}")))?;
    snapshot.fetched_at = now();
    let snapshot = std::sync::Arc::new(snapshot);
    let mut gathered = Gathered::default();
    for name in config.sources.keys() {
        gathered.sources.insert(
            name.clone(),
            SourceData {
                snapshot: snapshot.clone(),
                fetch_error: None,
            },
        );
    }
    Ok(gathered)
}
