//! The browser: a page load as a sequence of timed stages, recorded into one
//! trace (C01–C07): URL → request head → lookup chain → TCP → TLS → HTTP/1.1
//! or HTTP/2 (by ALPN) → body → decode → HTML scan → subresources in parallel.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version, header};
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

mod exchange;
mod http09;
mod pool;
mod post;
mod prepare;
mod transport;

use exchange::tcp_info_event;
use pool::{Conn, Origin, Places, Sender, Slot};
use transport::tls_config;

pub use pool::CONNECTIONS_PER_ORIGIN;

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
    /// RFC 9218's `priority` for this kind of resource, sent over HTTP/2
    /// as Chromium does: the page and its stylesheets most urgent, scripts
    /// next, images after them and useful in pieces (incremental).
    fn priority(self) -> &'static str {
        match self {
            Destination::Document => "u=0, i",
            Destination::Sub(Kind::Stylesheet) => "u=0",
            Destination::Sub(Kind::Script) => "u=1",
            Destination::Sub(Kind::Image) => "u=2, i",
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
    /// Pipeline HTTP/1.1 requests (C25): one connection per origin, each
    /// request written without waiting for the answers before it.
    pipeline: bool,
    /// Neither use nor fill the HTTP cache, and ask stores for a fresh
    /// copy (`--no-cache`, as DevTools' "Disable cache").
    no_cache: bool,
    /// Cookies, sent back with every request they apply to.
    jar: Mutex<crate::cookies::Jar>,
    /// Hosts reached over HTTPS only (C33).
    hsts: Mutex<crate::hsts::Hsts>,
    /// What CORS preflights allowed, for their Access-Control-Max-Age.
    pub(crate) preflights: Mutex<crate::cors::PreflightCache>,
    rec: Recorder,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
            pipeline: false,
            no_cache: false,
            jar: Mutex::new(Default::default()),
            hsts: Mutex::new(hsts),
            preflights: Mutex::default(),
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

    /// The same browser pipelining its HTTP/1.1 requests (C25): ALPN
    /// offers HTTP/1.1 only, and requests to one origin share one
    /// connection, written back to back; the answers come in order, so a
    /// slow one holds up those behind it (head-of-line blocking).
    pub fn pipelining(mut self) -> Result<Self, BrowserError> {
        self.pipeline = true;
        self.cfg.http1_only = true;
        self.tls = Arc::new(tls_config(&self.cfg, &self.reach)?);
        Ok(self)
    }

    /// The same browser with its HTTP cache off (`--no-cache`).
    pub fn without_cache(mut self) -> Self {
        self.no_cache = true;
        self
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
        if out.method != Method::GET || !out.body.is_empty() || self.no_cache {
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

    pub(crate) fn instant(&self, ctx: Ctx, n: u32, layer: Layer, event: Event) {
        let t = now_ns();
        self.rec.span(ctx, layer, (t, t), Some(n), event);
    }

    /// One request through the browser's stages, each its own module:
    /// prepare (HSTS upgrade, URL, cookies, head), a connection for the
    /// origin (pool or transport), the exchange, and what comes after
    /// (HSTS and cookies kept, decoding, the HTML scan).
    async fn fetch_stages(
        &self,
        ctx: Ctx,
        n: u32,
        url: &Url,
        dest: Destination,
        out: &Outgoing,
    ) -> Result<Fetched, BrowserError> {
        let target = self.target(ctx, n, url)?;
        if self.http09 {
            let (_, host, port) = &target.origin;
            return self
                .fetch_http09(ctx, n, &target.url, host, *port, out)
                .await;
        }
        // The connection first: its protocol decides the request's form.
        let (conn, reused) = self.connection_for(ctx, n, &target.origin).await?;
        let prep = self.request(&target, matches!(conn.sender, Sender::H2(_)), dest, out);
        let answer = match self
            .exchange(ctx, n, (target.origin.clone(), conn), &target.url, prep)
            .await
        {
            // A kept-alive connection the server closed as the request
            // went out: sent again on a new one, as browsers do, when
            // the method is idempotent (RFC 9110 §9.2.2).
            Err(e) if reused && e.is_unanswered() && out.method.is_idempotent() => {
                let text = format!(
                    "the reused connection failed before any answer ({e}); {} is idempotent, so it is sent again on a new connection",
                    out.method
                );
                self.instant(ctx, n, Layer::Transport, Event::Note { text });
                let (scheme, host, port) = &target.origin;
                let conn = self.open(ctx, n, scheme, host, *port, None).await?;
                let prep = self.request(&target, matches!(conn.sender, Sender::H2(_)), dest, out);
                self.exchange(ctx, n, (target.origin.clone(), conn), &target.url, prep)
                    .await?
            }
            other => other?,
        };
        self.after(ctx, n, &target.url, dest, out, answer)
    }
}

/// The value of a response header, for printing.
pub fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
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
