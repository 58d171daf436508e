//! Things a probe checks, on `127.0.0.1:0`: an HTTP server whose answer a
//! test switches (healthy, 500, slow, wrong body, closed), and a TCP port
//! that a test opens and closes. Each stops when dropped.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the HTTP server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `200`, body `{"status": "UP"}`.
    Healthy,
    /// `500`.
    Error,
    /// The healthy answer after this long.
    Slow(Duration),
    /// `200`, body `{"status": "DOWN"}`.
    WrongBody,
    /// Accepts the connection and closes it without a word.
    Closed,
    /// `302` to `/elsewhere`, where the healthy answer is.
    Redirect,
}

/// An in-process HTTP/1.1 server (one request per connection).
pub struct HttpToggle {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    stop: Arc<AtomicBool>,
}

impl HttpToggle {
    pub fn spawn() -> HttpToggle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Healthy));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (mode.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let mode = *m.lock().unwrap();
                std::thread::spawn(move || answer(conn, mode));
            }
        });
        HttpToggle { addr, mode, stop }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpToggle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn answer(mut conn: TcpStream, mode: Mode) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let path = String::from_utf8_lossy(&request)
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let (status, extra, body) = match mode {
        Mode::Closed => return,
        Mode::Error => ("500 Internal Server Error", "", "oops".to_owned()),
        Mode::WrongBody => ("200 OK", "", r#"{"status": "DOWN"}"#.to_owned()),
        Mode::Redirect if path != "/elsewhere" => {
            ("302 Found", "Location: /elsewhere\r\n", String::new())
        }
        Mode::Slow(d) => {
            std::thread::sleep(d);
            ("200 OK", "", r#"{"status": "UP"}"#.to_owned())
        }
        Mode::Healthy | Mode::Redirect => ("200 OK", "", r#"{"status": "UP"}"#.to_owned()),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A TCP port on `127.0.0.1` that is open (listening) or closed (refused).
pub struct TcpToggle {
    pub addr: SocketAddr,
    listener: Mutex<Option<TcpListener>>,
}

impl TcpToggle {
    pub fn open() -> TcpToggle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        TcpToggle {
            addr: listener.local_addr().unwrap(),
            listener: Mutex::new(Some(listener)),
        }
    }

    /// Stops listening: connections are refused.
    pub fn close(&self) {
        self.listener.lock().unwrap().take();
    }

    /// Listens again on the same port.
    pub fn reopen(&self) {
        *self.listener.lock().unwrap() = Some(TcpListener::bind(self.addr).unwrap());
    }
}

/// An HTTPS server on `127.0.0.1` (Python's `ssl`, one `200 OK` per
/// request) whose certificate, issued by a CA made for the test with the
/// `openssl` command, expires in `days` days. Killed when dropped.
pub struct TlsServer {
    pub port: u16,
    /// The CA's certificate: give it to a client as `SSL_CERT_FILE`.
    pub ca: std::path::PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

const HTTPS_SERVER: &str = r#"
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

impl TlsServer {
    pub fn spawn(days: u32) -> TlsServer {
        use std::io::BufRead as _;
        use std::process::{Command, Stdio};

        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            let o = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("the `openssl` command (scripts/test installs it)");
            assert!(
                o.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-days",
                    "30",
                    "-subj",
                    "/CN=statusmotd test CA",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                    "leaf.key",
                    "-out",
                    "leaf.csr",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.path().join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        let days = days.to_string();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            &days,
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ]);
        let mut child = Command::new("python3")
            .args(["-c", HTTPS_SERVER, "leaf.pem", "leaf.key"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the HTTPS server did not start: {line:?}")
        });
        TlsServer {
            port,
            ca: dir.path().join("ca.pem"),
            child,
            _dir: dir,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
