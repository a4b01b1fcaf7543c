//! `weblab experiment priorities` (C26): HTTP/2 response priorities
//! (RFC 9218). Two large responses are asked for at once on one HTTP/2
//! connection, `/a` first, then `/b`, four ways: with no `priority`
//! header, with `/b` more urgent than `/a`, with both of one urgency, and
//! with both incremental. The client times each response and counts how
//! much of the other had arrived when it ended.
//!
//! The server is weblab's own, which every world role runs on, on
//! 127.0.0.1 with an ephemeral port. On loopback the kernel's socket
//! buffers take a megabyte or more as fast as it comes, before any order
//! applies; the client opens with small HTTP/2 flow-control windows so
//! that what is in flight stays small, as a slow link would keep it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

/// Answers every request with `size` bytes at once.
struct Large {
    body: Bytes,
}

impl weblab_server::Handler for Large {
    type Body = Full<Bytes>;

    async fn call(
        self: Arc<Self>,
        _req: http::Request<weblab_server::RequestBody>,
        _conn: weblab_server::ConnInfo,
    ) -> http::Response<Full<Bytes>> {
        crate::hol::octets(self.body.clone())
    }
}

/// One response as the client saw it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// From sending both requests to this response's last byte.
    pub done: Duration,
    /// Bytes of the other response received by then.
    pub other_bytes: u64,
}

/// One way of asking: the two `priority` headers and what came of them.
#[derive(Clone, Debug)]
pub struct Run {
    pub how: &'static str,
    pub a: Option<&'static str>,
    pub b: Option<&'static str>,
    pub seen_a: Seen,
    pub seen_b: Seen,
}

/// Asks for `/a` then `/b` at once on a new connection to `addr`.
async fn race(
    addr: std::net::SocketAddr,
    window: u32,
    a: Option<&str>,
    b: Option<&str>,
) -> Result<(Seen, Seen)> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(window)
        .initial_connection_window_size(window * 2)
        .handshake(TokioIo::new(tcp))
        .await?;
    tokio::spawn(conn);
    let counts = [AtomicU64::new(0), AtomicU64::new(0)];
    let t0 = Instant::now();
    let fetch = |i: usize, path: &str, prio: Option<&str>| {
        let mut r = http::Request::get(format!("http://priorities.test{path}"));
        if let Some(p) = prio {
            r = r.header("priority", p);
        }
        let req = r.body(Full::new(Bytes::new()));
        let mut s = sender.clone();
        let counts = &counts;
        async move {
            s.ready().await?;
            let mut body = s.send_request(req?).await?.into_body();
            while let Some(frame) = body.frame().await {
                let n = frame?.data_ref().map_or(0, |d| d.len() as u64);
                counts[i].fetch_add(n, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(Seen {
                done: t0.elapsed(),
                other_bytes: counts[1 - i].load(Ordering::Relaxed),
            })
        }
    };
    let (sa, sb) = tokio::join!(fetch(0, "/a", a), fetch(1, "/b", b));
    Ok((sa.context("/a")?, sb.context("/b")?))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(n: u64) -> String {
    crate::units::show_bytes(n)
}

/// Runs the four ways against weblab's server and returns them.
pub async fn runs(size: usize, window: u32) -> Result<Vec<Run>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let body = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let server = weblab_server::serve_http(
        listener,
        None,
        weblab_server::Limits::default(),
        Arc::new(Large { body }),
    )?;
    let ways: [(&str, Option<&str>, Option<&str>); 4] = [
        ("no priority header", None, None),
        ("/a u=5, /b u=0", Some("u=5"), Some("u=0")),
        ("both u=3", Some("u=3"), Some("u=3")),
        ("both u=3, i", Some("u=3, i"), Some("u=3, i")),
    ];
    let mut out = Vec::new();
    for (how, a, b) in ways {
        let (seen_a, seen_b) = race(addr, window, a, b).await?;
        out.push(Run {
            how,
            a,
            b,
            seen_a,
            seen_b,
        });
    }
    server.stop_accepting();
    Ok(out)
}

/// The report of [`runs`].
pub fn report(runs: &[Run], size: usize, window: u32) -> String {
    let mut out = format!(
        "HTTP/2 priorities (C26, RFC 9218): GET /a then GET /b at once on one connection, {} each, \
         client windows {} per stream and {} per connection, weblab's own server on loopback\n\n",
        mib(size as u64),
        mib(window as u64),
        mib(window as u64 * 2)
    );
    out.push_str(&format!(
        "{:<20} {:>10} {:>10} {:>16} {:>16}\n",
        "priority headers", "/a done", "/b done", "/a when /b done", "/b when /a done"
    ));
    for r in runs {
        out.push_str(&format!(
            "{:<20} {:>8.1}ms {:>8.1}ms {:>16} {:>16}\n",
            r.how,
            ms(r.seen_a.done),
            ms(r.seen_b.done),
            mib(r.seen_b.other_bytes),
            mib(r.seen_a.other_bytes)
        ));
    }
    out.push('\n');
    // What the numbers say, from the numbers.
    for r in runs {
        let (first, other, had) = if r.seen_a.done <= r.seen_b.done {
            ("/a", "/b", r.seen_a.other_bytes)
        } else {
            ("/b", "/a", r.seen_b.other_bytes)
        };
        let what = if had > size as u64 / 2 {
            format!(
                "they took turns: when {first} ended, {other} had {} of its {}",
                mib(had),
                mib(size as u64)
            )
        } else {
            format!(
                "{first} went first: when it ended, {other} had {}",
                mib(had)
            )
        };
        let rule = match (r.a, r.b) {
            (None, _) => "With no header the server keeps h2's own order",
            (Some("u=5"), _) => {
                "With /b more urgent (u=0 goes before u=5), /a sends only while /b has nothing ready"
            }
            (Some("u=3"), _) => {
                "Of one urgency and not incremental, responses go one after another in the order asked"
            }
            _ => {
                "Incremental responses (i) are useful in pieces, so those of one urgency hold each other back not at all"
            }
        };
        out.push_str(&format!("{rule}. Here {what}.\n"));
    }
    out.push_str(
        "(What the server had already handed to h2 and the socket goes first whatever comes later; \
         the client's windows bound how much that can be.)\n",
    );
    out
}
