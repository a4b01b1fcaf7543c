//! One accepted connection: its I/O watched for progress, its requests
//! counted, and the rules that close it (idle, stalled, stopping).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the watchdog of one connection knows: when bytes last moved and
/// how many requests are in flight.
pub(crate) struct ConnState {
    born: Instant,
    /// Milliseconds after `born` of the last read, write or request edge.
    last_ms: AtomicU64,
    in_flight: AtomicU32,
    /// Requests begun on the connection so far.
    requests: AtomicU64,
    /// Set while the connection is being taken out of hyper to wait for
    /// its next request: hyper's closing shutdown must then leave the
    /// socket open.
    parking: AtomicBool,
}

impl ConnState {
    pub(crate) fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            born: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            parking: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn begin_request(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    pub(crate) fn end_request(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    pub(crate) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn set_parking(&self, on: bool) {
        self.parking.store(on, Ordering::Relaxed);
    }

    /// How long nothing has moved on the connection.
    pub(crate) fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }
}

/// A connection's stream, wrapped in [`crate::watched::Watched`], notes
/// every read and write that moved bytes.
impl crate::watched::Watch for Arc<ConnState> {
    fn read(&mut self, _n: usize) {
        self.touch();
    }
    fn wrote(&mut self, _n: usize) {
        self.touch();
    }
    fn shut_down(&self) -> bool {
        !self.parking.load(Ordering::Relaxed)
    }
}

/// What the watchdog decides at a check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    /// Finish gently: close an idle HTTP/1.1 connection, GOAWAY on HTTP/2.
    Close,
    /// Drop the connection now.
    Abort,
}

/// The watchdog's rule, apart from the clock so it can be tested:
/// a connection with nothing in flight that stayed quiet for `idle` is
/// closed; one where nothing moved for `stall` even with a request in
/// flight (a client that stopped reading its response) is dropped; one
/// already closing that stays quiet for `idle` more is dropped.
pub(crate) fn verdict(
    busy: bool,
    quiet: Duration,
    closing: bool,
    idle: Duration,
    stall: Duration,
) -> Verdict {
    if quiet >= stall || (closing && quiet >= idle) {
        Verdict::Abort
    } else if !busy && quiet >= idle && !closing {
        Verdict::Close
    } else {
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn idle_connections_close_busy_ones_stay_and_stalled_ones_are_dropped() {
        let (idle, stall) = (15 * S, 60 * S);
        assert_eq!(verdict(false, 3 * S, false, idle, stall), Verdict::Keep);
        assert_eq!(verdict(false, 15 * S, false, idle, stall), Verdict::Close);
        assert_eq!(verdict(true, 30 * S, false, idle, stall), Verdict::Keep);
        assert_eq!(verdict(true, 60 * S, false, idle, stall), Verdict::Abort);
        assert_eq!(verdict(false, 15 * S, true, idle, stall), Verdict::Abort);
        assert_eq!(verdict(true, 2 * S, true, idle, stall), Verdict::Keep);
    }
}
