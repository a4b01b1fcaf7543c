//! TCP's connection state machine (RFC 9293 §3.3.2) and scripted scenarios
//! over a delaying link (C14–C16): the 3-way handshake with random initial
//! sequence numbers, simultaneous open, the 4-way close with FIN_WAIT_1/2,
//! CLOSE_WAIT, LAST_ACK and TIME_WAIT, and why TIME_WAIT exists.

use std::fmt;

use crate::rng::Rng;
use crate::time::{MS, SEC, Time, secs};

/// RFC 9293 §3.3.2 states, named as the RFC names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN_SENT",
            State::SynReceived => "SYN_RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN_WAIT_1",
            State::FinWait2 => "FIN_WAIT_2",
            State::CloseWait => "CLOSE_WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST_ACK",
            State::TimeWait => "TIME_WAIT",
        })
    }
}

/// A segment's control bits and numbers (32-bit, wrapping, as on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub seq: u32,
    pub ack_no: u32,
    pub len: u32,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut flags = Vec::new();
        for (on, name) in [
            (self.syn, "SYN"),
            (self.fin, "FIN"),
            (self.rst, "RST"),
            (self.ack, "ACK"),
        ] {
            if on {
                flags.push(name);
            }
        }
        if flags.is_empty() {
            flags.push("DATA");
        }
        write!(f, "{} seq={}", flags.join("+"), self.seq)?;
        if self.ack {
            write!(f, " ack={}", self.ack_no)?;
        }
        if self.len > 0 {
            write!(f, " len={}", self.len)?;
        }
        Ok(())
    }
}

/// Maximum segment lifetime; TIME_WAIT lasts 2·MSL (RFC 9293 §3.4.2 uses
/// 2 minutes; the lab uses a shorter one so runs stay readable).
pub const MSL: Time = 30 * SEC;

/// One endpoint's transmission control block.
#[derive(Clone, Debug)]
pub struct Tcb {
    pub name: &'static str,
    pub state: State,
    iss: u32,
    snd_nxt: u32,
    snd_una: u32,
    rcv_nxt: u32,
    rcv_wnd: u32,
    time_wait_until: Option<Time>,
    /// RFC 1337's fix: a reset does not end TIME_WAIT (Linux:
    /// net.ipv4.tcp_rfc1337 = 1). Off, RFC 9293's rule applies and a
    /// reset closes it early ("TIME-WAIT assassination").
    pub rfc1337: bool,
    /// Bytes handed to the application.
    pub delivered: Vec<u32>,
}

fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Tcb {
    pub fn new(name: &'static str) -> Self {
        Tcb {
            name,
            state: State::Closed,
            iss: 0,
            snd_nxt: 0,
            snd_una: 0,
            rcv_nxt: 0,
            rcv_wnd: 65_535,
            time_wait_until: None,
            rfc1337: true,
            delivered: Vec::new(),
        }
    }

    /// When TIME_WAIT's 2·MSL timer ends, while it runs.
    pub fn time_wait_until(&self) -> Option<Time> {
        self.time_wait_until
    }

    fn seg(&self, syn: bool, ack: bool, fin: bool) -> Segment {
        Segment {
            syn,
            ack,
            fin,
            rst: false,
            seq: self.snd_nxt,
            ack_no: self.rcv_nxt,
            len: 0,
        }
    }

    /// Passive open: LISTEN.
    pub fn listen(&mut self) {
        self.state = State::Listen;
    }

    /// Active open with initial send sequence `iss`: SYN, SYN_SENT.
    pub fn connect(&mut self, iss: u32) -> Segment {
        self.iss = iss;
        self.snd_una = iss;
        self.snd_nxt = iss;
        let s = self.seg(true, false, false);
        self.snd_nxt = iss.wrapping_add(1);
        self.state = State::SynSent;
        s
    }

    /// Sends `len` bytes of data.
    pub fn send(&mut self, len: u32) -> Option<Segment> {
        if !matches!(self.state, State::Established | State::CloseWait) {
            return None;
        }
        let mut s = self.seg(false, true, false);
        s.len = len;
        self.snd_nxt = self.snd_nxt.wrapping_add(len);
        Some(s)
    }

    /// The application closes: a FIN goes out.
    pub fn close(&mut self) -> Option<Segment> {
        let next = match self.state {
            State::Established => State::FinWait1,
            State::CloseWait => State::LastAck,
            State::Listen | State::SynSent => {
                self.state = State::Closed;
                return None;
            }
            _ => return None,
        };
        let s = self.seg(false, true, true);
        self.snd_nxt = self.snd_nxt.wrapping_add(1);
        self.state = next;
        Some(s)
    }

    /// True when `seg` falls in the receive window (RFC 9293 §3.10.7.4).
    fn acceptable(&self, seg: &Segment) -> bool {
        let end = self.rcv_nxt.wrapping_add(self.rcv_wnd);
        let seq_in = |x: u32| !lt(x, self.rcv_nxt) && lt(x, end);
        if seg.len == 0 && !seg.syn && !seg.fin {
            seg.seq == self.rcv_nxt || seq_in(seg.seq)
        } else {
            seq_in(seg.seq) || seq_in(seg.seq.wrapping_add(seg.len.max(1) - 1))
        }
    }

    /// Processes one arriving segment at `now`; returns the segments to send.
    pub fn on_segment(&mut self, seg: &Segment, now: Time, next_iss: u32) -> Vec<Segment> {
        let mut out = Vec::new();
        match self.state {
            State::Closed => {
                if !seg.rst {
                    // RFC 9293 §3.10.7.1: answer anything with a reset.
                    out.push(Segment {
                        syn: false,
                        ack: !seg.ack,
                        fin: false,
                        rst: true,
                        seq: if seg.ack { seg.ack_no } else { 0 },
                        ack_no: seg
                            .seq
                            .wrapping_add(seg.len + u32::from(seg.syn) + u32::from(seg.fin)),
                        len: 0,
                    });
                }
            }
            State::Listen => {
                if seg.syn && !seg.ack {
                    self.rcv_nxt = seg.seq.wrapping_add(1);
                    self.iss = next_iss;
                    self.snd_una = next_iss;
                    self.snd_nxt = next_iss;
                    out.push(self.seg(true, true, false));
                    self.snd_nxt = next_iss.wrapping_add(1);
                    self.state = State::SynReceived;
                }
            }
            State::SynSent => {
                if seg.syn && seg.ack && seg.ack_no == self.snd_nxt {
                    self.rcv_nxt = seg.seq.wrapping_add(1);
                    self.snd_una = seg.ack_no;
                    self.state = State::Established;
                    out.push(self.seg(false, true, false));
                } else if seg.syn && !seg.ack {
                    // Simultaneous open (RFC 9293 §3.5, figure 7).
                    self.rcv_nxt = seg.seq.wrapping_add(1);
                    self.state = State::SynReceived;
                    let mut s = self.seg(true, true, false);
                    s.seq = self.iss;
                    out.push(s);
                }
            }
            _ => {
                if seg.rst {
                    if self.acceptable(seg) && !(self.state == State::TimeWait && self.rfc1337) {
                        self.state = State::Closed;
                        self.time_wait_until = None;
                    }
                    return out;
                }
                if !self.acceptable(seg) {
                    // Old duplicate or out of window: ACK, drop (§3.10.7.4).
                    out.push(self.seg(false, true, false));
                    return out;
                }
                if seg.syn && self.state == State::SynReceived && seg.ack {
                    // The peer's SYN-ACK in a simultaneous open.
                    self.snd_una = seg.ack_no;
                    self.state = State::Established;
                    return out;
                }
                if seg.ack && !lt(seg.ack_no, self.snd_una) && !lt(self.snd_nxt, seg.ack_no) {
                    self.snd_una = seg.ack_no;
                    let all_acked = self.snd_una == self.snd_nxt;
                    self.state = match (self.state, all_acked) {
                        (State::SynReceived, _) => State::Established,
                        (State::FinWait1, true) => State::FinWait2,
                        (State::Closing, true) => {
                            self.time_wait_until = Some(now + 2 * MSL);
                            State::TimeWait
                        }
                        (State::LastAck, true) => State::Closed,
                        (s, _) => s,
                    };
                }
                if seg.len > 0
                    && matches!(
                        self.state,
                        State::Established | State::FinWait1 | State::FinWait2
                    )
                {
                    if seg.seq == self.rcv_nxt {
                        self.delivered.push(seg.len);
                        self.rcv_nxt = self.rcv_nxt.wrapping_add(seg.len);
                    }
                    out.push(self.seg(false, true, false));
                }
                if seg.fin && seg.seq.wrapping_add(seg.len) == self.rcv_nxt {
                    self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
                    self.state = match self.state {
                        State::SynReceived | State::Established => State::CloseWait,
                        State::FinWait1 => State::Closing,
                        State::FinWait2 | State::TimeWait => {
                            // (Re)start the 2·MSL timer.
                            self.time_wait_until = Some(now + 2 * MSL);
                            State::TimeWait
                        }
                        s => s,
                    };
                    out.push(self.seg(false, true, false));
                }
            }
        }
        out
    }

    /// Lets time pass: TIME_WAIT ends after 2·MSL.
    pub fn tick(&mut self, now: Time) {
        if self.state == State::TimeWait && self.time_wait_until.is_some_and(|t| now >= t) {
            self.state = State::Closed;
            self.time_wait_until = None;
        }
    }
}

/// One line of a scenario's story.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub time: Time,
    pub text: String,
    /// State changes this step caused: (endpoint, from, to).
    pub transitions: Vec<(&'static str, State, State)>,
}

/// The scripted scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Handshake,
    SimultaneousOpen,
    Close,
    /// A delayed segment of an old connection arrives after the close.
    TimeWait,
    /// The same, with TIME_WAIT skipped and a new connection on the same
    /// ports: the stale segment is taken as new data.
    NoTimeWait,
    /// The late segment's re-ACK draws a reset from the closed peer, and
    /// without RFC 1337's fix that reset ends TIME_WAIT early.
    Assassination,
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "handshake" => Ok(Scenario::Handshake),
            "simultaneous" => Ok(Scenario::SimultaneousOpen),
            "close" => Ok(Scenario::Close),
            "time-wait" => Ok(Scenario::TimeWait),
            "no-time-wait" => Ok(Scenario::NoTimeWait),
            "assassination" => Ok(Scenario::Assassination),
            o => Err(format!(
                "unknown scenario {o:?} (handshake, simultaneous, close, time-wait, no-time-wait, assassination)"
            )),
        }
    }
}

/// Two endpoints joined by a link with one-way delay `delay`.
struct Pair {
    a: Tcb,
    b: Tcb,
    now: Time,
    delay: Time,
    rng: Rng,
    steps: Vec<Step>,
    /// Segments in flight: (arrival, to_b, segment).
    wire: Vec<(Time, bool, Segment)>,
    /// The old connection's delayed copy, to say what became of it.
    stale: Option<Segment>,
}

impl Pair {
    fn note(&mut self, text: String, before: (State, State)) {
        let mut transitions = Vec::new();
        if before.0 != self.a.state {
            transitions.push(("A", before.0, self.a.state));
        }
        if before.1 != self.b.state {
            transitions.push(("B", before.1, self.b.state));
        }
        self.steps.push(Step {
            time: self.now,
            text,
            transitions,
        });
    }

    fn states(&self) -> (State, State) {
        (self.a.state, self.b.state)
    }

    fn put(&mut self, to_b: bool, seg: Segment, extra_delay: Time) {
        self.wire
            .push((self.now + self.delay + extra_delay, to_b, seg));
    }

    fn act(&mut self, text: &str, f: impl FnOnce(&mut Pair) -> Vec<(bool, Segment)>) {
        let before = self.states();
        let segs = f(self);
        let mut line = text.to_string();
        for (to_b, s) in &segs {
            line.push_str(&format!("; {} sends {s}", if *to_b { "A" } else { "B" }));
            self.put(*to_b, *s, 0);
        }
        self.note(line, before);
    }

    /// Ends each TIME_WAIT whose 2·MSL timer runs out by `t`, at the
    /// moment it does.
    fn timers_until(&mut self, t: Time) {
        loop {
            let due = [self.a.time_wait_until(), self.b.time_wait_until()]
                .into_iter()
                .flatten()
                .filter(|&at| at <= t)
                .min();
            let Some(at) = due else { return };
            self.now = at;
            let before = self.states();
            self.a.tick(at);
            self.b.tick(at);
            self.note(
                format!(
                    "2·MSL ({:.0} s) since TIME_WAIT began: its timer ends",
                    secs(2 * MSL)
                ),
                before,
            );
        }
    }

    /// Delivers everything in flight, in arrival order, until quiet or `until`.
    fn run_until(&mut self, until: Time) {
        loop {
            self.wire.sort_by_key(|w| w.0);
            let Some(&(t, _, _)) = self.wire.first() else {
                break;
            };
            if t > until {
                break;
            }
            self.timers_until(t);
            let (t, to_b, seg) = self.wire.remove(0);
            self.now = t;
            let before = self.states();
            let delivered = self.a.delivered.len();
            let iss = self.rng.next_u64() as u32;
            let (name, replies) = if to_b {
                ("B", self.b.on_segment(&seg, t, iss))
            } else {
                ("A", self.a.on_segment(&seg, t, iss))
            };
            let mut line = format!("{name} receives {seg}");
            for r in &replies {
                line.push_str(&format!("; {name} sends {r}"));
                self.put(!to_b, *r, 0);
            }
            line.push_str(&self.what_became_of(name, &seg, before, delivered));
            self.note(line, before);
        }
        self.timers_until(until);
        self.now = self.now.max(until);
    }

    /// Words for what the step did with the stale copy or with a reset
    /// in TIME_WAIT, read from the endpoints' state.
    fn what_became_of(
        &self,
        name: &str,
        seg: &Segment,
        before: (State, State),
        delivered: usize,
    ) -> String {
        if name != "A" {
            return String::new();
        }
        if Some(*seg) == self.stale {
            if self.a.delivered.len() > delivered {
                return format!(
                    " — the OLD connection's {} bytes, taken as NEW data: their sequence numbers fell inside the new connection's window",
                    seg.len
                );
            }
            if before.0 == State::TimeWait {
                return " — an old duplicate: TIME_WAIT still knows this connection, drops it and ACKs again".into();
            }
        }
        if seg.rst && before.0 == State::TimeWait {
            return if self.a.state == State::TimeWait {
                " — ignored: a reset does not end TIME_WAIT (RFC 1337; Linux with net.ipv4.tcp_rfc1337=1)".into()
            } else {
                " — and TIME_WAIT ends early: \"TIME-WAIT assassination\" (RFC 1337), as RFC 9293's rule and Linux's default (tcp_rfc1337=0) allow".into()
            };
        }
        String::new()
    }
}

/// Runs a scenario with ISNs from `seed`; returns its steps and the
/// endpoints at the end.
pub fn run_scenario(scenario: Scenario, seed: u64) -> (Vec<Step>, Tcb, Tcb) {
    let mut p = Pair {
        a: Tcb::new("A"),
        b: Tcb::new("B"),
        now: 0,
        delay: 20 * MS,
        rng: Rng::new(seed),
        steps: Vec::new(),
        wire: Vec::new(),
        stale: None,
    };
    let handshake = |p: &mut Pair| {
        p.act("B listens", |p| {
            p.b.listen();
            vec![]
        });
        let iss = p.rng.next_u64() as u32;
        p.act("A connects", |p| vec![(true, p.a.connect(iss))]);
        p.run_until(SEC);
    };
    let close = |p: &mut Pair| {
        p.act("A closes", |p| {
            p.a.close().map(|s| (true, s)).into_iter().collect()
        });
        p.run_until(p.now + SEC);
        p.act("B closes", |p| {
            p.b.close().map(|s| (false, s)).into_iter().collect()
        });
        p.run_until(p.now + SEC);
    };
    match scenario {
        Scenario::Handshake => handshake(&mut p),
        Scenario::SimultaneousOpen => {
            let (ia, ib) = (p.rng.next_u64() as u32, p.rng.next_u64() as u32);
            p.act("A and B connect at the same time", |p| {
                vec![(true, p.a.connect(ia)), (false, p.b.connect(ib))]
            });
            p.run_until(SEC);
        }
        Scenario::Close => {
            handshake(&mut p);
            close(&mut p);
            let end = p.now + 2 * MSL;
            p.run_until(end);
        }
        Scenario::TimeWait | Scenario::NoTimeWait | Scenario::Assassination => {
            p.a.rfc1337 = scenario != Scenario::Assassination;
            handshake(&mut p);
            // B sends 100 bytes; a duplicate of it is held up in the network.
            let seg = p.b.send(100).expect("established");
            p.act("B sends 100 bytes", |_| vec![(false, seg)]);
            let stale = seg;
            p.stale = Some(stale);
            p.wire.push((p.now + 5 * SEC, false, stale));
            p.steps.push(Step {
                time: p.now,
                text: format!("a copy of B's {stale} is delayed in the network for 5 s"),
                transitions: vec![],
            });
            p.run_until(p.now + SEC);
            close(&mut p);
            if scenario == Scenario::NoTimeWait {
                // Without TIME_WAIT, A forgets the connection at once and a
                // new one on the same ports starts. Its ISNs happen to put
                // the old bytes inside the new window (wrap-around and
                // clock-driven ISNs make such overlaps possible).
                let before = p.states();
                p.a = Tcb::new("A");
                p.b = Tcb::new("B");
                p.note(
                    "without TIME_WAIT: A drops the connection immediately".into(),
                    before,
                );
                p.act("B listens again", |p| {
                    p.b.listen();
                    vec![]
                });
                let iss = p.rng.next_u64() as u32;
                p.act("A connects again (same ports)", |p| {
                    vec![(true, p.a.connect(iss))]
                });
                // B's new ISN puts the stale bytes right at A's rcv_nxt.
                let target = stale.seq.wrapping_sub(1);
                p.run_until_with_iss(p.now + SEC, target);
            }
            // Long enough for the late copy, and for TIME_WAIT to end.
            let end = (p.now + 4 * SEC).max(p.a.time_wait_until().unwrap_or(0));
            p.run_until(end);
        }
    }
    let Pair { a, b, steps, .. } = p;
    (steps, a, b)
}

impl Pair {
    /// Like `run_until`, with B choosing `iss` for its next SYN-ACK.
    fn run_until_with_iss(&mut self, until: Time, iss: u32) {
        self.wire.sort_by_key(|w| w.0);
        if let Some(i) = self.wire.iter().position(|w| w.1 && w.2.syn) {
            let (t, _, seg) = self.wire.remove(i);
            self.now = t;
            let before = self.states();
            let replies = self.b.on_segment(&seg, t, iss);
            let mut line = format!("B receives {seg}");
            for r in &replies {
                line.push_str(&format!("; B sends {r}"));
                self.put(false, *r, 0);
            }
            self.note(line, before);
        }
        self.run_until(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transitions(steps: &[Step], who: &str) -> Vec<State> {
        steps
            .iter()
            .flat_map(|s| s.transitions.iter())
            .filter(|t| t.0 == who)
            .map(|t| t.2)
            .collect()
    }

    #[test]
    fn the_three_way_handshake_uses_random_isns_and_ends_established() {
        let (steps, a, b) = run_scenario(Scenario::Handshake, 1);
        assert_eq!(
            transitions(&steps, "A"),
            [State::SynSent, State::Established]
        );
        assert_eq!(
            transitions(&steps, "B"),
            [State::Listen, State::SynReceived, State::Established]
        );
        assert_eq!((a.state, b.state), (State::Established, State::Established));
        let (_, a2, _) = run_scenario(Scenario::Handshake, 2);
        assert_ne!(a.iss, a2.iss, "ISNs come from the seed");
        assert!(steps.iter().any(|s| s.text.contains("SYN+ACK")));
    }

    #[test]
    fn simultaneous_open_goes_through_syn_received_on_both_sides() {
        let (steps, a, b) = run_scenario(Scenario::SimultaneousOpen, 3);
        assert!(transitions(&steps, "A").contains(&State::SynReceived));
        assert!(transitions(&steps, "B").contains(&State::SynReceived));
        assert_eq!((a.state, b.state), (State::Established, State::Established));
    }

    #[test]
    fn the_four_way_close_walks_every_state_and_time_wait_lasts_two_msl() {
        let (steps, a, b) = run_scenario(Scenario::Close, 4);
        let ta = transitions(&steps, "A");
        let tb = transitions(&steps, "B");
        assert_eq!(
            &ta[2..],
            [
                State::FinWait1,
                State::FinWait2,
                State::TimeWait,
                State::Closed
            ]
        );
        assert_eq!(&tb[3..], [State::CloseWait, State::LastAck, State::Closed]);
        assert_eq!((a.state, b.state), (State::Closed, State::Closed));
        let tw = steps
            .iter()
            .find(|s| s.transitions.iter().any(|t| t.2 == State::TimeWait))
            .unwrap()
            .time;
        let closed = steps
            .iter()
            .find(|s| {
                s.transitions
                    .iter()
                    .any(|t| t.0 == "A" && t.2 == State::Closed)
            })
            .unwrap()
            .time;
        assert_eq!(
            closed - tw,
            2 * MSL,
            "the timer ends 2·MSL after TIME_WAIT began"
        );
    }

    #[test]
    fn a_reset_in_time_wait_is_ignored_under_rfc_1337_and_ends_it_early_without() {
        let closed_at = |steps: &[Step]| {
            steps
                .iter()
                .find(|s| {
                    s.transitions
                        .iter()
                        .any(|t| t.0 == "A" && t.1 == State::TimeWait)
                })
                .map(|s| (s.time, s.text.clone()))
                .unwrap()
        };
        let (steps, _, _) = run_scenario(Scenario::TimeWait, 5);
        let rst = steps
            .iter()
            .find(|s| s.text.starts_with("A receives RST"))
            .unwrap();
        assert!(
            rst.text.contains("ignored") && rst.transitions.is_empty(),
            "{}",
            rst.text
        );
        let (at, text) = closed_at(&steps);
        assert!(at > rst.time + 50 * SEC && text.contains("2·MSL"), "{text}");
        let (steps, _, _) = run_scenario(Scenario::Assassination, 5);
        let (at, text) = closed_at(&steps);
        assert!(text.starts_with("A receives RST") && text.contains("TIME-WAIT assassination"));
        assert!(at < 10 * SEC, "{at}");
    }

    #[test]
    fn time_wait_absorbs_a_late_segment_that_would_corrupt_a_new_connection() {
        let (_, a, _) = run_scenario(Scenario::TimeWait, 5);
        assert_eq!(a.delivered, [100], "the stale copy was delivered again");
        let (steps, a, _) = run_scenario(Scenario::NoTimeWait, 5);
        assert_eq!(a.state, State::Established);
        assert_eq!(
            a.delivered,
            [100],
            "the new connection took old bytes as its own"
        );
        assert!(steps.iter().any(|s| s.text.contains("without TIME_WAIT")));
        assert!(
            steps.iter().any(|s| s
                .text
                .contains("OLD connection's 100 bytes, taken as NEW data")),
            "the story does not say the old bytes were taken as new"
        );
    }
}
