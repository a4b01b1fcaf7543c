//! The proxy with real sockets on loopback: WebSocket through it,
//! bodies streamed both ways, failover that resends a POST only when no
//! byte reached the dead backend, health going down and up, least
//! connections following requests in flight, and the status page.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weblab_edge::balance::{self, Balancer};
use weblab_edge::{Admin, Backend, Checks, Limits, LoadBalancer, Pool, serve_http};
use weblab_trace::{Collector, Detail, Event, Recorder};

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A backend answering with `f`, on its own port.
async fn backend<F, Fut>(f: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>>
        + Send
        + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let f = f.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let f = f.clone();
                    async move { Ok::<_, Infallible>(f(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

fn full(s: impl Into<Bytes>) -> http_body_util::combinators::BoxBody<Bytes, Infallible> {
    Full::new(s.into()).boxed()
}

/// A port nothing listens on.
async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

struct Proxy {
    addr: SocketAddr,
    pool: Arc<Pool>,
    collector: Collector,
    _server: weblab_edge::ServerHandle,
}

async fn proxy(backends: &[SocketAddr], algorithm: &str, checks: Checks) -> Proxy {
    proxy_with(backends, algorithm, checks, Limits::default()).await
}

async fn proxy_with(
    backends: &[SocketAddr],
    algorithm: &str,
    checks: Checks,
    limits: Limits,
) -> Proxy {
    let names: Vec<String> = (1..=backends.len()).map(|i| format!("b{i}")).collect();
    let list = backends
        .iter()
        .zip(&names)
        .map(|(a, n)| Backend::new(n, *a, 1))
        .collect();
    let weights = vec![1; backends.len()];
    let alg: Box<dyn Balancer> = balance::by_name(algorithm, &names, &weights).unwrap();
    let collector = Collector::new(Detail::Full);
    let rec = Recorder::new(collector.clone(), "lb", "127.0.0.1", "lb");
    let pool = Pool::new(list, alg, LOCAL, checks, rec.clone());
    pool.start_checks();
    let lb = Arc::new(LoadBalancer::new(pool.clone(), rec));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = serve_http(l, None, limits, lb).unwrap();
    Proxy {
        addr,
        pool,
        collector,
        _server: server,
    }
}

fn passive() -> Checks {
    Checks {
        interval: None,
        ..Checks::default()
    }
}

/// One raw HTTP/1.1 exchange; the whole answer as text.
async fn exchange(addr: SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A WebSocket server that sends every text or binary message back.
async fn ws_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        ws.send(m).await.unwrap();
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_websocket_echo_passes_through_and_the_tunnel_is_one_span() {
    let ws_addr = ws_echo().await;
    let p = proxy(&[ws_addr], "round-robin", passive()).await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let url = format!("ws://{}/chat", p.addr);
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    for word in ["hello", "through", "the proxy"] {
        ws.send(word.into()).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), word);
    }
    assert_eq!(p.pool.status().tunnels, 1);
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    drop(ws);
    // The tunnel ends as one span with the bytes it carried.
    let mut tunnel = None;
    for _ in 0..100 {
        tunnel = p
            .collector
            .snapshot()
            .into_iter()
            .find_map(|s| match s.event {
                Event::Tunnel {
                    client_to_upstream,
                    upstream_to_client,
                    protocol,
                    ..
                } => Some((client_to_upstream, upstream_to_client, protocol)),
                _ => None,
            });
        if tunnel.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (up, down, protocol) = tunnel.expect("a tunnel span");
    assert_eq!(protocol, "websocket");
    // Three masked client frames (6 bytes of header each) plus a close.
    assert!(up >= 5 + 7 + 9 + 3 * 6, "{up}");
    assert!(down >= 5 + 7 + 9 + 3 * 2, "{down}");
    assert_eq!(p.pool.status().tunnels, 0);
    assert_eq!(p.pool.backends()[0].in_flight(), 0);
}

#[tokio::test]
async fn a_response_streams_through_before_the_backend_finishes_it() {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let b = backend(move |_req| {
        let rx = rx.clone();
        async move {
            let chunks = futures::stream::unfold(0, move |n| {
                let mut rx = rx.clone();
                async move {
                    match n {
                        0 => Some((Ok(Frame::data(Bytes::from("data: first\n\n"))), 1)),
                        1 => {
                            let _ = rx.wait_for(|go| *go).await;
                            Some((Ok(Frame::data(Bytes::from("data: second\n\n"))), 2))
                        }
                        _ => None,
                    }
                }
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(chunks)))
                .unwrap()
        }
    })
    .await;
    let p = proxy(&[b], "round-robin", passive()).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // The first event arrives while the backend still holds the second.
    while !String::from_utf8_lossy(&got).contains("data: first") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the first event streams through")
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&got).contains("second"));
    assert_eq!(
        p.pool.backends()[0].in_flight(),
        1,
        "counted while streaming"
    );
    tx.send(true).unwrap();
    while !String::from_utf8_lossy(&got).contains("data: second") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("text/event-stream"), "{text}");
}

#[tokio::test]
async fn a_post_goes_to_the_next_backend_only_when_the_dead_one_got_no_byte() {
    let echo = backend(|req: Request<Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(body))
    })
    .await;
    let p = proxy(&[dead_port().await, echo], "round-robin", passive()).await;
    // Round robin starts at the dead one: the body is reclaimed whole.
    for _ in 0..2 {
        let r = exchange(
            p.addr,
            "POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\npayload",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with("payload"), "{r}");
    }
    // A backend that takes the POST and dies before answering: 502, and
    // the request is not sent again.
    let seen = Arc::new(AtomicU32::new(0));
    let (s1, s2) = (seen.clone(), seen.clone());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rude = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            s1.fetch_add(1, Ordering::Relaxed);
            drop(tcp);
        }
    });
    let counting = backend(move |_req| {
        let s2 = s2.clone();
        async move {
            s2.fetch_add(100, Ordering::Relaxed);
            Response::new(full("second"))
        }
    })
    .await;
    let p = proxy(&[rude, counting], "round-robin", passive()).await;
    let r = exchange(
        p.addr,
        "POST /pay HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n100",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert!(r.contains("b1 failed"), "{r}");
    assert_eq!(seen.load(Ordering::Relaxed), 1, "sent once, never twice");
    // A GET without a body is safe to send again.
    let r = exchange(
        p.addr,
        "GET /pay HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    // Round robin's second turn goes to the counting backend first; the
    // third turn tries the rude one, then retries on the other.
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = exchange(
        p.addr,
        "GET /pay HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(seen.load(Ordering::Relaxed), 2 + 200);
}

#[tokio::test]
async fn failing_checks_take_a_backend_out_and_passing_ones_bring_it_back() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = healthy.clone();
    let b = backend(move |_req| {
        let ok = h.load(Ordering::Relaxed);
        async move {
            let mut r = Response::new(full(if ok { "ok" } else { "sick" }));
            if !ok {
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            r
        }
    })
    .await;
    let checks = Checks {
        interval: Some(Duration::from_millis(30)),
        timeout: Duration::from_millis(500),
        rise: 2,
        fall: 2,
        ..Checks::default()
    };
    let p = proxy(&[b], "round-robin", checks).await;
    let health_events = |up: bool| {
        p.collector
            .snapshot()
            .into_iter()
            .filter(|s| matches!(&s.event, Event::BackendHealth { up: u, .. } if *u == up))
            .count()
    };
    for _ in 0..200 {
        if health_events(false) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(health_events(false), 1);
    let r = exchange(
        p.addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(r.contains("no backend is up"), "{r}");
    let status = p.pool.status();
    assert_eq!(status.backends[0].health, "down");
    assert!(status.backends[0].last_reason.contains("answered 500"));
    healthy.store(true, Ordering::Relaxed);
    for _ in 0..200 {
        if health_events(true) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(health_events(true), 1);
    let r = exchange(
        p.addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test]
async fn least_connections_sends_new_requests_away_from_a_busy_backend() {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let slow = backend(move |_req| {
        let rx = rx.clone();
        async move {
            let chunks = futures::stream::unfold(0, move |n| {
                let mut rx = rx.clone();
                async move {
                    match n {
                        0 => {
                            let _ = rx.wait_for(|go| *go).await;
                            Some((Ok(Frame::data(Bytes::from("slow"))), 1))
                        }
                        _ => None,
                    }
                }
            });
            let mut r = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
            r.headers_mut().insert("x-backend", "slow".parse().unwrap());
            r
        }
    })
    .await;
    let fast = backend(|_req| async move {
        let mut r = Response::new(full("fast"));
        r.headers_mut().insert("x-backend", "fast".parse().unwrap());
        r
    })
    .await;
    let p = proxy(&[slow, fast], "least-connections", passive()).await;
    // Open requests until one sits on the slow backend.
    let mut held = None;
    for _ in 0..4 {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        if String::from_utf8_lossy(&buf[..n]).contains("x-backend: slow") {
            held = Some(s);
            break;
        }
    }
    let _held = held.expect("one request reached the slow backend");
    assert_eq!(p.pool.backends()[0].in_flight(), 1);
    for _ in 0..10 {
        let r = exchange(
            p.addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.contains("x-backend: fast"), "{r}");
    }
    tx.send(true).unwrap();
}

#[tokio::test]
async fn the_status_page_lists_backends_as_json_and_html() {
    let b = backend(|_req| async move { Response::new(full("hi")) }).await;
    let p = proxy(&[b, dead_port().await], "power-of-two", passive()).await;
    for _ in 0..4 {
        let r = exchange(
            p.addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    // A client connection held open to the proxy is counted on the page.
    let held = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let admin = Arc::new(Admin {
        role: "lb".into(),
        pools: vec![("backends".into(), p.pool.clone())],
        fronts: vec![p._server.in_flight_reader()],
    });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let _h = serve_http(l, None, Limits::default(), admin).unwrap();
    let r = exchange(
        a,
        "GET /_weblab/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let json: serde_json::Value =
        serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["connections"], 1, "{json}");
    drop(held);
    let pool = &json["pools"][0];
    assert_eq!(pool["algorithm"], "power-of-two");
    assert_eq!(pool["backends"][0]["name"], "b1");
    assert_eq!(pool["backends"][0]["served"], 4);
    assert_eq!(pool["backends"][0]["in_flight"], 0);
    let b2 = &pool["backends"][1];
    assert_eq!(b2["name"], "b2");
    assert!(b2["health"] == "up" || b2["health"] == "down");
    let r = exchange(
        a,
        "GET /_weblab/status HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.contains("text/html") && r.contains("<table>") && r.contains("b1"),
        "{r}"
    );
    let r = exchange(
        a,
        "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
}

#[tokio::test]
async fn the_cache_server_hits_revalidates_with_304_and_bypasses_unsafe_methods() {
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let origin = backend(move |req: Request<Incoming>| {
        h.fetch_add(1, Ordering::Relaxed);
        let revalidating = req
            .headers()
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"");
        let private = req.uri().path() == "/private";
        async move {
            let mut r = Response::new(full(if revalidating { "" } else { "hello" }));
            if revalidating {
                *r.status_mut() = StatusCode::NOT_MODIFIED;
            }
            let cc = if private {
                "private, max-age=60"
            } else {
                "max-age=1"
            };
            r.headers_mut().insert("cache-control", cc.parse().unwrap());
            r.headers_mut().insert("etag", "\"v1\"".parse().unwrap());
            r
        }
    })
    .await;
    let names = vec!["web1".to_string()];
    let collector = Collector::new(Detail::Full);
    let rec = Recorder::new(collector.clone(), "cache", "127.0.0.1", "cache");
    let pool = Pool::new(
        vec![Backend::new("web1", origin, 1)],
        balance::by_name("round-robin", &names, &[1]).unwrap(),
        LOCAL,
        passive(),
        rec.clone(),
    );
    let cache = Arc::new(weblab_edge::CacheServer::new(pool, 1 << 20, vec![], rec));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let _s = serve_http(l, None, Limits::default(), cache).unwrap();
    let get = |path: &'static str| async move {
        let req = format!("GET {path} HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n\r\n");
        exchange(addr, &req).await
    };
    let r = get("/a").await;
    assert!(r.contains("x-cache: MISS") && r.ends_with("hello"), "{r}");
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    let r = get("/a").await;
    assert!(
        r.contains("x-cache: HIT") && r.contains("age: ") && r.ends_with("hello"),
        "{r}"
    );
    assert_eq!(
        hits.load(Ordering::Relaxed),
        1,
        "a hit never reaches the origin"
    );
    // A client that has it already gets 304 from the cache.
    let r = exchange(
        addr,
        "GET /a HTTP/1.1\r\nHost: myapp.test\r\nIf-None-Match: \"v1\"\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 304") && r.contains("x-cache: HIT"),
        "{r}"
    );
    assert!(!r.ends_with("hello"), "{r}");
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get("/a").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("x-cache: REVALIDATED"),
        "{r}"
    );
    assert!(r.ends_with("hello"), "the stored body, not the 304's: {r}");
    assert_eq!(hits.load(Ordering::Relaxed), 2);
    // An unsafe method passes and drops the stored copy.
    let r = exchange(
        addr,
        "POST /a HTTP/1.1\r\nHost: myapp.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.contains("x-cache: BYPASS"), "{r}");
    let r = get("/a").await;
    assert!(r.contains("x-cache: MISS"), "{r}");
    assert_eq!(hits.load(Ordering::Relaxed), 4);
    // only-if-cached: the stored copy, or 504 without one.
    let r = exchange(
        addr,
        "GET /a HTTP/1.1\r\nHost: myapp.test\r\nCache-Control: only-if-cached\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("hello"), "{r}");
    let r = exchange(
        addr,
        "GET /never HTTP/1.1\r\nHost: myapp.test\r\nCache-Control: only-if-cached\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 504"), "{r}");
    assert_eq!(
        hits.load(Ordering::Relaxed),
        4,
        "only-if-cached never asks the origin"
    );
    // private: never stored by a shared cache.
    get("/private").await;
    let r = get("/private").await;
    assert!(r.contains("x-cache: MISS"), "{r}");
    assert_eq!(hits.load(Ordering::Relaxed), 6);
    let outcomes: Vec<String> = collector
        .snapshot()
        .into_iter()
        .filter_map(|s| match s.event {
            Event::HttpCache { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "MISS",
            "HIT",
            "HIT",
            "REVALIDATED",
            "BYPASS",
            "MISS",
            "HIT",
            "MISS",
            "MISS",
            "MISS"
        ]
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413_while_it_streams() {
    let echo = backend(|req: Request<Incoming>| async move {
        match req.into_body().collect().await {
            Ok(b) => Response::new(full(b.to_bytes())),
            Err(_) => Response::new(full("cut")),
        }
    })
    .await;
    let limits = Limits {
        max_body: 1000,
        ..Limits::default()
    };
    let p = proxy_with(&[echo], "round-robin", passive(), limits).await;
    // No Content-Length to refuse up front: the limit counts as it arrives.
    let mut req =
        String::from("POST /api/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..4 {
        req.push_str("200\r\n");
        req.push_str(&"x".repeat(0x200));
        req.push_str("\r\n");
    }
    req.push_str("0\r\n\r\n");
    let r = exchange(p.addr, &req).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("larger than 1000 bytes"), "{r}");
    // The client's fault is not the backend's.
    assert_eq!(p.pool.status().backends[0].failed, 0);
}

#[tokio::test]
async fn checks_of_a_backend_that_never_answers_leave_no_connection_open() {
    // A backend that accepts and stays silent; it counts the connections
    // the checker still holds open.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let open = Arc::new(AtomicU32::new(0));
    let o = open.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = l.accept().await {
            let o = o.clone();
            o.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
                o.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    let checks = Checks {
        interval: Some(Duration::from_millis(20)),
        timeout: Duration::from_millis(30),
        ..Checks::default()
    };
    let p = proxy(&[addr], "round-robin", checks).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = p.pool.status();
    assert!(status.backends[0].failed >= 5, "{:?}", status.backends[0]);
    assert!(
        open.load(Ordering::Relaxed) <= 1,
        "{} check connections left open",
        open.load(Ordering::Relaxed)
    );
}

/// A proxy over `backend` whose wait for an answer is `wait`.
async fn proxy_waiting(
    backend: SocketAddr,
    wait: Duration,
) -> (SocketAddr, weblab_edge::ServerHandle) {
    let names = vec!["b1".to_string()];
    let rec = Recorder::new(Collector::new(Detail::Full), "lb", "127.0.0.1", "lb");
    let timeouts = weblab_edge::Timeouts {
        response: wait,
        ..weblab_edge::Timeouts::default()
    };
    let pool = Pool::with_timeouts(
        vec![Backend::new("b1", backend, 1)],
        balance::by_name("round-robin", &names, &[1]).unwrap(),
        LOCAL,
        passive(),
        timeouts,
        rec.clone(),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = serve_http(
        l,
        None,
        Limits::default(),
        Arc::new(LoadBalancer::new(pool, rec)),
    )
    .unwrap();
    (addr, server)
}

#[tokio::test]
async fn a_slow_upload_that_keeps_moving_is_not_a_504_but_a_silent_upstream_is() {
    // The backend answers with the size of the whole body once it has it;
    // for "/silent" it then says nothing.
    let b = backend(|req: Request<Incoming>| async move {
        let silent = req.uri().path() == "/silent";
        let n = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        if silent {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Response::new(full(format!("got {n}")))
    })
    .await;
    let (p, _server) = proxy_waiting(b, Duration::from_millis(300)).await;
    // Ten bytes, one every 100 ms: a second of upload against a 300 ms wait.
    let upload = |path: &'static str| async move {
        let mut s = TcpStream::connect(p).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            s.write_all(b"x").await.unwrap();
        }
        let sent = std::time::Instant::now();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        (String::from_utf8_lossy(&out).to_string(), sent.elapsed())
    };
    let (r, _) = upload("/echo").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("got 10"),
        "{r}"
    );
    // Once the body is all there, the wait starts: 504 about 300 ms later.
    let (r, after) = upload("/silent").await;
    assert!(r.starts_with("HTTP/1.1 504"), "{r}");
    assert!(after < Duration::from_secs(3), "{after:?}");
}

#[tokio::test]
async fn a_stopping_proxy_waits_for_an_open_websocket_tunnel_within_its_grace() {
    let ws_addr = ws_echo().await;
    let p = proxy(&[ws_addr], "round-robin", passive()).await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/chat", p.addr), tcp)
        .await
        .unwrap();
    ws.send("before".into()).await.unwrap();
    ws.next().await.unwrap().unwrap();
    // The tunnel is a connection of the proxy's server: a drain waits for it.
    let server = p._server;
    assert!(server.in_flight() >= 1, "{}", server.in_flight());
    let drain = tokio::spawn(server.drain(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !drain.is_finished(),
        "the drain did not wait for the tunnel"
    );
    // Meanwhile the tunnel still carries messages.
    ws.send("during".into()).await.unwrap();
    let back = ws.next().await.unwrap().unwrap();
    assert_eq!(back.into_text().unwrap().as_str(), "during");
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    drop(ws);
    let finished = tokio::time::timeout(Duration::from_secs(3), drain)
        .await
        .expect("the drain ends once the tunnel closes")
        .unwrap();
    assert!(finished, "everything finished within the grace");
}

#[tokio::test]
async fn a_stopping_server_closes_an_idle_connection_at_once_with_http09_on() {
    let rec = Recorder::new(Collector::new(Detail::Full), "web", "127.0.0.1", "web");
    let b = backend(|_req| async move { Response::new(full("hi")) }).await;
    let names = vec!["b1".to_string()];
    let pool = Pool::new(
        vec![Backend::new("b1", b, 1)],
        balance::by_name("round-robin", &names, &[1]).unwrap(),
        LOCAL,
        passive(),
        rec.clone(),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let limits = Limits {
        http09: true,
        ..Limits::default()
    };
    let server = serve_http(l, None, limits, Arc::new(LoadBalancer::new(pool, rec))).unwrap();
    // A client that connects and says nothing yet.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.in_flight(), 1);
    let started = std::time::Instant::now();
    assert!(server.drain(Duration::from_secs(5)).await);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let mut buf = [0u8; 1];
    assert_eq!(idle.read(&mut buf).await.unwrap_or(0), 0, "closed");
}

#[tokio::test]
async fn the_first_round_of_checks_is_told_when_every_backend_was_checked_once() {
    // A backend that answers its check only after 100 ms, and one that
    // refuses connections.
    let slow = backend(|_req| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Response::new(full("ok"))
    })
    .await;
    let dead = dead_port().await;
    let pool_of = |checks: Checks| {
        let list = vec![Backend::new("slow", slow, 1), Backend::new("dead", dead, 1)];
        let names = ["slow".to_string(), "dead".to_string()];
        let alg: Box<dyn Balancer> = balance::by_name("round-robin", &names, &[1, 1]).unwrap();
        let rec = Recorder::new(Collector::new(Detail::Full), "lb", "127.0.0.1", "lb");
        Pool::new(list, alg, LOCAL, checks, rec)
    };
    let pool = pool_of(Checks {
        interval: Some(Duration::from_secs(60)),
        timeout: Duration::from_secs(2),
        ..Checks::default()
    });
    let started = std::time::Instant::now();
    let first_round = pool.start_checks();
    tokio::time::timeout(Duration::from_secs(5), first_round)
        .await
        .expect("the first round ends")
        .expect("the checker tells");
    assert!(started.elapsed() >= Duration::from_millis(100));
    let checked: Vec<u64> = pool
        .status()
        .backends
        .iter()
        .map(|b| b.served + b.failed)
        .collect();
    assert_eq!(checked, [1, 1], "each backend checked once, no more");
    // With active checks off there is no round to wait for.
    let passive_pool = pool_of(passive());
    tokio::time::timeout(Duration::from_millis(50), passive_pool.start_checks())
        .await
        .expect("told at once")
        .expect("the sender was used");
}

/// C26 through the proxy: over HTTP/2, of two large responses asked for
/// at once, the more urgent one (RFC 9218) is sent first, and the trace
/// says how long the other's body was held back; the urgent one, never
/// held, gets no such span.
#[tokio::test]
async fn an_urgent_response_overtakes_through_the_proxy_and_the_wait_is_traced() {
    const SIZE: usize = 2 << 20;
    let b = backend(|_| async { Response::new(full(vec![b'x'; SIZE])) }).await;
    let p = proxy(&[b], "round-robin", passive()).await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(64 * 1024)
            .initial_connection_window_size(128 * 1024)
            .handshake(TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let done = std::sync::Mutex::new(Vec::new());
    let fetch = |path: &'static str, prio: &'static str| {
        let mut s = sender.clone();
        let done = &done;
        async move {
            let req = Request::get(format!("http://proxy.test{path}"))
                .header("priority", prio)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = s.send_request(req).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body.len(), SIZE);
            done.lock().unwrap().push(path);
        }
    };
    tokio::join!(fetch("/a", "u=5"), fetch("/b", "u=0"));
    assert_eq!(*done.lock().unwrap(), ["/b", "/a"], "u=0 ends first");
    let mut notes = Vec::new();
    for _ in 0..100 {
        notes = p
            .collector
            .snapshot()
            .into_iter()
            .filter_map(|s| match s.event {
                Event::Note { text } if text.contains("HTTP/2 priority") => Some(text),
                _ => None,
            })
            .collect();
        if !notes.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("priority u=5 (asked by the client)") && notes[0].contains("waited"),
        "{notes:?}"
    );
}
