//! Bad input gets a clear error and never takes a server down.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::net::UdpSocket;

use crate::support::{data_dir, start};

async fn send(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test]
async fn malformed_dns_packets_get_formerr_or_are_dropped_and_servers_keep_answering() {
    let w = start(120).await;
    let good = weblab_dns::net::build_query(
        &hickory_proto::rr::Name::from_ascii("myapp.test.").unwrap(),
        hickory_proto::rr::RecordType::A,
        true,
    );
    for host in ["resolver", "root", "tld", "auth"] {
        let server = SocketAddr::new(w.addr(host), w.ports.dns);
        // Too short to carry an id: dropped.
        assert_eq!(send(server, &[1, 2, 3]).await, None, "{host}");
        // A header claiming one question, then garbage: FORMERR, same id.
        let mut junk = vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        junk.extend_from_slice(&[0xc0, 0xff, 0x3f, 0x3f]);
        let reply = send(server, &junk)
            .await
            .unwrap_or_else(|| panic!("{host} sent nothing"));
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::FormErr,
            "{host}"
        );
        assert_eq!(reply.metadata.id, 0xabcd);
        // Random bytes of many lengths: whatever comes back, the server lives.
        for len in [12usize, 13, 40, 300, 1500] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = send(server, &bytes).await;
        }
        // And a real query still gets its answer.
        let reply = send(server, &good.to_vec().unwrap())
            .await
            .unwrap_or_else(|| panic!("{host} died"));
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.id, good.metadata.id);
        assert_ne!(
            reply.metadata.response_code,
            ResponseCode::FormErr,
            "{host}"
        );
    }
}

fn weblab(args: &[&str], block: u8) -> std::process::Output {
    let dir = data_dir(block);
    let out = Command::new(env!("CARGO_BIN_EXE_weblab"))
        .args(["--block", &block.to_string(), "--data"])
        .arg(&dir)
        .args(args)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn an_unknown_host_is_a_clear_nxdomain_from_the_tour() {
    let out = weblab(&["tour", "--detail", "https://nope.myapp.test/"], 121);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope.myapp.test") && err.contains("NXDOMAIN"),
        "{err}"
    );
    // The story up to the failure is still printed.
    let story = String::from_utf8_lossy(&out.stdout);
    assert!(story.contains("NXDOMAIN"), "{story}");
}

#[test]
fn a_malformed_config_file_is_an_error_naming_file_line_and_field() {
    let path = std::env::temp_dir().join(format!("weblab-bad-{}.toml", std::process::id()));
    let text = weblab::config::DEFAULT_WORLD
        .replace("algorithm = \"round-robin\"", "algorithm = \"fastest\"");
    std::fs::write(&path, &text).unwrap();
    let out = weblab(&["--config", path.to_str().unwrap(), "tour"], 122);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .position(|l| l.contains("\"fastest\""))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("{}:{line}:", path.display())),
        "{err}"
    );
    assert!(
        err.contains("lb.algorithm") && err.contains("fastest"),
        "{err}"
    );
}

#[test]
fn the_tour_exits_zero_and_prints_path_story_stages_and_waterfall() {
    let out = weblab(&["tour", "--detail", "--lang", "ko"], 123);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With --lang ko the view's own words are Korean too.
    for heading in [
        "== 경로: 홉마다 한 줄 ==",
        "== 모든 단계와 설명 ==",
        "== 단계별 시간 ==",
        "== 워터폴 ==",
        "범례: ",
        "페이지: 요청 4개",
        "127.123.3.1",
    ] {
        assert!(text.contains(heading), "{heading} missing");
    }
    assert!(!text.contains("== Stages =="), "{text}");
    // …and so are the hop lines, the story's steps, the table's columns
    // and the result.
    for said in [
        "거기서 일어난 일",
        "재귀 리졸버의 답 myapp.test. A",
        "위임: test. 영역은",
        "암호 스위트=",
        "요청 (ms)",
        "그 사이",
        "하위 리소스 /static/app.css 200",
        "월드 \"default\": 호스트 12개",
    ] {
        assert!(text.contains(said), "{said} missing: {text}");
    }
    for english in [
        "what happened there",
        "answers myapp.test.",
        "referral:",
        "subresource",
        "request (ms)",
    ] {
        assert!(!text.contains(english), "{english} left in English: {text}");
    }
    assert!(
        text.contains("C08 자기 영역이 아니므로"),
        "Korean explanations missing"
    );
    let har_path = std::env::temp_dir().join(format!("weblab-{}.har", std::process::id()));
    let out = weblab(&["tour", "--har", har_path.to_str().unwrap()], 125);
    assert_eq!(out.status.code(), Some(0));
    let har: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&har_path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&har_path);
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(entries.len(), 4);
    assert!(
        entries[0]["startedDateTime"]
            .as_str()
            .unwrap()
            .contains('T')
    );
    let t0 = &entries[0]["timings"];
    assert!(t0["dns"].as_f64().unwrap() >= 0.0 && t0["ssl"].as_f64().unwrap() >= 0.0);
    assert!(
        t0["connect"].as_f64().unwrap() >= t0["ssl"].as_f64().unwrap(),
        "connect includes ssl"
    );
    // The subresources reused the HTTP/2 connection: no dns, connect or ssl.
    for e in &entries[1..] {
        assert_eq!(e["timings"]["dns"], -1.0);
        assert_eq!(e["timings"]["connect"], -1.0);
        assert_eq!(e["response"]["status"], 200);
    }
    let json = weblab(&["tour", "--json"], 124);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["spans"].as_array().unwrap().len() > 30);
    assert!(v["timings"][0]["phases"]["dns"].is_u64());
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_and_the_web_server_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = start(127).await;
    let addr = SocketAddr::new(w.addr("web1"), w.ports.http);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let huge = "a".repeat(100 * 1024);
    let req = format!("GET /static/app.css HTTP/1.1\r\nHost: myapp.test\r\nX-Big: {huge}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let head = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || head.starts_with("HTTP/1.1 431"), "{head}");
    // A well-formed request right after is served.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /static/app.css HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

#[test]
fn init_writes_the_world_file_refuses_to_overwrite_and_the_file_drives_a_tour() {
    let path = std::env::temp_dir().join(format!("weblab-init-{}.toml", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.to_str().unwrap();
    let first = weblab(&["init", p], 128);
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        weblab::config::DEFAULT_WORLD
    );
    let again = weblab(&["init", p], 128);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let tour = weblab(
        &["--config", p, "tour", "https://myapp.test/api/users/2"],
        128,
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        tour.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&tour.stderr)
    );
    assert!(String::from_utf8_lossy(&tour.stdout).contains("Alan Turing"));
}

#[tokio::test]
async fn client_side_dns_failures_keep_their_kind_in_the_error_and_the_trace() {
    use weblab_dns::{LookupChain, OsCache};
    use weblab_trace::{Collector, Ctx, Detail, DnsOutcome, Event, Recorder};
    let w = crate::support::start(129).await;
    let outcome_for = |resolver: SocketAddr| async move {
        let c = Collector::new(Detail::Full);
        let rec = Recorder::new(c.clone(), "client", "127.129.0.2", "stub resolver");
        let os: OsCache = Default::default();
        let chain = LookupChain::new(
            Default::default(),
            os,
            resolver,
            "127.129.0.2".parse().unwrap(),
            rec,
        );
        let ctx = Ctx::new_root();
        let err = chain.lookup(ctx, None, "example.org").await.unwrap_err();
        let outcome = c
            .assemble(ctx.trace)
            .into_iter()
            .find_map(|s| match s.event {
                Event::DnsExchange { outcome, .. } => Some(outcome),
                _ => None,
            });
        (err, outcome.unwrap())
    };
    // An authoritative server asked about a zone it does not serve refuses.
    let auth = SocketAddr::new(w.addr("auth"), w.ports.dns);
    let (err, outcome) = outcome_for(auth).await;
    assert!(err.is_refused(), "{err}");
    assert_eq!(outcome, DnsOutcome::Refused);
    // Nothing listens: a network failure, not a timeout.
    let nobody = SocketAddr::new(w.addr("lb"), w.ports.dns);
    let (err, outcome) = outcome_for(nobody).await;
    assert!(!err.is_timeout() && !err.is_refused(), "{err}");
    assert!(matches!(outcome, DnsOutcome::Failed { .. }), "{outcome:?}");
}

#[test]
fn a_learners_mistakes_are_named_before_the_world_boots() {
    // No world starts: these fail within a moment and print no tour.
    let cases: [(&[&str], &str); 6] = [
        (&["tour", "ftp://myapp.test/"], "bad URL"),
        (
            &["tour", "--har", "/nonexistent/dir/x.har"],
            "cannot write /nonexistent/dir/x.har",
        ),
        (&["tcp", "run", "--bw", "0"], "must be more than 0"),
        (&["tcp", "run", "--time", "0s"], "must be more than 0"),
        (&["tcp", "arq", "--window", "0"], "--window"),
        (&["tcp", "segments", "--write", "0"], "--write"),
    ];
    for (args, want) in cases {
        let t = std::time::Instant::now();
        let out = weblab(args, 114);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("weblab tour"));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{args:?} took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn an_address_bar_url_without_a_scheme_is_taken_as_https() {
    assert_eq!(
        weblab::tour::address_bar("myapp.test/login").unwrap(),
        "https://myapp.test/login"
    );
    assert_eq!(
        weblab::tour::address_bar("http://myapp.test/").unwrap(),
        "http://myapp.test/"
    );
    assert!(weblab::tour::address_bar("https://").is_err());
}

#[test]
fn the_default_tour_is_a_short_view_that_fits_the_terminal() {
    let out = Command::new(env!("CARGO_BIN_EXE_weblab"))
        .args(["--block", "115", "--data"])
        .arg(data_dir(115))
        .arg("tour")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(data_dir(115));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let long: Vec<&str> = text.lines().filter(|l| l.chars().count() > 100).collect();
    assert!(long.is_empty(), "lines over 100 columns: {long:#?}");
    assert!(
        !text.contains("== The story =="),
        "the story is for --detail"
    );
    assert!(text.contains("--detail"), "says how to see every step");
    // One line per hop: every host the request reached appears.
    for host in ["client", "resolver", "root", "tld", "auth", "lb"] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(host)),
            "{host} missing:\n{text}"
        );
    }
    assert!(text.lines().count() < 60, "{} lines", text.lines().count());
}

#[tokio::test]
async fn transfers_are_refused_any_is_answered_and_edns_versions_and_do_are_honoured() {
    use hickory_proto::op::Edns;
    use hickory_proto::rr::{Name, RecordType};
    let w = start(116).await;
    let auth = SocketAddr::new(w.addr("auth"), w.ports.dns);
    let resolver = SocketAddr::new(w.addr("resolver"), w.ports.dns);
    let name = Name::from_ascii("myapp.test.").unwrap();
    let local: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let ask = |server, qtype, edns: Option<Edns>| {
        let name = name.clone();
        async move {
            let mut q = weblab_dns::net::build_query(&name, qtype, false);
            if let Some(e) = edns {
                q.set_edns(e);
            }
            weblab_dns::net::exchange_tcp(local, server, &q, Duration::from_secs(2))
                .await
                .unwrap()
                .response
        }
    };
    // RFC 5936 §4.2: no transfers, said plainly, by the server and the resolver.
    for server in [auth, resolver] {
        for qtype in [RecordType::AXFR, RecordType::IXFR] {
            let r = ask(server, qtype, None).await;
            assert_eq!(
                r.metadata.response_code,
                ResponseCode::Refused,
                "{server} {qtype}"
            );
        }
    }
    // RFC 8482: ANY gets records, not an empty NODATA.
    let r = ask(auth, RecordType::ANY, None).await;
    assert!(!r.answers.is_empty());
    // RFC 6891 §6.1.3: EDNS version 1 -> BADVERS with our version 0.
    let mut v1 = Edns::new();
    v1.set_version(1);
    let r = ask(auth, RecordType::A, Some(v1)).await;
    // RCODE 16 is BADVERS with an OPT record (hickory names 16 BADSIG).
    assert_eq!(u16::from(r.metadata.response_code), 16);
    assert_eq!(r.edns.as_ref().unwrap().version(), 0);
    // RFC 3225 §3: the DO bit comes back.
    let mut d = Edns::new();
    d.set_dnssec_ok(true);
    let r = ask(auth, RecordType::A, Some(d)).await;
    assert!(r.edns.as_ref().unwrap().flags().dnssec_ok);
}

#[test]
fn the_oauth_tour_exits_zero_signed_in_and_needs_a_provider_in_the_world() {
    let out = weblab(&["tour", "--oauth"], 177);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("--oauth: sign in at https://myapp.test/login/oauth"),
        "{text}"
    );
    // The provider is a hop of its own, on its own address.
    assert!(text.contains("127.177.7.1"), "{text}");
    assert!(text.contains("https://myapp.test/account 200"), "{text}");

    // A world without [idp]: named before anything boots.
    let path = std::env::temp_dir().join(format!("weblab-noidp-{}.toml", std::process::id()));
    let text = weblab::config::DEFAULT_WORLD;
    let start = text.find("[idp]").unwrap();
    let end = start + text[start..].find("[database]").unwrap();
    let host = "[[host]]   # identity provider (OAuth 2.0), another organisation's server\nname = \"idp\"\naddr = \"127.10.7.1\"\nservices = [\"idp\"]\n";
    let without = format!("{}{}", &text[..start], &text[end..]).replace(host, "");
    std::fs::write(&path, &without).unwrap();
    let out = weblab(
        &["--config", path.to_str().unwrap(), "tour", "--oauth"],
        178,
    );
    let _ = std::fs::remove_file(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no identity provider"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "nothing booted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn fetch_shows_the_answer_head_and_body_then_the_hops_and_takes_curls_flags() {
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let out = weblab(&["fetch", "myapp.test/api/users/1"], 179);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = text(&out);
    for part in [
        "== Response ==\nHTTP/2 200 OK\n",
        "content-type: application/json\n",
        "etag: ",
        "\"name\": \"Ada Lovelace\"",
        "== The path, a line per hop ==",
        "== Stages ==",
    ] {
        assert!(t.contains(part), "{part:?} missing in\n{t}");
    }
    // -L: the 301 to https is followed, each leg a request of the trace.
    let out = weblab(&["fetch", "-L", "http://myapp.test/login"], 179);
    let t = text(&out);
    assert!(t.contains("HTTP/2 200 OK"), "{t}");
    assert!(
        t.contains("\n0   /login") && t.contains("\n1   /login"),
        "{t}"
    );
    // Without -L the 301 itself is the answer.
    let t = text(&weblab(&["fetch", "http://myapp.test/login"], 179));
    assert!(t.contains("HTTP/1.1 301 Moved Permanently"), "{t}");
    // (https://myapp.test:10443/login when the world runs on offset ports)
    assert!(
        t.contains("location: https://myapp.test") && t.contains("/login\n"),
        "{t}"
    );
    // A method, a header and a body.
    let body =
        r#"{"name":"Barbara Liskov","email":"barbara@myapp.test","password":"substitution"}"#;
    // (curl's -i and --http2 are taken as curl takes them; --data is
    // weblab's data directory, so a body is -d or --data-binary)
    let args = [
        "fetch",
        "-i",
        "--http2",
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        body,
        "https://myapp.test/api/users",
    ];
    let t = text(&weblab(&args, 179));
    assert!(
        t.contains("HTTP/2 201 Created") && t.contains("location: /api/users/"),
        "{t}"
    );
    // A malformed header is named, before anything boots.
    let out = weblab(&["fetch", "-H", "no colon", "myapp.test/"], 179);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-H \"no colon\""));
    assert!(out.stdout.is_empty());
}

#[test]
fn after_one_visit_over_https_plain_http_urls_are_upgraded_before_any_packet() {
    let dir = data_dir(182);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weblab"))
            .args(["--block", "182", "--data"])
            .arg(&dir)
            .args(args)
            .output()
            .unwrap()
    };
    // First visit: the 301 to https, whose answer carries HSTS.
    let first = run(&["fetch", "-L", "--json", "http://myapp.test/login"]);
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let legs = |v: &serde_json::Value| -> Vec<String> {
        v["spans"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["event"]["kind"] == "request_sent")
            .filter_map(|s| s["event"]["url"].as_str().map(str::to_string))
            .collect()
    };
    let sent = legs(&first);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[0].starts_with("http://") && sent[1].starts_with("https://"),
        "{sent:?}"
    );
    // Second run, same data directory: no plain request at all.
    let second = run(&["fetch", "--json", "http://myapp.test/login"]);
    let _ = std::fs::remove_dir_all(&dir);
    let second: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let sent = legs(&second);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("https://myapp.test"), "{sent:?}");
    assert_eq!(second["status"], 200);
    let said = second["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["event"]["kind"] == "note")
        .filter_map(|s| s["event"]["text"].as_str())
        .any(|t| t.starts_with("HSTS (C33): http://myapp.test/login becomes https://"));
    assert!(said, "the upgrade is a step of the trace");
}

#[test]
fn fetch_with_an_origin_enforces_cors_as_a_browser_does() {
    let dir = data_dir(185);
    let run = |args: &[&str]| {
        // Wide, so that no step's line is cut short.
        let out = Command::new(env!("CARGO_BIN_EXE_weblab"))
            .env("COLUMNS", "400")
            .args(["--block", "185", "--data"])
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let api = "https://myapp.test/api/users/1";
    // An origin the app allows: a simple GET, readable.
    let (code, t) = run(&["fetch", "--origin", "https://partner.test", api]);
    assert_eq!(code, Some(0), "{t}");
    assert!(
        t.contains("access-control-allow-origin: https://partner.test"),
        "{t}"
    );
    assert!(t.contains("the page may read it"), "{t}");
    // The same with the page's cookies (credentials "include"): the app
    // names the origin but does not allow credentials, so the answer is
    // kept from the page.
    let (code, t) = run(&[
        "fetch",
        "--origin",
        "https://partner.test",
        "--with-credentials",
        api,
    ]);
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("with its cookies (credentials asked for)"),
        "{t}"
    );
    assert!(
        t.contains("no Access-Control-Allow-Credentials: true"),
        "{t}"
    );
    // Another origin: the request goes, the answer is kept from the page.
    let (code, t) = run(&["fetch", "--origin", "https://other.test", api]);
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("blocked by CORS (C40)") && t.contains("no Access-Control-Allow-Origin"),
        "{t}"
    );
    // Not simple: the preflight asks first; for an origin the app does
    // not allow, the DELETE itself is never sent.
    let (code, t) = run(&[
        "fetch",
        "-X",
        "DELETE",
        "--origin",
        "https://other.test",
        api,
    ]);
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("OPTIONS /api/users/1"), "{t}");
    assert!(!t.contains("DELETE /api/users/1"), "{t}");
    assert!(t.contains("the request is not sent"), "{t}");
    let (_, t) = run(&[
        "fetch",
        "-X",
        "DELETE",
        "--origin",
        "https://partner.test",
        api,
    ]);
    assert!(
        t.contains("the preflight allows it") && t.contains("DELETE /api/users/1"),
        "{t}"
    );
    // A second visit by the same browser: the kept preflight (the app's
    // Access-Control-Max-Age is 600 s) covers it, no OPTIONS goes out.
    let (_, t) = run(&[
        "fetch",
        "-X",
        "DELETE",
        "--origin",
        "https://partner.test",
        "--reload",
        api,
    ]);
    assert!(
        t.contains("is kept for 600 s (Access-Control-Max-Age): no preflight this time"),
        "{t}"
    );
    assert!(
        !t.contains("OPTIONS /api/users/1") && t.contains("DELETE /api/users/1"),
        "{t}"
    );
    // Same origin: no CORS at all.
    let (code, t) = run(&["fetch", "--origin", "https://myapp.test", api]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(0), "{t}");
    assert!(t.contains("asks its own origin; no CORS"), "{t}");
}

/// One framed DNS-over-TCP exchange on a fresh connection: the answer,
/// or `None` when the server closed or said nothing in time.
async fn tcp_send(server: SocketAddr, frame: &[u8]) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server).await.ok()?;
    s.write_all(frame).await.ok()?;
    let read = async {
        let len = s.read_u16().await.ok()?;
        let mut buf = vec![0u8; usize::from(len)];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(Duration::from_millis(500), read)
        .await
        .ok()
        .flatten()
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut f = (msg.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(msg);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_loops_truncated_and_oversized_messages_over_udp_and_tcp_leave_every_server_answering()
 {
    let w = start(189).await;
    let good = weblab_dns::net::build_query(
        &hickory_proto::rr::Name::from_ascii("myapp.test.").unwrap(),
        hickory_proto::rr::RecordType::A,
        true,
    )
    .to_vec()
    .unwrap();
    // A question whose name is a pointer to itself (offset 12).
    let mut looped = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    looped.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
    // A good query cut in the middle of its question.
    let cut = &good[..good.len() - 7];
    // Far more than any DNS message needs.
    let huge: Vec<u8> = good
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0x41, 9000))
        .collect();
    for host in ["resolver", "root", "tld", "auth"] {
        let server = SocketAddr::new(w.addr(host), w.ports.dns);
        for bad in [&looped[..], cut, &huge[..]] {
            if let Some(reply) = send(server, bad).await {
                let m = Message::from_vec(&reply).unwrap();
                assert_eq!(
                    m.metadata.response_code,
                    ResponseCode::FormErr,
                    "{host} udp"
                );
            }
            if let Some(reply) = tcp_send(server, &framed(bad)).await {
                let m = Message::from_vec(&reply).unwrap();
                assert_eq!(
                    m.metadata.response_code,
                    ResponseCode::FormErr,
                    "{host} tcp"
                );
            }
        }
        // The self-pointing name is named malformed, not looped on.
        let reply = send(server, &looped).await.expect("an answer to the loop");
        assert_eq!(Message::from_vec(&reply).unwrap().metadata.id, 0x1234);
        // A length prefix promising more than comes, then silence; a zero
        // length; half a length prefix: the connection is closed, the
        // server lives.
        assert_eq!(
            tcp_send(server, &[0xff, 0xff, 1, 2, 3]).await,
            None,
            "{host}"
        );
        assert_eq!(tcp_send(server, &[0x00, 0x00]).await, None, "{host}");
        assert_eq!(tcp_send(server, &[0x00]).await, None, "{host}");
        // And real queries still get their answers over both transports.
        let udp = send(server, &good)
            .await
            .unwrap_or_else(|| panic!("{host} died (udp)"));
        let tcp = tcp_send(server, &framed(&good))
            .await
            .unwrap_or_else(|| panic!("{host} died (tcp)"));
        for reply in [udp, tcp] {
            let m = Message::from_vec(&reply).unwrap();
            assert_ne!(m.metadata.response_code, ResponseCode::FormErr, "{host}");
        }
    }
}

/// A server outside the world, for `fetch --resolve/--cacert/-k`.
struct Outside;

impl weblab_server::Handler for Outside {
    type Body = http_body_util::Full<bytes::Bytes>;

    async fn call(
        self: std::sync::Arc<Self>,
        _req: http::Request<weblab_server::RequestBody>,
        _conn: weblab_server::ConnInfo,
    ) -> http::Response<Self::Body> {
        http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
            "hello from outside\n",
        )))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_reaches_a_server_outside_the_world_with_resolve_cacert_or_k() {
    // Its own CA, unknown to the world.
    // (Not under the block's data directory: each run below removes that.)
    let dir = std::env::temp_dir().join(format!("weblab-outside-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = weblab_edge::tls::LocalCa::load_or_create(&dir).unwrap();
    let (chain, key) = ca.issue(&["outside.test".to_string()]).unwrap();
    let tls = weblab_edge::tls::server_config(chain, key, &[b"http/1.1"]).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let _server = weblab_server::serve_http(
        l,
        Some(tls),
        weblab_server::Limits::default(),
        std::sync::Arc::new(Outside),
    )
    .unwrap();
    let url = format!("https://outside.test:{port}/");
    let resolve = format!("outside.test:{port}:127.0.0.1");
    let ca_file = weblab_edge::tls::LocalCa::cert_path(&dir);
    let run = |extra: Vec<String>| {
        let mut args = vec![
            "fetch".to_string(),
            url.clone(),
            "--resolve".into(),
            resolve.clone(),
        ];
        args.extend(extra);
        async move {
            tokio::task::spawn_blocking(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                weblab(&a, 190)
            })
            .await
            .unwrap()
        }
    };
    // The world's CA alone does not vouch for it.
    let out = run(vec![]).await;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    // With its CA: the answer, and no lookup was made for the name.
    let out = run(vec!["--cacert".into(), ca_file.display().to_string()]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("HTTP/1.1 200 OK") && text.contains("hello from outside"),
        "{text}"
    );
    // With -k: the answer too, and the trace says the chain went unchecked.
    let out = run(vec!["-k".into(), "--detail".into()]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("hello from outside"), "{text}");
    assert!(text.contains("not checked (-k)"), "{text}");
    assert!(text.contains("by --resolve: no lookup"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn runs_print_each_stage_over_the_runs_and_a_broken_slo_exits_4() {
    let out = weblab(
        &[
            "fetch",
            "https://myapp.test/api/users/1",
            "--runs",
            "4",
            "--slo",
            "total=60s,ttfb=60s",
        ],
        191,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("== 4 runs (first request of each; ms) =="),
        "{text}"
    );
    let row = text.lines().find(|l| l.starts_with("total ")).unwrap();
    let v: Vec<f64> = row
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(v[0] > 0.0 && v[0] <= v[1] && v[1] <= v[2], "{row}");
    assert!(
        text.contains("slo met (p95 over the runs): total <= 60000.000 ms"),
        "{text}"
    );
    // One nanosecond is not enough for anything: exit code 4, and why.
    let out = weblab(
        &[
            "fetch",
            "https://myapp.test/api/users/1",
            "--slo",
            "ttfb=1ns",
        ],
        191,
    );
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slo broken (this run): ttfb"), "{err}");
    // A stage that does not exist is named before anything runs.
    let out = weblab(
        &["fetch", "https://myapp.test/", "--slo", "firstpaint=1s"],
        191,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"firstpaint\" is not a stage"));
}

#[test]
fn tour_reload_shows_the_second_visit_with_its_subresources_from_the_cache() {
    let out = weblab(&["tour", "--reload"], 194);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("(second visit, same browser)"), "{text}");
    // No stage at all for a subresource answered from the cache.
    let row = text
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/static/app.css"))
        .unwrap();
    assert_eq!(
        row.split_whitespace().filter(|c| *c == "-").count(),
        8,
        "{row}"
    );
    // The hop lines say so.
    assert_eq!(
        text.matches("from the HTTP cache (no request): /static/")
            .count(),
        3,
        "{text}"
    );
    // The trace says why, once per subresource.
    let out = weblab(&["tour", "--reload", "--json"], 194);
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(json.matches("is fresh (age").count(), 3, "{json}");
}

/// The HAR 1.2 rules every entry keeps (the spec's, and what HAR viewers
/// check): `time` is the sum of the timings that apply, ssl inside
/// connect, -1 only for phases that did not happen, no fragment in the
/// URL, the query string listed, a status text, every response header.
fn har_entries_keep_the_rules(har: &serde_json::Value) -> usize {
    let entries = har["log"]["entries"].as_array().unwrap();
    for e in entries {
        let t = &e["timings"];
        let get = |k: &str| t[k].as_f64().unwrap();
        let sum: f64 = ["blocked", "dns", "connect", "send", "wait", "receive"]
            .iter()
            .map(|k| get(k))
            .filter(|v| *v > 0.0)
            .sum();
        let time = e["time"].as_f64().unwrap();
        assert!((time - sum).abs() < 0.002, "time {time} vs sum {sum}: {e}");
        for k in [
            "blocked", "dns", "connect", "ssl", "send", "wait", "receive",
        ] {
            assert!(get(k) == -1.0 || get(k) >= 0.0, "{k}: {e}");
        }
        assert!(get("send") >= 0.0 && get("wait") >= 0.0 && get("receive") >= 0.0);
        if get("ssl") >= 0.0 {
            assert!(get("connect") >= get("ssl"), "ssl is inside connect: {e}");
        }
        let url = e["request"]["url"].as_str().unwrap();
        assert!(!url.contains('#'), "{url}");
        let query = url.split_once('?').map_or(0, |(_, q)| q.split('&').count());
        assert_eq!(
            e["request"]["queryString"].as_array().unwrap().len(),
            query,
            "{url}"
        );
        assert!(
            !e["response"]["statusText"].as_str().unwrap().is_empty(),
            "{e}"
        );
        let headers = e["response"]["headers"].as_array().unwrap();
        assert!(headers.len() >= 3, "{e}");
        let status = e["response"]["status"].as_i64().unwrap();
        let location = headers
            .iter()
            .find(|h| h["name"] == "location")
            .map(|h| h["value"].clone());
        if (300..400).contains(&status) {
            assert_eq!(Some(e["response"]["redirectURL"].clone()), location, "{e}");
        }
    }
    entries.len()
}

#[test]
fn every_har_entry_keeps_the_har_rules_over_pages_http11_pools_and_redirects() {
    let har_path = std::env::temp_dir().join(format!("weblab-rules-{}.har", std::process::id()));
    let p = har_path.to_str().unwrap();
    let runs: [&[&str]; 3] = [
        &["tour", "https://myapp.test/login?x=1&y=2#top", "--har", p],
        &["tour", "--http1.1", "--har", p],
        &["fetch", "-L", "http://myapp.test/login", "--har", p],
    ];
    let mut redirects = 0;
    for args in runs {
        let out = weblab(args, 195);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let har: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&har_path).unwrap()).unwrap();
        assert!(har_entries_keep_the_rules(&har) >= 2, "{args:?}");
        redirects += har["log"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["response"]["redirectURL"] != "")
            .count();
    }
    let _ = std::fs::remove_file(&har_path);
    assert!(redirects >= 1, "the -L run followed a redirect");
}

#[test]
fn fetch_speaks_http09_to_a_web_server_and_refuses_it_over_tls() {
    // (Block 199: this test's own world.)
    let out = weblab(
        &[
            "fetch",
            "--http0.9",
            "--detail",
            "http://127.199.4.1/static/app.js",
        ],
        199,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("(HTTP/0.9: no status line and no headers"),
        "{text}"
    );
    assert!(
        text.contains("document.addEventListener"),
        "the body: {text}"
    );
    // The request went out as HTTP/0.9's one line, and the answer ended
    // with the server's close (the story wraps: compare words).
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("request: GET /static/app.js HTTP/0.9"),
        "{text}"
    );
    assert!(words.contains("ended by the server closing"), "{text}");
    let out = weblab(&["fetch", "--http0.9", "https://myapp.test/login"], 199);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP/0.9 has no TLS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fetch_keeps_cookies_in_curls_cookie_file_format_between_runs() {
    let dir = data_dir(200);
    let jar = dir.with_extension("cookies");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_weblab"))
            .args(["--block", "200", "--data"])
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let jar_arg = jar.to_str().unwrap();
    let (code, t) = run(&[
        "fetch",
        "-X",
        "POST",
        "-d",
        "email=ada@myapp.test&password=weblab-demo",
        "-c",
        jar_arg,
        "https://myapp.test/login",
    ]);
    assert_eq!(code, Some(0), "{t}");
    let file = std::fs::read_to_string(&jar).unwrap();
    let line = file
        .lines()
        .find(|l| l.contains("\tsid\t"))
        .unwrap_or_else(|| panic!("no session cookie in {file}"));
    // Host-only, secure, with an expiry: as curl -c would write it.
    assert!(line.starts_with("myapp.test\tFALSE\t/\tTRUE\t"), "{line}");
    // A later run (a new process, a new browser) starts from the file.
    let (_, t) = run(&["fetch", "-b", jar_arg, "https://myapp.test/api/me"]);
    assert!(
        t.starts_with("weblab fetch") && t.contains("HTTP/2 200"),
        "{t}"
    );
    let (_, t) = run(&["fetch", "https://myapp.test/api/me"]);
    assert!(t.contains("HTTP/2 401"), "without the file: {t}");
    // A broken file is refused, naming the line.
    std::fs::write(&jar, "# comment\nmyapp.test\tFALSE\t/\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weblab"))
        .args(["--block", "200", "--data"])
        .arg(&dir)
        .args(["fetch", "-b", jar_arg, "https://myapp.test/api/me"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("line 2:"), "{err}");
    let _ = std::fs::remove_file(&jar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_a_disk_cache_a_second_tour_takes_fresh_subresources_from_it() {
    let dir = data_dir(201);
    // How many requests went on the wire (those with a "sent" step), how
    // many asked for no cached copy, and what was said on stderr.
    let tour = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_weblab"))
            .args(["--block", "201", "--data"])
            .arg(&dir)
            .args(["tour", "--json"])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let spans = v["spans"].as_array().unwrap();
        let count = |kind: &str| spans.iter().filter(|s| s["event"]["kind"] == kind).count();
        let no_cache = spans
            .iter()
            .filter(|s| s["event"]["kind"] == "request_prepared")
            .filter(|s| {
                s["event"]["headers"].as_array().unwrap().iter().any(|h| {
                    h[0].as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case("cache-control"))
                        && h[1] == "no-cache"
                })
            })
            .count();
        (count("request_sent"), no_cache, err)
    };
    let (sent, no_cache, _) = tour(&["--disk-cache"]);
    assert_eq!(
        (sent, no_cache),
        (4, 0),
        "the first tour asks for the page and its three files"
    );
    assert!(dir.join("http-cache-client.json").exists());
    assert!(dir.join("hsts-client.json").exists());
    // A new process: the page (no-store) is asked for again, the static
    // files (max-age) come from the disk cache.
    assert_eq!(tour(&["--disk-cache"]).0, 1);
    // --no-cache: nothing taken from the cache, every request says so.
    let (sent, no_cache, _) = tour(&["--no-cache"]);
    assert_eq!((sent, no_cache), (4, 4));
    // --clean: the client's stores are gone before the visit.
    let (sent, _, err) = tour(&["--disk-cache", "--clean"]);
    assert_eq!(sent, 4, "{err}");
    assert!(
        err.contains("--clean: removed") && err.contains("http-cache-client.json"),
        "{err}"
    );
    assert!(err.contains("hsts-client.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server that answers each path with broken bytes, then closes.
async fn broken_server() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        // Bounded: the test makes a handful of requests.
        for _ in 0..64 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head).into_owned();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let answer: &[u8] = match path.as_str() {
                    "/truncated" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
                    "/badchunk" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    "/badgzip" => {
                        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello"
                    }
                    _ => b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n",
                };
                let _ = s.write_all(answer).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_names_the_stage_that_failed_for_broken_answers_and_certificates() {
    let fetch = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            let mut a = vec!["fetch"];
            a.extend(args.iter().map(String::as_str));
            let out = weblab(&a, 203);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code(), err)
        })
        .await
        .unwrap()
    };
    let plain = broken_server().await;
    let cases = [
        ("/truncated", "HTTP exchange failed"),
        ("/badchunk", "HTTP exchange failed"),
        ("/badgzip", "cannot decode the body"),
        ("/loop", "redirect loop"),
    ];
    for (path, says) in cases {
        let (code, err) = fetch(vec!["-L".into(), format!("http://{plain}{path}")]).await;
        assert_eq!(code, Some(1), "{path}: {err}");
        assert!(err.contains(says), "{path}: {err}");
        assert!(!err.contains("panicked"), "{path}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{err}"
        );
    }
    // Certificates: a name the certificate does not carry, and one that
    // expired; both from a CA the browser is told to trust.
    let dir = std::env::temp_dir().join(format!("weblab-broken-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = weblab_edge::tls::LocalCa::load_or_create(&dir).unwrap();
    let ca_file = weblab_edge::tls::LocalCa::cert_path(&dir);
    let mut servers = Vec::new();
    let issued = [
        ca.issue(&["other.test".to_string()]).unwrap(),
        ca.issue_between(&["old.test".to_string()], (2020, 1, 1), (2021, 1, 1))
            .unwrap(),
    ];
    for (chain, key) in issued {
        let tls = weblab_edge::tls::server_config(chain, key, &[b"http/1.1"]).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let handle = weblab_server::serve_http(
            l,
            Some(tls),
            weblab_server::Limits::default(),
            std::sync::Arc::new(Outside),
        )
        .unwrap();
        servers.push((port, handle));
    }
    let tls_cases = [
        ("wrong.test", servers[0].0, "not valid for name"),
        ("old.test", servers[1].0, "expired"),
    ];
    for (name, port, says) in tls_cases {
        let (code, err) = fetch(vec![
            format!("https://{name}:{port}/"),
            "--resolve".into(),
            format!("{name}:{port}:127.0.0.1"),
            "--cacert".into(),
            ca_file.display().to_string(),
        ])
        .await;
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(err.contains("TLS handshake failed"), "{name}: {err}");
        assert!(err.to_lowercase().contains(says), "{name}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_profile_keeps_the_sign_in_cookie_between_runs_until_clean() {
    let dir = data_dir(204);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_weblab"))
            .args(["--block", "204", "--data"])
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let account = "https://myapp.test/account";
    let (code, t) = run(&["tour", "--oauth", "--profile"]);
    assert_eq!(code, Some(0), "{t}");
    let jar = std::fs::read_to_string(dir.join("cookies-client.txt")).unwrap();
    assert!(jar.contains("\tsid\t"), "{jar}");
    // A later run with the profile is still signed in; one without is not.
    let (_, t) = run(&["fetch", "--profile", account]);
    assert!(t.contains("HTTP/2 200 OK"), "{t}");
    let (_, t) = run(&["fetch", account]);
    assert!(t.contains("HTTP/2 303 See Other"), "{t}");
    // --clean forgets the cookies: signed out again.
    let (_, t) = run(&["fetch", "--profile", "--clean", account]);
    assert!(
        t.contains("--clean: removed") && t.contains("cookies-client.txt"),
        "{t}"
    );
    assert!(t.contains("HTTP/2 303 See Other"), "{t}");
    let _ = std::fs::remove_dir_all(&dir);
}
