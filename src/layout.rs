//! How statusmotd lays out the JSON it writes: `serde_json`'s pretty layout
//! (two spaces a level), from some depth in, and down to some depth.
//!
//! An entry of `index.json` is laid out as it sits inside the whole file
//! ([`Layout::from_depth`]). A snapshot file keeps the pretty layout for its
//! frame and puts each component, group and item on one line of its own
//! ([`Layout::lines_to`]): a third smaller than fully pretty, and read that
//! much faster by every render that takes it, while a diff of two files
//! still shows one line per thing that changed.

use std::io::{Result, Write};

use serde::Serialize;

/// A `serde_json` formatter: line breaks and indents in the containers down
/// to `lines_to` levels deep, none below.
pub struct Layout {
    depth: usize,
    lines_to: usize,
    has_value: bool,
}

impl Layout {
    /// The pretty layout, starting `depth` levels into a document: the text
    /// to put there, its lines after the first indented to fit.
    pub fn from_depth(depth: usize) -> Self {
        Self {
            depth,
            lines_to: usize::MAX,
            has_value: false,
        }
    }

    /// The pretty layout for the containers down to `depth` levels deep;
    /// each value inside them on a line of its own, compact.
    pub fn lines_to(depth: usize) -> Self {
        Self {
            depth: 0,
            lines_to: depth,
            has_value: false,
        }
    }

    /// `value` laid out, or `None` if it cannot be serialized (a map whose
    /// keys are not strings).
    pub fn text(self, value: &impl Serialize, capacity: usize) -> Option<String> {
        let mut text = Vec::with_capacity(capacity);
        let mut ser = serde_json::Serializer::with_formatter(&mut text, self);
        value.serialize(&mut ser).ok()?;
        // serde_json writes UTF-8.
        String::from_utf8(text).ok()
    }

    /// Whether the values of the container being written go on lines of
    /// their own.
    fn broken(&self) -> bool {
        self.depth <= self.lines_to
    }

    /// What comes before a value or a key.
    fn before<W: ?Sized + Write>(&self, w: &mut W, first: bool) -> Result<()> {
        if !self.broken() {
            return if first { Ok(()) } else { w.write_all(b",") };
        }
        w.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(w)
    }

    fn indent<W: ?Sized + Write>(&self, w: &mut W) -> Result<()> {
        for _ in 0..self.depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, w: &mut W, c: &[u8]) -> Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(c)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, c: &[u8]) -> Result<()> {
        let broken = self.broken();
        self.depth -= 1;
        if broken && self.has_value {
            w.write_all(b"\n")?;
            self.indent(w)?;
        }
        w.write_all(c)
    }
}

impl serde_json::ser::Formatter for Layout {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> Result<()> {
        self.before(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _: &mut W) -> Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> Result<()> {
        self.before(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> Result<()> {
        w.write_all(if self.broken() { b": " } else { b":" })
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _: &mut W) -> Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys in sorted order, which is also the order written: the same
    /// text whether or not `serde_json` keeps the order of insertion.
    fn sample() -> serde_json::Value {
        serde_json::json!({
            "empty": {},
            "format": 1,
            "none": [],
            "sources": {"a\"b": {
                "components": [
                    {"id": "c1", "nested": {"deep": [1, {}]}, "tags": ["x", "y"]},
                    {"id": "c2\n", "tags": []}
                ],
                "groups": [],
                "page": {"id": "p", "url": null}
            }}
        })
    }

    #[test]
    fn from_depth_zero_is_the_pretty_layout() {
        let value = sample();
        assert_eq!(
            Layout::from_depth(0).text(&value, 0).unwrap(),
            serde_json::to_string_pretty(&value).unwrap()
        );
    }

    #[test]
    fn from_a_depth_in_it_is_the_text_that_sits_there() {
        let value = sample();
        let whole = serde_json::to_string_pretty(&serde_json::json!({"a": {"b": value}})).unwrap();
        let inner = Layout::from_depth(2).text(&value, 0).unwrap();
        assert!(whole.contains(&format!("\"b\": {inner}\n")), "{inner}");
    }

    #[test]
    fn below_its_depth_each_value_is_one_compact_line() {
        let value = sample();
        let text = Layout::lines_to(4).text(&value, 0).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let c1 = r#"        {"id":"c1","nested":{"deep":[1,{}]},"tags":["x","y"]},"#;
        let c2 = r#"        {"id":"c2\n","tags":[]}"#;
        assert!(lines.contains(&c1), "{text}");
        assert!(lines.contains(&c2), "{text}");
        // The frame is laid out as the pretty layout lays it out.
        assert!(lines.contains(&"  \"format\": 1,"), "{text}");
        assert!(lines.contains(&"  \"empty\": {},"), "{text}");
        assert!(lines.contains(&"        \"id\": \"p\","), "{text}");
        assert!(lines.contains(&"      \"groups\": [],"), "{text}");
        // And it reads back as the same value.
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        assert!(text.len() < pretty.len());
    }
}
