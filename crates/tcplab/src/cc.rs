//! Congestion control behind one trait (C18): a controller decides how the
//! window grows on ACKs and shrinks on loss; the sender runs the loss
//! recovery the controller asks for. Windows count segments.

use std::fmt;
use std::str::FromStr;

use crate::time::{SEC, Time};

/// The congestion window and slow-start threshold, in segments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub cwnd: f64,
    pub ssthresh: f64,
}

/// What the sender does after three duplicate ACKs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Tahoe: retransmit, then slow start from one segment.
    None,
    /// Reno (RFC 5681 §3.2): fast recovery, left at the first new ACK.
    Reno,
    /// NewReno (RFC 6582): fast recovery until everything outstanding at
    /// the loss is acknowledged; partial ACKs retransmit the next hole.
    NewReno,
}

/// A congestion-control algorithm.
pub trait Controller {
    fn name(&self) -> &'static str;
    fn recovery(&self) -> Recovery;
    /// An ACK for new data outside recovery; `acked` segments.
    fn on_ack(&mut self, w: &mut Window, acked: u64, now: Time, min_rtt: Time);
    /// Loss seen by three duplicate ACKs, with `flight` segments outstanding.
    fn on_loss(&mut self, w: &mut Window, flight: u64, now: Time);
    /// The retransmission timer fired (RFC 5681 §3.1, eq. 4): the window
    /// collapses to one segment whatever the algorithm.
    fn on_timeout(&mut self, w: &mut Window, flight: u64, _now: Time) {
        w.ssthresh = (flight as f64 / 2.0).max(2.0);
        w.cwnd = 1.0;
    }
}

/// The algorithms the lab knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CcKind {
    /// Plain AIMD: no slow start, +1 segment per RTT, halve on loss.
    Aimd,
    Tahoe,
    Reno,
    NewReno,
    /// CUBIC (RFC 9438) with NewReno-style recovery.
    Cubic,
}

impl CcKind {
    pub const ALL: [CcKind; 5] = [
        CcKind::Aimd,
        CcKind::Tahoe,
        CcKind::Reno,
        CcKind::NewReno,
        CcKind::Cubic,
    ];

    /// A fresh controller of this kind.
    pub fn build(self) -> Box<dyn Controller> {
        match self {
            CcKind::Aimd => Box::new(Aimd {
                name: "aimd",
                recovery: Recovery::NewReno,
                slow_start: false,
                tahoe: false,
            }),
            CcKind::Tahoe => Box::new(Aimd {
                name: "tahoe",
                recovery: Recovery::None,
                slow_start: true,
                tahoe: true,
            }),
            CcKind::Reno => Box::new(Aimd {
                name: "reno",
                recovery: Recovery::Reno,
                slow_start: true,
                tahoe: false,
            }),
            CcKind::NewReno => Box::new(Aimd {
                name: "newreno",
                recovery: Recovery::NewReno,
                slow_start: true,
                tahoe: false,
            }),
            CcKind::Cubic => Box::new(Cubic::default()),
        }
    }
}

impl fmt::Display for CcKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.build().name())
    }
}

impl FromStr for CcKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        CcKind::ALL
            .into_iter()
            .find(|k| k.to_string() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                format!("unknown congestion control {s:?} (aimd, tahoe, reno, newreno, cubic)")
            })
    }
}

/// The Reno family: slow start (+1 per ACK below ssthresh), congestion
/// avoidance (+1/cwnd per ACK, i.e. one segment per RTT), halve on loss.
/// Increments are per ACK, not per segment acknowledged (RFC 5681 §3.1),
/// which is why delayed ACKs slow the growth.
struct Aimd {
    name: &'static str,
    recovery: Recovery,
    slow_start: bool,
    tahoe: bool,
}

impl Controller for Aimd {
    fn name(&self) -> &'static str {
        self.name
    }
    fn recovery(&self) -> Recovery {
        self.recovery
    }
    fn on_ack(&mut self, w: &mut Window, _acked: u64, _now: Time, _rtt: Time) {
        if self.slow_start && w.cwnd < w.ssthresh {
            w.cwnd += 1.0;
        } else {
            w.cwnd += 1.0 / w.cwnd;
        }
    }
    fn on_loss(&mut self, w: &mut Window, flight: u64, _now: Time) {
        // RFC 5681 eq. 4: half the flight, at least two segments.
        w.ssthresh = (flight as f64 / 2.0).max(2.0);
        if self.tahoe {
            w.cwnd = 1.0;
        } else if !self.slow_start {
            w.cwnd = w.ssthresh;
        }
    }
}

/// CUBIC, RFC 9438.
#[derive(Debug)]
pub struct Cubic {
    w_max: f64,
    k: f64,
    epoch_start: Option<Time>,
    origin: f64,
    /// The Reno-friendly estimate (§4.3).
    w_est: f64,
}

impl Default for Cubic {
    fn default() -> Self {
        Cubic {
            w_max: 0.0,
            k: 0.0,
            epoch_start: None,
            origin: 0.0,
            w_est: 0.0,
        }
    }
}

/// §4.6: multiplicative decrease factor.
const BETA: f64 = 0.7;
/// §5: the constant C.
const C: f64 = 0.4;

impl Controller for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }
    fn recovery(&self) -> Recovery {
        Recovery::NewReno
    }
    fn on_ack(&mut self, w: &mut Window, acked: u64, now: Time, min_rtt: Time) {
        if w.cwnd < w.ssthresh {
            w.cwnd += 1.0;
            return;
        }
        let start = *self.epoch_start.get_or_insert_with(|| {
            // A new congestion-avoidance epoch (§4.2).
            if w.cwnd < self.w_max {
                self.k = ((self.w_max - w.cwnd) / C).cbrt();
                self.origin = self.w_max;
            } else {
                self.k = 0.0;
                self.origin = w.cwnd;
            }
            self.w_est = w.cwnd;
            now
        });
        let t = (now.saturating_sub(start) + min_rtt) as f64 / SEC as f64;
        let target = self.origin + C * (t - self.k).powi(3);
        // §4.3: Reno-friendly region, alpha = 3(1-beta)/(1+beta).
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        self.w_est += alpha * acked as f64 / w.cwnd;
        if target > w.cwnd {
            // §4.4: grow by (target - cwnd)/cwnd per ACK, capped at 1.5x per RTT.
            w.cwnd += ((target - w.cwnd) / w.cwnd).min(0.5);
        } else {
            w.cwnd += 0.01 / w.cwnd;
        }
        if self.w_est > w.cwnd {
            w.cwnd = self.w_est;
        }
    }
    fn on_loss(&mut self, w: &mut Window, _flight: u64, _now: Time) {
        self.epoch_start = None;
        // §4.7 fast convergence: release bandwidth sooner when W_max shrank.
        self.w_max = if w.cwnd < self.w_max {
            w.cwnd * (1.0 + BETA) / 2.0
        } else {
            w.cwnd
        };
        w.ssthresh = (w.cwnd * BETA).max(2.0);
    }
    fn on_timeout(&mut self, w: &mut Window, _flight: u64, _now: Time) {
        self.epoch_start = None;
        self.w_max = w.cwnd;
        w.ssthresh = (w.cwnd * BETA).max(2.0);
        w.cwnd = 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in CcKind::ALL {
            assert_eq!(k.to_string().parse::<CcKind>().unwrap(), k);
        }
        assert!("vegas".parse::<CcKind>().is_err());
    }

    #[test]
    fn reno_grows_one_segment_per_window_of_acks() {
        let mut c = CcKind::Reno.build();
        let mut w = Window {
            cwnd: 10.0,
            ssthresh: 5.0,
        };
        for _ in 0..10 {
            c.on_ack(&mut w, 1, 0, 0);
        }
        assert!((w.cwnd - 11.0).abs() < 0.05, "{w:?}");
    }

    #[test]
    fn cubic_returns_to_w_max_after_k_seconds() {
        let mut c = Cubic::default();
        let mut w = Window {
            cwnd: 100.0,
            ssthresh: 1e9,
        };
        w.ssthresh = 50.0;
        c.on_loss(&mut w, 100, 0);
        assert_eq!(w.ssthresh, 70.0);
        w.cwnd = w.ssthresh;
        // K = cbrt(100 * 0.3 / 0.4) = 4.217 s
        let mut now = 0;
        while now < 4_217 * crate::time::MS {
            c.on_ack(&mut w, 1, now, 0);
            now += crate::time::MS;
        }
        assert!((w.cwnd - 100.0).abs() < 3.0, "{}", w.cwnd);
    }
}
