//! The feed by polling, long polling and server-sent events, and the
//! WebSocket chat, against a real app server on a loopback socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use weblab_app::{AppState, DEMO_PASSWORD, Db};
use weblab_trace::{Collector, Detail, Recorder};

async fn server() -> (SocketAddr, weblab_app::AppServer) {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    db.migrate().await.unwrap();
    let rec = Recorder::new(Collector::new(Detail::Full), "app1", "127.0.0.1", "app");
    let state = Arc::new(AppState::new(db, rec, "app1").await.unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        weblab_app::start(vec![listener], state, &[], weblab_server::Limits::default()).unwrap();
    (addr, app)
}

/// One request on a new connection; the whole answer as text.
async fn http(addr: SocketAddr, method: &str, path: &str, extra: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

async fn bearer(addr: SocketAddr) -> String {
    let body = format!(
        r#"{{"grant_type":"password","email":"ada@myapp.test","password":"{DEMO_PASSWORD}"}}"#
    );
    let out = http(
        addr,
        "POST",
        "/api/tokens",
        "Content-Type: application/json\r\n",
        &body,
    )
    .await;
    let json = out.split_once("\r\n\r\n").unwrap().1;
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    format!(
        "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
        v["access_token"].as_str().unwrap()
    )
}

async fn post(addr: SocketAddr, auth: &str, title: &str) {
    let out = http(
        addr,
        "POST",
        "/api/posts",
        auth,
        &format!(r#"{{"title":"{title}","body":"b"}}"#),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
}

#[tokio::test]
async fn polling_answers_at_once_and_a_long_poll_waits_for_the_next_post() {
    let (addr, _app) = server().await;
    let auth = bearer(addr).await;
    let nothing = http(addr, "GET", "/api/posts/updates?after=0", "", "").await;
    assert!(nothing.starts_with("HTTP/1.1 204"), "{nothing}");

    let t = Instant::now();
    let timed_out = http(addr, "GET", "/api/posts/updates?after=0&wait=1", "", "").await;
    assert!(timed_out.starts_with("HTTP/1.1 204"), "{timed_out}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );

    let waiting = tokio::spawn(async move {
        let t = Instant::now();
        (
            http(addr, "GET", "/api/posts/updates?after=0&wait=10", "", "").await,
            t.elapsed(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    post(addr, &auth, "fresh").await;
    let (got, took) = waiting.await.unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("\"title\":\"fresh\""), "{got}");
    // Woken by the post, not by the 10 s limit.
    assert!(took < Duration::from_secs(3), "{took:?}");

    let bad = http(addr, "GET", "/api/posts/updates?after=x", "", "").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
}

#[tokio::test]
async fn server_sent_events_deliver_each_post_with_its_id() {
    let (addr, _app) = server().await;
    let auth = bearer(addr).await;
    post(addr, &auth, "before").await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /api/posts/stream HTTP/1.1\r\nHost: myapp.test\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // The head first; the post made before listening is not replayed.
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    post(addr, &auth, "after one").await;
    post(addr, &auth, "after two").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains("after two") && Instant::now() < deadline {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(!seen.contains("\"before\""), "{seen}");
    assert!(seen.contains("event: post"), "{seen}");
    assert!(seen.contains("id: 2"), "{seen}");
    assert!(seen.contains("id: 3"), "{seen}");

    // Reconnecting with Last-Event-ID 2 gets 3 again, and only 3.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /api/posts/stream HTTP/1.1\r\nHost: myapp.test\r\nLast-Event-ID: 2\r\n\r\n")
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("after two") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(!seen.contains("after one"), "{seen}");
}

#[tokio::test]
async fn chat_members_hear_each_other_and_the_server_enforces_its_limits() {
    let (addr, _app) = server().await;
    let url = format!("ws://{addr}/ws/chat/lobby");
    let (mut a, resp) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().contains_key("sec-websocket-accept"));
    let (mut b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    a.send(Message::text("hello from a")).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match b.next().await {
                Some(Ok(Message::Text(t))) if t.contains("hello from a") => return t.to_string(),
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert!(heard.starts_with("guest-"), "{heard}");

    // Too big: closed with 1009.
    b.send(Message::text("x".repeat(5000))).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match b.next().await {
                Some(Ok(Message::Close(Some(f)))) => return f.code,
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, CloseCode::Size);

    // A normal close is answered with a close frame (the handshake).
    a.close(None).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match a.next().await {
                Some(Ok(Message::Close(_))) | None => return true,
                Some(Ok(_)) => continue,
                Some(Err(_)) => return false,
            }
        }
    })
    .await
    .unwrap();
    assert!(answer);

    // A real upgrade request, so the room rule (not a missing upgrade)
    // is what refuses it.
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/chat/Bad_Name")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 400);
            let body =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("room name"), "{body}");
        }
        other => panic!("{other:?}"),
    }
}

async fn stomp_client(
    addr: SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/ws/stomp")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "v12.stomp".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "v12.stomp");
    ws
}

/// The next text message, as a STOMP frame.
async fn next_frame(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> weblab_app::stomp::Frame {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return weblab_app::stomp::parse(t.as_str()).unwrap().unwrap();
                }
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn stomp_over_websocket_subscribes_sends_and_disconnects_with_receipts() {
    let (addr, _app) = server().await;
    let mut a = stomp_client(addr).await;
    let mut b = stomp_client(addr).await;
    for ws in [&mut a, &mut b] {
        ws.send(Message::text(
            "CONNECT\naccept-version:1.2\nhost:myapp.test\n\n\0",
        ))
        .await
        .unwrap();
        let c = next_frame(ws).await;
        assert_eq!(c.command, "CONNECTED");
        assert_eq!(c.get("version"), Some("1.2"));
    }
    a.send(Message::text(
        "SUBSCRIBE\nid:0\ndestination:/topic/news\nreceipt:r1\n\n\0",
    ))
    .await
    .unwrap();
    let r = next_frame(&mut a).await;
    assert_eq!(
        (r.command.as_str(), r.get("receipt-id")),
        ("RECEIPT", Some("r1"))
    );
    b.send(Message::text(
        "SEND\ndestination:/topic/news\ncontent-type:text/plain\n\nhello\0",
    ))
    .await
    .unwrap();
    let m = next_frame(&mut a).await;
    assert_eq!(m.command, "MESSAGE");
    assert_eq!(m.get("subscription"), Some("0"));
    assert_eq!(m.get("destination"), Some("/topic/news"));
    assert_eq!(m.body, "hello");

    a.send(Message::text("DISCONNECT\nreceipt:bye\n\n\0"))
        .await
        .unwrap();
    let r = next_frame(&mut a).await;
    assert_eq!(r.get("receipt-id"), Some("bye"));

    // A bad frame: ERROR, then the server ends the connection.
    b.send(Message::text("SUBSCRIBE\nid:1\ndestination:/queue/x\n\n\0"))
        .await
        .unwrap();
    let e = next_frame(&mut b).await;
    assert_eq!(e.command, "ERROR");
    assert!(e.get("message").unwrap().contains("/topic/NAME"), "{e:?}");

    // Without the subprotocol: refused before the upgrade.
    let plain = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/stomp")).await;
    match plain {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("{other:?}"),
    }
}
