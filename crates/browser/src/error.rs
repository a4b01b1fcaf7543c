//! The one error type of the browser.

use std::fmt;

/// Why a fetch failed, naming the stage.
#[derive(Debug)]
pub struct BrowserError {
    kind: Kind,
    message: String,
    /// The request got no answer at all (not a byte of it): it may be
    /// sent again on a new connection when that is safe.
    unanswered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Url,
    Dns,
    Connect,
    Tls,
    Http,
    Decode,
    /// The answer came, and CORS keeps it from the page (C40).
    Cors,
}

impl BrowserError {
    pub(crate) fn url(m: impl fmt::Display) -> Self {
        Self::new(Kind::Url, m)
    }
    pub(crate) fn dns(e: weblab_dns::DnsError) -> Self {
        Self::new(Kind::Dns, e)
    }
    pub(crate) fn connect(m: impl fmt::Display) -> Self {
        Self::new(Kind::Connect, m)
    }
    pub(crate) fn tls(m: impl fmt::Display) -> Self {
        Self::new(Kind::Tls, m)
    }
    pub(crate) fn http(m: impl fmt::Display) -> Self {
        Self::new(Kind::Http, m)
    }
    /// A failed exchange with the causes hyper keeps behind its own words
    /// ("connection error: received corrupt message …"): what went wrong
    /// underneath is what a person needs to see.
    pub(crate) fn hyper(e: hyper::Error) -> Self {
        Self::new(Kind::Http, weblab_trace::error_chain(&e))
    }
    pub(crate) fn decode(m: impl fmt::Display) -> Self {
        Self::new(Kind::Decode, m)
    }
    pub(crate) fn cors(m: impl fmt::Display) -> Self {
        Self::new(Kind::Cors, m)
    }
    fn new(kind: Kind, m: impl fmt::Display) -> Self {
        BrowserError {
            kind,
            message: m.to_string(),
            unanswered: false,
        }
    }

    /// The same error with what the connection itself met underneath
    /// (a TLS record that failed its check, a reset), when it says more.
    pub(crate) fn because(mut self, cause: Option<String>) -> Self {
        if let Some(c) = cause
            && !self.message.contains(&c)
        {
            self.message.push_str(": the connection had failed: ");
            self.message.push_str(&c);
        }
        self
    }

    /// The same error, marked as one that came before any answer.
    pub(crate) fn before_answer(mut self) -> Self {
        self.unanswered = true;
        self
    }

    /// Whether the request failed before any of its answer came.
    pub(crate) fn is_unanswered(&self) -> bool {
        self.unanswered
    }

    /// The name lookup failed (NXDOMAIN, SERVFAIL, timeout).
    pub fn is_dns(&self) -> bool {
        self.kind == Kind::Dns
    }
    /// The TLS handshake or certificate check failed.
    pub fn is_tls(&self) -> bool {
        self.kind == Kind::Tls
    }
    /// CORS kept the answer from the page.
    pub fn is_cors(&self) -> bool {
        self.kind == Kind::Cors
    }
}

impl fmt::Display for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.kind {
            Kind::Url => "bad URL",
            Kind::Dns => "DNS lookup failed",
            Kind::Connect => "TCP connect failed",
            Kind::Tls => "TLS handshake failed",
            Kind::Http => "HTTP exchange failed",
            Kind::Decode => "cannot decode the body",
            Kind::Cors => "blocked by CORS (C40)",
        };
        write!(f, "{stage}: {}", self.message)
    }
}

impl std::error::Error for BrowserError {}
