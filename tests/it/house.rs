//! The project's own documents stay true to the code.
//!
//! `ARCHITECTURE.md` must name every source file. The rule: each file
//! `src/**/*.rs` appears in it as its path from the repository root in
//! backticks, e.g. `` `src/output.rs` `` or `` `src/source/mod.rs` ``. A new
//! module fails this test until the code map says what it owns.
//!
//! `RELIABILITY.md` must name only tests that exist. The rule: outside fenced
//! code blocks, every span in backticks that is a Rust path of two or more
//! segments (`` `a::b::c` ``, optionally ending in `*`) is a test name when
//!
//! - it has a `tests` segment: a unit test, `module::tests::name` in
//!   `src/module.rs` or `src/module/mod.rs` (`source::v1::tests::name` in
//!   `src/source/v1.rs`; segments after `tests` are inline modules such as
//!   `prop`);
//! - else its first segment is an integration-test module, a file or folder
//!   in `tests/it/` (`serve::name` in `tests/it/serve.rs`,
//!   `reliability::disk::name` in `tests/it/reliability/disk.rs`).
//!
//! Such a file must hold `fn name`; a name ending in `*` must be the start
//! of some `fn` there (`*` alone: the file must exist). Other paths
//! (`serve::router::token_matches`, `subtle::ConstantTimeEq`) are code, not tests,
//! and are not checked.

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

/// The Rust file of module path `segments` under `dir`: `a/b.rs` or
/// `a/b/mod.rs`.
fn module_file(dir: &Path, segments: &[&str]) -> Option<PathBuf> {
    let rel: PathBuf = segments.iter().collect();
    [rel.with_extension("rs"), rel.join("mod.rs")]
        .into_iter()
        .map(|r| dir.join(r))
        .find(|p| p.is_file())
}

/// The spans in backticks of `doc` outside fenced code blocks.
fn code_spans(doc: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            spans.extend(line.split('`').skip(1).step_by(2));
        }
    }
    spans
}

/// Whether `span` is a Rust path of two or more segments, the last one
/// possibly ending in `*`.
fn is_path(span: &str) -> bool {
    let segments: Vec<&str> = span.split("::").collect();
    let ident = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let (last, init) = segments.split_last().unwrap();
    segments.len() >= 2
        && init.iter().all(|s| ident(s))
        && (ident(last.strip_suffix('*').unwrap_or(last)) || *last == "*")
}

/// Where the test named by `path` must be, or `None` when `path` names no
/// test by the rule above; then whether that file holds it.
fn check_test_path(root: &Path, path: &str) -> Option<Result<(), String>> {
    let segments: Vec<&str> = path.split("::").collect();
    let (name, init) = segments.split_last().unwrap();
    let file = if let Some(at) = init.iter().position(|s| *s == "tests") {
        // The tests of a module are beside its code, or in its own `tests.rs`.
        module_file(&root.join("src"), &init[..=at])
            .or_else(|| module_file(&root.join("src"), &init[..at]))
    } else if module_file(&root.join("tests/it"), &init[..1]).is_some() {
        module_file(&root.join("tests/it"), init)
    } else {
        return None;
    };
    let Some(file) = file else {
        return Some(Err(format!("`{path}`: no file for `{}`", init.join("::"))));
    };
    let text = fs::read_to_string(&file).unwrap();
    let fns: Vec<&str> = text
        .split("fn ")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
        })
        .collect();
    let found = match name.strip_suffix('*') {
        Some(prefix) => prefix.is_empty() || fns.iter().any(|f| f.starts_with(prefix)),
        None => fns.contains(name),
    };
    let shown = file.strip_prefix(root).unwrap().display();
    Some(if found {
        Ok(())
    } else {
        Err(format!("`{path}`: no `fn {name}` in `{shown}`"))
    })
}

#[test]
fn reliability_names_only_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("RELIABILITY.md")).unwrap();
    let checked: Vec<(&str, Result<(), String>)> = code_spans(&doc)
        .into_iter()
        .filter(|span| is_path(span))
        .filter_map(|span| check_test_path(root, span).map(|r| (span, r)))
        .collect();
    // The document names dozens of tests; far fewer means the parse broke.
    assert!(
        checked.len() > 30,
        "found only {} test names in RELIABILITY.md: {:?}",
        checked.len(),
        checked.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );
    let missing: Vec<String> = checked.into_iter().filter_map(|(_, r)| r.err()).collect();
    assert!(
        missing.is_empty(),
        "RELIABILITY.md names tests that do not exist:\n{}\n\
         hint: write each as its module path in the test binary \
         (`reliability::disk::name`) or the library (`output::tests::name`), \
         and rename it there when a test is renamed or moved",
        missing.join("\n")
    );
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
