//! A pool of backends behind one proxy: the backends and their state, the
//! balancing algorithm, active health checks, and one HTTP/1.1 client
//! whose connections leave from the proxy host's own address.
//!
//! The client is hyper-util's pooled client (keep-alive reuse, retry of a
//! request a pooled connection dropped before sending it). Its connector is
//! ours: it binds the proxy's address with `IP_BIND_ADDRESS_NO_PORT` (the
//! kernel then picks the port at connect time from the 4-tuple, instead of
//! searching for a port free on every destination at bind time, which is
//! slow with thousands of TIME_WAIT sockets) and tags each connection so a
//! trace can say whether a request opened one or reused one.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use weblab_trace::{Ctx, Event, Layer, Recorder, error_chain as chain};

use crate::backend::{Backend, BackendStatus, Outcome, Rule};
use crate::balance::{Balancer, Candidate};
use crate::body::Outgoing;

/// Active health checks of a pool's backends.
#[derive(Clone, Debug)]
pub struct Checks {
    /// Time between checks; `None` turns active checks off (a backend
    /// taken down by failed requests is then retried after `revive`).
    pub interval: Option<Duration>,
    /// Time one check may take.
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Path requested by a check.
    pub path: String,
    /// Status a check expects; `None` accepts any 2xx or 3xx.
    pub expect: Option<u16>,
    /// Without active checks: how long a backend stays down.
    pub revive: Duration,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            interval: Some(Duration::from_secs(2)),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            path: "/".into(),
            expect: None,
            revive: Duration::from_secs(10),
        }
    }
}

impl Checks {
    fn rule(&self) -> Rule {
        Rule {
            rise: self.rise,
            fall: self.fall,
        }
    }
}

/// Time limits of a pool's requests.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending a request to its response head.
    pub response: Duration,
    /// An upgraded (WebSocket) connection with no byte either way for this
    /// long is closed.
    pub tunnel_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            response: Duration::from_secs(30),
            tunnel_idle: Duration::from_secs(300),
        }
    }
}

/// The backends of one proxy and how it picks among them.
pub struct Pool {
    backends: Vec<Arc<Backend>>,
    balancer: Box<dyn Balancer>,
    client: Client<Connector, Outgoing>,
    connector: Connector,
    checks: Checks,
    pub timeouts: Timeouts,
    rec: Recorder,
    /// Upgraded connections relayed now, and the most allowed.
    pub(crate) tunnels: Arc<AtomicU32>,
    pub max_tunnels: u32,
}

/// Where one request may go: backends that are up, the algorithm's pick
/// first, then the rest in order (for failover).
pub struct Plan {
    pub order: Vec<Arc<Backend>>,
    pub reason: String,
}

impl Pool {
    /// A pool whose connections leave from `bind`.
    pub fn new(
        backends: Vec<Arc<Backend>>,
        balancer: Box<dyn Balancer>,
        bind: IpAddr,
        checks: Checks,
        rec: Recorder,
    ) -> Arc<Pool> {
        Pool::with_timeouts(backends, balancer, bind, checks, Timeouts::default(), rec)
    }

    /// [`Pool::new`] with other timeouts.
    pub fn with_timeouts(
        backends: Vec<Arc<Backend>>,
        balancer: Box<dyn Balancer>,
        bind: IpAddr,
        checks: Checks,
        timeouts: Timeouts,
        rec: Recorder,
    ) -> Arc<Pool> {
        let connector = Connector {
            bind,
            timeout: timeouts.connect,
            next_id: Arc::new(AtomicU64::new(1)),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // Shorter than the upstream's own keep-alive timeout, so the
            // pool drops a connection before the upstream closes it.
            .pool_idle_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(1024)
            // The client's Host passes through untouched.
            .set_host(false)
            .build(connector.clone());
        Arc::new(Pool {
            backends,
            balancer,
            client,
            connector,
            checks,
            timeouts,
            rec,
            tunnels: Arc::new(AtomicU32::new(0)),
            max_tunnels: 1024,
        })
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    pub fn algorithm(&self) -> &'static str {
        self.balancer.algorithm()
    }

    /// The backends to try for a request from `key`, best first. Empty
    /// when none is up.
    pub fn plan(&self, key: &[u8]) -> Plan {
        if self.checks.interval.is_none() {
            let now = Instant::now();
            for b in self.backends.iter().filter(|b| !b.is_up()) {
                if let Some(c) = b.revive_after(self.checks.revive, now) {
                    self.record_change(b, c);
                }
            }
        }
        let up: Vec<Candidate> = self
            .backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_up())
            .map(|(index, b)| Candidate {
                index,
                weight: b.weight,
                in_flight: b.in_flight(),
            })
            .collect();
        if up.is_empty() {
            return Plan {
                order: Vec::new(),
                reason: format!("none of {} backends is up", self.backends.len()),
            };
        }
        let pick = self.balancer.pick(&up, key);
        let mut order = Vec::with_capacity(up.len());
        order.push(self.backends[pick.index].clone());
        let at = up.iter().position(|c| c.index == pick.index).unwrap_or(0);
        for i in 1..up.len() {
            order.push(self.backends[up[(at + i) % up.len()].index].clone());
        }
        Plan {
            order,
            reason: pick.reason,
        }
    }

    /// Sends `req` to `backend`, bounded by the response timeout. The
    /// request's URI must be in origin form; the backend's address is
    /// put in front of it here.
    pub async fn send(
        &self,
        backend: &Backend,
        mut req: Request<Outgoing>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(http::uri::Scheme::HTTP);
        uri.authority = Some(backend.authority.clone());
        uri.path_and_query = Some(
            req.uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        *req.uri_mut() = Uri::from_parts(uri).map_err(|e| SendError::Other(e.to_string()))?;
        // The wait for the answer counts from the request body's last
        // frame: an upload still moving is not an upstream failing to answer.
        let clock = req.body().clock();
        let wait = self.timeouts.response;
        let answer = self.client.request(req);
        tokio::pin!(answer);
        let answered = loop {
            let deadline = clock.last() + wait;
            match tokio::time::timeout_at(deadline.into(), &mut answer).await {
                Ok(r) => break Some(r),
                Err(_) if clock.last() + wait > Instant::now() => continue,
                Err(_) => break None,
            }
        };
        match answered {
            None => Err(SendError::Timeout(self.timeouts.response)),
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) if e.is_connect() => Err(SendError::Connect(chain(&e))),
            Some(Err(e)) => Err(match weblab_server::http::BodyError::within(&e) {
                Some(b) => SendError::ClientBody {
                    too_large: b.is_too_large(),
                    timed_out: b.is_timeout(),
                    message: b.to_string(),
                },
                None => SendError::Other(chain(&e)),
            }),
        }
    }

    /// A real request's outcome, for passive health.
    pub fn report(&self, backend: &Backend, outcome: Outcome) {
        if let Some(c) = backend.observe_passive(outcome, self.checks.rule(), Instant::now()) {
            self.record_change(backend, c);
        }
    }

    fn record_change(&self, backend: &Backend, c: crate::backend::Change) {
        let span = self.rec.begin(Ctx::new_root(), Layer::Application);
        self.rec.end(
            span,
            Event::BackendHealth {
                backend: backend.label(),
                up: c.up,
                reason: c.reason,
            },
        );
    }

    /// Starts the active checks; they stop when the pool is dropped. The
    /// receiver hears when the first round is over (at once when active
    /// checks are off); a caller that does not care drops it.
    pub fn start_checks(self: &Arc<Self>) -> tokio::sync::oneshot::Receiver<()> {
        let (first_round, done) = tokio::sync::oneshot::channel();
        let Some(every) = self.checks.interval else {
            let _ = first_round.send(());
            return done;
        };
        let weak: Weak<Pool> = Arc::downgrade(self);
        let mut first_round = Some(first_round);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pool) = weak.upgrade() else { return };
                let checks = pool.backends.iter().map(|b| {
                    let pool = pool.clone();
                    let b = b.clone();
                    async move {
                        let outcome = pool.check(&b).await;
                        if let Some(c) = b.observe(outcome, pool.checks.rule(), Instant::now()) {
                            pool.record_change(&b, c);
                        }
                    }
                });
                futures::future::join_all(checks).await;
                if let Some(tell) = first_round.take() {
                    let _ = tell.send(());
                }
            }
        });
        done
    }

    /// One active check: a new connection, `GET path`, the status checked.
    async fn check(&self, backend: &Backend) -> Outcome {
        let run = async {
            let uri: Uri = format!("http://{}{}", backend.addr, self.checks.path)
                .parse()
                .map_err(|e| format!("bad check path: {e}"))?;
            let io = tower_service::Service::call(&mut self.connector.clone(), uri.clone())
                .await
                .map_err(|e| e.to_string())?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            let req = Request::get(uri.path())
                .header(http::header::HOST, backend.addr.to_string())
                .header(http::header::CONNECTION, "close")
                .header(http::header::USER_AGENT, "weblab-health-check")
                // Every hop sees the check, none records it (W3C's
                // sampled flag off).
                .header(
                    "traceparent",
                    Ctx::unsampled_root().traceparent(weblab_trace::SpanId::random()),
                )
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .map_err(|e| e.to_string())?;
            // The connection is driven here rather than spawned, so a
            // backend that accepts and never answers costs nothing once
            // the check's time is up: dropping this future closes it.
            let ask = send.send_request(req);
            tokio::pin!(ask, conn);
            let resp = tokio::select! {
                r = &mut ask => r,
                // A connection that ended cleanly has handed over its
                // answer, if it got one.
                c = &mut conn => match c {
                    Ok(()) => ask.await,
                    Err(e) => return Err(e.to_string()),
                },
            };
            let status = resp.map_err(|e| e.to_string())?.status().as_u16();
            let good = match self.checks.expect {
                Some(want) => status == want,
                None => (200..400).contains(&status),
            };
            if good {
                Ok(())
            } else {
                Err(format!("GET {} answered {status}", self.checks.path))
            }
        };
        match tokio::time::timeout(self.checks.timeout, run).await {
            Ok(Ok(())) => Outcome::Ok,
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed(format!("no answer within {:?}", self.checks.timeout)),
        }
    }

    /// What `/_weblab/status` shows of this pool.
    pub fn status(&self) -> PoolStatus {
        let now = Instant::now();
        PoolStatus {
            algorithm: self.algorithm(),
            checks: match self.checks.interval {
                Some(i) => format!(
                    "GET {} every {i:?}, rise {}, fall {}",
                    self.checks.path, self.checks.rise, self.checks.fall
                ),
                None => format!(
                    "passive only: {} failed requests in a row take a backend out for {:?}",
                    self.checks.fall, self.checks.revive
                ),
            },
            tunnels: self.tunnels.load(Ordering::Relaxed),
            backends: self.backends.iter().map(|b| b.status(now)).collect(),
        }
    }
}

/// A pool on the status page.
#[derive(Clone, Debug, Serialize)]
pub struct PoolStatus {
    pub algorithm: &'static str,
    pub checks: String,
    pub tunnels: u32,
    pub backends: Vec<BackendStatus>,
}

/// Why a request did not get a response head from a backend.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made: the request was not sent.
    Connect(String),
    /// No response head within the limit.
    Timeout(Duration),
    /// The client's body failed on the way (too large, too slow, cut
    /// off): the client's fault, not the backend's.
    ClientBody {
        too_large: bool,
        timed_out: bool,
        message: String,
    },
    /// The connection broke after the request may have been sent.
    Other(String),
}

impl SendError {
    /// The status the client gets: 413/408/400 for its own body, 504 for
    /// a backend too slow, 502 for the rest (RFC 9110 §15.6).
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            SendError::ClientBody {
                too_large: true, ..
            } => S::PAYLOAD_TOO_LARGE,
            SendError::ClientBody {
                timed_out: true, ..
            } => S::REQUEST_TIMEOUT,
            SendError::ClientBody { .. } => S::BAD_REQUEST,
            SendError::Timeout(_) => S::GATEWAY_TIMEOUT,
            SendError::Connect(_) | SendError::Other(_) => S::BAD_GATEWAY,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "cannot connect: {e}"),
            SendError::Timeout(d) => write!(f, "no response within {d:?}"),
            SendError::ClientBody { message, .. } => f.write_str(message),
            SendError::Other(e) => write!(f, "{e}"),
        }
    }
}

/// Opens upstream connections from the proxy's address.
#[derive(Clone)]
pub struct Connector {
    bind: IpAddr,
    timeout: Duration,
    next_id: Arc<AtomicU64>,
}

/// What a connection tells the requests sent over it: its local address
/// and how many requests it has carried.
#[derive(Clone, Debug)]
pub struct ConnTag {
    pub id: u64,
    pub local: SocketAddr,
    pub uses: Arc<AtomicU32>,
}

impl ConnTag {
    /// Counts one more request on this connection and says so.
    pub fn describe_use(&self) -> String {
        let n = self.uses.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 {
            format!("new connection from {}", self.local)
        } else {
            format!(
                "kept-alive connection from {} (request {n} on it)",
                self.local
            )
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Tagged>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Tagged>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let addr: SocketAddr = uri
                .authority()
                .and_then(|a| a.as_str().parse().ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("not an address: {uri}"),
                    )
                })?;
            let sock = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }?;
            bind_address_no_port(&sock);
            sock.bind(SocketAddr::new(this.bind, 0))?;
            let tcp = tokio::time::timeout(this.timeout, sock.connect(addr))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{addr}: connect timed out after {:?}", this.timeout),
                    )
                })?
                .map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?;
            tcp.set_nodelay(true)?;
            let tag = ConnTag {
                id: this.next_id.fetch_add(1, Ordering::Relaxed),
                local: tcp.local_addr()?,
                uses: Arc::new(AtomicU32::new(0)),
            };
            Ok(TokioIo::new(Tagged { tcp, tag }))
        })
    }
}

/// Asks the kernel to choose the local port at connect time (Linux
/// `IP_BIND_ADDRESS_NO_PORT`); without it, binding an address with port 0
/// searches for a port unused by any destination. Best effort: on failure
/// the bind still works, only slower.
fn bind_address_no_port(sock: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// An upstream connection with its tag.
pub struct Tagged {
    tcp: TcpStream,
    tag: ConnTag,
}

impl Connection for Tagged {
    fn connected(&self) -> Connected {
        Connected::new().extra(self.tag.clone())
    }
}

impl AsyncRead for Tagged {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tagged {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
