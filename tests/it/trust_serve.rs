//! `statusmotd serve` against hostile clients, templates and commands, with
//! the real binary: slow and wrong-token webhooks under systemd's default
//! file-descriptor limit, secrets in `on_change`'s environment, a template
//! that loops, an `on_change` that hangs, and SIGHUP while it starts.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{eventually, http_get, Served};
use crate::fake::FakeStatuspage;

const PAGE: &str = "tsmanage0001";
const WEBHOOK_TOKEN: &str = "tsWh5Kq2ZpX9vLm4";
const API_KEY_VAR: &str = "STATUSMOTD_TS_API_KEY";
const WEBHOOK_VAR: &str = "STATUSMOTD_TS_WEBHOOK_TOKEN";
const REFRESH_VAR: &str = "STATUSMOTD_TS_REFRESH_TOKEN";
const API_KEY: &str = "tsAk9Rz6YdH2fGp7";
const REFRESH_TOKEN: &str = "tsRf3Jt8WcN5bQs1";

/// A fake page for both kinds of source: the manage page `PAGE` (one
/// component, `Login nodes`, with `status`) and a public page (`Storage`).
fn fake_page(status: &str) -> FakeStatuspage {
    let fake = FakeStatuspage::spawn();
    set_status(&fake, status);
    fake.set_json(
        "/api/v2/summary.json",
        json!({
            "page": {"id": "tspublic0001", "name": "Public", "url": "https://status.example.org"},
            "components": [{"id": "s1", "name": "Storage", "status": "operational"}],
            "incidents": [],
            "scheduled_maintenances": []
        }),
    );
    fake.set_json("/api/v2/incidents.json", json!({"incidents": []}));
    fake.set_json(
        "/api/v2/scheduled-maintenances.json",
        json!({"scheduled_maintenances": []}),
    );
    fake
}

fn set_status(fake: &FakeStatuspage, status: &str) {
    let base = format!("/pages/{PAGE}");
    fake.set_json(
        &format!("{base}/components"),
        json!([{"id": "c1", "name": "Login nodes", "status": status, "group_id": null}]),
    );
    fake.set_json(&format!("{base}/component-groups"), json!([]));
    for list in [
        "incidents/unresolved",
        "incidents/upcoming",
        "incidents/active_maintenance",
        "incidents",
    ] {
        fake.set_json(&format!("{base}/{list}"), json!([]));
    }
}

/// A site directory with mapping.toml: secrets from environment variables,
/// `server` appended to `[server]`, and `templates/` when `templates`.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(fake: &FakeStatuspage, server: &str, templates: bool) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let url = fake.url();
        let templates_dir = if templates {
            fs::create_dir(dir.path().join("templates")).unwrap();
            "templates_dir = \"templates\"\n"
        } else {
            ""
        };
        let mapping = format!(
            r#"[settings]
output_dir = "out"
state_dir = "state"
{templates_dir}timezone = "UTC"
poll_interval = "1h"
debounce = "0s"
request_timeout = "2s"
retries = 0

[sources.hpc]
kind = "statuspage"
page_id = "{PAGE}"
api_key = {{ env = "{API_KEY_VAR}" }}
api_base = "{url}"

[sources.pub]
kind = "statuspage-public"
url = "{url}"

[server]
listen = "127.0.0.1:0"
webhook_token = {{ env = "{WEBHOOK_VAR}" }}
refresh_token = {{ env = "{REFRESH_VAR}" }}
{server}

[clusters.alpha]
source = "hpc"
components = ["Login nodes"]

[clusters.beta]
source = "pub"
components = ["Storage"]
"#
        );
        fs::write(dir.path().join("mapping.toml"), mapping).unwrap();
        Site { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a template the way editors save: a new file renamed over.
    fn set_template(&self, name: &str, text: &str) {
        let tmp = self.path(&format!("templates/.{name}.new"));
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, self.path(&format!("templates/{name}"))).unwrap();
    }

    /// `statusmotd serve` for this site with the secrets in its
    /// environment, run through `wrapper` (e.g. `prlimit ...`) when given.
    fn command(&self, wrapper: &[&str]) -> Command {
        let bin = assert_cmd::cargo::cargo_bin!("statusmotd");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(self.path("mapping.toml"))
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("STATUSMOTD_CONFIG")
            .env("RUST_LOG", "info")
            .env(API_KEY_VAR, API_KEY)
            .env(WEBHOOK_VAR, WEBHOOK_TOKEN)
            .env(REFRESH_VAR, REFRESH_TOKEN);
        cmd
    }

    fn serve(&self) -> Served {
        Served::spawn(self.command(&[]))
    }

    fn motd(&self, cluster: &str) -> Option<(String, std::time::SystemTime)> {
        let path = self.path(&format!("out/{cluster}/motd"));
        let text = fs::read_to_string(&path).ok()?;
        Some((text, fs::metadata(&path).ok()?.modified().ok()?))
    }
}

/// Polls `path` until it answers `status` (and `body` is in the answer),
/// failing after `secs` seconds with the last answer.
fn wait_for(served: &Served, path: &str, status: u16, body: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = http_get(served.addr(), path, Duration::from_secs(5));
        if let Some((s, text)) = &got {
            if *s == status && text.contains(body) {
                return text.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "`{path}` did not answer {status} with `{body}` within {secs} s; last: {got:?}\n{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then the exit status, or `None` when it is still running after
/// `limit`.
fn terminate(served: &mut Served, limit: Duration) -> Option<ExitStatus> {
    signal(served.child.id(), "TERM");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -s {name} {pid}");
}

/// Whether `pid` is a live process (a zombie waiting for its parent is not).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) STATE ...`; comm may hold spaces and parentheses.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

// ---------------------------------------------------------------------------
// Slow and wrong-token clients

/// Raises this process's soft limit on open files to at least `want`, with
/// prlimit(1) (the test crate has no `unsafe` for setrlimit).
fn ensure_nofile(want: u64) {
    let limits = fs::read_to_string("/proc/self/limits").unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if soft < want {
        let pid = std::process::id().to_string();
        let ok = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={want}:{want}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot raise the open-file limit of the test to {want}");
    }
}

#[test]
fn slow_and_wrong_token_clients_cannot_use_up_the_file_descriptors() {
    const WRONG_TOKEN: usize = 700;
    const SLOW_HEADERS: usize = 700;
    ensure_nofile(4096);
    let fake = fake_page("major_outage");
    let site = Site::new(&fake, "", false);
    // systemd's default limit: 1,024 open files.
    let served = Served::spawn(site.command(&["prlimit", "--nofile=1024:1024", "--"]));
    let addr = served.addr().to_owned();
    wait_for(&served, "/readyz", 200, "", 20);
    wait_for(&served, "/motd/alpha", 200, "Login nodes", 5);
    let connect =
        || TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)).ok();
    let probe = |when: &str| {
        for path in ["/livez", "/motd/alpha"] {
            let asked = Instant::now();
            let answer = http_get(&addr, path, Duration::from_secs(2));
            assert!(
                answer.as_ref().is_some_and(|(status, _)| *status == 200)
                    && asked.elapsed() < Duration::from_secs(2),
                "{when}: `{path}` did not answer 200 within 2 s: {answer:?}"
            );
        }
    };
    let started = Instant::now();

    // 1,400 connections that would each hold a descriptor. First webhooks to
    // a wrong token, announcing a 100 kB body they trickle a byte at a time:
    // each is answered 404 without its body.
    // (In batches of 100, each read before the next, so that they stay
    // under the connection cap while in flight.)
    let mut wrong: Vec<TcpStream> = Vec::new();
    for batch in 0..WRONG_TOKEN / 100 {
        let mut sent = Vec::new();
        for _ in 0..100 {
            if let Some(mut s) = connect() {
                let _ = s.write_all(
                    b"POST /webhook/not-the-token HTTP/1.1\r\nHost: x\r\n\
                      Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
                );
                sent.push(s);
            }
        }
        let mut answered = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        for s in &mut sent {
            let _ = s.write_all(b" ");
            let left = deadline.saturating_duration_since(Instant::now());
            s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut buf = [0u8; 64];
            if let Ok(n) = s.read(&mut buf) {
                if buf[..n].starts_with(b"HTTP/1.1 404") {
                    answered += 1;
                }
            }
        }
        assert_eq!(
            answered, 100,
            "batch {batch}: wrong-token webhooks answered 404 at once"
        );
        wrong.extend(sent);
    }
    probe("after the wrong-token webhooks");

    // Then clients that never finish their headers, more than the cap.
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..SLOW_HEADERS {
        if let Some(mut s) = connect() {
            let _ = s.write_all(b"GET /livez HT");
            slow.push(s);
        }
    }
    // While they are held (and the webhooks keep trickling), the probes and
    // pulls answer, and no more descriptors than the cap allows are open.
    let mut max_fds = 0;
    for round in 0..3 {
        for s in &mut wrong {
            let _ = s.write_all(b" ");
        }
        probe(&format!("round {round} with slow clients held"));
        max_fds = max_fds.max(open_fds(served.child.id()));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        max_fds <= 512 + 64,
        "{max_fds} descriptors open: more connections than the cap are held"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    drop(slow);
    drop(wrong);
    probe("afterwards");
}

#[test]
fn a_webhook_body_that_never_ends_is_cut_off_at_the_request_deadline() {
    let fake = fake_page("operational");
    let site = Site::new(&fake, "", false);
    let served = site.serve();
    let addr = served.addr().to_owned();
    wait_for(&served, "/readyz", 200, "", 20);

    // The right token, then a body that never completes.
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .write_all(
            format!(
                "POST /webhook/{WEBHOOK_TOKEN} HTTP/1.1\r\nHost: x\r\n\
                 Content-Length: 1000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    loop {
        let _ = stream.write_all(b" ");
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // A read with a timeout is not restarted after a signal: other
            // tests of this binary reap their children through SIGCHLD.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(35),
            "the request is still open after 35 s"
        );
    }
    // The server closes a socket whose receive buffer still holds body
    // bytes, so the kernel answers those with a reset, which may overtake
    // the 408 and discard it here. Either way the connection ended, and the
    // metric below says it was the deadline that ended it.
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "not a 408: {answer:?}"
    );
    // Cut off by the deadline, not by an idle timeout: bytes kept coming.
    let elapsed = started.elapsed();
    assert!(
        elapsed > Duration::from_secs(15) && elapsed < Duration::from_secs(32),
        "{elapsed:?}"
    );
    let (_, metrics) = http_get(&addr, "/metrics", Duration::from_secs(2)).unwrap();
    assert!(
        metrics.contains("statusmotd_webhooks_total{outcome=\"timeout\"} 1"),
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------
// on_change

#[test]
fn on_change_gets_none_of_the_secret_variables() {
    let fake = fake_page("major_outage");
    let out = tempfile::tempdir().unwrap();
    let env_file = out.path().join("env");
    let site = Site::new(
        &fake,
        &format!(
            "on_change = [\"sh\", \"-c\", \"env > '{0}.tmp' && mv '{0}.tmp' '{0}'\"]",
            env_file.display()
        ),
        false,
    );
    let served = site.serve();
    eventually("on_change to write its environment", 20, || {
        env_file.exists()
    });
    let env = fs::read_to_string(&env_file).unwrap();
    assert!(env.contains("STATUSMOTD_CHANGED_CLUSTERS="), "{env}");
    for secret in [
        API_KEY_VAR,
        WEBHOOK_VAR,
        REFRESH_VAR,
        API_KEY,
        WEBHOOK_TOKEN,
        REFRESH_TOKEN,
    ] {
        assert!(
            !env.contains(secret),
            "`{secret}` reached on_change:\n{env}"
        );
    }
    drop(served);
}

/// An `on_change` that writes its pid and its grandchild's, then hangs.
fn hanging_on_change(dir: &Path) -> PathBuf {
    let script = dir.join("hang.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep 1000 &\necho $! > '{0}/grandchild.tmp'\necho $$ > '{0}/child.tmp'\n\
             mv '{0}/grandchild.tmp' '{0}/grandchild.pid'\nmv '{0}/child.tmp' '{0}/child.pid'\nwait\n",
            dir.display()
        ),
    )
    .unwrap();
    script
}

fn read_pids(dir: &Path) -> (u32, u32) {
    let pid = |name: &str| -> u32 {
        fs::read_to_string(dir.join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (pid("child.pid"), pid("grandchild.pid"))
}

#[test]
fn a_hanging_on_change_is_killed_with_its_group_on_timeout_and_at_shutdown() {
    let fake = fake_page("major_outage");
    let work = tempfile::tempdir().unwrap();
    let script = hanging_on_change(work.path());
    let hanging = |timeout: &str| {
        format!(
            "on_change = [\"sh\", \"{}\"]\non_change_timeout = \"{timeout}\"",
            script.display()
        )
    };

    // A 4 s timeout: past 2 s /readyz says it runs, then it and its
    // grandchild are killed.
    let site = Site::new(&fake, &hanging("4s"), false);
    let mut served = site.serve();
    eventually("on_change to start", 20, || {
        work.path().join("child.pid").exists()
    });
    let (child, grandchild) = read_pids(work.path());
    assert!(alive(child) && alive(grandchild));
    let (_, metrics) = http_get(served.addr(), "/metrics", Duration::from_secs(2)).unwrap();
    let running = metrics
        .lines()
        .find_map(|l| l.strip_prefix("statusmotd_on_change_running_seconds "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(running.is_some_and(|s| s > 0.0), "{metrics}");
    let ready = wait_for(&served, "/readyz", 503, "on_change has been running", 10);
    assert!(ready.contains("on_change_timeout"), "{ready}");
    eventually(
        "the timeout to kill on_change and its grandchild",
        10,
        || !alive(child) && !alive(grandchild),
    );
    // (Another run may start at once for a cluster rendered later.)
    wait_for(
        &served,
        "/metrics",
        200,
        "statusmotd_on_change_runs_total{result=\"timeout\"} 1",
        5,
    );
    // SIGTERM, so that a run started meanwhile is killed too.
    let _ = terminate(&mut served, Duration::from_secs(8));
    drop(served);

    // A long timeout: SIGTERM stops the service and kills the group.
    for name in ["child.pid", "grandchild.pid"] {
        fs::remove_file(work.path().join(name)).unwrap();
    }
    let site = Site::new(&fake, &hanging("1h"), false);
    let mut served = site.serve();
    eventually("on_change to start again", 20, || {
        work.path().join("child.pid").exists()
    });
    let (child, grandchild) = read_pids(work.path());
    assert!(alive(child) && alive(grandchild));
    let status = terminate(&mut served, Duration::from_secs(8));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "serve did not stop on SIGTERM:\n{}",
        served.log()
    );
    eventually("SIGTERM to kill on_change and its grandchild", 5, || {
        !alive(child) && !alive(grandchild)
    });
}

// ---------------------------------------------------------------------------
// Templates that loop

const GOOD: &str = "{{ cluster }} is {{ status_label }} (take {n})\n";

/// Loops 10^12 times, printing nothing.
const LOOPING: &str = "{% for a in range(10000) %}{% for b in range(10000) %}\
{% for c in range(10000) %}{% set x = a + b + c %}{% endfor %}{% endfor %}{% endfor %}\n";

#[test]
fn a_looping_template_fails_its_render_and_a_fixed_one_recovers() {
    let fake = fake_page("major_outage");
    let site = Site::new(&fake, "", true);
    site.set_template("motd.txt.j2", &GOOD.replace("{n}", "1"));
    let served = site.serve();
    wait_for(&served, "/readyz", 200, "", 20);
    eventually("alpha/motd", 5, || {
        site.motd("alpha")
            .is_some_and(|(t, _)| t.contains("take 1"))
    });
    let before = site.motd("alpha").unwrap();

    // The looping template runs out of fuel: the render fails, saying so,
    // and the files stay.
    site.set_template("motd.txt.j2", LOOPING);
    let ready = wait_for(&served, "/readyz", 503, "fuel", 60);
    assert!(ready.contains("motd.txt.j2"), "{ready}");
    assert_eq!(site.motd("alpha").unwrap(), before);
    assert_eq!(
        http_get(served.addr(), "/livez", Duration::from_secs(2)).map(|a| a.0),
        Some(200)
    );

    // Fixed: the next render succeeds and readiness follows it.
    site.set_template("motd.txt.j2", &GOOD.replace("{n}", "2"));
    wait_for(&served, "/readyz", 200, "", 30);
    eventually("the fixed template's output", 5, || {
        site.motd("alpha")
            .is_some_and(|(t, _)| t.contains("take 2"))
    });
}

/// Slow but frugal: each round works through 8 MB of text in a few
/// instructions, so fuel runs out only after many minutes.
const WEDGED: &str = "{% set s = \"abcdefgh\" * 1000000 %}{% for a in range(10000) %}\
{% for b in range(10000) %}{{ s|replace(\"a\", \"b\")|length }}{% endfor %}{% endfor %}\n";

#[test]
fn sigterm_during_a_wedged_render_exits_promptly() {
    let fake = fake_page("major_outage");
    let site = Site::new(&fake, "", true);
    site.set_template("motd.txt.j2", WEDGED);
    let mut served = site.serve();
    // The render under way shows in /readyz once it is slow.
    let ready = wait_for(&served, "/readyz", 503, "a render has been running", 30);
    assert!(site.motd("alpha").is_none(), "{ready}");
    assert_eq!(
        http_get(served.addr(), "/livez", Duration::from_secs(2)).map(|a| a.0),
        Some(200)
    );

    let started = Instant::now();
    let status = terminate(&mut served, Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "serve did not stop on SIGTERM during a render:\n{}",
        served.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// SIGHUP while starting

/// Whether `pid` ignores SIGPIPE: Rust's runtime sets that up just before
/// `main`, so this says the program is past the dynamic loader (a signal
/// before then cannot be caught by any program; the unit's `Type=notify`
/// keeps systemd's reloads away until the service is up).
fn reached_main(pid: u32) -> bool {
    const SIGPIPE_BIT: u64 = 1 << (13 - 1);
    fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|mask| mask & SIGPIPE_BIT != 0)
    })
}

#[test]
fn sighup_while_serve_starts_never_ends_it() {
    const STARTS: u64 = 20;
    let fake = fake_page("operational");
    let site = Site::new(&fake, "", false);
    for i in 0..STARTS {
        let log_path = site.path(&format!("serve-{i}.log"));
        let mut child = site
            .command(&[])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reached_main(child.id()) {
            assert!(Instant::now() < deadline, "start {i}: never reached main");
            std::hint::spin_loop();
        }
        // 1 to 15 ms after `main` started. (Not 0: between the runtime's
        // start-up, which ignores SIGPIPE, and the first line of `main` lie
        // a few microseconds that no program can guard.)
        std::thread::sleep(Duration::from_micros(1000 + i * 14_000 / (STARTS - 1)));
        signal(child.id(), "HUP");
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "start {i}: SIGHUP after {} ms ended serve ({status}):\n{}",
                    1 + i * 14 / (STARTS - 1),
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            let mut log = fs::read_to_string(&log_path).unwrap_or_default();
            // Only whole lines: the last one may still be being written.
            log.truncate(log.rfind('\n').map_or(0, |i| i + 1));
            if let Some(addr) = log
                .lines()
                .find_map(|l| l.strip_prefix("listening on http://"))
            {
                break addr.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "start {i}: serve did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let answer = http_get(&addr, "/livez", Duration::from_secs(5));
        assert_eq!(answer.map(|a| a.0), Some(200), "start {i}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "start {i}: serve ended"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// 1,000 items need between 100,000 and 500,000 fuel with the shipped
/// templates, so 5,000 need at most 2.5 M, a twentieth of the fuel given.
#[test]
fn the_shipped_templates_render_5000_items_within_the_fuel() {
    const ITEMS: usize = 5000;
    let fake = fake_page("major_outage");
    let incidents: Vec<serde_json::Value> = (0..ITEMS)
        .map(|i| {
            let at = format!("2025-06-02T{:02}:{:02}:00Z", i / 60 % 24, i % 60);
            json!({
                "id": format!("inc{i:05}"),
                "name": format!("Storage incident number {i}"),
                "status": "investigating",
                "impact": "major",
                "created_at": at,
                "updated_at": at,
                "shortlink": format!("https://stspg.io/x{i}"),
                "components": [{"id": "s1", "name": "Storage"}],
                "incident_updates": [{
                    "id": format!("upd{i:05}"),
                    "status": "investigating",
                    "body": "The file system is slow while we investigate. ".repeat(4),
                    "created_at": at,
                    "display_at": at,
                    "updated_at": at,
                    "affected_components": [{"code": "s1", "name": "Storage"}],
                }],
            })
        })
        .collect();
    fake.set_json(
        "/api/v2/summary.json",
        json!({
            "page": {"id": "tspublic0001", "name": "Public", "url": "https://status.example.org"},
            "components": [{"id": "s1", "name": "Storage", "status": "major_outage"}],
            "incidents": incidents,
            "scheduled_maintenances": []
        }),
    );
    fake.set_json("/api/v2/incidents.json", json!({"incidents": incidents}));
    let site = Site::new(&fake, "", false);
    let served = site.serve();
    let ready = wait_for(&served, "/readyz", 200, "", 60);
    assert!(!served.log().contains("fuel"), "{ready}\n{}", served.log());
    let (motd, _) = site.motd("beta").unwrap();
    // The newest items come first; three share the newest time, 23:59.
    assert!(
        motd.contains("Storage incident number 4319"),
        "{}",
        &motd[..motd.len().min(2000)]
    );
}
