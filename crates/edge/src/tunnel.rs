//! Upgraded connections (WebSocket, C29): after the backend answers
//! `101 Switching Protocols`, both sides leave HTTP and the proxy relays
//! bytes until one side closes or nothing moves for the idle timeout.
//! The relay counts against the backend (least-connections sees it) and
//! against the pool's tunnel limit, and ends as one `Tunnel` span. It
//! also counts as a connection of the server the client came through,
//! so a stopping server drains it like any other (up to its grace).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use weblab_server::watched::{Watch, Watched};
use weblab_trace::{Ctx, Event, Layer, Recorder};

use crate::backend::{Backend, InFlight};

/// Time for both sides to finish switching protocols.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One upgraded connection to relay.
pub(crate) struct Tunnel {
    /// The pool's count of open tunnels.
    pub tunnels: Arc<AtomicU32>,
    pub idle: Duration,
    pub backend: Arc<Backend>,
    pub in_flight: InFlight,
    pub client: OnUpgrade,
    pub upstream: OnUpgrade,
    pub rec: Recorder,
    pub ctx: Ctx,
    pub protocol: String,
    /// The client's server: the relay holds a place in its connection
    /// count, so that stopping the server waits for it (up to its grace).
    pub keep: Option<weblab_server::Keep>,
}

/// Relays one upgraded connection in the background.
pub(crate) fn spawn(t: Tunnel) {
    let Tunnel {
        tunnels,
        idle,
        backend,
        in_flight,
        client,
        upstream,
        rec,
        ctx,
        protocol,
        keep,
    } = t;
    tunnels.fetch_add(1, Ordering::Relaxed);
    let held = keep.as_ref().and_then(weblab_server::Keep::hold);
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let _held = held;
        let span = rec.begin(ctx, Layer::Application);
        let switched =
            tokio::time::timeout(SWITCH_TIMEOUT, async { tokio::join!(client, upstream) }).await;
        let (up, down, ended) = match switched {
            Err(_) => (0, 0, "the protocol switch did not finish".to_string()),
            Ok((Err(e), _)) => (0, 0, format!("client side did not switch: {e}")),
            Ok((_, Err(e))) => (0, 0, format!("backend side did not switch: {e}")),
            Ok((Ok(c), Ok(u))) => relay(TokioIo::new(c), TokioIo::new(u), idle).await,
        };
        tunnels.fetch_sub(1, Ordering::Relaxed);
        rec.end(
            span,
            Event::Tunnel {
                upstream: backend.label(),
                protocol,
                client_to_upstream: up,
                upstream_to_client: down,
                ended,
            },
        );
    });
}

/// Copies both ways until a side closes, an error, or `idle` without a
/// byte. Returns bytes client→upstream, upstream→client and how it ended.
async fn relay<C, U>(client: C, mut upstream: U, idle: Duration) -> (u64, u64, String)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut client = Watched::new(
        client,
        Counted {
            started,
            last_ms: Arc::new(AtomicU64::new(0)),
            read: 0,
            written: 0,
        },
    );
    let last = client.watch.last_ms.clone();
    let quiet = || {
        started
            .elapsed()
            .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)))
    };
    let ended = {
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::pin!(copy);
        let every = (idle / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
        loop {
            tokio::select! {
                r = &mut copy => break match r {
                    Ok(_) => "closed by one side, then the other".to_string(),
                    Err(e) => format!("ended with an error: {e}"),
                },
                _ = tokio::time::sleep(every) => {
                    if quiet() >= idle {
                        break format!("closed after {idle:?} without a byte");
                    }
                }
            }
        }
    };
    (client.watch.read, client.watch.written, ended)
}

/// The client side of a tunnel: bytes each way, and when they last moved.
struct Counted {
    started: Instant,
    last_ms: Arc<AtomicU64>,
    read: u64,
    written: u64,
}

impl Counted {
    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

impl Watch for Counted {
    fn read(&mut self, n: usize) {
        self.read += n as u64;
        self.touch();
    }
    fn wrote(&mut self, n: usize) {
        self.written += n as u64;
        self.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn relays_both_ways_counts_bytes_and_closes_when_idle() {
        let (client_far, client_near) = tokio::io::duplex(1024);
        let (up_near, up_far) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(client_near, up_near, Duration::from_millis(200)));
        let (mut c, mut u) = (client_far, up_far);
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        u.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        u.write_all(b"hi!").await.unwrap();
        let mut buf = [0u8; 3];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi!");
        // Nothing more: the idle rule ends it.
        let (up, down, ended) = relay.await.unwrap();
        assert_eq!((up, down), (5, 3));
        assert!(ended.contains("without a byte"), "{ended}");
    }
}
