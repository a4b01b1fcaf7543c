//! DNS over real sockets: a server loop for UDP and TCP (RFC 1035 §4.2) that
//! calls a handler, and the client side of one exchange with TCP fallback.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::task::JoinHandle;

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
    /// Returns the reply bytes, or `None` to stay silent.
    fn handle(
        self: Arc<Self>,
        query: Vec<u8>,
        peer: Peer,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send;
}

/// A running DNS server; its tasks stop when this is dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// How long a TCP client may stay idle between queries (RFC 7766 §6.2.3
/// suggests seconds, not minutes).
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Binds UDP and TCP on `addr` and serves with `handler`.
pub async fn serve<H: Handler>(addr: SocketAddr, handler: Arc<H>) -> std::io::Result<DnsServer> {
    let udp = Arc::new(UdpSocket::bind(addr).await?);
    let addr = udp.local_addr()?;
    let tcp = TcpListener::bind(addr).await?;
    let udp_task = {
        let handler = handler.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            loop {
                let Ok((n, remote)) = udp.recv_from(&mut buf).await else {
                    // Out of descriptors or a transient error: back off
                    // briefly rather than spin.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let query = buf[..n].to_vec();
                let (udp, handler) = (udp.clone(), handler.clone());
                tokio::spawn(async move {
                    let peer = Peer {
                        remote,
                        local: addr,
                        transport: Transport::Udp,
                    };
                    if let Some(reply) = handler.handle(query, peer).await {
                        let _ = udp.send_to(&reply, remote).await;
                    }
                });
            }
        })
    };
    let tcp_task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, remote)) = tcp.accept().await else {
                // Out of descriptors or a transient error: back off
                // briefly rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let peer = Peer {
                    remote,
                    local: addr,
                    transport: Transport::Tcp,
                };
                // Several queries may come over one connection (RFC 7766 §6.2.1).
                loop {
                    let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await
                    else {
                        return;
                    };
                    let mut query = vec![0u8; usize::from(len)];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    let Some(reply) = handler.clone().handle(query, peer).await else {
                        return;
                    };
                    let Ok(len) = u16::try_from(reply.len()) else {
                        return;
                    };
                    let mut framed = len.to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    if stream.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(DnsServer {
        addr,
        tasks: vec![udp_task, tcp_task],
    })
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
