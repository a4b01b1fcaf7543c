//! Bodies through the edge: [`Body`], what the edge answers with (bytes it
//! made itself, or an upstream's response streamed through), and
//! [`Outgoing`], what the proxy sends upstream (the client's body streamed
//! through, and given back untouched when the upstream could not be
//! reached, so it can go to the next one).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use crate::backend::InFlight;
use crate::http::RequestBody;

/// Errors a streamed body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body of the edge.
pub struct Body {
    kind: Kind,
    /// Counts the response against its backend until it ends (least
    /// connections sees it).
    _in_flight: Option<InFlight>,
}

enum Kind {
    Bytes(Option<Bytes>),
    Upstream(Incoming),
    File(crate::files::FileStream),
}

impl Body {
    pub fn new(bytes: Bytes) -> Body {
        Body {
            kind: Kind::Bytes((!bytes.is_empty()).then_some(bytes)),
            _in_flight: None,
        }
    }

    pub fn empty() -> Body {
        Body::new(Bytes::new())
    }

    /// An upstream's body, passed on as it arrives.
    pub fn upstream(body: Incoming, in_flight: Option<InFlight>) -> Body {
        Body {
            kind: Kind::Upstream(body),
            _in_flight: in_flight,
        }
    }

    pub(crate) fn file(stream: crate::files::FileStream) -> Body {
        Body {
            kind: Kind::File(stream),
            _in_flight: None,
        }
    }

    /// The whole body, when it is already in memory.
    pub fn bytes(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Bytes(b) => Some(b.as_ref().unwrap_or(&EMPTY)),
            _ => None,
        }
    }
}

static EMPTY: Bytes = Bytes::new();

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::new(b)
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
            Kind::File(f) => Pin::new(f).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Bytes(b) => b.is_none(),
            Kind::Upstream(b) => b.is_end_stream(),
            Kind::File(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Bytes(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(b) => b.size_hint(),
            Kind::File(f) => f.size_hint(),
        }
    }
}

/// The client's request body on its way upstream. It stays in a shared
/// slot until the upstream connection first asks for a frame; if the
/// exchange fails before that (the upstream could not be reached), the
/// body is still whole and [`Lender::reclaim`] gives it back.
pub struct Outgoing {
    slot: Arc<Mutex<Option<RequestBody>>>,
    taken: Option<RequestBody>,
    /// The body was known to be empty: nothing to stream or lose.
    empty: bool,
    fault: Arc<Mutex<Option<ClientFault>>>,
    clock: Arc<BodyClock>,
}

/// When a request body last moved toward the upstream. The wait for the
/// upstream's answer counts from then: a long upload that keeps moving is
/// not an upstream that fails to answer (a stalled one is cut by the
/// server's own body timeout).
#[derive(Debug)]
pub struct BodyClock {
    start: std::time::Instant,
    /// Nanoseconds after `start` of the last frame handed on.
    last_ns: std::sync::atomic::AtomicU64,
}

impl BodyClock {
    fn new() -> Arc<BodyClock> {
        Arc::new(BodyClock {
            start: std::time::Instant::now(),
            last_ns: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn tick(&self) {
        let ns = self.start.elapsed().as_nanos() as u64;
        self.last_ns.store(ns, std::sync::atomic::Ordering::Relaxed);
    }

    /// The last time a frame (or the body's end) was handed on, or the
    /// time the request was lent when none was.
    pub fn last(&self) -> std::time::Instant {
        let ns = self.last_ns.load(std::sync::atomic::Ordering::Relaxed);
        self.start + std::time::Duration::from_nanos(ns)
    }
}

/// How the client's body failed while it was being sent upstream.
#[derive(Clone, Debug)]
pub struct ClientFault {
    pub too_large: bool,
    pub timed_out: bool,
    pub message: String,
}

/// The handle that can take an unread body back, and that knows whether
/// the client's body failed on its way.
pub struct Lender(
    Arc<Mutex<Option<RequestBody>>>,
    Arc<Mutex<Option<ClientFault>>>,
);

impl Lender {
    /// The body, if no byte of it was asked for.
    pub fn reclaim(&self) -> Option<RequestBody> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Set when reading the client's body failed (too slow, too large,
    /// cut off): an upstream answer to the truncated request is not the
    /// answer to the client's.
    pub fn fault(&self) -> Option<ClientFault> {
        self.1.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Outgoing {
    /// Lends `body` to one attempt.
    pub fn lend(body: RequestBody) -> (Outgoing, Lender) {
        let empty = body.is_end_stream();
        let slot = Arc::new(Mutex::new(Some(body)));
        let fault = Arc::new(Mutex::new(None));
        (
            Outgoing {
                slot: slot.clone(),
                taken: None,
                empty,
                fault: fault.clone(),
                clock: BodyClock::new(),
            },
            Lender(slot, fault),
        )
    }

    /// An empty body (a retry of a bodiless request).
    pub fn lend_empty() -> (Outgoing, Lender) {
        let slot = Arc::new(Mutex::new(None));
        let fault = Arc::new(Mutex::new(None));
        (
            Outgoing {
                slot: slot.clone(),
                taken: None,
                empty: true,
                fault: fault.clone(),
                clock: BodyClock::new(),
            },
            Lender(slot, fault),
        )
    }

    /// When this body last moved (see [`BodyClock`]).
    pub fn clock(&self) -> Arc<BodyClock> {
        self.clock.clone()
    }

    fn with_inner<T>(&self, f: impl FnOnce(Option<&RequestBody>) -> T) -> T {
        match &self.taken {
            Some(b) => f(Some(b)),
            None => f(self.slot.lock().unwrap_or_else(|p| p.into_inner()).as_ref()),
        }
    }
}

impl HttpBody for Outgoing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.empty {
            return Poll::Ready(None);
        }
        if self.taken.is_none() {
            let b = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            self.taken = b;
        }
        let polled = match &mut self.taken {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => return Poll::Ready(None),
        };
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Ok(_)))) {
            self.clock.tick();
        }
        if let Poll::Ready(Some(Err(e))) = &polled {
            *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(ClientFault {
                too_large: e.is_too_large(),
                timed_out: e.is_timeout(),
                message: e.to_string(),
            });
        }
        polled.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.empty || self.with_inner(|b| b.is_none_or(|b| b.is_end_stream()))
    }

    fn size_hint(&self) -> SizeHint {
        if self.empty {
            return SizeHint::with_exact(0);
        }
        self.with_inner(|b| b.map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint()))
    }
}
