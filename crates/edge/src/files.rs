//! Static files (C44, C30, C31): a document root served with precise
//! types, validators (ETag, Last-Modified → 304), byte ranges (206/416),
//! compression (precompressed `.br`/`.gz` first, else gzip made once and
//! kept), and no way out of the root.
//!
//! An open-file cache keeps, per path, what a response needs: metadata,
//! the header values and, for small files, the bytes. An entry is trusted
//! for `REVALIDATE` and then checked with one `stat`; a changed size or
//! mtime reloads it. Large files are not kept: they stream from disk in
//! chunks. The cache is bounded in bytes and entries.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

use crate::body::{Body, BoxError};
use crate::http::text;

/// How long a cache entry is used without a `stat`.
const REVALIDATE: Duration = Duration::from_secs(1);
/// Files up to this size are kept in memory.
const KEEP_BELOW: u64 = 1 << 20;
/// Bytes of file content the cache holds at most.
const CACHE_BYTES: usize = 64 << 20;
/// Entries the cache holds at most.
const CACHE_ENTRIES: usize = 10_000;
/// Smaller bodies are not worth compressing.
pub const COMPRESS_ABOVE: u64 = 256;
/// Chunk size of a streamed file.
const CHUNK: usize = 64 * 1024;

/// A document root and its open-file cache.
pub struct Files {
    root: PathBuf,
    cache: Mutex<Cache>,
    /// Paths being loaded now, one lock each: requests that miss the
    /// cache for the same path at once wait for one load instead of each
    /// reading the file on its own thread of tokio's blocking pool (1000
    /// cold requests at once had started 500 threads, ~45 MB).
    loading: Loading,
    /// Files read from disk into the cache, ever.
    loads: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Cache {
    map: HashMap<PathBuf, Arc<Entry>>,
    bytes: usize,
}

/// Paths being loaded, each with the lock its loaders take turns on.
type Loading = Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>;

/// A place in the line for one path's load. Leaving it (done, failed, or
/// dropped because the client hung up mid-load) removes the path's entry
/// once nobody else holds it, so no path stays in the map.
struct Gate<'a> {
    loading: &'a Loading,
    path: &'a Path,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Gate<'a> {
    fn enter(loading: &'a Loading, path: &'a Path) -> Gate<'a> {
        let lock = loading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(path.to_path_buf())
            .or_default()
            .clone();
        Gate {
            loading,
            path,
            lock,
        }
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and ours: nobody else is waiting.
        if Arc::strong_count(&self.lock) <= 2 {
            loading.remove(self.path);
        }
    }
}

/// What is known of one file.
struct Entry {
    /// The file opened (after resolving symlinks, inside the root).
    real: PathBuf,
    len: u64,
    mtime: SystemTime,
    etag: HeaderValue,
    last_modified: HeaderValue,
    content_type: HeaderValue,
    compressible: bool,
    /// Whole content when small.
    data: Option<Bytes>,
    /// Precompressed siblings (`x.css.br`, `x.css.gz`), read with the entry.
    br: Option<Bytes>,
    gz_file: Option<Bytes>,
    /// gzip made on demand from `data`, once.
    gz_made: OnceLock<Option<Bytes>>,
    checked: Mutex<Instant>,
}

/// The outcome of serving one path, for the trace.
pub struct Served {
    pub response: Response<Body>,
    /// The file read, when one was.
    pub file: Option<PathBuf>,
    /// Bytes of the file sent (after range selection, before compression).
    pub bytes: u64,
    /// Why it was refused, when it was.
    pub refused: Option<String>,
}

impl Files {
    /// Serves files under `root` (which must exist).
    pub fn new(root: &Path) -> std::io::Result<Files> {
        Ok(Files {
            root: root.canonicalize()?,
            cache: Mutex::new(Cache::default()),
            loading: Mutex::new(HashMap::new()),
            loads: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many times a file was read from disk into the cache.
    pub fn loads(&self) -> u64 {
        self.loads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Serves `url_path` (percent-encoded, as it arrived).
    pub async fn serve(&self, url_path: &str, method: &Method, headers: &HeaderMap) -> Served {
        let refuse = |status: StatusCode, why: String| Served {
            response: text(status, &format!("{why}\n")),
            file: None,
            bytes: 0,
            refused: Some(why),
        };
        if !weblab_server::http::known_method(method) {
            return refuse(
                StatusCode::NOT_IMPLEMENTED,
                format!("{method} is not a method this server implements (RFC 9110 §9.1)"),
            );
        }
        if !matches!(*method, Method::GET | Method::HEAD) {
            let mut s = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "static files are read-only".into(),
            );
            s.response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return s;
        }
        let Some(rel) = relative_path(url_path) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the path is not a plain path inside the document root".into(),
            );
        };
        let entry = match self.entry(&rel).await {
            Ok(e) => e,
            Err(why) => return refuse(StatusCode::NOT_FOUND, why),
        };
        let file = Some(entry.real.clone());
        let mut s = respond(&entry, method, headers).await;
        s.file = file;
        s
    }

    fn cached(&self, rel: &Path) -> Option<Arc<Entry>> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(rel)
            .cloned()
    }

    async fn entry(&self, rel: &Path) -> Result<Arc<Entry>, String> {
        if let Some(e) = self.fresh(rel) {
            return Ok(e);
        }
        // One load per path at a time; whoever waited finds it cached.
        let gate = Gate::enter(&self.loading, rel);
        let _turn = gate.lock.lock().await;
        match self.fresh(rel) {
            Some(e) => Ok(e),
            None => self.load_and_keep(rel).await,
        }
    }

    /// The cached entry when it is still good (re-checked with one `stat`
    /// after `REVALIDATE`).
    fn fresh(&self, rel: &Path) -> Option<Arc<Entry>> {
        let now = Instant::now();
        if let Some(e) = self.cached(rel) {
            let mut checked = e.checked.lock().unwrap_or_else(|p| p.into_inner());
            if now.duration_since(*checked) < REVALIDATE {
                drop(checked);
                return Some(e);
            }
            // One stat: unchanged files keep their entry. It runs on the
            // worker thread, as nginx's does, rather than waking a thread
            // of tokio's blocking pool for it (not measured apart: the
            // whole file cache took bench/edge.sh from 0.29x to 0.5-0.8x
            // of nginx).
            if let Ok(m) = std::fs::metadata(&e.real)
                && m.len() == e.len
                && m.modified().ok() == Some(e.mtime)
            {
                *checked = now;
                drop(checked);
                return Some(e);
            }
        }
        None
    }

    async fn load_and_keep(&self, rel: &Path) -> Result<Arc<Entry>, String> {
        let entry = Arc::new(self.load(rel).await?);
        self.loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let size = entry.weight();
        if size <= CACHE_BYTES / 4 {
            if cache.bytes + size > CACHE_BYTES || cache.map.len() >= CACHE_ENTRIES {
                // Crude but bounded: start over rather than track recency.
                cache.map.clear();
                cache.bytes = 0;
            }
            if let Some(old) = cache.map.insert(rel.to_path_buf(), entry.clone()) {
                cache.bytes -= old.weight();
            }
            cache.bytes += size;
        }
        Ok(entry)
    }

    async fn load(&self, rel: &Path) -> Result<Entry, String> {
        let shown = rel.display();
        let mut path = self.root.join(rel);
        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) {
            path.push("index.html");
        }
        // Symlinks are followed only while they stay inside the root.
        let real = tokio::fs::canonicalize(&path)
            .await
            .map_err(|_| format!("/{shown} does not exist"))?;
        if !real.starts_with(&self.root) {
            return Err(format!("/{shown} leads outside the document root"));
        }
        let meta = tokio::fs::metadata(&real)
            .await
            .map_err(|e| format!("/{shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("/{shown} is not a file"));
        }
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let secs = mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ctype = content_type(&real);
        let compressible = is_compressible(ctype);
        let small = meta.len() <= KEEP_BELOW;
        let data = if small {
            Some(Bytes::from(
                tokio::fs::read(&real)
                    .await
                    .map_err(|e| format!("/{shown}: {e}"))?,
            ))
        } else {
            None
        };
        let sibling = |ext: &str| {
            let mut p = real.clone().into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        let (mut br, mut gz_file) = (None, None);
        if compressible && small {
            br = tokio::fs::read(sibling(".br")).await.ok().map(Bytes::from);
            gz_file = tokio::fs::read(sibling(".gz")).await.ok().map(Bytes::from);
        }
        let hv = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""));
        Ok(Entry {
            etag: hv(format!("\"{:x}-{:x}\"", meta.len(), secs)),
            last_modified: hv(httpdate::fmt_http_date(mtime)),
            content_type: HeaderValue::from_static(ctype),
            compressible,
            len: meta.len(),
            mtime,
            real,
            data,
            br,
            gz_file,
            gz_made: OnceLock::new(),
            checked: Mutex::new(Instant::now()),
        })
    }
}

impl Entry {
    fn weight(&self) -> usize {
        let n = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        256 + n(&self.data) + n(&self.br) + n(&self.gz_file) + self.len as usize / 2
    }

    /// The gzip representation, from a `.gz` file or made once.
    fn gzip(&self) -> Option<Bytes> {
        if let Some(g) = &self.gz_file {
            return Some(g.clone());
        }
        self.gz_made
            .get_or_init(|| {
                let data = self.data.as_ref()?;
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(data).ok()?;
                enc.finish().ok().map(Bytes::from)
            })
            .clone()
    }
}

/// Maps a URL path to a path relative to the root, decoding percent
/// escapes and refusing anything that could leave it: `..`, `.`, empty
/// segments that would make it absolute, NUL, backslashes, and encoded
/// slashes (`%2f` would change what a segment is).
pub fn relative_path(url_path: &str) -> Option<PathBuf> {
    let raw = url_path.strip_prefix('/')?;
    let mut out = PathBuf::new();
    for seg in raw.split('/') {
        if seg.is_empty() {
            continue;
        }
        let decoded = percent_decode(seg)?;
        if decoded.contains(['/', '\\', '\0']) {
            return None;
        }
        let p = Path::new(&decoded);
        let mut comps = p.components();
        match (comps.next(), comps.next()) {
            (Some(Component::Normal(c)), None) => out.push(c),
            _ => return None,
        }
    }
    if raw.ends_with('/') || raw.is_empty() {
        out.push("");
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The media type for a file name (the common web types; anything else is
/// `application/octet-stream`, which browsers download rather than run).
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "xml" => "application/xml",
        "txt" | "md" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

fn is_compressible(ctype: &str) -> bool {
    ctype.starts_with("text/")
        || ctype.contains("json")
        || ctype.contains("xml")
        || ctype.contains("svg")
        || ctype.contains("javascript")
        || ctype == "application/wasm"
        || ctype == "font/ttf"
        || ctype == "font/otf"
}

/// Whether the client accepts `coding` (RFC 9110 §12.5.3; `q=0` refuses,
/// `*` covers codings not named).
pub fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    let mut star = None;
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut it = item.split(';');
        let name = it.next().unwrap_or("").trim();
        let zero = it.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        if name.eq_ignore_ascii_case(coding) {
            return !zero;
        }
        if name == "*" {
            star = Some(!zero);
        }
    }
    star.unwrap_or(false)
}

/// A byte range request resolved against a length.
#[derive(Debug, PartialEq, Eq)]
pub enum Range {
    /// No usable Range: the whole representation.
    Whole,
    /// One satisfiable range, inclusive.
    Part(u64, u64),
    /// Nothing satisfiable: 416.
    Unsatisfiable,
}

/// Reads a `Range: bytes=...` header (RFC 9110 §14.2). Several ranges are
/// answered with the whole file (allowed: a server may ignore Range).
pub fn range(value: Option<&str>, len: u64) -> Range {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => Range::Unsatisfiable,
            Some(n) if len > 0 => Range::Part(len.saturating_sub(n), len - 1),
            Some(_) => Range::Unsatisfiable,
            None => Range::Whole,
        },
        (false, _) => match (num(a), if b.is_empty() { Some(u64::MAX) } else { num(b) }) {
            (Some(s), Some(e)) if s <= e => {
                if s >= len {
                    Range::Unsatisfiable
                } else {
                    Range::Part(s, e.min(len - 1))
                }
            }
            _ => Range::Whole,
        },
        (true, true) => Range::Whole,
    }
}

/// Whether an If-Match or If-None-Match `list` names `etag` (or is `*`).
/// RFC 9110 §8.8.3.2: If-None-Match compares weakly (a `W/` tag matches
/// its strong twin), If-Match strongly (a weak tag matches nothing).
fn etag_matches(list: &str, etag: &str, strong: bool) -> bool {
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t == etag || (!strong && t.trim_start_matches("W/") == etag)
    })
}

/// A response of `status` with no body, its headers so far in `b`. Only
/// a 304 keeps their Cache-Control (it refreshes the stored copy); a 412
/// or 416 answers this request's condition or range, and no cache should
/// keep it for the URL.
fn bodiless(mut b: http::response::Builder, status: StatusCode, refused: Option<String>) -> Served {
    if status != StatusCode::NOT_MODIFIED
        && let Some(h) = b.headers_mut()
    {
        h.remove(header::CACHE_CONTROL);
    }
    Served {
        response: b.status(status).body(Body::empty()).unwrap_or_default(),
        file: None,
        bytes: 0,
        refused,
    }
}

/// The response for one entry (conditional, range, coding).
async fn respond(e: &Entry, method: &Method, h: &HeaderMap) -> Served {
    let etag = e.etag.to_str().unwrap_or("");
    // The coding this client gets. Ranges are served from the identity
    // representation only.
    let wants_range = h.contains_key(header::RANGE);
    let coded: Option<(&'static str, Bytes)> =
        if e.compressible && e.len > COMPRESS_ABOVE && !wants_range {
            if let Some(b) = e.br.as_ref().filter(|_| accepts(h, "br")) {
                Some(("br", b.clone()))
            } else if accepts(h, "gzip") {
                e.gzip().map(|g| ("gzip", g))
            } else {
                None
            }
        } else {
            None
        };
    // Each representation has its own validator (RFC 9110 §8.8.3).
    let etag_for = |coding: Option<&str>| match coding {
        Some(c) => format!("{}-{c}\"", etag.trim_end_matches('"')),
        None => etag.to_string(),
    };
    let my_etag = etag_for(coded.as_ref().map(|c| c.0));
    let mut b = Response::builder()
        .header(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        )
        .header(header::LAST_MODIFIED, e.last_modified.clone())
        .header(header::ETAG, &my_etag)
        .header(header::ACCEPT_RANGES, "bytes");
    if e.compressible {
        b = b.header(header::VARY, "Accept-Encoding");
    }
    // HTTP dates have no fraction: compare whole seconds. A date that
    // does not parse is ignored, as if the header were not there.
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let date = |name: header::HeaderName| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(secs)
    };
    // RFC 9110 §13.2.2 steps 1-2: If-Match (strong comparison: a weak tag
    // never matches), or without it If-Unmodified-Since; failed → 412.
    let unmet = match h.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some(list) => (!etag_matches(list, &my_etag, true))
            .then(|| format!("If-Match: {list} does not name {my_etag}")),
        None => date(header::IF_UNMODIFIED_SINCE)
            .filter(|since| secs(e.mtime) > *since)
            .map(|_| "the file was modified after If-Unmodified-Since".to_string()),
    };
    if let Some(why) = unmet {
        let b = b.header(header::CONTENT_LENGTH, 0);
        return bodiless(b, StatusCode::PRECONDITION_FAILED, Some(why));
    }
    // Steps 3-4: If-None-Match; If-Modified-Since only without it.
    let not_modified = match h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        Some(list) => etag_matches(list, &my_etag, false),
        None => date(header::IF_MODIFIED_SINCE).is_some_and(|since| secs(e.mtime) <= since),
    };
    if not_modified {
        return bodiless(b, StatusCode::NOT_MODIFIED, None);
    }
    b = b.header(header::CONTENT_TYPE, e.content_type.clone());
    if let Some((coding, bytes)) = coded {
        let n = e.len;
        let r = b
            .header(header::CONTENT_ENCODING, coding)
            .header(header::CONTENT_LENGTH, bytes.len())
            .body(if method == Method::HEAD {
                Body::empty()
            } else {
                Body::new(bytes)
            })
            .unwrap_or_default();
        return Served {
            response: r,
            file: None,
            bytes: n,
            refused: None,
        };
    }
    // If-Range: a range only while the representation is the one the
    // client has (RFC 9110 §13.1.5).
    // A date there stands for Last-Modified, and must equal it.
    let if_range_ok = h
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| {
            v.trim() == my_etag
                || httpdate::parse_http_date(v.trim()).is_ok_and(|d| secs(d) == secs(e.mtime))
        });
    let range_value = h
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_ok);
    let (status, start, end) = match range(range_value, e.len) {
        Range::Whole => (StatusCode::OK, 0, e.len.saturating_sub(1)),
        Range::Part(s, en) => {
            b = b.header(header::CONTENT_RANGE, format!("bytes {s}-{en}/{}", e.len));
            (StatusCode::PARTIAL_CONTENT, s, en)
        }
        Range::Unsatisfiable => {
            let b = b.header(header::CONTENT_RANGE, format!("bytes */{}", e.len));
            let why = "the range is outside the file".to_string();
            return bodiless(b, StatusCode::RANGE_NOT_SATISFIABLE, Some(why));
        }
    };
    let count = if e.len == 0 { 0 } else { end - start + 1 };
    b = b.status(status).header(header::CONTENT_LENGTH, count);
    let body = if method == Method::HEAD || count == 0 {
        Body::empty()
    } else if let Some(d) = &e.data {
        Body::new(d.slice(start as usize..=end as usize))
    } else {
        match FileStream::open(&e.real, start, count).await {
            Ok(s) => Body::file(s),
            Err(err) => {
                let why = format!("cannot read {}: {err}", e.real.display());
                return Served {
                    response: text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{why}\n")),
                    file: None,
                    bytes: 0,
                    refused: Some(why),
                };
            }
        }
    };
    Served {
        response: b.body(body).unwrap_or_default(),
        file: None,
        bytes: count,
        refused: None,
    }
}

/// A file region read in chunks as the connection asks for them.
pub struct FileStream {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl FileStream {
    async fn open(path: &Path, start: u64, len: u64) -> std::io::Result<FileStream> {
        let mut file = tokio::fs::File::open(path).await?;
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start)).await?;
        }
        Ok(FileStream {
            file,
            remaining: len,
            buf: BytesMut::new(),
        })
    }

    pub(crate) fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (this.remaining as usize).min(CHUNK);
        if this.buf.capacity() < want {
            this.buf.reserve(want);
        }
        // SAFETY-free path: read into an initialised scratch region.
        this.buf.resize(want, 0);
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    this.remaining = 0;
                    return Poll::Ready(Some(Err("the file got shorter while being sent".into())));
                }
                this.remaining -= n as u64;
                let chunk = this.buf.split_to(n).freeze();
                this.buf.clear();
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_root() {
        assert_eq!(
            relative_path("/static/app.css"),
            Some(PathBuf::from("static/app.css"))
        );
        assert_eq!(
            relative_path("/static/a%20b.css"),
            Some(PathBuf::from("static/a b.css"))
        );
        for bad in [
            "/static/../secret",
            "/static/%2e%2e/secret",
            "/static/%2E%2E/secret",
            "/static/./x",
            "/static/a\\b",
            "/static/a%5cb",
            "/static/a%2fb",
            "/static/%00",
            "/static/%zz",
            "static/x",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
        // Empty segments are dropped, never turned into an absolute path.
        assert_eq!(
            relative_path("/static//etc/passwd"),
            Some(PathBuf::from("static/etc/passwd"))
        );
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range(None, 100), Range::Whole);
        assert_eq!(range(Some("bytes=0-9"), 100), Range::Part(0, 9));
        assert_eq!(range(Some("bytes=90-"), 100), Range::Part(90, 99));
        assert_eq!(range(Some("bytes=-10"), 100), Range::Part(90, 99));
        assert_eq!(range(Some("bytes=-500"), 100), Range::Part(0, 99));
        assert_eq!(range(Some("bytes=50-500"), 100), Range::Part(50, 99));
        assert_eq!(range(Some("bytes=100-"), 100), Range::Unsatisfiable);
        assert_eq!(range(Some("bytes=-0"), 100), Range::Unsatisfiable);
        assert_eq!(range(Some("bytes=9-0"), 100), Range::Whole);
        assert_eq!(range(Some("bytes=0-1,5-6"), 100), Range::Whole);
        assert_eq!(range(Some("items=0-1"), 100), Range::Whole);
    }

    #[test]
    fn codings_honour_q_zero_and_star() {
        let h = |v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            m
        };
        assert!(accepts(&h("br, gzip"), "gzip"));
        assert!(!accepts(&h("gzip;q=0, br"), "gzip"));
        assert!(!accepts(&h("gzip; q=0.0"), "gzip"));
        assert!(accepts(&h("gzip;q=0.5"), "gzip"));
        assert!(!accepts(&h("identity"), "gzip"));
        assert!(accepts(&h("*"), "br"));
        assert!(!accepts(&h("*, br;q=0"), "br"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
    }

    fn root_with(files: &[(&str, &[u8])]) -> (tempdir::Dir, Files) {
        let dir = tempdir::Dir::new();
        for (name, data) in files {
            let p = dir.0.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        let f = Files::new(&dir.0).unwrap();
        (dir, f)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "weblab-files-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    async fn body_of(r: Response<Body>) -> Vec<u8> {
        use http_body_util::BodyExt;
        r.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cold_requests_for_one_file_at_once_read_it_once() {
        let (_d, files) = root_with(&[("static/app.css", b"body {}"), ("a.txt", b"a")]);
        let files = Arc::new(files);
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let files = files.clone();
                tokio::spawn(async move {
                    let path = if i % 2 == 0 {
                        "/static/app.css"
                    } else {
                        "/a.txt"
                    };
                    files
                        .serve(path, &Method::GET, &HeaderMap::new())
                        .await
                        .response
                        .status()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        assert_eq!(files.loads(), 2, "one read per file");
        assert!(
            files.loading.lock().unwrap().is_empty(),
            "no gate left behind"
        );
        // A missing file is not cached, and leaves no gate either.
        let s = files
            .serve("/nope.txt", &Method::GET, &HeaderMap::new())
            .await;
        assert_eq!(s.response.status(), 404);
        assert!(files.loading.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_gone_in_the_middle_of_a_load_leaves_no_gate() {
        let (_d, files) = root_with(&[("a.txt", b"a")]);
        let files = Arc::new(files);
        // Requests dropped at once, part-way through reading the disk (as
        // hyper drops a handler's future when its client hangs up).
        for i in 0..200 {
            let f = files.clone();
            let task = tokio::spawn(async move {
                let path = format!("/missing-{i}.txt");
                f.serve(&path, &Method::GET, &HeaderMap::new()).await;
            });
            tokio::task::yield_now().await;
            task.abort();
            let _ = task.await;
        }
        assert!(files.loading.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn validators_ranges_and_codings() {
        let css = "body { color: red }\n".repeat(40);
        let (_d, files) = root_with(&[("static/app.css", css.as_bytes()), ("index.html", b"hi")]);
        let get = HeaderMap::new();
        let s = files.serve("/static/app.css", &Method::GET, &get).await;
        assert_eq!(s.response.status(), 200);
        let etag = s.response.headers()[header::ETAG].clone();
        let lm = s.response.headers()[header::LAST_MODIFIED].clone();
        assert_eq!(
            s.response.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
        assert_eq!(body_of(s.response).await, css.as_bytes());

        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag.clone());
        let s = files.serve("/static/app.css", &Method::GET, &h).await;
        assert_eq!(s.response.status(), 304);
        let mut h = HeaderMap::new();
        h.insert(header::IF_MODIFIED_SINCE, lm.clone());
        assert_eq!(
            files
                .serve("/static/app.css", &Method::GET, &h)
                .await
                .response
                .status(),
            304
        );

        // Preconditions (RFC 9110 §13.2.2): If-Match compares strongly,
        // If-Unmodified-Since applies only without it; unmet → 412.
        let status = |h: HeaderMap| {
            let files = &files;
            async move {
                files
                    .serve("/static/app.css", &Method::GET, &h)
                    .await
                    .response
                    .status()
            }
        };
        let with = |pairs: &[(header::HeaderName, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let tag = etag.to_str().unwrap();
        let weak = format!("W/{tag}");
        let long_ago = "Thu, 01 Jan 1970 00:00:00 GMT";
        let lm_text = lm.to_str().unwrap();
        assert_eq!(status(with(&[(header::IF_MATCH, "\"nope\"")])).await, 412);
        let unmet = files
            .serve(
                "/static/app.css",
                &Method::GET,
                &with(&[(header::IF_MATCH, "\"nope\"")]),
            )
            .await;
        assert!(
            unmet
                .response
                .headers()
                .get(header::CACHE_CONTROL)
                .is_none(),
            "a 412 is not for caches to keep"
        );
        assert_eq!(status(with(&[(header::IF_MATCH, &weak)])).await, 412);
        assert_eq!(status(with(&[(header::IF_MATCH, tag)])).await, 200);
        assert_eq!(status(with(&[(header::IF_MATCH, "*")])).await, 200);
        assert_eq!(
            status(with(&[(header::IF_UNMODIFIED_SINCE, long_ago)])).await,
            412
        );
        assert_eq!(
            status(with(&[(header::IF_UNMODIFIED_SINCE, lm_text)])).await,
            200
        );
        assert_eq!(
            status(with(&[(header::IF_UNMODIFIED_SINCE, "not a date")])).await,
            200
        );
        assert_eq!(
            status(with(&[
                (header::IF_MATCH, tag),
                (header::IF_UNMODIFIED_SINCE, long_ago)
            ]))
            .await,
            200,
            "If-Unmodified-Since is not looked at beside If-Match"
        );
        // If-Range with Last-Modified's date: the range while it is the same.
        let range = (header::RANGE, "bytes=0-3");
        assert_eq!(
            status(with(&[range.clone(), (header::IF_RANGE, lm_text)])).await,
            206
        );
        assert_eq!(
            status(with(&[range.clone(), (header::IF_RANGE, long_ago)])).await,
            200
        );
        assert_eq!(status(with(&[range, (header::IF_RANGE, &weak)])).await, 200);

        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static("bytes=5-9"));
        let s = files.serve("/static/app.css", &Method::GET, &h).await;
        assert_eq!(s.response.status(), 206);
        assert_eq!(
            s.response.headers()[header::CONTENT_RANGE],
            format!("bytes 5-9/{}", css.len()).as_str()
        );
        assert_eq!(body_of(s.response).await, &css.as_bytes()[5..10]);
        h.insert(header::RANGE, HeaderValue::from_static("bytes=99999-"));
        assert_eq!(
            files
                .serve("/static/app.css", &Method::GET, &h)
                .await
                .response
                .status(),
            416
        );

        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let s = files.serve("/static/app.css", &Method::GET, &h).await;
        assert_eq!(s.response.headers()[header::CONTENT_ENCODING], "gzip");
        assert_ne!(s.response.headers()[header::ETAG], etag);
        let gz = body_of(s.response).await;
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
            .unwrap();
        assert_eq!(out, css);

        // A directory serves its index; a missing file is 404.
        let s = files.serve("/", &Method::GET, &get).await;
        assert_eq!(body_of(s.response).await, b"hi");
        assert_eq!(
            files
                .serve("/nope.css", &Method::GET, &get)
                .await
                .response
                .status(),
            404
        );
        assert_eq!(
            files
                .serve("/static/app.css", &Method::POST, &get)
                .await
                .response
                .status(),
            405
        );
        // A method no server knows is not "not allowed here" but not
        // implemented at all (RFC 9110 §15.6.2).
        let brew = Method::from_bytes(b"BREW").unwrap();
        let s = files.serve("/static/app.css", &brew, &get).await;
        assert_eq!(s.response.status(), 501);
        assert!(s.response.headers().get("allow").is_none());
    }

    #[tokio::test]
    async fn a_symlink_out_of_the_root_is_not_followed_and_changes_are_seen() {
        let (d, files) = root_with(&[("a.txt", b"one")]);
        let outside = tempdir::Dir::new();
        std::fs::write(outside.0.join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(outside.0.join("secret.txt"), d.0.join("link.txt")).unwrap();
        let get = HeaderMap::new();
        let s = files.serve("/link.txt", &Method::GET, &get).await;
        assert_eq!(s.response.status(), 404);
        assert!(s.refused.unwrap().contains("outside"));
        let s = files.serve("/a.txt", &Method::GET, &get).await;
        assert_eq!(body_of(s.response).await, b"one");
        std::fs::write(d.0.join("a.txt"), b"two!").unwrap();
        tokio::time::sleep(REVALIDATE + Duration::from_millis(50)).await;
        let s = files.serve("/a.txt", &Method::GET, &get).await;
        assert_eq!(body_of(s.response).await, b"two!");
    }

    #[tokio::test]
    async fn large_files_stream_from_disk() {
        let big: Vec<u8> = (0..(KEEP_BELOW as usize + 100_000))
            .map(|i| (i % 251) as u8)
            .collect();
        let (_d, files) = root_with(&[("big.bin", &big)]);
        let s = files
            .serve("/big.bin", &Method::GET, &HeaderMap::new())
            .await;
        assert_eq!(
            s.response.headers()[header::CONTENT_LENGTH],
            big.len().to_string().as_str()
        );
        assert_eq!(body_of(s.response).await, big);
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static("bytes=-5"));
        let s = files.serve("/big.bin", &Method::GET, &h).await;
        assert_eq!(body_of(s.response).await, &big[big.len() - 5..]);
    }
}
