//! The HTTP accept loop every weblab HTTP server runs on: optional TLS,
//! HTTP/1.1 and HTTP/2 on one port (ALPN or the h2 preface), and the
//! bounds that keep one client from hurting the others.
//!
//! Per listener: at most `max_connections` connections; more are refused
//! at once (plain HTTP gets a 503, TLS a close). Per connection: the TLS
//! handshake and each request head have a deadline, the request body must
//! arrive within `body_timeout`, a keep-alive connection idle for
//! `idle_timeout` is closed, and one where nothing moves for
//! `stall_timeout` with a request in flight is dropped. Before a handler
//! runs, a request with a bad Host (RFC 9112 §3.2) gets 400 and one whose
//! Content-Length is over `max_body` gets 413 without its body being read.
//! On stop, the listener closes and every connection finishes gently
//! (HTTP/2 GOAWAY, HTTP/1.1 close after the current response).

mod body;
mod conn;
pub mod host;
pub mod http09;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use body::{BodyError, Guarded, RequestBody};

use crate::gauge::{Gauge, Slot};
use crate::handle::{ServerHandle, StopSignal, accept, stop_channel};
use conn::{ConnState, Verdict, verdict};

/// The bounds of one HTTP listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more are refused.
    pub max_connections: u32,
    /// Time to finish the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time to send a whole request head (slowloris). For HTTP/1.1 hyper
    /// starts this clock when the connection waits for the next request,
    /// so it also closes keep-alive connections that stay silent.
    pub head_timeout: Duration,
    /// Largest request head.
    pub max_head: usize,
    /// Time, from the end of the head, for the whole body to arrive.
    pub body_timeout: Duration,
    /// Largest request body; a larger Content-Length gets 413 at once.
    pub max_body: u64,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// A connection where no byte moves for this long is dropped, even
    /// with a request in flight. Longer than any upstream timeout.
    pub stall_timeout: Duration,
    /// Answer HTTP/0.9 simple requests on a plain listener (C23).
    pub http09: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            tls_handshake_timeout: Duration::from_secs(10),
            head_timeout: Duration::from_secs(10),
            max_head: 64 * 1024,
            body_timeout: Duration::from_secs(30),
            max_body: 8 << 20,
            idle_timeout: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(60),
            http09: false,
        }
    }
}

/// What work that outlives its request (an upgraded connection's relay)
/// needs from the server it came through: a place in its count of
/// connections, so that a drain waits for the work, and its stop signal.
/// Every request carries one in its extensions.
#[derive(Clone, Debug)]
pub struct Keep {
    gauge: Gauge,
    stop: StopSignal,
}

impl Keep {
    /// A place in the server's connection count for as long as the slot
    /// lives; `None` when the server is full.
    pub fn hold(&self) -> Option<Slot> {
        self.gauge.try_enter()
    }

    /// The server's stop signal.
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }
}

/// The connection a request came in on.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
}

/// A request handler. The request body is bounded in time by
/// [`RequestBody`]; its size is the handler's to bound (e.g. `Limited`).
pub trait Handler: Send + Sync + 'static {
    type Body: Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
        + 'static;

    fn call(
        self: Arc<Self>,
        req: Request<RequestBody>,
        conn: ConnInfo,
    ) -> impl Future<Output = Response<Self::Body>> + Send;

    /// The accept phase: whether a new connection from `peer` may go on
    /// (a firewall's verdict). Refused connections are closed before any
    /// byte is read. What an admission returns lives as long as the
    /// connection (a per-client connection count, say).
    fn admit(&self, _peer: SocketAddr) -> Admission {
        Admission::Yes(None)
    }

    /// A TLS handshake from `peer` failed or timed out, before any
    /// request: the only place the server hears of it.
    fn tls_failed(&self, _peer: SocketAddr, _why: &str) {}
}

/// A verdict of [`Handler::admit`].
pub enum Admission {
    Yes(Option<Box<dyn Send + Sync>>),
    No,
}

/// HTTP/2 streams open at once on one connection.
pub const H2_MAX_STREAMS: u32 = 128;
/// Streams a client may reset before the server has accepted them.
const H2_MAX_PENDING_RESETS: usize = 20;
/// Streams the server may reset for the client's protocol errors before
/// it closes the connection.
const H2_MAX_LOCAL_RESETS: usize = 64;

/// Refusals answered at once when the connection cap is reached; beyond
/// these, excess connections are simply closed.
const REFUSALS_IN_FLIGHT: u32 = 64;

/// Serves `handler` on `listener`, over TLS when `tls` is given.
pub fn serve_http<H: Handler>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    handler: Arc<H>,
) -> std::io::Result<ServerHandle> {
    serve_http_on(vec![listener], tls, limits, handler)
}

/// Serves `handler` on every one of `listeners` (a host's IPv4 and IPv6
/// addresses) as one server: one connection cap, one stop, one drain.
/// The handle's address is the first listener's.
pub fn serve_http_on<H: Handler>(
    listeners: Vec<TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    handler: Arc<H>,
) -> std::io::Result<ServerHandle> {
    let Some(first) = listeners.first() else {
        return Err(std::io::Error::other("no listener to serve on"));
    };
    let first = first.local_addr()?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let (stop_tx, stop) = stop_channel();
    let conns = Gauge::new(limits.max_connections);
    let refusals = Gauge::new(REFUSALS_IN_FLIGHT);
    let gauges = vec![conns.clone(), refusals.clone()];
    let mut tasks = Vec::new();
    for listener in listeners {
        let addr = listener.local_addr()?;
        let (acceptor, handler, stop, conns, refusals) = (
            acceptor.clone(),
            handler.clone(),
            stop.clone(),
            conns.clone(),
            refusals.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut stopping = stop.clone();
            while let Some((tcp, peer)) = accept(&listener, &mut stopping).await {
                let Some(slot) = conns.try_enter() else {
                    refuse(tcp, acceptor.is_some(), &refusals);
                    continue;
                };
                let ticket = match handler.admit(peer) {
                    Admission::Yes(t) => t,
                    Admission::No => continue,
                };
                let conn = ConnInfo {
                    peer,
                    local: addr,
                    tls: acceptor.is_some(),
                };
                let (acceptor, handler, stop) = (acceptor.clone(), handler.clone(), stop.clone());
                let keep = Keep {
                    gauge: conns.clone(),
                    stop: stop.clone(),
                };
                tokio::spawn(serve_conn(
                    tcp,
                    conn,
                    acceptor,
                    limits,
                    handler,
                    (slot, ticket),
                    keep,
                ));
            }
        }));
    }
    Ok(ServerHandle::new(first, tasks, stop_tx, gauges))
}

/// The answer to a connection over the cap: a 503 on plain HTTP (the
/// client's request is read and discarded so the close is not a reset),
/// a plain close under TLS, where answering would cost a handshake.
fn refuse(mut tcp: TcpStream, tls: bool, refusals: &Gauge) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 38\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
too many connections; try again later\n";
    let Some(slot) = refusals.try_enter().filter(|_| !tls) else {
        return;
    };
    tokio::spawn(async move {
        let _slot = slot;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            tcp.write_all(BUSY).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 4096];
            while tcp.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}

async fn serve_conn<H: Handler>(
    tcp: TcpStream,
    conn: ConnInfo,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    handler: Arc<H>,
    _held: (Slot, Option<Box<dyn Send + Sync>>),
    keep: Keep,
) {
    let _ = tcp.set_nodelay(true);
    let mut stop = keep.stop.clone();
    let state = ConnState::new();
    match acceptor {
        Some(acceptor) => {
            // Boxed, as `drive` below: a TLS session's state is large, and
            // inline it would make every connection's task that large.
            let handshake = Box::pin(tokio::time::timeout(
                limits.tls_handshake_timeout,
                acceptor.accept(tcp),
            ));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    handler.tls_failed(conn.peer, &e.to_string());
                    return;
                }
                Err(_) => {
                    let why = format!(
                        "no complete handshake within {:?}",
                        limits.tls_handshake_timeout
                    );
                    handler.tls_failed(conn.peer, &why);
                    return;
                }
            };
            // Boxed: the connection's state machine (hyper's HTTP/1 and
            // HTTP/2 inline) is allocated once a client has something to
            // say, not while it sits idle in the handshake or the sniff.
            Box::pin(drive(
                crate::watched::Watched::new(tls, state.clone()),
                conn,
                limits,
                handler,
                state,
                keep,
            ))
            .await;
        }
        None => {
            let mut tcp = tcp;
            // With HTTP/0.9 on, the first line is read here; whatever is
            // not a simple request goes to hyper with those bytes first.
            let prefix = if limits.http09 {
                match http09::sniff(&mut tcp, limits.head_timeout, &mut stop).await {
                    http09::Sniffed::Gone => return,
                    http09::Sniffed::Http09(path) => {
                        return Box::pin(http09::answer(tcp, path, conn, limits, handler)).await;
                    }
                    http09::Sniffed::Other(prefix) => prefix,
                }
            } else {
                Bytes::new()
            };
            Box::pin(drive(
                crate::watched::Watched::new(http09::Prefixed::new(prefix, tcp), state.clone()),
                conn,
                limits,
                handler,
                state,
                keep,
            ))
            .await
        }
    }
}

/// Checks that come before any handler: the Host rule and the body size.
fn precheck(req: &Request<Incoming>, limits: &Limits) -> Option<Response<Full<Bytes>>> {
    if let Err(reason) = host::check(req.version(), req.headers()) {
        return Some(refusal(req.version(), StatusCode::BAD_REQUEST, reason));
    }
    // For a Content-Length body the lower bound is that length: refuse
    // before reading a byte of it (RFC 9110 §15.5.14).
    let declared = req.body().size_hint().lower();
    if declared > limits.max_body {
        let reason = format!(
            "request body of {declared} bytes is over the limit of {} bytes",
            limits.max_body
        );
        return Some(refusal(
            req.version(),
            StatusCode::PAYLOAD_TOO_LARGE,
            &reason,
        ));
    }
    None
}

/// A short plain-text error that also ends an HTTP/1 connection (whatever
/// is left of the request is not worth reading).
fn refusal(version: Version, status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{reason}\n"))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if version < Version::HTTP_2 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

async fn drive<H, IO>(
    io: IO,
    conn: ConnInfo,
    limits: Limits,
    handler: Arc<H>,
    state: Arc<ConnState>,
    keep: Keep,
) where
    H: Handler,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut stop = keep.stop.clone();
    let service_state = state.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let (handler, state) = (handler.clone(), service_state.clone());
        req.extensions_mut().insert(keep.clone());
        async move {
            let in_flight = body::InFlight::enter(state);
            let resp = match precheck(&req, &limits) {
                Some(r) => r.map(Either::Left),
                None => {
                    let req =
                        req.map(|b| RequestBody::new(b, limits.body_timeout, limits.max_body));
                    handler.call(req, conn).await.map(Either::Right)
                }
            };
            Ok::<_, Infallible>(resp.map(|b| Guarded::new(b, in_flight)))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head.max(8192));
    // HTTP/2's own floods, bounded explicitly rather than by whatever the
    // defaults of the day are: streams at once, streams a client resets
    // before we accept them (rapid reset, CVE-2023-44487), streams we
    // must reset for its errors, and the header block (CONTINUATION
    // floods end at this size).
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS)
        .max_send_buf_size(256 * 1024)
        .max_header_list_size(limits.max_head as u32);
    let serving = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut serving = std::pin::pin!(serving);
    let every = (limits.idle_timeout.min(limits.stall_timeout) / 4).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = serving.as_mut() => return,
            _ = stop.stopped(), if !closing => {
                serving.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tick.tick() => {
                match verdict(state.busy(), state.quiet_for(), closing, limits.idle_timeout, limits.stall_timeout) {
                    Verdict::Keep => {}
                    Verdict::Close => {
                        serving.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    Verdict::Abort => return,
                }
            }
        }
    }
}
