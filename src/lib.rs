//! statusmotd: Atlassian Statuspage data -> per-cluster message-of-the-day
//! files. The modules follow the data flow of `DESIGN.md`:
//! source -> snapshot -> mapping -> view -> render -> output.

pub mod config;
pub mod error;
pub mod mapping;
pub mod model;
pub mod output;
pub mod render;
pub mod sanitize;
pub mod source;
pub mod view;

pub use error::{Error, Result};
