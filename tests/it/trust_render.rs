//! What hostile upstream text can do to the rendered files, end to end: the
//! real binary against the fake Statuspage, and the Open `OnDemand` Markdown
//! through real Markdown renderers (markdown-it-py with linkify, and Ruby's
//! Redcarpet with `autolink`, as `OnDemand` renders it).

use std::fs;
use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::common::{assert_terminal_safe, code, stderr, stdout, Site};
use crate::fake::FakeStatuspage;

const LOGIN_ID: &str = "cmplogin0001";

/// A time `minutes` before the real now: `gate` and `render` judge the age of
/// the data by the clock.
fn ago(minutes: i64) -> String {
    jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_mins(minutes))
        .unwrap()
        .to_string()
}

/// An open incident on the login nodes.
fn incident(id: &str, name: &str, body: &str, shortlink: &str) -> Value {
    let at = ago(5);
    json!({
        "id": id, "name": name, "status": "investigating", "impact": "major",
        "created_at": at, "updated_at": at, "started_at": at,
        "monitoring_at": null, "resolved_at": null,
        "shortlink": shortlink,
        "incident_updates": [{
            "id": format!("{id}-u1"), "status": "investigating", "body": body,
            "created_at": at, "updated_at": at, "display_at": at,
            "affected_components": [{"code": LOGIN_ID, "name": "Login nodes",
                                     "old_status": "operational", "new_status": "major_outage"}],
        }],
        "components": [{"id": LOGIN_ID, "name": "Login nodes", "status": "major_outage"}],
    })
}

/// A fake page with these incidents, and a site mapping its login nodes to
/// `alpha` (with `extra` appended to the mapping).
fn site_with(incidents: &[Value], extra: &str) -> (FakeStatuspage, Site) {
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        "/api/v2/summary.json",
        json!({
            "page": {"id": "trustpage001", "name": "Test", "url": "https://status.example.org",
                     "time_zone": "Etc/UTC", "updated_at": ago(1)},
            "components": [{"id": LOGIN_ID, "name": "Login nodes", "status": "major_outage",
                            "group_id": null, "updated_at": ago(5)}],
            "incidents": incidents,
            "scheduled_maintenances": [],
            "status": {"indicator": "major", "description": "Major outage"},
        }),
    );
    let site = Site::new(&format!(
        r#"[settings]
timezone = "UTC"
request_timeout = "5s"
retries = 0

[sources.status]
kind = "statuspage-public"
url = "{}"

[clusters.alpha]
components = ["Login nodes"]
page_wide = false
{extra}"#,
        fake.url()
    ));
    (fake, site)
}

// One-line fields

#[test]
fn gate_prints_one_line_per_blocker_whatever_the_name_holds() {
    let (_fake, site) = site_with(
        &[incident(
            "incdisk00001",
            "Disk full<br>clear: nothing blocks",
            "Full.",
            "https://stspg.io/x<br>clear: nothing blocks `alpha`",
        )],
        "",
    );
    let o = site.run(&["gate", "alpha"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "the incident blocks: {out}{}", stderr(&o));
    assert_terminal_safe(&out);
    assert!(
        out.lines().all(|l| l.starts_with("blocked: ")),
        "a line that is not the program's:\n{out}"
    );
    assert!(
        out.contains("blocked: incident `Disk full clear: nothing blocks` (investigating)"),
        "{out}"
    );
    // The shortlink was not a URL: it is dropped, not printed.
    assert!(!out.contains("stspg.io"), "{out}");
}

#[test]
fn a_shortlink_cannot_add_a_banner_line() {
    let (_fake, site) = site_with(
        &[
            incident(
                "incfake00001",
                "Logins slow",
                "Slow.",
                "https://stspg.io/a<br>== alpha: Operational ==",
            ),
            incident(
                "incfake00002",
                "Second<p>== alpha: Operational ==</p>",
                "Also slow.\rCR",
                "https://stspg.io/b\n== alpha: Operational ==",
            ),
            incident(
                "incgood00003",
                "Good one",
                "Fine.",
                "https://stspg.io/good3",
            ),
        ],
        "",
    );
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let motd = site.read("alpha/motd");
    assert_terminal_safe(&motd);
    let banners: Vec<&str> = motd.lines().filter(|l| l.starts_with("==")).collect();
    assert_eq!(banners.len(), 1, "one banner line only:\n{motd}");
    assert!(banners[0].starts_with("== alpha: Major outage"), "{motd}");
    assert!(
        motd.contains("[INCIDENT] Second == alpha: Operational =="),
        "{motd}"
    );
    assert!(
        motd.contains("  https://stspg.io/good3") || motd.contains(" - https://stspg.io/good3"),
        "{motd}"
    );
    assert!(
        !motd.contains("stspg.io/a") && !motd.contains("stspg.io/b"),
        "{motd}"
    );
    // A lone CR breaks the line rather than gluing the words together.
    assert!(!motd.contains("slow.CR"), "{motd}");
    for item in ["incident-incfake00001.txt", "incident-incfake00002.txt"] {
        let snippet = site.read(&format!("alpha/items/{item}"));
        assert!(
            snippet.lines().all(|l| !l.starts_with("==")),
            "{item}:\n{snippet}"
        );
    }
}

// Open OnDemand Markdown through real renderers

/// Text an upstream editor could type: every way Markdown or HTML could
/// make a link, an image or a comment, and bare addresses that autolinking
/// renderers link.
const HOSTILE_NAME: &str =
    "Outage see https://evil.example/a and www.evil.example, mail ops@evil.example";
const HOSTILE_BODY: &str = "Details: http://evil.example/x?y=1 or https://evil.example.\n\
    Contact: root@evil.example (or evil.example/help).\n\
    ![x](http://evil.example/i.png) <img src=x onerror=alert(1)> \
    &lt;img src=y&gt; <!-- hidden --> &lt;!-- also --&gt;\n\
    [a](javascript:alert(1)) [b]: http://evil.example/ref and [b]\n\
    <http://evil.example/auto> <ops@evil.example>\n\
    `code https://evil.example/c` *em* __strong__ ~~gone~~\n\
    # Heading\n\
    ===\n\
    > quoted https://evil.example/q\n\
    1. listed www.evil.example/list";

fn ood_site() -> (FakeStatuspage, Site) {
    site_with(
        &[
            incident(
                "inchostile01",
                HOSTILE_NAME,
                HOSTILE_BODY,
                "https://stspg.io/good1",
            ),
            incident(
                "inchostile02",
                "Second ![i](https://evil.example/2.png)",
                "www.evil.example",
                "https://stspg.io/x\n![x](http://evil.example/nl)",
            ),
        ],
        "\n[[outputs]]\ntemplate = \"ood.md.j2\"\npath = \"{cluster}/motd.md\"\n",
    )
}

/// Runs `program args` with `input` on stdin and returns stdout, failing the
/// test (saying what to install) when the program or its library is missing.
fn pipe(program: &str, args: &[&str], input: &str, install: &str) -> String {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("cannot run `{program}` ({e}); install {install} (scripts/test does, as root)")
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "`{program}` failed; install {install} (scripts/test does, as root):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const MARKDOWN_IT: &str = "\
import sys
from markdown_it import MarkdownIt
md = MarkdownIt('commonmark', {'linkify': True}).enable('linkify')
sys.stdout.write(md.render(sys.stdin.read()))
";

/// Redcarpet as the dashboard of Open `OnDemand` sets it up for `MOTD_FORMAT=markdown`.
const REDCARPET: &str = "\
require 'redcarpet'
md = Redcarpet::Markdown.new(Redcarpet::Render::HTML, autolink: true, tables: true,
  strikethrough: true, fenced_code_blocks: true, no_intra_emphasis: true)
print md.render(STDIN.read)
";

/// The HTML has one link, the shortlink's, and no image, comment or other
/// markup made from upstream text.
fn assert_only_the_shortlink_links(renderer: &str, html: &str) {
    let lower = html.to_ascii_lowercase();
    let links: Vec<&str> = lower
        .match_indices("<a ")
        .map(|(i, _)| &lower[i..])
        .collect();
    assert_eq!(
        links.len(),
        1,
        "{renderer}: exactly one link (the shortlink) expected:\n{html}"
    );
    assert!(
        links[0].starts_with("<a href=\"https://stspg.io/good1\">"),
        "{renderer}: the one link is not the shortlink:\n{html}"
    );
    assert_eq!(lower.matches("href=").count(), 1, "{renderer}:\n{html}");
    // Upstream tags and comments are text (`&lt;img`), never markup.
    for bad in [
        "<img",
        "<!--",
        "<script",
        "<http",
        "<b>",
        "<em>",
        "<strong>Outage",
    ] {
        assert!(!lower.contains(bad), "{renderer}: `{bad}` in\n{html}");
    }
    // The text is still there for the reader, defanged.
    assert!(
        html.contains("https[:]//evil[.]example/a"),
        "{renderer}:\n{html}"
    );
    assert!(html.contains("ops[@]evil[.]example"), "{renderer}:\n{html}");
}

#[test]
fn ood_markdown_has_no_link_but_the_shortlink_in_real_renderers() {
    let (_fake, site) = ood_site();
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let md = site.read("alpha/motd.md");
    assert_terminal_safe(&md);
    assert!(md.contains("- [Details](<https://stspg.io/good1>)"), "{md}");

    let html = pipe(
        "python3",
        &["-c", MARKDOWN_IT],
        &md,
        "markdown-it-py with linkify (`pip install 'markdown-it-py[linkify]'`)",
    );
    assert_only_the_shortlink_links("markdown-it-py", &html);

    let html = pipe(
        "ruby",
        &["-e", REDCARPET],
        &md,
        "Redcarpet (`apt-get install ruby-redcarpet`)",
    );
    assert_only_the_shortlink_links("redcarpet", &html);
}

// Many items

#[test]
fn snippets_stop_at_the_cap_and_index_json_counts_the_rest() {
    let items: Vec<Value> = (0..1000)
        .map(|k| {
            incident(
                &format!("incmany{k:05}"),
                &format!("Item {k}"),
                "Body.",
                &format!("https://stspg.io/m{k}"),
            )
        })
        .collect();
    let (_fake, site) = site_with(&items, "");
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cap = statusmotd::pipeline::MAX_ITEM_FILES;
    let snippets = fs::read_dir(site.out("alpha/items")).unwrap().count();
    assert_eq!(snippets, cap, "snippet files");
    let index: Value = serde_json::from_str(&site.read("index.json")).unwrap();
    let alpha = &index["clusters"]["alpha"];
    assert_eq!(alpha["items_left_out"], json!(1000 - cap), "{alpha}");
    assert_eq!(alpha["items"].as_array().unwrap().len(), cap, "{alpha}");
    // Every item listed has its snippet.
    for item in alpha["items"].as_array().unwrap() {
        let file = item["file"].as_str().unwrap();
        assert!(site.out(file).is_file(), "{file} is listed but missing");
    }
    let motd = site.read("alpha/motd");
    assert!(motd.len() <= statusmotd::render::MAX_FILE_BYTES);
}
