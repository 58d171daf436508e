//! The project's own documents stay true to the code.
//!
//! `ARCHITECTURE.md` must name every source file. The rule: each file
//! `src/**/*.rs` appears in it as its path from the repository root in
//! backticks, e.g. `` `src/output.rs` `` or `` `src/source/mod.rs` ``. A new
//! module fails this test until the code map says what it owns.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn architecture_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    assert!(files.len() > 10, "found only {files:?} under src/");
    let missing: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(root).unwrap().to_str().unwrap().to_owned())
        .filter(|rel| !doc.contains(&format!("`{rel}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name {}\n\
         hint: add each to the code map of ARCHITECTURE.md, as its path in backticks, \
         saying what it owns",
        missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
