//! Caches along the lookup chain (C03, C09).

use weblab::tour::visit;
use weblab_dns::HostCache;
use weblab_trace::{CacheLevel, Event, Span};

use crate::support::{data_dir, ip, start};

fn hit_at(spans: &[Span], level: CacheLevel) -> bool {
    spans
        .iter()
        .any(|s| matches!(&s.event, Event::CacheLookup { level: l, hit: true, .. } if *l == level))
}

#[tokio::test]
async fn a_second_lookup_within_the_ttl_is_a_resolver_cache_hit() {
    let w = start(103).await;
    let first = visit(&w, "https://myapp.test/login", false).await.unwrap();
    assert!(!hit_at(&first.spans, CacheLevel::Resolver));
    // A second program on the same host finds the name in the OS cache.
    let second = visit(&w, "https://myapp.test/login", false).await.unwrap();
    assert!(hit_at(&second.spans, CacheLevel::Os));
    assert!(
        !second
            .spans
            .iter()
            .any(|s| matches!(s.event, Event::DnsExchange { .. }))
    );
    // With the OS cache flushed, the resolver answers from its own cache
    // and asks no other server.
    *w.os_cache.lock().unwrap() = HostCache::default();
    let third = visit(&w, "https://myapp.test/login", false).await.unwrap();
    assert!(hit_at(&third.spans, CacheLevel::Resolver));
    let resolver = ip(&w, "resolver");
    assert!(
        !third
            .spans
            .iter()
            .any(|s| s.addr == resolver && matches!(s.event, Event::DnsExchange { .. })),
        "the resolver asked the hierarchy again"
    );
}

#[tokio::test]
async fn the_browser_cache_answers_a_second_fetch_in_one_run() {
    let w = start(104).await;
    // HTTP/1.1: parallel subresources need new connections, hence lookups.
    let r = visit(&w, "https://myapp.test/login", true).await.unwrap();
    assert!(r.page.is_ok());
    let sub_lookups: Vec<&Span> = r
        .spans
        .iter()
        .filter(|s| s.request.is_some_and(|n| n > 0) && matches!(s.event, Event::Lookup { .. }))
        .collect();
    assert!(
        !sub_lookups.is_empty(),
        "no subresource opened a connection"
    );
    for s in sub_lookups {
        let Event::Lookup { answered_by, .. } = &s.event else {
            unreachable!()
        };
        assert_eq!(*answered_by, Some(CacheLevel::Browser));
    }
    assert!(hit_at(&r.spans, CacheLevel::Browser));
}

#[tokio::test]
async fn an_answer_too_big_for_udp_is_fetched_again_over_tcp() {
    let w = start(105).await;
    let browser = w.browser(false).unwrap();
    let ctx = weblab_trace::Ctx::new_root();
    let answer = browser
        .lookup()
        .lookup(ctx, Some(0), "big.myapp.test")
        .await
        .unwrap();
    assert_eq!(answer.addrs.len(), 90);
    let spans = w.collector.assemble(ctx.trace);
    let transports: Vec<(String, bool)> = spans
        .iter()
        .filter_map(|s| match &s.event {
            Event::DnsExchange {
                transport, outcome, ..
            } if s.addr == ip(&w, "client") => Some((
                transport.clone(),
                matches!(outcome, weblab_trace::DnsOutcome::Truncated),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        transports,
        [("udp".to_string(), true), ("tcp".to_string(), false)]
    );
}

/// Asks the resolver directly, as `dig` would.
async fn ask(w: &crate::support::TestWorld, name: &str) -> hickory_proto::op::ResponseCode {
    let q = weblab_dns::net::build_query(
        &hickory_proto::rr::Name::from_ascii(name).unwrap(),
        hickory_proto::rr::RecordType::A,
        true,
    );
    let server = std::net::SocketAddr::new(w.addr("resolver"), w.ports.dns);
    let ex = weblab_dns::net::exchange_udp(
        w.addr("client"),
        server,
        &q,
        std::time::Duration::from_secs(2),
    )
    .await
    .unwrap();
    ex.response.metadata.response_code
}

/// The resolver's cache checks for `name`, in order: true for a hit.
fn resolver_hits(w: &crate::support::TestWorld, name: &str) -> Vec<bool> {
    w.collector
        .snapshot()
        .iter()
        .filter(|s| s.addr == ip(w, "resolver"))
        .filter_map(|s| match &s.event {
            Event::CacheLookup { name: n, hit, .. } if n == name => Some(*hit),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_resolver_entry_expires_after_its_ttl_and_negative_answers_are_cached() {
    let w = start(106).await;
    use hickory_proto::op::ResponseCode;
    // brief.myapp.test has a TTL of one second.
    assert_eq!(ask(&w, "brief.myapp.test.").await, ResponseCode::NoError);
    assert_eq!(ask(&w, "brief.myapp.test.").await, ResponseCode::NoError);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(ask(&w, "brief.myapp.test.").await, ResponseCode::NoError);
    assert_eq!(resolver_hits(&w, "brief.myapp.test."), [false, true, false]);
    // NXDOMAIN is remembered (RFC 2308): the second question is a hit.
    assert_eq!(ask(&w, "gone.myapp.test.").await, ResponseCode::NXDomain);
    assert_eq!(ask(&w, "gone.myapp.test.").await, ResponseCode::NXDomain);
    assert_eq!(resolver_hits(&w, "gone.myapp.test."), [false, true]);
}

#[tokio::test]
async fn the_resolver_rotates_a_cached_rrset_between_answers() {
    use hickory_proto::rr::{Name, RecordType};
    let w = crate::support::start(117).await;
    let resolver = std::net::SocketAddr::new(w.addr("resolver"), w.ports.dns);
    let name = Name::from_ascii("rr.myapp.test.").unwrap();
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let q = weblab_dns::net::build_query(&name, RecordType::A, true);
        let ex = weblab_dns::net::exchange_udp(
            "127.0.0.1".parse().unwrap(),
            resolver,
            &q,
            std::time::Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!(ex.response.answers.len(), 3);
        firsts.push(ex.response.answers[0].data.clone());
    }
    // The 2nd and 3rd answers come from the cache, each starting elsewhere.
    assert_ne!(firsts[1], firsts[2], "{firsts:?}");
}

#[tokio::test]
async fn without_recursion_desired_the_resolver_answers_only_from_its_cache() {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::{Name, RecordType};
    let w = crate::support::start(118).await;
    let resolver = std::net::SocketAddr::new(w.addr("resolver"), w.ports.dns);
    let name = Name::from_ascii("myapp.test.").unwrap();
    let ask = |rd: bool| {
        let q = weblab_dns::net::build_query(&name, RecordType::A, rd);
        async move {
            weblab_dns::net::exchange_udp(
                "127.0.0.1".parse().unwrap(),
                resolver,
                &q,
                std::time::Duration::from_secs(2),
            )
            .await
            .unwrap()
            .response
        }
    };
    // Not cached yet: RD=0 does not send the resolver off to the hierarchy.
    let cold = ask(false).await;
    assert_eq!(cold.metadata.response_code, ResponseCode::Refused);
    let warm = ask(true).await;
    assert_eq!(warm.answers.len(), 1);
    let cached = ask(false).await;
    assert_eq!(cached.metadata.response_code, ResponseCode::NoError);
    assert_eq!(cached.answers.len(), 1, "answered from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weblab_dig_prints_dig_sections_falls_back_to_tcp_and_traces_from_the_root() {
    let w = start(180).await;
    let world = &w.world.world;
    let args = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let out = weblab::dig::run(world, &args("myapp.test")).await.unwrap();
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains(";; flags: qr rd ra;"), "{out}");
    // Its client cookie came back with the resolver's (RFC 7873).
    assert!(
        out.contains("; COOKIE: ") && out.contains("(good)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("IN A      {}", ip(&w, "lb"))),
        "{out}"
    );
    let out = weblab::dig::run(world, &args("big.myapp.test @auth"))
        .await
        .unwrap();
    assert!(
        out.contains("retrying over TCP") && out.contains("ANSWER: 90,"),
        "{out}"
    );
    assert!(out.contains("flags: qr aa rd;"), "{out}");
    let out = weblab::dig::run(world, &args("nope.myapp.test @resolver"))
        .await
        .unwrap();
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let out = weblab::dig::run(world, &args("www.myapp.test +trace"))
        .await
        .unwrap();
    let steps: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with(";; NOERROR from"))
        .collect();
    assert_eq!(steps.len(), 3, "{out}");
    for (step, (host, zone)) in
        steps
            .iter()
            .zip([("root", "."), ("tld", "test."), ("auth", "myapp.test.")])
    {
        assert!(
            step.contains(&format!("({host}) for zone {zone} ")),
            "{step}"
        );
    }
    assert!(out.contains("IN CNAME  myapp.test."), "{out}");
    let err = weblab::dig::run(world, &args("myapp.test @nowhere"))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("not a host of the world"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_name_hands_out_its_first_address_by_weight_and_says_so() {
    let w = start(181).await;
    let world = &w.world.world;
    let args = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let mut firsts = std::collections::HashMap::new();
    for _ in 0..8 {
        let out = weblab::dig::run(world, &args("weighted.myapp.test @auth"))
            .await
            .unwrap();
        let first = out
            .lines()
            .skip_while(|l| !l.starts_with(";; ANSWER SECTION"))
            .nth(1)
            .and_then(|l| l.split_whitespace().last())
            .unwrap()
            .to_string();
        *firsts.entry(first).or_insert(0) += 1;
    }
    // The world file's weights: web1 3, web2 1.
    assert_eq!(firsts.get(&ip(&w, "web1")), Some(&6), "{firsts:?}");
    assert_eq!(firsts.get(&ip(&w, "web2")), Some(&2), "{firsts:?}");
    // Each decision is a step of the server's trace.
    let said = w
        .collector
        .snapshot()
        .into_iter()
        .filter(|s| matches!(&s.event, Event::Note { text } if text.starts_with("weighted answer (C12)")))
        .count();
    assert_eq!(said, 8);
}

/// One query from `from` to the world's resolver.
async fn ask_from(
    w: &crate::support::TestWorld,
    from: &str,
    name: &str,
) -> hickory_proto::op::Message {
    let q = weblab_dns::net::build_query(
        &hickory_proto::rr::Name::from_ascii(name).unwrap(),
        hickory_proto::rr::RecordType::A,
        true,
    );
    let server = std::net::SocketAddr::new(w.addr("resolver"), w.ports.dns);
    weblab_dns::net::exchange_udp(
        from.parse().unwrap(),
        server,
        &q,
        std::time::Duration::from_secs(3),
    )
    .await
    .unwrap()
    .response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minimising_resolver_tells_each_server_one_label_and_refuses_strangers() {
    use hickory_proto::op::ResponseCode;
    let w = crate::support::start_with(186, |world| {
        world.qname_minimisation = true;
        let client = world.hosts["client"];
        world.recursion_allow = vec![ipnet::IpNet::from(std::net::IpAddr::V4(client))];
    })
    .await;
    let client = ip(&w, "client");
    let m = ask_from(&w, &client, "www.myapp.test.").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let spans = w.collector.snapshot();
    let told: Vec<(String, String)> = spans
        .iter()
        .filter(|s| s.addr == ip(&w, "resolver"))
        .filter_map(|s| match &s.event {
            Event::DnsExchange { server, name, .. } => Some((server.clone(), name.clone())),
            _ => None,
        })
        .collect();
    let at = |host: &str| format!("{}:{}", ip(&w, host), w.ports.dns);
    assert_eq!(
        told,
        [
            (at("root"), "test.".to_string()),
            (at("tld"), "myapp.test.".to_string()),
            (at("auth"), "www.myapp.test.".to_string()),
        ]
    );
    let notes = spans
        .iter()
        .filter(|s| matches!(&s.event, Event::Note { text } if text.contains("RFC 9156")))
        .count();
    assert_eq!(notes, 2, "the two minimised queries say so");
    // The root saw only "test.", never the whole name.
    assert!(
        !spans.iter().any(|s| s.addr == ip(&w, "root")
            && matches!(&s.event, Event::DnsServe { name, .. } if name.starts_with("www"))),
        "{:?}",
        crate::support::kinds(&spans)
    );
    // Anyone outside the allow list is refused, even for a cached name.
    let stranger = ask_from(&w, "127.0.0.1", "www.myapp.test.").await;
    assert_eq!(stranger.metadata.response_code, ResponseCode::Refused);
    assert!(stranger.answers.is_empty());
    // A cached NXDOMAIN carries its SOA like the first answer (RFC 2308 §6).
    let first = ask_from(&w, &client, "gone.myapp.test.").await;
    let again = ask_from(&w, &client, "gone.myapp.test.").await;
    for m in [&first, &again] {
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.authorities.len(), 1, "{m:?}");
        assert_eq!(
            m.authorities[0].record_type(),
            hickory_proto::rr::RecordType::SOA
        );
    }
    assert!(again.authorities[0].ttl <= first.authorities[0].ttl);
    assert_eq!(resolver_hits(&w, "gone.myapp.test."), [false, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_connection_name_answers_the_less_busy_web_server_first() {
    let w = start(187).await;
    let world = &w.world.world;
    let args = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let first = |out: &str| {
        out.lines()
            .skip_while(|l| !l.starts_with(";; ANSWER SECTION"))
            .nth(1)
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_default()
            .to_string()
    };
    // The open-connection count the last decision read for `host`.
    let count_in_last_note = |host: &str| -> Option<u32> {
        let text = w
            .collector
            .snapshot()
            .into_iter()
            .rev()
            .find_map(|s| match s.event {
                Event::Note { text } if text.starts_with("least connections (C12)") => Some(text),
                _ => None,
            })?;
        let at = text.find(&format!("{} ", ip(&w, host)))? + ip(&w, host).len() + 1;
        text[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    // Keep some client connections open on one web server, then the other.
    for (busy, idle) in [("web1", "web2"), ("web2", "web1")] {
        let web = std::net::SocketAddr::new(w.addr(busy), w.ports.http);
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(tokio::net::TcpStream::connect(web).await.unwrap());
        }
        // The counts are read every 250 ms: ask until the decision saw them.
        let mut got = String::new();
        for _ in 0..40 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let out = weblab::dig::run(world, &args("least.myapp.test @auth"))
                .await
                .unwrap();
            got = first(&out);
            if count_in_last_note(busy).is_some_and(|n| n >= 4) {
                break;
            }
        }
        let (b, i) = (count_in_last_note(busy), count_in_last_note(idle));
        assert!(b > i, "{busy} {b:?} vs {idle} {i:?}");
        assert_eq!(got, ip(&w, idle), "with {busy} busy");
        drop(held);
    }
    let said: Vec<String> = w
        .collector
        .snapshot()
        .into_iter()
        .filter_map(|s| match s.event {
            Event::Note { text } if text.starts_with("least connections (C12)") => Some(text),
            _ => None,
        })
        .collect();
    let busy_web1 = format!("{} 4", ip(&w, "web1"));
    assert!(
        said.iter()
            .any(|t| t.contains(&busy_web1) && t.contains("counts read")),
        "{said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_lb_experiment_counts_failures_until_ttls_run_out_and_none_behind_the_balancer() {
    let svg = data_dir(188).join("dnslb.svg");
    std::fs::create_dir_all(svg.parent().unwrap()).unwrap();
    let setup = weblab::dnslb::Setup {
        clients: 6,
        resolvers: 2,
        duration: std::time::Duration::from_secs(3),
        ttl: 2,
        block: 188,
        svg: Some(svg.clone()),
    };
    let world = weblab::config::World::default_world();
    let done = weblab::dnslb::run(setup, weblab::world::choose_ports(&world))
        .await
        .unwrap();
    let r = &done.report;
    for run in ["DNS, cached answers", "DNS, no cache", "load balancer"] {
        assert!(r.contains(run), "{r}");
    }
    let (cached, uncached, lb) = (done.failed[0], done.failed[1], done.failed[2]);
    // The dead server's address was handed out until its record went.
    assert!(uncached > 0, "{r}");
    assert!(cached > 0, "{r}");
    // The balancer sent each request to a live server (a failed attempt
    // goes on to the next one).
    assert!(lb < uncached, "{r}");
    // Without caches, failures end when the record goes (0.5 s after the
    // death); cached copies cannot outlive the record by more than the
    // resolver's TTL plus the client's.
    let uncached_last = done.last_failure[1].unwrap();
    assert!(
        uncached_last < std::time::Duration::from_millis(1500),
        "{r}"
    );
    let cached_last = done.last_failure[0].unwrap();
    assert!(
        cached_last < std::time::Duration::from_millis(500 + 4000 + 500),
        "{r}"
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("web2"), "svg");
    let _ = std::fs::remove_dir_all(svg.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http11_a_page_opens_six_connections_per_origin_and_the_rest_wait_blocked() {
    let w = start(192).await;
    let imgs: String = (0..10)
        .map(|i| format!("<img src=\"/static/logo.png?i={i}\">"))
        .collect();
    std::fs::write(
        w.dir.join("www/static/many.html"),
        format!("<!doctype html><title>many</title><body>{imgs}</body>"),
    )
    .unwrap();
    let client = ip(&w, "client");
    let connects = |spans: &[Span]| {
        spans
            .iter()
            .filter(|s| s.addr == client && matches!(s.event, Event::TcpConnect { .. }))
            .count()
    };
    let r = visit(&w, "https://myapp.test/static/many.html", true)
        .await
        .unwrap();
    let page = r.page.as_ref().expect("the page loads");
    assert_eq!(page.subresources.len(), 10);
    assert!(page.subresources.iter().all(|s| s.is_ok()));
    assert_eq!(
        connects(&r.spans),
        6,
        "{:?}",
        crate::support::kinds(&r.spans)
    );
    let waited = r
        .spans
        .iter()
        .filter(|s| matches!(&s.event, Event::Note { text } if text.contains("already open to https://myapp.test:")))
        .count();
    assert!(waited >= 4, "{waited} requests said they waited");
    let blocked: Vec<u64> = weblab_trace::render::stages(&r.spans)
        .iter()
        .filter_map(|t| {
            t.phases
                .get(&weblab_trace::Phase::Blocked)
                .copied()
                .flatten()
        })
        .collect();
    assert!(
        blocked.iter().filter(|b| **b > 0).count() >= 4,
        "{blocked:?}"
    );
    // HTTP/2: one connection carries all eleven requests.
    let r = visit(&w, "https://myapp.test/static/many.html", false)
        .await
        .unwrap();
    assert_eq!(connects(&r.spans), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_cache_reuses_fresh_answers_without_a_request_and_revalidates_stale_ones() {
    let w = start(193).await;
    let browser = w.browser(false).unwrap();
    let sent = |spans: &[Span]| {
        spans
            .iter()
            .filter(|s| matches!(s.event, Event::RequestSent { .. }))
            .count()
    };
    let notes = |spans: &[Span], what: &str| {
        spans
            .iter()
            .filter(|s| matches!(&s.event, Event::Note { text } if text.starts_with("HTTP cache (C30)") && text.contains(what)))
            .count()
    };
    let (t1, first) = browser.navigate("https://myapp.test/login").await;
    let first = first.unwrap();
    let one = w.collector.assemble(t1);
    assert_eq!(sent(&one), 1 + first.subresources.len());
    // Stylesheet, script and logo are public, max-age=3600: kept.
    assert_eq!(
        notes(&one, "kept, fresh for 3600 s"),
        3,
        "{:?}",
        crate::support::kinds(&one)
    );
    let (t2, second) = browser.navigate("https://myapp.test/login").await;
    let second = second.unwrap();
    let two = w.collector.assemble(t2);
    assert_eq!(notes(&two, "is fresh"), 3);
    assert_eq!(sent(&two), 1, "only the page itself went out");
    for (a, b) in first.subresources.iter().zip(&second.subresources) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert_eq!(a.body, b.body, "{}", a.url);
    }
    // The API says private, no-cache with an ETag: asked again each
    // time, answered 304, the stored body used.
    let api = url::Url::parse("https://myapp.test/api/users/1").unwrap();
    let out = weblab_browser::Outgoing::default();
    let ctx = weblab_trace::Ctx::new_root();
    let a = browser
        .send(ctx, 0, &api, weblab_browser::Destination::Document, &out)
        .await
        .unwrap();
    let ctx2 = weblab_trace::Ctx::new_root();
    let b = browser
        .send(ctx2, 0, &api, weblab_browser::Destination::Document, &out)
        .await
        .unwrap();
    assert_eq!(b.status, 200);
    assert_eq!(a.body, b.body);
    let spans = w.collector.assemble(ctx2.trace);
    assert_eq!(
        notes(&spans, "asking with If-None-Match"),
        1,
        "{:?}",
        crate::support::kinds(&spans)
    );
    assert_eq!(notes(&spans, "304 Not Modified"), 1);
    assert!(
        spans
            .iter()
            .any(|s| matches!(s.event, Event::Waiting { status: 304, .. })),
        "the wire said 304"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_speaking_http10_opens_a_connection_per_request_and_the_lb_sees_http10() {
    let w = start(197).await;
    let browser = w.browser(true).unwrap().speaking_http10();
    let (trace, page) = browser.navigate("https://myapp.test/login").await;
    let page = page.unwrap();
    let spans = w.collector.assemble(trace);
    let client = ip(&w, "client");
    let requests = 1 + page.subresources.len();
    let connects = spans
        .iter()
        .filter(|s| s.addr == client && matches!(s.event, Event::TcpConnect { .. }))
        .count();
    assert_eq!(connects, requests, "one connection per request (C24)");
    let sent: Vec<&str> = spans
        .iter()
        .filter_map(|s| match &s.event {
            Event::RequestPrepared { version, .. } => Some(version.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec!["HTTP/1.0"; requests]);
    let at_lb = spans
        .iter()
        .filter(|s| s.addr == ip(&w, "lb"))
        .filter(|s| matches!(&s.event, Event::HttpServe { version, .. } if version == "HTTP/1.0"))
        .count();
    assert_eq!(at_lb, requests, "{:?}", crate::support::kinds(&spans));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelining_browser_writes_requests_before_earlier_answers_on_one_connection() {
    let w = start(202).await;
    let browser = w.browser(true).unwrap().pipelining().unwrap();
    let (trace, page) = browser.navigate("https://myapp.test/login").await;
    let page = page.unwrap();
    assert!(page.subresources.iter().all(|s| s.is_ok()));
    let spans = w.collector.assemble(trace);
    let client = ip(&w, "client");
    let connects = spans
        .iter()
        .filter(|s| s.addr == client && matches!(s.event, Event::TcpConnect { .. }))
        .count();
    assert_eq!(connects, 1, "every request on one connection");
    // At the load balancer, every request came from the same client port.
    let peers: std::collections::BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.addr == ip(&w, "lb"))
        .filter_map(|s| match &s.event {
            Event::HttpServe { peer, version, .. } if version == "HTTP/1.1" => Some(peer.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(peers.len(), 1, "{peers:?}");
    // Pipelined for real: some request was on the wire before the answer
    // of an earlier one was complete, and the trace says so.
    let ends = |pick: fn(&Event) -> bool| -> Vec<(u32, u64)> {
        spans
            .iter()
            .filter(|s| pick(&s.event))
            .filter_map(|s| Some((s.request?, s.end_ns)))
            .collect()
    };
    let sent = ends(|e| matches!(e, Event::RequestSent { .. }));
    let received = ends(|e| matches!(e, Event::BodyReceived { .. }));
    let overlapped = sent.iter().any(|(n, at)| {
        received.iter().any(|(m, done)| {
            m != n && *m > 0 && *done > *at && sent.iter().any(|(k, t)| k == m && t < at)
        })
    });
    assert!(overlapped, "sent {sent:?} received {received:?}");
    let notes = spans
        .iter()
        .filter(|s| matches!(&s.event, Event::Note { text } if text.starts_with("pipelined (C25)")))
        .count();
    assert!(notes >= 1, "{:?}", crate::support::kinds(&spans));
}
