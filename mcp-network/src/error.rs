//! The library's one error type: a message that says what failed and on what, so that the
//! MCP layer can hand it to the host unchanged.

use std::fmt;

/// An analysis failure (unreadable file, bad argument, unknown flow, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NetError {
    message: String,
}

impl NetError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// Adds what was being done when the error happened ("reading capture.pcap: ...").
    pub fn context(self, what: impl fmt::Display) -> Self {
        Self::new(format!("{what}: {}", self.message))
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<String> for NetError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for NetError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
