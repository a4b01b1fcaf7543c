//! The edge as real clients see it (issue 7): HTTP/1.1 pipelining answered
//! in order, HTTP/1.0 answered as 1.0 and closed, request-smuggling
//! shapes refused, long URIs refused, ranges and If-Modified-Since from
//! curl, a backend's death seen by the status page and skipped.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::support::{exchange, start_with};

const SEC: Duration = Duration::from_secs(1);

fn web1(w: &weblab::world::RunningWorld) -> SocketAddr {
    SocketAddr::new(w.addr("web1"), w.ports.http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_http10_is_answered_as_10() {
    let w = start_with(160, |_| {}).await;
    // Three requests in one write (C25): three answers, in the order asked.
    let s = TcpStream::connect(web1(&w)).await.unwrap();
    let r = exchange(
        s,
        b"GET /static/app.css HTTP/1.1\r\nHost: myapp.test\r\n\r\n\
GET /static/nope.css HTTP/1.1\r\nHost: myapp.test\r\n\r\n\
GET /static/app.js HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n\r\n",
        5 * SEC,
    )
    .await;
    let statuses: Vec<&str> = r
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &r[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200"], "{r}");
    let css = r.find("text/css").unwrap();
    let js = r.find("text/javascript").unwrap();
    assert!(css < js, "answers in request order");
    // HTTP/1.0 (C24): answered as 1.0, and the connection closes after.
    let s = TcpStream::connect(web1(&w)).await.unwrap();
    let r = exchange(s, b"GET /static/app.css HTTP/1.0\r\n\r\n", 5 * SEC).await;
    assert!(r.starts_with("HTTP/1.0 200"), "{r}");
    let css_body = r.split("\r\n\r\n").nth(1).unwrap().to_string();
    // HTTP/0.9 (C23): one line, no version; the body alone, then close.
    let s = TcpStream::connect(web1(&w)).await.unwrap();
    let r = exchange(s, b"GET /static/app.css\r\n", 5 * SEC).await;
    assert_eq!(r, css_body);
    let served = w.collector.snapshot().into_iter().any(|s| {
        matches!(&s.event, weblab_trace::Event::HttpServe { version, path, .. }
            if version == "HTTP/0.9" && path == "/static/app.css")
    });
    assert!(served, "the trace names the version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shapes_and_overlong_uris_are_refused_and_the_server_keeps_serving() {
    let w = start_with(161, |_| {}).await;
    // Each shape is refused (400), or (CL with TE: hyper follows RFC 9112
    // §6.1, framing by Transfer-Encoding alone and dropping the length)
    // answered once with the connection closed: the request smuggled
    // behind it is never read as a second request.
    let smuggled = "GET /static/app.css HTTP/1.1\r\nHost: myapp.test\r\n\r\n";
    let refused = |r: &str| {
        r.is_empty() || r.starts_with("HTTP/1.1 400") || r.matches("HTTP/1.1 ").count() == 1
    };
    for attack in [
        // Content-Length and Transfer-Encoding together (RFC 9112 §6.1).
        "POST /api/users HTTP/1.1\r\nHost: myapp.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // Two different Content-Lengths.
        "POST /api/users HTTP/1.1\r\nHost: myapp.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        // A transfer coding that is not chunked last.
        "POST /api/users HTTP/1.1\r\nHost: myapp.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        // Whitespace before the colon (RFC 9112 §5.1).
        "GET / HTTP/1.1\r\nHost : myapp.test\r\n\r\n",
        // A bare LF inside a header line's value.
        "GET / HTTP/1.1\r\nHost: myapp.test\r\nX: a\rb\r\n\r\n",
    ] {
        let s = TcpStream::connect(web1(&w)).await.unwrap();
        let r = exchange(s, format!("{attack}{smuggled}").as_bytes(), 5 * SEC).await;
        assert!(refused(&r), "{attack:?} -> {r}");
        assert!(
            !r.contains("text/css"),
            "{attack:?} smuggled a request: {r}"
        );
    }
    // A URI longer than the head limit: 414 or 431, never a crash.
    let long = format!(
        "GET /static/{} HTTP/1.1\r\nHost: myapp.test\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let s = TcpStream::connect(web1(&w)).await.unwrap();
    let r = exchange(s, long.as_bytes(), 5 * SEC).await;
    assert!(
        r.is_empty() || r.starts_with("HTTP/1.1 414") || r.starts_with("HTTP/1.1 431"),
        "{r}"
    );
    let s = TcpStream::connect(web1(&w)).await.unwrap();
    let r = exchange(
        s,
        b"GET /static/app.css HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n\r\n",
        5 * SEC,
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

/// Runs curl with `args`; its stdout.
async fn curl(args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_ranges_validators_and_the_status_page() {
    if !crate::observe::installed("curl", "--version") {
        return;
    }
    let w = start_with(162, |_| {}).await;
    let base = format!("http://{}/static/app.css", web1(&w));
    let head = curl(&["-D", "-", "-o", "/dev/null", &base]).await.unwrap();
    assert!(head.contains("accept-ranges: bytes"), "{head}");
    let lm = head
        .lines()
        .find_map(|l| l.strip_prefix("last-modified: "))
        .unwrap()
        .trim()
        .to_string();
    let part = curl(&["-D", "-", "-r", "0-9", &base]).await.unwrap();
    assert!(part.starts_with("HTTP/1.1 206"), "{part}");
    assert!(part.contains("content-range: bytes 0-9/"), "{part}");
    assert_eq!(
        part.split("\r\n\r\n").nth(1).map(str::len),
        Some(10),
        "{part}"
    );
    let not = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &format!("If-Modified-Since: {lm}"),
        &base,
    ])
    .await
    .unwrap();
    assert!(not.starts_with("HTTP/1.1 304"), "{not}");
    let bad = curl(&["-D", "-", "-o", "/dev/null", "-r", "999999-", &base])
        .await
        .unwrap();
    assert!(bad.starts_with("HTTP/1.1 416"), "{bad}");
    // The web server's status page names its apps.
    let status = curl(&[&format!(
        "http://{}:{}/_weblab/status",
        w.addr("web1"),
        w.ports.admin
    )])
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let names: Vec<&str> = v["pools"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app1", "app2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_firewall_limits_a_clients_rate_with_429_and_refuses_denied_addresses() {
    use crate::support::tls_connect;
    let w = start_with(164, |w| {
        let rules = w.lb.firewall.get_or_insert_with(Default::default);
        rules.rate = Some(2.0);
        rules.burst = 3;
    })
    .await;
    let lb = SocketAddr::new(w.addr("lb"), w.ports.https);
    let ca = std::fs::read(w.ca_path()).unwrap();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let tls = tls_connect(lb, &ca, b"http/1.1").await.unwrap();
        let r = exchange(
            tls,
            b"GET /login HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n\r\n",
            5 * SEC,
        )
        .await;
        statuses.push(r[9..12].to_string());
        if r.starts_with("HTTP/1.1 429") {
            retry_after = r
                .lines()
                .find_map(|l| l.strip_prefix("retry-after: "))
                .map(|v| v.trim().to_string());
        }
    }
    // A burst of 3, then the bucket refills at 2/s: six quick requests
    // cannot all pass, and the first three do.
    assert_eq!(&statuses[..3], ["200", "200", "200"], "{statuses:?}");
    assert!(statuses.iter().any(|s| s == "429"), "{statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    // Each verdict is a span: allowed ones and the refusals.
    let spans = w.collector.snapshot();
    let verdicts: Vec<bool> = spans
        .iter()
        .filter_map(|s| match &s.event {
            weblab_trace::Event::Firewall { allowed, .. } => Some(*allowed),
            _ => None,
        })
        .collect();
    assert!(
        verdicts.contains(&true) && verdicts.contains(&false),
        "{verdicts:?}"
    );

    // A world that denies this test's own address: the connection is
    // closed before TLS, and the refusal is a trace.
    let w = start_with(165, |w| {
        let rules = w.lb.firewall.get_or_insert_with(Default::default);
        rules.deny = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let lb = SocketAddr::new(w.addr("lb"), w.ports.https);
    let ca = std::fs::read(w.ca_path()).unwrap();
    assert!(tls_connect(lb, &ca, b"http/1.1").await.is_err());
    let refused = w.collector.snapshot().into_iter().any(|s| {
        matches!(&s.event, weblab_trace::Event::Firewall { allowed: false, reason, .. }
            if reason.contains("deny 127.0.0.1/32"))
    });
    assert!(refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_on_one_address_are_chosen_by_host_and_locations_by_path() {
    use weblab::config::{LocationConfig, LocationServe, SiteConfig};
    let w = start_with(167, |w| {
        let loc = |exact: bool, path: &str, serve: LocationServe| LocationConfig {
            exact,
            path: path.into(),
            serve,
        };
        for web in &mut w.web {
            web.sites = vec![
                SiteConfig {
                    server_names: vec!["docs.myapp.test".into()],
                    locations: vec![loc(false, "/", LocationServe::Root("static".into()))],
                },
                SiteConfig {
                    server_names: vec![],
                    locations: vec![
                        loc(false, "/static/", LocationServe::Root(".".into())),
                        loc(true, "/app.js", LocationServe::Root("static".into())),
                        loc(false, "/", LocationServe::Proxy(vec!["app1".into()])),
                    ],
                },
            ];
        }
    })
    .await;
    let get = |host: &'static str, path: &'static str| {
        let addr = web1(&w);
        async move {
            let s = TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            exchange(s, req.as_bytes(), 5 * SEC).await
        }
    };
    // docs.myapp.test: its root is the static directory.
    let r = get("docs.myapp.test", "/app.css").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("text/css"),
        "{r}"
    );
    // The same path on the default site goes to the app (which has no
    // such route: its JSON 404).
    let r = get("myapp.test", "/app.css").await;
    assert!(
        r.starts_with("HTTP/1.1 404") && r.contains("application/json"),
        "{r}"
    );
    // Longest prefix, and an exact location beats the prefix "/".
    let r = get("myapp.test", "/static/app.css").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("text/css"),
        "{r}"
    );
    let r = get("myapp.test", "/app.js").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("text/javascript"),
        "{r}"
    );
    // An unknown Host gets the default site.
    let r = get("other.example", "/static/app.css").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_in_the_path_a_second_request_is_a_hit_that_never_reaches_a_web_server() {
    use crate::support::tls_connect;
    let w = start_with(168, |w| {
        w.lb.backends = vec!["cache".into()];
        w.lb.weights = vec![1];
    })
    .await;
    let lb = SocketAddr::new(w.addr("lb"), w.ports.https);
    let ca = std::fs::read(w.ca_path()).unwrap();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let tls = tls_connect(lb, &ca, b"http/1.1").await.unwrap();
        let r = exchange(
            tls,
            b"GET /static/app.css HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n\r\n",
            5 * SEC,
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        answers.push(r);
    }
    assert!(answers[0].contains("x-cache: MISS"), "{}", answers[0]);
    assert!(answers[1].contains("x-cache: HIT"), "{}", answers[1]);
    assert!(answers[1].contains("age: "), "{}", answers[1]);
    // The web servers served the file once; the cache's spans say why.
    let spans = w.collector.snapshot();
    let web_serves = spans
        .iter()
        .filter(|s| {
            s.component.as_str() == "web"
                && matches!(&s.event, weblab_trace::Event::HttpServe { path, .. } if path == "/static/app.css")
        })
        .count();
    assert_eq!(web_serves, 1);
    let outcomes: Vec<&str> = spans
        .iter()
        .filter_map(|s| match &s.event {
            weblab_trace::Event::HttpCache { outcome, key, .. }
                if key.ends_with("/static/app.css") =>
            {
                Some(outcome.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(outcomes, ["MISS", "HIT"]);
    // The web server still learns who the client was, through two proxies.
    let xff = spans.iter().find_map(|s| match &s.event {
        weblab_trace::Event::ProxyForward {
            headers, upstream, ..
        } if upstream.starts_with("web") => headers
            .iter()
            .find(|(k, _)| k == "x-real-ip")
            .map(|(_, v)| v.clone()),
        _ => None,
    });
    assert_eq!(xff.as_deref(), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_balancers_checks_keep_a_healthy_world_up() {
    // Many check rounds in a short test: each must pass, or the world
    // would turn every request away a few seconds after it starts.
    let w = start_with(169, |w| {
        w.lb.health.interval = Some(Duration::from_millis(40));
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = curl(&[&format!(
        "http://{}:{}/_weblab/status",
        w.addr("lb"),
        w.ports.admin
    )])
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    for b in v["pools"][0]["backends"].as_array().unwrap() {
        assert_eq!(b["health"], "up", "{status}");
        assert!(b["served"].as_u64().unwrap() >= 5, "{status}");
        assert_eq!(b["failed"], 0, "{status}");
    }
}

/// C33: Mallory relays the browser's bytes to the load balancer. Each
/// assertion is on what her sockets or the browser observed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_man_in_the_middle_reads_plain_http_but_not_tls_and_tampering_is_refused() {
    let done =
        crate::support::experiment(150, async |w, dir| weblab::mitm::run(w, dir).await).await;
    let report = &done.report;
    let [plain, stripped, tls, flipped, forged, hsts] = &done.runs[..] else {
        panic!("six runs: {report}");
    };
    // 1: the form went through her in clear text, password and all; the
    // load balancer answered the plain request with its redirect.
    assert!(plain.password_seen(&done.password), "{report}");
    assert_eq!(plain.browser.as_ref().unwrap().status, 301, "{report}");
    assert!(plain.seen.records.is_empty(), "{report}");
    // SSL stripping: the browser loaded the page and signed in over plain
    // HTTP (Mallory asked the site over HTTPS herself, and took out HSTS),
    // so she read the password.
    let page = stripped.page.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(
        (page.status, page.url.as_str()),
        (200, "http://myapp.test/login"),
        "{report}"
    );
    assert_eq!(stripped.browser.as_ref().unwrap().status, 303, "{report}");
    assert!(stripped.password_seen(&done.password), "{report}");
    assert_eq!(stripped.seen.stripped.len(), 2, "{report}");
    assert!(
        stripped
            .seen
            .stripped
            .iter()
            .all(|l| l.contains("Strict-Transport-Security")),
        "{report}"
    );
    // Over TLS she relayed the whole sign-in (the app answered 303)
    // and found the site's name but not the password.
    assert_eq!(tls.browser.as_ref().unwrap().status, 303, "{report}");
    assert!(!tls.password_seen(&done.password), "{report}");
    assert!(tls.seen.bytes_to_server > 200, "{report}");
    assert!(tls.seen.records.iter().any(|r| r.kind == 23), "{report}");
    assert!(
        tls.seen
            .to_server
            .windows(b"myapp.test".len())
            .any(|w| w == b"myapp.test"),
        "SNI: {report}"
    );
    // 3: one flipped bit after the handshake: the browser refused it.
    assert!(flipped.seen.flipped.is_some(), "{report}");
    let e = flipped.browser.as_ref().unwrap_err();
    assert!(e.contains("decrypt"), "{e}");
    // 4: her own certificate: the browser refused it, and her TLS heard
    // the browser's alert.
    let e = forged.browser.as_ref().unwrap_err();
    assert!(e.contains("certificate"), "{e}");
    assert!(
        forged.seen.handshakes.iter().all(|h| h.is_err()),
        "{report}"
    );
    assert!(!forged.seen.handshakes.is_empty(), "{report}");
    // 5: HSTS: nothing reached her plain-HTTP port; the sign-in went to
    // https and succeeded there, unreadable to her.
    let a = hsts.browser.as_ref().unwrap();
    assert!(a.url.starts_with("https://"), "{report}");
    assert_eq!(a.status, 303, "{report}");
    assert_eq!(hsts.seen.connections.len(), 1, "{report}");
    assert!(!hsts.password_seen(&done.password), "{report}");
    assert!(
        report.contains("the password crossed the network in clear text"),
        "{report}"
    );
}

/// C29: every row of `weblab experiment status` is a real answer; the
/// codes asked for each come back from their situation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_status_code_comes_from_its_own_real_situation() {
    let done =
        crate::support::experiment(151, async |w, dir| weblab::codes::run(w, dir).await).await;
    let code = |situation: &str| -> u16 {
        let r = done
            .rows
            .iter()
            .find(|r| r.situation.starts_with(situation))
            .unwrap_or_else(|| panic!("no row {situation}: {}", done.report));
        *r.status
            .as_ref()
            .unwrap_or_else(|e| panic!("{situation}: {e}"))
    };
    for (situation, want) in [
        ("a page that exists", 200),
        ("a WebSocket asked for", 101),
        ("a new user registered", 201),
        ("the same user again", 409),
        ("changing a user without signing in", 401),
        ("changing another user", 403),
        ("deleting it as an admin", 204),
        ("work accepted now, done later", 202),
        ("signing in with the form", 303),
        ("plain HTTP to the load balancer", 301),
        ("asking again with the ETag", 304),
        ("a field of the wrong type", 400),
        ("a path nothing serves", 404),
        ("a method this resource does not take", 405),
        ("a representation it cannot make", 406),
        ("a body over the limit", 413),
        ("a body of a type", 415),
        ("well-formed but invalid fields", 422),
        ("a method no server knows", 501),
        ("too many wrong passwords", 429),
        ("the database's write lock held by another program", 500),
        ("an upload that stops halfway", 408),
        ("an answer slower than the proxies wait", 504),
        ("the application servers stopped", 502),
        ("after the failures, no backend is up", 503),
    ] {
        assert_eq!(code(situation), want, "{situation}: {}", done.report);
    }
    assert!(done.report.contains("25 codes seen"), "{}", done.report);
}

/// C52: the frames of one fetch, captured on lo and split by layer: the
/// real handshake, the request and the answer inside TCP, the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fetch_is_captured_on_lo_and_split_into_its_layers() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: capturing on lo needs root");
        return;
    }
    let done =
        crate::support::experiment(152, async |w, dir| weblab::layers::run(w, dir, false).await)
            .await;
    let p = &done.packets;
    let report = &done.report;
    // The three-way handshake, as captured: SYN, SYN ACK, ACK.
    let flags: Vec<&str> = p.iter().take(3).map(|l| l.flags.as_str()).collect();
    assert_eq!(flags, ["SYN", "SYN ACK", "ACK"], "{report}");
    assert_eq!(p[0].src, done.client, "{report}");
    assert_eq!(p[1].src, done.server, "{report}");
    assert_eq!(p[1].ack, p[0].seq.wrapping_add(1), "{report}");
    // Every frame is its Ethernet header plus the IPv4 packet's length.
    for l in p {
        assert_eq!(l.link_len, 14);
        assert_eq!(l.frame_len, l.link_len + l.ip_total as usize, "{report}");
        assert_eq!(
            l.frame_len,
            l.link_len + l.ip_len + l.tcp_len + l.payload().len()
        );
    }
    // The request and the answer ride inside TCP.
    let request = p
        .iter()
        .find(|l| l.src == done.client && !l.payload().is_empty())
        .expect("a request frame");
    assert!(
        request
            .payload()
            .starts_with(b"GET /static/app.css HTTP/1.1\r\n"),
        "{report}"
    );
    let answer = p
        .iter()
        .find(|l| l.src == done.server && !l.payload().is_empty())
        .expect("an answer frame");
    assert!(answer.payload().starts_with(b"HTTP/1.1 200 "), "{report}");
    // Both sides close.
    assert!(
        p.iter()
            .any(|l| l.src == done.client && l.flags.contains("FIN")),
        "{report}"
    );
    assert!(
        p.iter()
            .any(|l| l.src == done.server && l.flags.contains("FIN")),
        "{report}"
    );
    assert!(
        report.contains("L4 transport, TCP segment header"),
        "{report}"
    );
}

/// C52 over HTTPS: TLS records sit between TCP and HTTP; after the hellos
/// an onlooker sees only application_data, and no HTTP text is in the
/// frames, while the server's name is (SNI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_capture_shows_tls_records_and_no_http_text() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: capturing on lo needs root");
        return;
    }
    let done =
        crate::support::experiment(154, async |w, dir| weblab::layers::run(w, dir, true).await)
            .await;
    let report = &done.report;
    let from_client: Vec<u8> = done
        .records
        .iter()
        .filter(|r| r.from_client)
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        from_client.first(),
        Some(&22),
        "a ClientHello first: {report}"
    );
    let from_server: Vec<u8> = done
        .records
        .iter()
        .filter(|r| !r.from_client)
        .map(|r| r.kind)
        .collect();
    assert_eq!(from_server.first(), Some(&22), "{report}");
    // TLS 1.3: after the hellos (and the compatibility change_cipher_spec)
    // every record is application_data.
    for kinds in [&from_client, &from_server] {
        let after: Vec<&u8> = kinds.iter().skip(1).filter(|&&k| k != 20).collect();
        assert!(!after.is_empty(), "{report}");
        assert!(after.iter().all(|&&k| k == 23), "{kinds:?}: {report}");
    }
    let all: Vec<u8> = done
        .packets
        .iter()
        .flat_map(|l| l.payload().to_vec())
        .collect();
    let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(!has(b"GET /static/app.css"), "{report}");
    assert!(!has(b"HTTP/1.1 200"), "{report}");
    assert!(has(b"myapp.test"), "SNI: {report}");
}

/// C53 on the wire: a whole page load captured on lo, grouped by pair of
/// hosts: the DNS walk over UDP, TLS from the client to the load balancer,
/// HTTP/1.1 behind it to a web server and on to an application server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_load_is_captured_hop_by_hop_with_each_pairs_protocol() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: capturing on lo needs root");
        return;
    }
    let (hops, report) =
        crate::support::experiment(155, async |w, dir| weblab::layers::page(w, dir).await).await;
    let find = |from: &str, to_prefix: &str| {
        hops.iter()
            .find(|h| h.from.0 == from && h.to.0.starts_with(to_prefix))
            .unwrap_or_else(|| panic!("no {from} -> {to_prefix}*: {report}"))
    };
    for (from, to) in [
        ("client", "resolver"),
        ("resolver", "root"),
        ("resolver", "tld"),
        ("resolver", "auth"),
    ] {
        let h = find(from, to);
        assert_eq!(
            (h.transport.as_str(), h.carried.as_str()),
            ("UDP 53", "DNS"),
            "{report}"
        );
        assert!(h.frames >= 2, "a query and its answer: {report}");
    }
    let front = find("client", "lb");
    assert_eq!(front.carried, "TLS", "{report}");
    assert!(front.transport.starts_with("TCP "), "{report}");
    // Behind the load balancer: plain HTTP, with at least one connection
    // that was not a health check.
    let behind: Vec<_> = hops.iter().filter(|h| h.from.0 == "lb").collect();
    assert!(
        behind
            .iter()
            .any(|h| h.carried.starts_with("HTTP") && h.connections > h.background),
        "{report}"
    );
    assert!(
        hops.iter()
            .any(|h| h.from.0.starts_with("web") && h.to.0.starts_with("app")),
        "{report}"
    );
}
