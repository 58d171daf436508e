//! Running one probe's check once: connect over TCP, GET over HTTP(S), or
//! run a Nagios-style plugin. Every check ends within the probe's `timeout`
//! and returns a [`Verdict`] with a one-line sanitized reason; none returns
//! an error.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use tokio::io::AsyncReadExt;

use super::state::Verdict;
use crate::config::{Check, HttpCheck, Probe};
use crate::view::short_duration;

/// The most of an HTTP body read for `expect_body` and `expect_json`.
const MAX_HTTP_BODY: usize = 1024 * 1024;

/// The most of a command's output kept; the rest is read and dropped, so a
/// chatty plugin neither fills memory nor blocks on a full pipe.
const MAX_COMMAND_OUTPUT: usize = 64 * 1024;

/// The longest reason kept, in characters.
const MAX_REASON: usize = 200;

/// The HTTP clients checks use: one that follows redirects, one that does
/// not. Both are [`crate::source::client`]'s setup (the system CA store).
#[derive(Debug, Clone)]
pub struct Clients {
    pub direct: reqwest::Client,
    pub follow: reqwest::Client,
}

impl Clients {
    pub fn new() -> Clients {
        Clients {
            direct: crate::source::client_with(|b| b.redirect(reqwest::redirect::Policy::none())),
            follow: crate::source::client_with(|b| {
                b.redirect(reqwest::redirect::Policy::limited(10))
            }),
        }
    }
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new()
    }
}

/// One line, sanitized, at most [`MAX_REASON`] characters.
pub fn reason(text: &str) -> String {
    let line = crate::sanitize::sanitize_line(text);
    if line.chars().count() <= MAX_REASON {
        return line;
    }
    let mut cut: String = line.chars().take(MAX_REASON - 1).collect();
    cut.push('…');
    cut
}

fn std_duration(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// Runs `probe`'s check once. `secret_env` are the variables a command
/// must not see.
pub async fn run(
    probe: &Probe,
    clients: &Clients,
    secret_env: &BTreeSet<String>,
) -> (Verdict, String) {
    let timeout = std_duration(probe.timeout);
    let (verdict, text) = match &probe.check {
        Check::Tcp(addr) => tcp(addr, timeout).await,
        Check::Http(http) => {
            let client = if http.follow_redirects {
                &clients.follow
            } else {
                &clients.direct
            };
            match tokio::time::timeout(timeout, get(client, http)).await {
                Ok(result) => result,
                Err(_) => (
                    Verdict::Critical,
                    format!("no answer within {}", short_duration(probe.timeout)),
                ),
            }
        }
        Check::Command(argv) => command(argv, probe.timeout, secret_env).await,
    };
    (verdict, reason(&text))
}

async fn tcp(addr: &str, timeout: Duration) -> (Verdict, String) {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => (Verdict::Ok, format!("connected to {addr}")),
        Ok(Err(e)) => (Verdict::Critical, format!("cannot connect to {addr}: {e}")),
        Err(_) => (
            Verdict::Critical,
            format!(
                "cannot connect to {addr}: no answer within {}",
                short_duration(SignedDuration::try_from(timeout).unwrap_or_default())
            ),
        ),
    }
}

async fn get(client: &reqwest::Client, http: &HttpCheck) -> (Verdict, String) {
    let started = Instant::now();
    let mut response = match client.get(&http.url).send().await {
        Ok(r) => r,
        Err(e) => {
            let what = if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            // reqwest's chain names the cause (refused, TLS, DNS).
            let mut cause = String::new();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                cause = s.to_string();
                source = s.source();
            }
            return (Verdict::Critical, format!("{what}: {cause}"));
        }
    };
    let status = response.status().as_u16();
    let expected = if http.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        http.expect_status.contains(&status)
    };
    if !expected {
        let hint = match response.headers().get(reqwest::header::LOCATION) {
            Some(l) if (300..400).contains(&status) => {
                format!(" (redirect to {}, not followed)", l.to_str().unwrap_or("?"))
            }
            _ => String::new(),
        };
        return (Verdict::Critical, format!("HTTP {status}{hint}"));
    }
    if http.expect_body.is_some() || !http.expect_json.is_empty() {
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_HTTP_BODY.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if room <= chunk.len() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return (
                        Verdict::Critical,
                        format!("HTTP {status}, body cut short: {e}"),
                    )
                }
            }
        }
        let text = String::from_utf8_lossy(&body);
        if let Some(want) = &http.expect_body {
            if !text.contains(want.as_str()) {
                return (
                    Verdict::Critical,
                    format!("HTTP {status}, but the body does not contain `{want}`"),
                );
            }
        }
        if !http.expect_json.is_empty() {
            let json: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    return (
                        Verdict::Critical,
                        format!("HTTP {status}, but the body is not JSON: {e}"),
                    )
                }
            };
            for (pointer, want) in &http.expect_json {
                match json.pointer(pointer) {
                    Some(got) if got == want => {}
                    Some(got) => {
                        return (
                            Verdict::Critical,
                            format!("HTTP {status}, but `{pointer}` is {got}, not {want}"),
                        )
                    }
                    None => {
                        return (
                            Verdict::Critical,
                            format!("HTTP {status}, but the body has no `{pointer}`"),
                        )
                    }
                }
            }
        }
    }
    let took = SignedDuration::try_from(started.elapsed()).unwrap_or_default();
    match http.slow {
        Some(slow) if took > slow => (
            Verdict::Warning,
            format!(
                "HTTP {status} after {}, slower than {}",
                short_millis(took),
                short_duration(slow)
            ),
        ),
        _ => (Verdict::Ok, format!("HTTP {status}")),
    }
}

/// `1.2s`, `350ms`.
fn short_millis(d: SignedDuration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Runs a plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 (or any other) UNKNOWN;
/// the first line of its output (standard output, else standard error) is
/// the reason. Killed with its process group at `timeout`.
async fn command(
    argv: &[String],
    timeout: SignedDuration,
    secret_env: &BTreeSet<String>,
) -> (Verdict, String) {
    let Some((program, rest)) = argv.split_first() else {
        return (Verdict::Unknown, "no program to run".to_owned());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    for name in secret_env {
        cmd.env_remove(name);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return (Verdict::Critical, format!("cannot run `{program}`: {e}")),
    };
    let stdout = child.stdout.take().map(|s| tokio::spawn(read_capped(s)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(read_capped(s)));
    let status = tokio::select! {
        s = child.wait() => Some(s),
        () = tokio::time::sleep(std_duration(timeout)) => None,
    };
    let Some(status) = status else {
        crate::child::kill_group(&mut child).await;
        for task in [stdout, stderr].into_iter().flatten() {
            task.abort();
        }
        return (
            Verdict::Critical,
            format!(
                "`{program}` still ran after {}: killed",
                short_duration(timeout)
            ),
        );
    };
    // The plugin has ended; a child it left behind may hold the pipes open:
    // wait for them briefly only.
    let mut output = String::new();
    for task in [stdout, stderr].into_iter().flatten() {
        if !output.trim().is_empty() {
            task.abort();
            continue;
        }
        if let Ok(Ok(bytes)) = tokio::time::timeout(Duration::from_secs(1), task).await {
            output = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    let first = output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned();
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            return (
                Verdict::Unknown,
                format!("cannot wait for `{program}`: {e}"),
            )
        }
    };
    let said = |fallback: String| {
        if first.is_empty() {
            fallback
        } else {
            first.clone()
        }
    };
    match status.code() {
        Some(0) => (Verdict::Ok, said("OK".to_owned())),
        Some(1) => (Verdict::Warning, said("WARNING".to_owned())),
        Some(2) => (Verdict::Critical, said("CRITICAL".to_owned())),
        Some(code) => (
            Verdict::Unknown,
            said(format!("`{program}` exited with {code}")),
        ),
        None => (
            Verdict::Critical,
            said(format!("`{program}` was killed: {status}")),
        ),
    }
}

/// Reads everything, keeping the first [`MAX_COMMAND_OUTPUT`] bytes.
async fn read_capped(mut pipe: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_COMMAND_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_one_short_line() {
        assert_eq!(reason("DISK OK\nsecond line"), "DISK OK second line");
        let long = "x".repeat(1000);
        assert_eq!(reason(&long).chars().count(), MAX_REASON);
        assert_eq!(reason("\u{1b}[2Jcleared"), "cleared");
    }
}
