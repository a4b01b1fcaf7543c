//! `weblab experiment hol` (C25, C26): head-of-line blocking. The same
//! requests — one slow resource first, then small fast ones — go to one
//! real HTTP server four ways: pipelined on one HTTP/1.1 connection, one
//! after another on one connection, over six HTTP/1.1 connections as a
//! browser opens them, and as streams of one HTTP/2 connection. Each
//! response's completion time is measured on the client's side.
//!
//! The server is weblab's own (the one every world role runs on), with a
//! handler that answers `/slow` after a set delay and `/fast/N` at once,
//! on 127.0.0.1 with an ephemeral port.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

/// Answers `/slow` after `delay`, anything else at once, 1 KiB each.
struct Resources {
    delay: Duration,
}

impl weblab_server::Handler for Resources {
    type Body = Full<Bytes>;

    async fn call(
        self: Arc<Self>,
        req: http::Request<weblab_server::RequestBody>,
        _conn: weblab_server::ConnInfo,
    ) -> http::Response<Full<Bytes>> {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(self.delay).await;
        }
        octets(Bytes::from(vec![b'x'; 1024]))
    }
}

/// A 200 with `body` as application/octet-stream: what the experiments'
/// own servers answer.
pub(crate) fn octets(body: Bytes) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    r
}

/// The requests, in the order they are sent.
fn paths(fast: usize) -> Vec<String> {
    std::iter::once("/slow".to_string())
        .chain((1..=fast).map(|i| format!("/fast/{i}")))
        .collect()
}

/// When each response (by request index) was complete, from the start.
type Done = Vec<Duration>;

/// All requests written back to back on one connection, the answers
/// read in order: the browser's pipelined transport (hyper's client
/// never pipelines).
async fn pipelined(addr: std::net::SocketAddr, paths: &[String]) -> Result<Done> {
    let t0 = Instant::now();
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let pipe = weblab_browser::pipe::Pipe::start(Box::new(tcp));
    let mut answers = Vec::new();
    for p in paths {
        answers.push(pipe.send(get(p)?).await?.1);
    }
    let mut done = Vec::new();
    for (i, a) in answers.into_iter().enumerate() {
        let resp = a
            .await
            .with_context(|| format!("the server closed after {i} of {} answers", paths.len()))??;
        resp.into_body().collect().await?;
        done.push(t0.elapsed());
    }
    Ok(done)
}

type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn h1_connection(addr: std::net::SocketAddr) -> Result<H1> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

fn get(path: &str) -> Result<http::Request<Full<Bytes>>> {
    Ok(http::Request::get(path)
        .header(http::header::HOST, "hol.test")
        .body(Full::new(Bytes::new()))?)
}

/// One request, its whole body read.
async fn exchange(s: &mut H1, path: &str) -> Result<()> {
    s.ready().await?;
    let resp = s.send_request(get(path)?).await?;
    resp.into_body().collect().await?;
    Ok(())
}

/// One connection, each request after the previous answer.
async fn one_by_one(addr: std::net::SocketAddr, paths: &[String]) -> Result<Done> {
    let t0 = Instant::now();
    let mut s = h1_connection(addr).await?;
    let mut done = Vec::new();
    for p in paths {
        exchange(&mut s, p).await?;
        done.push(t0.elapsed());
    }
    Ok(done)
}

/// Up to six connections, as a browser opens them for one origin; a
/// request waits for a free connection.
async fn six_connections(addr: std::net::SocketAddr, paths: &[String]) -> Result<Done> {
    let t0 = Instant::now();
    let queue = Arc::new(tokio::sync::Mutex::new(
        paths
            .iter()
            .cloned()
            .enumerate()
            .collect::<std::collections::VecDeque<_>>(),
    ));
    let mut workers = Vec::new();
    for _ in 0..6.min(paths.len()) {
        let queue = queue.clone();
        workers.push(tokio::spawn(async move {
            let mut s = h1_connection(addr).await?;
            let mut mine = Vec::new();
            loop {
                let Some((i, p)) = queue.lock().await.pop_front() else {
                    return Ok::<_, anyhow::Error>(mine);
                };
                exchange(&mut s, &p).await?;
                mine.push((i, t0.elapsed()));
            }
        }));
    }
    let mut done = vec![Duration::ZERO; paths.len()];
    for w in workers {
        for (i, t) in w.await?? {
            done[i] = t;
        }
    }
    Ok(done)
}

/// One HTTP/2 connection (h2c, prior knowledge), every request its own
/// stream, all sent at once.
async fn multiplexed(addr: std::net::SocketAddr, paths: &[String]) -> Result<Done> {
    let t0 = Instant::now();
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let streams = paths.iter().map(|p| {
        let mut s = sender.clone();
        let req = http::Request::get(format!("http://hol.test{p}")).body(Full::new(Bytes::new()));
        async move {
            s.ready().await?;
            let resp = s.send_request(req?).await?;
            resp.into_body().collect().await?;
            Ok::<_, anyhow::Error>(t0.elapsed())
        }
    });
    futures::future::join_all(streams)
        .await
        .into_iter()
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the four ways and returns the report.
pub async fn hol(delay: Duration, fast: usize) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = weblab_server::serve_http(
        listener,
        None,
        weblab_server::Limits::default(),
        Arc::new(Resources { delay }),
    )?;
    let paths = paths(fast);
    let runs = [
        (
            "HTTP/1.1 pipelined, 1 connection",
            pipelined(addr, &paths).await?,
        ),
        (
            "HTTP/1.1 one by one, 1 connection",
            one_by_one(addr, &paths).await?,
        ),
        (
            "HTTP/1.1, 6 connections",
            six_connections(addr, &paths).await?,
        ),
        ("HTTP/2, 1 connection", multiplexed(addr, &paths).await?),
    ];
    server.stop_accepting();
    let mut out = format!(
        "head-of-line blocking (C25, C26): GET /slow (answered after {} ms), then {fast} small GET /fast/N, to one server on {addr}\n\n",
        delay.as_millis()
    );
    out.push_str(&format!(
        "{:<34} {:>10} {:>14} {:>14} {:>10}\n",
        "how", "slow done", "first fast", "last fast", "all done"
    ));
    for (how, done) in &runs {
        let fast_done = &done[1..];
        let first = fast_done.iter().min().copied().unwrap_or_default();
        let last = fast_done.iter().max().copied().unwrap_or_default();
        let all = done.iter().max().copied().unwrap_or_default();
        out.push_str(&format!(
            "{how:<34} {:>8.1}ms {:>12.1}ms {:>12.1}ms {:>8.1}ms\n",
            ms(done[0]),
            ms(first),
            ms(last),
            ms(all)
        ));
    }
    out.push('\n');
    // What the numbers say, from the numbers.
    let slow = delay.as_secs_f64() * 1e3;
    let behind = |done: &Done| done[1..].iter().filter(|d| ms(**d) >= slow).count();
    let (pipe, sequential, h2) = (&runs[0].1, &runs[1].1, &runs[3].1);
    out.push_str(&format!(
        "Pipelined, {} of the {fast} fast answers came only after /slow's: a server must answer pipelined requests in order, so the first response holds back every one behind it (head-of-line blocking).\n",
        behind(pipe)
    ));
    let after_slow = sequential.last().copied().unwrap_or_default() - sequential[0];
    out.push_str(&format!(
        "One by one, no request could even leave before the answer ahead of it: the {fast} fast ones took {:.2} ms more, a round trip each (on loopback a round trip is tiny; across the world it is not).\n",
        ms(after_slow)
    ));
    out.push_str(&format!(
        "Over HTTP/2, {} of them waited for it: each response is its own stream, interleaved on the one connection (a lost TCP segment would still stall them all: TCP's own head-of-line blocking, which HTTP/3 over QUIC removes).\n",
        behind(h2)
    ));
    Ok(out)
}
