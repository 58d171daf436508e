//! The one integration-test binary: every module below links against the
//! library once.

#[macro_use]
mod common;
mod cli;
mod fake;
mod packaging;
mod reliability;
mod serve;
mod source;
mod trust_serve;
