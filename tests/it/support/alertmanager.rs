//! A real Prometheus Alertmanager (`/usr/bin/prometheus-alertmanager`, the
//! Debian package `prometheus-alertmanager`, which `scripts/test` installs)
//! on a free `127.0.0.1` port, with a minimal configuration and its storage
//! in a temporary directory, clustering off.
//!
//! [`shared`] is started once per test binary; tests that share it keep
//! apart by their own label values. [`Alertmanager::start`] starts one of a
//! test's own (to stop it, or to give it a webhook receiver). Each runs
//! under a small shell that holds a pipe from the test process and stops
//! Alertmanager when that pipe closes, so none outlives the test binary,
//! however it ends; dropping one stops it at once.
//!
//! A missing binary fails the test, saying what to install: tests never
//! skip for it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::common::http_exchange;

/// Where the Debian package puts it.
pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager; stopped when dropped.
pub struct Alertmanager {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    /// Closing it (dropping, or the test process ending) stops Alertmanager.
    stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

/// The one instance the tests of this binary share.
pub fn shared() -> &'static Alertmanager {
    static SHARED: LazyLock<Alertmanager> = LazyLock::new(|| Alertmanager::start(None));
    &SHARED
}

/// A free port on 127.0.0.1, for a program that must be told its port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Alertmanager {
    /// Starts one on a free port; with `webhook`, every alert is sent to
    /// that URL at once (`webhook_configs`).
    pub fn start(webhook: Option<&str>) -> Alertmanager {
        let mut last = String::new();
        for _ in 0..3 {
            match Alertmanager::start_on(free_port(), webhook) {
                Ok(am) => return am,
                Err(why) => last = why,
            }
        }
        panic!("Alertmanager did not start: {last}");
    }

    /// Starts one on `port`; `Err` with its log when it does not get ready.
    pub fn start_on(port: u16, webhook: Option<&str>) -> Result<Alertmanager, String> {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: install the Debian package `prometheus-alertmanager` \
             (scripts/test does, as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let receiver = match webhook {
            Some(url) => format!(
                "  - name: statusmotd\n    webhook_configs:\n      - url: '{url}'\n        send_resolved: true\n"
            ),
            None => "  - name: statusmotd\n".to_owned(),
        };
        let config = format!(
            "route:\n  receiver: statusmotd\n  group_by: ['...']\n  group_wait: 0s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n{receiver}"
        );
        let config_file = dir.path().join("alertmanager.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = dir.path().join("alertmanager.log");
        // `read` returns when the test process closes the pipe (on drop, or
        // when it exits in any way); then Alertmanager is stopped.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(
                r#"log=$1; shift; "$@" >"$log" 2>&1 & pid=$!; read -r _; kill "$pid"; wait "$pid""#,
            )
            .arg("sh")
            .arg(&log)
            .arg(BINARY)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let mut am = Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            child,
            stdin,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if am.get("/-/ready").is_some_and(|(status, _)| status == 200) {
                return Ok(am);
            }
            if let Ok(Some(_)) = am.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        am.stop();
        Err(log)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// `GET path`: the status and the body.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let (status, answer) = http_exchange(
            self.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )?;
        Some((status, body_of(&answer)))
    }

    /// `POST path` with a JSON body: the status and the body.
    pub fn post(&self, path: &str, json: &serde_json::Value) -> (u16, String) {
        let body = json.to_string();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, answer) =
            http_exchange(self.addr(), request.as_bytes(), Duration::from_secs(5))
                .expect("Alertmanager is not reachable");
        (status, body_of(&answer))
    }

    /// Posts alerts (`POST /api/v2/alerts`), as Prometheus does.
    pub fn post_alerts(&self, alerts: &serde_json::Value) {
        let (status, body) = self.post("/api/v2/alerts", alerts);
        assert_eq!(status, 200, "posting alerts: {body}");
    }

    /// Creates a silence (`POST /api/v2/silences`); returns its id.
    pub fn silence(&self, silence: &serde_json::Value) -> String {
        let (status, body) = self.post("/api/v2/silences", silence);
        assert_eq!(status, 200, "creating a silence: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        answer["silenceID"].as_str().unwrap().to_owned()
    }

    /// Stops it now and waits until it has.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The body of a raw HTTP/1.1 answer, chunked or not.
fn body_of(answer: &str) -> String {
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        return String::new();
    };
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let (Some(chunk), Some(after)) = (tail.get(..n), tail.get(n..)) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(chunk);
        rest = after.trim_start_matches("\r\n");
    }
    out
}
