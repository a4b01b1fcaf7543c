//! Bodies at the edge of a connection: the request body with a deadline,
//! and a response body that tells the connection when it is done.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::conn::ConnState;

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The whole body did not arrive within the server's body timeout.
    TimedOut(Duration),
    /// The body grew past the listener's limit (a chunked body has no
    /// Content-Length to refuse up front).
    TooLarge(u64),
    /// The connection failed or the framing was wrong.
    Read(hyper::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TimedOut(d) => {
                write!(f, "the request body did not arrive within {d:?}")
            }
            BodyError::TooLarge(max) => write!(f, "request body larger than {max} bytes"),
            BodyError::Read(e) => write!(f, "cannot read the request body: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

impl BodyError {
    /// The body error somewhere in `e`'s chain of sources: what a proxy's
    /// client or an extractor saw when reading the body failed.
    pub fn within<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
        let mut cur = Some(e);
        while let Some(c) = cur {
            if let Some(b) = c.downcast_ref::<BodyError>() {
                return Some(b);
            }
            cur = c.source();
        }
        None
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, BodyError::TimedOut(_))
    }

    pub fn is_too_large(&self) -> bool {
        matches!(self, BodyError::TooLarge(_))
    }
}

/// A request body that must arrive completely within a time budget counted
/// from the moment its head was read (a client trickling its body is cut
/// off like one trickling its head). The timer is armed only when the body
/// is not already there, so bodiless requests cost nothing. Its size is
/// bounded too, whether or not it declared a Content-Length.
pub struct RequestBody {
    /// `None` for a request that has no body at all (HTTP/0.9).
    inner: Option<Incoming>,
    started: Instant,
    budget: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    max: u64,
    seen: u64,
}

impl RequestBody {
    pub fn new(inner: Incoming, budget: Duration, max: u64) -> RequestBody {
        RequestBody {
            inner: Some(inner),
            started: Instant::now(),
            budget,
            timer: None,
            max,
            seen: 0,
        }
    }
}

impl RequestBody {
    /// A body with nothing in it.
    pub fn empty() -> RequestBody {
        RequestBody {
            inner: None,
            started: Instant::now(),
            budget: Duration::ZERO,
            timer: None,
            max: 0,
            seen: 0,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(frame) = Pin::new(inner).poll_frame(cx) {
            if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
                && let Some(data) = data
            {
                this.seen += data.len() as u64;
                if this.seen > this.max {
                    return Poll::Ready(Some(Err(BodyError::TooLarge(this.max))));
                }
            }
            return Poll::Ready(frame.map(|r| r.map_err(BodyError::Read)));
        }
        let deadline = this.started + this.budget;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::TimedOut(this.budget)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

/// Counts a request as in flight on its connection from the moment it
/// arrives until its response body has been sent (or dropped).
pub(crate) struct InFlight(Arc<ConnState>);

impl InFlight {
    pub(crate) fn enter(state: Arc<ConnState>) -> InFlight {
        state.begin_request();
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// A response body that holds its request's [`InFlight`] until it ends.
pub struct Guarded<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Guarded<B> {
    pub(crate) fn new(body: B, in_flight: InFlight) -> Self {
        Guarded {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
