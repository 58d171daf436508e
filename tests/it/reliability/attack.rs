//! Attacks: hostile upstream text, huge bodies, templates that try to read
//! files, secrets that must stay out of every file and message, cluster
//! names that could leave the output directory, and hostile HTTP clients
//! (traversal, wrong tokens, big bodies and headers, slow clients).

use super::*;

/// Hostile upstream text: each entry is (label, text).
fn attack_corpus() -> Vec<(&'static str, String)> {
    vec![
        (
            "OSC 52 clipboard write",
            "copy \u{1b}]52;c;ZWNobyBwd25lZA==\u{7} done".into(),
        ),
        (
            "OSC 52 with ST",
            "copy \u{1b}]52;p;ZWNobyBwd25lZA==\u{1b}\\ done".into(),
        ),
        (
            "CSI clear screen",
            "\u{1b}[2J\u{1b}[H\u{1b}[31mred\u{1b}[0m".into(),
        ),
        ("C1 CSI", "before \u{9b}2J\u{9b}31m after".into()),
        (
            "DCS",
            "\u{1b}P1$r0;1m\u{1b}\\ and C1 \u{90}q#0;2;0;0;0\u{9c}".into(),
        ),
        ("OSC title", "\u{1b}]0;owned\u{7}title".into()),
        (
            "bidi overrides",
            "invoice \u{202e}fdp.exe\u{202c} \u{2066}x\u{2069} \u{200f}".into(),
        ),
        ("CR overwrite", "all is well\rEVIL OVERWRITE".into()),
        (
            "backspace, BEL, NUL, DEL",
            "a\u{8}\u{8}b\u{7}c\u{0}d\u{7f}e".into(),
        ),
        (
            "entity-encoded escapes",
            "&#27;[2J &#x1b;]52;c;QUJD&#7; &#x9b;2J &#x202E;rev".into(),
        ),
        (
            "HTML",
            "<script>alert(1)</script><img src=x onerror=alert(1)><br/>next".into(),
        ),
        (
            "line separators",
            "one\u{2028}two\u{2029}three\u{85}four".into(),
        ),
        ("zero-width and BOM", "zero\u{200b}width\u{feff}bom".into()),
    ]
}

/// Every byte a terminal could act on: C0 but `\n`, DEL, C1, bidi controls,
/// line and paragraph separators.
fn unsafe_chars(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || ('\u{80}'..='\u{9f}').contains(&c)
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
                || matches!(
                    c,
                    '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{2028}' | '\u{2029}'
                )
        })
        .collect()
}

fn assert_no_unsafe_file(out: &Path) -> usize {
    let mut n = 0;
    walk(out, &mut |path| {
        if path.components().any(|c| c.as_os_str() == ".statusmotd") {
            return;
        }
        let bytes = fs::read(path).unwrap();
        let text =
            String::from_utf8(bytes).unwrap_or_else(|_| panic!("{} is not UTF-8", path.display()));
        // A calendar's lines end in CRLF, as RFC 5545 asks: unfolded, with
        // plain line breaks, its text is held to the same rule.
        let text = if path.extension().is_some_and(|e| e == "ics") {
            crate::support::ical::assert_wire_format(text.as_bytes());
            text.replace("\r\n ", "").replace("\r\n", "\n")
        } else {
            text
        };
        let bad = unsafe_chars(&text);
        assert!(bad.is_empty(), "{}: unsafe {bad:?}", path.display());
        assert!(
            !text.contains("ZWNobyBwd25lZA"),
            "{}: OSC 52 payload",
            path.display()
        );
        n += 1;
    });
    n
}

/// Every string in a JSON document.
fn json_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| json_strings(v, out)),
        Value::Object(o) => {
            for (k, v) in o {
                out.push(k.clone());
                json_strings(v, out);
            }
        }
        _ => {}
    }
}

#[test]
fn attack_corpus_reaches_no_file_no_snapshot_and_no_login_screen() {
    for api in [Api::V2, Api::V1] {
        let rig = Rig::new(api);
        let corpus = attack_corpus();
        let hostile: Vec<Value> = corpus
            .iter()
            .enumerate()
            .map(|(i, (label, text))| {
                let component = if i % 2 == 0 { "login01" } else { "stor01" };
                incident("x", i, component, &format!("{label}: {text}"), text)
            })
            .collect();
        rig.serve(&component_rows(3), &hostile);
        let o = rig.render_ok();
        let files = assert_no_unsafe_file(&rig.out());
        assert!(files >= corpus.len() + 3, "{api:?}: {files} files");
        let alpha = rig.site.read("alpha/motd");
        assert!(alpha.contains("OSC 52 clipboard write"), "{alpha}");
        assert!(alpha.contains("invoice"), "{alpha}");
        assert!(unsafe_chars(&stdout(&o)).is_empty());
        // `show` prints to a terminal too.
        let o = rig.run(&["show", "alpha"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(unsafe_chars(&stdout(&o)).is_empty(), "{}", stdout(&o));
        // The last good snapshot holds only sanitized text.
        let state: Value = serde_json::from_slice(&fs::read(rig.state_file()).unwrap()).unwrap();
        let mut strings = Vec::new();
        json_strings(&state, &mut strings);
        for s in &strings {
            assert!(unsafe_chars(s).is_empty(), "{api:?}: state holds {s:?}");
        }
        if api == Api::V2 {
            assert_pam_display_is_safe(&rig.site.out("alpha/motd"), "OSC 52 clipboard write");
        }
    }
}

#[test]
fn huge_bodies_and_lines_are_capped() {
    let rig = Rig::new(Api::V2);
    // A 10 MB update body, and a name of 100,000 characters without a space.
    let big = "0123456789 abcdefghij ".repeat(10 * 1024 * 1024 / 22);
    let long_line = "W".repeat(100_000);
    rig.serve(
        &component_rows(3),
        &[
            incident("h", 0, "login01", "A huge body", &big),
            incident("h", 1, "login01", &long_line, "a long name"),
            incident(
                "h",
                2,
                "login01",
                &format!("\u{1b}[2J{long_line}"),
                &format!("\u{9b}{big}"),
            ),
        ],
    );
    let started = Instant::now();
    let o = rig.render_ok();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert!(stdout(&o).contains("created alpha/motd"));
    // Cluster files are capped; `index.json` lists item names in full.
    let mut sizes = Vec::new();
    walk(&rig.out(), &mut |p| {
        sizes.push((p.to_path_buf(), fs::metadata(p).unwrap().len()));
    });
    for (path, size) in &sizes {
        if path.ends_with("index.json") || path.components().any(|c| c.as_os_str() == ".statusmotd")
        {
            continue;
        }
        assert!(*size <= 64 * 1024, "{} is {size} bytes", path.display());
    }
    assert!(sizes.len() >= 5, "{sizes:?}");
    assert_no_unsafe_file(&rig.out());
}

/// What `pam_motd` shows for `motd` holds no unsafe character and does
/// show `expect`.
fn assert_pam_display_is_safe(motd: &Path, expect: &str) {
    let Some(shown) = crate::common::pam_motd_screen(motd) else {
        return;
    };
    let shown = String::from_utf8(shown).expect("pam_motd shows UTF-8");
    assert!(shown.contains(expect), "pam_motd showed: {shown}");
    assert!(
        unsafe_chars(&shown).is_empty(),
        "pam_motd showed {:?}",
        unsafe_chars(&shown)
    );
}

#[test]
fn templates_cannot_read_files() {
    let rig = Rig::new(Api::V2);
    let secret = rig.site.path().join("secret.txt");
    fs::write(&secret, "TOP-SECRET-CONTENT\n").unwrap();
    let templates = rig.site.path().join("templates");
    fs::create_dir_all(templates.join("sub")).unwrap();
    let mapping = fs::read_to_string(rig.site.path().join("mapping.toml")).unwrap();
    fs::write(
        rig.site.path().join("mapping.toml"),
        mapping.replacen(
            "[settings]\n",
            "[settings]\ntemplates_dir = \"templates\"\n",
            1,
        ),
    )
    .unwrap();
    let attempts = [
        r#"{% include "/etc/passwd" %}"#.to_string(),
        r#"{% include "../secret.txt" %}"#.into(),
        r#"{% include "sub/../../secret.txt" %}"#.into(),
        format!(r#"{{% include "{}" %}}"#, secret.display()),
        r#"{% extends "../secret.txt" %}"#.into(),
        r#"{% import "../secret.txt" as s %}{{ s }}"#.into(),
        r#"{% from "/etc/passwd" import x %}{{ x }}"#.into(),
        r#"{% include "..\\secret.txt" %}"#.into(),
        // Names chosen by upstream text.
        r"{% for i in incidents %}{% include i.name ignore missing %}{% endfor %}".into(),
        // Functions that would reach outside: none exist.
        r#"{{ open("/etc/passwd") }}"#.into(),
        r#"{{ env("HOME") }}{{ lookup("file", "/etc/passwd") }}"#.into(),
        r"{{ self.__init__ }}{{ cycler.__globals__ }}".into(),
    ];
    rig.serve(
        &component_rows(3),
        &[incident("t", 0, "login01", "../secret.txt", "x")],
    );
    for (i, template) in attempts.iter().enumerate() {
        fs::write(templates.join("motd.txt.j2"), template).unwrap();
        let o = rig.run(&["render"]);
        let all = format!(
            "{}{}{}",
            stdout(&o),
            stderr(&o),
            fs::read_to_string(rig.site.out("alpha/motd")).unwrap_or_default()
        );
        eprintln!(
            "template attempt {i} `{template}`: exit {}, {}",
            code(&o),
            stderr(&o).lines().next().unwrap_or("")
        );
        if i + 1 < attempts.len() {
            assert_eq!(code(&o), 3, "attempt {i} `{template}` is refused: {all}");
        }
        assert!(
            !all.contains("TOP-SECRET-CONTENT"),
            "attempt {i} `{template}`: {all}"
        );
        assert!(
            !all.contains("root:x:0:0"),
            "attempt {i} `{template}`: {all}"
        );
        let mut leaked = false;
        walk(&rig.out(), &mut |p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            leaked |= text.contains("TOP-SECRET-CONTENT") || text.contains("root:x:0:0");
        });
        assert!(!leaked, "attempt {i} `{template}` leaked into a file");
    }
    // A relative include inside the directory does work.
    fs::write(templates.join("sub/part.j2"), "PART OK\n").unwrap();
    fs::write(
        templates.join("motd.txt.j2"),
        r#"{% include "sub/part.j2" %}"#,
    )
    .unwrap();
    rig.render_ok();
    assert_eq!(rig.site.read("alpha/motd"), "PART OK\n");
}

#[test]
fn the_api_key_is_in_no_file_log_or_error() {
    let rig = Rig::new(Api::V1);
    let mut seen = String::new();
    let mut outputs = Vec::new();
    // Verbose logs, a good render, a saved snapshot, then every kind of failure.
    outputs.push(rig.run(&["-vv", "render"]));
    let snap = rig.site.path().join("saved.json");
    outputs.push(rig.run(&["-vv", "fetch", "--save", snap.to_str().unwrap()]));
    outputs.push(rig.run(&["-vv", "show", "alpha"]));
    outputs.push(rig.run(&["-vv", "gate", "alpha"]));
    outputs.push(rig.run(&["-vv", "mapping", "check"]));
    for fault in [
        Fault::Status(401),
        Fault::Status(500),
        Fault::Hang,
        Fault::Reset,
        Fault::Truncated,
        Fault::RateLimited {
            status: 420,
            retry_after: "3600".into(),
        },
    ] {
        rig.fake.fault(fault);
        outputs.push(rig.run(&["-vv", "render"]));
        outputs.push(rig.run(&["-vv", "fetch", "--save", snap.to_str().unwrap()]));
        rig.fake.clear_faults();
    }
    for o in &outputs {
        seen.push_str(&stdout(o));
        seen.push_str(&stderr(o));
    }
    assert_eq!(
        rig.fake.last_authorization().as_deref(),
        Some(format!("OAuth {KEY}").as_str()),
        "the key was sent"
    );
    assert!(
        seen.contains("DEBUG") || seen.contains("debug"),
        "verbose logs ran"
    );
    assert!(!seen.contains(KEY), "the key in output: {seen}");
    let mut files = 0;
    walk(rig.site.path(), &mut |p| {
        if p.file_name().is_some_and(|n| n == "mapping.toml") {
            return;
        }
        let bytes = fs::read(p).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the key in `{}`",
            p.display()
        );
        files += 1;
    });
    assert!(snap.is_file() && rig.state_file().is_file());
    assert!(files >= 5, "{files}");
}

#[test]
fn cluster_names_that_could_leave_the_output_directory_are_refused() {
    let names = [
        "..",
        ".",
        "../etc",
        "a/../../b",
        "/etc",
        "a\\b",
        ".statusmotd",
        ".hidden",
        "a b",
        "a\u{0}b",
        "a\nb",
        "%2e%2e",
        "\u{2024}\u{2024}",
        "index.json",
        "",
    ];
    let mut refused = 0;
    for name in names {
        let escaped: String = name.chars().flat_map(char::escape_default).collect();
        let site = Site::new(&format!(
            "[sources.s]\nkind = \"statuspage-public\"\nurl = \"http://127.0.0.1:9\"\n\n[clusters.\"{escaped}\"]\ngroups = [\"x\"]\n"
        ));
        let o = site.run(&["render"]);
        assert_eq!(code(&o), 3, "{name:?}: {}", stderr(&o));
        assert!(!site.out("").exists(), "{name:?}: nothing written");
        refused += 1;
    }
    assert_eq!(refused, names.len());
}

#[test]
fn serve_refuses_traversal_wrong_tokens_big_bodies_and_huge_headers() {
    let rig = serve_rig(Api::V2);
    fs::write(rig.site.path().join("secret.txt"), "TOP-SECRET-CONTENT").unwrap();
    let serve = start_serve(&rig, true);
    let addr = serve.addr().to_owned();
    wait_for_motd(&rig, &expected_motd(&rig), Duration::from_secs(15));
    let (status, body) = get(&addr, "/motd/alpha");
    assert_eq!(status, 200);
    assert!(body.contains("State a incident"), "{body}");

    // Path traversal: every one is a 404 (or a 400), never a file.
    let traversals = [
        "/motd/..",
        "/motd/../mapping.toml",
        "/motd/..%2fmapping.toml",
        "/motd/..%2F..%2Fsecret.txt",
        "/motd/%2e%2e",
        "/motd/%2e%2e%2fsecret.txt",
        "/motd/alpha%2f..%2f..%2fsecret.txt",
        "/motd/alpha/../../secret.txt",
        "/motd/.statusmotd",
        "/motd/index.json",
        "/motd/%00",
        "/motd/alpha%00",
        "/motd//etc/passwd",
        "/motd/..\\..\\secret.txt",
        "/status/..%2fsecret.txt",
        "/gate/..%2f..%2fsecret.txt",
        "/../secret.txt",
        "/motd/%c0%ae%c0%ae",
    ];
    for path in traversals {
        let (status, body) = get(&addr, path);
        assert!(matches!(status, 400 | 404), "{path}: {status}\n{body}");
        assert!(
            !body.contains("TOP-SECRET") && !body.contains("root:x:0"),
            "{path}: {body}"
        );
        assert!(!body.contains("[sources"), "{path}: {body}");
    }

    // Webhook tokens: only the exact one.
    let wrong = [
        String::new(),
        "x".into(),
        WEBHOOK_TOKEN[..WEBHOOK_TOKEN.len() - 1].into(),
        format!("{WEBHOOK_TOKEN}x"),
        WEBHOOK_TOKEN.to_uppercase(),
        format!("{WEBHOOK_TOKEN}%00"),
        format!("%20{WEBHOOK_TOKEN}"),
        REFRESH_TOKEN.into(),
        "A".repeat(10_000),
    ];
    for token in &wrong {
        let (status, _) = post(&addr, &format!("/webhook/{token}"), "", &webhook_body());
        assert_eq!(status, 404, "token {token:?}");
    }
    let (status, _) = post(
        &addr,
        &format!("/webhook/{WEBHOOK_TOKEN}"),
        "",
        &webhook_body(),
    );
    assert_eq!(status, 202);
    // The refresh token only as a bearer token.
    for auth in [
        "",
        "Authorization: Bearer x\r\n",
        "Authorization: Basic eDp5\r\n",
    ] {
        let (status, _) = post(&addr, "/refresh", auth, b"");
        assert_eq!(status, 401, "{auth:?}");
    }

    // Bodies: not JSON 400, over 1 MiB 413, then still serving.
    let (status, _) = post(
        &addr,
        &format!("/webhook/{WEBHOOK_TOKEN}"),
        "",
        b"{not json",
    );
    assert_eq!(status, 400);
    let big = vec![b' '; 1024 * 1024 + 1];
    let (status, _) = post(&addr, &format!("/webhook/{WEBHOOK_TOKEN}"), "", &big);
    assert_eq!(status, 413);
    let huge = vec![b'['; 1024 * 1024 - 1];
    let (status, _) = post(&addr, &format!("/webhook/{WEBHOOK_TOKEN}"), "", &huge);
    assert_eq!(
        status, 400,
        "deeply nested JSON is refused, not a stack overflow"
    );

    // Headers: a 1 MiB header, and 10,000 headers, are refused or cut off.
    let (status, _) = raw_http(
        &addr,
        format!(
            "GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(1 << 20)
        )
        .as_bytes(),
    );
    assert!(status == 431 || status == 0 || status == 400, "{status}");
    let many = (0..10_000).fold(String::new(), |mut s, i| {
        use std::fmt::Write;
        let _ = write!(s, "X-H{i}: v\r\n");
        s
    });
    let (status, _) = raw_http(
        &addr,
        format!("GET /livez HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    );
    assert!(status == 431 || status == 0 || status == 400, "{status}");
    assert_eq!(get(&addr, "/livez").0, 200, "still serving");

    // No secret in the logs (at -vv) or the metrics.
    let (status, metrics) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("statusmotd_webhooks_total"), "{metrics}");
    let log = serve.log();
    assert!(
        log.contains("DEBUG") || log.contains("INFO"),
        "verbose logs ran: {log}"
    );
    for secret in [WEBHOOK_TOKEN, REFRESH_TOKEN, KEY] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!metrics.contains(secret), "{secret} in /metrics");
    }
    walk(&rig.site.path().join("state"), &mut |p| {
        let text = fs::read_to_string(p).unwrap();
        assert!(!text.contains(WEBHOOK_TOKEN) && !text.contains(REFRESH_TOKEN));
    });
}

#[test]
fn a_slow_client_cannot_hold_the_server() {
    use std::io::{Read, Write};
    let rig = serve_rig(Api::V2);
    let serve = start_serve(&rig, false);
    let addr = serve.addr().to_owned();
    // 200 clients that send half a request line and then nothing.
    let mut slow: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /livez HT").unwrap();
            s
        })
        .collect();
    // And one that sends a webhook body one byte at a time, slowly.
    let mut trickle = std::net::TcpStream::connect(&addr).unwrap();
    trickle
        .write_all(
            format!("POST /webhook/{WEBHOOK_TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{")
                .as_bytes(),
        )
        .unwrap();
    // Others are served at once meanwhile.
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(get(&addr, "/livez").0, 200);
        let (status, _) = post(
            &addr,
            &format!("/webhook/{WEBHOOK_TOKEN}"),
            "",
            &webhook_body(),
        );
        assert_eq!(status, 202);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let _ = trickle.write_all(b" ");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Clients that never finish their headers are cut off after the
    // header-read timeout (10 s).
    std::thread::sleep(Duration::from_secs(10));
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => closed += 1,
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 400") {
                    closed += 1;
                }
            }
        }
    }
    assert_eq!(closed, slow.len(), "slow clients still held");
    assert_eq!(get(&addr, "/livez").0, 200);
}
