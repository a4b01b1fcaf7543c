//! A lying name server cannot plant records in the resolver's cache: the
//! resolver keeps only what its answer is about (RFC 5452 §6). The fake
//! server below is "the root", so every name is in its bailiwick — the
//! case where a bailiwick check alone lets it plant anything.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, NS};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use weblab_dns::message::response_to;
use weblab_dns::{Resolver, ResolverConfig};
use weblab_trace::{Collector, Ctx, Detail, Recorder};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn a(name: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(n(name), 300, RData::A(A::from(Ipv4Addr::from(ip))))
}

/// Answers every query (at most 50) with the truth for the name asked and
/// lies beside it.
async fn liar() -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        for _ in 0..50 {
            let Ok((len, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let asked = q.queries[0].name().to_string();
            let mut r = response_to(&q);
            r.metadata.authoritative = true;
            r.add_answers([
                a(&asked, [127, 0, 0, 1]),
                a("other.myapp.test.", [6, 6, 6, 6]),
                a("evil.test.", [6, 6, 6, 6]),
            ]);
            r.add_authority(Record::from_rdata(
                n("myapp.test."),
                300,
                RData::NS(NS(n("ns.evil.test."))),
            ));
            r.add_additional(a("ns.evil.test.", [6, 6, 6, 6]));
            let _ = sock.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    addr
}

#[tokio::test]
async fn records_beside_the_answer_never_reach_the_cache() {
    let upstream = liar().await;
    let rec = Recorder::new(
        Collector::new(Detail::Full),
        "resolver",
        "127.0.0.1",
        "resolver",
    );
    let resolver = Arc::new(Resolver::new(
        ResolverConfig {
            root_hints: vec![upstream.ip()],
            upstream_port: upstream.port(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            timeout: Duration::from_secs(2),
            qname_minimisation: false,
            allow: ResolverConfig::loopback_only(),
        },
        rec,
    ));
    let ctx = Ctx::new_root();
    let got = resolver
        .resolve(ctx, &n("www.myapp.test."), RecordType::A, true)
        .await;
    assert_eq!(got.rcode, ResponseCode::NoError);
    let names: Vec<String> = got.answers.iter().map(|r| r.name.to_string()).collect();
    assert_eq!(names, ["www.myapp.test."]);
    // From the cache only (RD=0): the planted names were never stored.
    for planted in ["other.myapp.test.", "evil.test.", "ns.evil.test."] {
        let r = resolver
            .resolve(ctx, &n(planted), RecordType::A, false)
            .await;
        assert_eq!(
            r.rcode,
            ResponseCode::Refused,
            "{planted} was cached: {:?}",
            r.answers
        );
    }
    let r = resolver
        .resolve(ctx, &n("myapp.test."), RecordType::NS, false)
        .await;
    assert_eq!(
        r.rcode,
        ResponseCode::Refused,
        "the planted NS set was cached"
    );
    // The true answer was.
    let r = resolver
        .resolve(ctx, &n("www.myapp.test."), RecordType::A, false)
        .await;
    assert_eq!(r.rcode, ResponseCode::NoError);
}
