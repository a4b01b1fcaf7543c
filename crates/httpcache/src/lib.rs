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
    /// A request's: a stale response will do, stale by at most this many
    /// seconds (`Some(None)`: by any amount).
    pub max_stale: Option<Option<u64>>,
    /// A request's: only a response fresh for this many seconds more.
    pub min_fresh: Option<u64>,
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
            // A value too large for a u64 is as good as forever; a value
            // that is no number makes the response stale at once
            // (RFC 9111 §1.2.2, §4.2.1).
            let secs = || {
                value.map(|v| match v.parse::<u64>() {
                    Ok(n) => n,
                    Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => u64::MAX,
                    Err(_) => 0,
                })
            };
            // When a directive comes twice, the first counts (§4.2.1).
            match name.to_ascii_lowercase().as_str() {
                "max-age" => d.max_age = d.max_age.or(secs()),
                "s-maxage" => d.s_maxage = d.s_maxage.or(secs()),
                "max-stale" => d.max_stale = d.max_stale.or(Some(secs())),
                "min-fresh" => d.min_fresh = d.min_fresh.or(secs()),
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
    // An answer to a part of the resource, or to a condition on it, is not
    // the resource: stored, it would answer requests that asked neither.
    for (h, why) in [
        (header::RANGE, "the request asked for a range"),
        (
            header::IF_MATCH,
            "the request had a precondition (If-Match)",
        ),
        (
            header::IF_UNMODIFIED_SINCE,
            "the request had a precondition (If-Unmodified-Since)",
        ),
    ] {
        if req.contains_key(h) {
            return Err(why);
        }
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
    // A final status this cache understands: not a partial response
    // (it keeps no ranges) and not a 304 (a revalidation's answer).
    if status.is_informational() || matches!(status.as_u16(), 206 | 304) {
        return Err("a partial or not-modified response is not stored");
    }
    // With an explicit lifetime any such status may be stored (§3); without
    // one only the statuses cacheable by default, and since this cache
    // guesses no heuristic lifetime, only with a validator to revalidate.
    match lifetime(resp, cache) {
        Some(l) => Ok(l),
        None if !matches!(
            status.as_u16(),
            200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
        ) =>
        {
            Err("status not cacheable by default, and no explicit lifetime")
        }
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
/// for `req` without asking the origin (§4.2, §5.2.1): no-cache on either
/// side means always ask; a request's max-age caps the age it accepts and
/// min-fresh asks for time to spare; its max-stale takes a stale response,
/// unless the response said must-revalidate.
pub fn fresh(req: &HeaderMap, stored: &HeaderMap, age: Duration, lifetime: Duration) -> bool {
    let rq = Directives::of(req);
    let rs = Directives::of(stored);
    let secs = Duration::from_secs;
    if rq.no_cache || rs.no_cache {
        return false;
    }
    if rq.max_age.is_some_and(|m| age > secs(m)) {
        return false;
    }
    if let Some(m) = rq.min_fresh {
        return lifetime
            .checked_sub(age)
            .is_some_and(|left| left >= secs(m));
    }
    if age < lifetime {
        return true;
    }
    match rq.max_stale {
        Some(limit) if !rs.must_revalidate => limit.is_none_or(|m| age - lifetime <= secs(m)),
        _ => false,
    }
}

/// Whether the values `req` has for the stored response's Vary headers
/// are the ones it was stored with.
pub fn vary_matches(stored: &[(String, Option<String>)], req: &HeaderMap) -> bool {
    stored
        .iter()
        .all(|(name, v)| req.get(name.as_str()).and_then(|x| x.to_str().ok()) == v.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn request_directives_bend_freshness_within_the_rules() {
        let stored = h(&[("cache-control", "max-age=100")]);
        let strict = h(&[("cache-control", "max-age=100, must-revalidate")]);
        let s = Duration::from_secs;
        let ok = |req: &[(&'static str, &'static str)], stored: &HeaderMap, age: u64| {
            fresh(&h(req), stored, s(age), s(100))
        };
        assert!(ok(&[], &stored, 99));
        assert!(!ok(&[], &stored, 100));
        // max-age in a request: no older than that.
        assert!(ok(&[("cache-control", "max-age=50")], &stored, 50));
        assert!(!ok(&[("cache-control", "max-age=50")], &stored, 51));
        // min-fresh: still fresh that much longer.
        assert!(ok(&[("cache-control", "min-fresh=30")], &stored, 70));
        assert!(!ok(&[("cache-control", "min-fresh=30")], &stored, 71));
        // max-stale: stale by up to its value, or any amount without one,
        // but never past must-revalidate.
        assert!(ok(&[("cache-control", "max-stale=10")], &stored, 110));
        assert!(!ok(&[("cache-control", "max-stale=10")], &stored, 111));
        assert!(ok(&[("cache-control", "max-stale")], &stored, 10_000));
        assert!(!ok(&[("cache-control", "max-stale")], &strict, 101));
        assert!(!ok(&[("cache-control", "no-cache, max-stale")], &stored, 1));
    }

    #[test]
    fn the_first_of_two_directives_counts_and_a_bad_number_is_stale() {
        let d = Directives::of(&h(&[
            ("cache-control", "max-age=10"),
            ("cache-control", "max-age=99"),
        ]));
        assert_eq!(d.max_age, Some(10));
        assert_eq!(
            Directives::of(&h(&[("cache-control", "max-age=ten")])).max_age,
            Some(0)
        );
        assert_eq!(
            Directives::of(&h(&[("cache-control", "max-age=99999999999999999999999")])).max_age,
            Some(u64::MAX)
        );
    }

    #[test]
    fn an_explicit_lifetime_makes_any_final_status_storable() {
        let get = Method::GET;
        let none = HeaderMap::new();
        let with_age = h(&[("cache-control", "max-age=60")]);
        for code in [200, 302, 307, 400, 500, 503, 599] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(
                storable(&get, &none, status, &with_age, Kind::Shared),
                Ok(Duration::from_secs(60)),
                "{code}"
            );
        }
        let validator = h(&[("etag", "\"x\"")]);
        assert!(storable(&get, &none, StatusCode::OK, &validator, Kind::Shared).is_ok());
        assert!(storable(&get, &none, StatusCode::FOUND, &validator, Kind::Shared).is_err());
        assert!(
            storable(
                &get,
                &none,
                StatusCode::PARTIAL_CONTENT,
                &with_age,
                Kind::Shared
            )
            .is_err()
        );
        assert!(
            storable(
                &get,
                &none,
                StatusCode::NOT_MODIFIED,
                &with_age,
                Kind::Shared
            )
            .is_err()
        );
        // A 416 or 412 answers the request's range or precondition, not
        // the resource: never stored, whatever its lifetime.
        let ranged = h(&[("range", "bytes=99999-")]);
        let unmet = StatusCode::RANGE_NOT_SATISFIABLE;
        assert!(storable(&get, &ranged, unmet, &with_age, Kind::Shared).is_err());
        let conditional = h(&[("if-match", "\"x\"")]);
        let failed = StatusCode::PRECONDITION_FAILED;
        assert!(storable(&get, &conditional, failed, &with_age, Kind::Private).is_err());
    }
}
