//! A shared HTTP cache in front of web servers (C30, C50), by RFC 9111:
//! what may be stored (§3), how long it stays fresh (§4.2), when it must
//! be revalidated with its validators (§4.3), and Vary (§4.1). The rules
//! are pure functions of headers and clocks; [`CacheServer`] puts them
//! around the proxy and answers `X-Cache: HIT | MISS | REVALIDATED |
//! BYPASS`, each decision a span. Memory is bounded in bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use weblab_trace::{Event, Layer, Recorder};

pub use weblab_httpcache::{Directives, Kind, lifetime, storable, vary_of};

use crate::http::{Body, ConnInfo, Handler, Line, RequestBody, served, trace_ctx};
use crate::pool::Pool;
use crate::proxy::{Forward, forward};

/// A response's age when it arrives (RFC 9111 §4.2.3): the larger of what
/// its Date says (how long ago the origin made it, by the wall clock) and
/// its Age plus the time the request took (`delay`), which it aged by too.
fn initial_age(h: &HeaderMap, delay: Duration) -> Duration {
    let text = |name| h.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let apparent = text(header::DATE)
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|date| std::time::SystemTime::now().duration_since(date).ok())
        .unwrap_or_default();
    let said = text(header::AGE)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    apparent.max(said + delay)
}

/// One stored response.
#[derive(Clone, Debug)]
pub struct Stored {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it was stored (or last revalidated).
    pub at: Instant,
    /// Its Age when it arrived (from an upstream cache).
    pub initial_age: Duration,
    pub lifetime: Duration,
    /// The request header values its Vary names, when stored.
    pub vary: Vec<(String, Option<String>)>,
}

impl Stored {
    /// Current age (RFC 9111 §4.2.3, simplified to one clock: ours).
    pub fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.at)
    }

    /// Whether it may be served without asking the origin.
    pub fn fresh(&self, req: &HeaderMap, now: Instant) -> bool {
        weblab_httpcache::fresh(req, &self.headers, self.age(now), self.lifetime)
    }

    fn matches(&self, req: &HeaderMap) -> bool {
        weblab_httpcache::vary_matches(&self.vary, req)
    }

    fn weight(&self) -> usize {
        self.body.len() + 64 * self.headers.len() + 256
    }
}

/// Stored responses by key (host and target), a few variants each,
/// bounded in bytes: the oldest stored goes first.
pub struct Store {
    map: HashMap<String, Vec<Stored>>,
    order: VecDeque<String>,
    bytes: usize,
    max_bytes: usize,
}

impl Store {
    pub fn new(max_bytes: usize) -> Store {
        Store {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, key: &str, req: &HeaderMap) -> Option<&Stored> {
        self.map.get(key)?.iter().find(|s| s.matches(req))
    }

    pub fn put(&mut self, key: String, s: Stored) {
        if s.weight() > self.max_bytes / 8 {
            return;
        }
        let list = self.map.entry(key.clone()).or_default();
        if list.is_empty() {
            // A key joins the eviction order once, when it first appears.
            self.order.push_back(key);
        }
        if let Some(i) = list.iter().position(|o| o.vary == s.vary) {
            self.bytes -= list[i].weight();
            list.remove(i);
        }
        self.bytes += s.weight();
        list.push(s);
        // The oldest key goes first, with all its variants.
        while self.bytes > self.max_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(list) = self.map.remove(&old) {
                self.bytes -= list.iter().map(Stored::weight).sum::<usize>();
            }
        }
        // Invalidated keys leave stale entries behind; keep the order
        // no longer than twice the keys it tracks.
        if self.order.len() > 2 * self.map.len() + 16 {
            let mut seen = std::collections::HashSet::new();
            let map = &self.map;
            self.order
                .retain(|k| map.contains_key(k) && seen.insert(k.clone()));
        }
    }

    /// Drops every variant of `key` (after an unsafe method, §4.4).
    pub fn invalidate(&mut self, key: &str) {
        if let Some(list) = self.map.remove(key) {
            self.bytes -= list.iter().map(Stored::weight).sum::<usize>();
        }
    }
}

/// Largest response body the cache buffers to store.
const MAX_STORED_BODY: u64 = 1 << 20;

/// A caching reverse proxy.
pub struct CacheServer {
    pool: Arc<Pool>,
    store: Mutex<Store>,
    /// Proxies in front whose X-Forwarded-For we believe (the LB).
    trusted: Vec<std::net::IpAddr>,
    rec: Recorder,
}

impl CacheServer {
    pub fn new(
        pool: Arc<Pool>,
        max_bytes: usize,
        trusted: Vec<std::net::IpAddr>,
        rec: Recorder,
    ) -> Self {
        CacheServer {
            pool,
            store: Mutex::new(Store::new(max_bytes)),
            trusted,
            rec,
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key_of<B>(req: &Request<B>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_ascii_lowercase();
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    format!("{host}{target}")
}

/// Whether the client already has this response (its If-None-Match names
/// the stored ETag, or, without one, its If-Modified-Since is not older
/// than the stored Last-Modified): then it gets 304 (RFC 9111 §4.3.2).
fn client_has(s: &Stored, req: &HeaderMap) -> bool {
    if s.status != StatusCode::OK {
        return false;
    }
    if let Some(list) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let Some(etag) = s.headers.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
        return list
            .split(',')
            .any(|t| t.trim() == "*" || bare(t) == bare(etag));
    }
    let date = |h: &HeaderMap, k| {
        h.get(k)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
    };
    match (
        date(req, header::IF_MODIFIED_SINCE),
        date(&s.headers, header::LAST_MODIFIED),
    ) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

fn from_store(
    s: &Stored,
    now: Instant,
    verdict: &'static str,
    req: &HeaderMap,
    head: bool,
) -> Response<Body> {
    let not_modified = client_has(s, req);
    let mut r = Response::new(if head || not_modified {
        Body::empty()
    } else {
        Body::new(s.body.clone())
    });
    *r.status_mut() = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        s.status
    };
    *r.headers_mut() = s.headers.clone();
    if not_modified {
        r.headers_mut().remove(header::CONTENT_LENGTH);
    }
    r.headers_mut()
        .insert(header::AGE, HeaderValue::from(s.age(now).as_secs()));
    r.headers_mut()
        .insert("x-cache", HeaderValue::from_static(verdict));
    r
}

impl Handler for CacheServer {
    type Body = Body;

    async fn call(
        self: Arc<Self>,
        mut req: Request<RequestBody>,
        conn: ConnInfo,
    ) -> Response<Body> {
        let ctx = trace_ctx(req.headers());
        let span = self.rec.begin(ctx, Layer::Application);
        let line = Line::of(&req);
        let key = key_of(&req);
        let decision = self.rec.begin(span.ctx(), Layer::Application);
        let now = Instant::now();
        let cacheable_method = matches!(*req.method(), Method::GET | Method::HEAD);
        let head = *req.method() == Method::HEAD;
        let f = Forward {
            ctx: span.ctx(),
            rec: &self.rec,
            peer: conn.peer.ip(),
            trusted: &self.trusted,
            proto: "http",
        };
        let record = |outcome: &str, reason: String| {
            self.rec.end(
                decision,
                Event::HttpCache {
                    key: key.clone(),
                    outcome: outcome.to_string(),
                    reason,
                },
            );
        };
        if !cacheable_method {
            // Unsafe methods pass through and invalidate (RFC 9111 §4.4).
            self.store().invalidate(&key);
            record(
                "BYPASS",
                format!("{} is not cached; stored copies dropped", req.method()),
            );
            let mut r = forward(&self.pool, req, &[], f, |_| {}).await.response;
            r.headers_mut()
                .insert("x-cache", HeaderValue::from_static("BYPASS"));
            self.rec.end(span, served(&line, &conn, r.status()));
            return r;
        }
        let stored = self.store().get(&key, req.headers()).cloned();
        if let Some(s) = &stored
            && s.fresh(req.headers(), now)
        {
            let (age, life) = (s.age(now), s.lifetime);
            record(
                "HIT",
                match age.checked_sub(life) {
                    Some(stale) => format!(
                        "stale by {}s (age {}s of {}s), which the request's max-stale accepts",
                        stale.as_secs(),
                        age.as_secs(),
                        life.as_secs()
                    ),
                    None => format!("fresh: age {}s of {}s", age.as_secs(), life.as_secs()),
                },
            );
            let r = from_store(s, now, "HIT", req.headers(), head);
            self.rec.end(span, served(&line, &conn, r.status()));
            return r;
        }
        // only-if-cached: what the store has, or 504 (RFC 9111 §5.2.1.7).
        if Directives::of(req.headers()).only_if_cached {
            let r = match &stored {
                Some(s) => {
                    record(
                        "HIT",
                        "only-if-cached: the stored copy, fresh or not".into(),
                    );
                    from_store(s, now, "HIT", req.headers(), head)
                }
                None => {
                    record("MISS", "only-if-cached and nothing stored: 504".into());
                    let mut r = crate::http::text(
                        StatusCode::GATEWAY_TIMEOUT,
                        "only-if-cached, and this cache has no copy\n",
                    );
                    r.headers_mut()
                        .insert("x-cache", HeaderValue::from_static("MISS"));
                    r
                }
            };
            self.rec.end(span, served(&line, &conn, r.status()));
            return r;
        }
        // The client's own headers, before the cache adds its validators.
        let client_req = req.headers().clone();
        // Stale (or revalidation asked for): ask with the validators.
        let mut revalidating = false;
        if let Some(s) = &stored {
            if let Some(etag) = s.headers.get(header::ETAG) {
                req.headers_mut()
                    .insert(header::IF_NONE_MATCH, etag.clone());
                revalidating = true;
            }
            if let Some(lm) = s.headers.get(header::LAST_MODIFIED) {
                req.headers_mut()
                    .insert(header::IF_MODIFIED_SINCE, lm.clone());
                revalidating = true;
            }
        }
        let req_headers = req.headers().clone();
        let resp = forward(&self.pool, req, &[], f, |_| {}).await.response;
        let status = resp.status();
        if revalidating
            && status == StatusCode::NOT_MODIFIED
            && let Some(mut s) = stored
        {
            // Still good: the stored body with the new headers' lifetime.
            for (k, v) in resp.headers() {
                if k != header::CONTENT_LENGTH {
                    s.headers.insert(k.clone(), v.clone());
                }
            }
            s.at = now;
            s.initial_age = Duration::ZERO;
            s.lifetime = lifetime(&s.headers, Kind::Shared).unwrap_or(Duration::ZERO);
            self.store().put(key.clone(), s.clone());
            record(
                "REVALIDATED",
                "stale; the origin answered 304 Not Modified".into(),
            );
            let r = from_store(&s, now, "REVALIDATED", &client_req, head);
            self.rec.end(span, served(&line, &conn, r.status()));
            return r;
        }
        // A HEAD is answered, not stored; what is stored is a GET's.
        let verdict = storable(
            &Method::GET,
            &req_headers,
            status,
            resp.headers(),
            Kind::Shared,
        );
        let small = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n <= MAX_STORED_BODY);
        let r = match verdict {
            Ok(life) if small && !head => {
                let (parts, body) = resp.into_parts();
                match body.collect().await {
                    Ok(b) => {
                        let body = b.to_bytes();
                        let initial_age = initial_age(&parts.headers, now.elapsed());
                        let s = Stored {
                            status: parts.status,
                            vary: vary_of(&parts.headers, &req_headers),
                            headers: parts.headers,
                            body,
                            at: now,
                            initial_age,
                            lifetime: life,
                        };
                        self.store().put(key.clone(), s.clone());
                        record("MISS", format!("stored for {}s", life.as_secs()));
                        from_store(&s, now, "MISS", &client_req, false)
                    }
                    Err(e) => {
                        record("MISS", format!("not stored: the body failed: {e}"));
                        crate::http::text(StatusCode::BAD_GATEWAY, "the upstream body failed\n")
                    }
                }
            }
            other => {
                let why = match other {
                    Err(why) => format!("not stored: {why}"),
                    Ok(_) => "not stored: body too large or of unknown length".into(),
                };
                record("MISS", why);
                let mut r = resp;
                r.headers_mut()
                    .insert("x-cache", HeaderValue::from_static("MISS"));
                r
            }
        };
        self.rec.end(span, served(&line, &conn, r.status()));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storable_shared(
        m: &Method,
        req: &HeaderMap,
        status: StatusCode,
        resp: &HeaderMap,
    ) -> Result<Duration, &'static str> {
        storable(m, req, status, resp, Kind::Shared)
    }

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn what_a_shared_cache_may_store() {
        let get = Method::GET;
        let ok = StatusCode::OK;
        let none = HeaderMap::new();
        assert_eq!(
            storable_shared(&get, &none, ok, &h(&[("cache-control", "max-age=60")])),
            Ok(Duration::from_secs(60))
        );
        // s-maxage wins for a shared cache.
        assert_eq!(
            storable_shared(
                &get,
                &none,
                ok,
                &h(&[("cache-control", "max-age=60, s-maxage=5")])
            ),
            Ok(Duration::from_secs(5))
        );
        for (resp, why) in [
            (h(&[("cache-control", "no-store")]), "no-store"),
            (h(&[("cache-control", "private, max-age=60")]), "private"),
            (h(&[("cache-control", "max-age=60"), ("vary", "*")]), "Vary"),
            (h(&[]), "no freshness"),
        ] {
            let err = storable_shared(&get, &none, ok, &resp).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        assert!(
            storable_shared(
                &Method::POST,
                &none,
                ok,
                &h(&[("cache-control", "max-age=60")])
            )
            .is_err()
        );
        let auth = h(&[("authorization", "Bearer x")]);
        assert!(storable_shared(&get, &auth, ok, &h(&[("cache-control", "max-age=60")])).is_err());
        assert!(
            storable_shared(
                &get,
                &auth,
                ok,
                &h(&[("cache-control", "public, max-age=60")])
            )
            .is_ok()
        );
        // Validators alone: stored, to be revalidated each time.
        assert_eq!(
            storable_shared(&get, &none, ok, &h(&[("etag", "\"a\"")])),
            Ok(Duration::ZERO)
        );
        // Any final status with an explicit lifetime (RFC 9111 §3); without
        // one, only those cacheable by default.
        assert!(
            storable_shared(
                &get,
                &none,
                StatusCode::INTERNAL_SERVER_ERROR,
                &h(&[("cache-control", "max-age=60")])
            )
            .is_ok()
        );
        assert!(
            storable_shared(
                &get,
                &none,
                StatusCode::INTERNAL_SERVER_ERROR,
                &h(&[("etag", "\"a\"")])
            )
            .is_err()
        );
    }

    fn stored(lifetime: u64, headers: HeaderMap, at: Instant) -> Stored {
        Stored {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"x"),
            at,
            initial_age: Duration::from_secs(2),
            lifetime: Duration::from_secs(lifetime),
            vary: vec![],
        }
    }

    #[test]
    fn a_response_arrives_as_old_as_its_date_or_age_says() {
        let s = Duration::from_secs;
        let ago = |secs| httpdate::fmt_http_date(std::time::SystemTime::now() - s(secs));
        let mut old = HeaderMap::new();
        old.insert(header::DATE, HeaderValue::from_str(&ago(30)).unwrap());
        let a = initial_age(&old, Duration::ZERO);
        assert!((s(29)..=s(31)).contains(&a), "{a:?}");
        old.insert(header::AGE, HeaderValue::from_static("100"));
        assert_eq!(initial_age(&old, s(2)), s(102));
        assert_eq!(initial_age(&HeaderMap::new(), s(1)), s(1));
    }

    #[test]
    fn freshness_counts_the_age_and_honours_no_cache() {
        let t0 = Instant::now();
        let s = stored(10, HeaderMap::new(), t0);
        assert_eq!(s.age(t0 + Duration::from_secs(3)), Duration::from_secs(5));
        assert!(s.fresh(&HeaderMap::new(), t0 + Duration::from_secs(7)));
        assert!(!s.fresh(&HeaderMap::new(), t0 + Duration::from_secs(8)));
        assert!(!s.fresh(&h(&[("cache-control", "no-cache")]), t0));
        assert!(!s.fresh(&h(&[("cache-control", "max-age=0")]), t0));
        // A request's max-age caps the age it accepts, that age included
        // (the copy is 2 s old).
        assert!(s.fresh(&h(&[("cache-control", "max-age=2")]), t0));
        assert!(!s.fresh(&h(&[("cache-control", "max-age=1")]), t0));
        let nc = stored(10, h(&[("cache-control", "no-cache, max-age=10")]), t0);
        assert!(!nc.fresh(&HeaderMap::new(), t0));
    }

    #[test]
    fn vary_keeps_variants_apart_and_the_store_stays_within_its_bytes() {
        let t0 = Instant::now();
        let mut store = Store::new(8 * 1024);
        let req_gz = h(&[("accept-encoding", "gzip")]);
        let req_id = HeaderMap::new();
        let resp = h(&[("vary", "Accept-Encoding")]);
        let mut a = stored(60, resp.clone(), t0);
        a.vary = vary_of(&resp, &req_gz);
        a.body = Bytes::from_static(b"gz");
        store.put("k".into(), a);
        assert!(store.get("k", &req_gz).is_some());
        assert!(store.get("k", &req_id).is_none());
        let mut b = stored(60, resp.clone(), t0);
        b.vary = vary_of(&resp, &req_id);
        store.put("k".into(), b);
        assert_eq!(
            store.get("k", &req_id).unwrap().body,
            Bytes::from_static(b"x")
        );
        assert_eq!(
            store.get("k", &req_gz).unwrap().body,
            Bytes::from_static(b"gz")
        );
        for i in 0..100 {
            let mut s = stored(60, HeaderMap::new(), t0);
            s.body = Bytes::from(vec![0u8; 500]);
            store.put(format!("k{i}"), s);
            assert!(store.bytes() <= 8 * 1024);
        }
        store.invalidate("k99");
        assert!(store.get("k99", &req_id).is_none());
        // Storing one URL over and over, with invalidations between,
        // keeps the store's bookkeeping bounded.
        let mut one = Store::new(1 << 20);
        for _ in 0..10_000 {
            one.put("u".into(), stored(60, HeaderMap::new(), t0));
            one.invalidate("u");
            one.put("u".into(), stored(60, HeaderMap::new(), t0));
        }
        assert!(one.order.len() <= 18, "{}", one.order.len());
        assert!(one.get("u", &req_id).is_some());
    }
}
