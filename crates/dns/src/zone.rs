//! Zones in master-file format (RFC 1035 §5) and the authoritative lookup
//! over them (RFC 1034 §4.3.2). Pure: no sockets, no clock.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

use crate::error::DnsError;

/// One zone: its origin and every record in it, by owner name.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: Name,
    by_name: BTreeMap<Name, Vec<Record>>,
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
        let mut by_name: BTreeMap<Name, Vec<Record>> = BTreeMap::new();
        for set in sets.values() {
            for r in set.records_without_rrsigs() {
                by_name
                    .entry(r.name.to_lowercase())
                    .or_default()
                    .push(r.clone());
            }
        }
        let zone = Zone {
            origin: parsed_origin.to_lowercase(),
            by_name,
        };
        if zone.soa().is_none() {
            return Err(DnsError::zone(
                origin,
                "the zone has no SOA record at its origin",
            ));
        }
        Ok(zone)
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Every record of the zone.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.by_name.values().flatten()
    }

    /// Rewrites every A record address with `f` (used to move a world to
    /// another loopback block).
    pub fn map_ipv4(&mut self, f: &dyn Fn(Ipv4Addr) -> Ipv4Addr) {
        for r in self.by_name.values_mut().flatten() {
            if let RData::A(a) = &r.data {
                r.data = RData::A(A(f(a.0)));
            }
        }
    }

    fn soa(&self) -> Option<&Record> {
        self.by_name
            .get(&self.origin)?
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
    }

    fn rrset(&self, name: &Name, rtype: RecordType) -> Vec<Record> {
        // QTYPE ANY: every record the name owns, a non-empty answer where
        // the name has data (RFC 8482 §4 allows a subset; all of a small
        // zone's records is one).
        self.by_name
            .get(name)
            .map(|v| {
                v.iter()
                    .filter(|r| rtype == RecordType::ANY || r.record_type() == rtype)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when `name` owns records or has descendants (an empty
    /// non-terminal still exists, RFC 8020).
    fn exists(&self, name: &Name) -> bool {
        self.by_name.contains_key(name) || self.by_name.keys().any(|k| name.zone_of(k))
    }

    /// The SOA record to put in a negative answer, with its TTL clamped to
    /// the SOA minimum (RFC 2308 §3).
    fn negative_soa(&self) -> Record {
        let mut soa = self.soa().cloned().expect("checked at parse");
        if let RData::SOA(s) = &soa.data {
            soa.ttl = soa.ttl.min(s.minimum);
        }
        soa
    }

    /// The closest delegation strictly below the origin that covers `qname`.
    fn delegation(&self, qname: &Name) -> Option<(Name, Vec<Record>)> {
        let depth = self.origin.num_labels();
        // From just below the origin down to qname: the highest cut wins.
        for labels in depth + 1..=qname.num_labels() {
            let cut = qname.trim_to(labels as usize);
            let ns = self.rrset(&cut, RecordType::NS);
            if !ns.is_empty() {
                return Some((cut, ns));
            }
        }
        None
    }

    /// Glue: addresses this zone holds for the targets of `ns`.
    fn glue(&self, ns: &[Record]) -> Vec<Record> {
        let mut out = Vec::new();
        for r in ns {
            if let RData::NS(target) = &r.data {
                let t = target.0.to_lowercase();
                out.extend(self.rrset(&t, RecordType::A));
                out.extend(self.rrset(&t, RecordType::AAAA));
            }
        }
        out
    }

    /// Answers `qname`/`qtype` from this zone (the caller checked that the
    /// zone contains `qname`).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> ZoneAnswer {
        let mut name = qname.to_lowercase();
        let mut answer = Vec::new();
        // Follow CNAMEs inside the zone, at most 8 deep (loops are config errors).
        for _ in 0..8 {
            if let Some((zone, ns)) = self.delegation(&name) {
                // A delegation is not authoritative data of ours (RFC 1034 §4.3.2 step 3b).
                if answer.is_empty() {
                    let glue = self.glue(&ns);
                    return ZoneAnswer::Referral { zone, ns, glue };
                }
                return ZoneAnswer::Answer(answer);
            }
            if !self.exists(&name) {
                return if answer.is_empty() {
                    ZoneAnswer::NxDomain(self.negative_soa())
                } else {
                    ZoneAnswer::Answer(answer)
                };
            }
            let direct = self.rrset(&name, qtype);
            if !direct.is_empty() {
                answer.extend(direct);
                return ZoneAnswer::Answer(answer);
            }
            let cname = self.rrset(&name, RecordType::CNAME);
            match cname.first().map(|r| r.data.clone()) {
                Some(RData::CNAME(target)) if qtype != RecordType::CNAME => {
                    answer.extend(cname);
                    let target = target.0.to_lowercase();
                    if !self.origin.zone_of(&target) {
                        return ZoneAnswer::Answer(answer);
                    }
                    name = target;
                }
                _ => {
                    return if answer.is_empty() {
                        ZoneAnswer::NoData(self.negative_soa())
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
