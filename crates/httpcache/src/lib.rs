//! The rules of HTTP caching (RFC 9111) as pure functions of headers and
//! clocks, shared by the shared cache in front of the web servers
//! (`weblab-edge`) and the browser's private cache (`weblab-browser`):
//! what may be stored (§3), how long it stays fresh (§4.2), whether a
//! stored response may be used without asking (§4.2, §5.2), and Vary
//! (§4.1).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

/// Which kind of cache asks: a shared one (a proxy, C50) may not keep
/// `private` answers and reads `s-maxage`; a private one (a browser) may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Shared,
    Private,
}

/// The Cache-Control directives a cache acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    /// A request's: answer from the store or not at all (504).
    pub only_if_cached: bool,
}

impl Directives {
    /// Reads every Cache-Control field of `h` (RFC 9111 §5.2).
    pub fn of(h: &HeaderMap) -> Directives {
        let mut d = Directives::default();
        for item in h
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (item.trim(), None),
            };
            let secs = || value.and_then(|v| v.parse::<u64>().ok());
            match name.to_ascii_lowercase().as_str() {
                "max-age" => d.max_age = secs(),
                "s-maxage" => d.s_maxage = secs(),
                "no-store" => d.no_store = true,
                "no-cache" => d.no_cache = true,
                "private" => d.private = true,
                "public" => d.public = true,
                "must-revalidate" | "proxy-revalidate" => d.must_revalidate = true,
                "only-if-cached" => d.only_if_cached = true,
                _ => {}
            }
        }
        d
    }
}

/// Why a response may not be stored, or `Ok` with its freshness lifetime.
pub fn storable(
    method: &Method,
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
    cache: Kind,
) -> Result<Duration, &'static str> {
    let (rq, rs) = (Directives::of(req), Directives::of(resp));
    if *method != Method::GET {
        return Err("only GET responses are stored");
    }
    if rq.no_store || rs.no_store {
        return Err("no-store");
    }
    if rs.private && cache == Kind::Shared {
        return Err("private: for the browser's cache only, not a shared one");
    }
    if cache == Kind::Shared
        && req.contains_key(header::AUTHORIZATION)
        && !rs.public
        && rs.s_maxage.is_none()
    {
        return Err("a request with Authorization, and the response is not public");
    }
    if resp
        .get_all(header::VARY)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.trim() == "*"))
    {
        return Err("Vary: *");
    }
    // Heuristic freshness is allowed but guessed; this cache stores only
    // what the origin gave a lifetime (or validators, to revalidate).
    if !matches!(status.as_u16(), 200 | 203 | 204 | 300 | 301 | 404 | 410) {
        return Err("status not cacheable by default");
    }
    match lifetime(resp, cache) {
        Some(l) => Ok(l),
        None if resp.contains_key(header::ETAG) || resp.contains_key(header::LAST_MODIFIED) => {
            Ok(Duration::ZERO)
        }
        None => Err("no freshness lifetime and no validator"),
    }
}

/// The freshness lifetime (RFC 9111 §4.2.1): s-maxage (shared caches
/// only), else max-age, else Expires minus Date.
pub fn lifetime(resp: &HeaderMap, cache: Kind) -> Option<Duration> {
    let d = Directives::of(resp);
    let s_maxage = d.s_maxage.filter(|_| cache == Kind::Shared);
    if let Some(s) = s_maxage.or(d.max_age) {
        return Some(Duration::from_secs(s));
    }
    let date = |h| {
        resp.get(h)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
    };
    let expires = date(header::EXPIRES)?;
    let now = date(header::DATE).unwrap_or_else(SystemTime::now);
    Some(expires.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The request headers a response varies on, with their values.
pub fn vary_of(resp: &HeaderMap, req: &HeaderMap) -> Vec<(String, Option<String>)> {
    resp.get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .map(|n| {
            let v = req
                .get(n.as_str())
                .and_then(|x| x.to_str().ok())
                .map(str::to_string);
            (n, v)
        })
        .collect()
}

/// Whether a stored response of `age`, fresh for `lifetime`, may be used
/// for `req` without asking the origin (no-cache on either side means
/// always ask; a request's max-age caps the age it accepts, §5.2.1.1).
pub fn fresh(req: &HeaderMap, stored: &HeaderMap, age: Duration, lifetime: Duration) -> bool {
    let rq = Directives::of(req);
    let rs = Directives::of(stored);
    if rq.no_cache || rs.no_cache {
        return false;
    }
    if rq.max_age.is_some_and(|m| age >= Duration::from_secs(m)) {
        return false;
    }
    age < lifetime
}

/// Whether the values `req` has for the stored response's Vary headers
/// are the ones it was stored with.
pub fn vary_matches(stored: &[(String, Option<String>)], req: &HeaderMap) -> bool {
    stored
        .iter()
        .all(|(name, v)| req.get(name.as_str()).and_then(|x| x.to_str().ok()) == v.as_deref())
}
