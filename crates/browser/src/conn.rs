//! Opening a connection the way a browser does, one timed stage at a time:
//! TCP connect from the client's own address (with the kernel's TCP_INFO
//! read right after), then TLS with the checked certificate chain.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use weblab_trace::now_ns;

use crate::error::BrowserError;

/// What the kernel says about a TCP connection (`struct tcp_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub cwnd: u32,
    /// Slow-start threshold in segments; none while it is still "infinite"
    /// (no loss seen yet).
    pub ssthresh: Option<u32>,
    /// The kernel's delivery-rate estimate, in bits per second (Linux 4.9+).
    pub delivery_rate_bps: Option<u64>,
    pub mss: u32,
    pub retransmits: u32,
    pub total_retrans: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The TCP state (Linux's numbering: 1 ESTABLISHED … 10 LISTEN).
    pub state: u8,
}

/// Reads TCP_INFO from a connected socket. Kernels fill only the fields
/// they know, so the byte counters are read only when the returned length
/// covers them.
pub fn tcp_info(fd: RawFd) -> Option<TcpInfo> {
    // SAFETY: tcp_info is plain old data; getsockopt writes at most `len`
    // bytes into it and reports how many it wrote.
    let mut ti: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut ti).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    let filled = len as usize;
    let has = |end: usize| filled >= end;
    let bytes_sent_end = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_sent) + 8;
    let bytes_received_end = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_received) + 8;
    let delivery_rate_end = std::mem::offset_of!(libc::tcp_info, tcpi_delivery_rate) + 8;
    // The kernel's "infinite" threshold (TCP_INFINITE_SSTHRESH).
    const INFINITE: u32 = 0x7fff_ffff;
    Some(TcpInfo {
        rtt_us: ti.tcpi_rtt,
        rttvar_us: ti.tcpi_rttvar,
        cwnd: ti.tcpi_snd_cwnd,
        ssthresh: (ti.tcpi_snd_ssthresh < INFINITE).then_some(ti.tcpi_snd_ssthresh),
        // 0 until the first data is acknowledged: no sample yet.
        delivery_rate_bps: (has(delivery_rate_end) && ti.tcpi_delivery_rate > 0)
            .then_some(ti.tcpi_delivery_rate * 8),
        mss: ti.tcpi_snd_mss,
        retransmits: u32::from(ti.tcpi_retransmits),
        total_retrans: ti.tcpi_total_retrans,
        bytes_sent: if has(bytes_sent_end) {
            ti.tcpi_bytes_sent
        } else {
            0
        },
        bytes_received: if has(bytes_received_end) {
            ti.tcpi_bytes_received
        } else {
            0
        },
        state: ti.tcpi_state,
    })
}

/// Opens a TCP connection from `bind` to `remote`.
pub async fn connect(bind: IpAddr, remote: SocketAddr) -> Result<TcpStream, BrowserError> {
    let sock = if remote.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(BrowserError::connect)?;
    sock.bind(SocketAddr::new(bind, 0))
        .map_err(|e| BrowserError::connect(format!("bind {bind}: {e}")))?;
    let stream = tokio::time::timeout(std::time::Duration::from_secs(5), sock.connect(remote))
        .await
        .map_err(|_| BrowserError::connect(format!("{remote}: timed out")))?
        .map_err(|e| BrowserError::connect(format!("{remote}: {e}")))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The raw descriptor, kept to read TCP_INFO later.
pub fn fd_of(s: &TcpStream) -> RawFd {
    s.as_raw_fd()
}

/// Byte counts and the time of the last write on a connection, shared with
/// the request code so it can tell when a request left.
#[derive(Debug, Default)]
pub struct IoTimes {
    pub last_write_ns: AtomicU64,
    pub bytes_written: AtomicU64,
    pub bytes_read: AtomicU64,
    /// While `Some`, the bytes written (up to [`CAPTURE_MAX`]): how an
    /// HTTP/1.1 request head really went on the wire.
    pub capture: std::sync::Mutex<Option<Vec<u8>>>,
    /// On an HTTP/2 connection, the frames written, read for the size of
    /// each stream's HPACK header block.
    pub h2: std::sync::Mutex<Option<H2Writes>>,
    /// Requests handed to the HTTP/2 connection so far: the k-th gets
    /// client stream id 2k+1 (RFC 9113 §5.1.1, ids in the order opened).
    pub h2_sends: std::sync::atomic::AtomicU32,
    /// The first read or write error: the connection's own task meets it,
    /// and a request on the connection then only hears "closed".
    pub failed: std::sync::Mutex<Option<String>>,
}

/// Reads the frame headers of what a client writes on an HTTP/2
/// connection (RFC 9113 §4.1) and adds up the HEADERS and CONTINUATION
/// payloads of each stream: the HPACK-encoded header block.
#[derive(Debug)]
pub struct H2Writes {
    preface_left: usize,
    head: [u8; 9],
    head_len: usize,
    payload_left: usize,
    blocks: std::collections::HashMap<u32, u64>,
}

impl Default for H2Writes {
    fn default() -> Self {
        H2Writes {
            // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" comes before any frame.
            preface_left: 24,
            head: [0; 9],
            head_len: 0,
            payload_left: 0,
            blocks: Default::default(),
        }
    }
}

impl H2Writes {
    /// Reads bytes as they are written.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
            } else {
                let n = (9 - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                self.head_len += n;
                bytes = &bytes[n..];
                if self.head_len == 9 {
                    self.head_len = 0;
                    let h = self.head;
                    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                    let (kind, flags) = (h[3], h[4]);
                    let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                    // HEADERS (1) or CONTINUATION (9); a padded or
                    // prioritised HEADERS frame carries more than the block.
                    if matches!(kind, 1 | 9) && stream != 0 && self.blocks.len() < 10_000 {
                        let extra = if kind == 1 && flags & 0x20 != 0 { 5 } else { 0 };
                        if !(kind == 1 && flags & 0x08 != 0) {
                            *self.blocks.entry(stream).or_default() +=
                                len.saturating_sub(extra) as u64;
                        }
                    }
                    self.payload_left = len;
                }
            }
        }
    }

    /// The HPACK block size of `stream`, once its HEADERS went out.
    pub fn block(&self, stream: u32) -> Option<u64> {
        self.blocks.get(&stream).copied()
    }
}

/// The most bytes a capture keeps.
pub const CAPTURE_MAX: usize = 64 * 1024;

impl IoTimes {
    /// Starts keeping what is written from now on.
    pub fn start_capture(&self) {
        *self.capture.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    /// Stops keeping, and returns what was written since the start.
    pub fn take_capture(&self) -> Vec<u8> {
        self.capture
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// Keeps `e` if it is the connection's first I/O error.
    fn fail(&self, e: &std::io::Error) {
        let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e.to_string());
        }
    }

    /// The connection's first I/O error, if it met one.
    pub fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A stream that notes when it writes and how much it moves.
pub struct Timed<S> {
    inner: S,
    times: Arc<IoTimes>,
}

impl<S> Timed<S> {
    pub fn new(inner: S, times: Arc<IoTimes>) -> Self {
        Timed { inner, times }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.times.bytes_read.fetch_add(n, Ordering::Relaxed);
        if let Poll::Ready(Err(e)) = &r {
            self.times.fail(e);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Err(e)) = &r {
            self.times.fail(e);
        }
        if let Poll::Ready(Ok(n)) = &r {
            self.times
                .bytes_written
                .fetch_add(*n as u64, Ordering::Relaxed);
            self.times.last_write_ns.store(now_ns(), Ordering::Relaxed);
            let mut capture = self.times.capture.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = capture.as_mut() {
                let room = CAPTURE_MAX.saturating_sub(c.len());
                c.extend_from_slice(&buf[..(*n).min(room)]);
            }
            drop(capture);
            if let Some(h2) = self
                .times
                .h2
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
            {
                h2.feed(&buf[..*n]);
            }
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What a finished TLS handshake settled, for the trace.
#[derive(Clone, Debug)]
pub struct TlsSummary {
    pub version: String,
    pub cipher: String,
    pub group: String,
    pub alpn: Option<String>,
    pub chain: Vec<String>,
}

/// Describes a certificate by the DNS names it is valid for, or as a CA.
fn describe_cert(der: &rustls_pki_types::CertificateDer<'_>) -> String {
    match webpki::EndEntityCert::try_from(der) {
        Ok(cert) => {
            let names: Vec<&str> = cert.valid_dns_names().collect();
            if names.is_empty() {
                format!("CA certificate ({} bytes)", der.len())
            } else {
                format!("{} ({} bytes)", names.join(","), der.len())
            }
        }
        Err(_) => format!("unparsable certificate ({} bytes)", der.len()),
    }
}

/// Summarises an established TLS client connection.
pub fn tls_summary(conn: &rustls::ClientConnection) -> TlsSummary {
    TlsSummary {
        version: conn
            .protocol_version()
            .map_or("?".into(), |v| format!("{v:?}").replace('_', ".")),
        cipher: conn
            .negotiated_cipher_suite()
            .map_or("?".into(), |c| format!("{:?}", c.suite())),
        group: conn
            .negotiated_key_exchange_group()
            .map_or("?".into(), |g| format!("{:?}", g.name())),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        chain: conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(describe_cert)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hpack_block_of_each_stream_is_read_from_the_frames_written() {
        let mut w = H2Writes::default();
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // SETTINGS (type 4) on stream 0 with 6 bytes of payload.
        bytes.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
        // HEADERS on stream 1, 20 bytes, then CONTINUATION with 7 more.
        bytes.extend_from_slice(&[0, 0, 20, 1, 0, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[0xaa; 20]);
        bytes.extend_from_slice(&[0, 0, 7, 9, 4, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[0xbb; 7]);
        // HEADERS on stream 3 with the PRIORITY flag: 5 bytes are not block.
        bytes.extend_from_slice(&[0, 0, 15, 1, 0x24, 0, 0, 0, 3]);
        bytes.extend_from_slice(&[0xcc; 15]);
        // Fed in awkward pieces, as writes come.
        for chunk in bytes.chunks(5) {
            w.feed(chunk);
        }
        assert_eq!(w.block(1), Some(27));
        assert_eq!(w.block(3), Some(10));
        assert_eq!(w.block(5), None);
    }

    #[tokio::test]
    async fn tcp_info_reads_a_live_loopback_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.unwrap() });
        let s = connect("127.0.0.1".parse().unwrap(), addr).await.unwrap();
        let _server = accept.await.unwrap();
        let info = tcp_info(fd_of(&s)).unwrap();
        assert!(info.cwnd >= 1, "{info:?}");
        assert!(info.mss > 0, "{info:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_address() {
        // Bind then drop to get a port with nothing listening.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = connect(
            "127.0.0.1".parse().unwrap(),
            SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(&port.to_string()), "{err}");
    }
}
