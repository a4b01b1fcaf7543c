//! A stream that tells a watcher how many bytes each read and write moved:
//! the one wrapper behind a connection's watchdog (when did bytes last
//! move) and a tunnel's byte counts.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Hears of bytes moved; called only when some did.
pub trait Watch {
    fn read(&mut self, n: usize);
    fn wrote(&mut self, n: usize);
    /// Whether a shutdown asked of the stream goes through (`false` keeps
    /// the stream open for another user, e.g. a parked connection).
    fn shut_down(&self) -> bool {
        true
    }
}

/// `io` with `watch` told of every read and write that moved bytes.
pub struct Watched<T, W> {
    pub io: T,
    pub watch: W,
}

impl<T, W> Watched<T, W> {
    pub fn new(io: T, watch: W) -> Self {
        Watched { io, watch }
    }
}

impl<T: AsyncRead + Unpin, W: Watch + Unpin> AsyncRead for Watched<T, W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.watch.read(n);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin, W: Watch + Unpin> AsyncWrite for Watched<T, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.watch.wrote(n);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.watch.wrote(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.watch.shut_down() {
            return Pin::new(&mut self.io).poll_flush(cx);
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
