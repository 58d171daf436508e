//! The one integration-test binary: every module below links against the
//! library once.

// Tests build their own scratch files and sites; `clippy.toml` bans these
// calls in the library, where only `output` may change files.
#![allow(clippy::disallowed_methods)]

#[macro_use]
mod support;
// Every module names them `crate::common` and `crate::fake`.
use support::{common, fake};

mod aggregate;
mod alertmanager;
mod calendar;
mod cli;
mod conditional;
mod conditional_serve;
mod errors;
mod file_source;
mod fixtures;
mod house;
mod hpc_sources;
mod notify;
mod packaging;
mod probes;
mod probes_push;
mod reliability;
mod serve;
mod slurm;
mod snapshot_stamp;
mod source;
mod trust_output;
mod trust_render;
mod trust_serve;
mod trust_source;
mod webhook_fast;
