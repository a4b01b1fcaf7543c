//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018):
//! a query's COOKIE option carries the client's cookie, and every weblab
//! DNS server answers it with the client's cookie and a server cookie of
//! its own (version 1, a timestamp and SipHash-2-4 of the client's
//! cookie, the timestamp and the client's address under a secret drawn at
//! start). A client that presents it later shows it has talked to this
//! server from that address before; `dig` prints `COOKIE: … (good)`.
//! Queries without a cookie are answered as before; none is refused for
//! lacking one (no BADCOOKIE).
//!
//! The cookie is added to the encoded reply, after any kept copy was
//! taken: a kept reply serves queries with their own cookies. The query
//! is read by hand (the OPT record's place and the option, nothing more),
//! because replies kept by the query's bytes are sent without parsing the
//! query at all; `fuzz/fuzz_targets/dns_server.rs` feeds it.

use std::net::IpAddr;

use crate::kept::skip_name;

/// The COOKIE option's code (RFC 7873 §4).
const COOKIE: u16 = 10;
/// RFC 9018's server cookie: version, 3 reserved bytes, a 4-byte
/// timestamp and an 8-byte hash.
const SERVER_COOKIE: usize = 16;

/// A query's COOKIE option, as [`read`] found it.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    /// No EDNS, or no COOKIE option.
    None,
    /// A well-formed option: the client's cookie, and the client's UDP
    /// payload size from the OPT record.
    Client { cookie: [u8; 8], payload: u16 },
    /// A COOKIE option of a length RFC 7873 §5.2.2 does not allow
    /// (answered FORMERR).
    Malformed,
}

/// Reads `query`'s OPT record, if any, for a COOKIE option.
pub fn read(query: &[u8]) -> Asked {
    read_opt(query).unwrap_or(Asked::None)
}

fn read_opt(q: &[u8]) -> Option<Asked> {
    let count = |at: usize| Some(u16::from_be_bytes([*q.get(at)?, *q.get(at + 1)?]));
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    if qd != 1 || an != 0 || ns != 0 || ar == 0 {
        return None;
    }
    // The question: a name (labels, or a pointer that ends it), type and
    // class.
    let mut at = skip_name(q, 12)? + 4;
    for _ in 0..ar {
        at = skip_name(q, at)?;
        let rtype = count(at)?;
        let class = count(at + 2)?;
        let rdlen = usize::from(count(at + 8)?);
        let rdata = q.get(at + 10..at + 10 + rdlen)?;
        at += 10 + rdlen;
        if rtype != 41 {
            continue;
        }
        let mut opts = rdata;
        while opts.len() >= 4 {
            let code = u16::from_be_bytes([opts[0], opts[1]]);
            let len = usize::from(u16::from_be_bytes([opts[2], opts[3]]));
            let data = opts.get(4..4 + len)?;
            if code == COOKIE {
                if !valid_len(len) {
                    return Some(Asked::Malformed);
                }
                let mut cookie = [0u8; 8];
                cookie.copy_from_slice(&data[..8]);
                return Some(Asked::Client {
                    cookie,
                    payload: class,
                });
            }
            opts = &opts[4 + len..];
        }
        return Some(Asked::None);
    }
    None
}

/// Whether a COOKIE option of `len` bytes can hold cookies: a client
/// cookie alone (8), or with a server cookie of 8 to 32 bytes (RFC 7873
/// §5.2.2; anything else is FORMERR).
pub fn valid_len(len: usize) -> bool {
    len == 8 || (16..=40).contains(&len)
}

/// The COOKIE option's length, if a parsed query's OPT carries one.
pub fn option_len(query: &hickory_proto::op::Message) -> Option<usize> {
    let edns = query.edns.as_ref()?;
    edns.options().as_ref().iter().find_map(|(_, o)| match o {
        hickory_proto::rr::rdata::opt::EdnsOption::Unknown(COOKIE, d) => Some(d.len()),
        _ => None,
    })
}

/// A server's cookie secret.
pub struct Cookies {
    secret: [u8; 16],
}

impl Default for Cookies {
    fn default() -> Self {
        Cookies {
            secret: rand::random(),
        }
    }
}

impl Cookies {
    /// With a chosen secret (RFC 9018's test vectors).
    pub fn with_secret(secret: [u8; 16]) -> Cookies {
        Cookies { secret }
    }

    /// RFC 9018 §4.4: the 16-byte server cookie for `client` at `now`
    /// (seconds since 1970, mod 2^32).
    pub fn server_cookie(&self, client_cookie: &[u8; 8], client: IpAddr, now: u32) -> [u8; 16] {
        let mut out = [0u8; SERVER_COOKIE];
        out[0] = 1;
        out[4..8].copy_from_slice(&now.to_be_bytes());
        // Client cookie, version, reserved, timestamp, client address.
        let mut input = [0u8; 8 + 8 + 16];
        input[..8].copy_from_slice(client_cookie);
        input[8..16].copy_from_slice(&out[..8]);
        let len = match client {
            IpAddr::V4(a) => {
                input[16..20].copy_from_slice(&a.octets());
                20
            }
            IpAddr::V6(a) => {
                input[16..].copy_from_slice(&a.octets());
                32
            }
        };
        let hash = siphasher::sip::SipHasher24::new_with_key(&self.secret).hash(&input[..len]);
        out[8..].copy_from_slice(&hash.to_le_bytes());
        out
    }

    /// Adds a COOKIE option to `reply` when `query` carried one: the
    /// client's cookie and a fresh server cookie. Only to a reply whose
    /// OPT record is its last record and has no options (what weblab's
    /// servers write), and only when it still fits what the client takes
    /// over UDP (`udp`).
    pub fn stamp(&self, query: &[u8], reply: &mut Vec<u8>, client: IpAddr, udp: bool) {
        self.stamp_asked(read(query), reply, client, udp);
    }

    /// [`Cookies::stamp`], with the query already [`read`].
    pub fn stamp_asked(&self, asked: Asked, reply: &mut Vec<u8>, client: IpAddr, udp: bool) {
        let Asked::Client { cookie, payload } = asked else {
            return;
        };
        let n = reply.len();
        let opt_last = n >= 12 + 11
            && reply[10..12] != [0, 0]
            && reply[n - 11] == 0
            && reply[n - 10..n - 8] == [0, 41]
            && reply[n - 2..] == [0, 0];
        if !opt_last {
            return;
        }
        let limit = if udp {
            usize::from(payload.clamp(512, crate::message::EDNS_PAYLOAD))
        } else {
            usize::from(u16::MAX)
        };
        let len = 8 + SERVER_COOKIE;
        if n + 4 + len > limit {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        reply[n - 2..].copy_from_slice(&((4 + len) as u16).to_be_bytes());
        reply.extend_from_slice(&COOKIE.to_be_bytes());
        reply.extend_from_slice(&(len as u16).to_be_bytes());
        reply.extend_from_slice(&cookie);
        reply.extend_from_slice(&self.server_cookie(&cookie, client, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::rr::{Name, RecordType};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn server_cookies_match_rfc_9018s_test_vectors() {
        // RFC 9018 Appendix A.1: a first query from 198.51.100.100.
        let c = Cookies::with_secret(hex("e5e973e5a6b2a43f48e7dc849e37bfcf").try_into().unwrap());
        let client: [u8; 8] = hex("2464c4abcf10c957").try_into().unwrap();
        let got = c.server_cookie(&client, "198.51.100.100".parse().unwrap(), 1559731985);
        assert_eq!(got.to_vec(), hex("010000005cf79f111f8130c3eee29480"));
    }

    fn query(option: Option<Vec<u8>>) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("a.test.").unwrap(),
            RecordType::A,
        ));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        if let Some(data) = option {
            edns.options_mut()
                .insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), data));
        }
        m.set_edns(edns);
        m.to_vec().unwrap()
    }

    #[test]
    fn the_cookie_option_is_read_and_bad_lengths_are_malformed() {
        assert_eq!(read(&query(None)), Asked::None);
        assert_eq!(
            read(&query(Some(vec![7; 8]))),
            Asked::Client {
                cookie: [7; 8],
                payload: 1232
            }
        );
        // With a server cookie of 16 bytes: the client's part.
        let mut both = vec![7; 8];
        both.extend_from_slice(&[1; 16]);
        assert!(
            matches!(read(&query(Some(both))), Asked::Client { cookie, .. } if cookie == [7; 8])
        );
        for bad in [0, 7, 9, 15, 41] {
            assert_eq!(read(&query(Some(vec![1; bad]))), Asked::Malformed, "{bad}");
        }
        // Not a query at all.
        assert_eq!(read(&[0; 5]), Asked::None);
    }

    #[test]
    fn a_reply_gets_the_client_cookie_and_a_server_cookie_that_parses() {
        let c = Cookies::default();
        let q = query(Some(vec![9; 8]));
        let asked = Message::from_vec(&q).unwrap();
        let mut reply = crate::message::response_to(&asked).to_vec().unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        c.stamp(&q, &mut reply, ip, true);
        let back = Message::from_vec(&reply).unwrap();
        let opt = back.edns.expect("an OPT record");
        let data = match opt.option(EdnsCode::Cookie) {
            Some(EdnsOption::Unknown(_, d)) => d.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(data.len(), 24);
        assert_eq!(&data[..8], &[9; 8]);
        assert_eq!(data[8], 1, "version 1");
        // The same client at the same second gets the same server cookie;
        // another address does not.
        let now = u32::from_be_bytes(data[12..16].try_into().unwrap());
        assert_eq!(
            c.server_cookie(&[9; 8], ip, now).to_vec(),
            data[8..].to_vec()
        );
        assert_ne!(
            c.server_cookie(&[9; 8], "127.0.0.2".parse().unwrap(), now)
                .to_vec(),
            data[8..].to_vec()
        );
        // No cookie asked, none given.
        let q = query(None);
        let mut plain = crate::message::response_to(&Message::from_vec(&q).unwrap())
            .to_vec()
            .unwrap();
        let before = plain.clone();
        c.stamp(&q, &mut plain, ip, true);
        assert_eq!(plain, before);
    }
}
