//! What the simulator's segment log records: one typed event per line,
//! printed by `Display` (`weblab tcp run --events`), read by tests as data.

use std::fmt;

use crate::link::Fate;
use crate::time::{Time, secs};

/// Where a data segment ended up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SegmentFate {
    /// The bottleneck queue was full (a congestion loss).
    QueueDrop,
    /// Lost on the wire (random loss).
    Lost,
    /// Reaches the receiver at this time.
    Arrives(Time),
}

impl SegmentFate {
    fn fmt_into(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentFate::QueueDrop => write!(f, "DROPPED (queue full)"),
            SegmentFate::Lost => write!(f, "LOST on the wire"),
            SegmentFate::Arrives(t) => write!(f, "arrives {:.6}", secs(*t)),
        }
    }
}

impl From<Fate> for SegmentFate {
    fn from(f: Fate) -> SegmentFate {
        match f {
            Fate::QueueDrop => SegmentFate::QueueDrop,
            Fate::Lost => SegmentFate::Lost,
            Fate::Arrives(t, _) => SegmentFate::Arrives(t),
        }
    }
}

/// One event of one flow.
#[derive(Clone, Debug, PartialEq)]
pub enum SegmentEvent {
    /// A data segment sent (`retransmit` when it is sent again).
    Data {
        seq: u64,
        len: u64,
        retransmit: bool,
        fate: SegmentFate,
    },
    /// An ACK reached the sender.
    Ack { ack: u64, window: u64 },
    /// Three duplicate ACKs: fast retransmit; Tahoe restarts from cwnd 1.
    FastRetransmitTahoe { seq: u64 },
    /// Three duplicate ACKs: fast retransmit and fast recovery (Reno, NewReno).
    FastRecovery { seq: u64, ssthresh: f64 },
    /// A loss found through SACK blocks (RFC 6675).
    SackLoss { seq: u64, ssthresh: f64 },
    /// A partial ACK in NewReno recovery retransmits the next hole.
    PartialAck { ack: u64, seq: u64 },
    /// The retransmission timer fired.
    Timeout { seq: u64, next_rto: Time },
    /// The receiver's window is zero: a probe (a segment of one byte)
    /// asks it again, and may be lost like any segment.
    ZeroWindowProbe { seq: u64, fate: SegmentFate },
    /// The receiver opened its window again (an ACK carrying it follows).
    WindowUpdate { window: u64 },
}

/// One line of the log: when, which flow, what.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub at: Time,
    pub flow: usize,
    pub event: SegmentEvent,
}

impl SegmentEvent {
    /// True for a segment sent again.
    pub fn is_retransmit(&self) -> bool {
        matches!(
            self,
            SegmentEvent::Data {
                retransmit: true,
                ..
            }
        )
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flow = self.flow;
        write!(f, "{:>12.6} ", secs(self.at))?;
        match &self.event {
            SegmentEvent::Data {
                seq,
                len,
                retransmit,
                fate,
            } => {
                let rtx = if *retransmit { " RETRANSMIT" } else { "" };
                write!(f, "flow{flow} -> DATA seq={seq} len={len}{rtx} ")?;
                fate.fmt_into(f)
            }
            SegmentEvent::Ack { ack, window } => {
                write!(f, "flow{flow} <- ACK ack={ack} win={window}")
            }
            SegmentEvent::FastRetransmitTahoe { seq } => write!(
                f,
                "flow{flow} <- 3 dup ACKs for {seq}: fast retransmit, cwnd=1 (Tahoe)"
            ),
            SegmentEvent::FastRecovery { seq, ssthresh } => write!(
                f,
                "flow{flow} <- 3 dup ACKs for {seq}: fast retransmit, ssthresh={ssthresh:.1}, fast recovery"
            ),
            SegmentEvent::SackLoss { seq, ssthresh } => write!(
                f,
                "flow{flow} <- loss of {seq} seen by SACK: retransmit, ssthresh={ssthresh:.1}, SACK recovery"
            ),
            SegmentEvent::PartialAck { ack, seq } => write!(
                f,
                "flow{flow} <- partial ACK {ack} in recovery: retransmit {seq}"
            ),
            SegmentEvent::Timeout { seq, next_rto } => write!(
                f,
                "flow{flow} RTO fired: retransmit {seq}, cwnd=1, next RTO {:.3}s",
                secs(*next_rto)
            ),
            SegmentEvent::ZeroWindowProbe { seq, fate } => {
                write!(f, "flow{flow} -> zero-window probe seq={seq} len=1 ")?;
                fate.fmt_into(f)
            }
            SegmentEvent::WindowUpdate { window } => {
                write!(
                    f,
                    "flow{flow} <- window update: the receiver's window is open again, win={window}"
                )
            }
        }
    }
}
