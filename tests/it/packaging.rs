//! Packaging and deployment, end to end with the real tools: `pam_motd` shows a
//! rendered MOTD through `pamtester`; the example Makefile distributes with
//! `make` and `rsync -t` only what changed; the login-node pull script
//! fetches from a real `statusmotd serve` with conditional requests; the
//! Debian package built by `cargo deb` holds what it should; the man page,
//! completions, the Markdown template and the systemd units are what they claim.
//!
//! The tools are installed by `scripts/test` (as root, with apt-get). A test
//! whose tool is missing fails and says how to get it, rather than passing
//! without testing anything; `STATUSMOTD_SKIP_PAM=1` and
//! `STATUSMOTD_SKIP_DEB=1` skip the two tests that need root or `cargo-deb`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::common::{assert_terminal_safe, code, stderr, stdout, Site};
use crate::common::{pam_motd_screen, Served};
use crate::fake::FakeStatuspage;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_statusmotd")
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Fails the test, saying how to install `tool`, when it is missing.
fn require(tool: &str, package: &str) {
    assert!(
        on_path(tool),
        "`{tool}` is not installed, so this test cannot run\n\
         hint: run `scripts/test` as root (it installs it), or `apt-get install {package}`"
    );
}

/// True when the test may run; false (after saying why) when `skip_var` is
/// set. Otherwise a missing requirement fails the test with `why`.
fn may_run(ok: bool, skip_var: &str, why: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var_os(skip_var).is_some_and(|v| v == "1") {
        eprintln!("skipping: {why} ({skip_var}=1)");
        return false;
    }
    panic!("{why}\nhint: set {skip_var}=1 to skip this test explicitly");
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Inode and mtime: what changes when a file is replaced or touched.
fn identity(path: &Path) -> (u64, SystemTime) {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.ino(), meta.modified().unwrap())
}

fn mtime(path: &Path) -> SystemTime {
    identity(path).1
}

fn stamp(ago_minutes: i64) -> String {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(ago_minutes);
    t.round(jiff::Unit::Second).unwrap().to_string()
}

// A small Statuspage: two clusters, each with one component.

const LOGIN_ID: &str = "login0000001";
const STORAGE_ID: &str = "storage00001";

fn component(id: &str, name: &str, status: &str) -> Value {
    json!({
        "id": id, "name": name, "status": status, "group": false, "group_id": null,
        "created_at": "2024-01-01T00:00:00Z", "updated_at": stamp(60),
        "position": 1, "description": null, "showcase": false, "only_show_if_degraded": false,
    })
}

fn incident(id: &str, name: &str, body: &str, component_id: &str, component_name: &str) -> Value {
    let at = stamp(5);
    json!({
        "id": id, "name": name, "status": "investigating", "impact": "major",
        "created_at": at, "updated_at": at, "started_at": at,
        "monitoring_at": null, "resolved_at": null,
        "shortlink": format!("https://stspg.io/{id}"),
        "incident_updates": [{
            "id": format!("{id}-u1"), "status": "investigating", "body": body,
            "created_at": at, "updated_at": at, "display_at": at,
            "affected_components": [{"code": component_id, "name": component_name,
                                     "old_status": "operational", "new_status": "major_outage"}],
        }],
        "components": [component(component_id, component_name, "major_outage")],
    })
}

fn summary(incidents: &[Value]) -> Value {
    let down = |id: &str| incidents.iter().any(|i| i["components"][0]["id"] == id);
    let status = |id| {
        if down(id) {
            "major_outage"
        } else {
            "operational"
        }
    };
    json!({
        "page": {"id": "pkgtestpage1", "name": "Test", "url": "https://status.example.org",
                 "time_zone": "Etc/UTC", "updated_at": stamp(1)},
        "components": [
            component(LOGIN_ID, "Login nodes", status(LOGIN_ID)),
            component(STORAGE_ID, "Storage", status(STORAGE_ID)),
        ],
        "incidents": incidents,
        "scheduled_maintenances": [],
        "status": {"indicator": "none", "description": "All Systems Operational"},
    })
}

fn login_incident(name: &str, body: &str) -> Value {
    incident("inclogin0001", name, body, LOGIN_ID, "Login nodes")
}

fn storage_incident(name: &str) -> Value {
    incident(
        "incstor00001",
        name,
        "The storage servers are being replaced.",
        STORAGE_ID,
        "Storage",
    )
}

fn mapping(url: &str, extra: &str) -> String {
    format!(
        r#"[settings]
timezone = "UTC"
request_timeout = "2s"
retries = 0

[sources.status]
kind = "statuspage-public"
url = "{url}"

[clusters.alpha]
components = ["Login nodes"]
page_wide = false

[clusters.beta]
components = ["Storage"]
page_wide = false
{extra}"#
    )
}

// The man page and the completions

#[test]
fn man_page_is_roff_naming_every_subcommand() {
    let out = run(Command::new(bin()).arg("man"));
    let man = stdout(&out);
    assert!(
        man.starts_with(".ie") || man.contains(".TH statusmotd"),
        "{man}"
    );
    assert!(man.contains(".TH statusmotd"), "no title header:\n{man}");
    for sub in [
        "demo",
        "render",
        "fetch",
        "show",
        "gate",
        "serve",
        "mapping",
        "completions",
    ] {
        assert!(
            man.contains(sub),
            "the man page does not name `{sub}`:\n{man}"
        );
    }
}

#[test]
fn completions_for_bash_zsh_and_fish_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(Command::new(bin()).args(["completions", shell]));
        let text = stdout(&out);
        assert!(
            text.len() > 200,
            "{shell} completion is almost empty:\n{text}"
        );
        assert!(text.contains("render"), "{shell} completion lacks `render`");
        assert!(
            text.contains("config"),
            "{shell} completion lacks `--config`"
        );
    }
    let out = Command::new(bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "an unknown shell is a usage error");
}

// pam_motd

#[test]
fn pam_motd_shows_the_rendered_motd_without_escape_sequences() {
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        "/api/v2/summary.json",
        summary(&[login_incident(
            "Login nodes refuse SSH keys",
            "Logins with SSH keys fail. \u{1b}[2J\u{1b}]52;c;cm0gLXJmIH4=\u{7}Use a password meanwhile.",
        )]),
    );
    let site = Site::new(&mapping(&fake.url(), ""));
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let Some(shown) = pam_motd_screen(&site.out("alpha/motd")) else {
        return;
    };
    let screen = String::from_utf8_lossy(&shown).into_owned();
    assert!(
        screen.contains("Login nodes refuse SSH keys") && screen.contains("Use a password meanwhile."),
        "pam_motd did not show the MOTD (is pam_motd.so installed? `apt-get install libpam-modules`):\n{screen}"
    );
    assert!(screen.contains("https://stspg.io/inclogin0001"), "{screen}");
    assert!(
        !shown.contains(&0x1b),
        "an ESC byte reached the screen:\n{screen:?}"
    );
    assert!(
        !screen.contains("52;c"),
        "the OSC 52 payload reached the screen:\n{screen}"
    );
    assert_terminal_safe(&screen.replace('\r', ""));
}

// The example Makefile: make + rsync -t

struct MakeSite {
    site: Site,
    nodes: tempfile::TempDir,
}

impl MakeSite {
    fn dest(&self, node: &str) -> PathBuf {
        self.nodes
            .path()
            .join(node)
            .join("motd.d/50-statusmotd.motd")
    }

    /// `make deploy` with a site Makefile that sets the variables and
    /// includes the example, as the README suggests.
    fn deploy(&self) -> String {
        let dests = |nodes: &[&str]| {
            nodes
                .iter()
                .map(|n| self.dest(n).display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let makefile = self.site.path().join("Makefile");
        fs::write(
            &makefile,
            format!(
                "STATUSMOTD = {}\nCONFIG = {}\nOUT = {}\nDEST_alpha = {}\nDEST_beta = {}\ninclude {}\n",
                bin(),
                self.site.path().join("mapping.toml").display(),
                self.site.path().join("out").display(),
                dests(&["login1", "login2"]),
                dests(&["beta-login"]),
                root().join("packaging/examples/Makefile").display(),
            ),
        )
        .unwrap();
        let o = run(Command::new("make")
            .arg("-f")
            .arg(&makefile)
            .arg("deploy")
            .current_dir(self.site.path())
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS"));
        stdout(&o)
    }

    fn stamp(&self, cluster: &str) -> PathBuf {
        self.site.path().join("out/.deployed").join(cluster)
    }
}

/// The lines rsync's `-i` printed for files it copied.
fn copied(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.starts_with(">f")).collect()
}

#[test]
fn makefile_copies_only_what_changed() {
    require("make", "make");
    require("rsync", "rsync");
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        "/api/v2/summary.json",
        summary(&[login_incident(
            "Login nodes are slow",
            "We are looking into it.",
        )]),
    );
    let site = MakeSite {
        site: Site::new(&mapping(&fake.url(), "")),
        nodes: tempfile::tempdir().unwrap(),
    };
    for node in ["login1", "login2", "beta-login"] {
        fs::create_dir_all(site.nodes.path().join(node).join("motd.d")).unwrap();
    }

    // First run: everything is new, every node gets its cluster's MOTD with
    // the MOTD's mtime.
    let log = site.deploy();
    assert_eq!(copied(&log).len(), 3, "three nodes to fill:\n{log}");
    for (node, cluster) in [
        ("login1", "alpha"),
        ("login2", "alpha"),
        ("beta-login", "beta"),
    ] {
        let src = site.site.out(&format!("{cluster}/motd"));
        assert_eq!(
            fs::read(site.dest(node)).unwrap(),
            fs::read(&src).unwrap(),
            "{node}"
        );
        assert_eq!(
            mtime(&site.dest(node)),
            mtime(&src),
            "rsync -t keeps the mtime on {node}"
        );
    }
    assert!(fs::read_to_string(site.dest("login1"))
        .unwrap()
        .contains("Login nodes are slow"));
    assert_eq!(fs::read_to_string(site.dest("beta-login")).unwrap(), "");
    let nodes_before: Vec<_> = ["login1", "login2", "beta-login"]
        .iter()
        .map(|n| identity(&site.dest(n)))
        .collect();
    let stamps_before = [mtime(&site.stamp("alpha")), mtime(&site.stamp("beta"))];

    // Second run, nothing new upstream: nothing rendered, no rsync, no file
    // touched anywhere.
    let log = site.deploy();
    assert!(copied(&log).is_empty(), "nothing may be copied:\n{log}");
    assert!(!log.contains("rsync"), "no rsync may even run:\n{log}");
    assert!(
        !log.contains("updated") && !log.contains("created"),
        "nothing may be rendered:\n{log}"
    );
    let nodes_after: Vec<_> = ["login1", "login2", "beta-login"]
        .iter()
        .map(|n| identity(&site.dest(n)))
        .collect();
    assert_eq!(nodes_before, nodes_after, "login-node files were touched");
    assert_eq!(
        stamps_before,
        [mtime(&site.stamp("alpha")), mtime(&site.stamp("beta"))]
    );

    // Upstream news for beta only: exactly beta's node gets a copy.
    fake.set_json(
        "/api/v2/summary.json",
        summary(&[
            login_incident("Login nodes are slow", "We are looking into it."),
            storage_incident("Storage is offline"),
        ]),
    );
    let log = site.deploy();
    let lines = copied(&log);
    assert_eq!(lines.len(), 1, "only beta changed:\n{log}");
    assert!(
        lines[0].ends_with(&site.dest("beta-login").display().to_string()),
        "{log}"
    );
    assert!(log.contains("updated beta/motd"), "{log}");
    assert!(fs::read_to_string(site.dest("beta-login"))
        .unwrap()
        .contains("Storage is offline"));
    assert_eq!(identity(&site.dest("login1")), nodes_before[0]);
    assert_eq!(identity(&site.dest("login2")), nodes_before[1]);
    assert_eq!(
        mtime(&site.dest("beta-login")),
        mtime(&site.site.out("beta/motd"))
    );
}

#[test]
fn makefile_gate_reports_a_blocked_cluster() {
    require("make", "make");
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        "/api/v2/summary.json",
        summary(&[storage_incident("Storage is offline")]),
    );
    let site = Site::new(&mapping(&fake.url(), ""));
    let gate = |cluster: &str| {
        Command::new("make")
            .arg("-s")
            .arg("-f")
            .arg(root().join("packaging/examples/Makefile"))
            .arg("gate")
            .arg(format!("CLUSTER={cluster}"))
            .arg(format!("STATUSMOTD={}", bin()))
            .arg(format!(
                "CONFIG={}",
                site.path().join("mapping.toml").display()
            ))
            .current_dir(site.path())
            .env_remove("MAKEFLAGS")
            .output()
            .unwrap()
    };
    assert!(gate("alpha").status.success(), "alpha is clear");
    let blocked = gate("beta");
    assert!(!blocked.status.success(), "beta has an incident");
    assert!(
        stdout(&blocked).contains("Storage is offline"),
        "{}",
        stdout(&blocked)
    );
}

// The pull script against `statusmotd serve`

const REFRESH_TOKEN: &str = "pkg-refresh-7Hq2";

/// A running `statusmotd serve` on a free port.
/// `statusmotd serve` on a free port, with the refresh token set.
fn serve(config: &Path) -> Served {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("STATUSMOTD_REFRESH_TOKEN", REFRESH_TOKEN)
        .env_remove("STATUSMOTD_CONFIG");
    Served::spawn(cmd)
}

struct Puller {
    output: PathBuf,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Puller {
    fn new() -> Puller {
        let dir = tempfile::tempdir().unwrap();
        Puller {
            output: dir.path().join("run/motd.d/50-statusmotd.motd"),
            state: dir.path().join("run/statusmotd"),
            _dir: dir,
        }
    }

    fn pull(&self, url: &str, cluster: &str) -> Output {
        Command::new("sh")
            .arg(root().join("packaging/login-node/statusmotd-pull"))
            .args(["-v", "--url", url, "--cluster", cluster, "--timeout", "5"])
            .arg("--output")
            .arg(&self.output)
            .arg("--state-dir")
            .arg(&self.state)
            .env_remove("STATUSMOTD_URL")
            .output()
            .unwrap()
    }

    /// Nothing but the output (and the state directory) was left behind.
    fn assert_no_leftovers(&self) {
        let in_motd_d: Vec<_> = fs::read_dir(self.output.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            in_motd_d,
            ["50-statusmotd.motd"],
            "pam_motd would show these"
        );
        for entry in fs::read_dir(&self.state).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert_eq!(
                name, "50-statusmotd.motd.etag",
                "temporary file left in the state dir"
            );
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_script_fetches_conditionally_and_keeps_the_file_on_errors() {
    require("curl", "curl");
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        "/api/v2/summary.json",
        summary(&[login_incident(
            "Login nodes reboot at noon",
            "Save your work.",
        )]),
    );
    let site = Site::new(&mapping(
        &fake.url(),
        "\n[server]\nrefresh_token = { env = \"STATUSMOTD_REFRESH_TOKEN\" }\n",
    ));
    // Poll rarely, so that only the refresh below changes the files.
    let text = fs::read_to_string(site.path().join("mapping.toml"))
        .unwrap()
        .replace(
            "[settings]\n",
            "[settings]\npoll_interval = \"1h\"\ndebounce = \"0s\"\n",
        );
    fs::write(site.path().join("mapping.toml"), text).unwrap();
    let served = serve(&site.path().join("mapping.toml"));
    let client = reqwest::Client::new();
    let motd_url = format!("{}/motd/alpha", served.base);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = match client.get(&motd_url).send().await {
            Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        if body.contains("Login nodes reboot at noon") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve never rendered alpha:\n{}",
            served.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let p = Puller::new();
    // First pull: the file appears, with the server's bytes and mtime.
    let o = p.pull(&served.base, "alpha");
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("updated"), "{}", stdout(&o));
    let served_file = site.out("alpha/motd");
    assert_eq!(
        fs::read(&p.output).unwrap(),
        fs::read(&served_file).unwrap()
    );
    assert_eq!(
        unix_secs(mtime(&p.output)),
        unix_secs(mtime(&served_file)),
        "Last-Modified kept as mtime"
    );
    assert_eq!(fs::metadata(&p.output).unwrap().mode() & 0o777, 0o644);
    let first = identity(&p.output);
    p.assert_no_leftovers();

    // Second pull: 304, the file is not touched.
    let o = p.pull(&served.base, "alpha");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("304"), "expected a 304: {}", stdout(&o));
    assert_eq!(identity(&p.output), first);

    // The server answers an error (an unknown cluster): the file stays.
    let o = p.pull(&served.base, "nosuch");
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("HTTP 404"), "{}", stderr(&o));
    assert_eq!(identity(&p.output), first);

    // The server is down: the file stays.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let o = p.pull(&closed, "alpha");
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("kept"), "{}", stderr(&o));
    assert_eq!(identity(&p.output), first);
    assert!(fs::read_to_string(&p.output)
        .unwrap()
        .contains("Login nodes reboot at noon"));
    p.assert_no_leftovers();

    // The incident ends: an empty MOTD is news too, and is written.
    fake.set_json("/api/v2/summary.json", summary(&[]));
    let r = client
        .post(format!("{}/refresh?wait=true", served.base))
        .bearer_auth(REFRESH_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    assert_eq!(fs::read_to_string(&served_file).unwrap(), "");
    let o = p.pull(&served.base, "alpha");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(p.output.exists());
    assert_eq!(fs::read_to_string(&p.output).unwrap(), "");
    let o = p.pull(&served.base, "alpha");
    assert!(
        stdout(&o).contains("304"),
        "an empty file has an ETag too: {}",
        stdout(&o)
    );
    p.assert_no_leftovers();
}

#[test]
fn pull_script_refuses_bad_usage_and_a_state_dir_on_another_file_system() {
    let p = Puller::new();
    let o = Command::new("sh")
        .arg(root().join("packaging/login-node/statusmotd-pull"))
        .env_remove("STATUSMOTD_URL")
        .env_remove("STATUSMOTD_CLUSTER")
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("STATUSMOTD_URL"), "{}", stderr(&o));
    let o = p.pull("http://127.0.0.1:1", "../etc");
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("invalid cluster name"),
        "{}",
        stderr(&o)
    );
    assert!(!p.output.exists());
    // /dev/shm is a tmpfs, the temporary directory usually not: when they
    // differ, the script must refuse rather than copy non-atomically.
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && fs::metadata(shm).unwrap().dev() != fs::metadata(std::env::temp_dir()).unwrap().dev()
    {
        let state = tempfile::tempdir_in(shm).unwrap();
        let o = Command::new("sh")
            .arg(root().join("packaging/login-node/statusmotd-pull"))
            .args([
                "--url",
                "http://127.0.0.1:1",
                "--cluster",
                "alpha",
                "--output",
            ])
            .arg(&p.output)
            .arg("--state-dir")
            .arg(state.path())
            .output()
            .unwrap();
        assert_eq!(code(&o), 2);
        assert!(
            stderr(&o).contains("different file systems"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn update_motd_snippet_prints_the_cached_file_without_controls() {
    let dir = tempfile::tempdir().unwrap();
    let cached = dir.path().join("motd");
    fs::write(&cached, "== alpha: Major outage\n\u{1b}[2Jnews\n").unwrap();
    let defaults = dir.path().join("statusmotd-pull");
    fs::write(
        &defaults,
        format!(
            "STATUSMOTD_URL=http://x\nSTATUSMOTD_OUTPUT=\"{}\"\n",
            cached.display()
        ),
    )
    .unwrap();
    let script = root().join("packaging/login-node/update-motd.d/50-statusmotd");
    let o = run(Command::new("sh")
        .arg(&script)
        .env("STATUSMOTD_PULL_DEFAULTS", &defaults));
    assert_eq!(stdout(&o), "== alpha: Major outage\n[2Jnews\n");
    // Without the file: nothing, and success (a login must not fail).
    fs::remove_file(&cached).unwrap();
    let o = run(Command::new("sh")
        .arg(&script)
        .env("STATUSMOTD_PULL_DEFAULTS", &defaults));
    assert_eq!(stdout(&o), "");
}

// Open OnDemand

#[test]
fn ood_markdown_output_links_shortlinks_and_escapes_upstream_markdown() {
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        "/api/v2/summary.json",
        summary(&[login_incident(
            "Logins fail [click](https://evil.example) <b>now</b>",
            "Use ![x](https://evil.example/x.png) nothing \u{1b}[31m here.",
        )]),
    );
    let site = Site::new(&mapping(
        &fake.url(),
        "\n[[outputs]]\ntemplate = \"ood.md.j2\"\npath = \"{cluster}/motd.md\"\n",
    ));
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let md = site.read("alpha/motd.md");
    assert_terminal_safe(&md);
    assert!(md.starts_with("## alpha: Major outage\n"), "{md}");
    assert!(
        md.contains("### Incident: Logins fail \\[click\\](https\\[:\\]//evil\\[.\\]example)"),
        "{md}"
    );
    assert!(
        md.contains("- [Details](<https://stspg.io/inclogin0001>)"),
        "{md}"
    );
    assert!(
        md.contains("> Use !\\[x\\](https\\[:\\]//evil\\[.\\]example/x\\[.\\]png) nothing"),
        "{md}"
    );
    assert!(!md.contains("<b>"), "{md}");
    assert!(
        !md.replace("\\]", "").contains("](https://evil"),
        "an upstream link survived:\n{md}"
    );
    assert_eq!(site.read("beta/motd.md"), "", "nothing concerns beta");
}

// Packaged configuration and systemd units

#[test]
fn packaged_config_loads_and_writes_under_the_state_directory() {
    let config = statusmotd::config::Config::load(&root().join("packaging/etc/mapping.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.settings.output_dir,
        Path::new("/var/lib/statusmotd/out")
    );
    assert_eq!(
        config.settings.state_dir,
        Path::new("/var/lib/statusmotd/state")
    );
    assert!(
        config.clusters.is_empty(),
        "clusters are for the administrator to add"
    );
    assert!(config.sources.contains_key("main"));

    // With its example cluster enabled and its paths moved, it renders.
    let fake = FakeStatuspage::spawn();
    fake.set_json(
        "/api/v2/summary.json",
        summary(&[login_incident("Login nodes are down", "Try again later.")]),
    );
    let dir = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(root().join("packaging/etc/mapping.toml"))
        .unwrap()
        .replace("https://status.example.org", &fake.url())
        .replace("/var/lib/statusmotd", &dir.path().display().to_string())
        .replace(
            "# [clusters.archer2]\n",
            "[clusters.archer2]\ncomponents = [\"Login nodes\"]\n",
        );
    fs::write(dir.path().join("mapping.toml"), text).unwrap();
    let o = Command::new(bin())
        .args(["render", "--config"])
        .arg(dir.path().join("mapping.toml"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let motd = fs::read_to_string(dir.path().join("out/archer2/motd")).unwrap();
    assert!(motd.contains("Login nodes are down"), "{motd}");
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    if !on_path("systemd-analyze") {
        // systemd is heavy to install only for this; the unit's content is
        // still checked below.
        eprintln!("skipping `systemd-analyze verify`: systemd-analyze is not installed");
    }
    let unit = fs::read_to_string(root().join("packaging/systemd/statusmotd.service")).unwrap();
    for line in [
        "User=statusmotd",
        "StateDirectory=statusmotd",
        "UMask=0022",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "EnvironmentFile=-/etc/statusmotd/env",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/bin/statusmotd serve --config /etc/statusmotd/mapping.toml",
    ] {
        assert!(unit.contains(line), "the unit lacks `{}`", line.trim());
    }
    assert!(
        !unit.contains("\nDynamicUser="),
        "DynamicUser hides the output from pam_motd"
    );
    if !on_path("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let units = [
        ("packaging/systemd/statusmotd.service", "statusmotd.service"),
        (
            "packaging/login-node/statusmotd-pull.service",
            "statusmotd-pull.service",
        ),
        (
            "packaging/login-node/statusmotd-pull.timer",
            "statusmotd-pull.timer",
        ),
    ];
    let mut paths = Vec::new();
    for (src, name) in units {
        // verify checks that ExecStart= exists: point it at what is here.
        let text = fs::read_to_string(root().join(src))
            .unwrap()
            .replace("/usr/bin/statusmotd", bin())
            .replace(
                "/usr/local/sbin/statusmotd-pull",
                &root()
                    .join("packaging/login-node/statusmotd-pull")
                    .display()
                    .to_string(),
            );
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let complaints = stderr(&o);
    assert!(
        o.status.success() && complaints.trim().is_empty(),
        "{complaints}"
    );
}

// The Debian package

#[test]
fn cargo_deb_packages_binary_unit_conffile_man_page_and_completions() {
    let has_cargo_deb = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !may_run(
        has_cargo_deb,
        "STATUSMOTD_SKIP_DEB",
        "`cargo deb` is not installed; `scripts/test` installs it (cargo install cargo-deb --locked)",
    ) {
        return;
    }
    require("dpkg-deb", "dpkg");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    // The generated files, made by this very binary, where Cargo.toml's
    // metadata expects them.
    run(Command::new("sh")
        .arg(root().join("packaging/build-assets"))
        .arg(bin()));

    // `cargo deb --no-build` packages `<target dir>/release/statusmotd`: a
    // private target dir holding this test's (debug) binary, stripped when
    // `strip` is there, saves a release build of several minutes.
    let target = tempfile::tempdir().unwrap();
    let release = target.path().join("release");
    fs::create_dir_all(&release).unwrap();
    let packaged_bin = release.join("statusmotd");
    let stripped = on_path("strip")
        && Command::new("strip")
            .arg("-o")
            .arg(&packaged_bin)
            .arg(bin())
            .status()
            .is_ok_and(|s| s.success());
    if !stripped {
        fs::copy(bin(), &packaged_bin).unwrap();
    }
    let deb = target.path().join("statusmotd.deb");
    run(Command::new(&cargo)
        .args([
            "deb",
            "--no-build",
            "--no-strip",
            "--fast",
            "--manifest-path",
        ])
        .arg(root().join("Cargo.toml"))
        .arg("--output")
        .arg(&deb)
        .env("CARGO_TARGET_DIR", target.path()));

    let listing = stdout(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    for path in [
        "./usr/bin/statusmotd",
        "./usr/lib/systemd/system/statusmotd.service",
        "./etc/statusmotd/mapping.toml",
        "./usr/share/man/man1/statusmotd.1.gz",
        "./usr/share/bash-completion/completions/statusmotd",
        "./usr/share/zsh/vendor-completions/_statusmotd",
        "./usr/share/fish/vendor_completions.d/statusmotd.fish",
        "./usr/share/statusmotd/templates/motd.txt.j2",
        "./usr/share/statusmotd/templates/ood.md.j2",
        "./usr/share/statusmotd/login-node/statusmotd-pull",
        "./usr/share/statusmotd/login-node/update-motd.d/50-statusmotd",
        "./usr/share/statusmotd/examples/ansible/playbook.yml",
        "./usr/share/statusmotd/examples/ansible/roles/statusmotd_probes/tasks/main.yml",
        "./usr/share/statusmotd/examples/ansible/roles/statusmotd_probes/templates/probes.toml.j2",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "`{path}` is not in the package:\n{listing}"
        );
    }
    let conffiles = stdout(&run(Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .arg("conffiles")));
    assert_eq!(conffiles.trim(), "/etc/statusmotd/mapping.toml");

    // What is packaged is what is here, and the maintainer scripts create
    // the user and enable (not start) the unit.
    let tree = target.path().join("tree");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree));
    assert_eq!(
        fs::read(tree.join("etc/statusmotd/mapping.toml")).unwrap(),
        fs::read(root().join("packaging/etc/mapping.toml")).unwrap()
    );
    let man = Command::new("gzip")
        .arg("-dc")
        .arg(tree.join("usr/share/man/man1/statusmotd.1.gz"))
        .output()
        .unwrap();
    assert!(
        stdout(&man).contains(".TH statusmotd"),
        "the man page is not roff"
    );
    let control = target.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let postinst = fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("useradd --system"), "{postinst}");
    assert!(
        postinst.contains("deb-systemd-helper enable statusmotd.service"),
        "{postinst}"
    );
    assert!(
        !postinst.contains("deb-systemd-invoke start"),
        "the unit must not start before it is configured"
    );
    for script in ["postinst", "prerm", "postrm"] {
        run(Command::new("sh").arg("-n").arg(control.join(script)));
    }
}
