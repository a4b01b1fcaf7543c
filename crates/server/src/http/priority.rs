//! HTTP/2 response priorities (RFC 9218, C26): the `priority` request
//! header says how urgent a response is (`u=0` most, `u=7` least, 3 by
//! default) and whether it is useful in pieces (`i`, incremental). A
//! connection's [`Scheduler`] then lets the most urgent responses that
//! have data ready go first: a less urgent response waits while a more
//! urgent one is flowing, and among non-incremental responses of one
//! urgency the earlier request goes first. It stays work-conserving
//! (§10): a response waiting for its own data (an upstream still
//! thinking) holds nobody back.
//!
//! h2 sends the streams it has data for in turns, frame by frame, and
//! hyper feeds it from each body whenever there is flow-control room, so
//! the order is set here, above hyper: each response body is wrapped in a
//! [`Scheduled`] that yields its next piece (at most [`PIECE`] bytes while
//! other responses share the connection) only when no more urgent
//! response is flowing. What h2 and the socket already hold goes out
//! first; the rest follows the priorities.
//!
//! A response that stops asking to send (its flow-control window full:
//! the client is not reading it) holds nobody back after [`STUCK`].
//!
//! Only responses whose request sent the header hold others back: a
//! client that says nothing about priorities (h2load, curl) keeps h2's
//! plain turns, and its responses count as the default `u=3` when a
//! prioritised one shares the connection. The PRIORITY_UPDATE frame is
//! not read (h2 drops frames of unknown types), nor the RFC 9113 tree.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};

/// A response's place in line, from its request's `priority` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    /// 0 (most urgent) to 7.
    pub urgency: u8,
    /// Useful in pieces: shares turns with others of its urgency.
    pub incremental: bool,
    /// Whether the request said so itself (a `priority` header that
    /// parsed), rather than the defaults.
    pub explicit: bool,
}

impl Default for Priority {
    fn default() -> Self {
        Priority {
            urgency: 3,
            incremental: false,
            explicit: false,
        }
    }
}

impl Priority {
    /// The priority `headers` ask for. A field that is not a valid
    /// structured dictionary is ignored as a whole, an urgency outside
    /// 0..=7 or a member of another type is ignored, unknown members are
    /// skipped (RFC 9218 §4); several field lines are one list.
    pub fn of(headers: &HeaderMap) -> Priority {
        let mut lines = headers.get_all("priority").iter();
        let Some(first) = lines.next() else {
            return Priority::default();
        };
        let joined;
        let field = match lines.next() {
            None => first.as_bytes(),
            Some(second) => {
                let mut all = first.as_bytes().to_vec();
                for more in std::iter::once(second).chain(lines) {
                    all.extend_from_slice(b", ");
                    all.extend_from_slice(more.as_bytes());
                }
                joined = all;
                &joined
            }
        };
        Priority::parse(field).unwrap_or_default()
    }

    fn parse(field: &[u8]) -> Option<Priority> {
        use sfparse::Value;
        let mut p = Priority {
            explicit: true,
            ..Priority::default()
        };
        let mut parser = sfparse::Parser::new(field);
        loop {
            match parser.parse_dict().ok()? {
                None => return Some(p),
                Some(("u", Value::Integer(u))) if (0..=7).contains(&u) => p.urgency = u as u8,
                Some(("i", Value::Bool(i))) => p.incremental = i,
                Some(_) => {}
            }
        }
    }

    /// `u=N` or `u=N, i`, as the header writes it.
    pub fn label(&self) -> String {
        if self.incremental {
            format!("u={}, i", self.urgency)
        } else {
            format!("u={}", self.urgency)
        }
    }
}

/// The most a response yields at once while priorities are in play on its
/// connection: one HTTP/2 frame at the default SETTINGS_MAX_FRAME_SIZE.
/// A larger piece (a whole file read at once) would go into h2's queue
/// whole, past any later, more urgent response.
pub const PIECE: usize = 16 * 1024;

/// One response of a connection, as the scheduler sees it.
#[derive(Debug)]
struct Entry {
    seq: u64,
    priority: Priority,
    /// It has yielded data and is not waiting for its own body.
    flowing: bool,
    /// When it last asked to send (hyper asks only while the stream's
    /// flow-control window has room).
    last: Instant,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    entries: Vec<Entry>,
    /// Bodies held back, woken whenever one that held them stops flowing.
    held: Vec<Waker>,
    /// Entries whose request sent a `priority` header.
    explicit: usize,
}

/// The responses of one HTTP/2 connection and the order they may send in.
#[derive(Default)]
pub struct Scheduler {
    state: Mutex<State>,
}

impl Scheduler {
    pub fn new() -> Arc<Scheduler> {
        Arc::new(Scheduler::default())
    }

    /// A request's place in the order asked, taken as the connection
    /// hands it over (in stream order), before its handler runs: handlers
    /// may finish in any order.
    pub fn ticket(&self) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_seq += 1;
        s.next_seq
    }

    fn join(&self, seq: u64, priority: Priority) {
        let mut s = self.state.lock().unwrap();
        s.explicit += usize::from(priority.explicit);
        // A response joins with its head ready and counts as flowing
        // until its body says otherwise: less urgent ones already sending
        // stop at their next piece, not only once its first data is out.
        s.entries.push(Entry {
            seq,
            priority,
            flowing: priority.explicit,
            last: Instant::now(),
        });
    }

    fn leave(&self, seq: u64) {
        let held = {
            let mut s = self.state.lock().unwrap();
            let Some(i) = s.entries.iter().position(|e| e.seq == seq) else {
                return;
            };
            let e = s.entries.swap_remove(i);
            s.explicit -= usize::from(e.priority.explicit);
            if !e.flowing {
                return;
            }
            std::mem::take(&mut s.held)
        };
        wake_all(held);
    }

    /// Marks `seq` as waiting for its own body: it holds nobody back.
    fn stalled(&self, seq: u64) {
        let held = {
            let mut s = self.state.lock().unwrap();
            match s.entries.iter_mut().find(|e| e.seq == seq) {
                Some(e) if e.flowing => e.flowing = false,
                _ => return,
            }
            std::mem::take(&mut s.held)
        };
        wake_all(held);
    }

    /// Whether `seq`, with data ready, may send now; if so it is flowing.
    /// If not, `waker` is woken when that may have changed, and the
    /// answer says by when to ask again at the latest (a response that
    /// holds it back but stops asking to send, its window full because
    /// the client does not read it, holds nobody back after [`STUCK`]).
    /// Also whether it sends in pieces: while any response of the
    /// connection asked for a priority (one that comes later can then
    /// still go first).
    fn may_send(&self, seq: u64, waker: &Waker) -> Turn {
        let mut s = self.state.lock().unwrap();
        if s.explicit == 0 {
            return Turn::Go { pieces: false };
        }
        let Some(me) = s.entries.iter().find(|e| e.seq == seq).map(|e| e.priority) else {
            return Turn::Go { pieces: true };
        };
        let now = Instant::now();
        let until = s
            .entries
            .iter()
            .filter(|o| o.flowing && precedes(o, seq, me))
            .map(|o| o.last + STUCK)
            .filter(|until| *until > now)
            .min();
        if let Some(until) = until {
            if !s.held.iter().any(|w| w.will_wake(waker)) {
                s.held.push(waker.clone());
            }
            return Turn::Wait { until };
        }
        if let Some(e) = s.entries.iter_mut().find(|e| e.seq == seq) {
            e.flowing = true;
            e.last = now;
        }
        Turn::Go { pieces: true }
    }
}

/// The scheduler's answer to a response with data ready.
enum Turn {
    Go { pieces: bool },
    Wait { until: Instant },
}

/// How long a response that holds others back may go without asking to
/// send before they stop waiting for it: a client that never reads one
/// response (a `fetch` whose body is ignored) must not freeze the less
/// urgent ones behind it.
pub const STUCK: Duration = Duration::from_millis(50);

/// Wakes the bodies that were held, outside the scheduler's lock.
fn wake_all(held: Vec<Waker>) {
    for w in held {
        w.wake();
    }
}

/// Whether `o`, flowing, goes before `me`: only a response that asked
/// holds others back; a more urgent one always, one of the same urgency
/// when both are non-incremental and it was asked for first.
fn precedes(o: &Entry, seq: u64, me: Priority) -> bool {
    o.seq != seq
        && o.priority.explicit
        && (o.priority.urgency < me.urgency
            || (o.priority.urgency == me.urgency
                && !o.priority.incremental
                && !me.incremental
                && o.seq < seq))
}

/// What a response's wait behind more urgent ones came to, handed to
/// the [`HeldReport`] its handler attached when the body ends.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    pub priority: Priority,
    /// Time spent with data ready but held back.
    pub total: Duration,
    /// How many separate waits.
    pub times: u32,
}

/// Put in a response's extensions by a handler that wants to know how
/// long its body was held back by priorities (called once, at the end,
/// also when it never waited; only over HTTP/2).
#[derive(Clone)]
pub struct HeldReport(Arc<Mutex<Option<ReportFn>>>);

type ReportFn = Box<dyn FnOnce(Held) + Send>;

impl HeldReport {
    pub fn new(report: impl FnOnce(Held) + Send + 'static) -> HeldReport {
        HeldReport(Arc::new(Mutex::new(Some(Box::new(report)))))
    }

    fn call(self, held: Held) {
        if let Some(report) = self.0.lock().unwrap().take() {
            report(held);
        }
    }
}

/// A response body that takes its turn on an HTTP/2 connection.
pub struct Scheduled<B> {
    inner: B,
    sched: Arc<Scheduler>,
    seq: u64,
    /// Data taken from `inner` and not yet sent.
    ready: Option<Bytes>,
    held: Held,
    since: Option<Instant>,
    /// Wakes a held body to look again when what holds it may be stuck.
    recheck: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether its entry counts as flowing (kept here too, so that a
    /// body waiting on its upstream takes no lock to say so again).
    flowing: bool,
    report: Option<HeldReport>,
    done: bool,
}

impl<B> Scheduled<B> {
    /// `inner`, the response to the request that took `seq` from
    /// [`Scheduler::ticket`] and asked for `priority`.
    pub fn new(
        inner: B,
        sched: Arc<Scheduler>,
        seq: u64,
        priority: Priority,
        report: Option<HeldReport>,
    ) -> Self {
        sched.join(seq, priority);
        Scheduled {
            inner,
            sched,
            seq,
            ready: None,
            held: Held {
                priority,
                total: Duration::ZERO,
                times: 0,
            },
            since: None,
            recheck: None,
            flowing: priority.explicit,
            report,
            done: false,
        }
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.sched.leave(self.seq);
            if let Some(since) = self.since.take() {
                self.held.total += since.elapsed();
            }
            if let Some(report) = self.report.take() {
                report.call(self.held);
            }
        }
    }
}

impl<B> Drop for Scheduled<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B> Body for Scheduled<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.ready.is_none() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if this.flowing {
                        this.flowing = false;
                        this.sched.stalled(this.seq);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.finish();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.ready = Some(data),
                    // Trailers end the body; they wait for nothing.
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
            }
        }
        let pieces = loop {
            match this.sched.may_send(this.seq, cx.waker()) {
                Turn::Go { pieces } => {
                    // (The scheduler marks it flowing exactly when it
                    // answers with pieces.)
                    this.flowing = pieces;
                    break pieces;
                }
                Turn::Wait { until } => {
                    if this.since.is_none() {
                        this.since = Some(Instant::now());
                        this.held.times += 1;
                    }
                    let until = tokio::time::Instant::from_std(until);
                    let timer = this
                        .recheck
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                    if timer.deadline() != until {
                        timer.as_mut().reset(until);
                    }
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The one ahead went quiet meanwhile: look again.
                }
            }
        };
        if let Some(since) = this.since.take() {
            this.held.total += since.elapsed();
        }
        let mut data = this.ready.take().expect("data is ready");
        if pieces && data.len() > PIECE {
            let piece = data.split_to(PIECE);
            this.ready = Some(data);
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.ready.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let ready = self.ready.as_ref().map_or(0, |d| d.len() as u64);
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + ready);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + ready);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(field: &str) -> Priority {
        let mut h = HeaderMap::new();
        h.append("priority", field.parse().unwrap());
        Priority::of(&h)
    }

    #[test]
    fn the_header_is_read_as_rfc_9218_says() {
        assert_eq!(Priority::of(&HeaderMap::new()), Priority::default());
        let q = p("u=1, i");
        assert_eq!((q.urgency, q.incremental, q.explicit), (1, true, true));
        let q = p("i=?0, u=6");
        assert_eq!((q.urgency, q.incremental), (6, false));
        // Out of range, wrong type, unknown members: the defaults stay.
        let q = p("u=9, i=3, x=y");
        assert_eq!((q.urgency, q.incremental, q.explicit), (3, false, true));
        let q = p("u=\"1\"");
        assert_eq!(q.urgency, 3);
        // Not a dictionary at all: ignored as a whole, even its good part.
        let q = p("u=1, ;;");
        assert_eq!(q, Priority::default());
        // The last of a repeated member wins; two field lines are one.
        assert_eq!(p("u=1, u=5").urgency, 5);
        let mut h = HeaderMap::new();
        h.append("priority", "u=2".parse().unwrap());
        h.append("priority", "i".parse().unwrap());
        let q = Priority::of(&h);
        assert_eq!((q.urgency, q.incremental), (2, true));
        assert_eq!(q.label(), "u=2, i");
    }

    fn entry(seq: u64, urgency: u8, incremental: bool, explicit: bool) -> Entry {
        Entry {
            seq,
            priority: Priority {
                urgency,
                incremental,
                explicit,
            },
            flowing: true,
            last: Instant::now(),
        }
    }

    #[test]
    fn who_goes_first() {
        let me = |u, i| Priority {
            urgency: u,
            incremental: i,
            explicit: true,
        };
        // More urgent first; never the other way.
        assert!(precedes(&entry(5, 1, false, true), 1, me(3, false)));
        assert!(!precedes(&entry(1, 3, false, true), 5, me(1, false)));
        // Same urgency: the earlier non-incremental one first.
        assert!(precedes(&entry(1, 3, false, true), 2, me(3, false)));
        assert!(!precedes(&entry(2, 3, false, true), 1, me(3, false)));
        // Incremental ones of one urgency share turns.
        assert!(!precedes(&entry(1, 3, true, true), 2, me(3, true)));
        assert!(!precedes(&entry(1, 3, false, true), 2, me(3, true)));
        // A response whose request said nothing holds nobody back.
        assert!(!precedes(&entry(1, 0, false, false), 2, me(7, false)));
        // Nor does one hold itself.
        assert!(!precedes(&entry(2, 0, false, true), 2, me(0, false)));
    }
}
