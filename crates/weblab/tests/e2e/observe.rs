//! One trace across processes: roles exporting over OTLP, `weblab up` and
//! `weblab collect` receiving, `tour --attach`, `trace list/show`, an
//! OpenTelemetry SDK joining, and the receiver's bounds.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use weblab::config::World;
use weblab_trace::{Event, Span};

use crate::support::{Proc, data_dir, exchange};

const SEC: Duration = Duration::from_secs(1);

fn world(block: u8) -> World {
    let mut w = World::default_world();
    w.relocate(block);
    w
}

fn weblab(block: u8, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_weblab"))
        .args([
            "--block",
            &block.to_string(),
            "--data",
            dir.to_str().unwrap(),
        ])
        .args(args)
        .output()
        .unwrap()
}

async fn weblab_async(block: u8, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let (dir, args): (std::path::PathBuf, Vec<String>) = (
        dir.to_path_buf(),
        args.iter().map(|a| a.to_string()).collect(),
    );
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        weblab(block, &dir, &a)
    })
    .await
    .unwrap()
}

/// Runs `weblab ARGS` in the background until it prints `ready`.
async fn start(block: u8, dir: &std::path::Path, args: &[&str], ready: &str) -> Proc {
    let b = block.to_string();
    let mut full = vec!["--block", &b, "--data", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut p = Proc::spawn(&full, &[]);
    assert!(
        p.wait_for(ready, 60 * SEC).await,
        "{args:?}: {}",
        p.stderr()
    );
    p
}

/// `tour --attach --json URL`: the trace's spans.
async fn attach(block: u8, dir: &std::path::Path, url: &str) -> (String, Vec<Span>) {
    let out = weblab_async(block, dir, &["tour", "--attach", "--json", url]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let spans: Vec<Span> = serde_json::from_value(v["spans"].clone()).unwrap();
    (v["trace"].as_str().unwrap().to_string(), spans)
}

/// The kinds of hosts a trace touched (web1 and web2 are both "web").
fn hops(spans: &[Span]) -> BTreeSet<String> {
    spans
        .iter()
        .map(|s| {
            s.host
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_in_separate_processes_make_one_trace_with_the_hops_of_the_in_process_tour() {
    let block = 150;
    let dir = data_dir(block);
    let _collect = start(block, &dir, &["collect"], "collecting traces").await;
    let otlp = format!("http://{}", world(block).collector);
    let mut roles = Vec::new();
    for role in ["dns", "app", "web", "lb"] {
        roles.push(start(block, &dir, &["serve", role, "--otlp", &otlp], " on ").await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, spans) = attach(block, &dir, "https://myapp.test/login").await;

    // The same page in one process, for comparison.
    let w = crate::support::start(149).await;
    let result = weblab::tour::visit(&w, "https://myapp.test/login", false)
        .await
        .unwrap();
    assert!(result.page.is_ok());
    assert_eq!(
        hops(&spans),
        hops(&result.spans),
        "across processes vs in one"
    );
    let want: BTreeSet<String> = [
        "client", "resolver", "root", "tld", "auth", "lb", "web", "app",
    ]
    .map(String::from)
    .into();
    assert_eq!(hops(&spans), want);
    // Every span but the root hangs under a span of the same trace.
    let ids: BTreeSet<_> = spans.iter().map(|s| s.id).collect();
    let orphans: Vec<_> = spans
        .iter()
        .filter(|s| s.parent.is_some_and(|p| !ids.contains(&p)))
        .map(|s| format!("{}@{}", s.event.kind(), s.host))
        .collect();
    assert!(orphans.is_empty(), "{orphans:?}");
    drop(roles);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tour_attach_twice_against_up_shows_the_resolver_cache_hit_and_curl_traffic_is_listed() {
    let block = 151;
    let dir = data_dir(block);
    let mut up = start(block, &dir, &["up"], "stops the world").await;
    let resolver_hit = |spans: &[Span]| {
        spans.iter().find_map(|s| match &s.event {
            Event::CacheLookup {
                level: weblab_trace::CacheLevel::Resolver,
                hit,
                ..
            } if s.host == "resolver" => Some(*hit),
            _ => None,
        })
    };
    let (first_id, first) = attach(block, &dir, "https://myapp.test/login").await;
    let (second_id, second) = attach(block, &dir, "https://myapp.test/login").await;
    assert_ne!(first_id, second_id);
    assert_eq!(resolver_hit(&first), Some(false), "the first run misses");
    assert_eq!(resolver_hit(&second), Some(true), "the second run hits");
    assert!(!hops(&second).contains("root"), "no iteration on a hit");

    // A request from an ordinary client is a server-side trace too.
    let w = world(block);
    let lb = SocketAddr::new(w.addr("lb").into(), weblab::world::choose_ports(&w).http);
    let s = tokio::net::TcpStream::connect(lb).await.unwrap();
    let r = exchange(
        s,
        b"GET /x HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n\r\n",
        5 * SEC,
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 301"));
    assert!(
        up.wait_for(&second_id, 5 * SEC).await,
        "up prints a line per trace"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let list = weblab_async(block, &dir, &["trace", "list", "--json"]).await;
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let rows = list.as_array().unwrap();
    assert!(rows.iter().any(|t| t["trace"] == first_id.as_str()));
    assert!(
        rows.iter()
            .any(|t| t["url"] == "/x" && t["status"] == "301" && t["hosts"][0] == "lb"),
        "{list:#}"
    );
    // show: the same trace by id, and a clear line for an unknown one.
    let shown = weblab_async(block, &dir, &["trace", "show", &second_id, "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(v["spans"].as_array().unwrap().len(), second.len());
    let unknown = weblab_async(block, &dir, &["trace", "show", &"ab".repeat(16)]).await;
    assert_eq!(unknown.status.code(), Some(2));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("no trace abab") && err.lines().count() == 1,
        "{err}"
    );
    up.signal(libc::SIGTERM);
    assert!(up.exit(10 * SEC).await.is_some_and(|s| s.success()));
    let _ = std::fs::remove_dir_all(&dir);
}

fn python_otel() -> bool {
    let ok = std::process::Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("WEBLAB_REQUIRE_INTEROP").is_none(),
            "the OpenTelemetry Python SDK is required (WEBLAB_REQUIRE_INTEROP is set)"
        );
        eprintln!("skipping: python3 with opentelemetry-sdk is not installed");
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_service_with_the_opentelemetry_sdk_joins_the_trace_under_its_caller() {
    if !python_otel() {
        return;
    }
    let block = 152;
    let dir = data_dir(block);
    let _up = start(block, &dir, &["up"], "stops the world").await;
    let collector = format!("http://{}", world(block).collector);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/assets/otel_service.py"
    );
    let mut py = std::process::Command::new("python3")
        .args([script, "127.152.9.9", "8080", &collector])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for it to listen.
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect("127.152.9.9:8080")
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the Python service did not start");
    let (_, spans) = attach(block, &dir, "http://127.152.9.9:8080/hello").await;
    let _ = py.kill();
    let _ = py.wait();
    let foreign = spans
        .iter()
        .find(|s| matches!(&s.event, Event::Foreign { service, name, .. } if service == "otel-demo" && name == "GET /hello"))
        .unwrap_or_else(|| panic!("no span from the service: {:?}", crate::support::kinds(&spans)));
    // Its parent is the browser's span that sent the traceparent.
    let parent = spans.iter().find(|s| Some(s.id) == foreign.parent).unwrap();
    assert_eq!(parent.host, "client");
    assert!(
        matches!(parent.event, Event::Waiting { status: 200, .. }),
        "{:?}",
        parent.event
    );
    // Two processes, one wall-clock axis: the service started its span
    // while the browser waited (a few ms of slack for the two clocks).
    let slack = 5_000_000;
    assert!(
        foreign.start_ns + slack >= parent.start_ns && foreign.start_ns <= parent.end_ns + slack,
        "service span starts at {} , the wait runs {}..{}",
        foreign.start_ns,
        parent.start_ns,
        parent.end_ns
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Posts an OTLP body to the collector; the raw response.
async fn post(addr: SocketAddr, content_type: &str, body: &[u8]) -> String {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    exchange(s, &req, 10 * SEC).await
}

fn spans_of(trace: u128, n: u64) -> Vec<Span> {
    let now = weblab_trace::now_ns();
    (0..n)
        .map(|i| Span {
            trace: weblab_trace::TraceId(trace),
            id: weblab_trace::SpanId(i + 1),
            parent: (i > 0).then_some(weblab_trace::SpanId(1)),
            host: "lb".into(),
            addr: "127.0.0.1".into(),
            layer: weblab_trace::Layer::Application,
            component: "lb".into(),
            start_ns: now,
            end_ns: now + 1000,
            request: None,
            link: None,
            correlates: vec![],
            event: Event::Note {
                text: "x".repeat(100),
            },
        })
        .collect()
}

fn protobuf(spans: &[Span]) -> Vec<u8> {
    weblab_otlp::convert::to_protobuf(&weblab_otlp::convert::encode(spans))
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_traces_leave_the_collector_within_its_bound() {
    let block = 153;
    let dir = data_dir(block);
    let collect = start(
        block,
        &dir,
        &["collect", "--max-bytes", "1m"],
        "collecting traces",
    )
    .await;
    let addr = world(block).collector;
    for batch in 0..100u128 {
        let mut spans = Vec::new();
        for t in 0..100u128 {
            spans.extend(spans_of((batch << 32) + t + 1, 3));
        }
        let r = post(addr, "application/x-protobuf", &protobuf(&spans)).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let health = exchange(
        s,
        b"GET /v1/weblab/health HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n",
        5 * SEC,
    )
    .await;
    let body = &health[health.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let store = &v["store"];
    assert!(store["bytes"].as_u64().unwrap() <= 1 << 20, "{store}");
    assert_eq!(
        store["traces"].as_u64().unwrap() + store["evicted_traces"].as_u64().unwrap(),
        10_000,
        "{store}"
    );
    let rss = rss_kib(collect.child.id());
    assert!(rss > 0 && rss < 100 * 1024, "collector RSS {rss} KiB");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_receiver_answers_bad_input_clearly_and_keeps_serving() {
    let block = 154;
    let dir = data_dir(block);
    let _collect = start(block, &dir, &["collect"], "collecting traces").await;
    let addr = world(block).collector;
    let status = |r: &str| r.split(' ').nth(1).unwrap_or("").to_string();
    let r = post(addr, "application/x-protobuf", b"\xff\xff\xff not protobuf").await;
    assert_eq!(status(&r), "400", "{r}");
    assert!(r.contains("malformed protobuf"), "{r}");
    let r = post(addr, "application/json", b"{\"resourceSpans\": [").await;
    assert_eq!(status(&r), "400", "{r}");
    let r = post(addr, "text/plain", b"hi").await;
    assert_eq!(status(&r), "415", "{r}");
    let r = post(addr, "application/x-protobuf", &vec![0u8; 9 << 20]).await;
    assert_eq!(status(&r), "413", "{r}");
    // Zero ids and times far away: accepted request, rejected spans.
    let mut bad = spans_of(7, 2);
    bad[0].id = weblab_trace::SpanId(0);
    bad[1].start_ns = 1;
    bad[1].end_ns = 2;
    let mut req = weblab_otlp::convert::encode(&bad);
    req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![0u8; 16].into();
    let json = weblab_otlp::convert::to_json_body(&req);
    let r = post(addr, "application/json", &json).await;
    assert_eq!(status(&r), "200", "{r}");
    assert!(
        r.contains("\"rejectedSpans\":\"2\"") || r.contains("\"rejectedSpans\":2"),
        "{r}"
    );
    // And good spans still go in.
    let r = post(addr, "application/x-protobuf", &protobuf(&spans_of(8, 2))).await;
    assert_eq!(status(&r), "200", "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_world_running_attach_and_show_fail_in_one_line_and_a_role_serves_without_its_collector()
 {
    let block = 155;
    let dir = data_dir(block);
    let out = weblab_async(block, &dir, &["tour", "--attach"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no running world") && err.lines().count() == 1,
        "{err}"
    );
    let out = weblab_async(block, &dir, &["trace", "show", &"cd".repeat(16)]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no running world") && err.lines().count() == 1,
        "{err}"
    );

    // A DNS role exporting to a collector that is not there keeps answering,
    // and says so once.
    let otlp = format!("http://{}", world(block).collector);
    let mut dns = start(
        block,
        &dir,
        &["serve", "dns", "--host", "auth", "--otlp", &otlp],
        " on ",
    )
    .await;
    let w = world(block);
    let auth = SocketAddr::new(w.addr("auth").into(), weblab::world::choose_ports(&w).dns);
    for _ in 0..5 {
        let q = weblab_dns::net::build_query(
            &hickory_proto::rr::Name::from_ascii("myapp.test.").unwrap(),
            hickory_proto::rr::RecordType::A,
            false,
        );
        weblab_dns::net::exchange_udp("127.0.0.1".parse().unwrap(), auth, &q, 2 * SEC)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(dns.wait_for("otlp: cannot send spans", 3 * SEC).await);
    assert_eq!(
        dns.stderr().matches("otlp: cannot send spans").count(),
        1,
        "{}",
        dns.stderr()
    );
    assert!(dns.alive().is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether a program answers `probe` (and, under CI, that it must).
pub(crate) fn installed(program: &str, probe: &str) -> bool {
    let ok = std::process::Command::new(program)
        .arg(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("WEBLAB_REQUIRE_INTEROP").is_none(),
            "{program} is required (WEBLAB_REQUIRE_INTEROP is set) but not installed"
        );
        eprintln!("skipping: {program} is not installed");
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_trusting_the_world_ca_loads_the_page_and_each_request_is_a_trace() {
    if !installed("chromium", "--version") || !installed("certutil", "--build-flags") {
        return;
    }
    let block = 156;
    let dir = data_dir(block);
    let _up = start(block, &dir, &["up"], "stops the world").await;
    let w = world(block);
    let ports = weblab::world::choose_ports(&w);
    // The recipe `weblab up` prints: the CA in an NSS database, no
    // --ignore-certificate-errors.
    let home = dir.join("home");
    let nss = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nss).unwrap();
    let db = format!("sql:{}", nss.display());
    let run = |args: &[&str]| {
        let out = std::process::Command::new("certutil")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-d", &db, "-N", "--empty-password"]);
    let ca = dir.join("ca.pem");
    run(&[
        "-d",
        &db,
        "-A",
        "-t",
        "C,,",
        "-n",
        "weblab",
        "-i",
        ca.to_str().unwrap(),
    ]);
    let port = if ports.https == 443 {
        String::new()
    } else {
        format!(":{}", ports.https)
    };
    let url = format!("https://myapp.test{port}/login");
    let lb = w.addr("lb");
    let profile = dir.join("profile");
    let out = tokio::time::timeout(
        60 * SEC,
        tokio::process::Command::new("chromium")
            .env("HOME", &home)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--host-resolver-rules=MAP myapp.test {lb}"))
            .args(["--dump-dom", &url])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finishes within a minute")
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("Sign in"),
        "no page: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its requests reached the world and each is a trace of its own.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let list = weblab_async(block, &dir, &["trace", "list", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let urls: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["hosts"][0] == "lb")
        .filter_map(|t| t["url"].as_str())
        .collect();
    for want in ["/login", "/static/app.css"] {
        assert!(urls.contains(&want), "{want} not in {urls:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
