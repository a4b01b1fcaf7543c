//! DNS round robin (C11), pure: the turn each RRset takes.

use std::collections::HashMap;
use std::sync::Mutex;

use hickory_proto::rr::{Name, Record, RecordType};

/// Round robin per RRset (C11): each (name, type) takes its own turns, so
/// asking for one name does not shift the order another name is given.
#[derive(Default)]
pub struct Rotation {
    turns: Mutex<HashMap<(Name, RecordType), usize>>,
}

/// RRsets whose turn is remembered; past this the turns start over.
const ROTATION_MEMORY: usize = 10_000;

impl Rotation {
    /// Rotates `records` when they are one RRset of several records.
    pub fn rotate(&self, records: &mut [Record]) {
        let Some(first) = records.first() else {
            return;
        };
        // Name compares and hashes case-insensitively: no lowercasing.
        let (name, rtype) = (&first.name, first.record_type());
        if records.len() < 2
            || !records
                .iter()
                .all(|r| r.record_type() == rtype && r.name == *name)
        {
            return;
        }
        let name = name.clone();
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        if turns.len() >= ROTATION_MEMORY {
            turns.clear();
        }
        let turn = turns.entry((name, rtype)).or_insert(0);
        let n = *turn % records.len();
        *turn = turn.wrapping_add(1);
        records.rotate_left(n);
    }
}
