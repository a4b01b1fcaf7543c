//! The tour's path: every hop, in order, each on its own host address.

use weblab::tour::visit;
use weblab_trace::event::WebAction;
use weblab_trace::{CacheLevel, DnsOutcome, Event, Phase};

use crate::support::{find, ip, kinds, start};

#[tokio::test]
async fn the_tour_records_every_hop_in_order_each_on_its_own_address() {
    let w = start(101).await;
    let r = visit(&w, "https://myapp.test/login", false).await.unwrap();
    let page = r.page.as_ref().expect("the page loads");
    assert_eq!(page.main.status, 200);
    let spans = &r.spans;
    let all = kinds(spans);
    let trace = spans[0].trace;
    assert!(spans.iter().all(|s| s.trace == trace));

    // C03: the lookup chain, level by level, on the client.
    let mut last = 0;
    for level in [CacheLevel::Browser, CacheLevel::Hosts, CacheLevel::Os] {
        let (i, s) = find(
            spans,
            |s| matches!(&s.event, Event::CacheLookup { level: l, hit: false, .. } if *l == level),
        )
        .unwrap_or_else(|| panic!("no {level} miss in {all:#?}"));
        assert_eq!(s.addr, ip(&w, "client"));
        assert!(i > last || last == 0, "{level} out of order");
        last = i;
    }
    // C08: the resolver asks root, TLD and the authoritative server, in order.
    let (i_res, res) = find(
        spans,
        |s| matches!(&s.event, Event::DnsServe { role, .. } if role.contains("resolver")),
    )
    .expect("resolver span");
    assert_eq!(res.addr, ip(&w, "resolver"));
    assert!(i_res > last);
    let mut at = i_res;
    for (server, expect_zone) in [
        ("root", Some("test.")),
        ("tld", Some("myapp.test.")),
        ("auth", None),
    ] {
        let server_ip = ip(&w, server);
        let (i, s) = find(spans, |s| {
            matches!(&s.event, Event::DnsExchange { server: to, .. } if to.starts_with(&format!("{server_ip}:")))
                && s.addr == ip(&w, "resolver")
        })
        .unwrap_or_else(|| panic!("resolver never asked {server}: {all:#?}"));
        assert!(i > at, "{server} asked out of order");
        at = i;
        let Event::DnsExchange { outcome, .. } = &s.event else {
            unreachable!()
        };
        match (expect_zone, outcome) {
            (Some(zone), DnsOutcome::Referral { zone: z, .. }) => assert_eq!(z, zone),
            (None, DnsOutcome::Answer { records }) => {
                assert!(records[0].ends_with(&ip(&w, "lb")), "{records:?}")
            }
            other => panic!("{server}: unexpected {other:?}"),
        }
        // The server's own record of the same exchange is in the trace.
        assert!(
            spans
                .iter()
                .any(|x| matches!(&x.event, Event::DnsServe { .. }) && x.addr == server_ip),
            "{server} recorded nothing"
        );
    }
    // C14, C32: connect and TLS from the client to the load balancer.
    let (i_tcp, tcp) = find(spans, |s| matches!(s.event, Event::TcpConnect { .. })).unwrap();
    assert!(i_tcp > at);
    let Event::TcpConnect { local, remote, .. } = &tcp.event else {
        unreachable!()
    };
    assert!(local.starts_with(&ip(&w, "client")));
    assert!(remote.starts_with(&ip(&w, "lb")));
    // TCP_INFO again once each response is in: for every request of the
    // page, with the counters of a connection that has carried data.
    let requests: std::collections::BTreeSet<u32> = spans
        .iter()
        .filter(|s| matches!(s.event, Event::Navigate { .. }))
        .filter_map(|s| s.request)
        .collect();
    let after: std::collections::BTreeSet<u32> = spans
        .iter()
        .filter_map(|s| match &s.event {
            Event::TcpInfo {
                after_response: true,
                bytes_received,
                rtt_us,
                ..
            } if *bytes_received > 0 && *rtt_us > 0 => s.request,
            _ => None,
        })
        .collect();
    assert_eq!(after, requests, "a response without TCP_INFO after it");
    let (i_tls, tls) = find(spans, |s| matches!(s.event, Event::TlsHandshake { .. })).unwrap();
    assert!(i_tls > i_tcp);
    let Event::TlsHandshake {
        version,
        alpn,
        chain,
        ..
    } = &tls.event
    else {
        unreachable!()
    };
    assert_eq!(version, "TLSv1.3");
    assert_eq!(alpn.as_deref(), Some("h2"));
    assert!(chain[0].contains("myapp.test"), "{chain:?}");
    // C43, C44: the load balancer's pick, the web server's proxy decision.
    let (i_pick, pick) = find(spans, |s| matches!(s.event, Event::LbPick { .. })).unwrap();
    assert!(i_pick > i_tls);
    assert_eq!(pick.addr, ip(&w, "lb"));
    let web_ips = [ip(&w, "web1"), ip(&w, "web2")];
    let (i_proxy, proxy) = find(spans, |s| {
        matches!(
            &s.event,
            Event::WebDecision {
                action: WebAction::Proxy { .. },
                ..
            }
        )
    })
    .unwrap();
    assert!(i_proxy > i_pick);
    assert!(web_ips.contains(&proxy.addr.to_string()));
    // C45-C47: every middleware in order, the route, the SQL, on an app host.
    let app_ips = [ip(&w, "app1"), ip(&w, "app2")];
    let mut at = i_proxy;
    for order in 1..=5u32 {
        let (i, s) = find(
            spans,
            |s| matches!(s.event, Event::Middleware { order: o, .. } if o == order),
        )
        .unwrap_or_else(|| panic!("middleware {order} missing"));
        assert!(i > at, "middleware {order} out of order");
        assert!(app_ips.contains(&s.addr.to_string()));
        at = i;
    }
    let (i_route, route) = find(
        spans,
        |s| matches!(&s.event, Event::Route { pattern, .. } if pattern == "/login"),
    )
    .unwrap();
    assert!(i_route > at);
    let (i_sql, sql) = find(spans, |s| matches!(s.event, Event::Sql { .. })).unwrap();
    assert!(i_sql > i_route);
    assert!(app_ips.contains(&sql.addr.to_string()) && app_ips.contains(&route.addr.to_string()));
    let Event::Sql { statement, .. } = &sql.event else {
        unreachable!()
    };
    assert!(statement.starts_with("SELECT"), "{statement}");
    // C05: three subresources, each fetched and served as a static file.
    assert_eq!(page.subresources.len(), 3);
    for sub in &page.subresources {
        assert_eq!(sub.as_ref().unwrap().status, 200);
    }
    for (n, name) in ["app.css", "app.js", "logo.png"].iter().enumerate() {
        let (i, _) = find(spans, |s| {
            s.request == Some(n as u32 + 1)
                && matches!(&s.event, Event::Navigate { url, .. } if url.ends_with(name))
        })
        .unwrap_or_else(|| panic!("no request for {name}"));
        assert!(i > i_sql);
        assert!(spans.iter().any(|s| web_ips.contains(&s.addr.to_string())
            && matches!(&s.event, Event::WebDecision { path, action: WebAction::Static { .. } } if path.ends_with(name))));
    }
    // Server spans hang under the client's wait span (traceparent worked).
    let lb_serve = spans
        .iter()
        .find(|s| matches!(s.event, Event::HttpServe { .. }) && s.addr == ip(&w, "lb"))
        .unwrap();
    let parent = spans
        .iter()
        .find(|s| Some(s.id) == lb_serve.parent)
        .expect("lb span has its parent in the trace");
    assert!(matches!(parent.event, Event::Waiting { .. }));
    // C07: the page's stages were all recorded, none faked.
    let t = weblab_trace::render::stages(spans);
    for phase in [
        Phase::Dns,
        Phase::Connect,
        Phase::Ssl,
        Phase::Send,
        Phase::Wait,
        Phase::Receive,
    ] {
        assert!(t[0].phases[&phase].is_some(), "{phase} missing");
    }
    assert_eq!(
        t[1].phases[&Phase::Dns],
        None,
        "a reused connection does no lookup"
    );
}

#[tokio::test]
async fn an_api_path_returns_json_from_the_database() {
    let w = start(102).await;
    let r = visit(&w, "https://myapp.test/api/users/1?view=full#details", true)
        .await
        .unwrap();
    // C01: the query goes to the server, the fragment never does.
    let (_, prepared) = find(&r.spans, |s| {
        matches!(s.event, Event::RequestPrepared { .. })
    })
    .unwrap();
    let Event::RequestPrepared {
        target, headers, ..
    } = &prepared.event
    else {
        unreachable!()
    };
    assert_eq!(target, "/api/users/1?view=full");
    // The query string reaches every hop and is shown there.
    for host in ["lb", "web"] {
        assert!(
            r.spans.iter().any(|s| s.host.starts_with(host)
                && matches!(&s.event, Event::HttpServe { path, .. } if path == "/api/users/1?view=full")),
            "{host}: {:?}",
            kinds(&r.spans)
        );
    }
    assert!(
        r.spans.iter().any(|s| matches!(&s.event,
            Event::Middleware { name, .. } if name.contains("GET /api/users/1?view=full 200"))),
        "{:?}",
        kinds(&r.spans)
    );
    // C02: the head as written on the wire: hyper's title-case names,
    // every header line in the order sent.
    assert_eq!(headers[0], ("Host".to_string(), "myapp.test".to_string()));
    assert!(
        headers.iter().any(|(k, _)| k == "Traceparent"),
        "{headers:?}"
    );
    assert!(
        r.spans.iter().any(
            |s| matches!(&s.event, Event::UrlParsed { fragment: Some(f), .. } if f == "details")
        )
    );
    let page = r.page.unwrap();
    assert_eq!(page.main.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&page.main.body).unwrap();
    assert_eq!(v["name"], "Ada Lovelace");
    assert!(
        r.spans.iter().any(
            |s| matches!(&s.event, Event::Route { pattern, .. } if pattern == "/api/users/{id}")
        )
    );
    let missing = visit(&w, "https://myapp.test/api/users/999", true)
        .await
        .unwrap();
    assert_eq!(missing.page.unwrap().main.status, 404);
    let bad = visit(&w, "https://myapp.test/api/users/abc", true)
        .await
        .unwrap();
    assert_eq!(bad.page.unwrap().main.status, 400);
}

#[tokio::test]
async fn the_load_balancer_falls_through_a_dead_backend() {
    // web3 is in the rotation but nothing listens on its address.
    let text = weblab::config::DEFAULT_WORLD
        .replace(
            "[client]",
            "[[host]]   # in the rotation, but runs nothing\nname = \"web3\"\naddr = \"127.10.4.3\"\nservices = []\n\n[client]",
        )
        .replace(
            "backends = [\"web1\", \"web2\"]",
            "backends = [\"web3\", \"web1\", \"web2\"]",
        )
        .replace("weights = [1, 1]", "weights = [1, 1, 1]");
    let mut world = weblab::config::World::parse("dead.toml", &text).unwrap();
    world.relocate(107);
    let dir = crate::support::data_dir(107);
    let w = weblab::world::RunningWorld::start(world, dir.clone(), weblab_trace::Detail::Full)
        .await
        .unwrap();
    for _ in 0..3 {
        let r = visit(&w, "https://myapp.test/api/users/1", true)
            .await
            .unwrap();
        assert_eq!(r.page.unwrap().main.status, 200);
        let forwards: Vec<u16> = r
            .spans
            .iter()
            .filter(|s| s.addr == "127.107.3.1")
            .filter_map(|s| match &s.event {
                Event::ProxyForward { status, .. } => Some(*status),
                _ => None,
            })
            .collect();
        // Whenever web3 came first, its 502 is followed by a good answer.
        assert_eq!(forwards.last(), Some(&200), "{forwards:?}");
        assert!(
            forwards.iter().rev().skip(1).all(|s| *s == 502),
            "{forwards:?}"
        );
        // The pick names the backend that answered, and web3 when it failed first.
        let (backend, reason) = r
            .spans
            .iter()
            .find_map(|s| match &s.event {
                Event::LbPick {
                    backend, reason, ..
                } => Some((backend.clone(), reason.clone())),
                _ => None,
            })
            .unwrap();
        assert!(!backend.starts_with("web3"), "{backend}");
        assert_eq!(
            reason.contains("web3 failed first"),
            forwards.len() > 1,
            "{reason} {forwards:?}"
        );
    }
    drop(w);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_world_on_offset_ports_works_as_it_does_for_an_unprivileged_user() {
    let text = weblab::config::DEFAULT_WORLD.replace("mode = \"auto\"", "mode = \"offset\"");
    let mut world = weblab::config::World::parse("offset.toml", &text).unwrap();
    world.relocate(108);
    let dir = crate::support::data_dir(108);
    let w = weblab::world::RunningWorld::start(world, dir.clone(), weblab_trace::Detail::Full)
        .await
        .unwrap();
    assert_eq!(
        (w.ports.dns, w.ports.http, w.ports.https),
        (10053, 10080, 10443)
    );
    let r = visit(&w, "https://myapp.test/login", false).await.unwrap();
    let page = r.page.unwrap();
    assert_eq!(page.main.status, 200);
    assert!(
        page.subresources
            .iter()
            .all(|s| s.as_ref().unwrap().status == 200)
    );
    // The URL keeps its default port; the connection goes to the mapped one.
    assert!(r.spans.iter().any(
        |s| matches!(&s.event, Event::TcpConnect { remote, .. } if remote.ends_with(":10443"))
    ));
    drop(w);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn http2_heads_are_shown_as_sent_with_the_hpack_block_size_measured_on_the_wire() {
    let w = start(109).await;
    let r = visit(&w, "https://myapp.test/login", false).await.unwrap();
    type Head = (u32, Vec<(String, String)>, Option<u64>);
    let heads: Vec<Head> = r
        .spans
        .iter()
        .filter_map(|s| match &s.event {
            Event::RequestPrepared {
                version,
                headers,
                header_block,
                ..
            } if version == "HTTP/2" => Some((s.request?, headers.clone(), *header_block)),
            _ => None,
        })
        .collect();
    assert!(heads.len() >= 2, "{heads:?}");
    let (_, first_fields, first) = heads.iter().find(|(n, ..)| *n == 0).unwrap();
    // RFC 9113 §8.3: pseudo-headers first, names in lowercase.
    assert_eq!(first_fields[0].0, ":method");
    assert!(
        first_fields
            .iter()
            .all(|(k, _)| *k == k.to_ascii_lowercase())
    );
    let first = first.expect("the first HEADERS block was measured");
    // Later requests reuse HPACK's dynamic table: smaller blocks.
    for (n, _, block) in heads.iter().filter(|(n, ..)| *n > 0) {
        let block = block.unwrap_or_else(|| panic!("request {n} not measured"));
        assert!(block < first, "request {n}: {block} >= {first}");
    }
    // The page's total, as the result prints it: the blocks' sum against
    // the fields' text.
    let wire: u64 = heads.iter().map(|(_, _, b)| b.unwrap()).sum();
    let line = weblab_trace::render::hpack_total(&r.spans, weblab_trace::explain::Lang::En)
        .expect("a total for an HTTP/2 page");
    assert!(
        line.contains(&format!(
            "{} requests' header blocks were {wire} bytes on the wire",
            heads.len()
        )),
        "{line}"
    );
    assert!(line.contains(&format!("the first {first} bytes")), "{line}");
}

#[test]
fn a_second_client_browses_from_its_own_address_with_its_own_hosts_file() {
    let text = weblab::config::DEFAULT_WORLD
        .replace(
            "[client]\n",
            "[[host]]\nname = \"client2\"\naddr = \"127.10.0.3\"\nservices = [\"client\"]\n\n[[client]]\n",
        )
        .replace(
            "[resolver]\n",
            "[[client]]   # its hosts file knows the site\nhost = \"client2\"\nresolver = \"resolver\"\nhosts_file = \"\"\"\n127.10.3.1 myapp.test\n\"\"\"\n\n[resolver]\n",
        );
    let dir = crate::support::data_dir(112);
    let path = dir.with_extension("toml");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weblab"))
        .args([
            "--block",
            "112",
            "--config",
            path.to_str().unwrap(),
            "--data",
        ])
        .arg(&dir)
        .args(["tour", "--json", "--client", "client2"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let spans: Vec<weblab_trace::Span> = serde_json::from_value(v["spans"].clone()).unwrap();
    let lookup = spans
        .iter()
        .find(|s| matches!(s.event, Event::Lookup { .. }))
        .unwrap();
    assert_eq!(lookup.host, "client2");
    assert_eq!(lookup.addr, "127.112.0.3");
    assert!(
        matches!(
            &lookup.event,
            Event::Lookup {
                answered_by: Some(weblab_trace::CacheLevel::Hosts),
                ..
            }
        ),
        "{:?}",
        lookup.event
    );
    let at_lb = spans
        .iter()
        .find_map(|s| match &s.event {
            Event::HttpServe { peer, .. } if s.host == "lb" => Some(peer.clone()),
            _ => None,
        })
        .unwrap();
    assert!(at_lb.starts_with("127.112.0.3:"), "{at_lb}");
}

#[tokio::test]
async fn every_row_of_the_stage_table_adds_up_to_its_total() {
    let w = start(113).await;
    let r = visit(&w, "https://myapp.test/login", false).await.unwrap();
    let timings = weblab_trace::render::stages(&r.spans);
    assert!(timings.len() >= 2);
    for t in &timings {
        let staged: u64 = t.phases.values().flatten().sum();
        assert_eq!(
            staged as i64 + t.between_ns,
            t.total_ns() as i64,
            "request {}",
            t.request
        );
        assert!(t.between_ns >= 0, "stages overlap in request {}", t.request);
    }
    let table = weblab_trace::render::stage_table(&timings, weblab_trace::explain::Lang::En);
    assert!(table.lines().next().unwrap().contains("between"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth_tour_signs_in_through_the_identity_provider_in_one_trace() {
    let w = start(176).await;
    let browser = w.browser(false).unwrap();
    let plan = weblab::signin::plan(&w.world.world).unwrap();
    let (trace, page) = weblab::signin::walk(&browser, &plan).await;
    let page = page.expect("the walk ends on a page");
    assert!(
        weblab::signin::signed_in(&page),
        "{} {}",
        page.main.url,
        page.main.status
    );
    assert!(String::from_utf8_lossy(&page.main.body).contains("Hello, Katherine Johnson"));
    let spans = w.collector.assemble(trace);

    // The browser's five requests, in order: start, consent page, the
    // consent form posted, the callback, the signed-in page.
    let mut legs: Vec<(u32, String, String)> = spans
        .iter()
        .filter_map(|s| match &s.event {
            Event::RequestSent { method, url, .. } => {
                Some((s.request?, method.clone(), url.clone()))
            }
            _ => None,
        })
        .collect();
    legs.sort();
    let shape: Vec<(String, String)> = legs
        .iter()
        .map(|(_, m, u)| {
            let u = url::Url::parse(u).unwrap();
            (m.clone(), format!("{}{}", u.host_str().unwrap(), u.path()))
        })
        .collect();
    let want = [
        ("GET", "myapp.test/login/oauth"),
        ("GET", "id.test/authorize"),
        ("POST", "id.test/authorize"),
        ("GET", "myapp.test/oauth/callback"),
        ("GET", "myapp.test/account"),
    ];
    assert_eq!(
        shape,
        want.map(|(m, u)| (m.to_string(), u.to_string())).to_vec()
    );
    // id.test was looked up through the DNS hierarchy like myapp.test.
    assert!(spans.iter().any(|s| matches!(&s.event,
        Event::DnsServe { name, role, .. } if name == "id.test." && role.contains("authoritative"))));
    // The browser's jar sent the state cookie to the callback, as written
    // on the wire.
    let callback_head = spans
        .iter()
        .find_map(|s| match &s.event {
            Event::RequestPrepared { headers, .. } if s.request == Some(3) => Some(headers.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        callback_head
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("cookie") && v.starts_with("oauth_state=")),
        "{callback_head:?}"
    );
    // The app's back channel, under the callback: the provider's spans
    // hang under the app's calls, on the provider's own address.
    for path in ["/token", "/userinfo"] {
        let call = spans
            .iter()
            .find(|s| matches!(&s.event, Event::HttpCall { url, status: 200, .. } if url.ends_with(path)))
            .unwrap_or_else(|| panic!("no call to {path}"));
        assert!(
            call.host.as_str().starts_with("app"),
            "{}",
            call.host.as_str()
        );
        let served = spans
            .iter()
            .find(|s| s.parent == Some(call.id))
            .unwrap_or_else(|| panic!("nothing under the call to {path}"));
        assert_eq!(served.addr, ip(&w, "idp"));
        assert!(
            matches!(&served.event, Event::HttpServe { path: p, status: 200, .. } if p == path)
        );
    }
}
