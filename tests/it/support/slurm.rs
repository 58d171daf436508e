//! A real Slurm controller for the tests: `munged` with a key of its own and
//! `slurmctld` with a `slurm.conf` written here, both in a temp directory,
//! on free 127.0.0.1 ports, started once per test binary and killed when it
//! ends (a watchdog process kills their process groups and removes the
//! directory once the test process is gone, however it ends).
//!
//! The cluster `testcl` has nodes `n[1-6]` (no `slurmd`: reservations and
//! partition states need only the controller) in four partitions:
//! `standard` = `n[1-2]`, `highmem` = `n3`, `gpu` = `n4`, `debug` = `n[5-6]`.
//! `scontrol` finds it through `SLURM_CONF` ([`Slurm::conf`]).
//!
//! Tests that change the controller take [`Slurm::lock`], so a reservation
//! on all nodes in one test never shows in another.
//!
//! The programs come from Debian's `slurmctld`, `slurm-client` and `munge`
//! (`scripts/test` installs them). Without them, or without root, a test
//! fails saying what is missing, unless `STATUSMOTD_SKIP_SLURM=1` says to
//! skip it.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub struct Slurm {
    dir: PathBuf,
    conf: PathBuf,
    /// A `slurm.conf` whose controller port nobody listens on.
    dead_conf: PathBuf,
    lock: Mutex<()>,
}

static SLURM: OnceLock<Result<Slurm, String>> = OnceLock::new();

impl Slurm {
    /// The shared controller, started on first use; `None` (the test
    /// returns early) only when it cannot start and
    /// `STATUSMOTD_SKIP_SLURM=1`.
    pub fn get() -> Option<&'static Slurm> {
        match SLURM.get_or_init(start) {
            Ok(s) => Some(s),
            Err(why) => {
                assert!(
                    std::env::var_os("STATUSMOTD_SKIP_SLURM").is_some_and(|v| v == "1"),
                    "cannot start a Slurm controller: {why}\nhint: run `scripts/test` as root \
                     (it installs slurmctld, slurm-client and munge), or set \
                     STATUSMOTD_SKIP_SLURM=1 to skip the Slurm tests"
                );
                eprintln!("skipping: cannot start a Slurm controller: {why}");
                None
            }
        }
    }

    /// Holds the controller for one test.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `slurm.conf` to put in `SLURM_CONF`.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// A `slurm.conf` of the same cluster with no controller behind it.
    pub fn dead_conf(&self) -> &Path {
        &self.dead_conf
    }

    /// Runs `scontrol ARGS` against the controller; panics when it fails.
    pub fn scontrol(&self, args: &[&str]) -> String {
        let out = Command::new("scontrol")
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap_or_else(|e| panic!("cannot run scontrol: {e}"));
        assert!(
            out.status.success(),
            "scontrol {args:?} failed: {}{}\n(slurmctld log: {})",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.dir.join("slurmctld.log").display()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(|e| panic!("no free port: {e}"), |a| a.port())
}

/// `program` from `/usr/sbin` (not on every user's PATH) or PATH; `None`
/// when it is in neither.
fn find(program: &str) -> Option<PathBuf> {
    let sbin = Path::new("/usr/sbin").join(program);
    if sbin.exists() {
        return Some(sbin);
    }
    Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", program])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

fn start() -> Result<Slurm, String> {
    let missing = |p: &str| format!("`{p}` is not installed");
    let munged = find("munged").ok_or_else(|| missing("munged"))?;
    let slurmctld = find("slurmctld").ok_or_else(|| missing("slurmctld"))?;
    find("scontrol").ok_or_else(|| missing("scontrol"))?;
    if !crate::common::is_root() {
        return Err("slurmctld here runs with SlurmUser=root, which needs root".into());
    }
    // Not a `TempDir`: a static is never dropped; the watchdog removes it.
    let dir = tempfile::Builder::new()
        .prefix("statusmotd-slurm-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let p = |name: &str| dir.join(name);
    for d in ["munge", "state", "spool"] {
        std::fs::create_dir(p(d)).map_err(|e| e.to_string())?;
    }
    // munged insists on a private key and directory, but its socket's
    // directory must be searchable by all.
    let key: Vec<u8> = (0..1024u32)
        .map(|i| u8::try_from((i.wrapping_mul(2_654_435_761) >> 13) & 0xff).unwrap_or(0))
        .chain(std::process::id().to_le_bytes())
        .collect();
    std::fs::write(p("munge/key"), key).map_err(|e| e.to_string())?;
    run("chmod", &["600", &p("munge/key").to_string_lossy()])?;
    run("chmod", &["755", &p("munge").to_string_lossy()])?;
    let socket = p("munge/socket");
    let munged = Command::new(munged)
        .args([
            "--foreground",
            "--force",
            &format!("--key-file={}", p("munge/key").display()),
            &format!("--socket={}", socket.display()),
            &format!("--pid-file={}", p("munge/pid").display()),
            &format!("--log-file={}", p("munge/log").display()),
            &format!("--seed-file={}", p("munge/seed").display()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start munged: {e}"))?;
    wait_for(&format!("munged's socket {}", socket.display()), || {
        socket.exists()
    })?;

    let host = Command::new("hostname")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .map_err(|e| e.to_string())?;
    let host = host.split('.').next().unwrap_or("localhost").to_owned();
    let conf_text = |ctld_port: u16| {
        format!(
            "ClusterName=testcl\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={slurmd_port}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={socket}\n\
             CredType=cred/munge\n\
             StateSaveLocation={state}\n\
             SlurmdSpoolDir={spool}\n\
             SlurmctldPidFile={dir}/slurmctld.pid\n\
             SlurmctldLogFile={dir}/slurmctld.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SchedulerType=sched/backfill\n\
             SelectType=select/cons_tres\n\
             ReturnToService=2\n\
             MpiDefault=none\n\
             JobCompType=jobcomp/none\n\
             AccountingStorageType=accounting_storage/none\n\
             NodeName=n[1-6] NodeAddr=127.0.0.1 CPUs=1 RealMemory=100 State=UNKNOWN\n\
             PartitionName=standard Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP\n\
             PartitionName=highmem Nodes=n3 MaxTime=INFINITE State=UP\n\
             PartitionName=gpu Nodes=n4 MaxTime=INFINITE State=UP\n\
             PartitionName=debug Nodes=n[5-6] MaxTime=INFINITE State=UP\n",
            slurmd_port = free_port(),
            socket = socket.display(),
            state = p("state").display(),
            spool = p("spool").display(),
            dir = dir.display(),
        )
    };
    let conf = p("slurm.conf");
    std::fs::write(&conf, conf_text(free_port())).map_err(|e| e.to_string())?;
    let dead_conf = p("dead.conf");
    std::fs::write(&dead_conf, conf_text(free_port())).map_err(|e| e.to_string())?;
    let ctld = Command::new(slurmctld)
        .args(["-D", "-i", "-f"])
        .arg(&conf)
        .env("SLURM_CONF", &conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(p("slurmctld.stderr")).map_err(|e| e.to_string())?,
        ))
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start slurmctld: {e}"))?;

    // The watchdog: once this process is gone, kill both groups and clean
    // up. `env kill`, not the shell's: dash's builtin takes no `--`.
    Command::new("sh")
        .args([
            "-c",
            "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; \
             env kill -s KILL -- -\"$2\" -\"$3\" 2>/dev/null; sleep 1; rm -rf \"$4\"",
            "watchdog",
            &std::process::id().to_string(),
            &ctld.id().to_string(),
            &munged.id().to_string(),
            &dir.to_string_lossy(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the watchdog: {e}"))?;

    wait_for("`scontrol ping` to answer", || {
        Command::new("scontrol")
            .arg("ping")
            .env("SLURM_CONF", &conf)
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("UP"))
    })
    .map_err(|e| {
        let log = std::fs::read_to_string(p("slurmctld.log")).unwrap_or_default();
        let err = std::fs::read_to_string(p("slurmctld.stderr")).unwrap_or_default();
        format!("{e}\nslurmctld log:\n{log}\n{err}")
    })?;
    Ok(Slurm {
        dir,
        conf,
        dead_conf,
        lock: Mutex::new(()),
    })
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {args:?} failed: {status}"))
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("gave up waiting for {what} after 30 s"))
}
