//! The browser's private HTTP cache (C30, RFC 9111): answers kept for as
//! long as their headers say, used again without a request while fresh,
//! and revalidated with `If-None-Match` / `If-Modified-Since` when stale
//! (a `304 Not Modified` then brings no body: the stored one is used).
//! The rules are `weblab-httpcache`'s, shared with the cache server; this
//! is the store around them, in memory, bounded in bytes. Pure: the
//! caller passes the time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Version, header};
use url::Url;
use weblab_httpcache::{Kind as CacheKind, fresh, storable, vary_matches, vary_of};

use crate::html::Kind;

/// Bytes of bodies kept at most, and the largest one kept.
const MAX_BYTES: usize = 32 << 20;
const MAX_ENTRY: usize = 4 << 20;

/// One stored answer.
#[derive(Clone, Debug)]
pub struct Entry {
    pub status: u16,
    pub version: Version,
    pub headers: HeaderMap,
    /// The body with its Content-Encoding undone.
    pub body: Bytes,
    pub subresources: Vec<(Kind, Url)>,
    stored: Instant,
    initial_age: Duration,
    pub lifetime: Duration,
    vary: Vec<(String, Option<String>)>,
}

impl Entry {
    pub fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored)
    }
}

/// What the cache has for a request.
#[derive(Debug)]
pub enum Lookup {
    /// Usable as it is: no request.
    Fresh(Box<Entry>),
    /// Stored but stale (or `no-cache`): ask with these validators.
    Stale(Vec<(String, String)>),
    Miss,
}

/// The stored answers, by URL (without its fragment).
#[derive(Default)]
pub struct HttpCache {
    by_url: HashMap<String, Entry>,
    order: VecDeque<String>,
    bytes: usize,
}

/// The key of a URL: no fragment (RFC 9111 §2: the target URI).
pub fn key(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    u.to_string()
}

fn age_header(h: &HeaderMap) -> Duration {
    h.get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map_or(Duration::ZERO, Duration::from_secs)
}

/// One stored answer as the disk file keeps it: times on the wall clock
/// (an `Instant` means nothing to the next process), the body in base64.
#[derive(serde::Serialize, serde::Deserialize)]
struct OnDisk {
    key: String,
    status: u16,
    version: String,
    headers: Vec<(String, String)>,
    body: String,
    subresources: Vec<(Kind, String)>,
    stored_unix_ms: u64,
    initial_age_s: u64,
    lifetime_s: u64,
    vary: Vec<(String, Option<String>)>,
}

fn version_of(name: &str) -> Version {
    match name {
        "HTTP/0.9" => Version::HTTP_09,
        "HTTP/1.0" => Version::HTTP_10,
        "HTTP/2" => Version::HTTP_2,
        _ => Version::HTTP_11,
    }
}

impl HttpCache {
    /// The cache as a file (a browser's disk cache): oldest first, each
    /// entry's time on the wall clock (`now` is `now_unix_ms`).
    pub fn to_disk(&self, now: Instant, now_unix_ms: u64) -> Vec<u8> {
        use base64::Engine as _;
        let entries: Vec<OnDisk> = self
            .order
            .iter()
            .filter_map(|k| Some((k, self.by_url.get(k)?)))
            .map(|(k, e)| OnDisk {
                key: k.clone(),
                status: e.status,
                version: weblab_trace::event::version_name(e.version).into(),
                headers: e
                    .headers
                    .iter()
                    .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
                    .collect(),
                body: base64::engine::general_purpose::STANDARD.encode(&e.body),
                subresources: e
                    .subresources
                    .iter()
                    .map(|(k, u)| (*k, u.to_string()))
                    .collect(),
                stored_unix_ms: now_unix_ms
                    .saturating_sub(now.saturating_duration_since(e.stored).as_millis() as u64),
                initial_age_s: e.initial_age.as_secs(),
                lifetime_s: e.lifetime.as_secs(),
                vary: e.vary.clone(),
            })
            .collect();
        serde_json::to_vec(&entries).unwrap_or_default()
    }

    /// A cache from a file `to_disk` wrote; the bounds hold as entries go
    /// in. A file that is not one is an error (the caller starts empty).
    pub fn from_disk(bytes: &[u8], now: Instant, now_unix_ms: u64) -> Result<HttpCache, String> {
        use base64::Engine as _;
        let entries: Vec<OnDisk> =
            serde_json::from_slice(bytes).map_err(|e| format!("not a cache file: {e}"))?;
        let mut c = HttpCache::default();
        for d in entries {
            let body = base64::engine::general_purpose::STANDARD
                .decode(&d.body)
                .map_err(|e| format!("{}: body: {e}", d.key))?;
            if body.len() > MAX_ENTRY {
                continue;
            }
            let mut headers = HeaderMap::new();
            for (n, v) in &d.headers {
                if let (Ok(n), Ok(v)) = (
                    http::HeaderName::from_bytes(n.as_bytes()),
                    http::HeaderValue::from_str(v),
                ) {
                    headers.append(n, v);
                }
            }
            let subresources = d
                .subresources
                .iter()
                .filter_map(|(k, u)| Some((*k, Url::parse(u).ok()?)))
                .collect();
            // Time spent on disk counts as age, as if it had stayed here.
            let away = Duration::from_millis(now_unix_ms.saturating_sub(d.stored_unix_ms));
            let entry = Entry {
                status: d.status,
                version: version_of(&d.version),
                headers,
                body: Bytes::from(body),
                subresources,
                stored: now,
                initial_age: Duration::from_secs(d.initial_age_s) + away,
                lifetime: Duration::from_secs(d.lifetime_s),
                vary: d.vary,
            };
            c.insert(d.key, entry);
        }
        Ok(c)
    }

    /// Puts `entry` under `k`, the oldest going first while over the byte
    /// bound.
    fn insert(&mut self, k: String, entry: Entry) {
        if let Some(old) = self.by_url.remove(&k) {
            self.bytes -= old.body.len();
            self.order.retain(|o| *o != k);
        }
        while self.bytes + entry.body.len() > MAX_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(e) = self.by_url.remove(&oldest) {
                self.bytes -= e.body.len();
            }
        }
        self.bytes += entry.body.len();
        self.order.push_back(k.clone());
        self.by_url.insert(k, entry);
    }

    pub fn len(&self) -> usize {
        self.by_url.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_url.is_empty()
    }

    /// What is stored for `url` and usable for a request with `req`.
    pub fn lookup(&self, url: &Url, req: &HeaderMap, now: Instant) -> Lookup {
        let Some(e) = self
            .by_url
            .get(&key(url))
            .filter(|e| vary_matches(&e.vary, req))
        else {
            return Lookup::Miss;
        };
        if fresh(req, &e.headers, e.age(now), e.lifetime) {
            return Lookup::Fresh(Box::new(e.clone()));
        }
        let mut validators = Vec::new();
        if let Some(tag) = e.headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
            validators.push(("If-None-Match".to_string(), tag.to_string()));
        }
        if let Some(lm) = e
            .headers
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
        {
            validators.push(("If-Modified-Since".to_string(), lm.to_string()));
        }
        match validators.is_empty() {
            true => Lookup::Miss,
            false => Lookup::Stale(validators),
        }
    }

    /// Keeps an answer to a GET when its headers allow a private cache
    /// to; `Err` says why not.
    #[allow(clippy::too_many_arguments)]
    pub fn store(
        &mut self,
        url: &Url,
        req: &HeaderMap,
        status: u16,
        version: Version,
        headers: &HeaderMap,
        body: &Bytes,
        subresources: &[(Kind, Url)],
        now: Instant,
    ) -> Result<Duration, &'static str> {
        let code = StatusCode::from_u16(status).map_err(|_| "not a status code")?;
        let lifetime = storable(&Method::GET, req, code, headers, CacheKind::Private)?;
        if body.len() > MAX_ENTRY {
            return Err("larger than the cache keeps");
        }
        self.insert(
            key(url),
            Entry {
                status,
                version,
                headers: headers.clone(),
                body: body.clone(),
                subresources: subresources.to_vec(),
                stored: now,
                initial_age: age_header(headers),
                lifetime,
                vary: vary_of(headers, req),
            },
        );
        Ok(lifetime)
    }

    /// A `304 Not Modified` for `url`: the stored answer, its headers
    /// updated by the 304's (RFC 9111 §4.3.4) and its age restarted.
    pub fn refresh(&mut self, url: &Url, not_modified: &HeaderMap, now: Instant) -> Option<Entry> {
        let e = self.by_url.get_mut(&key(url))?;
        for name in not_modified.keys() {
            // The 304's own framing says nothing about the stored body.
            if matches!(
                *name,
                header::CONTENT_LENGTH | header::CONTENT_ENCODING | header::TRANSFER_ENCODING
            ) {
                continue;
            }
            e.headers.remove(name);
            for v in not_modified.get_all(name) {
                e.headers.append(name.clone(), v.clone());
            }
        }
        e.stored = now;
        e.initial_age = age_header(not_modified);
        e.lifetime = weblab_httpcache::lifetime(&e.headers, CacheKind::Private).unwrap_or_default();
        Some(e.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn fresh_then_stale_with_validators_then_refreshed_by_a_304() {
        let mut c = HttpCache::default();
        let t0 = Instant::now();
        let u = url("https://myapp.test/static/app.css#top");
        let resp = h(&[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("vary", "Accept-Encoding"),
        ]);
        let req = h(&[("accept-encoding", "gzip")]);
        let body = Bytes::from_static(b"body{}");
        assert_eq!(
            c.store(&u, &req, 200, Version::HTTP_2, &resp, &body, &[], t0),
            Ok(Duration::from_secs(60))
        );
        // The fragment is not part of the key.
        let same = url("https://myapp.test/static/app.css");
        assert!(
            matches!(c.lookup(&same, &req, t0 + Duration::from_secs(59)), Lookup::Fresh(e) if e.body == body)
        );
        // Another Accept-Encoding: another variant, not this one.
        assert!(matches!(
            c.lookup(&same, &h(&[("accept-encoding", "br")]), t0),
            Lookup::Miss
        ));
        let Lookup::Stale(v) = c.lookup(&same, &req, t0 + Duration::from_secs(60)) else {
            panic!("stale after its max-age")
        };
        assert_eq!(v, [("If-None-Match".to_string(), "\"v1\"".to_string())]);
        let later = t0 + Duration::from_secs(90);
        let e = c
            .refresh(
                &same,
                &h(&[("cache-control", "max-age=120"), ("content-length", "0")]),
                later,
            )
            .unwrap();
        assert_eq!(e.body, body, "the stored body stays");
        assert_eq!(e.lifetime, Duration::from_secs(120));
        assert!(matches!(
            c.lookup(&same, &req, later + Duration::from_secs(119)),
            Lookup::Fresh(_)
        ));
    }

    #[test]
    fn private_is_kept_no_store_is_not_and_no_cache_always_asks() {
        let mut c = HttpCache::default();
        let t0 = Instant::now();
        let none = HeaderMap::new();
        let u = url("https://myapp.test/api/users/1");
        let private = h(&[("cache-control", "private, no-cache"), ("etag", "\"x\"")]);
        assert!(
            c.store(
                &u,
                &none,
                200,
                Version::HTTP_2,
                &private,
                &Bytes::new(),
                &[],
                t0
            )
            .is_ok()
        );
        assert!(
            matches!(c.lookup(&u, &none, t0), Lookup::Stale(_)),
            "no-cache: revalidate every time"
        );
        let n = url("https://myapp.test/secret");
        let nostore = h(&[("cache-control", "no-store")]);
        assert_eq!(
            c.store(
                &n,
                &none,
                200,
                Version::HTTP_2,
                &nostore,
                &Bytes::new(),
                &[],
                t0
            ),
            Err("no-store")
        );
        assert!(matches!(c.lookup(&n, &none, t0), Lookup::Miss));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_cache_survives_a_restart_through_its_file_with_its_age() {
        let mut c = HttpCache::default();
        let t0 = Instant::now();
        let u = url("https://myapp.test/static/app.css");
        let resp = h(&[("cache-control", "max-age=60"), ("etag", "\"v1\"")]);
        c.store(
            &u,
            &h(&[]),
            200,
            Version::HTTP_2,
            &resp,
            &Bytes::from_static(b"body{}"),
            &[],
            t0,
        )
        .unwrap();
        let file = c.to_disk(t0, 1_000_000);
        // Read back 10 s later by the wall clock: still fresh, 10 s old.
        let t1 = Instant::now();
        let back = HttpCache::from_disk(&file, t1, 1_010_000).unwrap();
        let Lookup::Fresh(e) = back.lookup(&u, &h(&[]), t1) else {
            panic!("not fresh after the restart")
        };
        assert_eq!(e.body, Bytes::from_static(b"body{}"));
        assert_eq!(e.version, Version::HTTP_2);
        assert_eq!(e.age(t1).as_secs(), 10);
        // 70 s later it is stale and asks with its validator.
        let later = HttpCache::from_disk(&file, t1, 1_070_000).unwrap();
        assert!(matches!(later.lookup(&u, &h(&[]), t1), Lookup::Stale(v) if v[0].1 == "\"v1\""));
        assert!(HttpCache::from_disk(b"not json", t1, 0).is_err());
    }
}
