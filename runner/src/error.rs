//! The runner's error type.
//!
//! Errors from inside the sandbox cross a process boundary as text (see `protocol.rs`), so
//! [`RunError::Setup`] carries the sandbox's own message; host-side failures keep their source.

use std::io;

use crate::overlay::OverlayError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Setting up the sandbox failed; the message comes from inside it.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// The helper process ended without saying how the process ended.
    #[error("the sandbox helper ended without a result ({0})")]
    HelperDied(String),
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    /// [`crate::Cancel::cancel`] was called; everything the run started is gone.
    #[error("the run was cancelled")]
    Cancelled,
}

impl RunError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> RunError {
        RunError::Io { context: context.into(), source }
    }
}
