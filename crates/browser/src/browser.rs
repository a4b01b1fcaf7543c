//! The browser: a page load as a sequence of timed stages, recorded into one
//! trace (C01–C07): URL → request head → lookup chain → TCP → TLS → HTTP/1.1
//! or HTTP/2 (by ALPN) → body → decode → HTML scan → subresources in parallel.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Version, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use url::Url;
use weblab_dns::LookupChain;
use weblab_trace::{Ctx, Event, Layer, Recorder, TraceId, now_ns};

use crate::conn::{IoTimes, Timed, connect, fd_of, tcp_info, tls_summary};
use crate::decode::decode;
use crate::error::BrowserError;
use crate::html::{Kind, subresources};
use crate::http_cache;

/// How the browser is set up.
#[derive(Clone, Debug)]
pub struct BrowserConfig {
    /// The client host's address: every socket to an IPv4 server is bound
    /// to it.
    pub bind: IpAddr,
    /// The client host's IPv6 address, for sockets to IPv6 servers (none:
    /// the kernel picks the source, ::1 on loopback).
    pub bind6: Option<std::net::Ipv6Addr>,
    /// The only trust anchor (PEM).
    pub ca_pem: Vec<u8>,
    /// The trust anchor's name, for traces.
    pub ca_label: String,
    /// Port rewrites, like `curl --connect-to` (e.g. 443 → 10443 when the
    /// world cannot bind privileged ports).
    pub port_map: Vec<(u16, u16)>,
    /// Offer only HTTP/1.1 in ALPN.
    pub http1_only: bool,
    pub user_agent: String,
    /// Where the HSTS store is kept between runs (none: this run only).
    pub hsts_file: Option<std::path::PathBuf>,
}

/// How to reach servers outside the world, as curl's flags do.
#[derive(Clone, Debug, Default)]
pub struct Reach {
    /// `--resolve HOST:PORT:ADDR`: this host and port at this address,
    /// with no lookup.
    pub resolve: Vec<(String, u16, IpAddr)>,
    /// `--cacert FILE`: more trust anchors (PEM), besides the world's CA.
    pub extra_ca_pem: Vec<u8>,
    /// `-k`: the certificate chain is not checked (the handshake's
    /// signatures still are).
    pub insecure: bool,
}

/// Accepts any certificate chain (`-k`), still checking that the server
/// holds the key of the certificate it sent. rustls has no such verifier
/// of its own: this is the documented "dangerous" hook.
#[derive(Debug)]
struct AnyChain(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyChain {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS settings of a browser: the world's CA and any extra anchors,
/// or no chain check at all with `-k`.
fn tls_config(cfg: &BrowserConfig, reach: &Reach) -> Result<rustls::ClientConfig, BrowserError> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in [&cfg.ca_pem, &reach.extra_ca_pem] {
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| BrowserError::tls(format!("CA file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| BrowserError::tls(format!("CA file: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(BrowserError::tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if reach.insecure {
        tls.dangerous()
            .set_certificate_verifier(Arc::new(AnyChain(provider)));
    }
    tls.alpn_protocols = if cfg.http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    Ok(tls)
}

/// What a request fetched.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub request: u32,
    pub url: Url,
    pub status: u16,
    pub version: Version,
    pub headers: HeaderMap,
    /// The body after Content-Encoding was undone.
    pub body: Bytes,
    /// Subresources found when the body is HTML.
    pub subresources: Vec<(Kind, Url)>,
}

/// A page and everything it pulled in.
#[derive(Debug)]
pub struct Page {
    pub main: Fetched,
    pub subresources: Vec<Result<Fetched, BrowserError>>,
}

/// What a request sends besides what every request carries: its method,
/// extra header fields and body (a GET with none by default).
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub method: Method,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Send cookies and keep the ones set (off for cross-origin requests,
    /// as `fetch()`'s default "same-origin" credentials mode).
    pub credentials: bool,
    /// The page (or previous redirect hop) that made this request; `None`
    /// when the person typed the URL. Decides SameSite cookies.
    pub initiator: Option<Url>,
}

impl Default for Outgoing {
    fn default() -> Self {
        Outgoing {
            method: Method::GET,
            headers: Vec::new(),
            body: Bytes::new(),
            credentials: true,
            initiator: None,
        }
    }
}

impl Outgoing {
    /// A form submission (`application/x-www-form-urlencoded`).
    pub fn form(fields: &[(String, String)]) -> Outgoing {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        Outgoing {
            method: Method::POST,
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: Bytes::from(body),
            credentials: true,
            initiator: None,
        }
    }
}

/// Seconds since 1970, for cookie lifetimes.
fn unix_secs() -> i64 {
    (unix_millis() / 1000) as i64
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a request is for; decides Accept and the initiator shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    Document,
    Sub(Kind),
}

impl Destination {
    fn accept(self) -> &'static str {
        match self {
            Destination::Document => {
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
            }
            Destination::Sub(Kind::Stylesheet) => "text/css,*/*;q=0.1",
            Destination::Sub(Kind::Script) => "*/*",
            Destination::Sub(Kind::Image) => "image/avif,image/webp,image/png,image/*,*/*;q=0.8",
        }
    }
    fn initiator(self) -> &'static str {
        match self {
            Destination::Document => "navigation",
            Destination::Sub(Kind::Stylesheet) => "parser: <link rel=stylesheet>",
            Destination::Sub(Kind::Script) => "parser: <script src>",
            Destination::Sub(Kind::Image) => "parser: <img src>",
        }
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// An open connection.
struct Conn {
    sender: Sender,
    remote: SocketAddr,
    fd: RawFd,
    times: Arc<IoTimes>,
    /// Its place among the origin's open connections (none on the
    /// shared copies of an HTTP/2 connection); held for its drop.
    _slot: Option<Slot>,
}

/// Open connections per origin at most, as Chrome and Firefox allow for
/// HTTP/1.1; a request beyond waits (`blocked`) for one to come free.
pub const CONNECTIONS_PER_ORIGIN: usize = 6;

/// The connection places of one origin, and a wake-up for requests
/// waiting for one (a place freed, or a connection back in the pool).
struct Places {
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
struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    freed: Arc<tokio::sync::Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.freed.notify_waiters();
    }
}

impl Conn {
    fn version(&self) -> &'static str {
        match self.sender {
            Sender::H1(_) => "HTTP/1.1",
            Sender::H2(_) => "HTTP/2",
        }
    }
}

type Origin = (String, String, u16);

/// A browser with its own host cache and connection pool.
pub struct Browser {
    cfg: BrowserConfig,
    lookup: LookupChain,
    tls: Arc<rustls::ClientConfig>,
    /// Idle HTTP/1.1 connections, and shared HTTP/2 connections, by origin.
    pool: Mutex<HashMap<Origin, Vec<Conn>>>,
    /// Connection places per origin (at most [`CONNECTIONS_PER_ORIGIN`]).
    places: Mutex<HashMap<Origin, Places>>,
    /// Answers kept for reuse (C30).
    cache: Mutex<crate::http_cache::HttpCache>,
    /// Where the HTTP cache is kept between runs, if anywhere.
    disk_cache: Option<std::path::PathBuf>,
    /// Servers outside the world (`--resolve`, `--cacert`, `-k`).
    reach: Reach,
    /// Speak HTTP/1.0 (C24): one request per connection, closed after.
    http10: bool,
    http09: bool,
    /// Cookies, sent back with every request they apply to.
    jar: Mutex<crate::cookies::Jar>,
    /// Hosts reached over HTTPS only (C33).
    hsts: Mutex<crate::hsts::Hsts>,
    rec: Recorder,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Browser {
    pub fn new(
        cfg: BrowserConfig,
        lookup: LookupChain,
        rec: Recorder,
    ) -> Result<Self, BrowserError> {
        let tls = tls_config(&cfg, &Reach::default())?;
        // A store that cannot be read starts empty (it only ever makes
        // the browser safer than without it).
        let hsts = cfg
            .hsts_file
            .as_ref()
            .and_then(|p| read_bounded(p, 4 << 20).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Browser {
            cfg,
            lookup,
            tls: Arc::new(tls),
            pool: Mutex::new(HashMap::new()),
            places: Mutex::new(HashMap::new()),
            cache: Mutex::default(),
            disk_cache: None,
            reach: Reach::default(),
            http10: false,
            http09: false,
            jar: Mutex::new(Default::default()),
            hsts: Mutex::new(hsts),
            rec,
        })
    }

    /// The same browser with a disk cache: its HTTP cache starts from
    /// `path` (a file `save_cache` wrote; an unreadable one starts empty,
    /// with a note why in the result) and is written back by `save_cache`.
    pub fn with_disk_cache(self, path: std::path::PathBuf) -> (Self, Option<String>) {
        let now = (std::time::Instant::now(), unix_millis());
        let (cache, trouble) = match read_bounded(&path, MAX_CACHE_FILE) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Default::default(), None),
            Err(e) => (Default::default(), Some(format!("{}: {e}", path.display()))),
            Ok(bytes) => match crate::http_cache::HttpCache::from_disk(&bytes, now.0, now.1) {
                Ok(c) => (c, None),
                Err(e) => (Default::default(), Some(format!("{}: {e}", path.display()))),
            },
        };
        *lock(&self.cache) = cache;
        (
            Browser {
                disk_cache: Some(path),
                ..self
            },
            trouble,
        )
    }

    /// Writes the HTTP cache to the disk-cache file, when there is one
    /// (through a temporary file, so a crash never leaves half a file).
    pub fn save_cache(&self) -> std::io::Result<()> {
        let Some(path) = &self.disk_cache else {
            return Ok(());
        };
        let bytes = lock(&self.cache).to_disk(std::time::Instant::now(), unix_millis());
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }

    /// The same browser reaching servers outside the world as `reach`
    /// says (curl's `--resolve`, `--cacert`, `-k`).
    pub fn reaching(mut self, reach: Reach) -> Result<Self, BrowserError> {
        self.tls = Arc::new(tls_config(&self.cfg, &reach)?);
        self.reach = reach;
        Ok(self)
    }

    /// The same browser speaking HTTP/1.0 (C24): request lines say
    /// `HTTP/1.0`, no keep-alive is asked for, so every request opens its
    /// own connection and the server closes it after the answer.
    /// Speaks HTTP/0.9 (C23): `GET /path`, and the answer is the body
    /// alone, ended by the server's close.
    pub fn speaking_http09(mut self) -> Self {
        self.http09 = true;
        self
    }

    /// Loads cookies from a Netscape cookie file (curl's `-b FILE`);
    /// returns how many.
    pub fn load_cookies(&self, text: &str) -> Result<usize, String> {
        lock(&self.jar).load_netscape(text, unix_secs())
    }

    /// The jar as a Netscape cookie file (curl's `-c FILE`).
    pub fn cookie_file(&self) -> String {
        lock(&self.jar).to_netscape(unix_secs())
    }

    pub fn speaking_http10(mut self) -> Self {
        self.http10 = true;
        self
    }

    /// The lookup chain (to clear its browser cache, for instance).
    pub fn lookup(&self) -> &LookupChain {
        &self.lookup
    }

    /// Loads `url` as a page: the document, then its subresources in
    /// parallel. Returns the trace id whatever happened.
    pub async fn navigate(&self, url: &str) -> (TraceId, Result<Page, BrowserError>) {
        let ctx = Ctx::new_root();
        let result = self.navigate_in(ctx, url).await;
        self.report_connections(ctx);
        (ctx.trace, result)
    }

    async fn navigate_in(&self, ctx: Ctx, url: &str) -> Result<Page, BrowserError> {
        let url = Url::parse(url).map_err(|e| BrowserError::url(format!("{url:?}: {e}")))?;
        let main = self.fetch(ctx, 0, &url, Destination::Document).await?;
        let subs = main.subresources.clone();
        // Each subresource is the page's request (SameSite asks whose).
        let from_page = Outgoing {
            initiator: Some(main.url.clone()),
            ..Outgoing::default()
        };
        let fetches = subs.iter().enumerate().map(|(i, (kind, u))| {
            self.send(ctx, i as u32 + 1, u, Destination::Sub(*kind), &from_page)
        });
        let subresources = futures::future::join_all(fetches).await;
        Ok(Page { main, subresources })
    }

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

    /// One GET, recorded as request `n` of the trace.
    pub async fn fetch(
        &self,
        ctx: Ctx,
        n: u32,
        url: &Url,
        dest: Destination,
    ) -> Result<Fetched, BrowserError> {
        self.send(ctx, n, url, dest, &Outgoing::default()).await
    }

    /// Where a request comes from, for the jar's SameSite rules.
    fn cookie_context(dest: Destination, out: &Outgoing) -> crate::cookies::Context {
        crate::cookies::Context {
            initiator: out.initiator.clone(),
            top_level: matches!(dest, Destination::Document),
            safe_method: matches!(
                out.method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            ),
        }
    }

    /// One request with `out`'s method, fields and body, recorded as
    /// request `n` of the trace. Redirects are not followed: the caller
    /// sees the 3xx and its Location.
    pub async fn send(
        &self,
        ctx: Ctx,
        n: u32,
        url: &Url,
        dest: Destination,
        out: &Outgoing,
    ) -> Result<Fetched, BrowserError> {
        let nav = self.rec.begin(ctx, Layer::Application).request(Some(n));
        let result = self.through_cache(nav.ctx(), n, url, dest, out).await;
        self.rec.end(
            nav,
            Event::Navigate {
                url: url.to_string(),
                initiator: dest.initiator().into(),
            },
        );
        result
    }

    /// The request headers a stored answer's Vary may name, as this
    /// request will carry them.
    fn vary_view(&self, url: &Url, dest: Destination, out: &Outgoing) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        let mut add = |k: &str, v: &str| {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                h.append(k, v);
            }
        };
        add("user-agent", &self.cfg.user_agent);
        add("accept", dest.accept());
        add("accept-encoding", "gzip, deflate, br");
        if out.credentials
            && let Some(c) =
                lock(&self.jar).header(url, unix_secs(), &Self::cookie_context(dest, out))
        {
            add("cookie", &c);
        }
        for (k, v) in &out.headers {
            add(k, v);
        }
        h
    }

    /// A request through the private HTTP cache (C30): a fresh stored
    /// answer is used with no request at all; a stale one is asked for
    /// again with its validators, and a 304 brings the stored body back;
    /// a cacheable answer is kept. Each decision is a step of the trace.
    async fn through_cache(
        &self,
        ctx: Ctx,
        n: u32,
        url: &Url,
        dest: Destination,
        out: &Outgoing,
    ) -> Result<Fetched, BrowserError> {
        if out.method != Method::GET || !out.body.is_empty() {
            return self.fetch_stages(ctx, n, url, dest, out).await;
        }
        let req = self.vary_view(url, dest, out);
        let looked = lock(&self.cache).lookup(url, &req, std::time::Instant::now());
        let say = |text: String| self.instant(ctx, n, Layer::Application, Event::Note { text });
        let mut asked = out.clone();
        let mut revalidating = false;
        match looked {
            http_cache::Lookup::Fresh(e) => {
                let now = std::time::Instant::now();
                say(format!(
                    "HTTP cache (C30): {url} is fresh (age {} s of {} s): no request sent",
                    e.age(now).as_secs(),
                    e.lifetime.as_secs()
                ));
                let e = *e;
                return Ok(Fetched {
                    request: n,
                    url: url.clone(),
                    status: e.status,
                    version: e.version,
                    headers: e.headers,
                    body: e.body,
                    subresources: e.subresources,
                });
            }
            http_cache::Lookup::Stale(validators) => {
                let shown: Vec<String> = validators
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                say(format!(
                    "HTTP cache (C30): the stored copy of {url} must be checked: asking with {}",
                    shown.join(", ")
                ));
                asked.headers.extend(validators);
                revalidating = true;
            }
            http_cache::Lookup::Miss => {}
        }
        let got = self.fetch_stages(ctx, n, url, dest, &asked).await?;
        let now = std::time::Instant::now();
        if got.status == 304 && revalidating {
            let Some(e) = lock(&self.cache).refresh(url, &got.headers, now) else {
                return Ok(got);
            };
            say(format!(
                "HTTP cache (C30): 304 Not Modified: the stored body ({} bytes) is used, not sent again",
                e.body.len()
            ));
            return Ok(Fetched {
                request: n,
                url: url.clone(),
                status: e.status,
                version: got.version,
                headers: e.headers,
                body: e.body,
                subresources: e.subresources,
            });
        }
        let kept = lock(&self.cache).store(
            url,
            &req,
            got.status,
            got.version,
            &got.headers,
            &got.body,
            &got.subresources,
            now,
        );
        if let Ok(lifetime) = kept {
            say(format!(
                "HTTP cache (C30): {url} kept, fresh for {} s{}",
                lifetime.as_secs(),
                if lifetime.is_zero() {
                    " (checked with its validators each time)"
                } else {
                    ""
                }
            ));
        }
        Ok(got)
    }

    /// The https:// URL to use instead of `url` when its host is a known
    /// HSTS host (RFC 6797 §8.3: port 80 becomes 443), recorded as a step.
    fn hsts_upgrade(&self, ctx: Ctx, n: u32, url: &Url) -> Option<Url> {
        if url.scheme() != "http" {
            return None;
        }
        let why = lock(&self.hsts).must_upgrade(url.host_str()?, unix_secs())?;
        let mut to = url.clone();
        to.set_scheme("https").ok()?;
        if url.port() == Some(80) {
            to.set_port(None).ok()?;
        }
        self.instant(
            ctx,
            n,
            Layer::Application,
            Event::Note {
                text: format!(
                    "HSTS (C33): {url} becomes {to} before any packet leaves: {why}; no plain request for a man in the middle to strip"
                ),
            },
        );
        Some(to)
    }

    /// Notes a Strict-Transport-Security header and keeps the store.
    fn note_hsts(&self, scheme: &str, host: &str, value: &str) {
        let mut store = lock(&self.hsts);
        let noted = store.note(scheme, host, value, unix_secs());
        // Written when the rule is new or gone, not each time an answer
        // renews it (every answer of an HSTS site carries the header).
        let changed = matches!(
            noted,
            crate::hsts::Noted::Kept { new: true, .. } | crate::hsts::Noted::Forgotten(_)
        );
        if changed && let Some(path) = &self.cfg.hsts_file {
            // Best effort: a store that cannot be written lasts this run.
            if let Ok(bytes) = serde_json::to_vec(&*store) {
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, bytes).is_ok() {
                    let _ = std::fs::rename(&tmp, path);
                }
            }
        }
    }

    pub(crate) fn instant(&self, ctx: Ctx, n: u32, layer: Layer, event: Event) {
        let t = now_ns();
        self.rec.span(ctx, layer, (t, t), Some(n), event);
    }

    async fn fetch_stages(
        &self,
        ctx: Ctx,
        n: u32,
        url: &Url,
        dest: Destination,
        out: &Outgoing,
    ) -> Result<Fetched, BrowserError> {
        // C33: a known HSTS host is never asked over plain HTTP.
        let upgraded = self.hsts_upgrade(ctx, n, url);
        let url = upgraded.as_ref().unwrap_or(url);
        // C01: the URL taken apart.
        let scheme = url.scheme().to_string();
        if scheme != "http" && scheme != "https" {
            return Err(BrowserError::url(format!("unsupported scheme {scheme:?}")));
        }
        let host = url
            .host_str()
            .ok_or_else(|| BrowserError::url(format!("{url} has no host")))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        self.instant(
            ctx,
            n,
            Layer::Application,
            Event::UrlParsed {
                scheme: scheme.clone(),
                host: host.clone(),
                port,
                default_port: url.port().is_none(),
                path: url.path().into(),
                query: url.query().map(str::to_string),
                fragment: url.fragment().map(str::to_string),
            },
        );
        if self.http09 {
            return self.fetch_http09(ctx, n, url, &host, port, out).await;
        }
        // The connection first: its protocol decides the request's form.
        let origin = (scheme.clone(), host.clone(), port);
        let conn = match self.checkout(ctx, n, &origin).await {
            Ok(c) => {
                self.instant(
                    ctx,
                    n,
                    Layer::Transport,
                    Event::ConnectionReused {
                        remote: c.remote.to_string(),
                        version: c.version().into(),
                    },
                );
                c
            }
            Err(slot) => self.open(ctx, n, &scheme, &host, port, slot).await?,
        };
        // C02: the request head. The fragment is never part of it.
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let h2 = matches!(conn.sender, Sender::H2(_));
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let method = out.method.to_string();
        let mut req = Request::builder().method(out.method.clone());
        // HTTP/2 sends pseudo-headers first and every name in lowercase
        // (RFC 9113 §8.2.1, §8.3); hyper's HTTP/1.1 head is captured from
        // the connection below.
        let mut shown: Vec<(String, String)> = Vec::new();
        req = if h2 {
            shown.extend([
                (":method".to_string(), method.clone()),
                (":scheme".into(), scheme.clone()),
                (":authority".into(), authority.clone()),
                (":path".into(), target.clone()),
            ]);
            req.uri(format!("{scheme}://{authority}{target}"))
                .version(Version::HTTP_2)
        } else if self.http10 {
            req.uri(target.as_str())
                .version(Version::HTTP_10)
                .header(header::HOST, authority.as_str())
        } else {
            req.uri(target.as_str())
                .header(header::HOST, authority.as_str())
        };
        let mut common = vec![
            ("User-Agent", self.cfg.user_agent.clone()),
            ("Accept", dest.accept().to_string()),
            ("Accept-Language", "en-US,en;q=0.9,ko;q=0.8".to_string()),
            ("Accept-Encoding", "gzip, deflate, br".to_string()),
        ];
        if !h2 && !self.http10 {
            common.push(("Connection", "keep-alive".to_string()));
        }
        // C34: the cookies the jar holds for this URL.
        if let Some(c) = lock(&self.jar)
            .header(url, unix_secs(), &Self::cookie_context(dest, out))
            .filter(|_| out.credentials)
        {
            common.push(("Cookie", c));
        }
        let mut wait = self.rec.begin(ctx, Layer::Application).request(Some(n));
        let traceparent = ctx.traceparent(wait.id);
        common.push(("traceparent", traceparent));
        let extra = out.headers.iter().map(|(k, v)| (k.as_str(), v));
        for (k, v) in common.iter().map(|(k, v)| (*k, v)).chain(extra) {
            req = req.header(k, v.as_str());
            shown.push((k.to_ascii_lowercase(), v.clone()));
        }
        let req = req
            .body(Full::new(out.body.clone()))
            .map_err(|e| BrowserError::http(format!("cannot build the request: {e}")))?;
        // Send, then wait for the head (TTFB), then read the body.
        let t_send = now_ns();
        let mut conn = conn;
        if !h2 {
            conn.times.start_capture();
        }
        let mut h2_send = 0;
        let sent = match &mut conn.sender {
            Sender::H1(s) => {
                s.ready().await.map_err(BrowserError::http)?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await.map_err(BrowserError::http)?;
                // Counted and handed over with no await between, so the
                // count is the order in which streams are opened.
                h2_send = conn.times.h2_sends.fetch_add(1, Ordering::Relaxed);
                s.send_request(req).await
            }
        };
        let captured = conn.times.take_capture();
        let resp = sent.map_err(BrowserError::http)?;
        let t_head = now_ns();
        // C02: the head as it went out (HTTP/1.1: the bytes written).
        let prepared = if h2 {
            let stream = 2 * h2_send + 1;
            let header_block = conn
                .times
                .h2
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(|w| w.block(stream));
            Event::RequestPrepared {
                method: method.clone(),
                target: target.clone(),
                version: conn.version().into(),
                headers: shown,
                header_block,
            }
        } else {
            wire_head(&captured).unwrap_or_else(|| Event::RequestPrepared {
                method: method.clone(),
                target: target.clone(),
                version: conn.version().into(),
                headers: vec![("(head not captured)".into(), String::new())],
                header_block: None,
            })
        };
        self.rec
            .span(ctx, Layer::Application, (t_send, t_send), Some(n), prepared);
        let t_written = conn
            .times
            .last_write_ns
            .load(Ordering::Relaxed)
            .clamp(t_send, t_head);
        self.rec.span(
            ctx,
            Layer::Application,
            (t_send, t_written),
            Some(n),
            Event::RequestSent {
                method: method.clone(),
                url: url.to_string(),
                version: conn.version().into(),
            },
        );
        let status = resp.status().as_u16();
        wait.start_ns = t_written;
        let head: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        self.rec.end_at(
            wait,
            t_head,
            Event::Waiting {
                status,
                headers: head,
            },
        );
        let version = resp.version();
        let (parts, body) = resp.into_parts();
        // C33: a host that asks, over HTTPS, to be reached that way only.
        if let Some(v) = parts.headers.get(header::STRICT_TRANSPORT_SECURITY)
            && let (Ok(v), Some(host)) = (v.to_str(), url.host_str())
        {
            self.note_hsts(url.scheme(), host, v);
        }
        // C34: what the server asked the jar to keep.
        if out.credentials {
            let mut jar = lock(&self.jar);
            let now = unix_secs();
            for v in parts.headers.get_all(header::SET_COOKIE) {
                if let Ok(v) = v.to_str() {
                    jar.store(url, v, now);
                }
            }
        }
        let recv = self.rec.begin(ctx, Layer::Application).request(Some(n));
        let body = http_body_util::Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                BrowserError::http(format!("reading the body: {e} (at most {MAX_BODY} bytes)"))
            })?
            .to_bytes();
        let header_str = |h: header::HeaderName| {
            parts
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header_str(header::CONTENT_TYPE);
        let encoding = header_str(header::CONTENT_ENCODING);
        self.rec.end(
            recv,
            Event::BodyReceived {
                status,
                content_type: content_type.clone(),
                content_encoding: encoding.clone(),
                wire_bytes: body.len() as u64,
            },
        );
        // The kernel's view of the connection once this response is in.
        if let Some(info) = tcp_info(conn.fd) {
            self.instant(
                ctx,
                n,
                Layer::Transport,
                tcp_info_event(conn.remote, &info, true),
            );
        }
        self.put(origin, conn);
        // Client-side processing: decode, then scan HTML.
        let body = match encoding.as_deref() {
            Some(enc) if !enc.eq_ignore_ascii_case("identity") => {
                let span = self.rec.begin(ctx, Layer::Application).request(Some(n));
                let decoded = decode(enc, &body);
                self.rec.end(
                    span,
                    Event::Decoded {
                        encoding: enc.into(),
                        wire_bytes: body.len() as u64,
                        decoded_bytes: decoded.as_ref().map_or(0, |d| d.len() as u64),
                    },
                );
                Bytes::from(decoded?)
            }
            _ => body,
        };
        let is_html = content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/html"));
        let subs = if dest == Destination::Document && is_html && (200..300).contains(&status) {
            let span = self.rec.begin(ctx, Layer::Application).request(Some(n));
            let subs = subresources(&body, url);
            self.rec.end(
                span,
                Event::HtmlParsed {
                    subresources: subs.iter().map(|(_, u)| u.path().to_string()).collect(),
                },
            );
            subs
        } else {
            Vec::new()
        };
        Ok(Fetched {
            request: n,
            url: url.clone(),
            status,
            version,
            headers: parts.headers,
            body,
            subresources: subs,
        })
    }

    /// A pooled connection for `origin`, or the place to open a new one
    /// (`Err`): with all of the origin's places taken, waits for one to
    /// come free or a connection to come back, and says so in the trace.
    async fn checkout(&self, ctx: Ctx, n: u32, origin: &Origin) -> Result<Conn, Option<Slot>> {
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

    fn take(&self, origin: &Origin) -> Option<Conn> {
        let mut pool = lock(&self.pool);
        let conns = pool.get_mut(origin)?;
        conns.retain(|c| match &c.sender {
            Sender::H1(s) => !s.is_closed(),
            Sender::H2(s) => !s.is_closed(),
        });
        // HTTP/2: share the connection (multiplexing); HTTP/1.1: take it.
        if let Some(c) = conns.iter().find(|c| matches!(c.sender, Sender::H2(_))) {
            let Sender::H2(s) = &c.sender else {
                return None;
            };
            return Some(Conn {
                sender: Sender::H2(s.clone()),
                remote: c.remote,
                fd: c.fd,
                times: c.times.clone(),
                _slot: None,
            });
        }
        let idx = conns.iter().position(|c| match &c.sender {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(_) => false,
        })?;
        Some(conns.swap_remove(idx))
    }

    fn put(&self, origin: Origin, conn: Conn) {
        // Whoever waits for a connection to this origin may take this one.
        if let Some(p) = lock(&self.places).get(&origin) {
            p.freed.notify_waiters();
        }
        let mut pool = lock(&self.pool);
        let conns = pool.entry(origin).or_default();
        // One entry per HTTP/2 connection is enough: it is shared.
        if matches!(conn.sender, Sender::H2(_)) && conns.iter().any(|c| c.fd == conn.fd) {
            return;
        }
        conns.push(conn);
    }

    /// Lookup, TCP connect and (for https) TLS: the `dns`, `connect` and
    /// `ssl` stages.
    /// HTTP/0.9 (C23): the request is `GET /path` and nothing more; the
    /// answer is the body alone, no status and no headers, ended by the
    /// server closing the connection. Written by hand: hyper has no
    /// HTTP/0.9 client.
    async fn fetch_http09(
        &self,
        ctx: Ctx,
        n: u32,
        url: &Url,
        host: &str,
        port: u16,
        out: &Outgoing,
    ) -> Result<Fetched, BrowserError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if url.scheme() != "http" {
            return Err(BrowserError::url(
                "HTTP/0.9 has no TLS: give an http:// URL (e.g. a web server's own address)",
            ));
        }
        if out.method != Method::GET || !out.body.is_empty() {
            return Err(BrowserError::http(
                "HTTP/0.9 knows only GET, without a body",
            ));
        }
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let (mut tcp, remote, fd) = self.reach_tcp(ctx, n, host, port).await?;
        let t_send = now_ns();
        tcp.write_all(format!("GET {target}\r\n").as_bytes())
            .await
            .map_err(|e| BrowserError::http(format!("sending the request: {e}")))?;
        let t_written = now_ns();
        self.rec.span(
            ctx,
            Layer::Application,
            (t_send, t_send),
            Some(n),
            Event::RequestPrepared {
                method: "GET".into(),
                target,
                version: "HTTP/0.9".into(),
                headers: vec![],
                header_block: None,
            },
        );
        self.rec.span(
            ctx,
            Layer::Application,
            (t_send, t_written),
            Some(n),
            Event::RequestSent {
                method: "GET".into(),
                url: url.to_string(),
                version: "HTTP/0.9".into(),
            },
        );
        let mut body = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        let mut first = None;
        loop {
            let got = tokio::time::timeout(HTTP09_READ_TIMEOUT, tcp.read(&mut chunk))
                .await
                .map_err(|_| BrowserError::http("HTTP/0.9: no byte from the server in 30 s"))?
                .map_err(|e| BrowserError::http(format!("reading the answer: {e}")))?;
            if got == 0 {
                break;
            }
            first.get_or_insert_with(now_ns);
            if body.len() + got > MAX_BODY {
                return Err(BrowserError::http(format!(
                    "HTTP/0.9 answer over {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk[..got]);
        }
        let t_end = now_ns();
        let t_first = first.unwrap_or(t_end);
        self.rec.span(
            ctx,
            Layer::Application,
            (t_written, t_first),
            Some(n),
            Event::Waiting {
                status: 0,
                headers: vec![],
            },
        );
        self.rec.span(
            ctx,
            Layer::Application,
            (t_first, t_end),
            Some(n),
            Event::BodyReceived {
                status: 0,
                content_type: None,
                content_encoding: None,
                wire_bytes: body.len() as u64,
            },
        );
        if let Some(info) = tcp_info(fd) {
            self.instant(
                ctx,
                n,
                Layer::Transport,
                tcp_info_event(remote, &info, true),
            );
        }
        Ok(Fetched {
            request: n,
            url: url.clone(),
            status: 0,
            version: Version::HTTP_09,
            headers: HeaderMap::new(),
            body: Bytes::from(body),
            subresources: Vec::new(),
        })
    }

    async fn open(
        &self,
        ctx: Ctx,
        n: u32,
        scheme: &str,
        host: &str,
        port: u16,
        slot: Option<Slot>,
    ) -> Result<Conn, BrowserError> {
        let (tcp, remote, fd) = self.reach_tcp(ctx, n, host, port).await?;
        self.over(ctx, n, scheme, host, (tcp, remote, fd), slot)
            .await
    }

    /// The name looked up (or given) and a TCP connection to it, each a
    /// step of the trace: the stream, where it goes, its descriptor.
    async fn reach_tcp(
        &self,
        ctx: Ctx,
        n: u32,
        host: &str,
        port: u16,
    ) -> Result<(tokio::net::TcpStream, SocketAddr, RawFd), BrowserError> {
        let given = self
            .reach
            .resolve
            .iter()
            .find(|(h, p, _)| h.eq_ignore_ascii_case(host) && *p == port)
            .map(|(_, _, ip)| *ip);
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse();
        let ips: Vec<IpAddr> = match (literal, given) {
            (Ok(ip), _) => vec![ip], // an address literal needs no lookup
            (Err(_), Some(ip)) => {
                let span = self.rec.begin(ctx, Layer::Application).request(Some(n));
                let text = format!("{host}:{port} is at {ip} by --resolve: no lookup");
                self.rec.end(span, Event::Note { text });
                vec![ip]
            }
            (Err(_), None) => {
                self.lookup
                    .lookup(ctx, Some(n), host)
                    .await
                    .map_err(BrowserError::dns)?
                    .addrs
            }
        };
        let real_port = self
            .cfg
            .port_map
            .iter()
            .find(|(from, _)| *from == port)
            .map_or(port, |(_, to)| *to);
        // The addresses in the order the lookup gave them (IPv6 first
        // when there are both); a failed connect moves on to the next.
        let mut t0 = now_ns();
        let mut tried = ips.iter().peekable();
        let (tcp, remote) = loop {
            let Some(ip) = tried.next() else {
                return Err(BrowserError::connect(format!("{host}: no address")));
            };
            let remote = SocketAddr::new(*ip, real_port);
            let bind = match ip {
                IpAddr::V4(_) => self.cfg.bind,
                IpAddr::V6(_) => {
                    IpAddr::V6(self.cfg.bind6.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED))
                }
            };
            match connect(bind, remote).await {
                Ok(tcp) => break (tcp, remote),
                Err(e) => {
                    let Some(next) = tried.peek() else {
                        return Err(e);
                    };
                    let span = self.rec.begin(ctx, Layer::Transport).request(Some(n));
                    let text = format!(
                        "connect to {remote} failed ({e}); trying {host}'s next address, {next}"
                    );
                    self.rec.end(span, Event::Note { text });
                    t0 = now_ns();
                }
            }
        };
        let t1 = now_ns();
        let fd = fd_of(&tcp);
        let local = tcp.local_addr().map_err(BrowserError::connect)?;
        let info = tcp_info(fd).unwrap_or_default();
        self.rec.span(
            ctx,
            Layer::Transport,
            (t0, t1),
            Some(n),
            Event::TcpConnect {
                local: local.to_string(),
                remote: remote.to_string(),
                rtt_us: info.rtt_us,
                rttvar_us: info.rttvar_us,
                cwnd: info.cwnd,
                ssthresh: info.ssthresh,
                mss: info.mss,
                retransmits: info.total_retrans,
                delivery_rate_bps: info.delivery_rate_bps,
            },
        );
        Ok((tcp, remote, fd))
    }

    /// TLS when the scheme asks for it, then HTTP/2 or HTTP/1.x on `tcp`.
    async fn over(
        &self,
        ctx: Ctx,
        n: u32,
        scheme: &str,
        host: &str,
        (tcp, remote, fd): (tokio::net::TcpStream, SocketAddr, RawFd),
        slot: Option<Slot>,
    ) -> Result<Conn, BrowserError> {
        let times = Arc::new(IoTimes::default());
        if scheme == "https" {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| BrowserError::tls(format!("{host:?}: {e}")))?;
            let t2 = now_ns();
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| BrowserError::tls(format!("{host} ({remote}): {e}")))?;
            let summary = tls_summary(tls.get_ref().1);
            if self.reach.insecure {
                let span = self.rec.begin(ctx, Layer::Application).request(Some(n));
                let text = format!(
                    "{host}'s certificate chain was not checked (-k): only that it holds its key"
                );
                self.rec.end(span, Event::Note { text });
            }
            self.rec.span(
                ctx,
                Layer::Session,
                (t2, now_ns()),
                Some(n),
                Event::TlsHandshake {
                    sni: host.into(),
                    version: summary.version,
                    cipher: summary.cipher,
                    group: summary.group,
                    alpn: summary.alpn.clone(),
                    chain: summary.chain,
                    verified_by: self.cfg.ca_label.clone(),
                },
            );
            let h2 = summary.alpn.as_deref() == Some("h2");
            if h2 {
                *times.h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(Default::default());
            }
            let sender = handshake(Timed::new(tls, times.clone()), h2).await?;
            Ok(Conn {
                sender,
                remote,
                fd,
                times,
                _slot: slot,
            })
        } else {
            let sender = handshake(Timed::new(tcp, times.clone()), false).await?;
            Ok(Conn {
                sender,
                remote,
                fd,
                times,
                _slot: slot,
            })
        }
    }
}

/// Starts HTTP/2 or HTTP/1.1 on an open stream.
async fn handshake<S>(io: S, h2: bool) -> Result<Sender, BrowserError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    if h2 {
        let (s, conn) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(BrowserError::http)?;
        tokio::spawn(conn);
        Ok(Sender::H2(s))
    } else {
        // Header names go out in the case browsers use on HTTP/1.1.
        let (s, conn) = http1::Builder::new()
            .title_case_headers(true)
            .handshake(io)
            .await
            .map_err(BrowserError::http)?;
        tokio::spawn(conn);
        Ok(Sender::H1(s))
    }
}

/// An HTTP/1.x request head as written: request line and header lines,
/// names in the case they were sent.
fn wire_head(bytes: &[u8]) -> Option<Event> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.splitn(3, ' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    Some(Event::RequestPrepared {
        method: method.into(),
        target: target.into(),
        version: version.into(),
        headers,
        header_block: None,
    })
}

/// The value of a response header, for printing.
pub fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

/// A TCP_INFO reading as an event: after a response, or at the end.
fn tcp_info_event(remote: SocketAddr, info: &crate::conn::TcpInfo, after_response: bool) -> Event {
    Event::TcpInfo {
        remote: remote.to_string(),
        after_response,
        rtt_us: info.rtt_us,
        rttvar_us: info.rttvar_us,
        cwnd: info.cwnd,
        ssthresh: info.ssthresh,
        total_retrans: info.total_retrans,
        delivery_rate_bps: info.delivery_rate_bps,
        bytes_sent: info.bytes_sent,
        bytes_received: info.bytes_received,
    }
}

/// The largest disk-cache file read (its bodies are bounded to 32 MiB,
/// which base64 makes ~43 MiB).
const MAX_CACHE_FILE: u64 = 64 << 20;

/// A file's bytes, refused when it is larger than `max` (never read
/// whole first: `/dev/zero` or a huge file is named as too large).
pub fn read_bounded(path: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(bytes)
}

/// The most of a response body the browser reads.
const MAX_BODY: usize = 64 << 20;

/// How long an HTTP/0.9 answer may go without a byte.
const HTTP09_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
