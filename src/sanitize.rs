//! Untrusted upstream text -> text that is safe to print on a terminal.
//!
//! Statuspage text is typed by people into a web form, goes through HTML and
//! JSON, and ends up on the login screen of every user of a cluster. A status
//! page account is not a shell account: nothing in its text may move the
//! cursor, clear the screen, set the clipboard (OSC 52), retitle the window,
//! or reorder what the reader sees (bidi overrides). [`sanitize`] turns such
//! text into plain lines; [`terminal_safe`] is its control-character stage
//! alone, which the renderer applies once more to everything a template
//! prints.
//!
//! One pass is: HTML tags -> line breaks or nothing, then entities decoded,
//! then escape sequences and control, bidi and invisible characters removed,
//! then whitespace tidied. Decoding comes before filtering so that `&#27;[2J`
//! or `&#x202E;` are caught like the raw characters would be.

use std::borrow::Cow;

/// Passes before giving up on text that keeps changing. Real text settles
/// in one or two; only entities encoded inside entities over and over
/// (`&amp;amp;amp;…`) take more, one pass per level, and such text is hostile.
const MAX_PASSES: usize = 16;

/// Makes untrusted text safe and tidy for a terminal.
///
/// The result has no control character but `\n`, no escape sequence, no
/// format character (bidi controls, zero-width space, byte order mark, tag
/// characters; see `is_invisible`) but the zero-width joiner and
/// non-joiner, no Hangul filler, no more than `MAX_ZERO_WIDTH_RUN`
/// combining marks in a row, no HTML tag, no trailing space on a line, no
/// leading or trailing blank line and never two blank lines in a row.
///
/// `sanitize(sanitize(x)) == sanitize(x)`: a snapshot is sanitized when a
/// source builds it and again when it is loaded from `state_dir`, and both
/// must render the same bytes. One pass is not idempotent on its own
/// (`&amp;lt;b&amp;gt;` becomes `&lt;b&gt;`, then `<b>`, then nothing), so
/// passes repeat until the text no longer changes; text encoded too many
/// times over loses its `<` and `&` instead. Clean text, the common case, is
/// recognised in one scan.
pub fn sanitize(s: &str) -> String {
    let mut current = Cow::Borrowed(s);
    for _ in 0..MAX_PASSES {
        if is_clean(&current) {
            return current.into_owned();
        }
        let next = pass(&current);
        if next == *current {
            return next;
        }
        current = Cow::Owned(next);
    }
    // Still changing: drop what could be decoded further, so that the result
    // is clean and the cost stays linear.
    let flat: String = current
        .chars()
        .filter(|c| !matches!(c, '<' | '&'))
        .collect();
    tidy_whitespace(&filter_controls(&flat))
}

/// [`sanitize`] for one-line fields (names, ids, statuses): line breaks,
/// however written (`<br>`, `<p>`, `\r`, U+2028), become single spaces, and
/// the ends are trimmed.
///
/// A name is printed inside a line of the banner or of `gate`'s report; a
/// line break in it would start a line of its own that reads like the
/// program's (`clear: nothing blocks`, `== archer2: Operational ==`).
pub fn sanitize_line(s: &str) -> String {
    let text = sanitize(s);
    if !text.contains('\n') && text.trim_start().len() == text.len() {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

/// [`sanitize`] in place: a clean text, which most upstream text is, is
/// left where it is instead of copied.
pub fn sanitize_in_place(v: &mut String) {
    if !is_clean(v) {
        *v = sanitize(v);
    }
}

/// [`sanitize_line`] in place, as [`sanitize_in_place`].
pub fn sanitize_line_in_place(v: &mut String) {
    // What `sanitize_line` returns unchanged: a clean text on one line
    // that does not start with a space.
    if !(is_clean(v) && !v.contains('\n') && v.trim_start().len() == v.len()) {
        *v = sanitize_line(v);
    }
}

/// [`sanitize_line`] for a link (a shortlink, a page's address): an
/// `http://` or `https://` URL with a host, and no whitespace, quote, angle
/// bracket or backslash, which could end it early wherever it is printed;
/// `None` for anything else. A link that does not survive this is dropped
/// rather than shown mangled.
pub fn sanitize_url(s: &str) -> Option<String> {
    let url = sanitize_line(s);
    let lower = url.get(..8).unwrap_or(&url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return None;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let ok = !host.is_empty()
        && !host.starts_with(['.', ':', '@'])
        && url
            .chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '<' | '>' | '"' | '\'' | '`' | '\\'));
    ok.then_some(url)
}

/// The control-character stage of [`sanitize`] alone: escape sequences,
/// C0/C1 controls but `\n`, format characters and Hangul fillers removed,
/// long runs of combining marks cut; `\r\n` and a lone `\r` to `\n`, `\t` to
/// a space, U+2028/U+2029 to `\n`. No HTML handling and no whitespace
/// tidying, so text that is already laid out (indented, wrapped) keeps its
/// shape.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| !needs_filter(c)) && !over_zero_width_run(s) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(filter_controls(s))
    }
}

fn pass(s: &str) -> String {
    let s = strip_tags(s);
    let s = decode_entities(&s);
    let s = filter_controls(&s);
    tidy_whitespace(&s)
}

/// Whether a pass would leave `s` unchanged, judged conservatively: any `<`,
/// and any `&` that could start an entity (followed by a letter, a digit or
/// `#`), sends the text the long way.
fn is_clean(s: &str) -> bool {
    // Most upstream text is printable ASCII on one line, with no `<` or
    // `&`: one pass without branches per byte tells.
    if is_plain(s.as_bytes()) {
        return s.as_bytes().last() != Some(&b' ');
    }
    if s.is_ascii() {
        is_clean_ascii(s.as_bytes())
    } else {
        is_clean_chars(s)
    }
}

/// Whether every byte of `s` is printable ASCII other than `<` and `&`.
/// Folded without stopping early, so that the compiler checks many bytes
/// at a time.
#[allow(clippy::needless_bitwise_bool)] // no branch per byte: see above
fn is_plain(s: &[u8]) -> bool {
    s.iter().fold(true, |ok, &c| {
        ok & (b' '..=b'~').contains(&c) & (c != b'<') & (c != b'&')
    })
}

/// [`is_clean`] of any text, one character at a time.
fn is_clean_chars(s: &str) -> bool {
    if s.starts_with('\n') || s.ends_with('\n') || s.contains("\n\n\n") {
        return false;
    }
    let mut prev = '\n';
    for c in s.chars() {
        if c == '<' || needs_filter(c) || (prev == '&' && starts_entity(c)) {
            return false;
        }
        if c == '\n' && prev.is_whitespace() && prev != '\n' {
            return false;
        }
        prev = c;
    }
    if prev.is_whitespace() && prev != '\n' {
        return false;
    }
    !over_zero_width_run(s)
}

/// [`is_clean`] of ASCII text, most upstream text, one byte at a time: no
/// control character but `\n` and no format character can be in it, and
/// the only whitespace besides `\n` that is not a control is the space.
fn is_clean_ascii(s: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (s.first(), s.last()) else {
        return true;
    };
    if first == b'\n' || matches!(last, b'\n' | b' ') {
        return false;
    }
    let mut prev = b'\n';
    let mut newlines = 0;
    for &c in s {
        match c {
            // A line break after a space, or a third in a row.
            b'\n' if prev == b' ' || newlines == 2 => return false,
            b'\n' => newlines += 1,
            b'<' => return false,
            _ if prev == b'&' && starts_entity(char::from(c)) => return false,
            b' '..=b'~' => newlines = 0,
            _ => return false,
        }
        prev = c;
    }
    true
}

/// Whether `c`, after `&`, could begin an entity a pass would decode
/// (`&amp;`, `&#39;`): only names of letters and digits, and numbers, are
/// decoded.
fn starts_entity(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '#'
}

/// Characters the control stage removes or replaces, runs of zero-width
/// characters aside (see [`over_zero_width_run`]).
fn needs_filter(c: char) -> bool {
    // ASCII first: most text is, and it holds no format character.
    if c.is_ascii() {
        return c.is_ascii_control() && c != '\n';
    }
    c.is_control() || is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `s` has more than [`MAX_ZERO_WIDTH_RUN`] zero-width characters in
/// a row, which the control stage would shorten.
fn over_zero_width_run(s: &str) -> bool {
    if s.is_ascii() {
        return false;
    }
    let mut run = 0usize;
    for c in s.chars() {
        if is_zero_width(c) {
            run += 1;
            if run > MAX_ZERO_WIDTH_RUN {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// Format characters (general category Cf) and the Hangul fillers: they
/// change what the reader sees without being seen. Among them are the bidi
/// controls, which reorder a line; the zero-width space and word joiner,
/// the soft hyphen, the byte order mark, the tag characters that can spell
/// out a hidden message, and the Hangul fillers, which are letters that draw
/// nothing. Zero-width joiner and non-joiner stay: emoji sequences and
/// several scripts need them.
fn is_invisible(c: char) -> bool {
    !matches!(c, '\u{200C}' | '\u{200D}') && (is_format(c) || is_hangul_filler(c))
}

/// General category Cf, from `DerivedGeneralCategory.txt` of Unicode 15.0
/// (the only change since 14.0 is U+13439..U+1343F; ASCII has none).
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Hangul fillers (Lo, not Cf): they take a place in a word and show
/// nothing, so a name can look empty or look like another.
fn is_hangul_filler(c: char) -> bool {
    matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}')
}

/// Zero-width characters that may follow a base character: combining marks,
/// joiners, variation selectors. More than this many in a row are dropped:
/// real text stacks two or three (Vietnamese, pointed Hebrew, Tibetan), an
/// emoji sequence puts one between pictures, and hundreds stacked on one
/// letter ("Zalgo" text) draw over the lines around it.
const MAX_ZERO_WIDTH_RUN: usize = 4;

/// Whether `c` takes no column of its own (it joins the character before).
fn is_zero_width(c: char) -> bool {
    !c.is_ascii() && unicode_width::UnicodeWidthChar::width(c) == Some(0)
}

/// Drops tags and turns `<br>` into a line break and `<p>`, `</p>` into a
/// paragraph break. Only `<` followed by a letter, `/` or `!` starts a tag,
/// and only when a `>` closes it before another `<`, so `a < b`, `<3` and
/// `x <- y` are text.
fn strip_tags(s: &str) -> Cow<'_, str> {
    if !s.contains('<') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let after = &rest[lt + 1..];
        if let Some((len, replacement)) = tag_len(after) {
            out.push_str(replacement);
            rest = &after[len..];
        } else {
            out.push('<');
            rest = after;
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// For text just after a `<`: the length of the tag up to and including its
/// `>`, and what replaces it; `None` when this `<` is not a tag.
fn tag_len(after: &str) -> Option<(usize, &'static str)> {
    let first = after.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '/' || first == '!') {
        return None;
    }
    if let Some(comment) = after.strip_prefix("!--") {
        let end = comment.find("-->")?;
        return Some((3 + end + 3, ""));
    }
    let end = after.find(['<', '>'])?;
    if after.as_bytes()[end] == b'<' {
        return None;
    }
    let inner = &after[..end];
    let name = inner
        .trim_start_matches('/')
        .split(|c: char| c.is_whitespace() || c == '/')
        .next()
        .unwrap_or_default();
    let replacement = if name.eq_ignore_ascii_case("br") {
        "\n"
    } else if name.eq_ignore_ascii_case("p") {
        "\n\n"
    } else {
        ""
    };
    Some((end + 1, replacement))
}

/// Decodes `&name;`, `&#123;` and `&#x1F;`. Anything else with an `&` is
/// left as written. What an entity decodes to is filtered afterwards like any
/// other character.
fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        if let Some((len, decoded)) = entity(tail) {
            out.push_str(&decoded);
            rest = &tail[len..];
        } else {
            out.push('&');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The entity at the start of `s` (which starts with `&`): its length and
/// its text.
fn entity(s: &str) -> Option<(usize, Cow<'static, str>)> {
    // The longest HTML5 entity name is 31 characters; numeric ones are shorter.
    let semi = s[1..].char_indices().take(40).find(|&(_, c)| c == ';')?.0 + 1;
    let body = &s[1..semi];
    let len = semi + 1;
    if let Some(num) = body.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                u32::from_str_radix(hex, 16).ok()
            }
            None if !num.is_empty() && num.chars().all(|c| c.is_ascii_digit()) => num.parse().ok(),
            _ => return None,
        };
        // Out of range, surrogates and NUL become the replacement character,
        // as browsers show them.
        let c = code
            .filter(|&c| c != 0)
            .and_then(char::from_u32)
            .unwrap_or('\u{FFFD}');
        return Some((len, Cow::Owned(c.to_string())));
    }
    if body.is_empty() || !body.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    if body == "nbsp" {
        // A non-breaking space would survive line trimming and confuse
        // wrapping; on a terminal it is just a space.
        return Some((len, Cow::Borrowed(" ")));
    }
    match html_escape::decode_html_entities(&s[..len]) {
        Cow::Owned(decoded) => Some((len, Cow::Owned(decoded))),
        Cow::Borrowed(_) => None,
    }
}

/// The control stage; see [`terminal_safe`].
fn filter_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    // Zero-width characters kept since the last one that takes a column.
    let mut zero_width_run = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\u{2028}' | '\u{2029}' => out.push('\n'),
            // CR LF is one line break; a lone CR is one too, as old Mac text
            // and terminals read it (dropping it would glue two lines).
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push('\n');
            }
            '\t' => out.push(' '),
            // What is dropped does not end a run of zero-width characters:
            // they are counted as they come out.
            '\u{1B}' => {
                skip_escape(&mut chars);
                continue;
            }
            '\u{9B}' => {
                skip_csi(&mut chars);
                continue;
            }
            '\u{90}' | '\u{98}' | '\u{9D}' | '\u{9E}' | '\u{9F}' => {
                skip_string(&mut chars);
                continue;
            }
            // Printable ASCII, most of any text: nothing to look up.
            ' '..='~' => out.push(c),
            c if c.is_control() || is_invisible(c) => continue,
            c if is_zero_width(c) => {
                zero_width_run += 1;
                if zero_width_run <= MAX_ZERO_WIDTH_RUN {
                    out.push(c);
                }
                continue;
            }
            c => out.push(c),
        }
        zero_width_run = 0;
    }
    out
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// Skips what follows an ESC that a terminal would read as part of the
/// sequence.
fn skip_escape(chars: &mut Chars<'_>) {
    match chars.peek() {
        Some('[') => {
            chars.next();
            skip_csi(chars);
        }
        // OSC, DCS, SOS, PM, APC: strings up to a terminator.
        Some(']' | 'P' | 'X' | '^' | '_') => {
            chars.next();
            skip_string(chars);
        }
        _ => {
            // nF sequences (`ESC ( B`): intermediates, then one final byte.
            while chars
                .next_if(|c| matches!(c, '\u{20}'..='\u{2F}'))
                .is_some()
            {}
            chars.next_if(|c| matches!(c, '\u{30}'..='\u{7E}'));
        }
    }
}

/// Skips the parameters, intermediates and final byte of a CSI sequence. A
/// character outside those ranges ends the sequence and is kept (and filtered
/// on its own).
fn skip_csi(chars: &mut Chars<'_>) {
    while chars
        .next_if(|c| matches!(c, '\u{30}'..='\u{3F}'))
        .is_some()
    {}
    while chars
        .next_if(|c| matches!(c, '\u{20}'..='\u{2F}'))
        .is_some()
    {}
    chars.next_if(|c| matches!(c, '\u{40}'..='\u{7E}'));
}

/// Skips a control string up to BEL, ESC `\` or U+009C. An unterminated one
/// runs to the end of the text, as a terminal would swallow it.
fn skip_string(chars: &mut Chars<'_>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{07}' | '\u{9C}' => return,
            '\u{1B}' => {
                chars.next_if_eq(&'\\');
                return;
            }
            _ => {}
        }
    }
}

/// Trailing spaces off each line, no blank lines at either end, at most one
/// blank line in a row.
fn tidy_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0usize;
    for line in s.split('\n').map(str::trim_end) {
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank_run > 0 {
                out.push('\n');
            }
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn clean_text_is_returned_unchanged() {
        for s in [
            "",
            "Lustre /work is slow",
            "line one\nline two\n\nnew paragraph",
            "  indented code",
            "kaomoji (╯°□°)╯︵ ┻━┻ and emoji 👩‍💻",
        ] {
            assert_eq!(sanitize(s), s);
        }
    }

    #[test]
    fn csi_sequences_vanish_whole() {
        assert_eq!(sanitize("\x1b[2J"), "");
        assert_eq!(sanitize("a\x1b[1;31mred\x1b[0m b"), "ared b");
        assert_eq!(sanitize("x\x1b[?25ly"), "xy");
        assert_eq!(sanitize("x\u{9b}2Jy"), "xy");
    }

    #[test]
    fn osc_and_string_sequences_vanish_whole() {
        assert_eq!(sanitize("\x1b]52;c;QkFTRTY0\x07"), "");
        assert_eq!(sanitize("a\x1b]0;title\x1b\\b"), "ab");
        assert_eq!(sanitize("a\x1bPq#0;2;0;0;0\x1b\\b"), "ab");
        assert_eq!(sanitize("a\x1b_apc\x07b"), "ab");
        assert_eq!(sanitize("a\u{9d}8;;http://x\u{9c}b"), "ab");
        assert_eq!(sanitize("a\u{90}dcs\x07b"), "ab");
        // Unterminated: a terminal would swallow the rest, so do we.
        assert_eq!(sanitize("a\x1b]0;never ends"), "a");
    }

    #[test]
    fn two_character_escapes_vanish() {
        assert_eq!(sanitize("a\x1bcb"), "ab");
        assert_eq!(sanitize("a\x1b(Bb"), "ab");
        assert_eq!(sanitize("a\x1b"), "a");
    }

    #[test]
    fn control_characters_are_removed_but_newlines_kept() {
        assert_eq!(sanitize("a\x00b\x07c\x08d\x7fe\u{85}f\nz"), "abcdef\nz");
    }

    #[test]
    fn bidi_and_invisible_characters_are_removed() {
        assert_eq!(
            sanitize("a\u{202E}b\u{2066}c\u{2069}d\u{200E}e\u{200F}f\u{061C}g\u{200B}h\u{FEFF}i"),
            "abcdefghi"
        );
    }

    #[test]
    fn format_characters_and_hangul_fillers_are_removed() {
        // Tag characters spelling "hi", the interlinear annotation marks,
        // soft hyphen, word joiner and invisible operators, the Mongolian
        // vowel separator, the deprecated format controls, Hangul fillers.
        let hidden = "a\u{E0001}\u{E0068}\u{E0069}\u{E007F}b\u{FFF9}c\u{FFFA}d\u{FFFB}e\u{00AD}f\
            \u{2060}g\u{2061}\u{2062}\u{2063}\u{2064}h\u{180E}i\u{206A}\u{206F}j\u{115F}k\
            \u{1160}l\u{3164}m\u{FFA0}n\u{0600}o\u{1D173}p\u{13439}q";
        assert_eq!(sanitize(hidden), "abcdefghijklmnopq");
        assert_eq!(terminal_safe(hidden), "abcdefghijklmnopq");
    }

    #[test]
    fn joiners_and_variation_selectors_stay() {
        for s in [
            "family 👨\u{200D}👩\u{200D}👧",
            "ZWNJ in Persian: می\u{200C}خواهم",
            "keycap 1\u{FE0F}\u{20E3} and cloud \u{2601}\u{FE0F}",
            "ideographic variation 葛\u{E0100}",
        ] {
            assert_eq!(sanitize(s), s);
            assert_eq!(terminal_safe(s), s);
        }
    }

    #[test]
    fn long_runs_of_combining_marks_are_cut() {
        let zalgo = format!("Z{}algo", "\u{0301}".repeat(500));
        let out = sanitize(&zalgo);
        assert_eq!(
            out,
            format!("Z{}algo", "\u{0301}".repeat(MAX_ZERO_WIDTH_RUN))
        );
        assert_eq!(terminal_safe(&zalgo), out);
        // Real text keeps its marks: Vietnamese, pointed Hebrew.
        for s in ["Tiê\u{0301}ng Việt", "שָׁלוֹם", "e\u{0301}\u{0323}"] {
            assert_eq!(sanitize(s), s);
        }
        // Removed characters between marks do not reset the count.
        let split = format!("a{}\u{200B}{}", "\u{0301}".repeat(3), "\u{0301}".repeat(3));
        assert_eq!(
            sanitize(&split),
            format!("a{}", "\u{0301}".repeat(MAX_ZERO_WIDTH_RUN))
        );
    }

    #[test]
    fn one_line_fields_lose_their_line_breaks() {
        assert_eq!(
            sanitize_line("Disk full<br>clear: nothing blocks"),
            "Disk full clear: nothing blocks"
        );
        assert_eq!(sanitize_line("  a\r\n\r\n b \u{2028}c\rd  "), "a b c d");
        assert_eq!(sanitize_line("<p>x</p><p>y</p>"), "x y");
        assert_eq!(sanitize_line("plain"), "plain");
    }

    #[test]
    fn links_are_http_urls_or_nothing() {
        assert_eq!(
            sanitize_url(" https://stspg.io/abc "),
            Some("https://stspg.io/abc".to_owned())
        );
        assert_eq!(
            sanitize_url("HTTP://Status.Example.org/x?y=1#z"),
            Some("HTTP://Status.Example.org/x?y=1#z".to_owned())
        );
        for bad in [
            "https://stspg.io/x<br>== archer2: Operational ==",
            "https://stspg.io/x\n![x](http://evil)",
            "javascript:alert(1)",
            "ftp://example.org/",
            "stspg.io/abc",
            "https://",
            "https:///path",
            "https://a.org/\"onmouseover=x",
            "https://a.org/a<b",
            "",
        ] {
            assert_eq!(sanitize_url(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn line_and_paragraph_separators_become_newlines() {
        assert_eq!(sanitize("a\u{2028}b\u{2029}c"), "a\nb\nc");
    }

    #[test]
    fn carriage_returns_and_tabs() {
        assert_eq!(sanitize("a\r\nb\rc"), "a\nb\nc");
        assert_eq!(sanitize("tail\rCR"), "tail\nCR");
        assert_eq!(terminal_safe("tail\rCR\r\n"), "tail\nCR\n");
        assert_eq!(sanitize("a\tb"), "a b");
    }

    #[test]
    fn br_and_p_tags_break_lines() {
        assert_eq!(sanitize("a<br>b<BR/>c<br />d<Br  />e"), "a\nb\nc\nd\ne");
        assert_eq!(sanitize("<p>one</p><p>two</p>"), "one\n\ntwo");
    }

    #[test]
    fn other_tags_are_dropped() {
        assert_eq!(
            sanitize("<b>bold</b> <a href=\"https://x\">link</a><!-- c > d -->!"),
            "bold link!"
        );
    }

    #[test]
    fn things_that_are_not_tags_survive() {
        assert_eq!(sanitize("a < b and c > d"), "a < b and c > d");
        assert_eq!(sanitize("<3"), "<3");
        assert_eq!(sanitize("x <- y"), "x <- y");
        assert_eq!(sanitize("unclosed <b"), "unclosed <b");
        assert_eq!(sanitize("<<b>>"), "<>");
    }

    #[test]
    fn entities_are_decoded_after_tags_are_stripped() {
        assert_eq!(
            sanitize("a &amp; b &lt;c&gt; &quot;d&quot;"),
            "a & b  \"d\""
        );
        assert_eq!(sanitize("&#65;&#x42;&#X43;"), "ABC");
        assert_eq!(sanitize("a&nbsp;b"), "a b");
        assert_eq!(sanitize("caf&eacute;"), "café");
        assert_eq!(
            sanitize("AT&T; &unknown; &#xZZ; & alone"),
            "AT&T; &unknown; &#xZZ; & alone"
        );
    }

    #[test]
    fn entities_cannot_smuggle_controls() {
        assert_eq!(sanitize("&#27;[2J"), "");
        assert_eq!(sanitize("a&#x1b;]52;c;QQ&#7;b"), "ab");
        assert_eq!(sanitize("a&#x202E;b&#8238;c"), "abc");
        assert_eq!(sanitize("a&#0;b"), "a\u{FFFD}b");
    }

    #[test]
    fn whitespace_is_tidied() {
        assert_eq!(
            sanitize("\n\n  \nfirst  \nsecond\t\n\n\n\nthird\n\n"),
            "first\nsecond\n\nthird"
        );
        assert_eq!(sanitize("a\r\n\r\n\r\n\r\nb"), "a\n\nb");
    }

    #[test]
    fn double_encoded_text_settles() {
        let once = sanitize("&amp;lt;b&amp;gt;x");
        assert_eq!(once, "x");
        assert_eq!(sanitize(&once), once);
    }

    #[test]
    fn deeply_nested_entities_settle_too() {
        let deep = format!("a &{}lt;b&gt; c", "amp;".repeat(40));
        let once = sanitize(&deep);
        assert!(once.starts_with("a ") && once.ends_with(" c"), "{once}");
        assert!(!once.contains(['<', '&']), "{once}");
        assert_eq!(sanitize(&once), once);
    }

    #[test]
    fn terminal_safe_keeps_layout() {
        assert_eq!(terminal_safe("  a  \n\n\n  b\n"), "  a  \n\n\n  b\n");
        assert_eq!(terminal_safe("<b>&amp;</b>"), "<b>&amp;</b>");
        assert_eq!(terminal_safe("x\x1b[2Jy\u{202E}z\r\n"), "xyz\n");
    }

    fn assert_safe(out: &str) {
        for c in out.chars() {
            assert!(c == '\n' || !c.is_control(), "control {c:?} in {out:?}");
            assert!(
                !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'),
                "bidi {c:?} in {out:?}"
            );
            assert!(
                !is_invisible(c),
                "invisible {:?} in {out:?}",
                c.escape_unicode().to_string()
            );
            assert!(c != '\r', "carriage return in {out:?}");
        }
        assert!(!over_zero_width_run(out), "stacked marks in {out:?}");
    }

    fn hostile() -> impl Strategy<Value = String> {
        let alphabet = prop::sample::select(vec![
            "\x1b",
            "[",
            "]",
            "0",
            "2",
            "5",
            ";",
            "\x07",
            "\u{9b}",
            "\u{9d}",
            "\u{9c}",
            "\u{202E}",
            "\u{2066}",
            "\r",
            "\n",
            "<",
            ">",
            "&",
            "#",
            "x",
            "b",
            "r",
            "p",
            "/",
            "!",
            "a",
            "m",
            "l",
            "t",
            "g",
            "J",
            " ",
            "\\",
            "P",
            "\t",
            "\u{E0041}",
            "\u{E007F}",
            "\u{FFF9}",
            "\u{00AD}",
            "\u{2060}",
            "\u{180E}",
            "\u{206A}",
            "\u{115F}",
            "\u{3164}",
            "\u{200D}",
            "\u{FE0F}",
            "\u{0301}",
            "\u{0301}\u{0301}\u{0301}",
            "\u{20E3}",
            "\u{2028}",
            "é",
            "語",
            "👩",
        ]);
        prop::collection::vec(alphabet, 0..60).prop_map(|v| v.concat())
    }

    /// ASCII text made of what [`is_clean`] looks at: mostly printable, so
    /// that runs of line breaks and spaces before them come up, sometimes
    /// with controls and `<` too.
    fn ascii() -> impl Strategy<Value = String> {
        let printable = prop::sample::select(vec!["&", "#", "a", "Z", "7", ";", "\n", " ", "~"]);
        let any = prop::sample::select(vec![
            "&", "#", "a", ";", "<", "\n", " ", "\t", "\r", "\x1b", "\x7f", "\x00",
        ]);
        prop_oneof![
            3 => prop::collection::vec(printable, 0..24),
            1 => prop::collection::vec(any, 0..24),
        ]
        .prop_map(|v| v.concat())
    }

    /// Text with `&` before what could and could not be an entity.
    fn entities() -> impl Strategy<Value = String> {
        let alphabet = prop::sample::select(vec![
            "&", "amp;", "lt;", "nbsp;", "#39;", "#x1b;", "copy", " ", "b", ";", "\n",
        ]);
        prop::collection::vec(alphabet, 0..16).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn arbitrary_text_comes_out_safe_and_stable(s in any::<String>()) {
            let out = sanitize(&s);
            assert_safe(&out);
            prop_assert_eq!(sanitize(&out), out);
        }

        #[test]
        fn hostile_text_comes_out_safe_and_stable(s in hostile()) {
            let out = sanitize(&s);
            assert_safe(&out);
            prop_assert_eq!(sanitize(&out), out.clone());
            let safe = terminal_safe(&s);
            assert_safe(&safe);
        }

        #[test]
        fn one_line_fields_come_out_one_line_safe_and_stable(s in hostile()) {
            let out = sanitize_line(&s);
            assert_safe(&out);
            prop_assert!(!out.contains('\n'), "{:?}", out);
            prop_assert_eq!(out.trim(), out.as_str());
            prop_assert_eq!(sanitize_line(&out), out.clone());
            prop_assert_eq!(sanitize(&out), out);
        }

        #[test]
        fn in_place_gives_what_a_copy_gives(s in hostile()) {
            let mut text = s.clone();
            sanitize_in_place(&mut text);
            prop_assert_eq!(&text, &sanitize(&s));
            let mut line = s.clone();
            sanitize_line_in_place(&mut line);
            prop_assert_eq!(&line, &sanitize_line(&s));
            // Already clean (judged without `<` and `&`): the same buffer,
            // not a copy.
            if !line.contains(['<', '&']) {
                let at = line.as_ptr();
                sanitize_line_in_place(&mut line);
                prop_assert_eq!(line.as_ptr(), at);
            }
        }

        #[test]
        fn links_come_out_one_line_or_not_at_all(s in hostile()) {
            let url = format!("https://{s}");
            if let Some(out) = sanitize_url(&url) {
                assert_safe(&out);
                prop_assert!(!out.contains(char::is_whitespace), "{:?}", out);
                prop_assert_eq!(sanitize_url(&out), Some(out.clone()));
            }
        }

        #[test]
        fn text_judged_clean_is_what_a_pass_leaves_unchanged(s in prop_oneof![hostile(), entities()]) {
            if is_clean(&s) {
                prop_assert_eq!(pass(&s), s);
            }
        }

        #[test]
        fn arbitrary_text_judged_clean_is_what_a_pass_leaves_unchanged(s in any::<String>()) {
            if is_clean(&s) {
                prop_assert_eq!(pass(&s), s);
            }
        }

        #[test]
        fn ascii_text_is_judged_as_any_text_is(s in ascii()) {
            prop_assert_eq!(is_clean_ascii(s.as_bytes()), is_clean_chars(&s));
        }

        #[test]
        fn plain_text_is_untouched(s in "[!-;=-~&&[^&]]+( [!-;=-~&&[^&]]+)*") {
            prop_assert_eq!(sanitize(&s), s);
        }
    }
}
