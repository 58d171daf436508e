//! Receivers for the notification tests: a real SMTP server (Python's
//! `aiosmtpd`, which `scripts/test` installs, started on a free port with a
//! handler that writes each message to a directory; stopped and started
//! again on the same port to play a server that is down), and an in-process
//! HTTP receiver (axum on `127.0.0.1:0`) that records every request and can
//! fail, hang or answer 429, for the Slack, Matrix and webhook receivers.
#![allow(dead_code)] // each test uses only part of it

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The handler `aiosmtpd` loads: each message becomes one file
/// `<n>.eml` in the directory given, the envelope's recipients first in an
/// `X-Envelope-To` line, written to a temp name and renamed so a reader
/// never sees half a message.
const HANDLER: &str = r#"
import os, itertools

class Saver:
    counter = itertools.count(1)

    def __init__(self, directory):
        self.directory = directory

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)

    async def handle_DATA(self, server, session, envelope):
        n = next(Saver.counter)
        name = os.path.join(self.directory, "%d-%06d.eml" % (os.getpid(), n))
        with open(name + ".tmp", "wb") as f:
            f.write(("X-Envelope-To: %s\r\n" % ",".join(envelope.rcpt_tos)).encode())
            f.write(("X-Envelope-From: %s\r\n" % envelope.mail_from).encode())
            data = envelope.original_content or envelope.content
            f.write(data if isinstance(data, bytes) else data.encode())
        os.rename(name + ".tmp", name)
        return "250 Message accepted for delivery"
"#;

/// A real SMTP server in a temporary directory; killed when dropped.
pub struct Smtp {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Smtp {
    /// Starts `python3 -m aiosmtpd` on a free port and waits until it
    /// accepts connections. Fails, saying what to install, without it.
    pub fn start() -> Smtp {
        let have = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            have,
            "python3 with aiosmtpd is not installed, so this test cannot run\n\
             hint: run `scripts/test` (it installs it), or `apt-get install python3-aiosmtpd`"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        std::fs::write(dir.path().join("statusmotd_smtp_saver.py"), HANDLER).unwrap();
        let mut smtp = Smtp {
            port: free_port(),
            dir,
            child: None,
        };
        smtp.resume();
        smtp
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Kills the server: the port refuses connections until [`Smtp::resume`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts the server on the same port.
    pub fn resume(&mut self) {
        self.stop();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "statusmotd_smtp_saver.Saver"])
            .arg(self.mail_dir())
            .env("PYTHONPATH", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every message received so far, oldest first, as text.
    pub fn mails(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.mail_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        // pid-counter: a restarted server has a new pid, so sort by mtime.
        names.sort_by_key(|p| (std::fs::metadata(p).unwrap().modified().unwrap(), p.clone()));
        names.iter().map(|p| mail_text(p)).collect()
    }
}

fn mail_text(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned()
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The value of header `name` in a raw message (unfolded).
pub fn header(mail: &str, name: &str) -> Option<String> {
    let head = mail.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// A message's body, quoted-printable or base64 undone where simple.
pub fn body(mail: &str) -> String {
    let body = mail
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    match header(mail, "Content-Transfer-Encoding").as_deref() {
        Some("quoted-printable") => {
            let joined = body.replace("=\r\n", "");
            let mut out = Vec::new();
            let bytes = joined.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'=' && i + 2 < bytes.len() {
                    if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                }
                out.push(bytes[i]);
                i += 1;
            }
            String::from_utf8_lossy(&out).replace("\r\n", "\n")
        }
        Some("base64") => {
            let text: String = body.split_whitespace().collect();
            String::from_utf8_lossy(&base64_decode(&text)).replace("\r\n", "\n")
        }
        _ => body.replace("\r\n", "\n"),
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            continue;
        };
        acc = (acc << 6) | u32::try_from(v).unwrap();
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(acc >> bits).unwrap());
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// How the HTTP receiver answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the receiver's usual body.
    Ok,
    /// This status, with a small body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooMany(u64),
    /// Never answers.
    Hang,
}

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// What it was answered (`Hang`: nothing).
    pub answer: Answer,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

#[derive(Default)]
struct Inner {
    next: VecDeque<Answer>,
    /// Once `next` is empty.
    default: Option<Answer>,
    seen: Vec<Seen>,
}

/// An HTTP receiver on its own runtime in a background thread.
pub struct HttpReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn handle(
    State(state): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = {
        let mut s = state.lock().unwrap();
        let answer = s
            .next
            .pop_front()
            .or_else(|| s.default.clone())
            .unwrap_or(Answer::Ok);
        s.seen.push(Seen {
            method: method.to_string(),
            path: uri.path().to_owned(),
            headers,
            body: body.to_vec(),
            answer: answer.clone(),
        });
        answer
    };
    match answer {
        Answer::Ok if method == Method::PUT => {
            let n = state.lock().unwrap().seen.len();
            (StatusCode::OK, format!("{{\"event_id\":\"$event{n}\"}}")).into_response()
        }
        Answer::Ok => (StatusCode::OK, "ok").into_response(),
        Answer::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            "{\"error\":\"try later\"}",
        )
            .into_response(),
        Answer::TooMany(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", secs.to_string())],
            "{\"errcode\":\"M_LIMIT_EXCEEDED\"}",
        )
            .into_response(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
    }
}

impl HttpReceiver {
    pub fn spawn() -> HttpReceiver {
        let state = Arc::new(Mutex::new(Inner::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_state = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new().fallback(handle).with_state(thread_state);
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stop_rx => {}
                }
            });
        });
        HttpReceiver {
            addr: addr_rx.recv().unwrap(),
            state,
            stop: Some(stop_tx),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next requests get these answers, in order.
    pub fn answer_next(&self, answers: &[Answer]) {
        self.state
            .lock()
            .unwrap()
            .next
            .extend(answers.iter().cloned());
    }

    /// Requests after the queued answers get this one.
    pub fn answer_always(&self, answer: Answer) {
        self.state.lock().unwrap().default = Some(answer);
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests seen at `path`.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// Requests whose path starts with `prefix` answered with 200.
    pub fn delivered_at_prefix(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.starts_with(prefix) && s.answer == Answer::Ok)
            .collect()
    }

    /// Requests at `path` answered with 200: the deliveries that arrived.
    pub fn delivered_at(&self, path: &str) -> Vec<Seen> {
        self.seen_at(path)
            .into_iter()
            .filter(|s| s.answer == Answer::Ok)
            .collect()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
