//! An authoritative name server's answers (root, TLD or a domain's own
//! server: the same logic, different zones). Pure: bytes in, bytes out.
//!
//! The zones do not change while a server runs, so the reply to a query is
//! decided by the query's bytes (all but its id) and, for an RRset that
//! takes turns, by the turn: each reply is worked out once (parsed, looked
//! up, encoded) and kept, and the same question again gets a copy with its
//! own id (see [`crate::kept`]).

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use weblab_trace::DnsOutcome;

use crate::kept::{Found, Kept, Slot};
use crate::message::{Transport, check_query, encode, outcome_of, response_to};
use crate::policy::Policies;
use crate::rotation::{Rotation, Turns};
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
    /// Replies worked out before, by transport and question.
    kept: Kept<Account>,
}

/// What a trace says about a kept reply.
struct Account {
    name: String,
    qtype: String,
    outcome: DnsOutcome,
}

impl Authority {
    pub fn new(zones: Vec<Zone>) -> Self {
        Authority {
            zones,
            rotation: Rotation::default(),
            policies: Policies::default(),
            kept: Kept::default(),
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
        self.serve_with(bytes, transport, true)
    }

    /// [`Self::serve`]; without `account`, a kept reply comes without the
    /// name and type a trace would show.
    fn serve_with(&self, bytes: &[u8], transport: Transport, account: bool) -> Served {
        let found = self.kept.find(bytes, transport, |found| match found {
            Found::Ready(slot, a) => Ok(Served {
                reply: Some(slot.copy_for(bytes, None)),
                id: u16::from_be_bytes([bytes[0], bytes[1]]),
                name: if account {
                    a.name.clone()
                } else {
                    String::new()
                },
                qtype: if account {
                    a.qtype.clone()
                } else {
                    String::new()
                },
                outcome: a.outcome.clone(),
                decision: None,
            }),
            Found::Missing(turn, _) => Err(turn),
        });
        let at = match found {
            Some(Ok(served)) => return served,
            Some(Err(turn)) => Some(turn),
            None => None,
        };
        self.work_out(bytes, transport, at)
    }

    /// Answers one query's bytes and nothing else (no account of it for a
    /// trace): what a server whose spans go nowhere does.
    pub fn reply(&self, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
        self.serve_with(bytes, transport, false).reply
    }

    /// Parses, looks up and encodes the reply to `bytes` (at turn `at` of
    /// its RRset, or the next turn), keeping it when the zones alone
    /// decided it.
    fn work_out(&self, bytes: &[u8], transport: Transport, at: Option<usize>) -> Served {
        let query = match check_query(bytes, false) {
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
        let decided = self.decide(&query, q.name(), q.query_type(), at);
        let (reply, truncated) = encode(&decided.response, &query, transport);
        let served = Served {
            id: query.metadata.id,
            name: q.name().to_string(),
            qtype: q.query_type().to_string(),
            outcome: if truncated {
                DnsOutcome::Truncated
            } else {
                outcome_of(&decided.response)
            },
            reply: Some(reply),
            decision: decided.decision,
        };
        if !decided.policy {
            self.keep(bytes, transport, decided.turn, &served);
        }
        served
    }

    /// Keeps `served` as the reply to `bytes` at `turn`.
    fn keep(
        &self,
        bytes: &[u8],
        transport: Transport,
        turn: Option<(Turns, usize)>,
        served: &Served,
    ) {
        let Some(reply) = &served.reply else {
            return;
        };
        let slot = Slot {
            bytes: reply.as_slice().into(),
            ttls: Box::default(),
        };
        self.kept.keep(bytes, transport, turn, slot, || Account {
            name: served.name.clone(),
            qtype: served.qtype.clone(),
            outcome: served.outcome.clone(),
        });
    }

    /// Builds the response message for one question.
    pub fn answer(&self, query: &Message, qname: &Name, qtype: RecordType) -> Message {
        self.decide(query, qname, qtype, None).response
    }

    /// The response to one question: at turn `at` of a rotating RRset, or
    /// its next turn.
    fn decide(
        &self,
        query: &Message,
        qname: &Name,
        qtype: RecordType,
        at: Option<usize>,
    ) -> Decided {
        let mut d = Decided {
            response: response_to(query),
            decision: None,
            policy: false,
            turn: None,
        };
        let r = &mut d.response;
        let Some(zone) = self.zone_for(qname) else {
            // Not ours, and we do not recurse (RFC 1035 §4.3.1).
            r.metadata.response_code = ResponseCode::Refused;
            return d;
        };
        match zone.lookup(qname, qtype) {
            ZoneAnswer::Answer(mut records) => {
                r.metadata.authoritative = true;
                d.policy = self.policies.covers(qname);
                if d.policy {
                    d.decision = self.policies.order(qname, &mut records);
                } else {
                    d.turn = self.rotation.rotate(&mut records, at);
                }
                r.add_additionals(zone.addresses_for(&records));
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
        d
    }
}

/// What [`Authority::decide`] decided.
struct Decided {
    response: Message,
    /// What an answer policy decided, in words.
    decision: Option<String>,
    /// An answer policy (not the zone alone) ordered the records: the
    /// reply is not kept.
    policy: bool,
    /// The RRset's turns and the one taken, when it rotates.
    turn: Option<(Turns, usize)>,
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
    fn an_mx_answer_brings_its_exchanges_addresses_unless_they_do_not_fit() {
        let mut text =
            String::from("$TTL 60\n@ IN SOA ns. h. 1 1 1 1 30\n@ IN NS ns\nns IN A 127.0.0.1\n");
        text.push_str("mail IN MX 10 mx\nmx IN A 127.0.0.2\nmx IN AAAA ::2\n");
        // Twenty exchanges, each with five addresses: the answer fits in
        // 512 bytes, the answer with every address does not.
        for i in 0..20 {
            text.push_str(&format!("many IN MX {i} m{i}\n"));
            for j in 0..5 {
                text.push_str(&format!("m{i} IN A 127.0.{i}.{j}\n"));
            }
        }
        let a = Authority::new(vec![Zone::parse(&text, "mx.test.").unwrap()]);
        let ask = |name: &str| {
            let mut q = Message::query();
            q.add_query(Query::query(
                Name::from_ascii(name).unwrap(),
                RecordType::MX,
            ));
            let served = a.serve(&q.to_vec().unwrap(), Transport::Udp);
            Message::from_vec(&served.reply.unwrap()).unwrap()
        };
        let m = ask("mail.mx.test.");
        assert_eq!(m.answers.len(), 1);
        let extra: Vec<RecordType> = m.additionals.iter().map(|r| r.record_type()).collect();
        assert_eq!(extra, [RecordType::A, RecordType::AAAA]);
        let m = ask("many.mx.test.");
        assert_eq!(m.answers.len(), 20);
        assert!(m.additionals.is_empty());
        assert!(!m.metadata.truncation, "the answer itself was whole");
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

    /// Query bytes for `name`/`qtype` with `id`, with EDNS (DO set) or not.
    fn query(id: u16, name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
        let mut q = Message::query();
        q.metadata.id = id;
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            let mut e = hickory_proto::op::Edns::new();
            e.set_max_payload(4096);
            e.set_dnssec_ok(true);
            q.set_edns(e);
        }
        q.to_vec().unwrap()
    }

    #[test]
    fn a_kept_reply_is_the_reply_worked_out_afresh_with_its_own_id() {
        let kept = authority();
        for (name, qtype) in [
            ("ns.rr.test.", RecordType::A),      // an answer
            ("NS.rr.TEST.", RecordType::A),      // the question's case kept
            ("nothing.rr.test.", RecordType::A), // NXDOMAIN with the SOA
            ("ns.rr.test.", RecordType::MX),     // NODATA
            ("example.com.", RecordType::A),     // refused
            ("rr.test.", RecordType::SOA),
        ] {
            for edns in [false, true] {
                for transport in [Transport::Udp, Transport::Tcp] {
                    let first = kept.serve(&query(1, name, qtype, edns), transport);
                    let again = kept.serve(&query(0xBEEF, name, qtype, edns), transport);
                    // A server that never saw the question: nothing kept.
                    let fresh = authority().serve(&query(0xBEEF, name, qtype, edns), transport);
                    assert_eq!(again.reply, fresh.reply, "{name} {qtype} edns={edns}");
                    assert_eq!(again.id, 0xBEEF);
                    assert_eq!(&again.reply.as_ref().unwrap()[..2], &[0xBE, 0xEF]);
                    assert_eq!(
                        &first.reply.as_ref().unwrap()[2..],
                        &again.reply.unwrap()[2..]
                    );
                    assert_eq!(
                        (again.name, again.qtype, again.outcome),
                        (fresh.name, fresh.qtype, fresh.outcome)
                    );
                }
            }
        }
        // The reply echoes the question as it was asked.
        let upper = Message::from_vec(
            &kept
                .serve(
                    &query(7, "NS.rr.TEST.", RecordType::A, false),
                    Transport::Udp,
                )
                .reply
                .unwrap(),
        )
        .unwrap();
        assert_eq!(upper.queries[0].name().to_ascii(), "NS.rr.TEST.");
    }

    #[test]
    fn kept_replies_take_the_rrsets_turns_and_stay_bounded() {
        let a = authority();
        // Kept or not, the three addresses come first in turn, and a new
        // shape of the same question (EDNS) shares the RRset's turns.
        let first = |edns: bool| {
            let r = a.serve(
                &query(1, "rr.rr.test.", RecordType::A, edns),
                Transport::Udp,
            );
            Message::from_vec(&r.reply.unwrap()).unwrap().answers[0]
                .data
                .clone()
        };
        let seen: Vec<RData> = (0..6).map(|i| first(i == 4)).collect();
        for i in 0..3 {
            assert_eq!(seen[i], seen[i + 3], "turn {i}");
            assert_ne!(seen[i], seen[(i + 1) % 3]);
        }
        // Distinct questions past the bound start the kept replies over.
        let a = Authority {
            kept: Kept::new(64 << 10),
            ..authority()
        };
        let mut most = 0;
        for i in 0..2_000 {
            a.serve(
                &query(1, &format!("n{i}.rr.test."), RecordType::A, false),
                Transport::Udp,
            );
            let (udp, _, bytes) = a.kept.held();
            assert!(bytes <= 64 << 10);
            most = most.max(udp);
        }
        assert!(most > 300, "replies were kept ({most})");
        assert!(a.kept.held().0 < most, "and started over");
        // A long query is answered, its reply not kept.
        let mut long = Message::query();
        long.add_query(Query::query(
            Name::from_ascii("ns.rr.test.").unwrap(),
            RecordType::A,
        ));
        let mut e = hickory_proto::op::Edns::new();
        e.options_mut()
            .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(
                65001,
                vec![0; 600],
            ));
        long.set_edns(e);
        let before = a.kept.held();
        let r = a.serve(&long.to_vec().unwrap(), Transport::Udp);
        assert!(r.reply.is_some());
        assert_eq!(a.kept.held(), before);
    }

    #[test]
    fn replies_ordered_by_a_policy_are_worked_out_each_time() {
        use crate::policy::Policy;
        let a = authority().with_policies(Policies::new([(
            Name::from_ascii("pair.rr.test.").unwrap(),
            Policy::Weighted(vec![
                ("127.0.0.8".parse().unwrap(), 3),
                ("127.0.0.9".parse().unwrap(), 1),
            ]),
        )]));
        let mut firsts = Vec::new();
        for _ in 0..8 {
            let r = a.serve(
                &query(1, "pair.rr.test.", RecordType::A, false),
                Transport::Udp,
            );
            assert!(r.decision.is_some(), "the policy decided every time");
            firsts.push(
                Message::from_vec(&r.reply.unwrap()).unwrap().answers[0]
                    .data
                    .clone(),
            );
        }
        assert_eq!(a.kept.held().0, 0);
        let eights = firsts
            .iter()
            .filter(|d| d.to_string() == "127.0.0.8")
            .count();
        assert_eq!(eights, 6, "3:1 weights over 8 answers: {firsts:?}");
    }
}
