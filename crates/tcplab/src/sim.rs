//! The bulk-transfer simulator: TCP senders and receivers on a dumbbell
//! (every flow through one bottleneck link, ACKs back over a reverse link),
//! driven by a discrete-event loop in virtual time with a seeded RNG.
//!
//! Sequence numbers count whole segments of `mss` payload bytes. The sender
//! implements slow start, congestion avoidance (through a [`Controller`]),
//! fast retransmit on three duplicate ACKs, Reno/NewReno fast recovery,
//! limited transmit (RFC 3042), the RFC 6298 retransmission timer with
//! backoff, and zero-window probing. The receiver acknowledges cumulatively,
//! delays ACKs (every second segment or 200 ms, RFC 5681 §4.2), answers
//! out-of-order segments at once with duplicate ACKs, echoes timestamps
//! (RFC 7323) and advertises the room left in its buffer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::cc::{CcKind, Controller, Recovery, Window};
use crate::link::{Fate, Link, LinkConfig};
use crate::rng::Rng;
use crate::sack::{Block, MAX_BLOCKS, ReceiverBlocks, Scoreboard};
use crate::segment_log::{LogLine, SegmentEvent};
use crate::time::{MS, SEC, Time, secs};

/// The longest wait between zero-window probes (Linux: TCP_RTO_MAX).
const PERSIST_MAX: Time = 120 * SEC;

/// One TCP flow.
#[derive(Clone, Debug)]
pub struct FlowConfig {
    pub cc: CcKind,
    pub start: Time,
    /// Bytes to send; `None` for a bulk flow that never ends.
    pub bytes: Option<u64>,
    /// Payload bytes per segment.
    pub mss: u32,
    /// Header bytes on the wire per segment (IP + TCP + timestamps = 52).
    pub header: u32,
    pub init_cwnd: u32,
    /// ACK every second segment, or after `delack_timeout`.
    pub delayed_ack: bool,
    pub delack_timeout: Time,
    /// Receive buffer in bytes (the largest window the receiver offers).
    pub rcv_buffer: u64,
    /// How fast the receiving application reads, bytes/s (0 = at once).
    pub app_read_bps: u64,
    /// The application stops reading during this interval.
    pub app_stall: Option<(Time, Time)>,
    pub min_rto: Time,
    pub limited_transmit: bool,
    /// Selective acknowledgments (RFC 2018) with SACK-based recovery
    /// (RFC 6675) instead of NewReno's one hole per round trip.
    pub sack: bool,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            cc: CcKind::NewReno,
            start: 0,
            bytes: None,
            mss: 1448,
            header: 52,
            init_cwnd: 10,
            delayed_ack: true,
            delack_timeout: 200 * MS,
            rcv_buffer: 64 << 20,
            app_read_bps: 0,
            app_stall: None,
            min_rto: SEC,
            limited_transmit: true,
            sack: false,
        }
    }
}

/// A whole experiment.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The bottleneck, sender side to receiver side.
    pub data: LinkConfig,
    /// The way back for ACKs.
    pub ack: LinkConfig,
    pub flows: Vec<FlowConfig>,
    pub duration: Time,
    pub seed: u64,
    /// Sampling period of the time series (0: none).
    pub sample_every: Time,
    /// Goodput is counted from this time on.
    pub measure_from: Time,
    /// Keep a line per segment (bounded by `max_log`).
    pub log_segments: bool,
    pub max_log: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            data: LinkConfig::default(),
            ack: LinkConfig::default(),
            flows: vec![FlowConfig::default()],
            duration: 10 * SEC,
            seed: 1,
            sample_every: 0,
            measure_from: 0,
            log_segments: false,
            max_log: 200_000,
        }
    }
}

impl Sample {
    /// The window a reader expects to see: `cwnd` without the
    /// fast-recovery inflation.
    pub fn window(&self) -> f64 {
        self.cwnd - self.inflation
    }
}

/// One point of a flow's time series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub time: Time,
    pub flow: usize,
    /// The congestion window the sender uses, inflation included.
    pub cwnd: f64,
    /// Of `cwnd`, the segments added by duplicate ACKs during fast
    /// recovery (RFC 5681 §3.2 step 4): a window lent to keep data moving
    /// while the hole is repaired, gone at the end of recovery. 0 outside.
    pub inflation: f64,
    pub ssthresh: f64,
    /// The receiver's advertised window, segments.
    pub rwnd: u64,
    /// Segments sent and not yet acknowledged.
    pub in_flight: u64,
    pub srtt: Time,
    pub rto: Time,
    /// Bytes delivered in order to the receiving application so far.
    pub delivered: u64,
}

/// What happened to one flow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowStats {
    pub segments_sent: u64,
    pub retransmits: u64,
    pub fast_retransmits: u64,
    pub timeouts: u64,
    pub dup_acks: u64,
    pub acks: u64,
    /// Payload bytes delivered in order at the receiver.
    pub delivered: u64,
    /// Delivered after `measure_from`, of segments that also arrived after
    /// it: a segment that crossed the link before the window and waited
    /// in the reorder buffer is not counted when a retransmission frees
    /// it, so the window's goodput stays within what the link could carry
    /// in the window.
    pub delivered_measured: u64,
    pub finished_at: Option<Time>,
    /// Most out-of-order segments the receiver held at once.
    pub max_reorder_buffer: usize,
    pub zero_window_probes: u64,
    /// Every reaction to a loss, in order.
    pub reactions: Vec<Reaction>,
}

/// How the sender reacted to a loss signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReactionKind {
    /// Three duplicate ACKs: fast retransmit (and fast recovery unless Tahoe).
    FastRetransmit,
    /// The retransmission timer expired.
    Timeout,
}

/// One loss reaction with the window before and after.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reaction {
    pub time: Time,
    pub kind: ReactionKind,
    pub cwnd_before: f64,
    pub cwnd_after: f64,
    pub ssthresh_after: f64,
}

/// The results of a run.
#[derive(Clone, Debug)]
pub struct SimResult {
    pub flows: Vec<FlowStats>,
    pub samples: Vec<Sample>,
    /// The segment log (`log_segments`), a typed event per line.
    pub log: Vec<LogLine>,
    /// Data segments that went through the simulator.
    pub segments: u64,
    pub events: u64,
    pub duration: Time,
    pub measure_from: Time,
    pub data_link: crate::link::LinkStats,
}

impl SimResult {
    /// Goodput of a flow in bits per second over the measured interval.
    pub fn goodput_bps(&self, flow: usize) -> f64 {
        let span = secs(self.duration.saturating_sub(self.measure_from));
        if span <= 0.0 {
            return 0.0;
        }
        self.flows[flow].delivered_measured as f64 * 8.0 / span
    }
}

#[derive(Clone, Copy, Debug)]
struct DataPkt {
    flow: u32,
    seq: u64,
    ts: Time,
    /// A zero-window probe (RFC 9293 §3.8.6.1): one byte past the closed
    /// window, which the receiver answers with an ACK carrying its window.
    probe: bool,
}

#[derive(Clone, Copy, Debug)]
struct AckPkt {
    flow: u32,
    ack: u64,
    rwnd: u64,
    ts_echo: Time,
    sack: [Block; MAX_BLOCKS],
    nsack: u8,
}

/// An arrival from a link that may reorder, ordered by (time, insertion).
#[derive(Clone, Copy, Debug)]
struct Late {
    at: Time,
    order: u64,
    ev: Ev,
}

impl PartialEq for Late {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Late {}
impl PartialOrd for Late {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Late {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Start,
    Rto,
    DelAck,
    Persist,
    WindowUpdate,
    Sample,
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Data(DataPkt),
    Ack(AckPkt),
    Timer(Timer, u32),
}

struct Sender {
    cfg: FlowConfig,
    cc: Box<dyn Controller>,
    recovery: Recovery,
    w: Window,
    limit: u64,
    snd_una: u64,
    snd_nxt: u64,
    snd_max: u64,
    dupacks: u32,
    /// In fast recovery until this segment is acknowledged.
    recover: Option<u64>,
    /// Highest segment outstanding at the last loss reaction (RFC 6582 §3.2
    /// step 1: don't react twice to one window of losses).
    last_recover: u64,
    rwnd: u64,
    srtt: Option<f64>,
    rttvar: f64,
    min_rtt: Time,
    rto: Time,
    rto_deadline: Option<Time>,
    rto_scheduled: bool,
    board: Scoreboard,
    persist_scheduled: bool,
    /// Probes sent since the window was last seen open: the persist timer
    /// doubles with each (RFC 1122 §4.2.2.17), up to [`PERSIST_MAX`].
    persist_backoff: u32,
    started: bool,
    stats: FlowStats,
}

impl Sender {
    /// The reaction to a loss found by duplicate ACKs or SACK: the controller
    /// sets ssthresh from `pipe`; with fast recovery cwnd becomes ssthresh +
    /// `inflation` (Tahoe's controller has already set it to 1).
    fn react_to_loss(&mut self, pipe: u64, inflation: f64, now: Time) {
        self.stats.fast_retransmits += 1;
        self.last_recover = self.snd_max - 1;
        let before = self.w.cwnd;
        self.cc.on_loss(&mut self.w, pipe, now);
        if self.recovery != Recovery::None {
            self.w.cwnd = self.w.ssthresh + inflation;
        }
        self.stats.reactions.push(Reaction {
            time: now,
            kind: ReactionKind::FastRetransmit,
            cwnd_before: before,
            cwnd_after: self.w.cwnd,
            ssthresh_after: self.w.ssthresh,
        });
    }
}

struct Receiver {
    rcv_nxt: u64,
    /// Out-of-order segments held, bit i = segment rcv_nxt + 1 + i.
    ooo: VecDeque<bool>,
    ooo_count: usize,
    unacked: u32,
    ts_recent: Time,
    delack_deadline: Option<Time>,
    delack_scheduled: bool,
    /// Bytes in the buffer not yet read by the application.
    buffered: f64,
    last_drain: Time,
    buffer_segs: u64,
    /// The last ACK offered a zero window; send an update when it opens.
    zero_advertised: bool,
    blocks: ReceiverBlocks,
    /// Segments held out of order when the measured window began (they
    /// arrived before it), not yet handed over.
    held_before_window: Option<u64>,
}

/// Runs one experiment to completion.
pub fn run(cfg: &SimConfig) -> SimResult {
    Sim::new(cfg).run(&mut |_| {})
}

/// Runs one experiment, calling `progress` with the simulated fraction done
/// (0..=1) about a hundred times along the way.
pub fn run_with_progress(cfg: &SimConfig, progress: &mut dyn FnMut(f64)) -> SimResult {
    Sim::new(cfg).run(progress)
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    rng: Rng,
    now: Time,
    data_link: Link,
    ack_link: Link,
    /// Arrivals of FIFO links: already in time order, no heap needed.
    data_fifo: VecDeque<(Time, DataPkt)>,
    ack_fifo: VecDeque<(Time, AckPkt)>,
    heap: BinaryHeap<Reverse<(Time, u64, Timer, u32)>>,
    /// Out-of-order arrivals (links with jitter or reordering).
    late: BinaryHeap<Reverse<Late>>,
    seq: u64,
    senders: Vec<Sender>,
    receivers: Vec<Receiver>,
    samples: Vec<Sample>,
    log: Vec<LogLine>,
    segments: u64,
    events: u64,
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a SimConfig) -> Self {
        let senders = cfg
            .flows
            .iter()
            .map(|f| {
                let cc = f.cc.build();
                Sender {
                    recovery: cc.recovery(),
                    cc,
                    w: Window {
                        cwnd: f64::from(f.init_cwnd.max(1)),
                        ssthresh: f64::INFINITY,
                    },
                    limit: f.bytes.map_or(u64::MAX, |b| b.div_ceil(u64::from(f.mss))),
                    snd_una: 0,
                    snd_nxt: 0,
                    snd_max: 0,
                    dupacks: 0,
                    recover: None,
                    last_recover: 0,
                    rwnd: f.rcv_buffer / u64::from(f.mss),
                    srtt: None,
                    rttvar: 0.0,
                    min_rtt: Time::MAX,
                    rto: SEC.max(f.min_rto),
                    rto_deadline: None,
                    rto_scheduled: false,
                    board: Scoreboard::default(),
                    persist_scheduled: false,
                    persist_backoff: 0,
                    started: false,
                    stats: FlowStats::default(),
                    cfg: f.clone(),
                }
            })
            .collect();
        let receivers = cfg
            .flows
            .iter()
            .map(|f| Receiver {
                rcv_nxt: 0,
                ooo: VecDeque::new(),
                ooo_count: 0,
                unacked: 0,
                ts_recent: 0,
                delack_deadline: None,
                delack_scheduled: false,
                buffered: 0.0,
                last_drain: 0,
                buffer_segs: (f.rcv_buffer / u64::from(f.mss)).max(1),
                zero_advertised: false,
                blocks: ReceiverBlocks::default(),
                held_before_window: None,
            })
            .collect();
        let mut sim = Sim {
            cfg,
            rng: Rng::new(cfg.seed),
            now: 0,
            data_link: Link::new(cfg.data.clone()),
            ack_link: Link::new(cfg.ack.clone()),
            data_fifo: VecDeque::new(),
            ack_fifo: VecDeque::new(),
            heap: BinaryHeap::new(),
            late: BinaryHeap::new(),
            seq: 0,
            senders,
            receivers,
            samples: Vec::new(),
            log: Vec::new(),
            segments: 0,
            events: 0,
        };
        for (i, f) in cfg.flows.iter().enumerate() {
            sim.schedule(f.start, Timer::Start, i as u32);
        }
        if cfg.sample_every > 0 {
            sim.schedule(0, Timer::Sample, 0);
        }
        sim
    }

    /// Queues an arrival from a link that may reorder (and its duplicate).
    fn push_late(&mut self, at: Time, dup: Option<Time>, ev: Ev) {
        for at in std::iter::once(at).chain(dup) {
            self.seq += 1;
            self.late.push(Reverse(Late {
                at,
                order: self.seq,
                ev,
            }));
        }
    }

    fn schedule(&mut self, at: Time, timer: Timer, flow: u32) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, timer, flow)));
    }

    /// The next event in time order across the FIFOs and the heaps.
    fn next(&mut self) -> Option<(Time, Ev)> {
        let d = self.data_fifo.front().map(|x| x.0);
        let a = self.ack_fifo.front().map(|x| x.0);
        let h = self.heap.peek().map(|x| x.0.0);
        let l = self.late.peek().map(|x| x.0.at);
        let best = [d, a, h, l].into_iter().flatten().min()?;
        if d == Some(best) {
            let (t, p) = self.data_fifo.pop_front()?;
            return Some((t, Ev::Data(p)));
        }
        if l == Some(best) {
            let Reverse(late) = self.late.pop()?;
            return Some((late.at, late.ev));
        }
        if a == Some(best) {
            let (t, p) = self.ack_fifo.pop_front()?;
            return Some((t, Ev::Ack(p)));
        }
        let Reverse((t, _, timer, flow)) = self.heap.pop()?;
        Some((t, Ev::Timer(timer, flow)))
    }

    fn run(mut self, progress: &mut dyn FnMut(f64)) -> SimResult {
        let step = (self.cfg.duration / 100).max(1);
        let mut next_report = step;
        while let Some((t, ev)) = self.next() {
            if t > self.cfg.duration {
                break;
            }
            if t >= next_report {
                progress(t as f64 / self.cfg.duration as f64);
                next_report = t + step;
            }
            self.now = t;
            self.events += 1;
            match ev {
                Ev::Data(p) => self.on_data(p),
                Ev::Ack(p) => self.on_ack(p),
                Ev::Timer(timer, flow) => self.on_timer(timer, flow as usize),
            }
        }
        progress(1.0);
        SimResult {
            flows: self.senders.iter().map(|s| s.stats.clone()).collect(),
            samples: self.samples,
            log: self.log,
            segments: self.segments,
            events: self.events,
            duration: self.cfg.duration,
            measure_from: self.cfg.measure_from,
            data_link: self.data_link.stats,
        }
    }

    fn logline(&mut self, flow: usize, event: impl FnOnce() -> SegmentEvent) {
        if self.cfg.log_segments && self.log.len() < self.cfg.max_log {
            let event = event();
            self.log.push(LogLine {
                at: self.now,
                flow,
                event,
            });
        }
    }

    // ---------- sender ----------

    fn transmit(&mut self, f: usize, seq: u64, retx: bool) {
        let s = &mut self.senders[f];
        s.stats.segments_sent += 1;
        if retx {
            s.stats.retransmits += 1;
            if s.cfg.sack {
                s.board.set_retransmitted(seq);
            }
        }
        let bytes = s.cfg.mss + s.cfg.header;
        self.segments += 1;
        let fate = self.put_on_data_link(f, seq, bytes, false);
        self.logline(f, || SegmentEvent::Data {
            seq,
            len: u64::from(bytes - 52),
            retransmit: retx,
            fate: fate.into(),
        });
        self.arm_rto(f);
    }

    /// Sends a data packet (or a probe) of `bytes` over the data link and
    /// queues its arrival; what became of it.
    fn put_on_data_link(&mut self, f: usize, seq: u64, bytes: u32, probe: bool) -> Fate {
        let pkt = DataPkt {
            flow: f as u32,
            seq,
            ts: self.now,
            probe,
        };
        let fate = self.data_link.send(self.now, bytes, &mut self.rng);
        if let Fate::Arrives(t, dup) = fate {
            if self.data_link.is_fifo() {
                self.data_fifo.push_back((t, pkt));
            } else {
                self.push_late(t, dup, Ev::Data(pkt));
            }
        }
        fate
    }

    /// A zero-window probe: a real segment (header and one byte) over the
    /// data link, so it queues and can be lost like any other; the persist
    /// timer is set again, doubled, whatever becomes of it.
    fn send_probe(&mut self, f: usize) {
        let s = &mut self.senders[f];
        s.stats.zero_window_probes += 1;
        // The wait before this probe was one RTO; the next one doubles.
        s.persist_backoff += 1;
        let wait = (s.rto << s.persist_backoff.min(16)).min(PERSIST_MAX);
        s.persist_scheduled = true;
        let (seq, bytes) = (s.snd_nxt, s.cfg.header + 1);
        let fate = self.put_on_data_link(f, seq, bytes, true);
        self.logline(f, || SegmentEvent::ZeroWindowProbe {
            seq,
            fate: fate.into(),
        });
        let at = self.now + wait;
        self.schedule(at, Timer::Persist, f as u32);
    }

    fn arm_rto(&mut self, f: usize) {
        let now = self.now;
        let s = &mut self.senders[f];
        if s.snd_max == s.snd_una {
            s.rto_deadline = None;
            return;
        }
        if s.rto_deadline.is_none() {
            s.rto_deadline = Some(now + s.rto);
        }
        if !s.rto_scheduled {
            s.rto_scheduled = true;
            let at = s.rto_deadline.unwrap_or(now);
            self.schedule(at, Timer::Rto, f as u32);
        }
    }

    fn restart_rto(&mut self, f: usize) {
        let s = &mut self.senders[f];
        s.rto_deadline = None;
        self.arm_rto(f);
    }

    /// Sends new segments while the windows allow.
    fn try_send(&mut self, f: usize) {
        loop {
            let s = &self.senders[f];
            let flight = s.snd_nxt - s.snd_una;
            // Limited transmit (RFC 3042): one more segment for each of the
            // first two duplicate ACKs.
            let extra = if s.cfg.limited_transmit && s.recover.is_none() && s.dupacks < 3 {
                u64::from(s.dupacks)
            } else {
                0
            };
            let window = (s.w.cwnd.floor() as u64).max(1).min(s.rwnd) + extra;
            if flight >= window || s.snd_nxt >= s.limit {
                break;
            }
            let seq = s.snd_nxt;
            let retx = seq < s.snd_max;
            let skip = retx && s.cfg.sack && s.board.is_sacked(seq);
            let s = &mut self.senders[f];
            s.snd_nxt += 1;
            s.snd_max = s.snd_max.max(s.snd_nxt);
            if !skip {
                self.transmit(f, seq, retx);
            }
        }
        let s = &self.senders[f];
        if s.rwnd == 0 && s.snd_una == s.snd_max && s.snd_una < s.limit && !s.persist_scheduled {
            let at = self.now + s.rto;
            self.senders[f].persist_scheduled = true;
            self.schedule(at, Timer::Persist, f as u32);
        }
    }

    fn update_rtt(&mut self, f: usize, sample: Time) {
        let s = &mut self.senders[f];
        s.min_rtt = s.min_rtt.min(sample);
        let r = sample as f64;
        // RFC 6298 §2.2-2.3 with alpha = 1/8, beta = 1/4, K = 4.
        match s.srtt {
            None => {
                s.srtt = Some(r);
                s.rttvar = r / 2.0;
            }
            Some(srtt) => {
                s.rttvar = 0.75 * s.rttvar + 0.25 * (srtt - r).abs();
                s.srtt = Some(0.875 * srtt + 0.125 * r);
            }
        }
        let rto = s.srtt.unwrap_or(r) + (4.0 * s.rttvar).max(MS as f64);
        // §2.4: never below the minimum (1 s in the RFC); §2.5: at most 60 s.
        s.rto = (rto as Time).clamp(s.cfg.min_rto, 60 * SEC);
    }

    /// The common part of an ACK for new data: RTT sample, snd_una moves,
    /// completion noted. Returns the segments newly acknowledged.
    fn new_data_acked(&mut self, f: usize, p: &AckPkt) -> u64 {
        let now = self.now;
        // RFC 7323 §4.2: an RTT sample from every ACK of new data.
        self.update_rtt(f, now.saturating_sub(p.ts_echo));
        let s = &mut self.senders[f];
        let acked = p.ack - s.snd_una;
        s.snd_una = p.ack;
        s.snd_nxt = s.snd_nxt.max(s.snd_una);
        if s.snd_una >= s.limit && s.stats.finished_at.is_none() {
            s.stats.finished_at = Some(now);
        }
        acked
    }

    fn on_ack(&mut self, p: AckPkt) {
        let f = p.flow as usize;
        let now = self.now;
        self.senders[f].stats.acks += 1;
        self.senders[f].rwnd = p.rwnd;
        if p.rwnd > 0 {
            self.senders[f].persist_backoff = 0;
        }
        if self.senders[f].cfg.sack {
            return self.on_ack_sack(p);
        }
        let s = &self.senders[f];
        let flight = s.snd_max - s.snd_una;
        if p.ack > s.snd_una {
            let acked = self.new_data_acked(f, &p);
            let s = &mut self.senders[f];
            let min_rtt = if s.min_rtt == Time::MAX { 0 } else { s.min_rtt };
            match s.recover {
                Some(recover) if p.ack <= recover && s.recovery == Recovery::NewReno => {
                    // Partial ACK (RFC 6582 §3.2 step 5): the next hole is
                    // lost too; retransmit it, deflate by what was acked.
                    s.w.cwnd = (s.w.cwnd - acked as f64 + 1.0).max(1.0);
                    s.dupacks = 0;
                    let seq = s.snd_una;
                    let ack = p.ack;
                    self.logline(f, || SegmentEvent::PartialAck { ack, seq });
                    self.transmit(f, seq, true);
                    self.restart_rto(f);
                }
                Some(_) => {
                    // Full ACK (or any new ACK for Reno): leave recovery.
                    s.w.cwnd = s.w.ssthresh;
                    s.recover = None;
                    s.dupacks = 0;
                    self.restart_rto(f);
                }
                None => {
                    s.dupacks = 0;
                    s.cc.on_ack(&mut s.w, acked, now, min_rtt);
                    self.restart_rto(f);
                }
            }
        } else if p.ack == s.snd_una && flight > 0 {
            let s = &mut self.senders[f];
            s.dupacks += 1;
            s.stats.dup_acks += 1;
            if s.recover.is_some() {
                s.w.cwnd += 1.0; // window inflation (RFC 5681 §3.2 step 4)
            } else if s.dupacks == 3 && (p.ack > s.last_recover || s.last_recover == 0) {
                // What is still in the network (RFC 6675 §2 "pipe"),
                // estimated without SACK: each duplicate ACK reports one
                // segment that left it, and the missing one is lost.
                let pipe = (s.snd_max - s.snd_una).saturating_sub(u64::from(s.dupacks) + 1);
                // Reno/NewReno inflate by the three segments the dup ACKs reported.
                s.react_to_loss(pipe, 3.0, now);
                let seq = s.snd_una;
                match s.recovery {
                    Recovery::None => {
                        // Tahoe: cwnd is 1; go back and slow start.
                        s.snd_nxt = s.snd_una;
                        self.logline(f, || SegmentEvent::FastRetransmitTahoe { seq });
                    }
                    Recovery::Reno | Recovery::NewReno => {
                        s.recover = Some(s.snd_max - 1);
                        let ss = s.w.ssthresh;
                        self.logline(f, || SegmentEvent::FastRecovery { seq, ssthresh: ss });
                        self.transmit(f, seq, true);
                    }
                }
            }
        }
        self.try_send(f);
    }

    /// ACK processing with SACK (RFC 6675 §5): the scoreboard decides what
    /// is lost, `pipe` what may be sent; no window inflation or deflation.
    fn on_ack_sack(&mut self, p: AckPkt) {
        let f = p.flow as usize;
        let now = self.now;
        let s = &mut self.senders[f];
        let snd_max = s.snd_max;
        for b in &p.sack[..usize::from(p.nsack)] {
            s.board.mark(*b, snd_max);
        }
        if p.ack > s.snd_una {
            let acked = self.new_data_acked(f, &p);
            let s = &mut self.senders[f];
            s.board.advance(p.ack);
            s.dupacks = 0;
            match s.recover {
                Some(recover) if p.ack > recover => {
                    s.recover = None;
                    s.w.cwnd = s.w.ssthresh;
                }
                Some(_) => {}
                None => {
                    let min_rtt = if s.min_rtt == Time::MAX { 0 } else { s.min_rtt };
                    s.cc.on_ack(&mut s.w, acked, now, min_rtt);
                }
            }
            self.restart_rto(f);
        } else if p.ack == s.snd_una && s.snd_max > s.snd_una {
            s.dupacks += 1;
            s.stats.dup_acks += 1;
        }
        let s = &mut self.senders[f];
        let may_react = s.last_recover == 0 || s.snd_una > s.last_recover;
        if s.recover.is_none()
            && may_react
            && s.snd_max > s.snd_una
            && (s.dupacks >= 3 || s.board.is_lost(s.snd_una))
        {
            s.recover = Some(s.snd_max - 1);
            let (pipe, _) = s.board.plan(s.snd_max);
            // With SACK, pipe clocks the sending: no inflation.
            s.react_to_loss(pipe, 0.0, now);
            // RFC 6675 §5 step 4.3: the first hole goes out at once.
            let seq = s.snd_una;
            let ss = s.w.ssthresh;
            self.logline(f, || SegmentEvent::SackLoss { seq, ssthresh: ss });
            self.transmit(f, seq, true);
        }
        if self.senders[f].recover.is_some() {
            self.sack_send(f);
        } else {
            self.try_send(f);
        }
    }

    /// Sends while `pipe` < cwnd: lost holes first, then new data
    /// (RFC 6675 `NextSeg` rules 1 and 2).
    fn sack_send(&mut self, f: usize) {
        let s = &self.senders[f];
        let (mut pipe, lost) = s.board.plan(s.snd_max);
        let mut lost = lost.into_iter();
        loop {
            let s = &self.senders[f];
            if pipe >= (s.w.cwnd.floor() as u64).max(1) {
                break;
            }
            if let Some(seq) = lost.next() {
                self.transmit(f, seq, true);
            } else if s.snd_max < s.limit && s.snd_max - s.snd_una < s.rwnd {
                let seq = s.snd_max;
                let s = &mut self.senders[f];
                s.snd_max += 1;
                s.snd_nxt = s.snd_max;
                self.transmit(f, seq, false);
            } else {
                break;
            }
            pipe += 1;
        }
    }

    fn on_rto(&mut self, f: usize) {
        let now = self.now;
        let s = &mut self.senders[f];
        s.rto_scheduled = false;
        let Some(deadline) = s.rto_deadline else {
            return;
        };
        if deadline > now {
            // Re-armed since this event was queued: wait for the new time.
            s.rto_scheduled = true;
            self.schedule(deadline, Timer::Rto, f as u32);
            return;
        }
        if s.snd_una == s.snd_max {
            s.rto_deadline = None;
            return;
        }
        s.stats.timeouts += 1;
        s.board.clear_retransmitted();
        let flight = s.snd_max - s.snd_una;
        let before = s.w.cwnd;
        s.cc.on_timeout(&mut s.w, flight, now);
        s.stats.reactions.push(Reaction {
            time: now,
            kind: ReactionKind::Timeout,
            cwnd_before: before,
            cwnd_after: s.w.cwnd,
            ssthresh_after: s.w.ssthresh,
        });
        s.recover = None;
        s.dupacks = 0;
        s.last_recover = s.snd_max - 1;
        // RFC 6298 §5.5: back the timer off.
        s.rto = (s.rto * 2).min(60 * SEC);
        s.snd_nxt = s.snd_una;
        s.rto_deadline = None;
        let (una, rto) = (s.snd_una, s.rto);
        self.logline(f, || SegmentEvent::Timeout {
            seq: una,
            next_rto: rto,
        });
        self.try_send(f);
        self.arm_rto(f);
    }

    // ---------- receiver ----------

    fn drain(&mut self, f: usize) {
        let flow = &self.cfg.flows[f];
        let (rate, stall) = (flow.app_read_bps, flow.app_stall);
        let now = self.now;
        let r = &mut self.receivers[f];
        if rate == 0 && stall.is_none() {
            r.buffered = 0.0;
        } else {
            // Reading time since the last drain, minus any stall.
            let mut reading = now - r.last_drain;
            if let Some((a, b)) = stall {
                let overlap = now.min(b).saturating_sub(r.last_drain.max(a));
                reading -= overlap;
            }
            let read = if rate == 0 {
                f64::INFINITY
            } else {
                reading as f64 / SEC as f64 * rate as f64 / 8.0
            };
            r.buffered = (r.buffered - read).max(0.0);
        }
        r.last_drain = now;
    }

    /// When a zero window will have room for one segment again.
    fn window_opens_at(&self, f: usize) -> Time {
        let flow = &self.cfg.flows[f];
        let r = &self.receivers[f];
        let mss = f64::from(flow.mss);
        let excess =
            (r.buffered - (r.buffer_segs as f64 - 1.0 - r.ooo_count as f64) * mss).max(mss * 0.01);
        let mut start = self.now;
        if let Some((a, b)) = flow.app_stall
            && self.now >= a
            && self.now < b
        {
            start = b;
        }
        let rate = flow.app_read_bps;
        if rate == 0 {
            return start + 1;
        }
        start + ((excess * 8.0 / rate as f64) * SEC as f64).ceil() as Time + 1
    }

    fn rwnd(&self, f: usize) -> u64 {
        let r = &self.receivers[f];
        let mss = f64::from(self.cfg.flows[f].mss);
        let used = (r.buffered / mss).ceil() as u64 + r.ooo_count as u64;
        r.buffer_segs.saturating_sub(used)
    }

    fn send_ack(&mut self, f: usize, ts_echo: Time) {
        let r = &mut self.receivers[f];
        r.unacked = 0;
        r.delack_deadline = None;
        let (sack, nsack) = if self.cfg.flows[f].sack {
            r.blocks.report()
        } else {
            ([(0, 0); MAX_BLOCKS], 0)
        };
        let ack = r.rcv_nxt;
        let pkt = AckPkt {
            flow: f as u32,
            ack,
            rwnd: self.rwnd(f),
            ts_echo,
            sack,
            nsack,
        };
        let was_zero = self.receivers[f].zero_advertised;
        self.receivers[f].zero_advertised = pkt.rwnd == 0;
        if pkt.rwnd == 0 && !was_zero {
            let at = self.window_opens_at(f);
            self.schedule(at, Timer::WindowUpdate, f as u32);
        }
        let (ack, window) = (pkt.ack, pkt.rwnd);
        self.logline(f, || SegmentEvent::Ack { ack, window });
        match self.ack_link.send(self.now, 52, &mut self.rng) {
            Fate::Arrives(t, dup) => {
                if self.ack_link.is_fifo() {
                    self.ack_fifo.push_back((t, pkt));
                } else {
                    self.push_late(t, dup, Ev::Ack(pkt));
                }
            }
            Fate::Lost | Fate::QueueDrop => {}
        }
    }

    fn on_data(&mut self, p: DataPkt) {
        let f = p.flow as usize;
        self.drain(f);
        if p.probe {
            // The probe's byte does not fit a closed window (and is sent
            // again as data once it opens): the answer is the window.
            let ts = p.ts;
            self.send_ack(f, ts);
            return;
        }
        let now = self.now;
        let mss = u64::from(self.cfg.flows[f].mss);
        let delayed = self.cfg.flows[f].delayed_ack;
        let measure_from = self.cfg.measure_from;
        let r = &mut self.receivers[f];
        // The first arrival in the window: what is held now came before.
        if now >= measure_from && r.held_before_window.is_none() {
            r.held_before_window = Some(r.ooo_count as u64);
        }
        if p.seq == r.rcv_nxt {
            let had_gap = r.ooo_count > 0;
            r.rcv_nxt += 1;
            let mut delivered = 1u64;
            // Pull in what was waiting behind the hole.
            r.ooo.pop_front();
            while r.ooo.front() == Some(&true) {
                r.ooo.pop_front();
                r.ooo_count -= 1;
                r.rcv_nxt += 1;
                delivered += 1;
            }
            if self.cfg.flows[f].sack {
                r.blocks.advance(r.rcv_nxt);
            }
            if self.cfg.flows[f].app_read_bps > 0 || self.cfg.flows[f].app_stall.is_some() {
                r.buffered += (delivered * mss) as f64;
            }
            let s = &mut self.senders[f].stats;
            s.delivered += delivered * mss;
            if now >= measure_from {
                // Held segments leave in order, the earliest (those from
                // before the window) first.
                let held = r.held_before_window.get_or_insert(0);
                let old = (*held).min(delivered - 1);
                *held -= old;
                s.delivered_measured += (delivered - old) * mss;
            }
            if r.unacked == 0 {
                r.ts_recent = p.ts;
            }
            if had_gap || !delayed {
                let ts = r.ts_recent;
                self.send_ack(f, ts);
            } else {
                r.unacked += 1;
                if r.unacked >= 2 {
                    let ts = r.ts_recent;
                    self.send_ack(f, ts);
                } else {
                    let at = now + self.cfg.flows[f].delack_timeout;
                    r.delack_deadline = Some(at);
                    if !r.delack_scheduled {
                        r.delack_scheduled = true;
                        self.schedule(at, Timer::DelAck, f as u32);
                    }
                }
            }
        } else if p.seq > r.rcv_nxt {
            // Out of order: hold it (bit i = rcv_nxt + i) and ACK at once.
            let idx = (p.seq - r.rcv_nxt) as usize;
            if idx < r.buffer_segs as usize {
                if r.ooo.len() <= idx {
                    r.ooo.resize(idx + 1, false);
                }
                if !r.ooo[idx] {
                    r.ooo[idx] = true;
                    r.ooo_count += 1;
                }
                if self.cfg.flows[f].sack {
                    r.blocks.add(p.seq);
                }
                let held = r.ooo_count;
                let s = &mut self.senders[f].stats;
                s.max_reorder_buffer = s.max_reorder_buffer.max(held);
            }
            let ts = self.receivers[f].ts_recent;
            self.send_ack(f, ts);
        } else {
            // An old duplicate: ACK at once so the sender learns rcv_nxt.
            let ts = p.ts;
            self.send_ack(f, ts);
        }
    }

    fn on_timer(&mut self, timer: Timer, f: usize) {
        match timer {
            Timer::Start => {
                self.senders[f].started = true;
                self.try_send(f);
            }
            Timer::Rto => self.on_rto(f),
            Timer::DelAck => {
                let now = self.now;
                let r = &mut self.receivers[f];
                r.delack_scheduled = false;
                match r.delack_deadline {
                    Some(d) if d > now => {
                        r.delack_scheduled = true;
                        self.schedule(d, Timer::DelAck, f as u32);
                    }
                    Some(_) if r.unacked > 0 => {
                        let ts = r.ts_recent;
                        self.send_ack(f, ts);
                    }
                    _ => {}
                }
            }
            Timer::Persist => {
                self.senders[f].persist_scheduled = false;
                if self.senders[f].rwnd == 0 {
                    self.send_probe(f);
                }
            }
            Timer::WindowUpdate => {
                // RFC 9293 §3.8.6.2.2: tell the sender once the window opens.
                self.drain(f);
                if self.receivers[f].zero_advertised {
                    let window = self.rwnd(f);
                    if window > 0 {
                        let ts = self.receivers[f].ts_recent;
                        self.logline(f, || SegmentEvent::WindowUpdate { window });
                        self.send_ack(f, ts);
                    } else {
                        let at = self.window_opens_at(f);
                        self.schedule(at, Timer::WindowUpdate, f as u32);
                    }
                }
            }
            Timer::Sample => {
                for i in 0..self.senders.len() {
                    self.drain(i);
                    let rwnd = self.rwnd(i);
                    let s = &self.senders[i];
                    if !s.started {
                        continue;
                    }
                    self.samples.push(Sample {
                        time: self.now,
                        flow: i,
                        cwnd: s.w.cwnd,
                        inflation: match s.recover {
                            Some(_) if s.w.ssthresh.is_finite() => {
                                (s.w.cwnd - s.w.ssthresh).max(0.0)
                            }
                            _ => 0.0,
                        },
                        ssthresh: if s.w.ssthresh.is_finite() {
                            s.w.ssthresh
                        } else {
                            -1.0
                        },
                        rwnd,
                        in_flight: s.snd_max - s.snd_una,
                        srtt: s.srtt.unwrap_or(0.0) as Time,
                        rto: s.rto,
                        delivered: s.stats.delivered,
                    });
                }
                let next = self.now + self.cfg.sample_every;
                self.schedule(next, Timer::Sample, 0);
            }
        }
    }
}
