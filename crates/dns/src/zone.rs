//! Zones in master-file format (RFC 1035 §5) and the authoritative lookup
//! over them (RFC 1034 §4.3.2). Pure: no sockets, no clock.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

use crate::error::DnsError;

/// A name's key: its labels lowercased, each after its length byte (the
/// wire form without the root's empty label). An ancestor's key is a
/// suffix of it, so one key per question serves every level.
fn key_of(name: &Name, key: &mut Vec<u8>, starts: &mut Vec<usize>) {
    key.clear();
    starts.clear();
    for label in name.iter() {
        starts.push(key.len());
        key.push(label.len() as u8);
        key.extend(label.iter().map(u8::to_ascii_lowercase));
    }
}

/// What the zone holds at one name. Names that own nothing but have
/// names below them (empty non-terminals) are here with no records.
#[derive(Clone, Debug, Default)]
struct Node {
    records: Vec<Record>,
    /// A delegation point: NS records below the origin.
    cut: bool,
}

/// One zone: its origin and every record in it, by owner name.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: Name,
    nodes: HashMap<Box<[u8]>, Node>,
    /// The SOA for negative answers, its TTL clamped to the minimum.
    negative_soa: Record,
}

/// What a zone says about a question.
#[derive(Clone, Debug, PartialEq)]
pub enum ZoneAnswer {
    /// Records of the asked type (after any CNAME chain inside the zone).
    Answer(Vec<Record>),
    /// The name lies in a child zone: its NS set and the glue we hold.
    Referral {
        zone: Name,
        ns: Vec<Record>,
        glue: Vec<Record>,
    },
    /// The name does not exist; the SOA goes in the authority section.
    NxDomain(Record),
    /// The name exists without records of this type.
    NoData(Record),
}

impl Zone {
    /// Parses master-file text. `origin` is used for relative names and must
    /// match the zone's SOA owner.
    pub fn parse(text: &str, origin: &str) -> Result<Zone, DnsError> {
        let origin_name = Name::from_ascii(origin)
            .map_err(|e| DnsError::zone(origin, format!("bad origin: {e}")))?;
        let (parsed_origin, sets) = Parser::new(text, None, Some(origin_name.clone()))
            .parse()
            .map_err(|e| match bad_line(text, &origin_name) {
                Some(line) => DnsError::zone_at(origin, line, e.to_string()),
                None => DnsError::zone(origin, e.to_string()),
            })?;
        let origin_name = parsed_origin.to_lowercase();
        let mut nodes: HashMap<Box<[u8]>, Node> = HashMap::new();
        let (mut key, mut starts) = (Vec::new(), Vec::new());
        for set in sets.values() {
            for r in set.records_without_rrsigs() {
                key_of(&r.name, &mut key, &mut starts);
                nodes
                    .entry(key.as_slice().into())
                    .or_default()
                    .records
                    .push(r.clone());
                // Every ancestor inside the zone exists too (RFC 8020).
                // `starts` counts a wildcard's `*`, which num_labels() leaves
                // out: `wild` exists as the parent of `*.wild`.
                for labels in origin_name.num_labels() as usize..starts.len() {
                    let at = match labels {
                        0 => key.len(), // the root
                        l => starts[starts.len() - l],
                    };
                    nodes.entry(key[at..].into()).or_default();
                }
            }
        }
        let origin_len = origin_name.num_labels();
        for (k, node) in nodes.iter_mut() {
            let labels = {
                let (mut i, mut n) = (0, 0u8);
                while i < k.len() {
                    i += 1 + usize::from(k[i]);
                    n += 1;
                }
                n
            };
            node.cut = labels > origin_len
                && node
                    .records
                    .iter()
                    .any(|r| r.record_type() == RecordType::NS);
        }
        key_of(&origin_name, &mut key, &mut starts);
        let soa = nodes
            .get(key.as_slice())
            .and_then(|n| {
                n.records
                    .iter()
                    .find(|r| r.record_type() == RecordType::SOA)
            })
            .cloned();
        let Some(mut negative_soa) = soa else {
            return Err(DnsError::zone(
                origin,
                "the zone has no SOA record at its origin",
            ));
        };
        if let RData::SOA(s) = &negative_soa.data {
            negative_soa.ttl = negative_soa.ttl.min(s.minimum);
        }
        Ok(Zone {
            origin: origin_name,
            nodes,
            negative_soa,
        })
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Every record of the zone.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.nodes.values().flat_map(|n| &n.records)
    }

    /// Rewrites every A record address with `f` (used to move a world to
    /// another loopback block).
    pub fn map_ipv4(&mut self, f: &dyn Fn(Ipv4Addr) -> Ipv4Addr) {
        for r in self.nodes.values_mut().flat_map(|n| &mut n.records) {
            if let RData::A(a) = &r.data {
                r.data = RData::A(A(f(a.0)));
            }
        }
    }

    /// The records of `rtype` at `key` (every type for ANY: a non-empty
    /// answer where the name has data, a subset RFC 8482 §4 allows).
    fn rrset(&self, key: &[u8], rtype: RecordType) -> Vec<Record> {
        self.nodes
            .get(key)
            .map(|n| {
                n.records
                    .iter()
                    .filter(|r| rtype == RecordType::ANY || r.record_type() == rtype)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Addresses this zone holds for the names that `records` point to
    /// (NS, MX and SRV targets): the glue of a referral, and the
    /// additional section of an answer (RFC 1035 §3.3.9, RFC 2782), so a
    /// client need not ask again. Records already in `records` are left
    /// out.
    pub fn addresses_for(&self, records: &[Record]) -> Vec<Record> {
        let (mut key, mut starts) = (Vec::new(), Vec::new());
        let mut out: Vec<Record> = Vec::new();
        for r in records {
            let target = match &r.data {
                RData::NS(t) => &t.0,
                RData::MX(mx) => &mx.exchange,
                RData::SRV(srv) => &srv.target,
                _ => continue,
            };
            key_of(target, &mut key, &mut starts);
            let Some(n) = self.nodes.get(key.as_slice()) else {
                continue;
            };
            for a in &n.records {
                if matches!(a.record_type(), RecordType::A | RecordType::AAAA)
                    && !records.contains(a)
                    && !out.contains(a)
                {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    /// The wildcard that answers for `key`, a name the zone does not hold
    /// (RFC 1034 §4.3.3, RFC 4592 §3.3.1): `*.` + its closest encloser,
    /// the longest ancestor that exists. None when that has no wildcard
    /// child (then the name does not exist).
    fn wildcard_for(&self, key: &[u8], starts: &[usize]) -> Option<Vec<u8>> {
        let encloser = starts[1..]
            .iter()
            .map(|&at| &key[at..])
            .chain(std::iter::once(&key[key.len()..]))
            .find(|k| self.nodes.contains_key(*k))?;
        let mut wild = Vec::with_capacity(encloser.len() + 2);
        wild.extend_from_slice(&[1, b'*']);
        wild.extend_from_slice(encloser);
        self.nodes.contains_key(wild.as_slice()).then_some(wild)
    }

    /// Answers `qname`/`qtype` from this zone (the caller checked that the
    /// zone contains `qname`).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> ZoneAnswer {
        let mut name = qname.clone();
        let mut answer = Vec::new();
        let (mut key, mut starts) = (Vec::with_capacity(64), Vec::with_capacity(8));
        let depth = self.origin.num_labels() as usize;
        // Follow CNAMEs inside the zone, at most 8 deep (loops are config errors).
        for _ in 0..8 {
            key_of(&name, &mut key, &mut starts);
            let labels = starts.len();
            // The highest cut strictly below the origin that covers the name.
            // DS records live on the parent's side of a cut (RFC 4035
            // §3.1.4.1): a DS question about the cut itself is ours to
            // answer, not to refer.
            let top = match qtype {
                RecordType::DS => labels.saturating_sub(1),
                _ => labels,
            };
            let cut = (depth + 1..=top).find_map(|l| {
                let at = starts[labels - l];
                let node = self.nodes.get(&key[at..]).filter(|n| n.cut)?;
                Some((l, node))
            });
            if let Some((l, node)) = cut {
                // A delegation is not authoritative data of ours (RFC 1034 §4.3.2 step 3b).
                if answer.is_empty() {
                    let ns: Vec<Record> = node
                        .records
                        .iter()
                        .filter(|r| r.record_type() == RecordType::NS)
                        .cloned()
                        .collect();
                    let glue = self.addresses_for(&ns);
                    let zone = name.trim_to(l).to_lowercase();
                    return ZoneAnswer::Referral { zone, ns, glue };
                }
                return ZoneAnswer::Answer(answer);
            }
            // A name the zone lacks may be answered by a wildcard, its
            // records given the asked name as owner.
            let wild = match self.nodes.contains_key(key.as_slice()) {
                true => None,
                false => match self.wildcard_for(&key, &starts) {
                    Some(wild) => Some(wild),
                    None if answer.is_empty() => {
                        return ZoneAnswer::NxDomain(self.negative_soa.clone());
                    }
                    None => return ZoneAnswer::Answer(answer),
                },
            };
            let at = wild.as_deref().unwrap_or(&key);
            let owned = |mut records: Vec<Record>| {
                if wild.is_some() {
                    records.iter_mut().for_each(|r| r.name = name.clone());
                }
                records
            };
            let direct = owned(self.rrset(at, qtype));
            if !direct.is_empty() {
                answer.extend(direct);
                return ZoneAnswer::Answer(answer);
            }
            let cname = owned(self.rrset(at, RecordType::CNAME));
            match cname.first().map(|r| r.data.clone()) {
                Some(RData::CNAME(target)) if qtype != RecordType::CNAME => {
                    answer.extend(cname);
                    if !self.origin.zone_of(&target.0) {
                        return ZoneAnswer::Answer(answer);
                    }
                    name = target.0;
                }
                _ => {
                    return if answer.is_empty() {
                        ZoneAnswer::NoData(self.negative_soa.clone())
                    } else {
                        ZoneAnswer::Answer(answer)
                    };
                }
            }
        }
        ZoneAnswer::Answer(answer)
    }
}

/// The line where parsing `text` first fails. hickory's parser does not
/// say, so the text is parsed a line more at a time until it fails;
/// prefixes that end inside a parenthesised record are skipped (they fail
/// for the wrong reason). Only run after a failure.
fn bad_line(text: &str, origin: &Name) -> Option<usize> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut prefix = String::new();
    let mut depth = 0i32;
    for (i, line) in lines.iter().enumerate() {
        prefix.push_str(line);
        let code = line.split(';').next().unwrap_or("");
        depth += code.matches('(').count() as i32 - code.matches(')').count() as i32;
        if depth > 0 {
            continue;
        }
        if Parser::new(prefix.as_str(), None, Some(origin.clone()))
            .parse()
            .is_err()
        {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: &str = "
$TTL 3600
@       IN SOA ns1.test. admin.test. 1 7200 900 1209600 300
@       IN NS  ns1.test.
ns1     IN A   127.0.2.2
myapp   IN NS  ns1.myapp.test.
ns1.myapp IN A 127.0.2.3
www     IN CNAME web
web     IN A   127.0.3.1
web     IN A   127.0.3.2
deep.x.y IN A  127.0.3.9
";

    fn zone() -> Zone {
        Zone::parse(TEST, "test.").unwrap()
    }

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn a_child_zone_is_a_referral_with_glue() {
        let ZoneAnswer::Referral { zone, ns, glue } =
            zone().lookup(&n("login.myapp.test."), RecordType::A)
        else {
            panic!("expected a referral")
        };
        assert_eq!(zone, n("myapp.test."));
        assert_eq!(ns.len(), 1);
        assert_eq!(glue.len(), 1);
        assert_eq!(glue[0].data, RData::A(A::new(127, 0, 2, 3)));
    }

    #[test]
    fn names_are_matched_case_insensitively_and_cnames_followed() {
        let ZoneAnswer::Answer(rs) = zone().lookup(&n("WWW.Test."), RecordType::A) else {
            panic!()
        };
        let types: Vec<_> = rs.iter().map(|r| r.record_type()).collect();
        assert_eq!(types, [RecordType::CNAME, RecordType::A, RecordType::A]);
    }

    #[test]
    fn missing_names_and_types_give_negative_answers_with_the_soa_minimum() {
        match zone().lookup(&n("nope.test."), RecordType::A) {
            ZoneAnswer::NxDomain(soa) => assert_eq!(soa.ttl, 300),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            zone().lookup(&n("web.test."), RecordType::MX),
            ZoneAnswer::NoData(_)
        ));
        // An empty non-terminal exists (RFC 8020), so it is NODATA, not NXDOMAIN.
        assert!(matches!(
            zone().lookup(&n("x.y.test."), RecordType::A),
            ZoneAnswer::NoData(_)
        ));
        // The parent answers a DS question about its child itself.
        assert!(matches!(
            zone().lookup(&n("myapp.test."), RecordType::DS),
            ZoneAnswer::NoData(_)
        ));
        assert!(matches!(
            zone().lookup(&n("x.myapp.test."), RecordType::DS),
            ZoneAnswer::Referral { .. }
        ));
    }

    #[test]
    fn the_root_zone_refers_and_knows_its_empty_non_terminals() {
        let root = Zone::parse(
            "$TTL 60\n@ IN SOA a.root. h. 1 1 1 1 30\n@ IN NS a.root\na.root IN A 127.0.0.1\ntest. IN NS ns.test.\nns.test. IN A 127.0.0.2\n",
            ".",
        )
        .unwrap();
        let ZoneAnswer::Referral { zone, glue, .. } = root.lookup(&n("www.Test."), RecordType::A)
        else {
            panic!()
        };
        assert_eq!((zone, glue.len()), (n("test."), 1));
        assert!(matches!(
            root.lookup(&n("nope."), RecordType::A),
            ZoneAnswer::NxDomain(_)
        ));
        assert!(matches!(
            root.lookup(&n("root."), RecordType::A),
            ZoneAnswer::NoData(_)
        ));
        assert!(matches!(
            root.lookup(&n("."), RecordType::NS),
            ZoneAnswer::Answer(_)
        ));
        assert!(matches!(
            root.lookup(&n("."), RecordType::DS),
            ZoneAnswer::NoData(_)
        ));
    }

    #[test]
    fn a_wildcard_answers_for_names_below_its_closest_encloser() {
        let z = Zone::parse(
            "$TTL 60\n@ IN SOA ns. h. 1 1 1 1 30\n@ IN NS ns\nns IN A 127.0.0.1\n\
             *.wild IN A 127.0.0.9\n*.wild IN MX 10 ns\nhere.wild IN A 127.0.0.8\n\
             *.alias IN CNAME ns\n",
            "w.test.",
        )
        .unwrap();
        // Synthesised, with the asked name as owner, one label or more below.
        for q in ["Foo.wild.w.test.", "a.b.wild.w.test."] {
            let ZoneAnswer::Answer(rs) = z.lookup(&n(q), RecordType::A) else {
                panic!("{q}")
            };
            assert_eq!(rs.len(), 1);
            assert_eq!(rs[0].name, n(q));
            assert_eq!(rs[0].data, RData::A(A::new(127, 0, 0, 9)));
        }
        // The wildcard has no AAAA: NODATA, not NXDOMAIN.
        assert!(matches!(
            z.lookup(&n("foo.wild.w.test."), RecordType::AAAA),
            ZoneAnswer::NoData(_)
        ));
        // A name that exists is not covered, and neither is a name whose
        // closest encloser (here.wild) has no wildcard of its own.
        let ZoneAnswer::Answer(rs) = z.lookup(&n("here.wild.w.test."), RecordType::A) else {
            panic!()
        };
        assert_eq!(rs[0].data, RData::A(A::new(127, 0, 0, 8)));
        assert!(matches!(
            z.lookup(&n("x.here.wild.w.test."), RecordType::A),
            ZoneAnswer::NxDomain(_)
        ));
        // The wildcard's parent exists (an empty non-terminal) and the
        // wildcard applies nowhere else.
        assert!(matches!(
            z.lookup(&n("wild.w.test."), RecordType::A),
            ZoneAnswer::NoData(_)
        ));
        assert!(matches!(
            z.lookup(&n("other.w.test."), RecordType::A),
            ZoneAnswer::NxDomain(_)
        ));
        // A wildcard CNAME is followed like any other.
        let ZoneAnswer::Answer(rs) = z.lookup(&n("x.alias.w.test."), RecordType::A) else {
            panic!()
        };
        let types: Vec<_> = rs.iter().map(|r| r.record_type()).collect();
        assert_eq!(types, [RecordType::CNAME, RecordType::A]);
        assert_eq!(rs[0].name, n("x.alias.w.test."));
        // MX targets inside the zone come with their addresses.
        let ZoneAnswer::Answer(mx) = z.lookup(&n("m.wild.w.test."), RecordType::MX) else {
            panic!()
        };
        let extra = z.addresses_for(&mx);
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].name, n("ns.w.test."));
    }

    #[test]
    fn a_bad_record_is_reported_with_its_line() {
        let text = "$TTL 60\n@ IN SOA ns. h. (\n 1 1 1 1 30 )\n@ IN NS ns\nns IN A 127.0.0.1\nbad IN A 999.1.1.1\n";
        let err = Zone::parse(text, "x.test.").unwrap_err();
        assert_eq!(err.line(), Some(6), "{err}");
        assert!(
            err.to_string().starts_with("zone x.test., line 6: "),
            "{err}"
        );
    }

    #[test]
    fn a_zone_without_soa_is_rejected_with_its_name() {
        let err = Zone::parse("$TTL 60\n@ IN A 127.0.0.1\n", "bad.").unwrap_err();
        assert!(err.to_string().contains("bad."), "{err}");
        assert!(Zone::parse("@ IN SOA garbage", "bad.").is_err());
    }
}
