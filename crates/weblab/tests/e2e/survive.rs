//! The world survives its clients (issue 6): hang-ups, slow and oversized
//! requests, floods, bad Host headers, forged forwarding headers, signals,
//! and a role that dies. Real sockets and real processes, all on loopback,
//! every loop bounded in count and time. (A chunked body over the limit
//! is checked in crates/edge/tests/proxy.rs, against a backend that reads
//! its body: this world's app answers some paths without reading it.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{exchange, start_with, tls_connect};

const SEC: Duration = Duration::from_secs(1);

/// The status code of a raw HTTP/1.x response.
fn status(raw: &str) -> &str {
    raw.split(' ').nth(1).unwrap_or("")
}

fn addr(w: &weblab::world::RunningWorld, host: &str, port: u16) -> SocketAddr {
    SocketAddr::new(w.addr(host), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_slow_bodies_get_408_after_the_body_timeout_while_normal_requests_succeed() {
    let w = start_with(130, |w| w.limits.http.body_timeout = SEC).await;
    let web1 = addr(&w, "web1", w.ports.http);
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(web1).await.unwrap();
        s.write_all(b"POST /api/users HTTP/1.1\r\nHost: myapp.test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\": ")
            .await
            .unwrap();
        slow.push(s);
    }
    // While they trickle, ordinary requests are served.
    for _ in 0..20 {
        let s = TcpStream::connect(web1).await.unwrap();
        let r = exchange(
            s,
            b"GET /static/app.css HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n\r\n",
            5 * SEC,
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    // Every slow connection is answered and closed. The body streams to
    // the app, which waits for all of it (a JSON object it must parse);
    // the web server's body timeout ends the wait with 408.
    let mut answered = 0;
    for mut s in slow {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(5 * SEC, s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a slow connection was left open");
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        answered += 1;
    }
    assert_eq!(answered, 200);
    assert!(started.elapsed() < 5 * SEC);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gigabyte_content_length_gets_413_at_once_on_web_app_and_lb() {
    let w = start_with(131, |_| {}).await;
    let head =
        b"POST /api/users HTTP/1.1\r\nHost: myapp.test\r\nContent-Length: 1000000000\r\n\r\n";
    for host in ["web1", "app1"] {
        let t = Instant::now();
        let s = TcpStream::connect(addr(&w, host, w.ports.http))
            .await
            .unwrap();
        let r = exchange(s, head, 5 * SEC).await;
        assert!(r.starts_with("HTTP/1.1 413"), "{host}: {r}");
        assert!(r.contains("1000000000 bytes is over the limit"), "{r}");
        assert!(t.elapsed() < 2 * SEC, "{host} waited for the body");
    }
    let ca = std::fs::read(w.ca_path()).unwrap();
    let tls = tls_connect(addr(&w, "lb", w.ports.https), &ca, b"http/1.1")
        .await
        .unwrap();
    let r = exchange(tls, head, 5 * SEC).await;
    assert!(r.starts_with("HTTP/1.1 413"), "lb: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_duplicate_or_invalid_host_gets_400_on_the_lb_web_and_app_servers() {
    let w = start_with(132, |_| {}).await;
    let cases: [(&[u8], &str); 4] = [
        (b"GET /login HTTP/1.1\r\n\r\n", "400"),
        (
            b"GET /login HTTP/1.1\r\nHost: myapp.test\r\nHost: evil.test\r\n\r\n",
            "400",
        ),
        (
            b"GET /login HTTP/1.1\r\nHost: user@evil.test\r\n\r\n",
            "400",
        ),
        (b"GET /login HTTP/1.0\r\n\r\n", "200"),
    ];
    let ca = std::fs::read(w.ca_path()).unwrap();
    for (request, want) in cases {
        let shown = String::from_utf8_lossy(request).replace("\r\n", " | ");
        for host in ["web1", "app1"] {
            let s = TcpStream::connect(addr(&w, host, w.ports.http))
                .await
                .unwrap();
            let r = exchange(s, request, 5 * SEC).await;
            assert_eq!(status(&r), want, "{host} {shown}: {r}");
        }
        let tls = tls_connect(addr(&w, "lb", w.ports.https), &ca, b"http/1.1")
            .await
            .unwrap();
        let r = exchange(tls, request, 5 * SEC).await;
        assert_eq!(status(&r), want, "lb {shown}: {r}");
    }
    // The plain-HTTP side redirects to a configured name, whatever Host said.
    let s = TcpStream::connect(addr(&w, "lb", w.ports.http))
        .await
        .unwrap();
    let r = exchange(
        s,
        b"GET /login HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        5 * SEC,
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 301"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("location: https://myapp.test"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let w = start_with(133, |w| w.limits.http.idle_timeout = SEC).await;
    let mut s = TcpStream::connect(addr(&w, "web1", w.ports.http))
        .await
        .unwrap();
    s.write_all(b"GET /static/app.css HTTP/1.1\r\nHost: myapp.test\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    // The response comes at once; then the server closes the idle
    // connection well before hyper's 10 s head timeout would.
    let read = tokio::time::timeout(5 * SEC, s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the idle connection stayed open");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    let took = t.elapsed();
    assert!(took >= SEC && took < 4 * SEC, "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_with_503_and_served_again_after() {
    let w = start_with(134, |w| {
        w.limits.http.max_connections = 5;
        // The LB's health checks would take a slot now and then.
        w.lb.health.interval = None;
    })
    .await;
    let web1 = addr(&w, "web1", w.ports.http);
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(web1).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let extra = TcpStream::connect(web1).await.unwrap();
    let r = exchange(
        extra,
        b"GET /static/app.css HTTP/1.1\r\nHost: a\r\n\r\n",
        5 * SEC,
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = TcpStream::connect(web1).await.unwrap();
    let r = exchange(
        again,
        b"GET /static/app.css HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        5 * SEC,
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_x_real_ip_sent_straight_to_an_app_is_not_what_its_log_records() {
    let w = start_with(135, |_| {}).await;
    let s = TcpStream::connect(addr(&w, "app1", w.ports.http))
        .await
        .unwrap();
    let r = exchange(
        s,
        b"GET /api/users/1 HTTP/1.1\r\nHost: myapp.test\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n",
        5 * SEC,
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let (_, app1) = w.apps.iter().find(|(h, _)| h == "app1").unwrap();
    let log = app1.access_log();
    // (The load balancer's health checks are in the log too.)
    let line = log
        .iter()
        .rev()
        .find(|l| l.contains("/api/users/1"))
        .unwrap();
    assert!(line.starts_with("127.0.0.1 GET /api/users/1"), "{line}");
    assert!(!line.contains("6.6.6.6"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_dns_tcp_message_is_cut_off_and_a_full_resolver_answers_refused() {
    let w = start_with(136, |w| {
        w.limits.dns.tcp_message = SEC;
        w.limits.dns.max_udp_in_flight = 1;
    })
    .await;
    // Two length bytes announce 100, ten arrive, then nothing.
    let mut s = TcpStream::connect(addr(&w, "auth", w.ports.dns))
        .await
        .unwrap();
    s.write_all(&[0, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        .await
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(5 * SEC, s.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the partial message kept the connection");
    assert!(t.elapsed() >= Duration::from_millis(900));

    // A burst of queries for names the resolver has not seen, with room
    // for one at a time: the excess is answered REFUSED, not queued.
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let resolver = addr(&w, "resolver", w.ports.dns);
    for i in 0..100 {
        let name = Name::from_ascii(format!("n{i}.myapp.test.")).unwrap();
        let q = weblab_dns::net::build_query(&name, RecordType::A, true);
        sock.send_to(&q.to_vec().unwrap(), resolver).await.unwrap();
    }
    let (mut refused, mut answered) = (0, 0);
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok((n, _))) = tokio::time::timeout(3 * SEC, sock.recv_from(&mut buf)).await {
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(m.queries.len(), 1, "the question is echoed");
        match m.metadata.response_code {
            ResponseCode::Refused => refused += 1,
            _ => answered += 1,
        }
        if refused + answered == 100 {
            break;
        }
    }
    assert_eq!(refused + answered, 100, "every query got an answer");
    assert!(
        refused > 0 && answered > 0,
        "refused {refused}, answered {answered}"
    );
    // And the resolver still resolves.
    let q = weblab_dns::net::build_query(
        &Name::from_ascii("myapp.test.").unwrap(),
        RecordType::A,
        true,
    );
    let ex = weblab_dns::net::exchange_udp("127.0.0.1".parse().unwrap(), resolver, &q, 2 * SEC)
        .await
        .unwrap();
    assert_eq!(ex.response.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_identity_representations_carry_their_own_etag() {
    let w = start_with(137, |_| {}).await;
    let web1 = addr(&w, "web1", w.ports.http);
    let get = |extra: String| async move {
        let s = TcpStream::connect(web1).await.unwrap();
        let req = format!(
            "GET /static/app.css HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n{extra}\r\n"
        );
        exchange(s, req.as_bytes(), 5 * SEC).await
    };
    let etag = |r: &str| {
        r.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("etag: ")
                    .map(str::to_string)
            })
            .unwrap()
    };
    let gz = get("Accept-Encoding: gzip\r\n".into()).await;
    let plain = get(String::new()).await;
    assert!(
        gz.to_ascii_lowercase().contains("content-encoding: gzip"),
        "{gz}"
    );
    assert_ne!(
        etag(&gz),
        etag(&plain),
        "RFC 9110 §8.8.3: one strong ETag per representation"
    );
    // Revalidating the gzip copy gives 304; the identity tag does not match it.
    let again = get(format!(
        "Accept-Encoding: gzip\r\nIf-None-Match: {}\r\n",
        etag(&gz)
    ))
    .await;
    assert!(again.starts_with("HTTP/1.1 304"), "{again}");
    let other = get(format!(
        "Accept-Encoding: gzip\r\nIf-None-Match: {}\r\n",
        etag(&plain)
    ))
    .await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
}
