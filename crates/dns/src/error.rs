//! The one error type of the DNS crate.

use std::fmt;

/// Why a DNS operation failed. The kinds are private; ask with the predicates.
#[derive(Debug)]
pub struct DnsError {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Zone {
        origin: String,
        line: Option<usize>,
        message: String,
    },
    Hosts {
        line: usize,
        message: String,
    },
    Io(std::io::Error),
    Timeout {
        server: String,
    },
    Malformed(String),
    NxDomain {
        name: String,
    },
    NoData {
        name: String,
    },
    ServFail {
        name: String,
        why: String,
    },
    Refused {
        name: String,
    },
}

impl DnsError {
    pub(crate) fn zone(origin: &str, message: impl Into<String>) -> Self {
        Self::from_kind(Kind::Zone {
            origin: origin.into(),
            line: None,
            message: message.into(),
        })
    }

    pub(crate) fn zone_at(origin: &str, line: usize, message: impl Into<String>) -> Self {
        Self::from_kind(Kind::Zone {
            origin: origin.into(),
            line: Some(line),
            message: message.into(),
        })
    }

    /// The line of a zone's text that an error is about, when known.
    pub fn line(&self) -> Option<usize> {
        match &self.kind {
            Kind::Zone { line, .. } => *line,
            Kind::Hosts { line, .. } => Some(*line),
            _ => None,
        }
    }
    pub(crate) fn hosts(line: usize, message: impl Into<String>) -> Self {
        Self::from_kind(Kind::Hosts {
            line,
            message: message.into(),
        })
    }
    pub(crate) fn timeout(server: impl fmt::Display) -> Self {
        Self::from_kind(Kind::Timeout {
            server: server.to_string(),
        })
    }
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::from_kind(Kind::Malformed(message.into()))
    }
    pub(crate) fn nxdomain(name: impl fmt::Display) -> Self {
        Self::from_kind(Kind::NxDomain {
            name: name.to_string(),
        })
    }
    pub(crate) fn nodata(name: impl fmt::Display) -> Self {
        Self::from_kind(Kind::NoData {
            name: name.to_string(),
        })
    }
    pub(crate) fn refused(name: impl fmt::Display) -> Self {
        Self::from_kind(Kind::Refused {
            name: name.to_string(),
        })
    }
    pub(crate) fn servfail(name: impl fmt::Display, why: impl Into<String>) -> Self {
        Self::from_kind(Kind::ServFail {
            name: name.to_string(),
            why: why.into(),
        })
    }
    fn from_kind(kind: Kind) -> Self {
        DnsError { kind }
    }

    /// The name does not exist (NXDOMAIN).
    pub fn is_nxdomain(&self) -> bool {
        matches!(self.kind, Kind::NxDomain { .. })
    }
    /// No server answered in time.
    pub fn is_refused(&self) -> bool {
        matches!(self.kind, Kind::Refused { .. })
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::Timeout { .. })
    }
    /// A zone or hosts file could not be read.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Zone { .. } | Kind::Hosts { .. })
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Zone {
                origin,
                line: Some(n),
                message,
            } => write!(f, "zone {origin}, line {n}: {message}"),
            Kind::Zone {
                origin, message, ..
            } => write!(f, "zone {origin}: {message}"),
            Kind::Hosts { line, message } => write!(f, "hosts file line {line}: {message}"),
            Kind::Io(e) => write!(f, "network error: {e}"),
            Kind::Timeout { server } => write!(f, "no answer from {server} in time"),
            Kind::Malformed(m) => write!(f, "malformed DNS message: {m}"),
            Kind::NxDomain { name } => write!(f, "{name}: NXDOMAIN (no such domain)"),
            Kind::NoData { name } => write!(f, "{name}: the name has no address records"),
            Kind::ServFail { name, why } => write!(f, "{name}: SERVFAIL ({why})"),
            Kind::Refused { name } => {
                write!(f, "{name}: REFUSED (the server will not answer this query)")
            }
        }
    }
}

impl std::error::Error for DnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for DnsError {
    fn from(e: std::io::Error) -> Self {
        Self::from_kind(Kind::Io(e))
    }
}
