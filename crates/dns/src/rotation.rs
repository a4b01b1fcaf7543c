//! DNS round robin (C11), pure: the turn each RRset takes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::rr::{Name, Record, RecordType};

/// Round robin per RRset (C11): each (name, type) takes its own turns, so
/// asking for one name does not shift the order another name is given.
#[derive(Default)]
pub struct Rotation {
    turns: Mutex<HashMap<(Name, RecordType), Arc<AtomicUsize>>>,
}

/// RRsets whose turn is remembered; past this the turns start over.
const ROTATION_MEMORY: usize = 10_000;

/// The turns of one RRset: a reply kept for each turn can take the next
/// turn itself ([`Turns::next`]) without the records at hand.
#[derive(Clone, Debug)]
pub struct Turns {
    counter: Arc<AtomicUsize>,
    /// Records in the RRset: the turns there are.
    pub of: usize,
}

impl Turns {
    /// Takes the next turn: how far the RRset is rotated this time.
    pub fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed) % self.of
    }
}

impl Rotation {
    /// Rotates `records` when they are one RRset of several records, taking
    /// that RRset's next turn, or rotating them by `at` without taking a
    /// turn: the RRset's turns and how far it rotated (`None` when it does
    /// not rotate).
    pub fn rotate(&self, records: &mut [Record], at: Option<usize>) -> Option<(Turns, usize)> {
        let first = records.first()?;
        // Name compares and hashes case-insensitively: no lowercasing.
        let (name, rtype) = (&first.name, first.record_type());
        if records.len() < 2
            || !records
                .iter()
                .all(|r| r.record_type() == rtype && r.name == *name)
        {
            return None;
        }
        let counter = {
            let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            if turns.len() >= ROTATION_MEMORY {
                turns.clear();
            }
            turns.entry((name.clone(), rtype)).or_default().clone()
        };
        let turns = Turns {
            counter,
            of: records.len(),
        };
        let n = match at {
            Some(at) => at % turns.of,
            None => turns.next(),
        };
        records.rotate_left(n);
        Some((turns, n))
    }
}
