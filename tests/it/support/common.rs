//! Helpers shared by the integration tests, chiefly the real Statuspage
//! payloads of `../shared/fixtures/statuspage/`, read in place.
//!
//! Those fixtures live beside the project, not in it. Where they are absent
//! a test that needs them is skipped, saying why, unless
//! `STATUSMOTD_REQUIRE_SHARED` is set (as CI should), in which case it fails.
#![allow(dead_code)] // each test uses only part of it

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Where the shared fixtures are: `$STATUSMOTD_SHARED_FIXTURES` when set,
/// else `shared/fixtures/statuspage` beside the project, or beside the folder
/// holding it (for a checkout one level deeper, such as a worktree).
pub fn shared_fixtures_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STATUSMOTD_SHARED_FIXTURES") {
        return Some(PathBuf::from(dir)).filter(|dir| dir.is_dir());
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("shared/fixtures/statuspage"))
        .find(|dir| dir.is_dir())
}

/// The text of one shared fixture, or `None` (after saying so) when the
/// fixtures folder is absent. A missing file inside a present folder is a
/// broken test, not a reason to skip.
pub fn shared_fixture(name: &str) -> Option<String> {
    let Some(dir) = shared_fixtures_dir() else {
        assert!(
            std::env::var_os("STATUSMOTD_REQUIRE_SHARED").is_none(),
            "shared fixture `{name}` is required (STATUSMOTD_REQUIRE_SHARED is set) but \
             `../shared/fixtures/statuspage` is absent"
        );
        eprintln!(
            "skipping: shared fixture `{name}` not found (no `../shared/fixtures/statuspage`); \
             set STATUSMOTD_REQUIRE_SHARED=1 to make this a failure"
        );
        return None;
    };
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) => panic!("cannot read shared fixture `{}`: {e}", path.display()),
    }
}

/// A shared fixture parsed as JSON.
pub fn shared_json(name: &str) -> Option<serde_json::Value> {
    shared_fixture(name).map(|text| {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture `{name}` is not JSON: {e}"))
    })
}

/// `let text = shared_fixture!("v1-page.json");` returns from the test
/// (skipping it) when the shared fixtures are absent.
#[allow(unused_macros)]
macro_rules! shared_fixture {
    ($name:expr) => {
        match $crate::common::shared_fixture($name) {
            Some(text) => text,
            None => return,
        }
    };
}

/// Like [`shared_fixture!`], parsed as JSON.
#[allow(unused_macros)]
macro_rules! shared_json {
    ($name:expr) => {
        match $crate::common::shared_json($name) {
            Some(value) => value,
            None => return,
        }
    };
}

/// A temporary site: a directory holding `mapping.toml`, `out/` and `state/`.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new(mapping: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mapping.toml"), mapping).unwrap();
        Site { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn out(&self, rel: &str) -> PathBuf {
        self.dir.path().join("out").join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.out(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// The binary, run in the site's directory with `$STATUSMOTD_CONFIG`
    /// pointing at its mapping.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("statusmotd").unwrap();
        cmd.current_dir(self.path())
            .env("STATUSMOTD_CONFIG", self.path().join("mapping.toml"))
            .env_remove("RUST_LOG");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// `statusmotd serve --config mapping.toml --listen 127.0.0.1:0` in the
    /// site's directory, logging at `info`, for [`Served::spawn`].
    pub fn serve_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("statusmotd"));
        cmd.current_dir(self.path())
            .arg("serve")
            .arg("--config")
            .arg(self.path().join("mapping.toml"))
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env_remove("STATUSMOTD_CONFIG");
        cmd
    }
}

/// A file by relative path, with what a rewrite would change: its bytes,
/// mtime (seconds, nanoseconds) and inode.
pub type FileState = (String, Vec<u8>, i64, i64, u64);

/// Every file under `dir`, sorted. Equal before and after a run: the run
/// left the files alone.
pub fn files_under(dir: &Path) -> Vec<FileState> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    path.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&path).unwrap(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                    meta.ino(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Gives the site at `dir` templates of its own: `templates/motd.txt.j2`
/// holding `motd`, the shipped snippet template beside it, and
/// `templates_dir = "templates"` in its `mapping.toml`. Returns the
/// templates directory, for a test that edits them later.
pub fn use_motd_template(dir: &Path, motd: &str) -> PathBuf {
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("motd.txt.j2"), motd).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    std::fs::copy(shipped.join("item.txt.j2"), templates.join("item.txt.j2")).unwrap();
    let config = dir.join("mapping.toml");
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[settings]\n",
        "[settings]\ntemplates_dir = \"templates\"\n",
        1,
    );
    std::fs::write(&config, text).unwrap();
    templates
}

/// Writes `text` (a script with its `#!` line) to `path`, executable.
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A command's stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A command's exit code, `-1` when a signal ended it.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// No byte a terminal could act on: controls but `\n`, ESC, C1, bidi.
pub fn assert_terminal_safe(text: &str) {
    for c in text.chars() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{80}'..='\u{9f}').contains(&c)),
            "control character {c:?} in output:\n{text}"
        );
        assert!(
            !('\u{202a}'..='\u{202e}').contains(&c) && !('\u{2066}'..='\u{2069}').contains(&c),
            "bidi control {c:?} in output:\n{text}"
        );
    }
}

/// Waits until `cond` holds, checking every 50 ms, failing after `secs`
/// seconds.
pub fn eventually(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number in the environment variable `var`, or `default` when it is
/// unset or not a number: how long or how often the heavy tests run.
pub fn env_number<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One raw HTTP/1.1 exchange on a new connection, exactly as written (no
/// path normalization): the status line's code (0 when there is none) and
/// the whole answer, or `None` when no connection came within `limit`. A
/// failed write still reads the answer: a server may refuse a request (413,
/// 431) before taking all of it.
pub fn http_exchange(addr: &str, request: &[u8], limit: Duration) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let addr = addr.parse().unwrap();
    let mut stream = std::net::TcpStream::connect_timeout(&addr, limit).ok()?;
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.set_write_timeout(Some(limit)).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Some((status, answer))
}

/// `GET path` through [`http_exchange`], closing the connection.
pub fn http_get(addr: &str, path: &str, limit: Duration) -> Option<(u16, String)> {
    http_exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        limit,
    )
}

/// Fetch options quick to give up and quick to retry, so the suite stays
/// fast.
pub fn quick_fetch_options() -> statusmotd::source::FetchOptions {
    statusmotd::source::FetchOptions {
        timeout: Duration::from_secs(2),
        retries: 3,
        max_retry_after: Duration::from_secs(5),
        resolved_since: None,
        backoff: Duration::from_millis(10),
        ..statusmotd::source::FetchOptions::default()
    }
}

/// A running `statusmotd serve`, killed when dropped. Its stderr is kept in
/// `log`; `base` is the address it printed (`http://127.0.0.1:PORT`).
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Spawns `cmd` (a `statusmotd serve ... --listen 127.0.0.1:0`) and waits
    /// until it says where it listens.
    pub fn spawn(mut cmd: std::process::Command) -> Served {
        use std::io::BufRead as _;
        use std::process::Stdio;

        let mut child = cmd
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_log = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                let mut log = thread_log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let Ok(base) = rx.recv_timeout(std::time::Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("serve did not start:\n{}", log.lock().unwrap());
        };
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Served { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `127.0.0.1:PORT`, for raw HTTP clients.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Kills it now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// What `pam_motd` puts on screen for `motd`, through `pamtester` and a
/// throw-away PAM service in /etc/pam.d (removed afterwards). Needs root and
/// pamtester (`scripts/test` installs it): without them the test fails,
/// unless `STATUSMOTD_SKIP_PAM=1` says to skip it, when this returns `None`.
pub fn pam_motd_screen(motd: &Path) -> Option<Vec<u8>> {
    use std::process::Command;

    let root = is_root();
    let have = Command::new("pamtester").arg("--version").output().is_ok();
    if !(root && have) {
        let why = format!(
            "the pam_motd check needs root (root: {root}) and pamtester (installed: {have})"
        );
        assert!(
            std::env::var_os("STATUSMOTD_SKIP_PAM").is_some_and(|v| v == "1"),
            "{why}\nhint: run `scripts/test` as root, or set STATUSMOTD_SKIP_PAM=1 to skip it"
        );
        eprintln!("skipping: {why} (STATUSMOTD_SKIP_PAM=1)");
        return None;
    }
    // pam_motd reads a motd_dir, as on a login node with /etc/motd.d.
    let motd_dir = tempfile::tempdir().unwrap();
    std::fs::copy(motd, motd_dir.path().join("50-statusmotd.motd")).unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let service = format!("statusmotd-test-{}-{nanos}", std::process::id());
    let conf = Path::new("/etc/pam.d").join(&service);
    // `noupdate`: Debian's pam_motd would otherwise run the host's
    // update-motd.d scripts. pam_permit: a stack of only optional modules
    // denies the session.
    std::fs::write(
        &conf,
        format!(
            "session optional pam_motd.so noupdate motd=/dev/null motd_dir={}\n\
             session required pam_permit.so\n",
            motd_dir.path().display()
        ),
    )
    .unwrap_or_else(|e| panic!("cannot write `{}`: {e}", conf.display()));
    let out = Command::new("pamtester")
        .args([service.as_str(), "root", "open_session"])
        .output();
    let _ = std::fs::remove_file(&conf);
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "pamtester failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}
