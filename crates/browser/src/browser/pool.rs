//! The connection pool: at most six HTTP/1.1 connections per origin
//! (a request beyond waits, the `blocked` stage), one shared HTTP/2 or
//! pipelined HTTP/1.1 connection.

use super::*;

pub(super) enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
    /// HTTP/1.1 with pipelining (`--pipeline`): shared like HTTP/2.
    Pipe(crate::pipe::Pipe),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
            Sender::Pipe(p) => p.is_closed(),
        }
    }

    /// A handle on the same connection when it can carry more than one
    /// request at a time (HTTP/2 streams, a pipeline).
    fn shared(&self) -> Option<Sender> {
        match self {
            Sender::H1(_) => None,
            Sender::H2(s) => Some(Sender::H2(s.clone())),
            Sender::Pipe(p) => Some(Sender::Pipe(p.clone())),
        }
    }
}

/// An open connection.
pub(super) struct Conn {
    pub(super) sender: Sender,
    pub(super) remote: SocketAddr,
    pub(super) fd: RawFd,
    pub(super) times: Arc<IoTimes>,
    /// Its place among the origin's open connections (none on the
    /// shared copies of an HTTP/2 connection); held for its drop.
    pub(super) _slot: Option<Slot>,
}

/// Open connections per origin at most, as Chrome and Firefox allow for
/// HTTP/1.1; a request beyond waits (`blocked`) for one to come free.
pub const CONNECTIONS_PER_ORIGIN: usize = 6;

/// The connection places of one origin, and a wake-up for requests
/// waiting for one (a place freed, or a connection back in the pool).
pub(super) struct Places {
    sem: Arc<tokio::sync::Semaphore>,
    freed: Arc<tokio::sync::Notify>,
}

impl Default for Places {
    fn default() -> Self {
        Places {
            sem: Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_PER_ORIGIN)),
            freed: Arc::default(),
        }
    }
}

/// One place, given back (and waiters woken) when its connection goes.
pub(super) struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    freed: Arc<tokio::sync::Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.freed.notify_waiters();
    }
}

impl Conn {
    pub(super) fn version(&self) -> &'static str {
        match self.sender {
            Sender::H1(_) | Sender::Pipe(_) => "HTTP/1.1",
            Sender::H2(_) => "HTTP/2",
        }
    }
}

pub(super) type Origin = (String, String, u16);

impl Browser {
    /// Records the kernel's TCP_INFO for every open connection.
    pub fn report_connections(&self, ctx: Ctx) {
        let pool = lock(&self.pool);
        for conn in pool.values().flatten() {
            if let Some(info) = tcp_info(conn.fd) {
                let t = now_ns();
                self.rec.span(
                    ctx,
                    Layer::Transport,
                    (t, t),
                    None,
                    tcp_info_event(conn.remote, &info, false),
                );
            }
        }
    }

    /// A pooled connection for `origin`, or the place to open a new one
    /// (`Err`): with all of the origin's places taken, waits for one to
    /// come free or a connection to come back, and says so in the trace.
    pub(super) async fn checkout(
        &self,
        ctx: Ctx,
        n: u32,
        origin: &Origin,
    ) -> Result<Conn, Option<Slot>> {
        let (sem, freed) = {
            let mut places = lock(&self.places);
            let p = places.entry(origin.clone()).or_default();
            let sem = p.sem.clone();
            (sem, p.freed.clone())
        };
        let started = now_ns();
        let mut waited = false;
        loop {
            let notified = freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let found = match self.take(origin) {
                Some(c) => Ok(c),
                None => match sem.clone().try_acquire_owned() {
                    Ok(permit) => Err(Some(Slot {
                        _permit: permit,
                        freed: freed.clone(),
                    })),
                    Err(_) => {
                        waited = true;
                        notified.await;
                        continue;
                    }
                },
            };
            if waited {
                let text = format!(
                    "waited {:.3} ms for a connection: {CONNECTIONS_PER_ORIGIN} already open to {}://{}:{} (the browser's limit per origin for HTTP/1.1)",
                    now_ns().saturating_sub(started) as f64 / 1e6,
                    origin.0,
                    origin.1,
                    origin.2
                );
                self.rec.span(
                    ctx,
                    Layer::Application,
                    (started, now_ns()),
                    Some(n),
                    Event::Note { text },
                );
            }
            return found;
        }
    }

    pub(super) fn take(&self, origin: &Origin) -> Option<Conn> {
        let mut pool = lock(&self.pool);
        let conns = pool.get_mut(origin)?;
        conns.retain(|c| !c.sender.is_closed());
        // HTTP/2 or a pipeline: share the connection; HTTP/1.1: take it.
        if let Some((c, sender)) = conns.iter().find_map(|c| Some((c, c.sender.shared()?))) {
            return Some(Conn {
                sender,
                remote: c.remote,
                fd: c.fd,
                times: c.times.clone(),
                _slot: None,
            });
        }
        let idx = conns.iter().position(|c| match &c.sender {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(_) | Sender::Pipe(_) => false,
        })?;
        Some(conns.swap_remove(idx))
    }

    pub(super) fn put(&self, origin: Origin, conn: Conn) {
        // Whoever waits for a connection to this origin may take this one.
        if let Some(p) = lock(&self.places).get(&origin) {
            p.freed.notify_waiters();
        }
        let mut pool = lock(&self.pool);
        let conns = pool.entry(origin).or_default();
        // One entry per shared connection is enough.
        if conn.sender.shared().is_some() && conns.iter().any(|c| c.fd == conn.fd) {
            return;
        }
        conns.push(conn);
    }
}
