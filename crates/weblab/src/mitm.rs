//! `weblab experiment mitm` (C33): a man in the middle, Mallory, on an
//! address of her own between the browser and the load balancer. The
//! browser is pointed at her for the site's name (as a poisoned lookup or
//! a hostile Wi-Fi router would do), and she relays every byte to the real
//! load balancer, reading what passes. Five runs, each with real sockets
//! and the real TLS of both ends:
//!
//! 1. a sign-in form posted over plain HTTP: she reads the password;
//! 2. SSL stripping: a browser that never had the site's HSTS asks for
//!    `http://` and Mallory keeps it there, talking HTTPS to the site
//!    herself (no redirect, no HSTS, no Secure cookies reach it): the
//!    sign-in works and she reads the password;
//! 3. the sign-in over HTTPS: she sees the server's name (SNI in the
//!    ClientHello), record types and sizes, and no password;
//! 4. HTTPS with one bit of one encrypted record flipped on its way to the
//!    browser: the browser's TLS refuses the record;
//! 5. Mallory answering TLS herself with a certificate for the site from
//!    her own CA: the browser refuses the certificate;
//! 6. a new browser on the client of run 3, which kept the site's HSTS,
//!    sent to the `http://` form: it goes to `https://` itself, so nothing
//!    reaches her port 80 (stripping has nothing to work on).
//!
//! Everything printed is what a socket, the browser or Mallory's own TLS
//! reported in that run.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use url::Url;
use weblab_browser::{Browser, Destination, Outgoing, Reach};
use weblab_trace::Ctx;

use crate::config::World;
use crate::world::RunningWorld;

/// Bytes Mallory keeps of each direction, per run (she relays them all).
const KEEP: usize = 256 * 1024;

/// What Mallory does with the connections she gets.
#[derive(Clone)]
enum Mode {
    /// Relays and reads.
    Watch,
    /// Relays, and flips one bit in the first encrypted record the server
    /// sends after the browser's own encrypted records began (its
    /// Finished and its first request).
    Flip,
    /// Answers TLS herself with this configuration.
    Impersonate(Arc<rustls::ServerConfig>),
    /// Answers plain HTTP herself, fetching each request from the site
    /// over HTTPS and handing the answer back stripped of what would send
    /// the browser to HTTPS.
    Strip(Arc<Stripper>),
}

/// Which way bytes went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// A TLS record seen passing: its direction, content type and length.
#[derive(Clone, Debug)]
pub struct Record {
    pub dir: Dir,
    pub kind: u8,
    pub len: u16,
}

/// What Mallory saw in one run.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Connections accepted, by local port.
    pub connections: BTreeMap<u16, u32>,
    /// The first bytes of each direction, as they passed.
    pub to_server: Vec<u8>,
    pub to_client: Vec<u8>,
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    /// TLS records framed on the TLS port (the first 500).
    pub records: Vec<Record>,
    /// The record whose bit she flipped: its number among the server's
    /// records on that connection, and its length.
    pub flipped: Option<(usize, u16)>,
    /// Her own TLS handshakes (impersonation): how each ended.
    pub handshakes: Vec<Result<String, String>>,
    /// What she did as a stripping proxy, a line per request.
    pub stripped: Vec<String>,
}

impl Seen {
    /// Counts `bytes` that passed one way, keeping the first [`KEEP`].
    fn keep(&mut self, dir: Dir, bytes: &[u8]) {
        let (kept, count) = match dir {
            Dir::ToServer => (&mut self.to_server, &mut self.bytes_to_server),
            Dir::ToClient => (&mut self.to_client, &mut self.bytes_to_client),
        };
        let room = KEEP.saturating_sub(kept.len()).min(bytes.len());
        kept.extend_from_slice(&bytes[..room]);
        *count += bytes.len() as u64;
    }
}

struct Shared {
    seen: Mutex<Seen>,
    mode: Mutex<Mode>,
}

/// Mallory: listeners on her address for the world's HTTP and HTTPS
/// ports, relaying to the load balancer.
struct Mallory {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Mallory {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Mallory {
    async fn start(me: IpAddr, lb: IpAddr, http: u16, https: u16) -> Result<Mallory> {
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen::default()),
            mode: Mutex::new(Mode::Watch),
        });
        let mut tasks = Vec::new();
        for (port, tls) in [(http, false), (https, true)] {
            let listener = TcpListener::bind(SocketAddr::new(me, port))
                .await
                .with_context(|| format!("Mallory cannot listen on {me}:{port}"))?;
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                // Her connections live in this set, so they end with her
                // (a dropped set aborts its tasks), not only when both
                // their sockets close.
                let mut conns = tokio::task::JoinSet::new();
                while let Ok((client, _)) = listener.accept().await {
                    while conns.try_join_next().is_some() {}
                    *lock(&shared.seen).connections.entry(port).or_default() += 1;
                    let mode = lock(&shared.mode).clone();
                    let shared = shared.clone();
                    conns.spawn(async move {
                        let upstream = SocketAddr::new(lb, port);
                        match mode {
                            Mode::Impersonate(cfg) if tls => {
                                impersonate(client, cfg, &shared).await
                            }
                            Mode::Strip(st) if !tls => st.serve(client, shared).await,
                            Mode::Flip => relay(client, me, upstream, tls, tls, &shared).await,
                            _ => relay(client, me, upstream, tls, false, &shared).await,
                        }
                    });
                }
            }));
        }
        Ok(Mallory { shared, tasks })
    }

    /// Starts a new run in `mode`, forgetting what the last one saw.
    fn begin(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
        *lock(&self.shared.seen) = Seen::default();
    }

    /// What this run saw so far. Relays finish writing what they read
    /// before they count it, so a moment's wait lets the last bytes in.
    async fn seen(&self) -> Seen {
        tokio::time::sleep(Duration::from_millis(50)).await;
        lock(&self.shared.seen).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Relays one connection both ways from Mallory's address; on the TLS
/// port the records are framed, and with `flip` one bit is changed.
async fn relay(
    client: TcpStream,
    me: IpAddr,
    upstream: SocketAddr,
    tls: bool,
    flip: bool,
    shared: &Arc<Shared>,
) {
    let sock = match upstream {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    };
    let Ok(sock) = sock else { return };
    if sock.bind(SocketAddr::new(me, 0)).is_err() {
        return;
    }
    let Ok(Ok(server)) = tokio::time::timeout(Duration::from_secs(3), sock.connect(upstream)).await
    else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // The browser's encrypted records so far: the bit is flipped only in
    // a server record after two of them (its Finished and its request),
    // so the handshake itself went through.
    let client_sealed = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let up = pump(
        cr,
        sw,
        Dir::ToServer,
        tls,
        false,
        client_sealed.clone(),
        shared.clone(),
    );
    let down = pump(
        sr,
        cw,
        Dir::ToClient,
        tls,
        flip,
        client_sealed,
        shared.clone(),
    );
    let _ = tokio::join!(up, down);
}

/// One direction of a relay.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dir: Dir,
    tls: bool,
    flip: bool,
    client_sealed: Arc<std::sync::atomic::AtomicU32>,
    shared: Arc<Shared>,
) {
    use std::sync::atomic::Ordering;
    let mut buf = vec![0u8; 16 * 1024];
    let mut framer = Framer::default();
    let mut flipped = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        let mut records = Vec::new();
        let mut flip_note = None;
        if tls {
            framer.feed(chunk, |kind, len, number| {
                records.push(Record { dir, kind, len });
                if kind == 23 && dir == Dir::ToServer {
                    client_sealed.fetch_add(1, Ordering::Relaxed);
                }
                let now = flip
                    && !flipped
                    && kind == 23
                    && len > 0
                    && client_sealed.load(Ordering::Relaxed) >= 2;
                if now {
                    flipped = true;
                    flip_note = Some((number, len));
                }
                now
            });
        }
        {
            let mut seen = lock(&shared.seen);
            seen.keep(dir, chunk);
            let left = 500usize.saturating_sub(seen.records.len());
            seen.records.extend(records.into_iter().take(left));
            if flip_note.is_some() {
                seen.flipped = flip_note;
            }
        }
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Finds TLS record boundaries in a byte stream (RFC 8446 §5.1: a type
/// byte, two version bytes, a two-byte length, then that many bytes).
/// Hand-written: Mallory frames records she cannot decrypt, which no TLS
/// crate exposes.
#[derive(Default)]
pub struct Framer {
    header: Vec<u8>,
    /// Bytes of the current record's body still to come.
    left: usize,
    /// Body bytes to skip before the byte to flip, when one is due.
    flip_in: Option<usize>,
    /// Records seen so far.
    count: usize,
}

impl Framer {
    /// Walks `chunk`; `on_record(type, length, number)` hears of each
    /// record header and says whether to flip a bit in its body (the
    /// middle byte, changed in `chunk` as it passes).
    pub fn feed(&mut self, chunk: &mut [u8], mut on_record: impl FnMut(u8, u16, usize) -> bool) {
        let mut i = 0;
        while i < chunk.len() {
            if self.left > 0 {
                let take = self.left.min(chunk.len() - i);
                if let Some(k) = self.flip_in {
                    if k < take {
                        chunk[i + k] ^= 0x01;
                        self.flip_in = None;
                    } else {
                        self.flip_in = Some(k - take);
                    }
                }
                i += take;
                self.left -= take;
                continue;
            }
            self.header.push(chunk[i]);
            i += 1;
            if self.header.len() == 5 {
                let kind = self.header[0];
                let len = u16::from_be_bytes([self.header[3], self.header[4]]);
                self.count += 1;
                if on_record(kind, len, self.count) {
                    self.flip_in = Some(len as usize / 2);
                }
                self.left = len as usize;
                self.header.clear();
            }
        }
    }
}

/// Mallory answers TLS with her own certificate, and reads the request
/// if the browser went on (it should not).
async fn impersonate(client: TcpStream, cfg: Arc<rustls::ServerConfig>, shared: &Arc<Shared>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let outcome = match tokio::time::timeout(Duration::from_secs(3), acceptor.accept(client)).await
    {
        Err(_) => Err("no handshake within 3 s".to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(mut tls)) => {
            let mut buf = vec![0u8; 16 * 1024];
            let n = tokio::time::timeout(Duration::from_secs(1), tls.read(&mut buf))
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or(0);
            let mut seen = lock(&shared.seen);
            seen.to_server.extend_from_slice(&buf[..n]);
            seen.bytes_to_server += n as u64;
            Ok(format!("handshake done; read {n} bytes of plain text"))
        }
    };
    lock(&shared.seen).handshakes.push(outcome);
}

/// Mallory as a stripping proxy: plain HTTP toward the browser, HTTPS
/// toward the site, from her own address.
pub struct Stripper {
    me: IpAddr,
    site: String,
    lb: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

/// Bodies she reads whole before passing them on, at most.
const STRIP_MAX: usize = 4 << 20;

impl Stripper {
    /// Serves one browser connection; what passes on it is kept as it
    /// went over the wire.
    async fn serve(self: Arc<Self>, client: TcpStream, shared: Arc<Shared>) {
        let io = Tee {
            inner: client,
            shared: shared.clone(),
        };
        let svc = hyper::service::service_fn(move |req| {
            let (me, shared) = (self.clone(), shared.clone());
            async move { Ok::<_, std::convert::Infallible>(me.forward(req, &shared).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
            .await;
    }

    /// One request: asked of the site over HTTPS, the answer rewritten.
    async fn forward(
        &self,
        req: http::Request<hyper::body::Incoming>,
        shared: &Shared,
    ) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        use http_body_util::BodyExt;
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let what = format!("{} {target}", req.method());
        let (parts, body) = req.into_parts();
        let answer = async {
            let body = http_body_util::Limited::new(body, STRIP_MAX)
                .collect()
                .await
                .map_err(|e| format!("reading the browser's body: {e}"))?
                .to_bytes();
            let up = http::Request::from_parts(parts, http_body_util::Full::new(body));
            self.ask_site(up).await
        };
        let (resp, line) = match answer.await {
            Ok((resp, notes)) => {
                let line = format!(
                    "{what}: she asked https://{}{target} herself over TLS and got {}; {}",
                    self.site,
                    resp.status(),
                    if notes.is_empty() {
                        "passed it on unchanged".to_string()
                    } else {
                        format!("passed it on without {}", notes.join(", "))
                    }
                );
                (resp, line)
            }
            Err(e) => {
                let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                    format!("{e}\n"),
                )));
                *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                (r, format!("{what}: {e}"))
            }
        };
        lock(&shared.seen).stripped.push(line);
        resp
    }

    /// Sends `req` to the site over a TLS connection of her own and reads
    /// the whole answer; returns it with what she took out of it.
    async fn ask_site(
        &self,
        req: http::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> Result<
        (
            http::Response<http_body_util::Full<bytes::Bytes>>,
            Vec<String>,
        ),
        String,
    > {
        use http_body_util::BodyExt;
        let resp = ask_once(self.me, self.lb, Some((&self.site, &self.tls)), req).await?;
        let (mut parts, body) = resp.into_parts();
        let body = http_body_util::Limited::new(body, STRIP_MAX)
            .collect()
            .await
            .map_err(|e| format!("reading the site's answer: {e}"))?
            .to_bytes();
        let mut notes = Vec::new();
        // What would take the browser to HTTPS, taken out.
        if parts
            .headers
            .remove(http::header::STRICT_TRANSPORT_SECURITY)
            .is_some()
        {
            notes.push("its Strict-Transport-Security".to_string());
        }
        if let Some(loc) = parts.headers.get(http::header::LOCATION)
            && let Ok(text) = loc.to_str()
            && let Some(rest) = text.strip_prefix("https://")
            && let Ok(v) = http::HeaderValue::from_str(&format!("http://{rest}"))
        {
            parts.headers.insert(http::header::LOCATION, v);
            notes.push("https in its Location".to_string());
        }
        let cookies: Vec<http::HeaderValue> = parts
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        let mut unsecured = 0;
        if !cookies.is_empty() {
            parts.headers.remove(http::header::SET_COOKIE);
            for c in cookies {
                let text = String::from_utf8_lossy(c.as_bytes()).to_string();
                let kept: Vec<&str> = text
                    .split(';')
                    .filter(|a| !a.trim().eq_ignore_ascii_case("secure"))
                    .collect();
                if kept.len() < text.split(';').count() {
                    unsecured += 1;
                }
                if let Ok(v) = http::HeaderValue::from_str(&kept.join(";")) {
                    parts.headers.append(http::header::SET_COOKIE, v);
                }
            }
        }
        if unsecured > 0 {
            notes.push(format!("the Secure flag of {unsecured} cookie(s)"));
        }
        let secure = format!("https://{}", self.site);
        let body = if contains(&body, secure.as_bytes()) {
            let text = String::from_utf8_lossy(&body);
            let n = text.matches(&secure).count();
            notes.push(format!("{n} https:// link(s) in its body"));
            bytes::Bytes::from(text.replace(&secure, &format!("http://{}", self.site)))
        } else {
            body
        };
        parts.headers.remove(http::header::CONTENT_LENGTH);
        parts.headers.remove(http::header::TRANSFER_ENCODING);
        Ok((
            http::Response::from_parts(parts, http_body_util::Full::new(body)),
            notes,
        ))
    }
}

/// A TLS client configuration that trusts the CA of the world whose data
/// is in `data_dir` (as a client given its certificate does).
pub(crate) fn trusting_world_ca(data_dir: &std::path::Path) -> Result<rustls::ClientConfig> {
    let ca = weblab_edge::tls::LocalCa::load_or_create(data_dir)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert().clone())?;
    Ok(
        rustls::ClientConfig::builder_with_provider(weblab_edge::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One request on a new connection from `bind` to `to`, over TLS with
/// `tls` (checking the certificate for `site`) or plain: the answer's
/// head, its body still to read. The connection ends with the answer.
pub(crate) async fn ask_once<B>(
    bind: IpAddr,
    to: SocketAddr,
    tls: Option<(&str, &Arc<rustls::ClientConfig>)>,
    req: http::Request<B>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let sock = match to {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    sock.bind(SocketAddr::new(bind, 0))
        .map_err(|e| e.to_string())?;
    let tcp = tokio::time::timeout(Duration::from_secs(3), sock.connect(to))
        .await
        .map_err(|_| format!("connect to {to} timed out"))?
        .map_err(|e| format!("connect to {to}: {e}"))?;
    match tls {
        Some((site, cfg)) => {
            let name = rustls::pki_types::ServerName::try_from(site.to_string())
                .map_err(|e| e.to_string())?;
            let stream = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS to {site}: {e}"))?;
            exchange(stream, to, req).await
        }
        None => exchange(tcp, to, req).await,
    }
}

async fn exchange<S, B>(
    io: S,
    to: SocketAddr,
    req: http::Request<B>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .map_err(|_| format!("no answer from {to} in 10 s"))?
        .map_err(|e| format!("asking {to}: {e}"))
}

/// A browser connection whose bytes are kept as they pass, both ways.
struct Tee {
    inner: TcpStream,
    shared: Arc<Shared>,
}

impl Tee {
    fn keep(&self, dir: Dir, bytes: &[u8]) {
        lock(&self.shared.seen).keep(dir, bytes);
    }
}

impl tokio::io::AsyncRead for Tee {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = buf.filled()[before..].to_vec();
        if !got.is_empty() {
            self.keep(Dir::ToServer, &got);
        }
        r
    }
}

impl tokio::io::AsyncWrite for Tee {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.keep(Dir::ToClient, &buf[..*n]);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the browser got in one run.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The URL the request finally went to (after an HSTS upgrade).
    pub url: String,
    pub status: u16,
    pub location: Option<String>,
}

/// One run: what it tried, what the browser got, what Mallory saw.
#[derive(Clone, Debug)]
pub struct Run {
    pub title: String,
    /// A page the browser loaded first, when the run has one.
    pub page: Option<Result<Answer, String>>,
    pub browser: Result<Answer, String>,
    pub seen: Seen,
}

impl Run {
    /// Whether Mallory's bytes toward the server hold the password.
    pub fn password_seen(&self, password: &str) -> bool {
        let form = url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>();
        contains(&self.seen.to_server, form.as_bytes())
    }
}

/// Whether `needle` occurs in `hay`.
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The experiment's result: the runs and the report.
pub struct Outcome {
    pub runs: Vec<Run>,
    pub password: String,
    pub report: String,
}

/// An address on the world's block that no host of it uses.
fn free_addr(world: &World) -> Result<IpAddr> {
    let base = world.addr(&world.client.host).octets();
    let used: Vec<std::net::Ipv4Addr> = world.hosts.values().copied().collect();
    (66u8..=250)
        .map(|last| std::net::Ipv4Addr::new(127, base[1], 0, last))
        .find(|ip| !used.contains(ip))
        .map(IpAddr::V4)
        .ok_or_else(|| anyhow::anyhow!("no free address for Mallory on 127.{}.0.0/24", base[1]))
}

/// Runs the six runs against `world`, booted here with its data in
/// `data_dir` (a fresh one: the browser's HSTS store lives there).
pub async fn run(world: World, data_dir: std::path::PathBuf) -> Result<Outcome> {
    let site = site_name(&world)?;
    let me = free_addr(&world)?;
    let running = RunningWorld::start(world, data_dir.clone(), weblab_trace::Detail::Full).await?;
    let lb = running.addr(&running.world.lb.host);
    let (http, https) = (running.ports.http, running.ports.https);
    let mallory = Mallory::start(me, lb, http, https).await?;
    let reach = Reach {
        resolve: vec![(site.clone(), 443, me), (site.clone(), 80, me)],
        ..Default::default()
    };
    let browser = || -> Result<Browser> { Ok(running.browser(false)?.reaching(reach.clone())?) };
    let (email, password) = (
        weblab_app::DEMO_USERS[0].1.to_string(),
        weblab_app::DEMO_PASSWORD.to_string(),
    );
    let form = Outgoing::form(&[
        ("email".into(), email.clone()),
        ("password".into(), password.clone()),
        ("next".into(), "/account".into()),
    ]);
    let login = |scheme: &str| Url::parse(&format!("{scheme}://{site}/login"));
    let home = Url::parse(&format!("https://{site}/"))?;
    let mut runs = Vec::new();

    mallory.begin(Mode::Watch);
    let plain = browser()?;
    let got = ask(&plain, &login("http")?, &form).await;
    runs.push(Run {
        title: format!("Sign-in form posted over plain HTTP (POST http://{site}/login)"),
        page: None,
        browser: got,
        seen: mallory.seen().await,
    });

    // Mallory trusts the world's CA as any client of the site does.
    let to_site = trusting_world_ca(&data_dir)?;
    mallory.begin(Mode::Strip(Arc::new(Stripper {
        me,
        site: site.clone(),
        lb: SocketAddr::new(lb, https),
        tls: Arc::new(to_site),
    })));
    let victim = browser()?;
    let page = ask(&victim, &login("http")?, &Outgoing::default()).await;
    let got = ask(&victim, &login("http")?, &form).await;
    drop(victim);
    runs.push(Run {
        title: format!(
            "SSL stripping: a browser that never had {site}'s HSTS loads http://{site}/login and posts the form there; Mallory keeps it on HTTP and speaks HTTPS to the site herself"
        ),
        page: Some(page),
        browser: got,
        seen: mallory.seen().await,
    });

    mallory.begin(Mode::Watch);
    let careful = browser()?;
    let got = ask(&careful, &login("https")?, &form).await;
    runs.push(Run {
        title: format!("The same sign-in over HTTPS (POST https://{site}/login)"),
        page: None,
        browser: got,
        seen: mallory.seen().await,
    });

    mallory.begin(Mode::Flip);
    let got = ask(&browser()?, &home, &Outgoing::default()).await;
    runs.push(Run {
        title: format!("HTTPS with one bit flipped by Mallory (GET https://{site}/)"),
        page: None,
        browser: got,
        seen: mallory.seen().await,
    });

    let her_dir = data_dir.join("mallory");
    let her_ca = weblab_edge::tls::LocalCa::load_or_create(&her_dir)?;
    let (chain, key) = her_ca.issue(std::slice::from_ref(&site))?;
    let cfg = weblab_edge::tls::server_config(chain, key, &[b"h2", b"http/1.1"])?;
    mallory.begin(Mode::Impersonate(cfg));
    let got = ask(&browser()?, &home, &Outgoing::default()).await;
    runs.push(Run {
        title: format!(
            "Mallory answers TLS herself, with a certificate for {site} from her own CA"
        ),
        page: None,
        browser: got,
        seen: mallory.seen().await,
    });

    // A new browser on the same client host: it reads the HSTS store that
    // run 3's browser wrote, and has no connection to reuse.
    drop(careful);
    mallory.begin(Mode::Watch);
    let got = ask(&browser()?, &login("http")?, &form).await;
    runs.push(Run {
        title: format!(
            "A new browser on the same client, which keeps the HSTS run 3 got from {site}, posts to http://{site}/login"
        ),
        page: None,
        browser: got,
        seen: mallory.seen().await,
    });

    drop(mallory);
    running.stop_accepting();
    let report = render(&runs, &site, me, lb, &password, http);
    Ok(Outcome {
        runs,
        password,
        report,
    })
}

/// One request, redirects not followed.
async fn ask(browser: &Browser, url: &Url, out: &Outgoing) -> Result<Answer, String> {
    let got = browser
        .send(Ctx::new_root(), 0, url, Destination::Document, out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        url: got.url.to_string(),
        status: got.status,
        location: weblab_browser::browser::header_value(&got.headers, "location"),
    })
}

/// The name of a TLS record's content type (RFC 8446 §5.1).
pub fn record_name(kind: u8) -> String {
    match kind {
        20 => "change_cipher_spec".into(),
        21 => "alert".into(),
        22 => "handshake".into(),
        23 => "application_data".into(),
        k => format!("type {k}"),
    }
}

/// The request head and form body Mallory read, as lines.
fn plain_lines(bytes: &[u8], max: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for line in text.split("\r\n") {
        let keep = line.starts_with("POST ")
            || line.starts_with("GET ")
            || line.to_ascii_lowercase().starts_with("host:")
            || line.to_ascii_lowercase().starts_with("content-type:")
            || line.contains("password=");
        if keep {
            out.push(line.chars().take(max).collect());
        }
    }
    out
}

fn render(
    runs: &[Run],
    site: &str,
    me: IpAddr,
    lb: IpAddr,
    password: &str,
    http_port: u16,
) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "weblab experiment mitm (C33): Mallory at {me} relays every byte between the browser and the load balancer ({lb}); {site} is pointed at her.\n"
    );
    for (i, r) in runs.iter().enumerate() {
        let _ = writeln!(s, "{}. {}", i + 1, r.title);
        let answered = |a: &Answer| {
            let to = a
                .location
                .as_deref()
                .map(|l| format!(" -> {l}"))
                .unwrap_or_default();
            format!("{} {}{to}", a.status, a.url)
        };
        match &r.page {
            Some(Ok(a)) => {
                let _ = writeln!(s, "   browser, the page: {}", answered(a));
            }
            Some(Err(e)) => {
                let _ = writeln!(s, "   browser, the page: failed: {e}");
            }
            None => {}
        }
        match &r.browser {
            Ok(a) => {
                let _ = writeln!(s, "   browser: {}", answered(a));
            }
            Err(e) => {
                let _ = writeln!(s, "   browser: failed: {e}");
            }
        }
        let conns: Vec<String> = r
            .seen
            .connections
            .iter()
            .map(|(p, n)| format!("{n} on port {p}"))
            .collect();
        let _ = writeln!(
            s,
            "   Mallory: connections {}; bytes {} from the browser, {} to the browser",
            if conns.is_empty() {
                "none".to_string()
            } else {
                conns.join(", ")
            },
            r.seen.bytes_to_server,
            r.seen.bytes_to_client
        );
        if !r.seen.records.is_empty() {
            let mut by: BTreeMap<(u8, &str), u32> = BTreeMap::new();
            for rec in &r.seen.records {
                let d = if rec.dir == Dir::ToServer {
                    "from the browser"
                } else {
                    "from the server"
                };
                *by.entry((rec.kind, d)).or_default() += 1;
            }
            let parts: Vec<String> = by
                .iter()
                .map(|((k, d), n)| format!("{n} {} {d}", record_name(*k)))
                .collect();
            let _ = writeln!(s, "   TLS records she framed: {}", parts.join(", "));
            let sni = contains(&r.seen.to_server, site.as_bytes());
            let _ = writeln!(
                s,
                "   in clear text: the name {site:?} {} (the ClientHello's SNI); the password {}",
                if sni { "is visible" } else { "is not visible" },
                if r.password_seen(password) {
                    "IS visible"
                } else {
                    "is not in her bytes"
                }
            );
        } else if r.seen.handshakes.is_empty() && r.seen.bytes_to_server > 0 {
            let lines = plain_lines(&r.seen.to_server, 100);
            if !lines.is_empty() {
                let _ = writeln!(s, "   what she read from the browser:");
                for l in lines {
                    let _ = writeln!(s, "     {l}");
                }
            }
            let _ = writeln!(
                s,
                "   the password {}",
                if r.password_seen(password) {
                    "crossed the network in clear text"
                } else {
                    "is not in her bytes"
                }
            );
        }
        for line in &r.seen.stripped {
            let _ = writeln!(s, "   Mallory, {line}");
        }
        if let Some((n, len)) = r.seen.flipped {
            let _ = writeln!(
                s,
                "   she flipped one bit in TLS record {n} from the server (application_data, {len} bytes)"
            );
        }
        for h in &r.seen.handshakes {
            match h {
                Ok(t) => {
                    let _ = writeln!(s, "   her TLS: {t}");
                }
                Err(e) => {
                    let _ = writeln!(s, "   her TLS: {e}");
                }
            }
        }
        if let Some(l) = lesson(i, r, password, http_port) {
            let _ = writeln!(s, "   -> {l}");
        }
        if i == runs.len() - 1 {
            let none = !r.seen.connections.contains_key(&http_port);
            let _ = writeln!(
                s,
                "   port {http_port} (plain HTTP) got {}",
                if none {
                    "no connection: the browser went to HTTPS before a byte left".to_string()
                } else {
                    format!("{} connection(s)", r.seen.connections[&http_port])
                }
            );
        }
        let _ = writeln!(s);
    }
    s
}

/// What run `i` shows, said only when the run came out that way.
fn lesson(i: usize, r: &Run, password: &str, http_port: u16) -> Option<&'static str> {
    let failed = r.browser.is_err();
    match i {
        0 if r.password_seen(password) => Some(
            "anyone on the path (a Wi-Fi, a router, a proxy) reads a plain-HTTP form; the redirect to HTTPS came after the password had left",
        ),
        1 if r.password_seen(password) && !failed && !r.seen.stripped.is_empty() => Some(
            "without HSTS a visit starts on plain HTTP; Mallory answered it herself, so the site never sent its redirect to HTTPS, and the site saw an ordinary HTTPS client: her (run 6: HSTS closes this)",
        ),
        2 if !r.password_seen(password) && !failed => Some(
            "TLS hides the request and the answer; the server's name (SNI) and the sizes of what passed still show",
        ),
        3 if failed && r.seen.flipped.is_some() => Some(
            "TLS seals every record with an authentication tag (AEAD): a changed record fails to decrypt, and the browser drops the connection rather than use altered data",
        ),
        4 if failed => Some(
            "she can make a certificate for any name, but not one signed by a CA the browser trusts",
        ),
        5 if !failed && !r.seen.connections.contains_key(&http_port) => Some(
            "with HSTS the browser never speaks plain HTTP to the site, so there is no first plain request for her to keep on HTTP (SSL stripping)",
        ),
        _ => None,
    }
}

/// The name the world's load balancer serves first (its site).
pub(crate) fn site_name(world: &World) -> Result<String> {
    world
        .lb
        .server_names
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the world's [lb] has no server_names"))
}

/// The block the experiment's world uses unless `--block` is given.
pub const DEFAULT_BLOCK: u8 = 61;

/// Checks that Mallory's run can start: the world has a site name.
pub fn check(world: &World) -> Result<()> {
    if world.lb.server_names.is_empty() {
        bail!("the world's [lb] has no server_names for Mallory to stand in for");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn the_framer_finds_records_across_any_split_and_flips_one_bit_in_the_chosen_one() {
        let mut stream = record(22, &[1; 40]);
        stream.extend(record(23, &[0; 10]));
        stream.extend(record(23, &[0; 7]));
        for cut in 0..stream.len() {
            let mut a = stream[..cut].to_vec();
            let mut b = stream[cut..].to_vec();
            let mut f = Framer::default();
            let mut seen = Vec::new();
            let mut on = |k: u8, l: u16, n: usize| {
                seen.push((k, l, n));
                n == 2
            };
            f.feed(&mut a, &mut on);
            f.feed(&mut b, &mut on);
            assert_eq!(
                seen,
                vec![(22, 40, 1), (23, 10, 2), (23, 7, 3)],
                "cut at {cut}"
            );
            let out = [a, b].concat();
            let diff: Vec<usize> = (0..out.len()).filter(|&i| out[i] != stream[i]).collect();
            // Record 2's body starts after 45 + 5 bytes; its middle is 5 in.
            assert_eq!(diff, vec![45 + 5 + 5], "cut at {cut}");
            assert_eq!(out[55] ^ stream[55], 1, "one bit");
        }
    }
}
