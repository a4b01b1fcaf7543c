//! Watching a world: the OTLP receiver that `up` and `collect` run, one
//! line per finished trace, and the client side that `tour --attach`,
//! `trace list` and `trace show` use to read a running world's traces.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use weblab_otlp::{Receiver, TraceSummary, receive::summarize};
use weblab_server::ServerHandle;
use weblab_trace::{Span, TraceId, TraceStore};

use crate::config::World;

/// Largest OTLP export body the receiver takes.
const MAX_EXPORT: usize = 8 << 20;

/// Serves OTLP/HTTP and the trace API for `world` into `store`.
pub async fn start_receiver(world: &World, store: TraceStore) -> Result<ServerHandle> {
    let addr = world.collector;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot receive OTLP on {addr} (is a `weblab up` or `weblab collect` of this world running? try --block N)")
    })?;
    let receiver = Receiver {
        store,
        world: world.name.clone(),
        accept: Default::default(),
        max_body: MAX_EXPORT,
    };
    let mut limits = world.limits.http;
    limits.max_body = MAX_EXPORT as u64;
    Ok(weblab_server::serve_http(
        listener,
        None,
        limits,
        Arc::new(receiver),
    )?)
}

/// Prints a line for whoever reads our output; a reader that went away
/// (`weblab up | head`) costs the line, never the world.
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

/// Trace lines printed per second at most; under load the rest are
/// counted in one line per second instead (and stay in the store).
const LINES_PER_SECOND: u32 = 20;

/// Prints one line per finished trace: when a span without a parent (and
/// not answering another trace's DNS query) is stored, the trace's
/// summary is printed a moment later, when late spans from other
/// processes have arrived. Under load, at most 20 a second.
pub fn print_finished_traces(store: TraceStore) {
    tokio::spawn(async move {
        let mut printed: HashSet<TraceId> = HashSet::new();
        let mut second = tokio::time::Instant::now();
        let (mut shown, mut skipped) = (0u32, 0u64);
        let mut seen = 0u64;
        // Polled rather than woken for every span: under load a wake-up
        // per span was a tenth of the collector's CPU.
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let (total, roots, missed) = store.roots_after(seen);
            seen = total;
            skipped += missed;
            for trace in roots {
                // A span without a parent ends a trace's root; whether the
                // trace stands alone (a DNS server's side of another
                // trace's query does not) is decided once late spans are in.
                if !printed.insert(trace) {
                    continue;
                }
                if printed.len() > 100_000 {
                    printed.clear();
                }
                if shown >= LINES_PER_SECOND {
                    skipped += 1;
                    continue;
                }
                shown += 1;
                let store = store.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    if !store.stands_alone(trace) {
                        return;
                    }
                    if let Some(s) = summarize(trace, &store.assemble(trace)) {
                        say(&s.line());
                    }
                });
            }
            if second.elapsed() >= Duration::from_secs(1) {
                if skipped > 0 {
                    say(&format!(
                        "... and {skipped} more traces (see `weblab trace list`)"
                    ));
                }
                second = tokio::time::Instant::now();
                (shown, skipped) = (0, 0);
            }
        }
    });
}

/// `GET path` on the world's collector: the status and the body.
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>)> {
    let tcp = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("{addr} did not answer"))??;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| anyhow!("{addr} took over 10 s to answer"))??;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}

/// Checks that a world of this name is collecting at `world.collector`.
pub async fn find_running(world: &World) -> Result<()> {
    let addr = world.collector;
    let no_world = || {
        anyhow!(
            "no running world {:?} at http://{addr} (start one with `weblab up`, or `weblab collect` with roles exporting to it; use the same --config and --block)",
            world.name
        )
    };
    let (status, body) = get(addr, "/v1/weblab/health")
        .await
        .map_err(|_| no_world())?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|_| no_world())?;
    if status != 200 {
        return Err(no_world());
    }
    if v["world"] != world.name.as_str() {
        bail!(
            "the collector at http://{addr} belongs to world {}, not {:?}",
            v["world"],
            world.name
        );
    }
    Ok(())
}

/// The newest traces of the running world.
pub async fn list(world: &World, limit: usize) -> Result<Vec<TraceSummary>> {
    find_running(world).await?;
    let (_, body) = get(world.collector, &format!("/v1/weblab/traces?limit={limit}")).await?;
    Ok(serde_json::from_slice(&body)?)
}

/// One assembled trace of the running world (`None` when it has none by
/// that id).
pub async fn fetch(world: &World, trace: TraceId) -> Result<Option<Vec<Span>>> {
    let (status, body) = get(world.collector, &format!("/v1/weblab/traces/{trace}")).await?;
    if status == 404 {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct Doc {
        spans: Vec<Span>,
    }
    let doc: Doc = serde_json::from_slice(&body).context("the collector's answer")?;
    Ok(Some(doc.spans))
}

/// Fetches a trace until its spans stop arriving (other processes export
/// in batches), at most `within`.
pub async fn fetch_settled(world: &World, trace: TraceId, within: Duration) -> Result<Vec<Span>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = 0;
    let mut spans = Vec::new();
    loop {
        if let Some(s) = fetch(world, trace).await? {
            spans = s;
        }
        if (spans.len() == last && last > 0) || tokio::time::Instant::now() >= deadline {
            return Ok(spans);
        }
        last = spans.len();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
