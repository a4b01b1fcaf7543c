//! `weblab experiment realtime` (C41): the same feed of new posts followed
//! three ways at once, against a real app server on loopback, for a fixed
//! time: polling every interval, long polling, and server-sent events.
//! Each client counts its requests, the bytes it sent and received on its
//! sockets (headers included), and for every post the delay from the
//! writer's 201 to the moment the client read it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use weblab_browser::conn::{IoTimes, Timed};

/// Bytes through one client's sockets, counted by the browser's own
/// stream wrapper.
type Wire = IoTimes;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A kept-alive HTTP/1.1 connection whose bytes are counted in `wire`.
async fn connect(addr: std::net::SocketAddr, wire: Arc<Wire>) -> Result<Sender> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(Timed::new(tcp, wire))).await?;
    tokio::spawn(conn);
    Ok(sender)
}

fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<http::Request<Full<Bytes>>> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "myapp.test");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Ok(b.body(Full::new(Bytes::from(body.to_string())))?)
}

/// When the writer sent each post, by the id its 201 gave it.
type Written = Arc<Mutex<HashMap<i64, Instant>>>;

/// What one client saw.
#[derive(Default)]
struct Seen {
    requests: u64,
    /// Each post it read, and when.
    arrivals: Vec<(i64, Instant)>,
}

fn arrived(seen: &mut Seen, ids: impl Iterator<Item = i64>) {
    let now = Instant::now();
    seen.arrivals.extend(ids.map(|id| (id, now)));
}

fn ids_of(json: &[u8]) -> Vec<i64> {
    serde_json::from_slice::<Vec<serde_json::Value>>(json)
        .map(|v| v.iter().filter_map(|p| p["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// Polling (`wait` 0, every `every`) or long polling (`wait` > 0).
async fn poll(
    addr: std::net::SocketAddr,
    wire: Arc<Wire>,
    wait: u64,
    every: Duration,
    until: Instant,
) -> Result<Seen> {
    let mut s = connect(addr, wire).await?;
    let mut seen = Seen::default();
    let mut after = 0i64;
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        let wait_now = wait.min(left.as_secs().max(1));
        let path = format!("/api/posts/updates?after={after}&wait={wait_now}");
        s.ready().await?;
        let resp = s.send_request(request("GET", &path, &[], "")?).await?;
        seen.requests += 1;
        let body = resp.into_body().collect().await?.to_bytes();
        let ids = ids_of(&body);
        after = ids.iter().copied().max().unwrap_or(after);
        arrived(&mut seen, ids.into_iter());
        if wait == 0 {
            tokio::time::sleep(every.min(until.saturating_duration_since(Instant::now()))).await;
        }
    }
    Ok(seen)
}

/// One server-sent-events stream until `until`.
async fn stream(addr: std::net::SocketAddr, wire: Arc<Wire>, until: Instant) -> Result<Seen> {
    let mut s = connect(addr, wire).await?;
    let mut seen = Seen {
        requests: 1,
        ..Seen::default()
    };
    let resp = s
        .send_request(request(
            "GET",
            "/api/posts/stream?after=0",
            &[("accept", "text/event-stream")],
            "",
        )?)
        .await?;
    let mut body = resp.into_body();
    let mut text = String::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(frame) = tokio::time::timeout(left, body.frame()).await else {
            break;
        };
        let Some(frame) = frame else { break };
        if let Ok(data) = frame?.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
            // Whole events end with a blank line.
            while let Some((event, rest)) = text.split_once("\n\n") {
                let ids = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("id: "))
                    .filter_map(|v| v.trim().parse().ok());
                arrived(&mut seen, ids);
                text = rest.to_string();
            }
        }
    }
    Ok(seen)
}

/// Posts every `every` until `until`; each 201's time is kept by id.
async fn writer(
    addr: std::net::SocketAddr,
    written: Written,
    every: Duration,
    until: Instant,
) -> Result<u64> {
    let wire = Arc::new(Wire::default());
    let mut s = connect(addr, wire).await?;
    let grant = format!(
        r#"{{"grant_type":"password","email":"ada@myapp.test","password":"{}"}}"#,
        weblab_app::DEMO_PASSWORD
    );
    let resp = s
        .send_request(request(
            "POST",
            "/api/tokens",
            &[("content-type", "application/json")],
            &grant,
        )?)
        .await?;
    let tokens: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
    let auth = format!(
        "Bearer {}",
        tokens["access_token"].as_str().context("no access token")?
    );
    let mut n = 0;
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    while Instant::now() + every <= until {
        tick.tick().await;
        let body = format!(r#"{{"title":"post {n}","body":"experiment"}}"#);
        s.ready().await?;
        let sent = Instant::now();
        let resp = s
            .send_request(request(
                "POST",
                "/api/posts",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &auth),
                ],
                &body,
            )?)
            .await?;
        if resp.status() != 201 {
            bail!("POST /api/posts answered {}", resp.status());
        }
        let v: serde_json::Value =
            serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
        if let Some(id) = v["id"].as_i64() {
            written
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, sent);
        }
        n += 1;
    }
    Ok(n)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// Runs the experiment and prints its table.
pub async fn realtime(seconds: u64, every: Duration, poll_every: Duration) -> Result<()> {
    let db = weblab_app::Db::connect("sqlite::memory:").await?;
    db.migrate().await?;
    let collector =
        weblab_trace::Collector::with_sinks(weblab_trace::Detail::Minimal, None, Vec::new());
    let rec = weblab_trace::Recorder::new(collector, "app1", "127.0.0.1", "app");
    let state = Arc::new(weblab_app::AppState::new(db, rec, "app1").await?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let _app = weblab_app::start(vec![listener], state, &[], weblab_server::Limits::default())?;

    println!(
        "realtime experiment: one writer posts every {} ms for {seconds} s; three clients follow the feed (app server on {addr})\n",
        every.as_millis()
    );
    let until = Instant::now() + Duration::from_secs(seconds);
    let written: Written = Arc::default();
    let wires: Vec<Arc<Wire>> = (0..3).map(|_| Arc::default()).collect();
    let (w, p, l, s) = tokio::join!(
        writer(addr, written.clone(), every, until),
        poll(addr, wires[0].clone(), 0, poll_every, until),
        poll(addr, wires[1].clone(), 25, poll_every, until),
        stream(addr, wires[2].clone(), until),
    );
    let posts = w?;
    let rows = [
        (
            format!("polling every {} ms", poll_every.as_millis()),
            p?,
            &wires[0],
        ),
        ("long polling".to_string(), l?, &wires[1]),
        ("server-sent events".to_string(), s?, &wires[2]),
    ];
    println!(
        "{:<22} {:>8} {:>10} {:>10} {:>6} {:>9} {:>9} {:>9}",
        "method", "requests", "bytes out", "bytes in", "got", "mean ms", "p50 ms", "max ms"
    );
    let written = written.lock().unwrap_or_else(|p| p.into_inner());
    for (name, seen, wire) in rows {
        // Reading follows sending, so each delay is a real interval.
        let mut delays: Vec<Duration> = seen
            .arrivals
            .iter()
            .filter_map(|(id, at)| written.get(id).map(|sent| at.duration_since(*sent)))
            .collect();
        delays.sort();
        let n = seen.arrivals.len();
        let mean = if n == 0 {
            Duration::ZERO
        } else {
            delays.iter().sum::<Duration>() / delays.len().max(1) as u32
        };
        let p50 = delays.get(delays.len() / 2).copied().unwrap_or_default();
        let max = delays.last().copied().unwrap_or_default();
        println!(
            "{:<22} {:>8} {:>10} {:>10} {:>6} {:>9} {:>9} {:>9}",
            name,
            seen.requests,
            wire.bytes_written.load(Ordering::Relaxed),
            wire.bytes_read.load(Ordering::Relaxed),
            n,
            ms(mean),
            ms(p50),
            ms(max)
        );
    }
    println!(
        "\n{posts} posts written; got: how many each client received. Delay: from the writer sending the post to the client reading it. Bytes: on each client's sockets, HTTP heads included."
    );
    Ok(())
}
