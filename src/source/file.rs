//! The `file` source: a snapshot file that a site script writes, in the
//! format `fetch --save` writes (`schema/snapshot.schema.json`, printed by
//! `statusmotd schema`), holding exactly one source whatever its name.
//!
//! The file is checked against the schema before anything else reads it, so
//! a mistake is reported at the JSON path where it is (`/sources/site/
//! incidents/3/impact`) rather than as a line and column of a serde error.
//! What passes goes through [`Snapshot::sanitized`] like any upstream
//! answer: a site script is one more writer whose text is not trusted.
//!
//! Failures come in kinds a caller can act on: a file that is missing or
//! cannot be read will not fix itself (a build step must notice), while a
//! file that is cut short or malformed is a bad answer that the last good
//! snapshot covers until the script writes it again.

use std::fmt;
use std::io::Read as _;
use std::path::Path;
use std::sync::LazyLock;

use serde_json::Value;

use crate::model::{Snapshot, SNAPSHOT_FORMAT};
use crate::sanitize::sanitize_line;

/// The JSON Schema of a snapshot file, as shipped in the repository and
/// printed by `statusmotd schema`.
pub const SCHEMA: &str = include_str!("../../schema/snapshot.schema.json");

/// The largest file read; a larger one is an error, not an out-of-memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// How much of one schema complaint is shown: the offending value is part of
/// it, and that may be a whole object.
const MAX_DETAIL_CHARS: usize = 300;

/// At most this many problems are counted after the first one reported.
const MAX_COUNTED: usize = 1000;

const HINT: &str = "`statusmotd schema` prints the JSON Schema this file must follow";

/// The schema, compiled once. Formats are asserted, so a timestamp that is
/// not RFC 3339 fails here with its path rather than later in serde. No
/// reference is resolved over the network or from disk: the schema refers
/// only to itself.
static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| e.to_string())
});

/// What kind of failure a [`FileSourceError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileSourceErrorKind {
    /// The file is missing, not a regular file, or cannot be read. Waiting
    /// does not fix it: a build step must notice.
    Unreadable,
    /// The file is larger than [`MAX_FILE_BYTES`].
    TooLarge,
    /// The file is not JSON: cut short (a writer that does not replace the
    /// file atomically, caught halfway) or garbage. The last good snapshot
    /// stands until the file is written again.
    InvalidJson,
    /// JSON, but not a snapshot file this version reads: it breaks the
    /// schema, has another `format`, or holds no source or several.
    Invalid,
}

/// A snapshot file that could not be used. `Display` is one line saying
/// what is wrong and where; the alternate form (`{:#}`) adds the `hint:`
/// line. Anything quoted from the file has passed the sanitizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSourceError {
    kind: FileSourceErrorKind,
    message: String,
    hint: Option<&'static str>,
}

impl FileSourceError {
    fn new(kind: FileSourceErrorKind, path: &Path, detail: impl fmt::Display) -> Self {
        let what = match kind {
            FileSourceErrorKind::Unreadable => "cannot read status file",
            _ => "invalid status file",
        };
        Self {
            kind,
            message: format!("{what} `{}`: {detail}", path.display()),
            hint: match kind {
                FileSourceErrorKind::Unreadable => None,
                _ => Some(HINT),
            },
        }
    }

    pub fn kind(&self) -> FileSourceErrorKind {
        self.kind
    }

    /// Whether retrying cannot help until someone acts: the file is missing
    /// or unreadable. Every other kind is a bad answer that the writer's next
    /// version of the file may fix.
    pub fn is_permanent(&self) -> bool {
        self.kind == FileSourceErrorKind::Unreadable
    }

    /// What went wrong, in a few words fit for a MOTD's stale note: fixed
    /// text, never anything the file holds.
    pub fn note(&self) -> &'static str {
        match self.kind {
            FileSourceErrorKind::Unreadable => "the status file cannot be read",
            FileSourceErrorKind::TooLarge => "the status file is too large to read",
            FileSourceErrorKind::InvalidJson => "the status file is not valid JSON",
            FileSourceErrorKind::Invalid => "the status file does not follow its format",
        }
    }

    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<&str> {
        self.hint
    }
}

impl fmt::Display for FileSourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let (true, Some(hint)) = (f.alternate(), self.hint) {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FileSourceError {}

impl From<FileSourceError> for crate::Error {
    fn from(e: FileSourceError) -> Self {
        crate::Error::Runtime(format!("{e:#}"))
    }
}

/// Reads the snapshot file at `path`: at most [`MAX_FILE_BYTES`], valid
/// against [`SCHEMA`], holding exactly one source. Returns that source's
/// snapshot, sanitized. Blocking: call it off the async runtime.
pub fn read(path: &Path) -> Result<Snapshot, FileSourceError> {
    read_reporting(path).map(|(snapshot, _)| snapshot)
}

/// [`read`], with one line per item left out because it broke the schema:
/// one bad item costs that item, not the file.
pub fn read_reporting(path: &Path) -> Result<(Snapshot, Vec<String>), FileSourceError> {
    let bytes = read_bytes(path)?;
    parse_reporting(path, &bytes)
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, FileSourceError> {
    use FileSourceErrorKind::{TooLarge, Unreadable};
    let unreadable = |e: std::io::Error| FileSourceError::new(Unreadable, path, e);
    // A FIFO or a device would block or never end: only a regular file (or
    // a link to one) is read.
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(FileSourceError::new(Unreadable, path, "not a regular file"));
    }
    let too_large = || {
        FileSourceError::new(
            TooLarge,
            path,
            format_args!(
                "larger than {} MiB, the most this tool reads",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    // The file may have grown since it was measured.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Parses, checks and sanitizes the bytes of a snapshot file read from
/// `path` (named in errors only).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Snapshot, FileSourceError> {
    parse_reporting(path, bytes).map(|(snapshot, _)| snapshot)
}

/// [`parse`], with the items it left out.
pub fn parse_reporting(
    path: &Path,
    bytes: &[u8],
) -> Result<(Snapshot, Vec<String>), FileSourceError> {
    use FileSourceErrorKind::{Invalid, InvalidJson};
    let invalid = |detail: &dyn fmt::Display| FileSourceError::new(Invalid, path, detail);
    // Bytes that are not UTF-8 become U+FFFD, as in an upstream answer: one
    // bad byte in a body costs that character, not the file.
    let text = String::from_utf8_lossy(bytes);
    let mut doc: Value = serde_json::from_str(&text).map_err(|e| {
        let detail = if e.is_eof() {
            format!("the JSON ends early ({e}): is it still being written?")
        } else {
            format!("not JSON: {e}")
        };
        FileSourceError::new(InvalidJson, path, detail)
    })?;
    // Another format number says more than the schema's "1 was expected".
    if let Some(format) = doc.get("format").and_then(Value::as_u64) {
        if format != u64::from(SNAPSHOT_FORMAT) {
            return Err(invalid(&format_args!(
                "format {format} is not the format {SNAPSHOT_FORMAT} this version reads"
            )));
        }
    }
    let validator = VALIDATOR
        .as_ref()
        .map_err(|e| invalid(&format_args!("the built-in schema does not compile: {e}")))?;
    let skipped = drop_broken_items(validator, &mut doc);
    if let Some(detail) = schema_problem(validator, &doc) {
        return Err(invalid(&detail));
    }
    let Value::Object(mut top) = doc else {
        return Err(invalid(&"not a JSON object"));
    };
    let Some(Value::Object(sources)) = top.remove("sources") else {
        return Err(invalid(&"no `sources` object"));
    };
    if sources.len() != 1 {
        let names: Vec<String> = sources
            .keys()
            .map(|k| format!("`{}`", shorten(&sanitize_line(k))))
            .collect();
        let detail = match names.len() {
            0 => "`sources` is empty: a status file holds exactly one source".to_owned(),
            n => format!(
                "`sources` holds {n} sources ({}): a status file holds exactly one",
                names.join(", ")
            ),
        };
        return Err(invalid(&detail));
    }
    let Some((name, snap)) = sources.into_iter().next() else {
        return Err(invalid(&"`sources` is empty"));
    };
    // The schema admits only what the model reads, so this fails only where
    // the two disagree (a timestamp beyond what the clock can hold).
    let snap: Snapshot = serde_json::from_value(snap).map_err(|e| {
        invalid(&format_args!(
            "`/sources/{}`: {}",
            shorten(&sanitize_line(&name)),
            shorten(&sanitize_line(&e.to_string()))
        ))
    })?;
    Ok((snap.sanitized(), skipped))
}

/// Removes the components, groups and incidents that break the schema, and
/// says which, when every problem of the file lies inside such an item. A
/// problem anywhere else (the page, `fetched_at`, the format) leaves the
/// file as it is, for [`schema_problem`] to refuse it whole.
fn drop_broken_items(validator: &jsonschema::Validator, doc: &mut Value) -> Vec<String> {
    const LISTS: [&str; 3] = ["components", "groups", "incidents"];
    // (list, index) -> what is wrong with it, the first problem found.
    let mut broken = std::collections::BTreeMap::<(&str, usize), String>::new();
    for error in validator.iter_errors(doc) {
        let at = error.instance_path().as_str().to_owned();
        // "/sources/<name>/<list>/<index>/...": the name cannot hold a `/`
        // (JSON Pointer writes it `~1`), so the parts are positional.
        let parts: Vec<&str> = at.split('/').collect();
        let item = match parts.as_slice() {
            ["", "sources", _, list, index, ..] => LISTS
                .iter()
                .find(|l| *l == list)
                .zip(index.parse::<usize>().ok()),
            _ => None,
        };
        let Some((list, index)) = item else {
            return Vec::new();
        };
        broken
            .entry((list, index))
            .or_insert_with(|| describe(&error));
    }
    let Some(source) = doc
        .get_mut("sources")
        .and_then(Value::as_object_mut)
        .filter(|sources| sources.len() == 1)
        .and_then(|sources| sources.values_mut().next())
    else {
        return Vec::new();
    };
    let mut skipped = Vec::new();
    // Highest index first, so the lower ones stay where they are.
    for ((list, index), why) in broken.into_iter().rev() {
        if let Some(items) = source.get_mut(list).and_then(Value::as_array_mut) {
            if index < items.len() {
                items.remove(index);
                skipped.push(format!("skipped item {index} of `{list}`: {why}"));
            }
        }
    }
    skipped.reverse();
    skipped
}

/// The first place where `doc` breaks the schema, with its JSON path, and
/// how many more there are.
fn schema_problem(validator: &jsonschema::Validator, doc: &Value) -> Option<String> {
    let mut errors = validator.iter_errors(doc);
    let first = errors.next()?;
    let more = errors.take(MAX_COUNTED).count();
    let detail = describe(&first);
    let more = match more {
        0 => String::new(),
        1 => " (and 1 more problem)".to_owned(),
        n if n >= MAX_COUNTED => format!(" (and {n} or more problems)"),
        n => format!(" (and {n} more problems)"),
    };
    Some(detail + &more)
}

/// One schema problem: its JSON path and what is wrong, one line,
/// sanitized and shortened (it may quote the file).
fn describe(first: &jsonschema::ValidationError<'_>) -> String {
    let at = match first.instance_path().as_str() {
        "" => "the top level".to_owned(),
        at => format!("`{}`", shorten(&sanitize_line(at))),
    };
    // The library lists two values of a long enum; a script's author needs
    // them all, and they are the schema's, so short.
    let complaint = match first.kind() {
        jsonschema::error::ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|o| o.iter().map(Value::to_string).collect())
                .unwrap_or_default();
            format!("{} is not one of {}", first.instance(), options.join(", "))
        }
        _ => first.to_string(),
    };
    format!("{at}: {}", shorten(&sanitize_line(&complaint)))
}

/// `s`, cut to [`MAX_DETAIL_CHARS`] characters with an ellipsis.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests build their own scratch files
mod tests {
    use super::*;
    use crate::model::{ComponentStatus, ItemKind};

    /// A minimal valid file, as a cron script might write it.
    const MINIMAL: &str = r#"{
  "format": 1,
  "sources": {
    "site": {
      "page": {"id": "site", "name": "Example site checks"},
      "fetched_at": "2024-05-14T12:00:00Z",
      "components": [
        {"id": "lustre", "name": "Lustre /work", "status": "degraded_performance"}
      ],
      "groups": [],
      "incidents": [
        {
          "id": "i1", "kind": "incident", "name": "Slow I/O on /work",
          "status": "investigating", "impact": "minor",
          "created_at": "2024-05-14T11:50:00+01:00",
          "components": ["lustre"],
          "updates": [{"id": "u1", "status": "investigating", "body": "We are looking."}]
        }
      ]
    }
  }
}"#;

    fn parse_text(text: &str) -> Result<Snapshot, FileSourceError> {
        parse(
            Path::new("/var/lib/site-status/status.json"),
            text.as_bytes(),
        )
    }

    fn edit(f: impl FnOnce(&mut Value)) -> String {
        let mut doc: Value = serde_json::from_str(MINIMAL).unwrap();
        f(&mut doc);
        doc.to_string()
    }

    #[test]
    fn the_schema_compiles() {
        assert!(VALIDATOR.is_ok(), "{:?}", VALIDATOR.as_ref().err());
    }

    #[test]
    fn a_minimal_file_reads_with_nulls_left_out() {
        let snap = parse_text(MINIMAL).unwrap();
        assert_eq!(snap.page.name, "Example site checks");
        assert_eq!(snap.page.url, None);
        assert_eq!(
            snap.components[0].status,
            ComponentStatus::DegradedPerformance
        );
        let i = &snap.incidents[0];
        assert_eq!(i.kind, ItemKind::Incident);
        assert_eq!(
            i.created_at,
            Some("2024-05-14T10:50:00Z".parse().unwrap()),
            "offsets are honoured"
        );
        assert_eq!(i.resolved_at, None);
        assert_eq!(i.updates[0].body, "We are looking.");
    }

    #[test]
    fn a_component_that_could_not_be_checked_reads_with_its_reason_on_one_line() {
        let text = edit(|doc| {
            let snap = doc["sources"]
                .as_object_mut()
                .unwrap()
                .values_mut()
                .next()
                .unwrap();
            snap["components"][0]["unknown"] = Value::from("cannot stat\n/work");
        });
        let snap = parse_text(&text).unwrap();
        assert_eq!(
            snap.components[0].unknown.as_deref(),
            Some("cannot stat /work")
        );
        assert_eq!(parse_text(MINIMAL).unwrap().components[0].unknown, None);
    }

    #[test]
    fn a_missing_file_is_unreadable_and_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let e = read(&path).unwrap_err();
        assert_eq!(e.kind(), FileSourceErrorKind::Unreadable);
        assert!(e.is_permanent());
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read status file `{}`: ", path.display())),
            "{e}"
        );
        // A directory is no file either.
        let e = read(dir.path()).unwrap_err();
        assert_eq!(e.kind(), FileSourceErrorKind::Unreadable);
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_good_file_on_disk_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        std::fs::write(&path, MINIMAL).unwrap();
        assert_eq!(read(&path).unwrap(), parse_text(MINIMAL).unwrap());
    }

    #[test]
    fn a_file_over_the_cap_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let e = read(&path).unwrap_err();
        assert_eq!(e.kind(), FileSourceErrorKind::TooLarge);
        assert!(!e.is_permanent());
        assert!(e.to_string().contains("larger than 16 MiB"), "{e}");
    }

    #[test]
    fn a_half_written_file_is_invalid_json_not_permanent() {
        let e = parse_text(&MINIMAL[..MINIMAL.len() / 2]).unwrap_err();
        assert_eq!(e.kind(), FileSourceErrorKind::InvalidJson);
        assert!(!e.is_permanent());
        assert!(e.to_string().contains("still being written"), "{e}");
        let e = parse_text("<html>").unwrap_err();
        assert_eq!(e.kind(), FileSourceErrorKind::InvalidJson);
        assert!(e.to_string().contains("not JSON"), "{e}");
        assert!(
            format!("{e:#}").contains("\nhint: `statusmotd schema`"),
            "{e:#}"
        );
    }

    #[test]
    fn a_broken_item_costs_that_item_and_names_its_json_path() {
        let text = edit(|d| {
            let incidents = d["sources"]["site"]["incidents"].as_array_mut().unwrap();
            let mut good = incidents[0].clone();
            good["id"] = "i2".into();
            incidents[0]["impact"] = "huge".into();
            incidents.push(good);
            d["sources"]["site"]["components"][0]
                .as_object_mut()
                .unwrap()
                .remove("status");
        });
        let (snap, skipped) = parse_reporting(
            Path::new("/var/lib/site-status/status.json"),
            text.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        // The good incident stays; the broken one and the component go.
        let ids: Vec<&str> = snap.incidents.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i2"]);
        assert!(snap.components.is_empty(), "{:?}", snap.components);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(
            skipped[0].starts_with(
                "skipped item 0 of `components`: `/sources/site/components/0`: \"status\" is a required property"
            ),
            "{skipped:?}"
        );
        assert!(
            skipped[1].starts_with(
                "skipped item 0 of `incidents`: `/sources/site/incidents/0/impact`: \"huge\" is not one of "
            ),
            "{skipped:?}"
        );
        assert!(skipped[1].contains("\"critical\""), "{skipped:?}");
    }

    #[test]
    fn a_problem_outside_the_items_refuses_the_file_naming_its_json_path() {
        let text = edit(|d| d["sources"]["site"]["fetched_at"] = "yesterday".into());
        let e = parse_text(&text).unwrap_err();
        assert_eq!(e.kind(), FileSourceErrorKind::Invalid);
        let shown = format!("{e:#}");
        assert!(
            shown.starts_with(
                "invalid status file `/var/lib/site-status/status.json`: \
                 `/sources/site/fetched_at`: \"yesterday\" is not a \"date-time\""
            ),
            "{shown}"
        );
        assert!(
            shown.ends_with(
                "\nhint: `statusmotd schema` prints the JSON Schema this file must follow"
            ),
            "{shown}"
        );
        // A broken item beside it is no reason to accept the file.
        let text = edit(|d| {
            d["sources"]["site"]["page"]
                .as_object_mut()
                .unwrap()
                .remove("name");
            d["sources"]["site"]["incidents"][0]["kind"] = "outage".into();
        });
        let e = parse_text(&text).unwrap_err();
        assert!(e.to_string().ends_with("(and 1 more problem)"), "{e}");
    }

    #[test]
    fn another_format_or_not_one_source_is_invalid() {
        let e = parse_text(&edit(|d| d["format"] = 2.into())).unwrap_err();
        assert_eq!(e.kind(), FileSourceErrorKind::Invalid);
        assert!(
            e.to_string().contains("format 2 is not the format 1"),
            "{e}"
        );
        let e = parse_text(r#"{"format": 1, "sources": {}}"#).unwrap_err();
        assert_eq!(e.kind(), FileSourceErrorKind::Invalid);
        assert!(e.to_string().contains("`sources` is empty"), "{e}");
        let e = parse_text(&edit(|d| {
            let site = d["sources"]["site"].clone();
            d["sources"]["other"] = site;
        }))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`sources` holds 2 sources (`other`, `site`)"),
            "{e}"
        );
        let e = parse_text("[1, 2]").unwrap_err();
        assert_eq!(e.kind(), FileSourceErrorKind::Invalid);
        assert!(e.to_string().contains("the top level: "), "{e}");
    }

    #[test]
    fn the_source_may_have_any_name() {
        let text = MINIMAL.replace("\"site\": {", "\"anything at all\": {");
        assert_eq!(parse_text(&text).unwrap(), parse_text(MINIMAL).unwrap());
    }

    #[test]
    fn a_hostile_file_comes_out_sanitized() {
        let text = edit(|d| {
            let s = &mut d["sources"]["site"];
            s["page"]["name"] = "Site\u{1b}[2J checks\u{202e}".into();
            s["page"]["url"] = "javascript:alert(1)".into();
            s["components"][0]["name"] = "Lustre<br>/work\u{7}".into();
            s["components"][0]["description"] =
                "line one\r\n\u{1b}]52;c;ZWNobyBoaQ==\u{7}two".into();
            let i = &mut s["incidents"][0];
            i["name"] = "Slow\nI/O\u{2066} on <b>/work</b>".into();
            i["shortlink"] = "javascript:alert(document.cookie)".into();
            i["updates"][0]["body"] =
                "We are <script>x</script>looking.<br>\u{1b}[31mred\u{1b}[0m\u{9b}2J".into();
        });
        let snap = parse_text(&text).unwrap();
        assert_eq!(snap.page.name, "Site checks");
        assert_eq!(snap.page.url, None);
        assert_eq!(snap.components[0].name, "Lustre /work");
        let description = snap.components[0].description.as_deref().unwrap();
        assert!(
            !description.contains('\u{1b}') && !description.contains("52;"),
            "{description:?}"
        );
        let i = &snap.incidents[0];
        assert_eq!(i.name, "Slow I/O on /work");
        assert_eq!(i.shortlink, None, "only http(s) links are kept");
        let body = &i.updates[0].body;
        assert!(
            !body.contains('\u{1b}') && !body.contains('\u{9b}') && !body.contains('<'),
            "{body:?}"
        );
        assert!(body.contains("red"), "{body:?}");
    }

    #[test]
    fn hostile_text_in_an_error_is_sanitized_and_short() {
        // A bad value under a hostile source name, and a huge one.
        let text = edit(|d| {
            let site = d["sources"]["site"].take();
            d["sources"] = serde_json::json!({ "x\u{1b}[2J\u{202e}": site });
            d["sources"]["x\u{1b}[2J\u{202e}"]["page"] = "\u{202e}".repeat(5000).into();
        });
        let e = parse_text(&text).unwrap_err();
        let shown = format!("{e:#}");
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{202e}'),
            "{shown:?}"
        );
        assert!(shown.len() < 1000, "{} bytes: {shown}", shown.len());
    }

    #[test]
    fn no_input_panics() {
        for text in [
            "",
            "null",
            "1",
            "\"x\"",
            "{}",
            "{\"format\": 1}",
            "{\"format\": -1, \"sources\": 5}",
            "{\"format\": 1e400}",
            "{\"format\": 1, \"sources\": {\"a\": null}}",
            "{\"format\": 1, \"sources\": {\"a\": {\"fetched_at\": \"99999-01-01T00:00:00Z\"}}}",
        ] {
            assert!(parse_text(text).is_err(), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse_text(&deep).unwrap_err().kind(),
            FileSourceErrorKind::InvalidJson
        );
        // Not UTF-8: the bad byte becomes U+FFFD, the file still reads.
        let mut bytes = MINIMAL
            .replace("We are looking.", "We are \u{fffd}looking.")
            .into_bytes();
        let at = bytes
            .windows(3)
            .position(|w| w == "\u{fffd}".as_bytes())
            .unwrap();
        bytes.splice(at..at + 3, [0xff]);
        let snap = parse(Path::new("s.json"), &bytes).unwrap();
        assert_eq!(snap.incidents[0].updates[0].body, "We are \u{fffd}looking.");
    }
}
