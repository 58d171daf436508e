//! `mapping.toml`: `Config::parse` must answer every text with a config or an
//! error, never a panic, and what it accepts must be safe to act on.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use statusmotd::config::{validate_cluster_name, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::parse(text, Path::new("/fuzz/etc/mapping.toml")) else {
        return;
    };
    // Every accepted cluster name is a safe directory name.
    for name in config.cluster_names() {
        assert!(validate_cluster_name(name).is_ok(), "accepted `{name:?}`");
        assert!(!name.contains('/') && !name.starts_with('.'), "{name:?}");
    }
    for output in &config.outputs {
        let path = output.path.replace("{cluster}", "c");
        assert!(
            !Path::new(&path).is_absolute() && !path.split('/').any(|p| p == ".." || p.is_empty()),
            "accepted output path `{path}`"
        );
    }
});
