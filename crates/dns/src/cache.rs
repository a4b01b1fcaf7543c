//! The resolver's cache: record sets by (name, type) with their TTL, plus
//! negative answers (RFC 2308). Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::Instant;

use hickory_proto::rr::{Name, Record, RecordType};

/// What the cache knows about a question.
#[derive(Clone, Debug, PartialEq)]
pub enum Cached {
    /// The records, with TTLs lowered by the time they spent in the cache.
    Records(Vec<Record>),
    /// The name does not exist (cached for every type, RFC 2308 §5), with
    /// the SOA the first answer carried, its TTL counted down (§6).
    NxDomain(Option<Record>),
    /// The name exists without this type, with its SOA likewise.
    NoData(Option<Record>),
}

#[derive(Clone, Debug)]
enum Value {
    Records(Vec<Record>),
    NxDomain(Option<Record>),
    NoData(Option<Record>),
}

#[derive(Clone, Debug)]
struct Entry {
    value: Value,
    stored: Instant,
    ttl: u32,
}

impl Entry {
    fn remaining(&self, now: Instant) -> Option<u32> {
        let age = now.saturating_duration_since(self.stored).as_secs();
        (age < u64::from(self.ttl)).then(|| self.ttl - age as u32)
    }
}

/// Keys are lowercase names; `None` as the type means "every type"
/// (an NXDOMAIN).
type Key = (Name, Option<RecordType>);

/// A TTL cache of record sets.
pub struct Cache {
    entries: HashMap<Key, Entry>,
    max_entries: usize,
    /// Upper bound for any TTL (like Unbound's `cache-max-ttl`).
    max_ttl: u32,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new(100_000)
    }
}

impl Cache {
    pub fn new(max_entries: usize) -> Self {
        Cache {
            entries: HashMap::new(),
            max_entries,
            max_ttl: 86_400,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks up `name`/`qtype` at time `now`. Expired entries are removed.
    pub fn get(&mut self, name: &Name, qtype: RecordType, now: Instant) -> Option<Cached> {
        let name = name.to_lowercase();
        for key in [(name.clone(), None), (name, Some(qtype))] {
            let Some(entry) = self.entries.get(&key) else {
                continue;
            };
            let Some(left) = entry.remaining(now) else {
                self.entries.remove(&key);
                continue;
            };
            let aged = |r: &Record| {
                let mut r = r.clone();
                r.ttl = left;
                r
            };
            return Some(match &entry.value {
                Value::NxDomain(soa) => Cached::NxDomain(soa.as_ref().map(aged)),
                Value::NoData(soa) => Cached::NoData(soa.as_ref().map(aged)),
                Value::Records(rs) => Cached::Records(rs.iter().map(aged).collect()),
            });
        }
        None
    }

    fn put(&mut self, key: Key, value: Value, ttl: u32, now: Instant) {
        if ttl == 0 {
            return; // TTL 0: use once, never cache (RFC 1035 §3.2.1)
        }
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(&key) {
            self.evict_expired(now);
            if self.entries.len() >= self.max_entries {
                return;
            }
        }
        self.entries.insert(
            key,
            Entry {
                value,
                stored: now,
                ttl: ttl.min(self.max_ttl),
            },
        );
    }

    /// Stores records grouped into sets by owner and type; a set's TTL is
    /// the smallest of its records (RFC 2181 §5.2).
    pub fn insert_records(&mut self, records: &[Record], now: Instant) {
        let mut sets: HashMap<Key, Vec<Record>> = HashMap::new();
        for r in records {
            sets.entry((r.name.to_lowercase(), Some(r.record_type())))
                .or_default()
                .push(r.clone());
        }
        for (key, set) in sets {
            let ttl = set.iter().map(|r| r.ttl).min().unwrap_or(0);
            self.put(key, Value::Records(set), ttl, now);
        }
    }

    /// Stores a negative answer for `ttl` seconds (the SOA minimum), with
    /// the SOA to repeat in answers from the cache.
    pub fn insert_negative(
        &mut self,
        name: &Name,
        qtype: RecordType,
        nxdomain: bool,
        soa: Option<Record>,
        ttl: u32,
        now: Instant,
    ) {
        let name = name.to_lowercase();
        if nxdomain {
            self.put((name, None), Value::NxDomain(soa), ttl, now);
        } else {
            self.put((name, Some(qtype)), Value::NoData(soa), ttl, now);
        }
    }

    fn evict_expired(&mut self, now: Instant) {
        self.entries.retain(|_, e| e.remaining(now).is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;

    fn secs(n: u64) -> std::time::Duration {
        std::time::Duration::from_secs(n)
    }

    fn a(name: &str, ttl: u32) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            ttl,
            RData::A(A::new(127, 0, 0, 1)),
        )
    }

    #[test]
    fn an_entry_lives_exactly_its_ttl_and_ages() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        let n = Name::from_ascii("X.test.").unwrap();
        c.insert_records(&[a("x.test.", 300)], t0);
        match c.get(&n, RecordType::A, t0 + secs(100)) {
            Some(Cached::Records(rs)) => assert_eq!(rs[0].ttl, 200),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.get(&n, RecordType::A, t0 + secs(300)), None);
        assert!(c.is_empty(), "expired entries are dropped on access");
    }

    #[test]
    fn nxdomain_covers_every_type_and_nodata_only_one() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        let n = Name::from_ascii("gone.test.").unwrap();
        c.insert_negative(&n, RecordType::A, true, Some(a("test.", 30)), 30, t0);
        match c.get(&n, RecordType::MX, t0 + secs(10)) {
            Some(Cached::NxDomain(Some(soa))) => assert_eq!(soa.ttl, 20, "counted down"),
            other => panic!("{other:?}"),
        }
        let m = Name::from_ascii("web.test.").unwrap();
        c.insert_negative(&m, RecordType::AAAA, false, None, 30, t0);
        assert_eq!(c.get(&m, RecordType::AAAA, t0), Some(Cached::NoData(None)));
        assert_eq!(c.get(&m, RecordType::A, t0), None);
        assert_eq!(c.get(&n, RecordType::A, t0 + secs(31)), None);
    }

    #[test]
    fn ttl_zero_is_not_cached_and_the_size_is_bounded() {
        let mut c = Cache::new(2);
        let t0 = Instant::now();
        c.insert_records(&[a("zero.test.", 0)], t0);
        assert!(c.is_empty());
        for name in ["a.test.", "b.test.", "c.test."] {
            c.insert_records(&[a(name, 60)], t0);
        }
        assert_eq!(c.len(), 2);
    }
}
