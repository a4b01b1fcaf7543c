//! Error control by retransmission (C19): Stop-and-Wait, Go-Back-N and
//! Selective Repeat over one link, with cumulative or individual ACKs,
//! optional NAKs, timeouts, the receiver's reorder buffer, and a mode that
//! adapts the frame size to the error rate. Deterministic for a seed.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt;
use std::str::FromStr;

use crate::rng::Rng;
use crate::time::{SEC, Time, secs};

/// The retransmission scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArqMode {
    StopAndWait,
    GoBackN,
    SelectiveRepeat,
}

impl FromStr for ArqMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sw" | "stop-and-wait" => Ok(ArqMode::StopAndWait),
            "gbn" | "go-back-n" => Ok(ArqMode::GoBackN),
            "sr" | "selective-repeat" => Ok(ArqMode::SelectiveRepeat),
            other => Err(format!("unknown ARQ mode {other:?} (sw, gbn, sr)")),
        }
    }
}

impl fmt::Display for ArqMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArqMode::StopAndWait => "stop-and-wait",
            ArqMode::GoBackN => "go-back-n",
            ArqMode::SelectiveRepeat => "selective-repeat",
        })
    }
}

/// Settings of one ARQ run.
#[derive(Clone, Debug)]
pub struct ArqConfig {
    pub mode: ArqMode,
    /// Sender window in frames (1 for stop-and-wait).
    pub window: u32,
    /// Frame size in bits, header included.
    pub frame_bits: u64,
    /// Header bits per frame (overhead, for goodput).
    pub header_bits: u64,
    pub rate_bps: u64,
    /// One-way propagation delay.
    pub delay: Time,
    /// Probability that a data frame is lost; ignored when `ber` > 0.
    pub loss: f64,
    /// Bit error rate: a frame of n bits is lost with 1 - (1 - ber)^n.
    pub ber: f64,
    /// Probability that an ACK or NAK is lost.
    pub ack_loss: f64,
    /// The receiver sends a NAK for the first frame missing in a gap.
    pub nak: bool,
    /// Added to the round trip for the retransmission timer (real timers
    /// keep a margin; the textbook formulas assume none).
    pub timer_margin: Time,
    /// Adapt the frame size: halve it after a loss, grow it after a run of
    /// successes (between `min_frame_bits` and `frame_bits`).
    pub adaptive: bool,
    pub min_frame_bits: u64,
    /// Payload bits to deliver.
    pub payload_bits: u64,
    pub seed: u64,
    /// Keep a line per event, up to this many.
    pub max_log: usize,
}

impl Default for ArqConfig {
    fn default() -> Self {
        ArqConfig {
            mode: ArqMode::GoBackN,
            window: 7,
            frame_bits: 8_000,
            header_bits: 0,
            rate_bps: 1_000_000,
            delay: 10_000_000,
            loss: 0.0,
            ber: 0.0,
            ack_loss: 0.0,
            nak: false,
            timer_margin: 0,
            adaptive: false,
            min_frame_bits: 1_000,
            payload_bits: 8_000 * 10_000,
            seed: 1,
            max_log: 0,
        }
    }
}

impl ArqConfig {
    /// `a`: propagation delay over one frame's transmission time.
    pub fn a(&self) -> f64 {
        self.delay as f64 / (self.frame_bits as f64 * SEC as f64 / self.rate_bps as f64)
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArqResult {
    pub frames_delivered: u64,
    pub transmissions: u64,
    pub retransmissions: u64,
    pub timeouts: u64,
    pub naks: u64,
    /// Frames the receiver threw away (out of order under Go-Back-N).
    pub discarded: u64,
    pub max_reorder_buffer: usize,
    pub elapsed: Time,
    /// Time the link spent on first copies of frames, over the elapsed time.
    pub efficiency: f64,
    /// Payload bits per second delivered.
    pub goodput_bps: f64,
    /// The frame log (`max_log` lines at most), a typed event per line.
    pub log: Vec<ArqLine>,
}

/// One event of an ARQ run.
#[derive(Clone, Debug, PartialEq)]
pub enum ArqEvent {
    /// A frame put on the link, and whether the link lost it.
    Send { seq: u64, bits: u64, lost: bool },
    /// The receiver asked for a frame again (negative acknowledgement).
    Nak { seq: u64 },
    /// The sender's timer for a frame ran out.
    Timeout { seq: u64 },
}

/// One line of the ARQ log.
#[derive(Clone, Debug, PartialEq)]
pub struct ArqLine {
    pub at: Time,
    pub event: ArqEvent,
}

impl std::fmt::Display for ArqLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>10.6} ", secs(self.at))?;
        match self.event {
            ArqEvent::Send { seq, bits, lost } => {
                let lost = if lost { " - LOST" } else { "" };
                write!(f, "send frame {seq} ({bits} bits){lost}")
            }
            ArqEvent::Nak { seq } => write!(f, "NAK {seq}"),
            ArqEvent::Timeout { seq } => write!(f, "timeout of frame {seq}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// A data frame reaches the receiver (seq, frame bits).
    Frame(u64, u64),
    /// A cumulative ACK (next expected) or an individual ACK (the seq).
    Ack(u64),
    Nak(u64),
    /// The timer of a frame (seq, generation).
    Timeout(u64, u64),
    /// The transmitter is free again.
    TxFree,
}

struct Arq<'a> {
    cfg: &'a ArqConfig,
    rng: Rng,
    heap: BinaryHeap<Reverse<(Time, u8, u64, Ev)>>,
    order: u64,
    now: Time,
    // sender
    base: u64,
    next: u64,
    total: u64,
    busy: bool,
    generation: Vec<u64>,
    acked: Vec<bool>,
    frame_bits: Vec<u64>,
    sent: Vec<u32>,
    resend: BTreeSet<u64>,
    cur_bits: u64,
    streak: u32,
    // receiver
    expected: u64,
    buffer: BTreeSet<u64>,
    nak_sent_for: Option<u64>,
    res: ArqResult,
    payload_done: u64,
}

/// Runs one ARQ experiment.
pub fn run_arq(cfg: &ArqConfig) -> ArqResult {
    let payload = cfg.frame_bits.saturating_sub(cfg.header_bits).max(1);
    let mut a = Arq {
        cfg,
        rng: Rng::new(cfg.seed),
        heap: BinaryHeap::new(),
        order: 0,
        now: 0,
        base: 0,
        next: 0,
        total: cfg.payload_bits.div_ceil(payload),
        busy: false,
        generation: Vec::new(),
        acked: Vec::new(),
        frame_bits: Vec::new(),
        sent: Vec::new(),
        resend: BTreeSet::new(),
        cur_bits: cfg.frame_bits,
        streak: 0,
        expected: 0,
        buffer: BTreeSet::new(),
        nak_sent_for: None,
        res: ArqResult::default(),
        payload_done: 0,
    };
    a.pump();
    while let Some(Reverse((t, _, _, ev))) = a.heap.pop() {
        a.now = t;
        match ev {
            Ev::Frame(seq, bits) => a.on_frame(seq, bits),
            Ev::Ack(n) => a.on_ack(n),
            Ev::Nak(n) => a.on_nak(n),
            Ev::Timeout(seq, g) => a.on_timeout(seq, g),
            Ev::TxFree => {
                a.busy = false;
                a.pump();
            }
        }
        if a.payload_done >= cfg.payload_bits || a.now > 10_000 * SEC {
            break;
        }
    }
    a.finish()
}

impl Arq<'_> {
    /// Queues an event. At equal times, arrivals come first, then timers,
    /// then the transmitter: an ACK arriving exactly when the timer expires
    /// wins, and a timeout can send the next frame as soon as the wire is free.
    fn at(&mut self, t: Time, ev: Ev) {
        self.order += 1;
        let rank = match ev {
            Ev::Frame(..) | Ev::Ack(_) | Ev::Nak(_) => 0,
            Ev::Timeout(..) => 1,
            Ev::TxFree => 2,
        };
        self.heap.push(Reverse((t, rank, self.order, ev)));
    }

    fn log(&mut self, event: ArqEvent) {
        if self.res.log.len() < self.cfg.max_log {
            self.res.log.push(ArqLine {
                at: self.now,
                event,
            });
        }
    }

    fn window(&self) -> u64 {
        match self.cfg.mode {
            ArqMode::StopAndWait => 1,
            _ => u64::from(self.cfg.window.max(1)),
        }
    }

    fn tx_time(&self, bits: u64) -> Time {
        (bits * SEC).div_ceil(self.cfg.rate_bps.max(1))
    }

    /// A timer covering the frame's own transmission and one round trip.
    fn timeout(&self, bits: u64) -> Time {
        self.tx_time(bits) + 2 * self.cfg.delay + self.cfg.timer_margin
    }

    fn ensure(&mut self, seq: u64) {
        while self.acked.len() as u64 <= seq {
            self.acked.push(false);
            self.generation.push(0);
            self.frame_bits.push(self.cur_bits);
            self.sent.push(0);
        }
    }

    /// Sends the next frame if the transmitter is idle and the window allows.
    fn pump(&mut self) {
        if self.busy {
            return;
        }
        let seq = if let Some(&s) = self.resend.iter().next() {
            self.resend.remove(&s);
            if self.acked.get(s as usize).copied().unwrap_or(true) {
                return self.pump();
            }
            s
        } else if self.next < self.base + self.window() && self.next < self.total {
            self.next += 1;
            self.next - 1
        } else {
            return;
        };
        self.ensure(seq);
        let bits = self.frame_bits[seq as usize];
        self.res.transmissions += 1;
        if self.sent[seq as usize] > 0 {
            self.res.retransmissions += 1;
        }
        self.sent[seq as usize] += 1;
        self.generation[seq as usize] += 1;
        let g = self.generation[seq as usize];
        let tx = self.tx_time(bits);
        self.busy = true;
        self.at(self.now + tx, Ev::TxFree);
        let p = if self.cfg.ber > 0.0 {
            1.0 - (1.0 - self.cfg.ber).powf(bits as f64)
        } else {
            self.cfg.loss
        };
        let lost = self.rng.chance(p);
        self.log(ArqEvent::Send { seq, bits, lost });
        if !lost {
            self.at(self.now + tx + self.cfg.delay, Ev::Frame(seq, bits));
        }
        let timeout = self.timeout(bits);
        self.at(self.now + timeout, Ev::Timeout(seq, g));
        if self.cfg.adaptive {
            self.adapt(lost);
        }
    }

    /// Adaptive frame size: the sender learns of losses late, but for the
    /// model it reacts to the fate of each frame as the link reports it.
    fn adapt(&mut self, lost: bool) {
        if lost {
            self.cur_bits = (self.cur_bits / 2).max(self.cfg.min_frame_bits);
            self.streak = 0;
        } else {
            self.streak += 1;
            if self.streak >= 8 {
                self.cur_bits = (self.cur_bits + self.cur_bits / 4).min(self.cfg.frame_bits);
                self.streak = 0;
            }
        }
    }

    fn reply(&mut self, ev: Ev) {
        if !self.rng.chance(self.cfg.ack_loss) {
            let t = self.now + self.cfg.delay;
            self.at(t, ev);
        }
    }

    fn deliver(&mut self, bits: u64) {
        self.res.frames_delivered += 1;
        self.payload_done += bits.saturating_sub(self.cfg.header_bits);
    }

    fn on_frame(&mut self, seq: u64, bits: u64) {
        match self.cfg.mode {
            ArqMode::StopAndWait | ArqMode::GoBackN => {
                if seq == self.expected {
                    self.deliver(bits);
                    self.expected += 1;
                    self.nak_sent_for = None;
                } else if seq > self.expected {
                    self.res.discarded += 1;
                    if self.cfg.nak && self.nak_sent_for != Some(self.expected) {
                        self.nak_sent_for = Some(self.expected);
                        self.res.naks += 1;
                        let e = self.expected;
                        self.reply(Ev::Nak(e));
                    }
                }
                let e = self.expected;
                self.reply(Ev::Ack(e));
            }
            ArqMode::SelectiveRepeat => {
                if seq >= self.expected && !self.buffer.contains(&seq) {
                    if seq == self.expected {
                        self.deliver(bits);
                        self.expected += 1;
                        while self.buffer.remove(&self.expected) {
                            let b = self
                                .frame_bits
                                .get(self.expected as usize)
                                .copied()
                                .unwrap_or(bits);
                            self.deliver(b);
                            self.expected += 1;
                        }
                    } else {
                        self.buffer.insert(seq);
                        self.res.max_reorder_buffer =
                            self.res.max_reorder_buffer.max(self.buffer.len());
                        if self.cfg.nak && self.nak_sent_for != Some(self.expected) {
                            self.nak_sent_for = Some(self.expected);
                            self.res.naks += 1;
                            let e = self.expected;
                            self.reply(Ev::Nak(e));
                        }
                    }
                }
                // Individual ACK of this frame.
                self.reply(Ev::Ack(seq));
            }
        }
    }

    fn on_ack(&mut self, n: u64) {
        match self.cfg.mode {
            ArqMode::StopAndWait | ArqMode::GoBackN => {
                // Cumulative: everything below n arrived.
                while self.base < n {
                    self.ensure(self.base);
                    self.acked[self.base as usize] = true;
                    self.base += 1;
                }
            }
            ArqMode::SelectiveRepeat => {
                self.ensure(n);
                self.acked[n as usize] = true;
                while (self.base as usize) < self.acked.len() && self.acked[self.base as usize] {
                    self.base += 1;
                }
            }
        }
        self.pump();
    }

    fn on_nak(&mut self, n: u64) {
        if n < self.base || self.acked.get(n as usize).copied().unwrap_or(false) {
            return;
        }
        self.log(ArqEvent::Nak { seq: n });
        self.go_back(n);
    }

    fn go_back(&mut self, n: u64) {
        match self.cfg.mode {
            ArqMode::SelectiveRepeat => {
                self.resend.insert(n);
            }
            _ => {
                // Everything from n on is sent again.
                self.next = n;
                for s in n..self.generation.len() as u64 {
                    self.generation[s as usize] += 1; // cancels their timers
                }
            }
        }
        self.pump();
    }

    fn on_timeout(&mut self, seq: u64, g: u64) {
        let current = self.generation.get(seq as usize).copied() == Some(g);
        if !current || self.acked.get(seq as usize).copied().unwrap_or(true) || seq < self.base {
            return;
        }
        self.res.timeouts += 1;
        self.log(ArqEvent::Timeout { seq });
        self.go_back(seq);
    }

    fn finish(mut self) -> ArqResult {
        self.res.elapsed = self.now;
        let t = self.now.max(1) as f64;
        // Link time spent on one copy of each delivered frame.
        let useful: f64 = self
            .frame_bits
            .iter()
            .take(self.res.frames_delivered as usize)
            .map(|b| self.tx_time(*b) as f64)
            .sum();
        self.res.efficiency = useful / t;
        self.res.goodput_bps = self.payload_done as f64 * SEC as f64 / t;
        self.res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{
        go_back_n_efficiency, selective_repeat_efficiency, stop_and_wait_efficiency,
    };

    fn cfg(mode: ArqMode, a: f64, p: f64, window: u32) -> ArqConfig {
        // 1 Mbit/s, 8000-bit frames: 8 ms each; delay = a * 8 ms.
        ArqConfig {
            mode,
            window,
            loss: p,
            delay: (a * 8_000_000.0) as Time,
            payload_bits: 8_000 * 20_000,
            ..Default::default()
        }
    }

    #[test]
    fn efficiencies_follow_the_textbook_formulas_across_a_loss_sweep() {
        let mut report = String::new();
        for a in [0.5f64, 3.0] {
            let w_full = (2.0 * (1.0 + 2.0 * a)).ceil() as u32 + 1;
            for p in [0.0, 0.01, 0.05, 0.1, 0.2] {
                let cases = [
                    (ArqMode::StopAndWait, 1, stop_and_wait_efficiency(a, p)),
                    (
                        ArqMode::GoBackN,
                        w_full,
                        go_back_n_efficiency(a, p, f64::from(w_full)),
                    ),
                    (
                        ArqMode::SelectiveRepeat,
                        w_full,
                        selective_repeat_efficiency(a, p, f64::from(w_full)),
                    ),
                ];
                for (mode, w, theory) in cases {
                    let r = run_arq(&cfg(mode, a, p, w));
                    let ratio = r.efficiency / theory;
                    report.push_str(&format!(
                        "{mode} a={a} p={p} W={w}: {:.3} vs {theory:.3} ({ratio:.3})\n",
                        r.efficiency
                    ));
                    assert!((0.9..=1.1).contains(&ratio), "{report}");
                }
            }
        }
        println!("{report}");
    }

    #[test]
    fn selective_repeat_buffers_out_of_order_frames_and_go_back_n_discards_them() {
        let sr = run_arq(&cfg(ArqMode::SelectiveRepeat, 3.0, 0.1, 15));
        let gbn = run_arq(&cfg(ArqMode::GoBackN, 3.0, 0.1, 15));
        assert!(sr.max_reorder_buffer > 0 && sr.discarded == 0);
        assert!(gbn.discarded > 0 && gbn.max_reorder_buffer == 0);
        // Go-Back-N sends many more copies for the same data.
        assert!(
            gbn.retransmissions > 2 * sr.retransmissions,
            "{} vs {}",
            gbn.retransmissions,
            sr.retransmissions
        );
    }

    #[test]
    fn naks_recover_faster_than_timeouts() {
        // With a timer 40 ms longer than the round trip, waiting costs.
        let mut slow = cfg(ArqMode::GoBackN, 3.0, 0.05, 15);
        slow.timer_margin = 40_000_000;
        let with = run_arq(&ArqConfig {
            nak: true,
            ..slow.clone()
        });
        let without = run_arq(&slow);
        assert!(with.naks > 0 && without.naks == 0);
        assert!(
            with.timeouts < without.timeouts / 4,
            "{} {}",
            with.timeouts,
            without.timeouts
        );
        assert!(
            with.efficiency > without.efficiency * 1.1,
            "{} {}",
            with.efficiency,
            without.efficiency
        );
    }

    #[test]
    fn adaptive_frames_beat_large_fixed_frames_on_a_noisy_link() {
        let base = ArqConfig {
            mode: ArqMode::SelectiveRepeat,
            window: 64,
            frame_bits: 16_000,
            header_bits: 400,
            ber: 1e-4,
            payload_bits: 4_000_000,
            ..Default::default()
        };
        let fixed = run_arq(&base);
        let adaptive = run_arq(&ArqConfig {
            adaptive: true,
            ..base
        });
        assert!(
            adaptive.goodput_bps > 1.5 * fixed.goodput_bps,
            "{} vs {}",
            adaptive.goodput_bps,
            fixed.goodput_bps
        );
    }
}
