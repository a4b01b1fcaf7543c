//! Replies kept for questions asked again: by the query's bytes after its
//! id (UDP and TCP apart, a UDP reply may be truncated), one reply per turn
//! of a rotating RRset, bounded in bytes. The authoritative server keeps
//! every reply its zones alone decide; the resolver keeps cache hits, with
//! where their TTLs sit so that a copy can carry the time left.
//!
//! Unbound keeps replies in a message cache for the same reason: parsing,
//! looking up and encoding again per query was most of weblab's DNS
//! servers' own CPU under load (a perf profile at 100k q/s: ~20 % of the
//! authoritative server's CPU, ~11 % once replies were kept).
//!
//! [`Kept::find`] hands what it found to a closure under the store's lock;
//! the resolver's takes its cache's lock inside it, and never the other
//! way round.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::message::Transport;
use crate::rotation::Turns;

/// Bytes of queries and replies kept by default; past this the kept
/// replies start over, so a flood of distinct names (or of large queries
/// and answers) costs bounded memory and only the work it would have cost
/// anyway.
pub const KEPT_BYTES: usize = 8 << 20;

/// Queries longer than this are answered but their reply not kept (an
/// ordinary query is under 100 bytes; EDNS options can make one huge).
const KEPT_QUERY_MAX: usize = 512;

type Map<T> = HashMap<Box<[u8]>, Reply<T>, foldhash::fast::RandomState>;

/// Kept replies, with `T` kept beside each (what a trace or a check needs).
pub struct Kept<T> {
    inner: Mutex<Inner<T>>,
    max: usize,
}

struct Inner<T> {
    udp: Map<T>,
    tcp: Map<T>,
    /// Query and reply bytes held, near enough.
    bytes: usize,
}

/// The reply to one question.
pub struct Reply<T> {
    turns: Option<Turns>,
    slots: Box<[Option<Slot>]>,
    pub meta: T,
}

/// One turn's reply, and the offsets of the TTL fields in it.
pub struct Slot {
    pub bytes: Box<[u8]>,
    pub ttls: Box<[u16]>,
}

/// What a lookup found.
pub enum Found<'a, T> {
    /// The reply for this turn, and what was kept beside it.
    Ready(&'a Slot, &'a T),
    /// The question is known, but this turn has no reply yet.
    Missing(usize, &'a T),
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Kept::new(KEPT_BYTES)
    }
}

impl<T> Inner<T> {
    fn of(&mut self, transport: Transport) -> &mut Map<T> {
        match transport {
            Transport::Udp => &mut self.udp,
            Transport::Tcp => &mut self.tcp,
        }
    }
}

impl<T> Kept<T> {
    /// Keeps at most `max` bytes of queries and replies.
    pub fn new(max: usize) -> Self {
        Kept {
            inner: Mutex::new(Inner {
                udp: Map::default(),
                tcp: Map::default(),
                bytes: 0,
            }),
            max,
        }
    }

    /// Looks `query` up, taking its RRset's next turn, and hands what was
    /// found to `use_it` (under the lock: it should only copy).
    pub fn find<R>(
        &self,
        query: &[u8],
        transport: Transport,
        use_it: impl FnOnce(Found<'_, T>) -> R,
    ) -> Option<R> {
        let question = query.get(2..).filter(|_| query.len() >= 12)?;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let reply = inner.of(transport).get(question)?;
        let turn = reply.turns.as_ref().map_or(0, Turns::next);
        Some(use_it(match &reply.slots[turn] {
            Some(slot) => Found::Ready(slot, &reply.meta),
            None => Found::Missing(turn, &reply.meta),
        }))
    }

    /// Forgets the reply to `query` (what it was made from changed).
    pub fn forget(&self, query: &[u8], transport: Transport) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(question) = query.get(2..) {
            inner.of(transport).remove(question);
        }
    }

    /// Keeps `reply` as the answer to `query` at `turn` of its RRset, with
    /// `meta` beside it (made only for a question new here).
    pub fn keep(
        &self,
        query: &[u8],
        transport: Transport,
        turn: Option<(Turns, usize)>,
        slot: Slot,
        meta: impl FnOnce() -> T,
    ) {
        if query.len() < 12 || query.len() > KEPT_QUERY_MAX {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let adds = query.len() + slot.bytes.len() + 2 * slot.ttls.len();
        if inner.bytes + adds > self.max {
            inner.udp.clear();
            inner.tcp.clear();
            inner.bytes = 0;
        }
        inner.bytes += adds;
        let (turns, at) = match turn {
            Some((turns, at)) => (Some(turns), at),
            None => (None, 0),
        };
        let reply = inner
            .of(transport)
            .entry(query[2..].into())
            .or_insert_with(|| Reply {
                slots: std::iter::repeat_with(|| None)
                    .take(turns.as_ref().map_or(1, |t| t.of))
                    .collect(),
                turns,
                meta: meta(),
            });
        if let Some(s) = reply.slots.get_mut(at) {
            *s = Some(slot);
        }
    }

    /// Replies kept (UDP, TCP) and their bytes.
    #[cfg(test)]
    pub fn held(&self) -> (usize, usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.udp.len(), inner.tcp.len(), inner.bytes)
    }
}

impl Slot {
    /// A copy of this reply with `query`'s id, and `ttl` in every TTL field
    /// noted.
    pub fn copy_for(&self, query: &[u8], ttl: Option<u32>) -> Vec<u8> {
        let mut out = self.bytes.to_vec();
        out[..2].copy_from_slice(&query[..2]);
        if let Some(ttl) = ttl {
            for &at in &self.ttls {
                let at = usize::from(at);
                out[at..at + 4].copy_from_slice(&ttl.to_be_bytes());
            }
        }
        out
    }
}

/// Where the TTL fields of `reply`'s records are (the OPT pseudo-record's
/// is its flags, not a TTL) and the TTLs they hold; `None` if the reply
/// cannot be walked (it always can: we encoded it).
pub fn ttl_fields(reply: &[u8]) -> Option<Vec<(u16, u32)>> {
    let count = |at: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes(
            reply.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let (qd, records) = (count(4)?, count(6)? + count(8)? + count(10)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(reply, at)? + 4;
    }
    let mut out = Vec::with_capacity(records);
    for _ in 0..records {
        at = skip_name(reply, at)?;
        let fixed = reply.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if rtype != 41 {
            out.push((u16::try_from(at + 4).ok()?, ttl));
        }
        at += 10 + len;
    }
    (at == reply.len()).then_some(out)
}

/// The offset just past the name at `at` (labels, ending in a zero or a
/// compression pointer). The cookie reader walks queries with it too.
pub(crate) fn skip_name(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *b.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};

    #[test]
    fn ttl_fields_are_found_in_every_section_but_not_in_opt() {
        let mut m = Message::query();
        let name = Name::from_ascii("a.test.").unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        for (i, ttl) in [(1u8, 300u32), (2, 301)] {
            m.add_answer(Record::from_rdata(
                name.clone(),
                ttl,
                RData::A(A::new(127, 0, 0, i)),
            ));
        }
        m.add_additional(Record::from_rdata(
            Name::from_ascii("b.test.").unwrap(),
            7,
            RData::A(A::new(127, 0, 0, 9)),
        ));
        m.set_edns(Edns::new());
        let bytes = m.to_vec().unwrap();
        let found = ttl_fields(&bytes).unwrap();
        let ttls: Vec<u32> = found.iter().map(|(_, t)| *t).collect();
        assert_eq!(ttls, [300, 301, 7]);
        // Patched at those offsets, the message reads back with the TTLs.
        let slot = Slot {
            bytes: bytes.clone().into(),
            ttls: found.iter().map(|(at, _)| *at).collect(),
        };
        let mut query = bytes.clone();
        query[..2].copy_from_slice(&[0xAB, 0xCD]);
        let back = Message::from_vec(&slot.copy_for(&query, Some(42))).unwrap();
        assert_eq!(back.metadata.id, 0xABCD);
        assert!(
            back.answers
                .iter()
                .chain(&back.additionals)
                .all(|r| r.ttl == 42)
        );
        assert!(back.edns.is_some(), "OPT untouched");
        // A cut reply cannot be walked.
        assert!(ttl_fields(&bytes[..bytes.len() - 1]).is_none());
    }
}
