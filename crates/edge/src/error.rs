//! The one error type of the edge crate.

use std::fmt;

/// Where an edge failure came from, so a proxy can choose the status and
/// know whether a retry on another backend is safe.
#[derive(Debug)]
pub struct EdgeError {
    kind: Kind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The next hop refused or dropped the connection before answering.
    UpstreamConnect,
    /// The next hop took too long.
    UpstreamTimeout,
    /// The next hop answered with something that was not HTTP.
    UpstreamProtocol,
    /// Certificates, keys, files.
    Setup,
}

impl EdgeError {
    pub(crate) fn upstream_connect(m: impl fmt::Display) -> Self {
        Self::new(Kind::UpstreamConnect, m)
    }
    pub(crate) fn upstream_timeout(m: impl fmt::Display) -> Self {
        Self::new(Kind::UpstreamTimeout, m)
    }
    pub(crate) fn upstream_protocol(m: impl fmt::Display) -> Self {
        Self::new(Kind::UpstreamProtocol, m)
    }
    pub(crate) fn setup(m: impl fmt::Display) -> Self {
        Self::new(Kind::Setup, m)
    }
    fn new(kind: Kind, m: impl fmt::Display) -> Self {
        EdgeError {
            kind,
            message: m.to_string(),
        }
    }

    /// Nothing reached the backend, so trying another one is safe even for
    /// a non-idempotent request.
    pub fn retry_is_safe(&self) -> bool {
        self.kind == Kind::UpstreamConnect
    }

    /// The status a proxy answers with: 504 for a timeout, 502 otherwise
    /// (RFC 9110 §15.6.3, §15.6.5).
    pub fn status(&self) -> u16 {
        match self.kind {
            Kind::UpstreamTimeout => 504,
            Kind::Setup => 500,
            _ => 502,
        }
    }
}

impl fmt::Display for EdgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            Kind::UpstreamConnect => "cannot reach upstream",
            Kind::UpstreamTimeout => "upstream timed out",
            Kind::UpstreamProtocol => "bad answer from upstream",
            Kind::Setup => "setup failed",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl std::error::Error for EdgeError {}
