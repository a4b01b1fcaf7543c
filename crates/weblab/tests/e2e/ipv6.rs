//! A world with IPv6: hosts with `addr6 = "::1"` listen there too, a client
//! with an IPv6 address asks for AAAA records and connects over IPv6 first.
//! IPv6 has a single loopback address, so only this test uses it.

use weblab::config::{DEFAULT_WORLD, World};
use weblab::tour::visit;
use weblab::world::RunningWorld;
use weblab_trace::{Detail, Event};

use crate::support::{TestWorld, data_dir};

/// The default world text with `edits` (from, to) applied, each once.
fn world_text(edits: &[(&str, &str)]) -> String {
    let mut text = DEFAULT_WORLD.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "the default world has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    text
}

const CLIENT: (&str, &str) = (
    "name = \"client\"\naddr = \"127.10.0.2\"",
    "name = \"client\"\naddr = \"127.10.0.2\"\naddr6 = \"::1\"",
);
const LB: (&str, &str) = (
    "name = \"lb\"\naddr = \"127.10.3.1\"",
    "name = \"lb\"\naddr = \"127.10.3.1\"\naddr6 = \"::1\"",
);
const AAAA: (&str, &str) = (
    "@          IN A   127.10.3.1\n",
    "@          IN A   127.10.3.1\n@          IN AAAA ::1\n",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_ipv6_asks_for_aaaa_and_reaches_the_balancer_over_ipv6() {
    // A machine whose loopback has no IPv6 cannot run this world.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: ::1 cannot be bound here (IPv6 is off on loopback)");
        return;
    }
    let mut world = World::parse("ipv6 world", &world_text(&[CLIENT, LB, AAAA])).unwrap();
    world.relocate(198);
    let dir = data_dir(198);
    let w = TestWorld {
        world: RunningWorld::start(world, dir.clone(), Detail::Full)
            .await
            .expect("the IPv6 world starts"),
        dir,
    };
    let r = visit(&w, "https://myapp.test/login", false).await.unwrap();
    let page = r.page.as_ref().expect("the page loads over IPv6");
    assert_eq!(page.main.status, 200);
    // The stub asked AAAA, then A; the whole lookup gave ::1 first.
    let asked: Vec<&str> = r
        .spans
        .iter()
        .filter(|s| &*s.component == "stub resolver")
        .filter_map(|s| match &s.event {
            Event::DnsExchange { qtype, .. } => Some(qtype.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(asked, ["AAAA", "A"]);
    let addrs = r
        .spans
        .iter()
        .find_map(|s| match &s.event {
            Event::Lookup { addrs, .. } => Some(addrs.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(addrs.first().map(String::as_str), Some("::1"), "{addrs:?}");
    // The connection went over IPv6, and the balancer saw an IPv6 peer.
    let remote = r
        .spans
        .iter()
        .find_map(|s| match &s.event {
            Event::TcpConnect { remote, .. } => Some(remote.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(remote, "[::1]:443");
    let lb = w.addr("lb").to_string();
    assert!(
        r.spans.iter().any(|s| *s.addr == *lb
            && matches!(&s.event, Event::HttpServe { peer, .. } if peer.starts_with("[::1]:"))),
        "the balancer's span does not show an IPv6 peer"
    );
    // A real client over IPv6 too.
    if crate::observe::installed("curl", "--version") {
        let ca = w.ca_path();
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "-6", "--max-time", "5", "-o", "/dev/null"])
            .args(["-w", "%{http_code} %{remote_ip}", "--cacert"])
            .arg(&ca)
            .args([
                "--resolve",
                "myapp.test:443:[::1]",
                "https://myapp.test/login",
            ])
            .output()
            .await
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(said, "200 ::1", "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn addr6_must_be_loopback_and_held_by_one_listening_host() {
    let not_loopback = (
        LB.0,
        "name = \"lb\"\naddr = \"127.10.3.1\"\naddr6 = \"2001:db8::1\"",
    );
    let err = World::parse("w.toml", &world_text(&[not_loopback])).unwrap_err();
    assert!(err.to_string().contains("not loopback"), "{err}");
    let web1 = (
        "name = \"web1\"\naddr = \"127.10.4.1\"",
        "name = \"web1\"\naddr = \"127.10.4.1\"\naddr6 = \"::1\"",
    );
    let err = World::parse("w.toml", &world_text(&[LB, web1])).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("w.toml:") && text.contains("already host \"lb\"'s"),
        "{text}"
    );
    // A client only connects out, so it may share ::1 with the balancer.
    let w = World::parse("w.toml", &world_text(&[CLIENT, LB])).unwrap();
    assert_eq!(w.addr6("client"), w.addr6("lb"));
}
