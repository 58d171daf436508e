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
            direct: crate::source::client_with(|b| {
                b.redirect(reqwest::redirect::Policy::none()).tls_info(true)
            }),
            follow: crate::source::client_with(|b| {
                b.redirect(reqwest::redirect::Policy::limited(10))
                    .tls_info(true)
            }),
        }
    }
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new()
    }
}

/// One line, sanitized, at most `MAX_REASON` characters.
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
    // Read now: the body is read through `response` below.
    let expires = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(reqwest::tls::TlsInfo::peer_certificate)
        .map(not_after);
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
    if let Some(slow) = http.slow.filter(|&slow| took > slow) {
        return (
            Verdict::Warning,
            format!(
                "HTTP {status} after {}, slower than {}",
                short_millis(took),
                short_duration(slow)
            ),
        );
    }
    if let Some(within) = http.tls_expires_within {
        match expires {
            Some(Some(at)) => {
                let left = at.duration_since(jiff::Timestamp::now());
                if left < within {
                    let when = at.strftime("%Y-%m-%d %H:%M UTC");
                    let what = if left.is_negative() {
                        format!("the certificate expired {when}")
                    } else {
                        format!(
                            "the certificate expires {when}, in {}",
                            short_duration(left)
                        )
                    };
                    return (
                        Verdict::Warning,
                        format!(
                            "HTTP {status}, but {what} (within {})",
                            short_duration(within)
                        ),
                    );
                }
            }
            Some(None) => {
                return (
                    Verdict::Unknown,
                    format!("HTTP {status}, but the certificate's expiry cannot be read"),
                )
            }
            None => {}
        }
    }
    (Verdict::Ok, format!("HTTP {status}"))
}

/// The `notAfter` time of a DER X.509 certificate: `Certificate` ->
/// `tbsCertificate` -> (`[0] version`,) `serialNumber`, `signature`,
/// `issuer`, `validity` -> `notBefore`, `notAfter`.
pub fn not_after(der: &[u8]) -> Option<jiff::Timestamp> {
    /// One DER element: its tag, its contents and what follows it.
    fn tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = buf.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let (tag, _, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        // The explicit version; the serial number follows.
        rest = tlv(rest)?.2;
    }
    let rest = tlv(rest)?.2; // signature algorithm
    let rest = tlv(rest)?.2; // issuer
    let (_, validity, _) = tlv(rest)?;
    let (_, _, rest) = tlv(validity)?; // notBefore
    let (tag, time, _) = tlv(rest)?;
    let time = std::str::from_utf8(time).ok()?.strip_suffix('Z')?;
    let full = match (tag, time.len()) {
        // UTCTime: YYMMDDHHMMSS, years 1950..2049.
        (0x17, 12) => {
            let yy: u32 = time.get(..2)?.parse().ok()?;
            let century = if yy >= 50 { "19" } else { "20" };
            format!("{century}{time}")
        }
        // GeneralizedTime: YYYYMMDDHHMMSS.
        (0x18, 14) => time.to_owned(),
        _ => return None,
    };
    if !full.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    );
    iso.parse().ok()
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
    // Dropped unarmed only when this future is dropped midway (`serve`
    // stopping): then the group is killed all the same.
    let mut guard = crate::child::GroupGuard::new(&child);
    let stdout = child.stdout.take().map(|s| tokio::spawn(read_capped(s)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(read_capped(s)));
    let status = tokio::select! {
        s = child.wait() => Some(s),
        () = tokio::time::sleep(std_duration(timeout)) => None,
    };
    let Some(status) = status else {
        crate::child::kill_group(&mut child).await;
        guard.disarm();
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
    // The plugin has ended; what it left running in its group is left
    // alone, as a shell would.
    guard.disarm();
    // A child it left behind may hold the pipes open: wait for them briefly
    // only.
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

    fn hex(parts: &[&str]) -> Vec<u8> {
        let text: String = parts.concat();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// `openssl req -x509 -days 30` (`UTCTime`) and `-days 10000`
    /// (`GeneralizedTime`, past 2049).
    #[test]
    fn the_expiry_is_read_from_either_time_form() {
        let utc = hex(&[
        "3082016d30820113a00302010202147631feef9e91a08e773c56a6f27378bfaecb95d8300a06082a8648ce3d04030230",
        "0c310a300806035504030c0178301e170d3236313133303039303035335a170d3236313233303039303035335a300c31",
        "0a300806035504030c01783059301306072a8648ce3d020106082a8648ce3d030107034200043119aadb9a0aa1c7892c",
        "18955d26086c014d0e660f093bcef8948cdf6eea3f56db72d796c37ef04683c1da4f83a30e2479157bd4341c41a38411",
        "316c0a7d8dc8a3533051301d0603551d0e041604148f637adc8a0983a1f0162ff5ac2d6655da297583301f0603551d23",
        "0418301680148f637adc8a0983a1f0162ff5ac2d6655da297583300f0603551d130101ff040530030101ff300a06082a",
        "8648ce3d0403020348003045022100c1729562cda0d176355544f7d37700b92c14d39a42253c70580efc82c5257a9c02",
        "206b7c66bb8dc7f337782ef8cc8c6102bed3a40df0ba25310419f434d454fa6c7d",
        ]);
        let generalized = hex(&[
        "3082016e30820115a00302010202140488555b689ecb41e6b0c8aaad47a12eb3f4522c300a06082a8648ce3d04030230",
        "0c310a300806035504030c01783020170d3236313133303039303035335a180f32303534303431373039303035335a30",
        "0c310a300806035504030c01783059301306072a8648ce3d020106082a8648ce3d03010703420004eccfe8bedade3d72",
        "856a3b48cf70da8940561613fd6db5ab2c1fc79d7001106042b740420f0ccfaa48553e9db487fbcf0107b7df71f3ca90",
        "d293049647b87186a3533051301d0603551d0e041604147ec9b48161939f18a63fd59cb8cc9ab0890cdb0e301f060355",
        "1d230418301680147ec9b48161939f18a63fd59cb8cc9ab0890cdb0e300f0603551d130101ff040530030101ff300a06",
        "082a8648ce3d04030203470030440220179328e86b61761765e7f5788259e6958699ebfb6e05b83192cdc2c21af6cb68",
        "0220467d669da2b1911caa3ebf9f82f88922b774a7fdf8611b0292ad72b0c8f04f1f",
        ]);
        assert_eq!(not_after(&utc).unwrap().to_string(), "2026-12-30T09:00:53Z");
        assert_eq!(
            not_after(&generalized).unwrap().to_string(),
            "2054-04-17T09:00:53Z"
        );
        assert_eq!(not_after(&utc[..utc.len() / 3]), None, "cut short");
        assert_eq!(not_after(b"\x30\x85garbage"), None);
    }

    #[test]
    fn a_reason_is_one_short_line() {
        assert_eq!(reason("DISK OK\nsecond line"), "DISK OK second line");
        let long = "x".repeat(1000);
        assert_eq!(reason(&long).chars().count(), MAX_REASON);
        assert_eq!(reason("\u{1b}[2Jcleared"), "cleared");
    }
}
