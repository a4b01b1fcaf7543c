//! A running server: the tasks that serve, how to stop them gently, and how
//! to notice that one died.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::gauge::Gauge;

/// Why a server's task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The task returned (its listener failed for good, or it was stopped).
    Returned,
    /// The task panicked; the message is the panic's payload when it is text.
    Panicked(String),
    /// The task was aborted from outside.
    Cancelled,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Returned => write!(f, "its listener stopped"),
            Exit::Panicked(m) => write!(f, "panicked: {m}"),
            Exit::Cancelled => write!(f, "cancelled"),
        }
    }
}

/// A server that is up. Dropping it aborts its tasks at once; [`drain`]
/// stops it gently.
///
/// [`drain`]: ServerHandle::drain
#[derive(Debug)]
pub struct ServerHandle {
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    gauges: Vec<Gauge>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Reads a server's in-flight count (its open connections, for an HTTP
/// server) from anywhere.
#[derive(Clone, Debug, Default)]
pub struct InFlight(Vec<Gauge>);

impl InFlight {
    pub fn get(&self) -> u32 {
        self.0.iter().map(Gauge::in_use).sum()
    }
}

/// The receiving side of a server's stop signal, given to every task and
/// connection it runs.
#[derive(Clone, Debug)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Resolves once the server is told to stop (or its handle is gone).
    pub async fn stopped(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// The next connection on `listener`, or `None` once the server is told
/// to stop. A failing accept (out of descriptors, a transient error) backs
/// off briefly instead of spinning.
pub async fn accept(
    listener: &tokio::net::TcpListener,
    stop: &mut StopSignal,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => return Some(conn),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = stop.stopped() => return None,
        }
    }
}

/// A stop signal and its sender, made before the tasks that watch it.
pub fn stop_channel() -> (watch::Sender<bool>, StopSignal) {
    let (tx, rx) = watch::channel(false);
    (tx, StopSignal(rx))
}

impl ServerHandle {
    /// `gauges` count what is still in flight (connections, tasks).
    pub fn new(
        addr: SocketAddr,
        tasks: Vec<JoinHandle<()>>,
        stop: watch::Sender<bool>,
        gauges: Vec<Gauge>,
    ) -> ServerHandle {
        ServerHandle {
            addr,
            tasks,
            stop,
            gauges,
        }
    }

    /// Closes the listeners; connections finish what they started (an idle
    /// HTTP/1.1 connection is closed, HTTP/2 gets GOAWAY).
    pub fn stop_accepting(&self) {
        self.stop.send_replace(true);
    }

    /// A receiver of this server's stop signal, for work that outlives a
    /// request (an upgraded connection) and should end when it stops.
    pub fn stop_signal(&self) -> StopSignal {
        StopSignal(self.stop.subscribe())
    }

    /// How many connections or tasks are in flight, summed over the gauges.
    pub fn in_flight(&self) -> u32 {
        self.gauges.iter().map(Gauge::in_use).sum()
    }

    /// A reader of [`Self::in_flight`] that outlives a move of the handle
    /// (a status page publishes it).
    pub fn in_flight_reader(&self) -> InFlight {
        InFlight(self.gauges.clone())
    }

    /// Stops accepting, waits up to `grace` for in-flight work, then aborts
    /// what is left. True when everything finished in time.
    pub async fn drain(self, grace: Duration) -> bool {
        self.stop_accepting();
        let deadline = tokio::time::Instant::now() + grace;
        let mut all = true;
        for g in &self.gauges {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            all &= g.wait_empty(left).await;
        }
        all
    }

    /// Resolves when any of the server's tasks ends, and says why. A server
    /// that is serving never ends by itself, so a supervisor awaits this.
    pub async fn ended(&mut self) -> Exit {
        if self.tasks.is_empty() {
            return std::future::pending().await;
        }
        let result = poll_fn(|cx| {
            for t in self.tasks.iter_mut() {
                if let Poll::Ready(r) = Pin::new(t).poll(cx) {
                    return Poll::Ready(r);
                }
            }
            Poll::Pending
        })
        .await;
        match result {
            Ok(()) => Exit::Returned,
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                Exit::Panicked(msg)
            }
            Err(_) => Exit::Cancelled,
        }
    }

    /// Adds a task to watch: it ends the server when it ends. The fault
    /// hooks of tests use it to make a role fail from the inside.
    pub fn watch_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_reported_with_its_message() {
        let (tx, _rx) = stop_channel();
        let t = tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            panic!("listener exploded");
        });
        let mut h = ServerHandle::new("127.0.0.1:1".parse().unwrap(), vec![t], tx, vec![]);
        assert_eq!(h.ended().await, Exit::Panicked("listener exploded".into()));
    }

    #[tokio::test]
    async fn drain_waits_for_in_flight_work_and_gives_up_after_the_grace() {
        let (tx, mut rx) = stop_channel();
        let g = Gauge::new(4);
        let slot = g.try_enter().unwrap();
        let worker = tokio::spawn(async move {
            rx.stopped().await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(slot);
        });
        let h = ServerHandle::new("127.0.0.1:1".parse().unwrap(), vec![], tx, vec![g.clone()]);
        assert!(h.drain(Duration::from_secs(5)).await, "the worker finished");
        worker.await.unwrap();

        let (tx, _rx) = stop_channel();
        let _stuck = g.try_enter().unwrap();
        let h = ServerHandle::new("127.0.0.1:1".parse().unwrap(), vec![], tx, vec![g]);
        assert!(!h.drain(Duration::from_millis(30)).await);
    }
}
