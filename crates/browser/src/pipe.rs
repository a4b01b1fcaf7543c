//! HTTP/1.1 pipelining (C25, RFC 9112 §9.3.2): requests written one after
//! another on one connection without waiting, the answers read back in
//! the order the requests went out. A slow first answer holds up every
//! answer behind it (head-of-line blocking), which is what `--pipeline`
//! lets a person see in the waterfall.
//!
//! Written by hand because hyper's client never has more than one request
//! in flight on an HTTP/1.1 connection. The wire format is small: the
//! response head is parsed by `httparse`, the body framed by
//! [`Framing`] (Content-Length, chunked, or to the end of the
//! connection), which is pure so it is fuzzed apart from the sockets.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use weblab_trace::now_ns;

use crate::error::BrowserError;

/// The largest response head read (status line and header lines).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header lines in one response head.
const MAX_HEADERS: usize = 128;
/// The largest chunk-size line, trailer section or unread buffer kept.
const MAX_LINE: usize = 8 * 1024;
/// Requests written and not yet answered, at most.
pub const MAX_IN_FLIGHT: usize = 64;

/// A response head: status, version, header fields in order.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    fn get(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether the connection ends after this answer (RFC 9112 §9.3).
    pub fn closes(&self) -> bool {
        let has = |token: &str| {
            self.get("connection").any(|v| {
                v.split(|b| *b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
        };
        if self.minor == 0 {
            !has("keep-alive")
        } else {
            has("close")
        }
    }

    /// How the body that follows this head is delimited (RFC 9112 §6.3).
    pub fn framing(&self, head_request: bool) -> Result<Framing, String> {
        if head_request || (100..200).contains(&self.status) || matches!(self.status, 204 | 304) {
            return Ok(Framing::Length(0));
        }
        let codings: Vec<&[u8]> = self
            .get("transfer-encoding")
            .flat_map(|v| v.split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(last) = codings.last() {
            // Chunked must come last; anything else runs to the close.
            return Ok(if last.eq_ignore_ascii_case(b"chunked") {
                Framing::Chunked(Chunk::Size)
            } else {
                Framing::ToClose
            });
        }
        let mut lengths = self
            .get("content-length")
            .flat_map(|v| v.split(|b| *b == b','));
        let Some(first) = lengths.next() else {
            return Ok(Framing::ToClose);
        };
        let parse = |v: &[u8]| -> Result<u64, String> {
            let t =
                std::str::from_utf8(v.trim_ascii()).map_err(|_| "Content-Length is not text")?;
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("Content-Length {t:?} is not a number"));
            }
            t.parse()
                .map_err(|_| format!("Content-Length {t} is too large"))
        };
        let n = parse(first)?;
        // Repeated values must agree (RFC 9110 §8.6).
        for other in lengths {
            if parse(other)? != n {
                return Err("two different Content-Length values".into());
            }
        }
        Ok(Framing::Length(n))
    }
}

/// Parses a response head at the front of `buf`: `Ok(None)` until it is
/// all there, then the head and how many bytes it took.
pub fn parse_head(buf: &[u8]) -> Result<Option<(usize, Head)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(used)) => Ok(Some((
            used,
            Head {
                status: resp.code.unwrap_or(0),
                minor: resp.version.unwrap_or(1),
                headers: resp
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect(),
            },
        ))),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            Err(format!("response head longer than {MAX_HEAD} bytes"))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("bad response head: {e}")),
    }
}

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// How much body is left, and how it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes left.
    Length(u64),
    Chunked(Chunk),
    /// Everything until the server closes the connection.
    ToClose,
    Done,
}

/// What [`Framing::take`] found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Data(Bytes),
    /// More bytes are needed.
    More,
    /// The body is complete.
    End,
}

impl Framing {
    /// Takes the next piece of body out of the front of `buf`. `closed`
    /// says the connection has ended (no more bytes will come).
    pub fn take(&mut self, buf: &mut BytesMut, closed: bool) -> Result<Piece, String> {
        loop {
            match *self {
                Framing::Done | Framing::Length(0) => {
                    *self = Framing::Done;
                    return Ok(Piece::End);
                }
                Framing::Length(left) => {
                    if buf.is_empty() {
                        return if closed {
                            Err(format!(
                                "connection closed {left} bytes before the body's end"
                            ))
                        } else {
                            Ok(Piece::More)
                        };
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    *self = Framing::Length(left - n as u64);
                    return Ok(Piece::Data(buf.split_to(n).freeze()));
                }
                Framing::ToClose => {
                    if !buf.is_empty() {
                        return Ok(Piece::Data(buf.split().freeze()));
                    }
                    if closed {
                        *self = Framing::Done;
                        return Ok(Piece::End);
                    }
                    return Ok(Piece::More);
                }
                Framing::Chunked(state) => {
                    let short = |what: &str| {
                        if closed {
                            Err(format!(
                                "connection closed inside the chunked body ({what})"
                            ))
                        } else {
                            Ok(Piece::More)
                        }
                    };
                    match state {
                        Chunk::Size => match httparse::parse_chunk_size(buf) {
                            Ok(httparse::Status::Complete((used, size))) => {
                                buf.advance(used);
                                *self = Framing::Chunked(if size == 0 {
                                    Chunk::Trailers
                                } else {
                                    Chunk::Data(size)
                                });
                            }
                            Ok(httparse::Status::Partial) if buf.len() > MAX_LINE => {
                                return Err("chunk-size line too long".into());
                            }
                            Ok(httparse::Status::Partial) => return short("a chunk size"),
                            Err(_) => return Err("bad chunk size".into()),
                        },
                        Chunk::Data(left) => {
                            if buf.is_empty() {
                                return short("a chunk's data");
                            }
                            let n = (buf.len() as u64).min(left) as usize;
                            *self = Framing::Chunked(if n as u64 == left {
                                Chunk::DataEnd
                            } else {
                                Chunk::Data(left - n as u64)
                            });
                            return Ok(Piece::Data(buf.split_to(n).freeze()));
                        }
                        Chunk::DataEnd => {
                            if buf.len() < 2 {
                                return short("the CRLF after a chunk");
                            }
                            if &buf[..2] != b"\r\n" {
                                return Err("chunk data not followed by CRLF".into());
                            }
                            buf.advance(2);
                            *self = Framing::Chunked(Chunk::Size);
                        }
                        Chunk::Trailers => {
                            let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                                if buf.len() > MAX_LINE {
                                    return Err("trailer line too long".into());
                                }
                                return short("the trailers");
                            };
                            // Trailer fields are read past, not kept.
                            buf.advance(end + 2);
                            if end == 0 {
                                *self = Framing::Done;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Any stream a pipelined connection runs on (TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// One request's answer, as the reader hands it over.
type Reply = Result<Response<PipeBody>, BrowserError>;

/// A request waiting for its answer, in the order written.
struct Waiter {
    head_request: bool,
    reply: oneshot::Sender<Reply>,
}

/// A pipelined HTTP/1.1 connection; clones share it.
#[derive(Clone)]
pub struct Pipe {
    writer: Arc<tokio::sync::Mutex<WriteHalf<Box<dyn Io>>>>,
    waiters: mpsc::Sender<Waiter>,
    closed: Arc<AtomicBool>,
    /// Requests written whose answers have not been read in full.
    unanswered: Arc<AtomicUsize>,
}

/// A request as it went out.
pub struct Written {
    /// The bytes of the request head, exactly as written.
    pub head: Vec<u8>,
    /// When the whole request (head and body) had been written.
    pub at_ns: u64,
    /// Earlier requests on the connection still unanswered when this one
    /// was written: its answer comes after theirs.
    pub behind: usize,
}

impl Pipe {
    /// Starts reading answers on `io`; requests go out with [`Pipe::send`].
    pub fn start(io: Box<dyn Io>) -> Pipe {
        let (read, write) = tokio::io::split(io);
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        let closed = Arc::new(AtomicBool::new(false));
        let unanswered = Arc::new(AtomicUsize::new(0));
        tokio::spawn(read_answers(read, rx, closed.clone(), unanswered.clone()));
        Pipe {
            writer: Arc::new(tokio::sync::Mutex::new(write)),
            waiters: tx,
            closed,
            unanswered,
        }
    }

    /// Whether the connection has ended (or was told to close).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.waiters.is_closed()
    }

    /// Writes `req` behind whatever is already in flight and returns once
    /// it is on the wire; the answer comes through the receiver, in turn.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<(Written, oneshot::Receiver<Reply>), BrowserError> {
        let head_request = req.method() == http::Method::HEAD;
        let (parts, body) = req.into_parts();
        let body = http_body_util::BodyExt::collect(body)
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let head = request_head(&parts, body.len());
        let (reply, answer) = oneshot::channel();
        let mut w = self.writer.lock().await;
        if self.is_closed() {
            return Err(BrowserError::http("the pipelined connection has closed"));
        }
        // Queued for the reader before the bytes go: answers come in
        // the order requests were written.
        let behind = self.unanswered.fetch_add(1, Ordering::Relaxed);
        self.waiters
            .send(Waiter {
                head_request,
                reply,
            })
            .await
            .map_err(|_| BrowserError::http("the pipelined connection has closed"))?;
        let wrote = async {
            w.write_all(&head).await?;
            w.write_all(&body).await?;
            w.flush().await
        };
        if let Err(e) = wrote.await {
            self.closed.store(true, Ordering::Relaxed);
            return Err(BrowserError::http(format!(
                "writing a pipelined request: {e}"
            )));
        }
        let at_ns = now_ns();
        drop(w);
        Ok((
            Written {
                head,
                at_ns,
                behind,
            },
            answer,
        ))
    }
}

/// The request head in HTTP/1.1 form, header names in the case browsers
/// send them (the same rule as hyper's `title_case_headers`).
fn request_head(parts: &http::request::Parts, body_len: usize) -> Vec<u8> {
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut out = format!("{} {target} HTTP/1.1\r\n", parts.method).into_bytes();
    for (name, value) in &parts.headers {
        title_case(name.as_str(), &mut out);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let needs_length =
        body_len > 0 || matches!(parts.method, http::Method::POST | http::Method::PUT);
    if needs_length && !parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        out.extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn title_case(name: &str, out: &mut Vec<u8>) {
    let mut upper = true;
    for b in name.bytes() {
        out.push(if upper { b.to_ascii_uppercase() } else { b });
        upper = b == b'-';
    }
}

/// Reads answers in order and hands each to the request waiting for it.
async fn read_answers(
    mut read: ReadHalf<Box<dyn Io>>,
    mut waiters: mpsc::Receiver<Waiter>,
    closed: Arc<AtomicBool>,
    unanswered: Arc<AtomicUsize>,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut eof = false;
    let failure = loop {
        let Some(w) = waiters.recv().await else {
            return; // every sender gone: nothing more will be asked
        };
        let outcome = read_one(&mut read, &mut buf, &mut eof, w).await;
        unanswered.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Ok(true) => {}
            Ok(false) => break "the server closed the connection after an answer".to_string(),
            Err(e) => break e,
        }
    };
    closed.store(true, Ordering::Relaxed);
    waiters.close();
    // Requests written after the one that ended the connection are
    // never answered on it.
    while let Some(w) = waiters.recv().await {
        let _ = w.reply.send(Err(BrowserError::http(format!(
            "pipelined request not answered: {failure}"
        ))));
    }
}

/// Reads one answer (skipping 1xx interim ones) for `w`; `Ok(false)` when
/// the connection ends with it.
async fn read_one(
    read: &mut ReadHalf<Box<dyn Io>>,
    buf: &mut BytesMut,
    eof: &mut bool,
    w: Waiter,
) -> Result<bool, String> {
    let head = loop {
        match parse_head(buf) {
            Ok(Some((used, head))) => {
                buf.advance(used);
                if (100..200).contains(&head.status) {
                    continue; // 100 Continue and the like: the answer follows
                }
                break head;
            }
            Ok(None) if !*eof => fill(read, buf, eof).await?,
            Ok(None) => {
                let e = "connection closed before the answer's head".to_string();
                let _ = w.reply.send(Err(BrowserError::http(&e)));
                return Err(e);
            }
            Err(e) => {
                let _ = w.reply.send(Err(BrowserError::http(&e)));
                return Err(e);
            }
        }
    };
    let mut framing = match head.framing(w.head_request) {
        Ok(f) => f,
        Err(e) => {
            let _ = w.reply.send(Err(BrowserError::http(&e)));
            return Err(e);
        }
    };
    let keep = !head.closes() && framing != Framing::ToClose;
    let (tx, rx) = mpsc::channel(16);
    let _ = w.reply.send(Ok(response(head, rx)));
    // The body is read in full even if nobody wants it: the next answer
    // starts after it.
    loop {
        match framing.take(buf, *eof) {
            Ok(Piece::Data(d)) => {
                let _ = tx.send(Ok(Frame::data(d))).await;
            }
            Ok(Piece::End) => return Ok(keep),
            Ok(Piece::More) => {
                if let Err(e) = fill(read, buf, eof).await {
                    let _ = tx.send(Err(BrowserError::http(&e))).await;
                    return Err(e);
                }
            }
            Err(e) => {
                let _ = tx.send(Err(BrowserError::http(&e))).await;
                return Err(e);
            }
        }
    }
}

/// Reads more bytes into `buf` (sets `eof` when the server has closed).
async fn fill(
    read: &mut ReadHalf<Box<dyn Io>>,
    buf: &mut BytesMut,
    eof: &mut bool,
) -> Result<(), String> {
    buf.reserve(16 * 1024);
    match read.read_buf(buf).await {
        Ok(0) => {
            *eof = true;
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!("reading an answer: {e}")),
    }
}

fn response(
    head: Head,
    rx: mpsc::Receiver<Result<Frame<Bytes>, BrowserError>>,
) -> Response<PipeBody> {
    let mut r = Response::new(PipeBody(rx));
    *r.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    *r.version_mut() = if head.minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut map = HeaderMap::with_capacity(head.headers.len());
    for (n, v) in head.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(&v),
        ) {
            map.append(n, v);
        }
    }
    *r.headers_mut() = map;
    r
}

/// A pipelined answer's body, as the reader takes it off the connection.
#[derive(Debug)]
pub struct PipeBody(mpsc::Receiver<Result<Frame<Bytes>, BrowserError>>);

impl Body for PipeBody {
    type Data = Bytes;
    type Error = BrowserError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BrowserError>>> {
        self.0.poll_recv(cx)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(head: &str, rest: &[u8], chunks: usize) -> Result<Vec<u8>, String> {
        let (_, h) = parse_head(head.as_bytes())?.ok_or("partial")?;
        let mut f = h.framing(false)?;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let step = rest.len().div_ceil(chunks.max(1)).max(1);
        let mut fed = 0;
        loop {
            match f.take(&mut buf, fed >= rest.len())? {
                Piece::Data(d) => out.extend_from_slice(&d),
                Piece::End => return Ok(out),
                Piece::More => {
                    let n = step.min(rest.len() - fed);
                    buf.extend_from_slice(&rest[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_come_out_whole_however_the_bytes_arrive() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        let wire = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\n";
        for pieces in [1, 3, 7, wire.len()] {
            assert_eq!(body_of(head, wire, pieces).unwrap(), b"hello world");
        }
        let err = body_of(head, b"5\r\nhelloXX0\r\n\r\n", 1).unwrap_err();
        assert!(err.contains("CRLF"), "{err}");
        let err = body_of(head, b"zz\r\n", 1).unwrap_err();
        assert!(err.contains("chunk size"), "{err}");
        let err = body_of(head, b"5\r\nhel", 1).unwrap_err();
        assert!(err.contains("closed inside"), "{err}");
    }

    #[test]
    fn lengths_are_checked_and_bodies_end_where_they_say() {
        let body = |h: &str, rest: &[u8]| body_of(h, rest, 2);
        assert_eq!(
            body("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", b"abc").unwrap(),
            b"abc"
        );
        let two = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert!(body(two, b"abcd").unwrap_err().contains("two different"));
        let same = "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n";
        assert_eq!(body(same, b"abc").unwrap(), b"abc");
        let bad = "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n";
        assert!(body(bad, b"").unwrap_err().contains("not a number"));
        let short = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
        assert!(body(short, b"abc").unwrap_err().contains("6 bytes before"));
        // No length: the body runs until the server closes.
        assert_eq!(
            body("HTTP/1.0 200 OK\r\n\r\n", b"to the end").unwrap(),
            b"to the end"
        );
        let (_, h) = parse_head(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing(false).unwrap(), Framing::Length(0));
        let (_, h) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing(true).unwrap(), Framing::Length(0));
    }

    #[test]
    fn connection_persistence_follows_the_version_and_the_connection_header() {
        let head = |t: &str| parse_head(t.as_bytes()).unwrap().unwrap().1;
        assert!(!head("HTTP/1.1 200 OK\r\n\r\n").closes());
        assert!(head("HTTP/1.1 200 OK\r\nConnection: foo, Close\r\n\r\n").closes());
        assert!(head("HTTP/1.0 200 OK\r\n\r\n").closes());
        assert!(!head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").closes());
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nX: y\r\n")
                .unwrap()
                .is_none()
        );
        assert!(parse_head(&[b'a'; 10]).is_err());
    }

    #[test]
    fn request_heads_carry_browser_case_and_a_length_for_bodies() {
        let req = Request::post("/api/x?y=1")
            .header("host", "myapp.test")
            .header("traceparent", "00-ab")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let text = String::from_utf8(request_head(&parts, 4)).unwrap();
        assert_eq!(
            text,
            "POST /api/x?y=1 HTTP/1.1\r\nHost: myapp.test\r\nTraceparent: 00-ab\r\nContent-Length: 4\r\n\r\n"
        );
    }

    /// Two requests written before either answer comes back; the answers
    /// are taken in order, the second waiting behind the first.
    #[tokio::test]
    async fn answers_come_back_in_the_order_requests_went_out() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let pipe = Pipe::start(Box::new(client));
        let get = |p: &str| Request::get(p).body(Full::new(Bytes::new())).unwrap();
        let (w1, first) = pipe.send(get("/slow")).await.unwrap();
        let (w2, second) = pipe.send(get("/fast")).await.unwrap();
        assert_eq!((w1.behind, w2.behind), (0, 1));
        // Both requests are on the wire before any answer.
        let mut seen = Vec::new();
        while seen.windows(4).filter(|w| *w == b"\r\n\r\n").count() < 2 {
            let mut b = [0u8; 1024];
            let n = server.read(&mut b).await.unwrap();
            seen.extend_from_slice(&b[..n]);
        }
        let text = String::from_utf8(seen).unwrap();
        assert!(text.starts_with("GET /slow HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("GET /fast HTTP/1.1\r\n"), "{text}");
        server
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslowHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfast\r\n0\r\n\r\n")
            .await
            .unwrap();
        for (rx, want) in [(first, "slow"), (second, "fast")] {
            let r = rx.await.unwrap().unwrap();
            let body = http_body_util::BodyExt::collect(r.into_body())
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(body, want);
        }
        // A server that closes fails what is still waiting, with a reason.
        let (_, third) = pipe.send(get("/gone")).await.unwrap();
        drop(server);
        let e = third.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("closed"), "{e}");
        assert!(pipe.is_closed());
    }
}
