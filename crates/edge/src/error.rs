//! The error type of the edge crate's setup (certificates, keys, files).
//! Request-time failures are `pool::SendError` and become 502/503/504.

use std::fmt;

/// A setup failure, with what was being done.
#[derive(Debug)]
pub struct EdgeError {
    message: String,
}

impl EdgeError {
    pub(crate) fn setup(m: impl fmt::Display) -> Self {
        EdgeError {
            message: m.to_string(),
        }
    }
}

impl fmt::Display for EdgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EdgeError {}
