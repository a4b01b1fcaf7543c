//! Ids, the clock, the [`Span`] record and W3C trace context.

use std::fmt;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Wall-clock time in Unix nanoseconds, read from a monotonic clock.
///
/// The wall clock is read once, at the first call; after that time moves
/// with `Instant`, so spans never go backwards when the system clock is
/// adjusted, and spans recorded by different processes on one machine
/// share one axis.
pub fn now_ns() -> u64 {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    let (at, unix) = *ANCHOR.get_or_init(|| {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (Instant::now(), unix)
    });
    unix + at.elapsed().as_nanos() as u64
}

/// 16-byte trace id (W3C Trace Context §3.2.2.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TraceId(pub u128);

/// 8-byte span id (W3C Trace Context §3.2.2.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SpanId(pub u64);

impl TraceId {
    /// A fresh random id; never the all-zero id, which the spec forbids.
    pub fn random() -> Self {
        loop {
            let v: u128 = rand::random();
            if v != 0 {
                return TraceId(v);
            }
        }
    }
}

impl SpanId {
    /// A fresh random id; never zero.
    pub fn random() -> Self {
        loop {
            let v: u64 = rand::random();
            if v != 0 {
                return SpanId(v);
            }
        }
    }
}

macro_rules! hex_id {
    ($t:ty, $width:expr, $int:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:0width$x}", self.0, width = $width)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                if s.len() != $width || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("expected {} hex digits, got {s:?}", $width));
                }
                <$int>::from_str_radix(&s, 16)
                    .map(Self)
                    .map_err(|e| e.to_string())
            }
        }
    };
}
hex_id!(TraceId, 32, u128);
hex_id!(SpanId, 16, u64);

/// Where a span sits: its trace and its parent span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx {
    pub trace: TraceId,
    pub parent: Option<SpanId>,
    /// W3C's sampled flag: spans of an unsampled trace are not recorded
    /// (a load balancer's health checks travel this way, so they reach
    /// every hop without filling the trace store).
    pub sampled: bool,
}

impl Ctx {
    /// The start of a new trace (a new top-level request).
    pub fn new_root() -> Self {
        Ctx {
            trace: TraceId::random(),
            parent: None,
            sampled: true,
        }
    }

    /// The start of a trace no hop records.
    pub fn unsampled_root() -> Self {
        Ctx {
            sampled: false,
            ..Ctx::new_root()
        }
    }

    /// The same trace, with `span` as the parent of what comes next.
    pub fn child_of(self, span: SpanId) -> Self {
        Ctx {
            parent: Some(span),
            ..self
        }
    }

    /// The `traceparent` header value naming `span` as the caller
    /// (W3C Trace Context §3.2: version 00, the sampled flag).
    pub fn traceparent(&self, span: SpanId) -> String {
        let flags = if self.sampled { "01" } else { "00" };
        format!("00-{}-{}-{flags}", self.trace, span)
    }

    /// Parses a `traceparent` header. Returns `None` for anything that is not
    /// a well-formed version-00 value, as §3.2.2 says a receiver must then
    /// start a new trace.
    pub fn from_traceparent(value: &str) -> Option<Ctx> {
        let mut parts = value.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" || flags.len() != 2 {
            return None;
        }
        let lower = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower(trace) || !lower(parent) || !lower(flags) {
            return None;
        }
        let trace = TraceId::try_from(trace.to_string()).ok()?;
        let parent = SpanId::try_from(parent.to_string()).ok()?;
        // All-zero ids are invalid (§3.2.2.3, §3.2.2.4).
        if trace.0 == 0 || parent.0 == 0 {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Ctx {
            trace,
            parent: Some(parent),
            sampled: flags & 1 == 1,
        })
    }
}

/// The layer a span belongs to, named after the TCP/IP model with the OSI
/// number beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// L3: addresses and routes.
    Network,
    /// L4: TCP and UDP.
    Transport,
    /// L5/6: TLS.
    Session,
    /// L7: DNS, HTTP, the application itself.
    Application,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Network => "L3",
            Layer::Transport => "L4",
            Layer::Session => "L5",
            Layer::Application => "L7",
        })
    }
}

/// A key that ties a span recorded without trace context (a DNS server
/// answering a datagram) to the span of the peer that caused it.
///
/// The sender records it in [`Span::correlates`], the receiver in
/// [`Span::link`]; [`crate::Collector::assemble`] joins the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Correlation {
    /// One DNS exchange: the query's source and destination and its id.
    Dns {
        from: SocketAddr,
        to: SocketAddr,
        id: u16,
    },
}

/// A host, address or component name on a span: shared by every span its
/// recorder makes (recording clones a pointer, not the text), and compared
/// and printed like a string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Label(std::sync::Arc<str>);

impl Label {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Label {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment (`{:<9}`), as a `String` does.
        f.pad(&self.0)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for Label {
    fn from(s: &str) -> Label {
        Label(s.into())
    }
}

impl From<String> for Label {
    fn from(s: String) -> Label {
        Label(s.into())
    }
}

impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Label {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Label::from)
    }
}

/// One timed step on one host.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Span {
    pub trace: TraceId,
    pub id: SpanId,
    pub parent: Option<SpanId>,
    /// Host name from the world, e.g. `resolver`.
    pub host: Label,
    /// The host's address (where the work happened).
    pub addr: Label,
    pub layer: Layer,
    /// The component on the host, e.g. `dns-authoritative`, `lb`, `app`.
    pub component: Label,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Which top-level client request this span belongs to (0 = the page,
    /// 1.. = subresources); only client spans carry it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub link: Option<Correlation>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub correlates: Vec<Correlation>,
    pub event: Event,
}

impl Span {
    /// Duration in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let ctx = Ctx::new_root();
        let span = SpanId::random();
        let header = ctx.traceparent(span);
        assert_eq!(header.len(), 55);
        let back = Ctx::from_traceparent(&header).unwrap();
        assert_eq!(back.trace, ctx.trace);
        assert_eq!(back.parent, Some(span));
        assert!(back.sampled);
        let quiet = Ctx::unsampled_root();
        let back = Ctx::from_traceparent(&quiet.traceparent(span)).unwrap();
        assert!(back.traceparent(span).ends_with("-00") && !back.sampled);
    }

    #[test]
    fn malformed_traceparent_is_rejected() {
        for bad in [
            "",
            "00-abc-def-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        ] {
            assert!(Ctx::from_traceparent(bad).is_none(), "{bad}");
        }
        assert!(
            Ctx::from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
                .is_some()
        );
    }

    #[test]
    fn labels_pad_like_strings() {
        let l = Label::from("lb");
        assert_eq!(format!("[{l:<5}]"), "[lb   ]");
        assert_eq!(l, "lb");
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"lb\"");
    }

    #[test]
    fn ids_serialize_as_hex() {
        let id = SpanId(0xb7ad6b7169203331);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"b7ad6b7169203331\"");
    }
}
