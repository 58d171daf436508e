//! The one error type of the library and the exit code each kind maps to:
//! 1 runtime failure, 2 usage, 3 configuration (`DESIGN.md`, "Command line").

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `mapping.toml` or something it points at is wrong; the message says
    /// where and, on a `hint:` line, what to do.
    #[error("{0}")]
    Config(String),
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Anything else that went wrong while running.
    #[error("{0}")]
    Runtime(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 3,
            Error::Usage(_) => 2,
            Error::Io { .. } | Error::Runtime(_) => 1,
        }
    }

    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
