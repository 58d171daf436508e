//! The command line, as clap derive types. No I/O happens here: `lib::run`
//! turns these into work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "statusmotd",
    version,
    about = "Turn Atlassian Statuspage incidents and maintenance into per-cluster login banners (MOTD files)",
    long_about = "statusmotd fetches components, incidents and scheduled maintenance from a \
Statuspage page, maps component groups and components to clusters with mapping.toml, and \
writes one message-of-the-day file per cluster, atomically and only when its bytes change, \
with a modification time that says when its news last changed upstream.\n\n\
Start with `statusmotd demo` to see the result on a bundled example.",
    after_help = "Configuration: --config, else $STATUSMOTD_CONFIG, else ./mapping.toml, else /etc/statusmotd/mapping.toml.\n\
Exit codes: 0 success, 1 runtime failure, 2 usage, 3 configuration; gate: 0 clear, 1 blocked, 4 no fresh data."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print more about what happens (repeat for more); also `RUST_LOG`.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a bundled example (no network, no key) and show the result.
    Demo(DemoArgs),
    /// Fetch, render every cluster's MOTD and write the files that changed.
    Render(RenderArgs),
    /// Fetch every source and save the normalized snapshot as JSON.
    Fetch(FetchArgs),
    /// Print one cluster's MOTD to standard output; writes nothing.
    Show(ShowArgs),
    /// Exit 0 when a cluster is clear, 1 when it is blocked (reasons on stdout), 4 without fresh data.
    Gate(GateArgs),
    /// Run every (or the named) probe once, count the results, print one line per probe; exit 1 when any is down.
    Probe(ProbeArgs),
    /// Run as a service: receive Statuspage webhooks, poll, render, serve the files over HTTP.
    Serve(ServeArgs),
    /// Write or check the cluster mapping against the upstream groups.
    #[command(subcommand)]
    Mapping(MappingCommand),
    /// Notification routes (`[[notify]]`): send a test message.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output.
    Man,
    /// Print the JSON Schema of a snapshot file: what `fetch --save` writes and a `file` source reads.
    #[command(
        long_about = "Print the JSON Schema (draft 2020-12) of statusmotd's snapshot file to standard output: \
the format `statusmotd fetch --save` writes, and the one a site script writes for a source of kind `file`. \
Validate a file against it with any JSON Schema tool, e.g. `statusmotd schema > snapshot.schema.json`."
    )]
    Schema,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The mapping file [default: `$STATUSMOTD_CONFIG`, ./mapping.toml, /etc/statusmotd/mapping.toml]
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Write the example's files here instead of a new temporary directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Write under this directory instead of `output_dir`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Render from a saved snapshot (from `fetch --save`) instead of fetching.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// Render as if it were this time (RFC 3339, e.g. 2024-05-14T12:00:00Z), for reproducible builds.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Render only this cluster (repeatable).
    #[arg(long = "cluster", value_name = "NAME")]
    pub clusters: Vec<String>,
    /// Write nothing; exit 1 when some file would change.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Where to write the snapshot.
    #[arg(long, value_name = "FILE")]
    pub save: PathBuf,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The cluster, as named in mapping.toml.
    pub cluster: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Use a saved snapshot instead of fetching.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// Show it as of this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlockOn {
    /// An unresolved incident affects the cluster.
    Incident,
    /// Maintenance is in progress on the cluster.
    Maintenance,
    /// A component of the cluster is not operational.
    Degraded,
}

impl From<BlockOn> for crate::view::Blocker {
    fn from(b: BlockOn) -> Self {
        match b {
            BlockOn::Incident => Self::Incident,
            BlockOn::Maintenance => Self::Maintenance,
            BlockOn::Degraded => Self::Degraded,
        }
    }
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// The cluster, as named in mapping.toml.
    pub cluster: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// What blocks a deploy.
    #[arg(long, value_delimiter = ',', default_value = "incident,maintenance")]
    pub block_on: Vec<BlockOn>,
    /// Data older than this gives exit code 4 [default: `stale_after`].
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Use a saved snapshot instead of fetching.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// Decide as of this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Probe names, as in the configuration [default: every probe].
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Listen here instead of `[server] listen` (e.g. 127.0.0.1:8089, or 127.0.0.1:0 for any port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Print a mapping.toml skeleton from the upstream groups (one cluster per group).
    Init {
        #[command(flatten)]
        config: ConfigArg,
        /// The source to read groups from [default: the only source]; one that no cluster reads as
        /// its `source` gives `[clusters.NAME.also.SOURCE]` tables to append instead of a whole file.
        #[arg(long, value_name = "NAME", conflicts_with = "url")]
        source: Option<String>,
        /// Read a public status page directly, without a mapping.toml (e.g. `https://www.githubstatus.com`).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Read groups from a saved snapshot instead of fetching.
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
    },
    /// Resolve every name in mapping.toml; list groups and components no cluster maps.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Check against a saved snapshot instead of fetching.
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test message through a `[[notify]]` route and print the receiver's answer.
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// The route's `name`.
        #[arg(value_name = "ROUTE")]
        route: String,
    },
}
