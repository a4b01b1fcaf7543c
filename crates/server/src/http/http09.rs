//! HTTP/0.9 (C23), for a listener that asks for it: the request is one
//! line, `GET /path`, with no version, no headers and no body; the answer
//! is the body alone, and closing the connection ends it. hyper speaks
//! HTTP/1.0 and later only, so a plain listener with `http09` on reads the
//! first line itself: a two-word `GET` line is answered here, anything
//! else is handed to hyper with the bytes already read put back in front.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::{ConnInfo, Handler, Limits, RequestBody};

/// What the first bytes of a connection turned out to be.
pub(crate) enum Sniffed {
    /// `GET /path` and a line end: the path.
    Http09(String),
    /// Anything else; these bytes were read and must be replayed.
    Other(Bytes),
    /// The client closed or said nothing in time.
    Gone,
}

/// Longest first line looked at; longer lines go to hyper (which refuses
/// them as it should).
const MAX_LINE: usize = 8 * 1024;

/// The request target of an HTTP/0.9 request line, if `line` is one
/// (RFC 1945 §4.1: `Simple-Request = "GET" SP Request-URI CRLF`).
pub fn simple_request(line: &[u8]) -> Option<String> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split(' ');
    let (method, target) = (words.next()?, words.next()?);
    if method != "GET" || words.next().is_some() || !target.starts_with('/') {
        return None;
    }
    if target.bytes().any(|b| b.is_ascii_control()) {
        return None;
    }
    Some(target.to_string())
}

/// Reads until the first line end (or `MAX_LINE`, or until the line can
/// no longer be a simple request), within `within`.
pub(crate) async fn sniff(
    tcp: &mut TcpStream,
    within: Duration,
    stop: &mut crate::handle::StopSignal,
) -> Sniffed {
    // A connection that has sent nothing yet is idle: a stopping server
    // closes it rather than wait out the head timeout.
    let mut one = [0u8; 1];
    tokio::select! {
        _ = tcp.peek(&mut one) => {}
        _ = stop.stopped() => return Sniffed::Gone,
        _ = tokio::time::sleep(within) => return Sniffed::Gone,
    }
    // Boxed: the read's buffers take room only once there is something
    // to read, not in every idle connection's task.
    Box::pin(first_line(tcp, within)).await
}

/// Reads until the first line settles what the request is.
async fn first_line(tcp: &mut TcpStream, within: Duration) -> Sniffed {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            let mut chunk = [0u8; 2048];
            let n = tcp.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<bool, io::Error>(false);
            }
            buf.extend_from_slice(&chunk[..n]);
            // A version after the target ("GET / HTTP/1.1") or a line end
            // settles it; so does anything that is not "GET ".
            let decided = buf.contains(&b'\n')
                || buf.len() >= MAX_LINE
                || (buf.len() >= 4 && !buf.starts_with(b"GET "))
                || buf.iter().filter(|b| **b == b' ').count() >= 2;
            if decided {
                return Ok(true);
            }
        }
    };
    match tokio::time::timeout(within, read).await {
        Ok(Ok(true)) => {}
        _ if !buf.is_empty() => return Sniffed::Other(Bytes::from(buf)),
        _ => return Sniffed::Gone,
    }
    let end = buf.iter().position(|b| *b == b'\n').map(|i| i + 1);
    match end.and_then(|e| simple_request(&buf[..e])) {
        Some(path) => Sniffed::Http09(path),
        None => Sniffed::Other(Bytes::from(buf)),
    }
}

/// Answers one HTTP/0.9 request: the handler's body, then close.
pub(crate) async fn answer<H: Handler>(
    mut tcp: TcpStream,
    path: String,
    conn: ConnInfo,
    limits: Limits,
    handler: Arc<H>,
) {
    let Ok(uri) = path.parse::<http::Uri>() else {
        return;
    };
    let mut req = Request::new(RequestBody::empty());
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_09;
    let resp = handler.call(req, conn).await;
    let mut body = resp.into_body();
    let _ = tokio::time::timeout(limits.stall_timeout, async {
        loop {
            // The frame's error type need not be Send: take the data out
            // before the next await.
            let data = match body.frame().await {
                Some(Ok(frame)) => frame.into_data().ok(),
                _ => break,
            };
            if let Some(data) = data {
                tcp.write_all(&data).await?;
            }
        }
        tcp.shutdown().await
    })
    .await;
}

/// A stream with bytes already read put back in front of it.
pub(crate) struct Prefixed<T> {
    prefix: Bytes,
    io: T,
}

impl<T> Prefixed<T> {
    pub(crate) fn new(prefix: Bytes, io: T) -> Self {
        Prefixed { prefix, io }
    }

    /// Bytes already taken from the stream, to be read again first.
    pub(crate) fn prefix(&self) -> &Bytes {
        &self.prefix
    }

    pub(crate) fn set_prefix(&mut self, prefix: Bytes) {
        self.prefix = prefix;
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            if self.prefix.is_empty() {
                // Let go of the sniffing buffer for the connection's life.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_two_word_get_line_is_a_simple_request() {
        assert_eq!(
            simple_request(b"GET /index.html\r\n").as_deref(),
            Some("/index.html")
        );
        assert_eq!(simple_request(b"GET /a?b=1\n").as_deref(), Some("/a?b=1"));
        for not in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"GET / HTTP/1.0\r\n",
            b"POST /x\r\n",
            b"GET x\r\n",
            b"GET /\x01\r\n",
            b"GET /",
            b"PRI * HTTP/2.0\r\n",
        ] {
            assert_eq!(simple_request(not), None, "{not:?}");
        }
    }
}
