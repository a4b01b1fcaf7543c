//! Any datagram to an authoritative server or the resolver's front door:
//! the checks and answers must never panic, and a reply, when there is one,
//! must decode and carry the query's id; asked again with another id, the
//! (kept) reply is the same but for the id. The COOKIE option is read by
//! hand from the same bytes, and a reply with a cookie added decodes.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use weblab_dns::message::{Transport, check_query};
use weblab_dns::{Authority, Zone};

fn authority() -> &'static Authority {
    static A: OnceLock<Authority> = OnceLock::new();
    A.get_or_init(|| {
        let zone = Zone::parse(
            "$TTL 60\n@ IN SOA ns h 1 1 1 1 30\n@ IN NS ns\nns IN A 127.0.0.1\nwww IN CNAME web\nweb IN A 127.0.0.2\nsub IN NS ns.sub\nns.sub IN A 127.0.0.3\n*.wild IN A 127.0.0.4\n*.alias IN CNAME www\nmail IN MX 10 ns\n",
            "f.test.",
        )
        .unwrap();
        Authority::new(vec![zone])
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = check_query(data, false);
    for t in [Transport::Udp, Transport::Tcp] {
        let served = authority().serve(data, t);
        if let Some(reply) = served.reply {
            let m = hickory_proto::op::Message::from_vec(&reply)
                .expect("the server sent bytes it cannot decode itself");
            assert_eq!(m.metadata.id, served.id);
            if data.len() >= 12 {
                let mut again = data.to_vec();
                again[0] ^= 0x5a;
                let second = authority().serve(&again, t);
                let r2 = second
                    .reply
                    .expect("a reply the first time and not the second");
                assert_eq!(&r2[..2], &again[..2]);
                assert_eq!(&r2[2..], &reply[2..]);
            }
            // A DNS cookie added to the reply leaves it decodable.
            let mut stamped = reply.clone();
            cookies().stamp(
                data,
                &mut stamped,
                std::net::Ipv4Addr::LOCALHOST.into(),
                true,
            );
            if stamped != reply {
                hickory_proto::op::Message::from_vec(&stamped).expect("a stamped reply decodes");
            }
        }
    }
});

fn cookies() -> &'static weblab_dns::cookie::Cookies {
    static C: OnceLock<weblab_dns::cookie::Cookies> = OnceLock::new();
    C.get_or_init(weblab_dns::cookie::Cookies::default)
}
