//! Receivers: one delivery of one message to one route's `to`, and what the
//! receiver answered.
//!
//! - `slack`: a Slack or Mattermost incoming webhook, `POST {"text", "blocks"}`;
//! - `matrix`: `PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txnId}`
//!   with the bearer token; the txnId derives from the event, so a repeat is
//!   recognised by the homeserver;
//! - `email`: SMTP through `lettre` (STARTTLS when the server offers it, TLS
//!   from the start for `smtps://`), or a local `sendmail` run without a
//!   shell and without the configuration's secret variables;
//! - `webhook`: `POST` of JSON with an `Idempotency-Key`, signed with
//!   `X-Statusmotd-Signature: sha256=<hex HMAC-SHA256 of the body>` when a
//!   `secret` is set.
//!
//! Every delivery is bounded by a timeout; an error never shows a secret
//! (a Slack URL is one, so its errors name the route, not the URL).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, Mac};
use jiff::SignedDuration;
use sha2::Sha256;
use tokio::io::AsyncWriteExt as _;

use crate::config::{smtp_endpoint, MailVia, NotifyRoute, Receiver};

/// A receiver's answer body is read up to this many bytes.
const MAX_ANSWER: usize = 4096;

/// What is sent: the subject (e-mail) and the text (everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub text: String,
    /// The link to the item, if any, for a button or link where the
    /// receiver shows one.
    pub link: Option<String>,
}

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered; what the receiver answered, in a line.
    Sent(String),
    /// Not delivered; try again later (after `retry_after` when the
    /// receiver said so).
    Failed {
        error: String,
        retry_after: Option<SignedDuration>,
    },
}

/// A failure; its text may quote a remote server (an SMTP reply), so it is
/// made one safe line before it reaches a log, the outbox or `/readyz`.
fn failed(error: impl AsRef<str>) -> Outcome {
    Outcome::Failed {
        error: one_line(error.as_ref()),
        retry_after: None,
    }
}

/// The HTTP client of the receivers: no redirects (a webhook URL that
/// moved is a configuration to fix, and a signed body should not wander).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("statusmotd/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Delivers `msg` to `route`. `key` identifies the event (the same for
/// every attempt); `payload` is the webhook's JSON; `scrub` the environment
/// variables a `sendmail` must not inherit.
pub async fn send(
    client: &reqwest::Client,
    route: &NotifyRoute,
    msg: &Message,
    payload: &serde_json::Value,
    key: &str,
    timeout: Duration,
    scrub: &BTreeSet<String>,
) -> Outcome {
    let what = |s: &str| format!("the {s} of route `{}`", route.name);
    match &route.to {
        Receiver::Slack { url } => {
            let url = match url.reveal(&what("`url`")) {
                Ok(u) => u,
                Err(e) => return failed(e.to_string()),
            };
            let body = slack_body(msg);
            let req = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
            http(req, timeout, &route.name, false).await
        }
        Receiver::Matrix {
            homeserver,
            room,
            token,
        } => {
            let token = match token.reveal(&what("Matrix `token`")) {
                Ok(t) => t,
                Err(e) => return failed(e.to_string()),
            };
            let url = format!(
                "{homeserver}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
                path_segment(room),
                path_segment(key)
            );
            let body = serde_json::json!({
                "msgtype": "m.notice",
                "body": msg.text,
            });
            let req = client
                .put(&url)
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
            http(req, timeout, &route.name, true).await
        }
        Receiver::Webhook { url, secret } => {
            let body = serde_json::to_vec(payload).unwrap_or_default();
            let mut req = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("Idempotency-Key", key)
                .header("X-Statusmotd-Event-Id", key);
            if let Some(secret) = secret {
                let secret = match secret.reveal(&what("webhook `secret`")) {
                    Ok(s) => s,
                    Err(e) => return failed(e.to_string()),
                };
                req = req.header(
                    "X-Statusmotd-Signature",
                    signature(secret.as_bytes(), &body),
                );
            }
            http(req.body(body), timeout, &route.name, true).await
        }
        Receiver::Email { to, from, via } => {
            let mail = match mail(msg, from, to, key) {
                Ok(m) => m,
                Err(e) => return failed(e),
            };
            match via {
                MailVia::Smtp {
                    url,
                    username,
                    password,
                } => {
                    let password = match password {
                        Some(p) => match p.reveal(&what("SMTP `password`")) {
                            Ok(p) => Some(p),
                            Err(e) => return failed(e.to_string()),
                        },
                        None => None,
                    };
                    smtp(url, username.as_deref(), password, mail, timeout).await
                }
                MailVia::Sendmail(program) => {
                    sendmail(program, from, to, &mail, timeout, scrub).await
                }
            }
        }
    }
}

/// `s` without anything a terminal acts on, its lines joined into one.
fn one_line(s: &str) -> String {
    crate::sanitize::terminal_safe(s)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Percent-encodes everything but unreserved characters, for one path
/// segment (a Matrix room id holds `!` and `:`, an alias `#`).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Slack's `mrkdwn` (and Mattermost's Markdown) treats `&`, `<` and `>` as
/// markup: upstream text must not make links or mentions.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_body(msg: &Message) -> serde_json::Value {
    // A section's text is at most 3000 characters.
    let mut section: String = slack_escape(&msg.text).chars().take(2900).collect();
    if section.trim().is_empty() {
        "(empty)".clone_into(&mut section);
    }
    let mut blocks = vec![serde_json::json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": section},
    })];
    if let Some(link) = &msg.link {
        blocks.push(serde_json::json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("<{}|Status page>", slack_escape(link))}],
        }));
    }
    serde_json::json!({
        "text": slack_escape(&msg.text),
        "blocks": blocks,
    })
}

/// One HTTP request: 2xx is delivered, anything else failed (429 and 503
/// with their `Retry-After`). `show_body` says whether the answer may be
/// shown (not for Slack, whose error pages may echo the URL's secret).
async fn http(
    req: reqwest::RequestBuilder,
    timeout: Duration,
    route: &str,
    show_body: bool,
) -> Outcome {
    let answer = tokio::time::timeout(timeout, async {
        let mut resp = req.timeout(timeout).send().await?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(SignedDuration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ANSWER {
                body.truncate(MAX_ANSWER);
                break;
            }
        }
        Ok::<_, reqwest::Error>((status, retry_after, body))
    })
    .await;
    let (status, retry_after, body) = match answer {
        Err(_) => return failed(format!("no answer within {}s", timeout.as_secs())),
        Ok(Err(e)) => {
            // Without the URL: a Slack URL is a secret.
            let e = e.without_url();
            let kind = if e.is_timeout() {
                "no answer in time".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                e.to_string()
            };
            return failed(format!("route `{route}`: {kind}"));
        }
        Ok(Ok(a)) => a,
    };
    let text = crate::sanitize::sanitize_line(&String::from_utf8_lossy(&body));
    let text: String = text.chars().take(300).collect();
    let shown = if show_body || status.is_success() {
        text
    } else {
        String::new()
    };
    let line = format!("{} {}", status.as_u16(), shown)
        .trim_end()
        .to_owned();
    if status.is_success() {
        Outcome::Sent(line)
    } else {
        Outcome::Failed {
            error: format!("the receiver answered {line}"),
            retry_after: retry_after.filter(|_| status.as_u16() == 429 || status.as_u16() == 503),
        }
    }
}

fn mail(msg: &Message, from: &str, to: &[String], key: &str) -> Result<lettre::Message, String> {
    use lettre::message::header::ContentType;
    let parse = |a: &str| {
        a.parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("invalid address `{a}`: {e}"))
    };
    // A subject is one line.
    let subject: String = msg
        .subject
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let mut b = lettre::Message::builder()
        .from(parse(from)?)
        .subject(subject)
        .message_id(Some(format!("<{key}@statusmotd>")))
        .header(ContentType::TEXT_PLAIN);
    for a in to {
        b = b.to(parse(a)?);
    }
    b.body(msg.text.clone())
        .map_err(|e| format!("cannot build the message: {e}"))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn smtp(
    url: &str,
    username: Option<&str>,
    password: Option<String>,
    mail: lettre::Message,
    timeout: Duration,
) -> Outcome {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

    let (wrapped, host, port) = match smtp_endpoint(url) {
        Ok(e) => e,
        Err(e) => return failed(e),
    };
    let params = match TlsParameters::new(host.clone()) {
        Ok(p) => p,
        Err(e) => return failed(format!("cannot set up TLS for `{host}`: {e}")),
    };
    let credentials = username.zip(password);
    let tls = if wrapped {
        Tls::Wrapper(params)
    } else if credentials.is_some() && !is_loopback(&host) {
        // A password never crosses the network in the clear.
        Tls::Required(params)
    } else {
        Tls::Opportunistic(params)
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
        .port(port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some((user, pass)) = credentials {
        builder = builder.credentials(Credentials::new(user.to_owned(), pass));
    }
    let transport = builder.build();
    match tokio::time::timeout(timeout.saturating_mul(2), transport.send(mail)).await {
        Err(_) => failed(format!(
            "the SMTP server `{host}:{port}` did not answer in time"
        )),
        Ok(Err(e)) => failed(format!("SMTP `{host}:{port}`: {e}")),
        Ok(Ok(resp)) => {
            let text: Vec<&str> = resp.message().collect();
            Outcome::Sent(crate::sanitize::sanitize_line(&format!(
                "{} {}",
                resp.code(),
                text.join(" ")
            )))
        }
    }
}

async fn sendmail(
    program: &std::path::Path,
    from: &str,
    to: &[String],
    mail: &lettre::Message,
    timeout: Duration,
    scrub: &BTreeSet<String>,
) -> Outcome {
    let address = |a: &str| {
        a.parse::<lettre::message::Mailbox>()
            .map_or_else(|_| a.to_owned(), |m| m.email.to_string())
    };
    let mut cmd = tokio::process::Command::new(program);
    // `-i`: a line with a lone dot does not end the message; `--`: no
    // address is taken for an option.
    cmd.arg("-i").arg("-f").arg(address(from)).arg("--");
    cmd.args(to.iter().map(|a| address(a)));
    cmd.env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in scrub {
        cmd.env_remove(name);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot run `{}`: {e}", program.display())),
    };
    let bytes = mail.formatted();
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&bytes).await?;
            stdin.shutdown().await?;
        }
        child.wait_with_output().await
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => failed(format!("`{}` did not finish in time", program.display())),
        Ok(Err(e)) => failed(format!("`{}`: {e}", program.display())),
        Ok(Ok(out)) if out.status.success() => {
            Outcome::Sent(format!("`{}` accepted it", program.display()))
        }
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            failed(format!(
                "`{}` failed ({}): {}",
                program.display(),
                out.status,
                crate::sanitize::sanitize_line(err.lines().next().unwrap_or_default())
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_failure_is_one_safe_line() {
        let Outcome::Failed { error, .. } = failed("550 <a@b> rejected\r\n\u{1b}[2Jhint: x") else {
            unreachable!()
        };
        assert_eq!(error, "550 <a@b> rejected hint: x");
    }

    #[test]
    fn room_ids_are_one_path_segment() {
        assert_eq!(path_segment("!abc:example.org"), "%21abc%3Aexample.org");
        assert_eq!(path_segment("#a/b"), "%23a%2Fb");
    }

    #[test]
    fn slack_text_makes_no_links_or_mentions() {
        let body = slack_body(&Message {
            subject: String::new(),
            text: "<!channel> & <https://evil|click>".into(),
            link: Some("https://stspg.io/x".into()),
        });
        let text = body["text"].as_str().unwrap();
        assert_eq!(text, "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;");
        assert_eq!(body["blocks"][0]["text"]["text"], text);
        assert_eq!(
            body["blocks"][1]["elements"][0]["text"],
            "<https://stspg.io/x|Status page>"
        );
    }

    #[test]
    fn a_mail_has_its_headers_and_one_line_subject() {
        let m = mail(
            &Message {
                subject: "Incident on archer2: Slow\nBcc: x@evil.example".into(),
                text: "Body".into(),
                link: None,
            },
            "Status <status@example.org>",
            &["a@example.org".into(), "b@example.org".into()],
            "k123",
        )
        .unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(
            text.contains("Subject: Incident on archer2: Slow\r\n"),
            "{text}"
        );
        assert!(!text.contains("Bcc"), "{text}");
        assert!(text.contains("Message-ID: <k123@statusmotd>"), "{text}");
        assert!(text.contains("To: a@example.org, b@example.org"), "{text}");
    }
}
