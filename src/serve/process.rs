//! The process: the runtime, SIGHUP caught from the first line of `main`,
//! SIGTERM/SIGINT, systemd's readiness notification.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use tokio::net::TcpListener;
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{router, serve, start, AppState, BLOCKING_GRACE, SHUTDOWN_GRACE};
use crate::cli::ServeArgs;
use crate::config::{self, Config};
use crate::error::{Error, Result};

/// The runtime and the SIGHUP listener [`catch_sighup`] set up before
/// anything else, for [`run`] to take over.
static EARLY: Mutex<Option<(tokio::runtime::Runtime, Option<Signal>)>> = Mutex::new(None);

fn build_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))
}

/// For `serve`, called on the first line of `main`: starts the runtime and
/// listens for SIGHUP at once. SIGHUP's default action is to end the
/// process, and systemd's `reload` (or a configuration manager) may send it
/// the moment the unit starts: it must mean "reload" from the start, and a
/// SIGHUP that arrives before the configuration is read is still seen.
pub fn catch_sighup() {
    use tokio::signal::unix::{signal, SignalKind};
    // First a plain flag, which takes microseconds where the runtime takes
    // milliseconds: from here on SIGHUP no longer ends the process. The
    // runtime's listener below joins it; the configuration is read after
    // both, so a SIGHUP before then needs no reload of its own.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGHUP,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    // Errors are reported by `run`, which tries again.
    let Ok(runtime) = build_runtime() else {
        return;
    };
    let hup = {
        let _entered = runtime.enter();
        signal(SignalKind::hangup()).ok()
    };
    *EARLY.lock().unwrap_or_else(PoisonError::into_inner) = Some((runtime, hup));
}

/// `statusmotd serve`: returns the exit code once stopped by SIGTERM or
/// SIGINT.
pub fn run(args: &ServeArgs) -> Result<u8> {
    let early = EARLY.lock().unwrap_or_else(PoisonError::into_inner).take();
    let (runtime, hup) = match early {
        Some(early) => early,
        None => (build_runtime()?, None),
    };
    let path = config::locate(args.config.config.as_deref());
    let config = Config::load(&path)?;
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| config.server.listen.clone());
    let addr: SocketAddr = listen.parse().map_err(|e| {
        Error::Usage(format!(
            "invalid listen address `{listen}`: {e}\nhint: write it as IP:PORT, e.g. `127.0.0.1:8089`"
        ))
    })?;
    let result = runtime.block_on(run_async(config, addr, hup));
    // A render still under way is not waited for: it writes atomically.
    runtime.shutdown_timeout(BLOCKING_GRACE);
    result
}

async fn run_async(config: Config, addr: SocketAddr, hup: Option<Signal>) -> Result<u8> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::Runtime(format!(
            "cannot listen on `{addr}`: {e}\nhint: pick another address with `--listen` or `[server] listen`"
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Runtime(format!("cannot read the listening address: {e}")))?;
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let state = start(config, &cancel, &tracker)?;
    spawn_signals(state.clone(), cancel.clone(), &tracker, hup)?;

    eprintln!("listening on http://{local}");
    tracing::info!("listening on http://{local}");
    notify_ready();
    let served = serve(listener, router(state), cancel.clone().cancelled_owned()).await;
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks were still running after the grace period");
    }
    served.map_err(|e| Error::Runtime(format!("the server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(0)
}

/// Tells systemd (`Type=notify`) that the service is up, so that a
/// `systemctl reload` (SIGHUP) waits until then: a signal that arrives before
/// `main` runs cannot be caught. Does nothing outside systemd.
fn notify_ready() {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        match path.as_encoded_bytes().strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(b"READY=1", &addr)
            }
            None => socket.send_to(b"READY=1", &path),
        }
    });
    if let Err(e) = sent {
        tracing::warn!(
            "cannot tell systemd the service is ready through `{}`: {e}",
            path.to_string_lossy()
        );
    }
}

fn spawn_signals(
    c: AppState,
    cancel: CancellationToken,
    tracker: &TaskTracker,
    hup: Option<Signal>,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| Error::Runtime(format!("cannot listen for {name}: {e}")))
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = match hup {
        Some(hup) => hup,
        None => listen(SignalKind::hangup(), "SIGHUP")?,
    };
    tracker.spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    cancel.cancel();
                    return;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: shutting down");
                    cancel.cancel();
                    return;
                }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading and refreshing");
                    super::reload::reload(&c, "SIGHUP").await;
                    c.refresh(None, "SIGHUP");
                }
            }
        }
    });
    Ok(())
}
