//! Backends with identity and state (C43): a name, an address, a weight,
//! the requests in flight (what least-connections and power-of-two-choices
//! read), totals, and health. Health moves by the rule in
//! [`Health::observe`]: `fall` failures in a row take a backend down,
//! `rise` successes in a row bring it back, like HAProxy's checks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// One upstream server.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
    /// `name (addr)`, made once.
    label: String,
    /// The address as a URI authority, made once.
    pub(crate) authority: http::uri::Authority,
    up: AtomicBool,
    in_flight: AtomicU32,
    served: AtomicU64,
    failed: AtomicU64,
    health: Mutex<Health>,
}

impl Backend {
    pub fn new(name: &str, addr: SocketAddr, weight: u32) -> Arc<Backend> {
        Arc::new(Backend {
            name: name.to_string(),
            addr,
            weight: weight.max(1),
            label: format!("{name} ({addr})"),
            authority: addr
                .to_string()
                .parse()
                .expect("a socket address is a valid authority"),
            up: AtomicBool::new(true),
            in_flight: AtomicU32::new(0),
            served: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            health: Mutex::new(Health::default()),
        })
    }

    /// `name (addr)`, as traces show a backend.
    pub fn label(&self) -> String {
        self.label.clone()
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one request against this backend until the guard drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Records the outcome of a check or of a real request; returns the
    /// change of state it caused, if any.
    pub fn observe(&self, outcome: Outcome, rule: Rule, now: Instant) -> Option<Change> {
        match &outcome {
            Outcome::Ok => self.served.fetch_add(1, Ordering::Relaxed),
            Outcome::Failed(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let change = h.observe(outcome, rule, now);
        self.up.store(h.up, Ordering::Relaxed);
        change
    }

    /// Like [`observe`](Self::observe) for a real request: failures count
    /// toward `fall`, but a success only resets the failure streak (the
    /// way back up is the active check's `rise`, or the retry timer).
    pub fn observe_passive(&self, outcome: Outcome, rule: Rule, now: Instant) -> Option<Change> {
        match outcome {
            Outcome::Ok => {
                self.served.fetch_add(1, Ordering::Relaxed);
                let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
                if h.up {
                    h.failures = 0;
                }
                None
            }
            failed => self.observe(failed, rule, now),
        }
    }

    /// Brings a backend taken down by passive failures back on probation
    /// after `after` when no active check would (nginx's fail_timeout).
    pub fn revive_after(&self, after: Duration, now: Instant) -> Option<Change> {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if h.up || now.duration_since(h.since) < after {
            return None;
        }
        h.up = true;
        h.failures = 0;
        h.successes = 0;
        h.since = now;
        h.reason = format!("retried after {after:?} down");
        self.up.store(true, Ordering::Relaxed);
        Some(Change {
            up: true,
            reason: h.reason.clone(),
        })
    }

    /// What the status page shows.
    pub fn status(&self, now: Instant) -> BackendStatus {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        BackendStatus {
            name: self.name.clone(),
            addr: self.addr.to_string(),
            weight: self.weight,
            health: if h.up { "up" } else { "down" },
            for_secs: now.duration_since(h.since).as_secs(),
            last_reason: h.reason.clone(),
            in_flight: self.in_flight(),
            served: self.served.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// A request in flight on a backend; dropping it counts the request done.
pub struct InFlight(Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One backend on the status page.
#[derive(Clone, Debug, Serialize)]
pub struct BackendStatus {
    pub name: String,
    pub addr: String,
    pub weight: u32,
    pub health: &'static str,
    /// Seconds in the current health state.
    pub for_secs: u64,
    /// Why the last state change happened ("" before any).
    pub last_reason: String,
    pub in_flight: u32,
    /// Requests and checks that succeeded / failed.
    pub served: u64,
    pub failed: u64,
}

/// The result of one check or request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(String),
}

/// How many results in a row change the state.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub rise: u32,
    pub fall: u32,
}

/// A state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub up: bool,
    pub reason: String,
}

/// The health state machine of one backend, apart from any clock or
/// socket so it can be tested step by step.
#[derive(Clone, Debug)]
pub struct Health {
    pub up: bool,
    pub successes: u32,
    pub failures: u32,
    pub since: Instant,
    pub reason: String,
}

impl Default for Health {
    fn default() -> Self {
        // A backend starts up (nginx and HAProxy do the same): traffic
        // flows at once, and the first failed checks take it out.
        Health {
            up: true,
            successes: 0,
            failures: 0,
            since: Instant::now(),
            reason: String::new(),
        }
    }
}

impl Health {
    pub fn observe(&mut self, outcome: Outcome, rule: Rule, now: Instant) -> Option<Change> {
        match outcome {
            Outcome::Ok => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if !self.up && self.successes >= rule.rise.max(1) {
                    self.up = true;
                    self.since = now;
                    self.reason = format!("{} checks in a row passed", self.successes);
                    return Some(Change {
                        up: true,
                        reason: self.reason.clone(),
                    });
                }
            }
            Outcome::Failed(why) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.up && self.failures >= rule.fall.max(1) {
                    self.up = false;
                    self.since = now;
                    self.reason = format!("{} failures in a row, last: {why}", self.failures);
                    return Some(Change {
                        up: false,
                        reason: self.reason.clone(),
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_failures_take_a_backend_down_and_rise_successes_bring_it_back() {
        let rule = Rule { rise: 2, fall: 3 };
        let now = Instant::now();
        let mut h = Health::default();
        let fail = || Outcome::Failed("connection refused".into());
        assert_eq!(h.observe(fail(), rule, now), None);
        assert_eq!(h.observe(fail(), rule, now), None);
        // A success in between resets the streak.
        assert_eq!(h.observe(Outcome::Ok, rule, now), None);
        assert_eq!(h.observe(fail(), rule, now), None);
        assert_eq!(h.observe(fail(), rule, now), None);
        let down = h.observe(fail(), rule, now).unwrap();
        assert!(!down.up && down.reason.contains("3 failures") && down.reason.contains("refused"));
        assert_eq!(h.observe(Outcome::Ok, rule, now), None);
        let up = h.observe(Outcome::Ok, rule, now).unwrap();
        assert!(up.up);
        assert_eq!(h.observe(Outcome::Ok, rule, now), None);
    }

    #[test]
    fn passive_success_does_not_revive_and_the_timer_does() {
        let b = Backend::new("web1", "127.0.0.1:80".parse().unwrap(), 1);
        let rule = Rule { rise: 1, fall: 1 };
        let t0 = Instant::now();
        assert!(
            b.observe_passive(Outcome::Failed("x".into()), rule, t0)
                .is_some()
        );
        assert!(!b.is_up());
        assert!(b.observe_passive(Outcome::Ok, rule, t0).is_none());
        assert!(!b.is_up());
        assert!(b.revive_after(Duration::from_secs(10), t0).is_none());
        let back = b.revive_after(Duration::from_secs(10), t0 + Duration::from_secs(11));
        assert!(back.is_some_and(|c| c.up));
        assert!(b.is_up());
    }

    #[test]
    fn in_flight_counts_until_the_guard_drops() {
        let b = Backend::new("web1", "127.0.0.1:80".parse().unwrap(), 1);
        let g1 = b.enter();
        let g2 = b.enter();
        assert_eq!(b.in_flight(), 2);
        drop(g1);
        assert_eq!(b.in_flight(), 1);
        drop(g2);
        assert_eq!(b.in_flight(), 0);
    }
}
