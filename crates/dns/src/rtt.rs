//! What the resolver has measured of each name server: a smoothed
//! round-trip time per address (what Unbound calls its infrastructure
//! cache). The iteration asks the fastest known server of a zone first and
//! waits for it about as long as it usually takes, not a fixed seconds.
//! Bounded, and pure: the caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A measurement older than this is forgotten (Unbound's
/// `infra-host-ttl` default): servers move and networks heal.
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// What an unmeasured server is assumed to take when choosing between
/// servers: worse than any healthy measured one, so a known fast server
/// is asked first (Unbound uses 376 ms for the same purpose).
pub const UNKNOWN: Duration = Duration::from_millis(376);
/// The shortest wait for an answer, however fast the server was: a busy
/// machine can take a few hundred milliseconds to schedule a reply.
const MIN_WAIT: Duration = Duration::from_millis(300);
/// A server that keeps timing out is not pushed back further than this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
struct Entry {
    srtt: Duration,
    updated: Instant,
}

/// Smoothed RTTs by server address.
#[derive(Debug)]
pub struct Rtt {
    by_server: HashMap<IpAddr, Entry>,
    cap: usize,
}

impl Default for Rtt {
    fn default() -> Self {
        Rtt::new(10_000)
    }
}

impl Rtt {
    pub fn new(cap: usize) -> Self {
        Rtt {
            by_server: HashMap::new(),
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.by_server.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_server.is_empty()
    }

    /// The smoothed RTT of `server`, if measured lately.
    pub fn srtt(&self, server: IpAddr, now: Instant) -> Option<Duration> {
        self.by_server
            .get(&server)
            .filter(|e| now.saturating_duration_since(e.updated) < FORGET_AFTER)
            .map(|e| e.srtt)
    }

    /// How long to wait for `server`: four smoothed RTTs, at least
    /// [`MIN_WAIT`], at most `max` (also the wait for an unknown server).
    pub fn wait_for(&self, server: IpAddr, max: Duration, now: Instant) -> Duration {
        match self.srtt(server, now) {
            Some(srtt) => (srtt * 4).clamp(MIN_WAIT.min(max), max),
            None => max,
        }
    }

    /// A reply came after `rtt`: the estimate moves an eighth of the way
    /// (TCP's smoothing, RFC 6298).
    pub fn sample(&mut self, server: IpAddr, rtt: Duration, now: Instant) {
        let srtt = match self.srtt(server, now) {
            Some(old) => old * 7 / 8 + rtt / 8,
            None => rtt,
        };
        self.put(server, srtt, now);
    }

    /// No reply within `waited`: the server now counts as at least that
    /// slow, and twice its old estimate (exponential back-off).
    pub fn timed_out(&mut self, server: IpAddr, waited: Duration, now: Instant) {
        let old = self.srtt(server, now).unwrap_or(Duration::ZERO);
        self.put(server, (old * 2).max(waited).min(MAX_BACKOFF), now);
    }

    fn put(&mut self, server: IpAddr, srtt: Duration, now: Instant) {
        if self.by_server.len() >= self.cap && !self.by_server.contains_key(&server) {
            self.by_server
                .retain(|_, e| now.saturating_duration_since(e.updated) < FORGET_AFTER);
            if self.by_server.len() >= self.cap {
                // Still full of live entries: the least recently heard goes.
                let oldest = self.by_server.iter().min_by_key(|(_, e)| e.updated);
                if let Some((&ip, _)) = oldest {
                    self.by_server.remove(&ip);
                }
            }
        }
        self.by_server.insert(server, Entry { srtt, updated: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn samples_are_smoothed_and_timeouts_back_off() {
        let mut r = Rtt::default();
        let t0 = Instant::now();
        assert_eq!(r.srtt(ip(1), t0), None);
        assert_eq!(r.wait_for(ip(1), ms(2000), t0), ms(2000));
        r.sample(ip(1), ms(80), t0);
        assert_eq!(r.srtt(ip(1), t0), Some(ms(80)));
        r.sample(ip(1), ms(160), t0);
        assert_eq!(r.srtt(ip(1), t0), Some(ms(90)));
        assert_eq!(r.wait_for(ip(1), ms(2000), t0), ms(360));
        r.timed_out(ip(1), ms(360), t0);
        assert_eq!(r.srtt(ip(1), t0), Some(ms(360)));
        r.timed_out(ip(1), ms(1440), t0);
        assert_eq!(r.srtt(ip(1), t0), Some(ms(1440)));
        // A fast loopback server still gets the minimum wait.
        r.sample(ip(2), Duration::from_micros(200), t0);
        assert_eq!(r.wait_for(ip(2), ms(2000), t0), MIN_WAIT);
        assert_eq!(r.srtt(ip(2), t0 + FORGET_AFTER), None, "forgotten");
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_least_recently_heard() {
        let mut r = Rtt::new(3);
        let t0 = Instant::now();
        for i in 1..=5u8 {
            r.sample(ip(i), ms(1), t0 + Duration::from_secs(u64::from(i)));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.srtt(ip(1), t0 + ms(5000)), None);
        assert!(r.srtt(ip(5), t0 + ms(5000)).is_some());
    }
}
