//! `statusmotd serve`, behind this front module:
//!
//! - `router`: [`router`] maps every endpoint of `DESIGN.md` ("HTTP (serve)")
//!   to a handler; every error answer is one `ApiError`, and a `{cluster}`
//!   in a path is resolved by one extractor;
//! - `listen`: [`serve`] runs a router on a listener until a shutdown future
//!   completes, with the connection cap; [`start`] starts the coordinator;
//! - `coordinator`: the [`Coordinator`], which owns fetching, rendering and
//!   `on_change`;
//! - `incremental`: which clusters a render plans again;
//! - `kept`: the resolved ids and calendar memory, held between renders;
//! - `preview`: a webhook's incident or component applied before the fetch
//!   (`[server] webhook_preview`);
//! - `validators`: what each Statuspage source is asked "changed since?"
//!   with;
//! - `reload`: the watcher of the configuration, templates and status files;
//! - `process`: [`run`] wires all of it to the runtime and the signals.
//!
//! Dependencies point one way: `serve` uses the pipeline and the stages,
//! nothing outside `serve` uses it but the command line.
//!
//! Handlers never wait for upstream: a webhook only sets a flag in the
//! coordinator and answers 202, the pull endpoints read the files the
//! renderer wrote and the snapshots it keeps. Logs name the route template
//! (`/webhook/{token}`), never the path a client sent, so no token reaches a
//! log line.
//!
//! No client can hold the server: headers must arrive within
//! [`HEADER_READ_TIMEOUT`] and the whole request within [`REQUEST_TIMEOUT`],
//! a webhook's token is checked before its body is read, and at most
//! [`MAX_CONNECTIONS`] connections are open at once (the oldest idle one is
//! closed to make room), so file descriptors cannot run out.

use std::sync::Arc;
use std::time::Duration;

mod coordinator;
mod incremental;
mod kept;
mod listen;
mod preview;
mod probes;
mod process;
mod reload;
mod router;
mod validators;

pub use coordinator::{Coordinator, Live, Report, SLOW_ON_CHANGE, SLOW_RENDER};
pub use listen::{serve, start};
pub use process::{catch_sighup, run};
pub use router::{router, webhook_page_id};

/// The largest webhook body accepted; Statuspage's are a few KiB.
pub const WEBHOOK_MAX_BYTES: usize = 1024 * 1024;

/// A client has this long to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A client has this long to send a whole request, headers and body: a body
/// must follow its headers within the difference.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The most connections open at once. Well under systemd's default of 1,024
/// file descriptors, so the listener, the state files and `on_change` always
/// find one.
pub const MAX_CONNECTIONS: usize = 512;

/// How long shutdown waits for open connections and running tasks.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long the runtime waits for blocking work (a render under way) once
/// everything else stopped.
pub(crate) const BLOCKING_GRACE: Duration = Duration::from_secs(1);

/// What every handler gets.
pub type AppState = Arc<Coordinator>;
