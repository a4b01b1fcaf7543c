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
//!
//! A plaintext HTTP/1.1 keep-alive connection that stays quiet for
//! [`PARK_AFTER`] after a response is parked: hyper's state, its two
//! 8 KiB buffers and the rest of the connection's HTTP machinery are
//! dropped, and the bare socket waits for the next request in a task of
//! about 1.5 KB (nginx frees its buffers between requests the same way).

mod body;
mod conn;
pub mod host;
pub mod http09;
pub mod priority;

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

/// Whether a server of the world knows `m` at all: RFC 9110's methods and
/// PATCH (RFC 5789). A method outside them is answered 501 Not
/// Implemented by a server that would handle it itself (RFC 9110 §9.1),
/// not 405, which says the resource takes other methods; a proxy passes
/// it on.
pub fn known_method(m: &http::Method) -> bool {
    use http::Method as M;
    matches!(
        *m,
        M::GET
            | M::HEAD
            | M::POST
            | M::PUT
            | M::DELETE
            | M::CONNECT
            | M::OPTIONS
            | M::TRACE
            | M::PATCH
    )
}

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
    /// Longest request target; a longer one gets 414 (nginx's default
    /// line buffer is the same 8 KiB).
    pub max_uri: usize,
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
            max_uri: 8 * 1024,
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
    // Shared: every connection's task would otherwise carry its own copy
    // (112 bytes) at each level.
    let limits = Arc::new(limits);
    let (stop_tx, stop) = stop_channel();
    let conns = Gauge::new(limits.max_connections);
    let refusals = Gauge::new(REFUSALS_IN_FLIGHT);
    let gauges = vec![conns.clone(), refusals.clone()];
    let mut tasks = Vec::new();
    for listener in listeners {
        let addr = listener.local_addr()?;
        let (acceptor, handler, stop, conns, refusals, limits) = (
            acceptor.clone(),
            handler.clone(),
            stop.clone(),
            conns.clone(),
            refusals.clone(),
            limits.clone(),
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
                let keep = Keep {
                    gauge: conns.clone(),
                    stop: stop.clone(),
                };
                let _ = tcp.set_nodelay(true);
                let (handler, limits, held) = (handler.clone(), limits.clone(), (slot, ticket));
                // One task per connection, spawned as what it is: the
                // task's size is its future's, and a plain one waiting for
                // a request should not carry room for a TLS session.
                match &acceptor {
                    None => tokio::spawn(serve_plain(tcp, conn, limits, handler, held, keep)),
                    Some(a) => {
                        let a = a.clone();
                        tokio::spawn(serve_tls(tcp, a, conn, limits, handler, held, keep))
                    }
                };
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

/// What a connection holds while it lives: its place in the server's
/// count, and whatever its admission returned.
type Held = (Slot, Option<Box<dyn Send + Sync>>);

/// `f` on the heap, built outside the caller's body: a future built
/// inline and then boxed would still leave its size in the caller's.
fn boxed<F: Future>(f: F) -> std::pin::Pin<Box<F>> {
    Box::pin(f)
}

/// A plain connection: an HTTP/0.9 simple request when the listener
/// answers those, else [`drive`], and while it is parked between
/// requests, nothing but this small future and the socket.
async fn serve_plain<H: Handler>(
    mut tcp: TcpStream,
    conn: ConnInfo,
    limits: Arc<Limits>,
    handler: Arc<H>,
    _held: Held,
    keep: Keep,
) {
    let state = ConnState::new();
    let mut stop = keep.stop.clone();
    // With HTTP/0.9 on, the first line is read here; whatever is not a
    // simple request goes to hyper with those bytes first.
    let prefix = if limits.http09 {
        match http09::sniff(&mut tcp, limits.head_timeout, &mut stop).await {
            http09::Sniffed::Gone => return,
            http09::Sniffed::Http09(path) => {
                return boxed(http09::answer(tcp, path, conn, *limits, handler)).await;
            }
            http09::Sniffed::Other(prefix) => prefix,
        }
    } else {
        Bytes::new()
    };
    let mut io = http09::Prefixed::new(prefix, tcp);
    let mut h2 = None;
    loop {
        // Boxed: the connection's state machine (hyper's HTTP/1 and
        // HTTP/2 inline) is allocated while a request is on its way or in
        // flight, and freed while the connection is parked.
        // (Built inside the call: a local holding it would keep its size
        // in this future too.)
        let (h, l, st, k) = (handler.clone(), limits.clone(), state.clone(), keep.clone());
        let Some(parked) = boxed(drive(io, h2, conn, l, h, st, k)).await else {
            return;
        };
        io = parked;
        h2 = Some(false);
        // Parked: the socket alone waits for the next request, as long as
        // hyper would have waited for its head.
        let wait = limits
            .head_timeout
            .min(limits.idle_timeout)
            .saturating_sub(state.quiet_for());
        tokio::select! {
            ready = tokio::time::timeout(wait, io.get_ref().readable()) => {
                if !matches!(ready, Ok(Ok(()))) {
                    return;
                }
            }
            _ = stop.stopped() => return,
        }
    }
}

/// A TLS connection: the handshake within its deadline, then [`drive`]
/// (a TLS connection is never parked: rustls holds its buffers).
async fn serve_tls<H: Handler>(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    conn: ConnInfo,
    limits: Arc<Limits>,
    handler: Arc<H>,
    _held: Held,
    keep: Keep,
) {
    let state = ConnState::new();
    // Boxed: until it is done, the handshake is all the task holds.
    let handshake = boxed(tokio::time::timeout(
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
    let alpn_h2 = match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => Some(true),
        Some(_) => Some(false),
        None => None,
    };
    let io = http09::Prefixed::new(Bytes::new(), tls);
    boxed(drive(io, alpn_h2, conn, limits, handler, state, keep)).await;
}

/// The methods [`known_method`] names but CONNECT (refused here), for an
/// `Allow` header.
const KNOWN_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH";

/// Checks that come before any handler: the Host rule, the target's
/// length, the requests about the server rather than a resource
/// (`OPTIONS *`, `CONNECT`), and the body size.
fn precheck(req: &Request<Incoming>, limits: &Limits) -> Option<Response<Full<Bytes>>> {
    if let Err(reason) = host::check(req.version(), req.headers()) {
        return Some(refusal(req.version(), StatusCode::BAD_REQUEST, reason));
    }
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.max_uri {
        let reason = format!(
            "request target of {target} bytes is over the limit of {} bytes",
            limits.max_uri
        );
        return Some(refusal(req.version(), StatusCode::URI_TOO_LONG, &reason));
    }
    if req.method() == http::Method::CONNECT {
        // A tunnel to another host is a forward proxy's work; no server
        // of the world is one (RFC 9110 §9.3.6).
        let mut r = refusal(
            req.version(),
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT opens a tunnel through a forward proxy, and this server is not one",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(KNOWN_METHODS));
        return Some(r);
    }
    if req.method() == http::Method::OPTIONS && req.uri().path() == "*" {
        // About the server as a whole (RFC 9110 §9.3.7): the methods it
        // knows, no body.
        let mut r = Response::new(Full::new(Bytes::new()));
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(KNOWN_METHODS));
        return Some(r);
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

/// A stream under a connection: what it can offer while the connection
/// waits for its next request outside hyper ("parked").
pub(crate) trait Park:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
{
    /// The socket to wait on for the next request, when nothing can be
    /// buffered above it; `None` when the connection cannot be parked.
    fn parkable(&self) -> Option<&TcpStream>;
    /// The TCP socket underneath.
    fn socket(&self) -> &TcpStream;
}

impl Park for TcpStream {
    fn parkable(&self) -> Option<&TcpStream> {
        Some(self)
    }
    fn socket(&self) -> &TcpStream {
        self
    }
}

/// TLS connections stay in hyper: rustls may hold decrypted bytes that a
/// socket's readiness would not announce.
impl Park for tokio_rustls::server::TlsStream<TcpStream> {
    fn parkable(&self) -> Option<&TcpStream> {
        None
    }
    fn socket(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// How long a closed connection may keep reading what its client still
/// sends, in all and without a byte (see [`linger`]).
const LINGER_FOR: Duration = Duration::from_secs(5);
const LINGER_QUIET: Duration = Duration::from_secs(1);

/// A lingering close, as nginx does it: hyper has sent its response and
/// shut our side, but the client may still be sending what was never read
/// (a body refused as too large while it streamed). Closing the socket now
/// would answer those bytes with a reset, and a reset can destroy the
/// response in the client's kernel before the client reads it (the
/// client then sees "broken pipe", not the 413). So what arrives is read
/// and dropped until the client closes, or is quiet for [`LINGER_QUIET`],
/// or [`LINGER_FOR`] has passed, or the server stops. A client that had
/// closed already costs one read.
async fn linger(tcp: &TcpStream, stop: &mut StopSignal) {
    let deadline = tokio::time::Instant::now() + LINGER_FOR;
    let mut sink = Vec::new();
    loop {
        let wait =
            LINGER_QUIET.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        tokio::select! {
            ready = tokio::time::timeout(wait, tcp.readable()) => {
                if !matches!(ready, Ok(Ok(()))) {
                    return;
                }
            }
            _ = stop.stopped() => return,
        }
        if sink.is_empty() {
            sink = vec![0u8; 16 * 1024];
        }
        match tcp.try_read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// The stream hyper sees: watched for progress, with bytes already read
/// (a sniffed first line, what hyper had buffered) in front.
type Stream<S> = crate::watched::Watched<http09::Prefixed<S>, Arc<ConnState>>;

/// The HTTP/2 client preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plaintext (or ALPN-less) connection opens with HTTP/2's
/// preface: reads only until the bytes so far stop matching it, keeping
/// them in front of the stream. hyper-util's auto builder does the same,
/// but cannot hand the socket back to park it. `None` when the client went away or said
/// nothing within `deadline`.
async fn sniff_h2<S: Park>(io: &mut http09::Prefixed<S>, deadline: Duration) -> Option<bool> {
    let sniff = async {
        loop {
            let have = io.prefix().clone();
            if have.len() >= H2_PREFACE.len() {
                return Some(have.starts_with(H2_PREFACE));
            }
            if !H2_PREFACE.starts_with(&have) {
                return Some(false);
            }
            // One read usually brings the whole request head.
            let mut more = bytes::BytesMut::with_capacity(have.len() + 4096);
            more.extend_from_slice(&have);
            if io.get_mut().read_buf(&mut more).await.ok()? == 0 {
                return None;
            }
            io.set_prefix(more.freeze());
        }
    };
    tokio::time::timeout(deadline, sniff).await.ok().flatten()
}

/// How long a keep-alive HTTP/1.1 connection stays quiet after a response
/// before it is parked: taken out of hyper, whose read and write buffers
/// (8 KiB each, kept for a connection's life) are freed, to wait for its
/// next request on the bare socket, as nginx does between requests.
const PARK_AFTER: Duration = Duration::from_millis(250);

/// Serves one connection: `io` (with any bytes already read in front),
/// over HTTP/2 when ALPN chose it (`alpn_h2`) or the client opens with its
/// preface, else over HTTP/1.1. A plain HTTP/1.1 connection that stays
/// quiet after a response is parked: handed back, hyper's state freed, to
/// wait for its next request.
async fn drive<H, S>(
    mut io: http09::Prefixed<S>,
    alpn_h2: Option<bool>,
    conn: ConnInfo,
    limits: Arc<Limits>,
    handler: Arc<H>,
    state: Arc<ConnState>,
    keep: Keep,
) -> Option<http09::Prefixed<S>>
where
    H: Handler,
    S: Park,
{
    let mut stop = keep.stop.clone();
    let h2 = match alpn_h2 {
        Some(h2) => h2,
        None => sniff_h2(&mut io, limits.head_timeout).await?,
    };
    // HTTP/2 responses take turns by their requests' priorities.
    let sched = h2.then(priority::Scheduler::new);
    let (service_state, service_limits) = (state.clone(), limits.clone());
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let (handler, state) = (handler.clone(), service_state.clone());
        let limits = service_limits.clone();
        let turn = sched
            .as_ref()
            .map(|s| (s.clone(), s.ticket(), priority::Priority::of(req.headers())));
        req.extensions_mut().insert(keep.clone());
        async move {
            let in_flight = body::InFlight::enter(state);
            let mut resp = match precheck(&req, &limits) {
                Some(r) => r.map(Either::Left),
                None => {
                    let req =
                        req.map(|b| RequestBody::new(b, limits.body_timeout, limits.max_body));
                    handler.call(req, conn).await.map(Either::Right)
                }
            };
            let report = resp.extensions_mut().remove::<priority::HeldReport>();
            let body = match turn {
                Some((sched, seq, prio)) => resp
                    .map(|b| Either::Right(priority::Scheduled::new(b, sched, seq, prio, report))),
                None => resp.map(Either::Left),
            };
            Ok::<_, Infallible>(body.map(|b| Guarded::new(b, in_flight)))
        }
    });
    let mut io: Stream<S> = crate::watched::Watched::new(io, state.clone());
    if h2 {
        // HTTP/2's own floods, bounded explicitly rather than by whatever
        // the defaults of the day are: streams at once, streams a client
        // resets before we accept them (rapid reset, CVE-2023-44487),
        // streams we must reset for its errors, and the header block
        // (CONTINUATION floods end at this size).
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS)
            .max_send_buf_size(256 * 1024)
            .max_header_list_size(limits.max_head as u32);
        let mut serving = Box::pin(builder.serve_connection(TokioIo::new(io), service));
        watch(serving.as_mut(), &state, &limits, &mut stop, false).await;
        return None;
    }
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head.max(8192));
    loop {
        let parkable = io.io.get_ref().parkable().is_some();
        let mut serving = Box::pin(
            builder
                .serve_connection(TokioIo::new(io), service.clone())
                .with_upgrades(),
        );
        let ended = watch(serving.as_mut(), &state, &limits, &mut stop, parkable).await;
        if ended != Ended::Parked {
            // hyper closed it after a response: linger over what the
            // client may still send. Not after an abort (a stalled or
            // idle client is cut off, not waited for) nor an upgrade.
            if ended == Ended::Done
                && let Some(parts) = std::pin::Pin::into_inner(serving).into_parts()
            {
                let io = parts.io.into_inner();
                Box::pin(linger(io.io.get_ref().socket(), &mut stop)).await;
            }
            return None;
        }
        let parts = std::pin::Pin::into_inner(serving).into_parts()?;
        let hyper::server::conn::http1::Parts {
            io: taken,
            read_buf,
            ..
        } = parts;
        io = taken.into_inner();
        if !read_buf.is_empty() {
            // The next request had begun: hyper's buffered bytes go first.
            io.io.set_prefix(read_buf);
            continue;
        }
        // Even empty, the buffer's view keeps hyper's 8 KiB allocation.
        drop(read_buf);
        #[cfg(test)]
        tests::PARKS.with(|p| p.set(p.get() + 1));
        return Some(io.io);
    }
}

/// A connection hyper serves, which can be asked to finish gently.
trait Graceful: Future {
    fn graceful(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E, B> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs `serving` under the connection's watchdog (idle, stalled,
/// stopping). With `park`, a connection that served a request and then
/// stayed quiet and idle for [`PARK_AFTER`] is finished without closing
/// its socket; returns whether that is how it ended.
/// How a connection left [`watch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// Idle between requests, handed back to be parked.
    Parked,
    /// hyper finished it (closed, or failed).
    Done,
    /// Cut off: stalled or idle past its limits.
    Aborted,
}

async fn watch<C: Graceful<Output = hyper::Result<()>>>(
    mut serving: std::pin::Pin<&mut C>,
    state: &Arc<ConnState>,
    limits: &Limits,
    stop: &mut StopSignal,
    park: bool,
) -> Ended {
    let mut every =
        (limits.idle_timeout.min(limits.stall_timeout) / 4).max(Duration::from_millis(50));
    if park {
        every = every.min(PARK_AFTER);
    }
    let served_before = state.requests();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = serving.as_mut() => return Ended::Done,
            _ = stop.stopped(), if !closing => {
                serving.as_mut().graceful();
                closing = true;
            }
            _ = tick.tick() => {
                // hyper counts a connection busy until its first request
                // is answered, and would tell that one to close: only a
                // connection that has served a request since it (re)entered
                // hyper is parked.
                if park
                    && !closing
                    && !state.busy()
                    && state.requests() > served_before
                    && state.quiet_for() >= PARK_AFTER
                {
                    // Asked to close, hyper ends an idle connection at
                    // once, leaving the socket to us (the shutdown is held
                    // back). One still at work (flushing a response to a
                    // client that does not read, one that said
                    // `Connection: close`) ends later and for real: what
                    // the client sends after it must never be read.
                    state.set_parking(true);
                    serving.as_mut().graceful();
                    let now = std::future::poll_fn(|cx| {
                        std::task::Poll::Ready(serving.as_mut().poll(cx))
                    })
                    .await;
                    state.set_parking(false);
                    match now {
                        std::task::Poll::Ready(Ok(())) => return Ended::Parked,
                        std::task::Poll::Ready(Err(_)) => return Ended::Done,
                        std::task::Poll::Pending => closing = true,
                    }
                    continue;
                }
                match verdict(state.busy(), state.quiet_for(), closing, limits.idle_timeout, limits.stall_timeout) {
                    Verdict::Keep => {}
                    Verdict::Close => {
                        serving.as_mut().graceful();
                        closing = true;
                    }
                    Verdict::Abort => return Ended::Aborted,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Answers every request with its path, counting the connections the
    /// server took (so a test can tell a reused connection from a new one).
    #[derive(Default)]
    struct Echo {
        admitted: Arc<AtomicU32>,
    }

    impl Handler for Echo {
        type Body = Full<Bytes>;
        async fn call(
            self: Arc<Self>,
            req: Request<RequestBody>,
            _: ConnInfo,
        ) -> Response<Full<Bytes>> {
            if req.uri().path() == "/big" {
                // More than the sockets on both ends hold: its flush waits
                // for the client to read.
                return Response::new(Full::new(Bytes::from(vec![b'x'; BIG])));
            }
            Response::new(Full::new(Bytes::from(format!("path {}", req.uri().path()))))
        }
        fn admit(&self, _peer: SocketAddr) -> Admission {
            self.admitted.fetch_add(1, Ordering::Relaxed);
            Admission::Yes(None)
        }
    }

    const BIG: usize = 64 << 20;

    thread_local! {
        /// Connections parked on this thread (a test's own runtime).
        pub(super) static PARKS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    async fn server<H: Handler>(h: H, limits: Limits) -> (ServerHandle, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        (serve_http(l, None, limits, Arc::new(h)).unwrap(), addr)
    }

    /// Reads one response whose body is `path …`; returns the head and body.
    async fn response(s: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("\r\n\r\npath ") {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("a response within 5 s")
                .unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        // The body is short: let its last bytes arrive.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn a_quiet_keep_alive_connection_is_parked_and_answers_its_next_request() {
        let echo = Echo::default();
        let admitted = echo.admitted.clone();
        let (_h, addr) = server(echo, Limits::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let first = response(&mut s).await;
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        assert!(
            !first.to_lowercase().contains("connection: close"),
            "{first}"
        );
        // Long enough to be parked (taken out of hyper) twice over.
        tokio::time::sleep(PARK_AFTER * 3).await;
        s.write_all(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let second = response(&mut s).await;
        assert!(
            second.starts_with("HTTP/1.1 200") && second.ends_with("path /two"),
            "{second}"
        );
        assert!(
            !second.to_lowercase().contains("connection: close"),
            "{second}"
        );
        // Parked again, then a request sent in two parts with a pause
        // between them: a connection is parked only after an answer, never
        // with half a request read.
        tokio::time::sleep(PARK_AFTER * 3).await;
        s.write_all(b"GET /thr").await.unwrap();
        tokio::time::sleep(PARK_AFTER * 3).await;
        s.write_all(b"ee HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let third = response(&mut s).await;
        assert!(third.ends_with("path /three"), "{third}");
        // One connection all along, parked after each of the first two
        // answers.
        assert_eq!(admitted.load(Ordering::Relaxed), 1);
        assert_eq!(PARKS.with(|p| p.get()), 2);
    }

    /// Answers every request with [`RACE_BODY`] bytes at once.
    struct Big;

    const RACE_BODY: usize = 4 << 20;

    impl Handler for Big {
        type Body = Full<Bytes>;
        async fn call(
            self: Arc<Self>,
            _: Request<RequestBody>,
            _: ConnInfo,
        ) -> Response<Full<Bytes>> {
            Response::new(Full::new(Bytes::from(vec![b'x'; RACE_BODY])))
        }
    }

    /// Two large responses asked for at once on one HTTP/2 connection,
    /// `/a` first, each with its `priority` header if any; how many bytes
    /// of `/a` had arrived when `/b` was complete.
    async fn race(a: Option<&str>, b: Option<&str>) -> usize {
        use http_body_util::BodyExt;
        use std::sync::atomic::AtomicUsize;
        let (_h, addr) = server(Big, Limits::default()).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        // Small windows, as a slow link would keep what is in flight
        // small: on loopback the sockets would otherwise take a megabyte
        // of /a before any order applies.
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(64 * 1024)
            .initial_connection_window_size(128 * 1024)
            .handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let ask = |path: &str, prio: Option<&str>| {
            let mut r = Request::get(format!("http://race.test{path}"));
            if let Some(p) = prio {
                r = r.header("priority", p);
            }
            let mut s = sender.clone();
            let req = r.body(Full::new(Bytes::new())).unwrap();
            async move { s.send_request(req).await.unwrap().into_body() }
        };
        let (mut body_a, mut body_b) = tokio::join!(ask("/a", a), ask("/b", b));
        let got_a = AtomicUsize::new(0);
        let read_a = async {
            while let Some(f) = body_a.frame().await {
                let n = f.unwrap().data_ref().map_or(0, |d| d.len());
                got_a.fetch_add(n, Ordering::Relaxed);
            }
        };
        let read_b = async {
            let mut n = 0;
            while let Some(f) = body_b.frame().await {
                n += f.unwrap().data_ref().map_or(0, |d| d.len());
            }
            assert_eq!(n, RACE_BODY);
            got_a.load(Ordering::Relaxed)
        };
        let ((), a_when_b_done) = tokio::join!(read_a, read_b);
        assert_eq!(got_a.load(Ordering::Relaxed), RACE_BODY);
        a_when_b_done
    }

    #[tokio::test]
    async fn an_urgent_http2_response_goes_ahead_of_one_asked_for_before_it() {
        // Without priorities h2 sends them in its own order: mostly /a,
        // asked for first, before /b.
        let plain = race(None, None).await;
        // /b urgent, /a not: /b goes first once it has data; /a has only
        // what it sent before, within the client's windows.
        let urgent_b = race(Some("u=5"), Some("u=0")).await;
        // Both of urgency 3, non-incremental: one after the other in the
        // order asked, so /a is complete before /b.
        let in_order = race(Some("u=3"), Some("u=3")).await;
        assert!(plain > RACE_BODY / 2, "without priorities: {plain}");
        assert!(
            urgent_b < RACE_BODY / 8,
            "u=0 ahead of u=5: {urgent_b} of /a first"
        );
        assert_eq!(in_order, RACE_BODY, "same urgency, in order");
    }

    #[tokio::test]
    async fn an_urgent_response_the_client_never_reads_does_not_freeze_the_others() {
        use http_body_util::BodyExt;
        let (_h, addr) = server(Big, Limits::default()).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(64 * 1024)
            .initial_connection_window_size(8 << 20)
            .handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let ask = |path: &str, prio: &str| {
            let req = Request::get(format!("http://race.test{path}"))
                .header("priority", prio)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let mut s = sender.clone();
            async move { s.send_request(req).await.unwrap().into_body() }
        };
        // /a is the most urgent, and its body is never read: its window
        // fills and it stops asking to send.
        let (_unread, b) = tokio::join!(ask("/a", "u=0"), ask("/b", "u=5"));
        let got = tokio::time::timeout(Duration::from_secs(10), b.collect())
            .await
            .expect("/b is not held behind /a for good")
            .unwrap()
            .to_bytes();
        assert_eq!(got.len(), RACE_BODY);
    }

    /// Sends `req` on a new connection and reads until the server closes.
    async fn once(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req).await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
            .await
            .expect("closed within 5 s")
            .unwrap();
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn the_server_itself_answers_options_star_connect_and_overlong_targets() {
        let (_h, addr) = server(Echo::default(), Limits::default()).await;
        let r = once(
            addr,
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains(&format!("allow: {KNOWN_METHODS}")), "{r}");
        assert!(!r.contains("path "), "the handler never saw it: {r}");
        // OPTIONS on a resource is the handler's.
        let r = once(
            addr,
            b"OPTIONS /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.ends_with("path /x"), "{r}");
        let r = once(
            addr,
            b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 501"), "{r}");
        assert!(r.contains("not one"), "{r}");
        // A target one byte over the limit, and one at it.
        let limit = Limits::default().max_uri;
        for (len, status) in [(limit + 1, "414"), (limit, "200")] {
            let path = format!("/{}", "a".repeat(len - 1));
            let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
            let r = once(addr, req.as_bytes()).await;
            assert!(
                r.starts_with(&format!("HTTP/1.1 {status}")),
                "{len}: {}",
                &r[..80]
            );
        }
    }

    #[tokio::test]
    async fn a_refused_body_still_streaming_in_does_not_reset_the_refusal() {
        let limits = Limits {
            max_body: 1024,
            ..Limits::default()
        };
        for _ in 0..5 {
            let (_h, addr) = server(Echo::default(), limits).await;
            let s = TcpStream::connect(addr).await.unwrap();
            let (mut rd, mut wr) = s.into_split();
            const BODY: usize = 16 << 20;
            // The client sends its whole body whatever it hears, as a
            // client library does (the server refuses it from the head).
            let writer = tokio::spawn(async move {
                let head =
                    format!("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {BODY}\r\n\r\n");
                wr.write_all(head.as_bytes()).await?;
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..BODY / chunk.len() {
                    wr.write_all(&chunk).await?;
                }
                wr.shutdown().await
            });
            let mut got = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut got)).await;
            // The refusal arrives whole and the connection ends with a
            // FIN: the body's bytes were read and dropped, never answered
            // with a reset that would have taken the 413 with it.
            assert!(
                matches!(read, Ok(Ok(_))),
                "{read:?} after {:?}",
                String::from_utf8_lossy(&got)
            );
            let text = String::from_utf8_lossy(&got);
            assert!(text.starts_with("HTTP/1.1 413"), "{text}");
            assert!(
                writer.await.unwrap().is_ok(),
                "the body could be sent to its end"
            );
        }
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order_across_a_park() {
        let (_h, addr) = server(Echo::default(), Limits::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHo")
            .await
            .unwrap();
        let mut got = String::new();
        while !got.contains("path /b") {
            got += &response(&mut s).await;
        }
        assert!(got.find("path /a") < got.find("path /b"), "{got}");
        tokio::time::sleep(PARK_AFTER * 3).await;
        s.write_all(b"st: a\r\n\r\n").await.unwrap();
        let c = response(&mut s).await;
        assert!(c.ends_with("path /c"), "{c}");
        // The half-sent third request was in hyper's buffer when the quiet
        // connection was taken out of hyper: it went back in with those
        // bytes first instead of being parked.
        assert_eq!(PARKS.with(|p| p.get()), 0);
    }

    #[tokio::test]
    async fn a_connection_hyper_closes_is_never_parked_even_when_its_close_waits() {
        let (_h, addr) = server(Echo::default(), Limits::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The first answer ends the connection (`Connection: close`); the
        // request behind it must never be answered, even though the
        // connection is quiet long enough to be parked while the answer
        // waits for the client to read it.
        s.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(PARK_AFTER * 4).await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
        assert!(matches!(read, Ok(Ok(_))), "{read:?}");
        let text = String::from_utf8_lossy(&got[..got.len().min(300)]).to_lowercase();
        assert!(
            text.starts_with("http/1.1 200") && text.contains("connection: close"),
            "{text}"
        );
        assert!(got.len() > BIG, "{} bytes", got.len());
        assert!(!String::from_utf8_lossy(&got[BIG..]).contains("path /two"));
        assert_eq!(PARKS.with(|p| p.get()), 0);
    }

    #[tokio::test]
    async fn a_parked_connection_is_closed_when_silent_for_the_head_timeout_and_on_stop() {
        let limits = Limits {
            head_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let (_h, addr) = server(Echo::default(), limits).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        response(&mut s).await;
        let t = std::time::Instant::now();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(700) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        assert_eq!(PARKS.with(|p| p.get()), 1);
        // Parked connections end at once when the server stops (long
        // before the default 10 s head timeout).
        let (h, addr) = server(Echo::default(), Limits::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        response(&mut s).await;
        tokio::time::sleep(PARK_AFTER * 3).await;
        assert_eq!(PARKS.with(|p| p.get()), 2);
        h.stop_accepting();
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
    }
}
