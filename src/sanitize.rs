//! Untrusted upstream text -> text that is safe to print on a terminal.

/// Placeholder until the real sanitizer lands.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect()
}
