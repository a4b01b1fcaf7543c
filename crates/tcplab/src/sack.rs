//! Selective acknowledgment (RFC 2018) and SACK-based loss recovery
//! (RFC 6675), in whole segments: the receiver's blocks and the sender's
//! scoreboard. Pure data structures.

use std::collections::{BTreeMap, VecDeque};

/// At most this many blocks fit in an ACK next to timestamps (RFC 2018 §3).
pub const MAX_BLOCKS: usize = 3;

/// RFC 6675 DupThresh.
pub const DUP_THRESH: usize = 3;

/// A SACK block: segments `start..end` have arrived.
pub type Block = (u64, u64);

/// The receiver's view: which out-of-order ranges it holds, and which it
/// touched most recently (reported first, RFC 2018 §4).
#[derive(Clone, Debug, Default)]
pub struct ReceiverBlocks {
    blocks: BTreeMap<u64, u64>,
    recent: VecDeque<u64>,
}

impl ReceiverBlocks {
    /// Records that segment `seq` (above the cumulative point) arrived.
    pub fn add(&mut self, seq: u64) {
        let mut start = seq;
        let mut end = seq + 1;
        if let Some((&s, &e)) = self.blocks.range(..=seq).next_back()
            && e >= seq
        {
            if e > seq {
                self.touch(s);
                return; // already held
            }
            start = s;
            self.blocks.remove(&s);
        }
        if let Some(&e) = self.blocks.get(&end) {
            self.blocks.remove(&end);
            end = e;
        }
        self.blocks.insert(start, end);
        self.touch(start);
    }

    fn touch(&mut self, start: u64) {
        self.recent.retain(|s| *s != start);
        self.recent.push_front(start);
        self.recent.truncate(8);
    }

    /// Drops what the cumulative ACK point `rcv_nxt` has passed.
    pub fn advance(&mut self, rcv_nxt: u64) {
        while let Some((&s, &e)) = self.blocks.iter().next() {
            if e <= rcv_nxt {
                self.blocks.remove(&s);
            } else if s < rcv_nxt {
                self.blocks.remove(&s);
                self.blocks.insert(rcv_nxt, e);
            } else {
                break;
            }
        }
    }

    /// Up to three blocks, the most recently changed first.
    pub fn report(&self) -> ([Block; MAX_BLOCKS], u8) {
        let mut out = [(0, 0); MAX_BLOCKS];
        let mut n = 0;
        for &hint in &self.recent {
            if n == MAX_BLOCKS {
                break;
            }
            let Some((&s, &e)) = self.blocks.range(..=hint).next_back() else {
                continue;
            };
            if e <= hint || out[..n].contains(&(s, e)) {
                continue;
            }
            out[n] = (s, e);
            n += 1;
        }
        (out, n as u8)
    }
}

/// The sender's record of what the receiver holds (RFC 6675 §3).
#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    /// Segment number of index 0 (the oldest unacknowledged).
    base: u64,
    sacked: VecDeque<bool>,
    retransmitted: VecDeque<bool>,
}

impl Scoreboard {
    fn grow(&mut self, upto: u64) {
        while self.base + (self.sacked.len() as u64) < upto {
            self.sacked.push_back(false);
            self.retransmitted.push_back(false);
        }
    }

    /// The cumulative ACK moved to `una`.
    pub fn advance(&mut self, una: u64) {
        while self.base < una {
            if self.sacked.pop_front().is_none() {
                self.base = una;
                break;
            }
            self.retransmitted.pop_front();
            self.base += 1;
        }
    }

    /// Marks a reported block (clipped to what is outstanding).
    pub fn mark(&mut self, (start, end): Block, snd_max: u64) {
        let (start, end) = (start.max(self.base), end.min(snd_max));
        if start >= end {
            return;
        }
        self.grow(end);
        for seq in start..end {
            self.sacked[(seq - self.base) as usize] = true;
        }
    }

    pub fn is_sacked(&self, seq: u64) -> bool {
        seq >= self.base
            && self
                .sacked
                .get((seq - self.base) as usize)
                .copied()
                .unwrap_or(false)
    }

    pub fn set_retransmitted(&mut self, seq: u64) {
        if seq >= self.base {
            self.grow(seq + 1);
            self.retransmitted[(seq - self.base) as usize] = true;
        }
    }

    /// Forgets which segments were retransmitted (after a timeout every
    /// hole is fair game again).
    pub fn clear_retransmitted(&mut self) {
        self.retransmitted.iter_mut().for_each(|r| *r = false);
    }

    /// True when DupThresh segments above `seq` have been SACKed
    /// (RFC 6675 `IsLost`).
    pub fn is_lost(&self, seq: u64) -> bool {
        if seq < self.base {
            return false;
        }
        let i = (seq - self.base) as usize;
        self.sacked
            .iter()
            .skip(i + 1)
            .filter(|s| **s)
            .take(DUP_THRESH)
            .count()
            >= DUP_THRESH
    }

    /// One pass over the outstanding segments (RFC 6675 `SetPipe` and the
    /// first rule of `NextSeg`): the segments still in the network, and the
    /// lost ones not yet retransmitted, lowest first.
    pub fn plan(&self, snd_max: u64) -> (u64, Vec<u64>) {
        let n = snd_max.saturating_sub(self.base) as usize;
        let mut pipe = 0;
        let mut lost = Vec::new();
        let mut sacked_above = 0usize;
        for i in (0..n).rev() {
            let sacked = self.sacked.get(i).copied().unwrap_or(false);
            let retx = self.retransmitted.get(i).copied().unwrap_or(false);
            if sacked {
                sacked_above += 1;
                continue;
            }
            let is_lost = sacked_above >= DUP_THRESH;
            if !is_lost {
                pipe += 1;
            }
            if retx {
                pipe += 1;
            } else if is_lost {
                lost.push(self.base + i as u64);
            }
        }
        lost.reverse();
        (pipe, lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_blocks_merge_and_report_the_latest_first() {
        let mut r = ReceiverBlocks::default();
        for s in [5, 6, 9, 7] {
            r.add(s);
        }
        let (blocks, n) = r.report();
        assert_eq!(&blocks[..n as usize], &[(5, 8), (9, 10)]);
        r.add(12);
        let (blocks, n) = r.report();
        assert_eq!(&blocks[..n as usize], &[(12, 13), (5, 8), (9, 10)]);
        r.advance(8);
        let (blocks, n) = r.report();
        assert_eq!(&blocks[..n as usize], &[(12, 13), (9, 10)]);
    }

    #[test]
    fn scoreboard_finds_holes_with_three_sacked_above() {
        let mut s = Scoreboard::default();
        s.advance(10);
        // 10 and 12 lost; 11, 13, 14, 15 arrived; 16..20 outstanding.
        for b in [(11, 12), (13, 16)] {
            s.mark(b, 20);
        }
        assert!(s.is_lost(10) && s.is_lost(12));
        assert!(!s.is_lost(16));
        let (pipe, lost) = s.plan(20);
        assert_eq!(lost, [10, 12]);
        assert_eq!(pipe, 4, "16..20 are still in the network");
        s.set_retransmitted(10);
        let (pipe, lost) = s.plan(20);
        assert_eq!((pipe, lost), (5, vec![12]));
        s.advance(16);
        assert!(!s.is_sacked(15));
        assert_eq!(s.plan(20).0, 4);
    }
}
