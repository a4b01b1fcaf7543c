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

impl HttpCache {
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
        let k = key(url);
        if let Some(old) = self.by_url.remove(&k) {
            self.bytes -= old.body.len();
            self.order.retain(|o| *o != k);
        }
        while self.bytes + body.len() > MAX_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(e) = self.by_url.remove(&oldest) {
                self.bytes -= e.body.len();
            }
        }
        self.bytes += body.len();
        self.order.push_back(k.clone());
        self.by_url.insert(
            k,
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
}
