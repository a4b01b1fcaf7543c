//! The resolver's cache: record sets by (name, type) with their TTL, plus
//! negative answers (RFC 2308). Pure: the caller passes the time.
//!
//! Entries are kept in wire form, not as hickory `Record`s (272 bytes
//! each before their names): the key is the owner name lowercased in wire
//! form plus the type, the value the owner name as received and each
//! record's TTL, length and RDATA. A million cached names then take about
//! 200 MB instead of 1.9 GB (`cargo run --release -p weblab-dns --example
//! cache_memory`); a hit decodes its few records again.

use std::collections::HashMap;
use std::time::Instant;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, Restrict,
};

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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Records,
    NxDomain,
    NoData,
}

#[derive(Clone, Debug)]
struct Entry {
    kind: Kind,
    /// Records: the owner name, then per record its type, TTL, RDATA
    /// length and RDATA. Negative: the SOA record the same way, or empty.
    data: Box<[u8]>,
    /// When stored, in milliseconds since the cache was made.
    stored_ms: u64,
    ttl: u32,
    /// Which store this was (a count kept by the cache): a reply made
    /// from an entry is only good while this entry is the one there.
    generation: u64,
}

/// The type part of a key for an NXDOMAIN, which covers every type.
const EVERY_TYPE: u16 = 0xffff;

/// Builds a key: the lowercase wire form of `name` and a type.
fn key(name: &Name, rtype: u16, out: &mut Vec<u8>) {
    out.clear();
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out.extend_from_slice(&rtype.to_be_bytes());
}

/// The lowercase wire form of `name`: the name part of its keys, by which
/// [`Cache::probe`] looks an entry up again without a parsed name.
pub fn name_key(name: &Name) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    key(name, 0, &mut k);
    k.truncate(k.len() - 2);
    k
}

/// Which entry answers a question now, as [`Cache::get`] would decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The entry's store (see `Entry::generation`).
    pub generation: u64,
    /// Whole seconds it has left: the TTL its records are given.
    pub left: u32,
}

/// Appends `records` (one owner) in the entry layout; `None` if one cannot
/// be encoded.
fn encode(records: &[Record]) -> Option<Box<[u8]>> {
    let mut out = Vec::with_capacity(64);
    {
        let mut e = BinEncoder::new(&mut out);
        records.first()?.name.emit(&mut e).ok()?;
    }
    for r in records {
        let mut rdata = Vec::with_capacity(16);
        // Its own encoder: a name compressed inside this RDATA points
        // into this RDATA only, which is how it is decoded again.
        r.data.emit(&mut BinEncoder::new(&mut rdata)).ok()?;
        out.extend_from_slice(&u16::from(r.record_type()).to_be_bytes());
        out.extend_from_slice(&r.ttl.to_be_bytes());
        out.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out.into_boxed_slice())
}

/// The records of an entry, each with TTL `ttl`.
fn decode(data: &[u8], ttl: u32) -> Option<Vec<Record>> {
    let mut d = BinDecoder::new(data);
    let name = Name::read(&mut d).ok()?;
    let mut at = d.index();
    let mut out = Vec::new();
    while at < data.len() {
        let head = data.get(at..at + 8)?;
        let rtype = RecordType::from(u16::from_be_bytes([head[0], head[1]]));
        let len = u16::from_be_bytes([head[6], head[7]]);
        let body = data.get(at + 8..at + 8 + usize::from(len))?;
        let rdata = RData::read(&mut BinDecoder::new(body), rtype, Restrict::new(len)).ok()?;
        out.push(Record::from_rdata(name.clone(), ttl, rdata));
        at += 8 + usize::from(len);
    }
    Some(out)
}

/// A TTL cache of record sets.
pub struct Cache {
    entries: HashMap<Box<[u8]>, Entry>,
    /// Stores made so far.
    stores: u64,
    epoch: Instant,
    max_entries: usize,
    /// Upper bound for any TTL (like Unbound's `cache-max-ttl`).
    max_ttl: u32,
}

/// Entries a resolver keeps at most: a million names, about 200 MB.
pub const DEFAULT_ENTRIES: usize = 1_000_000;

impl Default for Cache {
    fn default() -> Self {
        Cache::new(DEFAULT_ENTRIES)
    }
}

impl Cache {
    pub fn new(max_entries: usize) -> Self {
        Cache {
            entries: HashMap::new(),
            stores: 0,
            epoch: Instant::now(),
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

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Whole seconds left for an entry at `now_ms`, if any.
    fn remaining(e: &Entry, now_ms: u64) -> Option<u32> {
        let age = now_ms.saturating_sub(e.stored_ms) / 1000;
        (age < u64::from(e.ttl)).then(|| e.ttl - age as u32)
    }

    /// Looks up `name`/`qtype` at time `now`. Expired entries are removed.
    pub fn get(&mut self, name: &Name, qtype: RecordType, now: Instant) -> Option<Cached> {
        self.get_probed(name, qtype, now).map(|(c, _)| c)
    }

    /// [`Cache::get`], and which entry answered (see [`Cache::probe`]).
    pub fn get_probed(
        &mut self,
        name: &Name,
        qtype: RecordType,
        now: Instant,
    ) -> Option<(Cached, Probe)> {
        let mut k = name_key(name);
        let now_ms = self.ms(now);
        let (entry, left) = self.find(&mut k, u16::from(qtype), now_ms)?;
        let soa = || decode(&entry.data, left).and_then(|mut v| v.pop());
        let cached = match entry.kind {
            Kind::NxDomain => Cached::NxDomain(soa()),
            Kind::NoData => Cached::NoData(soa()),
            Kind::Records => Cached::Records(decode(&entry.data, left)?),
        };
        let probe = Probe {
            generation: entry.generation,
            left,
        };
        Some((cached, probe))
    }

    /// Which entry [`Cache::get`] would answer from for the name in
    /// lowercase wire form `name` ([`name_key`]) and `qtype` at `now`,
    /// without decoding it. Expired entries are removed, as `get` does.
    pub fn probe(&mut self, name: &[u8], qtype: RecordType, now: Instant) -> Option<Probe> {
        let mut k = name.to_vec();
        let now_ms = self.ms(now);
        let (entry, left) = self.find(&mut k, u16::from(qtype), now_ms)?;
        Some(Probe {
            generation: entry.generation,
            left,
        })
    }

    /// The live entry for `name` (lowercase wire form, left as it came)
    /// and `qtype`: a cached NXDOMAIN first (it covers every type), then
    /// the type's own entry.
    fn find(&mut self, name: &mut Vec<u8>, qtype: u16, now_ms: u64) -> Option<(&Entry, u32)> {
        let n = name.len();
        let mut found = None;
        for t in [EVERY_TYPE, qtype] {
            name.truncate(n);
            name.extend_from_slice(&t.to_be_bytes());
            let Some(entry) = self.entries.get(name.as_slice()) else {
                continue;
            };
            match Self::remaining(entry, now_ms) {
                Some(left) => {
                    found = Some(left);
                    break;
                }
                None => {
                    self.entries.remove(name.as_slice());
                }
            }
        }
        let left = found?;
        let entry = self.entries.get(name.as_slice())?;
        name.truncate(n);
        Some((entry, left))
    }

    fn put(&mut self, key: Box<[u8]>, kind: Kind, data: Box<[u8]>, ttl: u32, now: Instant) {
        if ttl == 0 {
            return; // TTL 0: use once, never cache (RFC 1035 §3.2.1)
        }
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(&key) {
            self.evict_expired(now);
            if self.entries.len() >= self.max_entries {
                return;
            }
        }
        let stored_ms = self.ms(now);
        self.stores += 1;
        self.entries.insert(
            key,
            Entry {
                kind,
                data,
                stored_ms,
                ttl: ttl.min(self.max_ttl),
                generation: self.stores,
            },
        );
    }

    /// Stores records grouped into sets by owner and type; a set's TTL is
    /// the smallest of its records (RFC 2181 §5.2).
    pub fn insert_records(&mut self, records: &[Record], now: Instant) {
        let mut sets: Vec<(Vec<u8>, Vec<Record>)> = Vec::new();
        let mut k = Vec::with_capacity(64);
        for r in records {
            key(&r.name, u16::from(r.record_type()), &mut k);
            match sets.iter_mut().find(|(sk, _)| *sk == k) {
                Some((_, set)) => set.push(r.clone()),
                None => sets.push((k.clone(), vec![r.clone()])),
            }
        }
        for (k, set) in sets {
            let ttl = set.iter().map(|r| r.ttl).min().unwrap_or(0);
            if let Some(data) = encode(&set) {
                self.put(k.into_boxed_slice(), Kind::Records, data, ttl, now);
            }
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
        let mut k = Vec::new();
        let (t, kind) = match nxdomain {
            true => (EVERY_TYPE, Kind::NxDomain),
            false => (u16::from(qtype), Kind::NoData),
        };
        key(name, t, &mut k);
        let data = soa
            .and_then(|s| encode(std::slice::from_ref(&s)))
            .unwrap_or_default();
        self.put(k.into_boxed_slice(), kind, data, ttl, now);
    }

    fn evict_expired(&mut self, now: Instant) {
        let now_ms = self.ms(now);
        self.entries
            .retain(|_, e| Self::remaining(e, now_ms).is_some());
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
    fn a_probe_names_the_entry_get_would_read_and_its_time_left() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        let n = Name::from_ascii("X.test.").unwrap();
        let wire = name_key(&n);
        assert_eq!(wire, b"\x01x\x04test\x00", "lowercase wire form");
        assert_eq!(c.probe(&wire, RecordType::A, t0), None);
        c.insert_records(&[a("x.test.", 300)], t0);
        let p = c.probe(&wire, RecordType::A, t0 + secs(100)).unwrap();
        let Some((Cached::Records(rs), got)) = c.get_probed(&n, RecordType::A, t0 + secs(100))
        else {
            panic!("a hit")
        };
        assert_eq!(p.left, rs[0].ttl);
        assert_eq!(p, got, "get names the entry probe finds");
        // Stored again: another entry, though the same name and time.
        c.insert_records(&[a("x.test.", 300)], t0);
        let q = c.probe(&wire, RecordType::A, t0 + secs(100)).unwrap();
        assert_ne!(p.generation, q.generation);
        // An NXDOMAIN for the name is what get reads first, and so does probe.
        c.insert_negative(&n, RecordType::A, true, None, 60, t0);
        assert_ne!(
            c.probe(&wire, RecordType::A, t0).unwrap().generation,
            q.generation
        );
        assert!(matches!(
            c.get(&n, RecordType::A, t0),
            Some(Cached::NxDomain(_))
        ));
        // Expired: nothing, as get.
        assert_eq!(c.probe(&wire, RecordType::A, t0 + secs(400)), None);
        assert_eq!(c.get(&n, RecordType::A, t0 + secs(400)), None);
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

    #[test]
    fn every_kind_of_record_comes_back_as_it_went_in_with_its_case() {
        use crate::zone::{Zone, ZoneAnswer};
        let zone = Zone::parse(
            "$TTL 300\n@ IN SOA ns1.Example.test. h.example.test. 7 1 2 3 60\n@ IN NS ns1\n\
             ns1 IN A 127.0.0.1\nMail IN MX 10 mx.Example.test.\nText IN TXT \"hello world\" \"two\"\n\
             v6 IN AAAA ::1\nAlias IN CNAME target.Other.test.\n_sip._tcp IN SRV 1 2 5060 sip.example.test.\n\
             1 IN PTR host.example.test.\n@ IN CAA 0 issue \"ca.test\"\n",
            "Example.test.",
        )
        .unwrap();
        let mut c = Cache::default();
        let t0 = Instant::now();
        let mut n = 0;
        for r in zone.records() {
            let name = r.name.clone();
            let ZoneAnswer::Answer(set) = zone.lookup(&name, r.record_type()) else {
                panic!("{r}")
            };
            c.insert_records(&set, t0);
            let Some(Cached::Records(back)) = c.get(&name.to_lowercase(), r.record_type(), t0)
            else {
                panic!("{r} not cached")
            };
            assert_eq!(back, set, "{r}");
            assert_eq!(back[0].name.to_string(), name.to_string(), "case kept");
            n += 1;
        }
        assert!(n >= 10, "{n}");
    }
}
