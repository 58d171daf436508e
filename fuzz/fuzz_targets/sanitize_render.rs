//! Upstream text on its way to a login screen. The bytes are a v2
//! `summary.json`; every incident in it is made to concern the fuzzed
//! cluster, and each file `render` would write must be terminal-safe and
//! within the size cap. The same bytes, as text, go through the sanitizer
//! alone, which must be safe and idempotent.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use statusmotd::config::Config;
use statusmotd::model::{Component, ComponentStatus};
use statusmotd::pipeline::{self, Gathered, SourceData};
use statusmotd::render::{Renderer, MAX_FILE_BYTES};
use statusmotd::sanitize::{sanitize, terminal_safe};
use statusmotd::source::v2;

const MAPPING: &str = r#"
[settings]
timezone = "UTC"
upcoming = "3650d"
recent_resolved = "3650d"

[sources.s]
kind = "statuspage-public"
url = "http://127.0.0.1:9"

[clusters.c]
components = ["fuzzcomp"]
"#;

/// No character a terminal could act on, `\n` aside.
fn assert_safe(text: &str) {
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{2028}' | '\u{2029}');
        assert!(!bad, "unsafe {c:?} in {text:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let once = sanitize(&text);
    assert_safe(&once);
    assert_eq!(sanitize(&once), once, "sanitize is not idempotent");
    assert_safe(&terminal_safe(&text));

    let Ok(mut snap) = v2::from_payloads("http://fuzz.example", data, None, None) else {
        return;
    };
    snap.components.push(Component {
        id: "fuzzcomp".into(),
        name: "Fuzz".into(),
        status: ComponentStatus::MajorOutage,
        group_id: None,
        description: None,
        updated_at: None,
        unknown: None,
    });
    for incident in &mut snap.incidents {
        incident.components.push("fuzzcomp".into());
    }
    let config = Config::parse(MAPPING, Path::new("/fuzz/mapping.toml")).expect("fixed mapping");
    let renderer = Renderer::new(None).expect("embedded templates");
    let now: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().expect("fixed time");
    snap.fetched_at = now;
    let data = Gathered {
        sources: BTreeMap::from([(
            "s".to_owned(),
            SourceData {
                snapshot: snap,
                fetch_error: None,
            },
        )]),
        ..Gathered::default()
    };
    let clusters: Vec<_> = config.clusters.values().collect();
    let plan = pipeline::plan(&config, &renderer, &clusters, &data, now);
    for cluster in plan.clusters.values() {
        for file in &cluster.files {
            let text = std::str::from_utf8(&file.bytes).expect("rendered files are UTF-8");
            assert_safe(text);
            assert!(file.bytes.len() <= MAX_FILE_BYTES, "{} bytes", file.bytes.len());
        }
    }
});
