//! What of an upstream answer the resolver believes (and caches): only
//! records about the question. A server may say anything in its
//! sections; a resolver that caches every in-bailiwick record lets a
//! server for `myapp.test.` plant `other.myapp.test.` while answering for
//! `www.myapp.test.` (RFC 5452 §6, RFC 2181 §5.4.1's trust ranking).
//!
//! - answers: the chain from the asked name — CNAMEs, then records of the
//!   asked type at the chain's last name — nothing else;
//! - a referral: the NS records of the one closest zone that encloses the
//!   asked name, below the zone asked;
//! - glue: addresses of those name servers only.

use hickory_proto::rr::{Name, RData, Record, RecordType};

/// CNAMEs followed within one answer at most.
const MAX_CHAIN: usize = 8;

fn same(a: &Name, b: &Name) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// The records of `answers` on the chain from `name`: each CNAME in turn,
/// then the records of `qtype` (any type for ANY) at the last name.
pub fn answer_chain(answers: &[Record], name: &Name, qtype: RecordType) -> Vec<Record> {
    let mut kept: Vec<Record> = Vec::new();
    let mut current = name.clone();
    for _ in 0..=MAX_CHAIN {
        let at: Vec<&Record> = answers.iter().filter(|r| same(&r.name, &current)).collect();
        let wanted = |r: &&&Record| qtype == RecordType::ANY || r.record_type() == qtype;
        let direct: Vec<Record> = at.iter().filter(wanted).map(|r| (*r).clone()).collect();
        if !direct.is_empty() || qtype == RecordType::CNAME {
            kept.extend(direct);
            break;
        }
        let Some(alias) = at.iter().find(|r| r.record_type() == RecordType::CNAME) else {
            break;
        };
        kept.push((*alias).clone());
        let RData::CNAME(target) = &alias.data else {
            break;
        };
        current = target.0.clone();
    }
    kept
}

/// A referral the resolver may follow: the zone it delegates to, its NS
/// records and the glue for them.
#[derive(Debug, PartialEq)]
pub struct Referral {
    pub child: Name,
    pub ns: Vec<Record>,
    pub glue: Vec<Record>,
}

/// The referral in a non-authoritative answer from a server of `zone`
/// asked about `name`: the NS set of the deepest zone that encloses
/// `name` and lies below `zone`, and the A/AAAA records of exactly those
/// name servers (inside `zone`, which the server may speak for).
pub fn referral(
    authorities: &[Record],
    additionals: &[Record],
    name: &Name,
    zone: &Name,
) -> Option<Referral> {
    let child = authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .map(|r| r.name.to_lowercase())
        .filter(|c| c.zone_of(name) && zone.zone_of(c) && c.num_labels() > zone.num_labels())
        .max_by_key(Name::num_labels)?;
    let ns: Vec<Record> = authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS && same(&r.name, &child))
        .cloned()
        .collect();
    let targets: Vec<Name> = ns
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(t) => Some(t.0.to_lowercase()),
            _ => None,
        })
        .collect();
    let glue = additionals
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
        .filter(|r| zone.zone_of(&r.name) && targets.contains(&r.name.to_lowercase()))
        .cloned()
        .collect();
    Some(Referral { child, ns, glue })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, NS};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }
    fn a(name: &str, ip: [u8; 4]) -> Record {
        Record::from_rdata(
            n(name),
            300,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        )
    }
    fn cname(name: &str, to: &str) -> Record {
        Record::from_rdata(n(name), 300, RData::CNAME(CNAME(n(to))))
    }
    fn ns(zone: &str, host: &str) -> Record {
        Record::from_rdata(n(zone), 300, RData::NS(NS(n(host))))
    }
    fn names(rs: &[Record]) -> Vec<String> {
        rs.iter()
            .map(|r| format!("{} {}", r.name, r.record_type()))
            .collect()
    }

    #[test]
    fn records_planted_beside_the_answer_are_not_believed() {
        let answers = [
            a("www.myapp.test.", [127, 0, 0, 1]),
            a("other.myapp.test.", [6, 6, 6, 6]),
            a("evil.test.", [6, 6, 6, 6]),
        ];
        let kept = answer_chain(&answers, &n("WWW.myapp.test."), RecordType::A);
        assert_eq!(names(&kept), ["www.myapp.test. A"]);
    }

    #[test]
    fn a_cname_chain_is_followed_and_only_its_links_are_kept() {
        let answers = [
            cname("www.myapp.test.", "app.myapp.test."),
            a("app.myapp.test.", [127, 0, 0, 2]),
            a("www.myapp.test.", [6, 6, 6, 6]), // beside a CNAME: not the chain's
            a("planted.myapp.test.", [6, 6, 6, 6]),
        ];
        let kept = answer_chain(&answers, &n("www.myapp.test."), RecordType::A);
        assert_eq!(names(&kept), ["www.myapp.test. A"]);
        let answers = [
            cname("www.myapp.test.", "app.myapp.test."),
            a("app.myapp.test.", [127, 0, 0, 2]),
            a("planted.myapp.test.", [6, 6, 6, 6]),
        ];
        let kept = answer_chain(&answers, &n("www.myapp.test."), RecordType::A);
        assert_eq!(names(&kept), ["www.myapp.test. CNAME", "app.myapp.test. A"]);
        // A loop of CNAMEs ends within the bound.
        let looped = [cname("a.t.", "b.t."), cname("b.t.", "a.t.")];
        assert!(answer_chain(&looped, &n("a.t."), RecordType::A).len() <= MAX_CHAIN + 1);
    }

    #[test]
    fn a_referral_keeps_one_ns_set_and_only_its_glue() {
        let auth = [
            ns("myapp.test.", "ns1.myapp.test."),
            ns("evil.test.", "ns1.evil.test."), // not above the name
            ns("test.", "ns.planted.test."),    // not below the asked zone
        ];
        let additional = [
            a("ns1.myapp.test.", [127, 10, 2, 3]),
            a("www.myapp.test.", [6, 6, 6, 6]), // not a name server
            a("ns1.evil.test.", [6, 6, 6, 6]),  // not of this NS set
        ];
        let r = referral(&auth, &additional, &n("www.myapp.test."), &n("test.")).unwrap();
        assert_eq!(r.child, n("myapp.test."));
        assert_eq!(names(&r.ns), ["myapp.test. NS"]);
        assert_eq!(names(&r.glue), ["ns1.myapp.test. A"]);
        // Nothing below the asked zone: no referral (NODATA).
        assert!(referral(&auth[2..], &additional, &n("www.myapp.test."), &n("test.")).is_none());
    }
}
