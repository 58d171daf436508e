//! The accept loop: connections with a header deadline and a cap, and the
//! start of the coordinator and watcher they serve.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{AppState, Coordinator, Live, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, SHUTDOWN_GRACE};
use crate::config::Config;
use crate::error::Result;

/// Starts the coordinator (which renders at once from the persisted
/// snapshots, then refreshes) and the file watcher on `tracker`. Must be
/// called within a Tokio runtime. Fails when a template or a `[server]`
/// token cannot be read.
pub fn start(
    config: Config,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<AppState> {
    let live = Live::new(config)?;
    if live.webhook_token.is_none() {
        tracing::warn!(
            "no `webhook_token` in `[server]`: POST /webhook/{{token}} answers 404 to every request"
        );
    }
    if live.refresh_token.is_none() {
        tracing::info!("no `refresh_token` in `[server]`: POST /refresh answers 404");
    }
    let coordinator = Coordinator::start(live, cancel.clone(), tracker);
    super::reload::spawn(coordinator.clone(), cancel.clone(), tracker)?;
    Ok(coordinator)
}

/// The open connections, oldest first, so that a new one can make room by
/// closing the oldest that has no request under way.
#[derive(Default)]
struct Connections {
    next_id: u64,
    open: BTreeMap<u64, OpenConnection>,
}

struct OpenConnection {
    close: CancellationToken,
    /// Requests of this connection under way (0 or 1 with HTTP/1.1).
    busy: Arc<AtomicUsize>,
}

impl Connections {
    /// Registers a new connection, first closing the oldest idle one when
    /// [`MAX_CONNECTIONS`] are open. `None` when every open connection has a
    /// request under way: the new one is refused.
    fn admit(&mut self) -> Option<(u64, CancellationToken, Arc<AtomicUsize>)> {
        if self.open.len() >= MAX_CONNECTIONS {
            let idle = self
                .open
                .iter()
                .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id)?;
            if let Some(evicted) = self.open.remove(&idle) {
                evicted.close.cancel();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let close = CancellationToken::new();
        let busy = Arc::new(AtomicUsize::new(0));
        self.open.insert(
            id,
            OpenConnection {
                close: close.clone(),
                busy: busy.clone(),
            },
        );
        Some((id, close, busy))
    }
}

/// Counts a request under way on its connection while alive.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting, lets requests under way finish (up to a grace period) and
/// returns. Each connection must send its headers within
/// [`HEADER_READ_TIMEOUT`]; at most [`MAX_CONNECTIONS`] are open at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper::service::Service as _;
    use hyper_util::rt::{TokioIo, TokioTimer};

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(Mutex::new(Connections::default()));
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let admitted = connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit();
        let Some((id, close, busy)) = admitted else {
            tracing::debug!(
                "{MAX_CONNECTIONS} connections are open, each with a request under way: refusing one"
            );
            drop(stream);
            continue;
        };
        let tower = hyper_util::service::TowerToHyperService::new(app.clone());
        let service = hyper::service::service_fn(move |req| {
            let busy = Busy::enter(&busy);
            let response = tower.call(req);
            async move {
                let response = response.await;
                drop(busy);
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let connections = connections.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!("connection closed: {e}");
                },
                () = close.cancelled() => {
                    tracing::debug!("closed an idle connection to make room for a new one");
                }
            }
            connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .open
                .remove(&id);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the grace period");
    }
    Ok(())
}
