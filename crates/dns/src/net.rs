//! DNS over real sockets: a server loop for UDP and TCP (RFC 1035 §4.2) that
//! calls a handler, and the client side of one exchange with TCP fallback.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use weblab_server::handle::{StopSignal, accept, stop_channel};
use weblab_server::{Gauge, ServerHandle};

use crate::cookie::Cookies;
use crate::error::DnsError;
use crate::message::{EDNS_PAYLOAD, Transport};

/// Who sent a query and where it arrived.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub transport: Transport,
}

/// Something that answers DNS queries.
pub trait Handler: Send + Sync + 'static {
    /// A recursive server (a resolver) sets RA in every reply, the
    /// refusals this module answers itself included.
    const RECURSIVE: bool = false;

    /// Returns the reply bytes, or `None` to stay silent.
    fn handle(
        self: Arc<Self>,
        query: Vec<u8>,
        peer: Peer,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send;

    /// Answers at once, on the receiving task, when nothing needs waiting
    /// for (an authoritative answer, a cache hit): `Some(reply)`, where
    /// `reply` is as [`Handler::handle`]'s. `None` sends the query to
    /// `handle` on a task of its own, as if this had never been called (so
    /// it must record nothing then). Saves a task and a copy per query.
    fn answer_now(&self, _query: &[u8], _peer: Peer) -> Option<Option<Vec<u8>>> {
        None
    }
}

/// A running DNS server (UDP and TCP on one address).
pub type DnsServer = ServerHandle;

/// The bounds of one DNS server.
#[derive(Clone, Copy, Debug)]
pub struct DnsLimits {
    /// UDP queries worked on at once; beyond this a query is answered
    /// REFUSED at once (a resolver's queries may wait on upstreams).
    pub max_udp_in_flight: u32,
    /// TCP connections at once; more are closed at accept.
    pub max_tcp_connections: u32,
    /// How long a TCP client may stay idle between queries (RFC 7766
    /// §6.2.3 suggests seconds, not minutes).
    pub tcp_idle: Duration,
    /// How long a started TCP message (after its first byte) may take to
    /// arrive completely, and an answer to be written.
    pub tcp_message: Duration,
}

impl Default for DnsLimits {
    fn default() -> Self {
        DnsLimits {
            max_udp_in_flight: 1024,
            max_tcp_connections: 256,
            tcp_idle: Duration::from_secs(10),
            tcp_message: Duration::from_secs(5),
        }
    }
}

/// Room for this many bytes of queries waiting to be read: about 800
/// queries, 8 ms at 100 000 q/s. The default (~200 KB, ~170 queries) lost
/// a few queries of dnsperf's opening burst; the kernel caps the request
/// at `net.core.rmem_max`.
const UDP_RECEIVE_BUFFER: usize = 1 << 20;

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // A smaller buffer than asked for is still a working server.
    let _ = sock.set_recv_buffer_size(UDP_RECEIVE_BUFFER);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

/// Binds UDP and TCP on `addr` and serves with `handler`.
pub async fn serve<H: Handler>(
    addr: SocketAddr,
    handler: Arc<H>,
    limits: DnsLimits,
) -> std::io::Result<DnsServer> {
    let udp = Arc::new(bind_udp(addr)?);
    let addr = udp.local_addr()?;
    let tcp = TcpListener::bind(addr).await?;
    let (stop_tx, stop) = stop_channel();
    let udp_work = Gauge::new(limits.max_udp_in_flight);
    let tcp_conns = Gauge::new(limits.max_tcp_connections);
    let gauges = vec![udp_work.clone(), tcp_conns.clone()];
    // One secret per server for its DNS Cookies (RFC 7873, RFC 9018).
    let cookies = Arc::new(Cookies::default());
    let udp_task = tokio::spawn(udp_loop(
        udp,
        addr,
        handler.clone(),
        udp_work,
        stop.clone(),
        cookies.clone(),
    ));
    let tcp_task = tokio::spawn(async move {
        let mut stopping = stop.clone();
        while let Some((stream, remote)) = accept(&tcp, &mut stopping).await {
            let Some(slot) = tcp_conns.try_enter() else {
                continue; // over the cap: closed at once
            };
            let peer = Peer {
                remote,
                local: addr,
                transport: Transport::Tcp,
            };
            let (handler, stop, cookies) = (handler.clone(), stop.clone(), cookies.clone());
            tokio::spawn(async move {
                let _slot = slot;
                serve_tcp(stream, peer, handler, limits, stop, cookies).await;
            });
        }
    });
    Ok(ServerHandle::new(
        addr,
        vec![udp_task, tcp_task],
        stop_tx,
        gauges,
    ))
}

/// Reads queries in batches (recvmmsg), answers what can be answered at
/// once and sends those answers in one batch (sendmmsg); the rest go to
/// tasks of their own.
async fn udp_loop<H: Handler>(
    udp: Arc<UdpSocket>,
    addr: SocketAddr,
    handler: Arc<H>,
    udp_work: Gauge,
    mut stop: StopSignal,
    cookies: Arc<Cookies>,
) {
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;
    let fd = udp.as_raw_fd();
    let mut inbox = crate::batch::Inbox::default();
    let mut replies: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(crate::batch::BATCH);
    loop {
        tokio::select! {
            r = udp.readable() => if r.is_err() { return },
            _ = stop.stopped() => return,
        }
        // A short batch means the queue was empty when the kernel looked:
        // told as WouldBlock, tokio clears its readiness (unless another
        // datagram came since), which saves the call that would only
        // have found nothing.
        let received = match udp.try_io(Interest::READABLE, || {
            let n = inbox.receive(fd)?;
            if n < crate::batch::BATCH {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(inbox.len()),
            r => r,
        };
        let Ok(n) = received else {
            // Out of memory or a transient error: back off briefly rather
            // than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        for i in 0..n {
            let d = inbox.get(i);
            let Some(remote) = d.from else { continue };
            let peer = Peer {
                remote,
                local: addr,
                transport: Transport::Udp,
            };
            if let Some(reply) = handler.answer_now(d.bytes, peer) {
                if let Some(mut reply) = reply {
                    cookies.stamp(d.bytes, &mut reply, remote.ip(), true);
                    replies.push((reply, remote));
                }
                continue;
            }
            let Some(slot) = udp_work.try_enter() else {
                if let Some(reply) = crate::message::refused(d.bytes, H::RECURSIVE) {
                    replies.push((reply, remote));
                }
                continue;
            };
            let query = d.bytes.to_vec();
            let (udp, handler, cookies) = (udp.clone(), handler.clone(), cookies.clone());
            tokio::spawn(async move {
                let _slot = slot;
                // (The query is moved into the handler; a copy of the
                // little the cookie needs is kept.)
                let asked = crate::cookie::read(&query);
                if let Some(mut reply) = handler.handle(query, peer).await {
                    cookies.stamp_asked(asked, &mut reply, remote.ip(), true);
                    let _ = udp.send_to(&reply, remote).await;
                }
            });
        }
        if !replies.is_empty() {
            let sent = udp
                .try_io(Interest::WRITABLE, || crate::batch::send(fd, &replies))
                .unwrap_or(0);
            for (reply, remote) in replies.drain(..).skip(sent) {
                send_now(&udp, reply, remote);
            }
        }
    }
}

/// Sends a datagram without waiting; when the socket's buffer is full,
/// the send waits on a task of its own.
fn send_now(udp: &Arc<UdpSocket>, reply: Vec<u8>, remote: SocketAddr) {
    match udp.try_send_to(&reply, remote) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let udp = udp.clone();
            tokio::spawn(async move {
                let _ = udp.send_to(&reply, remote).await;
            });
        }
        _ => {}
    }
}

/// One DNS-over-TCP connection: several queries may come over it
/// (RFC 7766 §6.2.1), each a two-byte length and the message. A client
/// that goes quiet, or sends part of a message and stops, is cut off.
async fn serve_tcp<H: Handler>(
    mut stream: TcpStream,
    peer: Peer,
    handler: Arc<H>,
    limits: DnsLimits,
    mut stop: StopSignal,
    cookies: Arc<Cookies>,
) {
    loop {
        let first = tokio::select! {
            r = tokio::time::timeout(limits.tcp_idle, stream.read_u8()) => r,
            // Stopping: answer nothing more on this connection.
            _ = stop.stopped() => return,
        };
        let Ok(Ok(hi)) = first else {
            return;
        };
        let rest = async {
            let lo = stream.read_u8().await?;
            let mut query = vec![0u8; usize::from(u16::from_be_bytes([hi, lo]))];
            stream.read_exact(&mut query).await?;
            Ok::<_, std::io::Error>(query)
        };
        let Ok(Ok(query)) = tokio::time::timeout(limits.tcp_message, rest).await else {
            return;
        };
        let asked = crate::cookie::read(&query);
        let reply = match handler.answer_now(&query, peer) {
            Some(reply) => reply,
            None => handler.clone().handle(query, peer).await,
        };
        let Some(mut reply) = reply else {
            return;
        };
        cookies.stamp_asked(asked, &mut reply, peer.remote.ip(), false);
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        // A client that stops reading its answers must not hold the
        // connection slot forever: the answer goes out in time or the
        // connection closes.
        let sent = tokio::time::timeout(limits.tcp_message, stream.write_all(&framed)).await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
    }
}

/// A query message for `name`/`qtype` with a random id, EDNS on.
pub fn build_query(name: &Name, qtype: RecordType, recursion_desired: bool) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.metadata.recursion_desired = recursion_desired;
    m.add_query(Query::query(name.clone(), qtype));
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    m.set_edns(edns);
    m
}

/// The result of one query sent over one transport.
pub struct Exchange {
    pub response: Message,
    /// Our side of the socket, for correlating with the server's record.
    pub local: SocketAddr,
}

fn check_reply(query: &Message, bytes: &[u8]) -> Result<Message, DnsError> {
    let m = Message::from_vec(bytes).map_err(|e| DnsError::malformed(e.to_string()))?;
    // RFC 5452 §9.1: accept only a reply whose id and question match ours.
    if m.metadata.id != query.metadata.id || m.queries != query.queries {
        return Err(DnsError::malformed("reply does not match the query"));
    }
    Ok(m)
}

/// Sends `query` to `server` over UDP from `bind` (port chosen by the kernel).
pub async fn exchange_udp(
    bind: IpAddr,
    server: SocketAddr,
    query: &Message,
    timeout: Duration,
) -> Result<Exchange, DnsError> {
    let sock = UdpSocket::bind(SocketAddr::new(bind, 0)).await?;
    sock.connect(server).await?;
    let local = sock.local_addr()?;
    let bytes = query
        .to_vec()
        .map_err(|e| DnsError::malformed(e.to_string()))?;
    sock.send(&bytes).await?;
    let mut buf = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return Err(DnsError::timeout(server)),
            Ok(r) => r?,
        };
        // A stray or spoofed datagram is ignored; keep waiting for ours.
        if let Ok(response) = check_reply(query, &buf[..n]) {
            return Ok(Exchange { response, local });
        }
    }
}

/// Sends `query` to `server` over TCP from `bind`.
pub async fn exchange_tcp(
    bind: IpAddr,
    server: SocketAddr,
    query: &Message,
    timeout: Duration,
) -> Result<Exchange, DnsError> {
    let work = async {
        let sock = if bind.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        sock.bind(SocketAddr::new(bind, 0))?;
        let mut stream = sock.connect(server).await?;
        let local = stream.local_addr()?;
        let bytes = query
            .to_vec()
            .map_err(|e| DnsError::malformed(e.to_string()))?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        Ok::<_, DnsError>(Exchange {
            response: check_reply(query, &buf)?,
            local,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| DnsError::timeout(server))?
}
