//! The one integration-test binary: every module below links against the
//! library once.

#[macro_use]
mod common;
mod cli;
mod fake;
mod file_source;
mod fixtures;
mod house;
mod packaging;
mod reliability;
mod serve;
mod source;
mod trust_output;
mod trust_render;
mod trust_serve;
mod trust_source;
