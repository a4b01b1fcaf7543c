//! Checks on incoming bytes, response encoding with UDP truncation, and the
//! classification of responses for traces. Pure.

use std::fmt;

use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use weblab_trace::DnsOutcome;

/// How a DNS message travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// The largest UDP payload we offer or accept with EDNS (the DNS flag day
/// 2020 recommendation, which avoids IP fragmentation).
pub const EDNS_PAYLOAD: u16 = 1232;

/// A query that could not be served: what to send back, if anything.
#[derive(Debug)]
pub struct Rejected {
    /// `None` means drop silently (too short to carry an id, or not a query).
    pub reply: Option<Vec<u8>>,
    pub id: u16,
    pub outcome: DnsOutcome,
}

/// Validates raw bytes as a standard query with exactly one question.
///
/// RFC 1035 §4.1.1: a malformed query gets FORMERR with its id when the
/// header can be read; an unknown opcode gets NOTIMP (RFC 1035 §4.1.1,
/// RCODE 4). Datagrams shorter than a header, and responses, are dropped so
/// that two servers can never bounce errors at each other. A `recursive`
/// server (a resolver) says recursion is available in these replies too.
pub fn check_query(bytes: &[u8], recursive: bool) -> Result<Message, Rejected> {
    if bytes.len() < 12 {
        return Err(Rejected {
            reply: None,
            id: 0,
            outcome: DnsOutcome::FormErr,
        });
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    if bytes[2] & 0x80 != 0 {
        return Err(Rejected {
            reply: None,
            id,
            outcome: DnsOutcome::FormErr,
        });
    }
    let opcode = (bytes[2] >> 3) & 0x0f;
    let error = |code: ResponseCode, outcome: DnsOutcome| {
        let op = OpCode::from_u8(opcode);
        let mut m = Message::error_msg(id, op, code);
        m.metadata.recursion_desired = bytes[2] & 0x01 != 0;
        m.metadata.recursion_available = recursive;
        Rejected {
            reply: m.to_vec().ok(),
            id,
            outcome,
        }
    };
    // Read with a decoder we keep, to see whether bytes are left over.
    // The id is read as 0xffff, which is no label: a compression pointer
    // into it fails whatever the id, so what a query says (and the reply
    // kept for it) never depends on its id.
    let mut masked = bytes.to_vec();
    masked[..2].copy_from_slice(&[0xff, 0xff]);
    let mut decoder = BinDecoder::new(&masked);
    let parsed = Message::read(&mut decoder).map(|mut m| {
        m.metadata.id = id;
        m
    });
    // RFC 1035 §4.1: a message is its header and sections, nothing after;
    // trailing bytes make it malformed.
    let m = match parsed {
        Ok(m) if decoder.is_empty() && m.queries.len() <= 1 => m,
        // An opcode we do not implement is NOTIMP even when its sections
        // do not read as a query's.
        _ if opcode != 0 => return Err(error(ResponseCode::NotImp, DnsOutcome::Refused)),
        _ => return Err(error(ResponseCode::FormErr, DnsOutcome::FormErr)),
    };
    // A reply to the question as asked, with this code only: the question
    // and an OPT record are echoed as BIND, NSD and Unbound do, so that
    // `dig` shows what was refused.
    let answer = |code: ResponseCode, outcome: DnsOutcome| Rejected {
        reply: coded(&m, code, recursive),
        id,
        outcome,
    };
    // RFC 1035 §4.1.1 RCODE 4: NOTIFY, UPDATE, STATUS… are not offered.
    if opcode != 0 {
        return Err(answer(ResponseCode::NotImp, DnsOutcome::Refused));
    }
    if m.queries.len() != 1 {
        return Err(error(ResponseCode::FormErr, DnsOutcome::FormErr));
    }
    // Only the Internet class is served (CHAOS, HESIOD… are refused).
    if m.queries[0].query_class() != DNSClass::IN {
        return Err(answer(ResponseCode::Refused, DnsOutcome::Refused));
    }
    // RFC 6891 §6.1.3: an EDNS version we do not implement gets BADVERS,
    // with our OPT (version 0) in the answer.
    if m.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return Err(answer(ResponseCode::BADVERS, DnsOutcome::BadVersion));
    }
    // RFC 7873 §5.2.2: a COOKIE option of a length no cookie has.
    if crate::cookie::option_len(&m).is_some_and(|len| !crate::cookie::valid_len(len)) {
        return Err(answer(ResponseCode::FormErr, DnsOutcome::FormErr));
    }
    // Zone transfers are not offered (RFC 5936 §4.2: REFUSED, not an empty
    // answer that looks like a failed transfer).
    if matches!(
        m.queries[0].query_type(),
        RecordType::AXFR | RecordType::IXFR
    ) {
        return Err(answer(ResponseCode::Refused, DnsOutcome::Refused));
    }
    Ok(m)
}

/// The reply to a query the server has no room to work on: REFUSED with
/// the question echoed (RFC 1035 §4.1.1, RCODE 5), or whatever
/// [`check_query`] says about a malformed one.
pub fn refused(bytes: &[u8], recursive: bool) -> Option<Vec<u8>> {
    match check_query(bytes, recursive) {
        Ok(query) => coded(&query, ResponseCode::Refused, recursive),
        Err(rejected) => rejected.reply,
    }
}

/// An answer to `query`'s question carrying only `code`.
fn coded(query: &Message, code: ResponseCode, recursive: bool) -> Option<Vec<u8>> {
    let mut r = response_to(query);
    r.metadata.response_code = code;
    r.metadata.recursion_available = recursive;
    r.to_vec().ok()
}

/// A response skeleton for `query`: same id, opcode, RD and question.
pub fn response_to(query: &Message) -> Message {
    let mut r = Message::response(query.metadata.id, query.metadata.op_code);
    r.metadata.recursion_desired = query.metadata.recursion_desired;
    r.metadata.checking_disabled = query.metadata.checking_disabled;
    r.add_queries(query.queries.iter().cloned());
    if let Some(asked) = &query.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        // RFC 3225 §3: the DO bit is copied into the response.
        edns.set_dnssec_ok(asked.flags().dnssec_ok);
        r.set_edns(edns);
    }
    r
}

/// Encodes `response`; over UDP, an answer larger than the client can take
/// (512 bytes, or its EDNS size) is replaced by an empty one with TC=1
/// (RFC 1035 §4.2.1, RFC 6891 §6.2.5). Returns the bytes and whether they
/// were truncated.
pub fn encode(response: &Message, query: &Message, transport: Transport) -> (Vec<u8>, bool) {
    let bytes = match response.to_vec() {
        Ok(b) => b,
        Err(_) => {
            let m = Message::error_msg(response.metadata.id, OpCode::Query, ResponseCode::ServFail);
            return (m.to_vec().unwrap_or_default(), false);
        }
    };
    let limit = match (&query.edns, transport) {
        (_, Transport::Tcp) => usize::from(u16::MAX),
        (Some(e), Transport::Udp) => usize::from(e.max_payload().clamp(512, EDNS_PAYLOAD)),
        (None, Transport::Udp) => 512,
    };
    if bytes.len() <= limit {
        return (bytes, false);
    }
    // An answer's additional addresses are a courtesy: without them it
    // may fit, and then it is whole (RFC 2181 §9). A referral's glue is
    // not left out that way: without it the child cannot be reached.
    if !response.answers.is_empty() && !response.additionals.is_empty() {
        let mut lean = response.clone();
        lean.additionals.clear();
        if let Ok(b) = lean.to_vec()
            && b.len() <= limit
        {
            return (b, false);
        }
    }
    (response.truncate().to_vec().unwrap_or_default(), true)
}

/// A record in a short presentation form: `name TTL TYPE data`.
pub fn record_text(r: &Record) -> String {
    format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data)
}

/// What a response says, for the trace.
pub fn outcome_of(response: &Message) -> DnsOutcome {
    if response.metadata.truncation {
        return DnsOutcome::Truncated;
    }
    match response.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return DnsOutcome::NxDomain,
        ResponseCode::FormErr => return DnsOutcome::FormErr,
        ResponseCode::ServFail => return DnsOutcome::ServFail,
        _ => return DnsOutcome::Refused,
    }
    if !response.answers.is_empty() {
        return DnsOutcome::Answer {
            records: response.answers.iter().map(record_text).collect(),
        };
    }
    let ns: Vec<&Record> = response
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .collect();
    if !response.metadata.authoritative && !ns.is_empty() {
        let zone = ns[0].name.to_string();
        let ns = ns
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(target) => {
                    let glue: Vec<String> = response
                        .additionals
                        .iter()
                        .filter(|g| g.name.eq_ignore_root_case(&target.0))
                        .map(|g| g.data.to_string())
                        .collect();
                    Some(if glue.is_empty() {
                        target.0.to_string()
                    } else {
                        format!("{}={}", target.0, glue.join("/"))
                    })
                }
                _ => None,
            })
            .collect();
        return DnsOutcome::Referral { zone, ns };
    }
    DnsOutcome::NoData
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::A;

    fn query(edns: bool) -> Message {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.add_query(Query::query(
            Name::from_ascii("big.test.").unwrap(),
            RecordType::A,
        ));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            m.set_edns(e);
        }
        m
    }

    #[test]
    fn a_cookie_option_of_a_length_no_cookie_has_is_formerr() {
        use hickory_proto::rr::rdata::opt::EdnsOption;
        for (len, ok) in [(7, false), (8, true), (12, false), (24, true), (41, false)] {
            let mut q = query(true);
            if let Some(e) = q.edns.as_mut() {
                e.options_mut()
                    .insert(EdnsOption::Unknown(10, vec![1; len]));
            }
            let got = check_query(&q.to_vec().unwrap(), false);
            assert_eq!(got.is_ok(), ok, "{len}");
            if let Err(r) = got {
                assert_eq!(r.outcome, DnsOutcome::FormErr, "{len}");
            }
        }
    }

    #[test]
    fn short_datagrams_and_responses_are_dropped() {
        assert!(check_query(&[0u8; 5], false).unwrap_err().reply.is_none());
        let mut resp = query(false).to_vec().unwrap();
        resp[2] |= 0x80;
        assert!(check_query(&resp, false).unwrap_err().reply.is_none());
    }

    #[test]
    fn garbage_after_a_header_gets_formerr_with_the_same_id() {
        let mut bytes = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0xff; 7]);
        let rejected = check_query(&bytes, false).unwrap_err();
        let reply = Message::from_vec(&rejected.reply.unwrap()).unwrap();
        assert_eq!(reply.metadata.id, 0x1234);
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        assert!(reply.metadata.recursion_desired);
    }

    #[test]
    fn bytes_after_the_question_make_the_query_malformed() {
        let good = query(false).to_vec().unwrap();
        assert!(check_query(&good, false).is_ok());
        let mut bad = good.clone();
        bad.extend_from_slice(&[0, 0, 0]);
        let r = check_query(&bad, false).unwrap_err();
        assert_eq!(r.outcome, DnsOutcome::FormErr);
        let reply = Message::from_vec(&r.reply.unwrap()).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(reply.metadata.id, query(false).metadata.id);
    }

    #[test]
    fn a_question_name_pointing_into_the_header_is_malformed() {
        // The id 0x0161 read as a name is "a" (ended by the flags' zero):
        // a question name pointing at offset 0 would be "a." for this id
        // only.
        let mut bytes = vec![0x01, b'a', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0xc0, 0x00, 0, 1, 0, 1]);
        let r = check_query(&bytes, false).unwrap_err();
        assert_eq!(r.outcome, DnsOutcome::FormErr);
    }

    #[test]
    fn other_classes_are_refused() {
        let mut q = query(false);
        let mut question = q.queries[0].clone();
        question.set_query_class(DNSClass::CH);
        q.queries = vec![question];
        let reply = check_query(&q.to_vec().unwrap(), false)
            .unwrap_err()
            .reply
            .unwrap();
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        // The question is echoed, so dig shows what was refused.
        assert_eq!(reply.queries, q.queries);
        assert!(!reply.metadata.recursion_available);
        // A resolver's refusals, of a bad class or for lack of room, say
        // that it recurses.
        let reply = check_query(&q.to_vec().unwrap(), true)
            .unwrap_err()
            .reply
            .unwrap();
        assert!(
            Message::from_vec(&reply)
                .unwrap()
                .metadata
                .recursion_available
        );
        let busy = refused(&query(false).to_vec().unwrap(), true).unwrap();
        let busy = Message::from_vec(&busy).unwrap();
        assert_eq!(busy.metadata.response_code, ResponseCode::Refused);
        assert!(busy.metadata.recursion_available);
    }

    #[test]
    fn an_unknown_opcode_gets_notimp() {
        let mut bytes = query(false).to_vec().unwrap();
        bytes[2] = (bytes[2] & 0x87) | (2 << 3); // STATUS
        let reply =
            Message::from_vec(&check_query(&bytes, false).unwrap_err().reply.unwrap()).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
        assert_eq!(reply.metadata.op_code, OpCode::Status);
        assert_eq!(reply.queries, query(false).queries);
        // With EDNS, the reply carries an OPT record too.
        let mut bytes = query(true).to_vec().unwrap();
        bytes[2] = (bytes[2] & 0x87) | (4 << 3); // NOTIFY
        let reply =
            Message::from_vec(&check_query(&bytes, false).unwrap_err().reply.unwrap()).unwrap();
        assert_eq!(reply.metadata.op_code, OpCode::Notify);
        assert!(reply.edns.is_some());
        // An opcode we do not implement whose sections do not read is
        // still NOTIMP, with its id.
        let mut bytes = query(false).to_vec().unwrap();
        bytes[2] = (bytes[2] & 0x87) | (5 << 3); // UPDATE
        bytes.extend_from_slice(&[1, 2, 3]);
        let reply =
            Message::from_vec(&check_query(&bytes, false).unwrap_err().reply.unwrap()).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
        assert_eq!(reply.metadata.id, query(false).metadata.id);
    }

    fn big_response(q: &Message) -> Message {
        let mut r = response_to(q);
        for i in 0..60u8 {
            r.add_answer(Record::from_rdata(
                Name::from_ascii("big.test.").unwrap(),
                60,
                RData::A(A::new(127, 0, 9, i)),
            ));
        }
        r
    }

    #[test]
    fn udp_answers_over_512_bytes_are_truncated_without_edns() {
        let q = query(false);
        let (bytes, truncated) = encode(&big_response(&q), &q, Transport::Udp);
        assert!(truncated);
        let m = Message::from_vec(&bytes).unwrap();
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        assert_eq!(outcome_of(&m), DnsOutcome::Truncated);
        let (bytes, truncated) = encode(&big_response(&q), &q, Transport::Tcp);
        assert!(!truncated);
        assert_eq!(Message::from_vec(&bytes).unwrap().answers.len(), 60);
    }

    #[test]
    fn edns_raises_the_udp_limit() {
        let q = query(true);
        let (bytes, truncated) = encode(&big_response(&q), &q, Transport::Udp);
        assert!(!truncated, "{} bytes", bytes.len());
    }
}
