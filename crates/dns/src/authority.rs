//! An authoritative name server's answers (root, TLD or a domain's own
//! server: the same logic, different zones). Pure: bytes in, bytes out.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use weblab_trace::DnsOutcome;

use crate::message::{Transport, check_query, encode, outcome_of, response_to};
use crate::policy::Policies;
use crate::rotation::Rotation;
use crate::zone::{Zone, ZoneAnswer};

/// What the server did with one datagram or TCP message, for its trace.
#[derive(Debug)]
pub struct Served {
    pub reply: Option<Vec<u8>>,
    pub id: u16,
    pub name: String,
    pub qtype: String,
    pub outcome: DnsOutcome,
    /// What an answer policy decided, when one applied (C12).
    pub decision: Option<String>,
}

/// The zones one server is authoritative for.
pub struct Authority {
    zones: Vec<Zone>,
    /// Rotates the order of multi-record answers so that clients taking the
    /// first address spread over all of them (C11, DNS round robin).
    rotation: Rotation,
    /// Names answered by another policy than round robin (C12).
    policies: Policies,
}

impl Authority {
    pub fn new(zones: Vec<Zone>) -> Self {
        Authority {
            zones,
            rotation: Rotation::default(),
            policies: Policies::default(),
        }
    }

    /// The same server with answer policies for some names.
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The zone with the longest origin containing `name`.
    fn zone_for(&self, name: &Name) -> Option<&Zone> {
        self.zones
            .iter()
            .filter(|z| z.origin().zone_of(name))
            .max_by_key(|z| z.origin().num_labels())
    }

    /// Answers one query's bytes.
    pub fn serve(&self, bytes: &[u8], transport: Transport) -> Served {
        let query = match check_query(bytes) {
            Ok(q) => q,
            Err(rejected) => {
                return Served {
                    reply: rejected.reply,
                    id: rejected.id,
                    name: "?".into(),
                    qtype: "?".into(),
                    outcome: rejected.outcome,
                    decision: None,
                };
            }
        };
        let q = &query.queries[0];
        let (response, decision) = self.decide(&query, q.name(), q.query_type());
        let outcome = outcome_of(&response);
        let (reply, truncated) = encode(&response, &query, transport);
        Served {
            reply: Some(reply),
            id: query.metadata.id,
            name: q.name().to_string(),
            qtype: q.query_type().to_string(),
            outcome: if truncated {
                DnsOutcome::Truncated
            } else {
                outcome
            },
            decision,
        }
    }

    /// Answers one query's bytes and nothing else (no account of it for a
    /// trace): what a server whose spans go nowhere does.
    pub fn reply(&self, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let query = match check_query(bytes) {
            Ok(q) => q,
            Err(rejected) => return rejected.reply,
        };
        let q = &query.queries[0];
        let (response, _) = self.decide(&query, q.name(), q.query_type());
        Some(encode(&response, &query, transport).0)
    }

    /// Builds the response message for one question.
    pub fn answer(&self, query: &Message, qname: &Name, qtype: RecordType) -> Message {
        self.decide(query, qname, qtype).0
    }

    /// The response, and what an answer policy decided for it.
    fn decide(
        &self,
        query: &Message,
        qname: &Name,
        qtype: RecordType,
    ) -> (Message, Option<String>) {
        let mut decision = None;
        let mut r = response_to(query);
        let Some(zone) = self.zone_for(qname) else {
            // Not ours, and we do not recurse (RFC 1035 §4.3.1).
            r.metadata.response_code = ResponseCode::Refused;
            return (r, None);
        };
        match zone.lookup(qname, qtype) {
            ZoneAnswer::Answer(mut records) => {
                r.metadata.authoritative = true;
                decision = self.policies.order(qname, &mut records);
                if decision.is_none() {
                    self.rotation.rotate(&mut records);
                }
                r.add_answers(records);
            }
            ZoneAnswer::Referral { ns, glue, .. } => {
                r.add_authorities(ns);
                r.add_additionals(glue);
            }
            ZoneAnswer::NxDomain(soa) => {
                r.metadata.authoritative = true;
                r.metadata.response_code = ResponseCode::NXDomain;
                r.add_authority(soa);
            }
            ZoneAnswer::NoData(soa) => {
                r.metadata.authoritative = true;
                r.add_authority(soa);
            }
        }
        (r, decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::RData;

    fn authority() -> Authority {
        let zone = Zone::parse(
            "$TTL 60\n@ IN SOA ns. h. 1 1 1 1 30\n@ IN NS ns\nns IN A 127.0.0.1\nrr IN A 127.0.0.5\nrr IN A 127.0.0.6\nrr IN A 127.0.0.7\npair IN A 127.0.0.8\npair IN A 127.0.0.9\n",
            "rr.test.",
        )
        .unwrap();
        Authority::new(vec![zone])
    }

    fn ask(a: &Authority, name: &str) -> Message {
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        let served = a.serve(&q.to_vec().unwrap(), Transport::Udp);
        Message::from_vec(&served.reply.unwrap()).unwrap()
    }

    #[test]
    fn each_rrset_takes_its_own_turns() {
        let a = authority();
        let first_pair = ask(&a, "pair.rr.test.").answers[0].data.clone();
        // Many questions about another name do not move this name's turn.
        for _ in 0..5 {
            ask(&a, "rr.rr.test.");
        }
        let second_pair = ask(&a, "pair.rr.test.").answers[0].data.clone();
        assert_ne!(first_pair, second_pair, "the pair alternates by itself");
        let third_pair = ask(&a, "pair.rr.test.").answers[0].data.clone();
        assert_eq!(first_pair, third_pair);
    }

    #[test]
    fn round_robin_rotates_the_first_address() {
        let a = authority();
        let firsts: Vec<RData> = (0..3)
            .map(|_| ask(&a, "rr.rr.test.").answers[0].data.clone())
            .collect();
        assert_ne!(firsts[0], firsts[1]);
        assert_ne!(firsts[1], firsts[2]);
        assert_ne!(firsts[0], firsts[2]);
    }

    #[test]
    fn names_outside_our_zones_are_refused() {
        let m = ask(&authority(), "example.com.");
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.authoritative);
    }

    #[test]
    fn answers_are_authoritative() {
        let m = ask(&authority(), "ns.rr.test.");
        assert!(m.metadata.authoritative);
        assert_eq!(m.answers.len(), 1);
    }
}
