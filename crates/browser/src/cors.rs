//! CORS as a browser enforces it (C40), by the Fetch standard's rules:
//! a request from a page of one origin to another is either "simple"
//! (sent at once, its answer readable only if the server names the
//! origin) or needs a preflight (an OPTIONS asking first, with the method
//! and headers it will use). Pure: headers in, verdicts out.

use http::{HeaderMap, Method, header};
use url::Url;

/// How a request from `origin` must go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Same origin: no CORS at all.
    SameOrigin,
    /// Cross-origin, sent as is with an Origin header.
    Simple,
    /// Cross-origin, asked first: the method and the header names the
    /// preflight announces.
    Preflight {
        method: Method,
        headers: Vec<String>,
    },
}

/// Content types a simple request may carry.
const SIMPLE_TYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
];

/// Whether a header the page set keeps a request simple (Fetch's
/// "CORS-safelisted request-header", without its value-length details).
fn safelisted(name: &str, value: &str) -> bool {
    match name.to_ascii_lowercase().as_str() {
        "accept" | "accept-language" | "content-language" => true,
        "content-type" => {
            let essence = value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            SIMPLE_TYPES.contains(&essence.as_str())
        }
        _ => false,
    }
}

/// How a request with `method` and the page's own `headers` to `url`,
/// made from a page of `origin`, must go.
pub fn classify(origin: &str, url: &Url, method: &Method, headers: &[(String, String)]) -> Mode {
    if url.origin().ascii_serialization() == origin.trim_end_matches('/') {
        return Mode::SameOrigin;
    }
    let simple_method = matches!(*method, Method::GET | Method::HEAD | Method::POST);
    let mut unsafe_names: Vec<String> = headers
        .iter()
        .filter(|(k, v)| !safelisted(k, v))
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    unsafe_names.sort();
    unsafe_names.dedup();
    if simple_method && unsafe_names.is_empty() {
        Mode::Simple
    } else {
        Mode::Preflight {
            method: method.clone(),
            headers: unsafe_names,
        }
    }
}

fn value(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Whether an answer lets a page of `origin` read it: its
/// Access-Control-Allow-Origin names that origin, or is `*`. A request
/// sent `with_credentials` (cookies) needs the origin named exactly and
/// `Access-Control-Allow-Credentials: true` (Fetch, "CORS check").
pub fn readable(h: &HeaderMap, origin: &str, with_credentials: bool) -> Result<(), String> {
    if with_credentials {
        match value(h, header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            Some("*") => {
                return Err(
                    "with credentials, Access-Control-Allow-Origin may not be \"*\"".into(),
                );
            }
            Some(o) if o == origin.trim_end_matches('/') => {}
            _ => return readable(h, origin, false),
        }
        return match value(h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS) {
            Some("true") => Ok(()),
            Some(v) => Err(format!(
                "Access-Control-Allow-Credentials is {v:?}, not \"true\", so no credentials"
            )),
            None => Err(
                "the answer has no Access-Control-Allow-Credentials: true, so no credentials"
                    .into(),
            ),
        };
    }
    match value(h, header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        Some("*") => Ok(()),
        Some(o) if o == origin.trim_end_matches('/') => Ok(()),
        Some(o) => Err(format!(
            "Access-Control-Allow-Origin is {o:?}, not {origin:?}"
        )),
        None => Err("the answer has no Access-Control-Allow-Origin".into()),
    }
}

/// Whether a preflight's answer (`status`, headers) allows the request
/// it announced.
pub fn preflight_allows(
    status: u16,
    h: &HeaderMap,
    origin: &str,
    method: &Method,
    names: &[String],
    with_credentials: bool,
) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Err(format!("the preflight was answered {status}, not 2xx"));
    }
    readable(h, origin, with_credentials)?;
    // With credentials a "*" in the lists is just a name, not a wildcard.
    let any = if with_credentials { "\u{0}" } else { "*" };
    let listed = |name: header::HeaderName| -> Vec<String> {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let methods = listed(header::ACCESS_CONTROL_ALLOW_METHODS);
    let simple_method = matches!(*method, Method::GET | Method::HEAD | Method::POST);
    if !simple_method
        && !methods
            .iter()
            .any(|m| m == any || m.eq_ignore_ascii_case(method.as_str()))
    {
        return Err(format!(
            "{method} is not in Access-Control-Allow-Methods ({})",
            methods.join(", ")
        ));
    }
    let allowed = listed(header::ACCESS_CONTROL_ALLOW_HEADERS);
    if let Some(missing) = names
        .iter()
        .find(|n| !allowed.iter().any(|a| a == any || a == *n))
    {
        return Err(format!(
            "header {missing} is not in Access-Control-Allow-Headers ({})",
            allowed.join(", ")
        ));
    }
    Ok(())
}

/// How long a preflight's answer is kept when it gives no
/// Access-Control-Max-Age (Fetch §4.8: 5 seconds).
pub const DEFAULT_MAX_AGE: u64 = 5;
/// The longest a preflight's answer is kept, whatever it asks (Chromium's
/// cap: 2 hours).
pub const MAX_MAX_AGE: u64 = 7200;
/// Preflight answers kept at most (the oldest to expire goes first).
const MAX_ENTRIES: usize = 1000;

/// The CORS-preflight cache (Fetch §4.8): what a preflight allowed, per
/// (origin, URL, credentials), for as long as its Access-Control-Max-Age
/// says; a request it covers goes without a new preflight. Pure: the
/// clock is passed in.
#[derive(Debug, Default)]
pub struct PreflightCache {
    entries: std::collections::HashMap<(String, String, bool), Allowed>,
}

/// What one preflight allowed, until when.
#[derive(Clone, Debug)]
struct Allowed {
    methods: Vec<String>,
    headers: Vec<String>,
    /// `*` counts as a wildcard (only without credentials).
    wildcard: bool,
    stored: std::time::Instant,
    expires: std::time::Instant,
    max_age: u64,
}

/// A preflight found in the cache: how old it is and how long it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub age_secs: u64,
    pub max_age_secs: u64,
}

impl PreflightCache {
    /// Keeps what an allowing preflight's answer (`h`) said; returns how
    /// many seconds it is kept (0: not kept).
    pub fn store(
        &mut self,
        origin: &str,
        url: &Url,
        credentials: bool,
        h: &HeaderMap,
        now: std::time::Instant,
    ) -> u64 {
        let max_age = h
            .get(header::ACCESS_CONTROL_MAX_AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_MAX_AGE)
            .min(MAX_MAX_AGE);
        let key = (origin.to_string(), url.as_str().to_string(), credentials);
        if max_age == 0 {
            self.entries.remove(&key);
            return 0;
        }
        self.entries.retain(|_, e| e.expires > now);
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        let listed = |name: header::HeaderName| -> Vec<String> {
            h.get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        };
        self.entries.insert(
            key,
            Allowed {
                methods: listed(header::ACCESS_CONTROL_ALLOW_METHODS),
                headers: listed(header::ACCESS_CONTROL_ALLOW_HEADERS),
                wildcard: !credentials,
                stored: now,
                expires: now + std::time::Duration::from_secs(max_age),
                max_age,
            },
        );
        max_age
    }

    /// Whether a kept preflight covers `method` with header `names` from
    /// `origin` to `url`.
    pub fn covers(
        &self,
        origin: &str,
        url: &Url,
        credentials: bool,
        method: &Method,
        names: &[String],
        now: std::time::Instant,
    ) -> Option<Hit> {
        let key = (origin.to_string(), url.as_str().to_string(), credentials);
        let e = self.entries.get(&key).filter(|e| e.expires > now)?;
        let has = |list: &[String], x: &str| {
            list.iter()
                .any(|m| (e.wildcard && m == "*") || m.eq_ignore_ascii_case(x))
        };
        let simple_method = matches!(*method, Method::GET | Method::HEAD | Method::POST);
        if !simple_method && !has(&e.methods, method.as_str()) {
            return None;
        }
        if !names.iter().all(|n| has(&e.headers, n)) {
            return None;
        }
        Some(Hit {
            age_secs: now.duration_since(e.stored).as_secs(),
            max_age_secs: e.max_age,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }
    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }
    fn hdr(k: &str, v: &str) -> Vec<(String, String)> {
        vec![(k.into(), v.into())]
    }

    #[test]
    fn requests_are_same_origin_simple_or_preflighted_by_the_fetch_rules() {
        let api = u("https://myapp.test/api/users");
        assert_eq!(
            classify("https://myapp.test", &api, &Method::GET, &[]),
            Mode::SameOrigin
        );
        assert_eq!(
            classify("https://other.test", &api, &Method::GET, &[]),
            Mode::Simple
        );
        let form = hdr(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        assert_eq!(
            classify("https://other.test", &api, &Method::POST, &form),
            Mode::Simple
        );
        let json = hdr("Content-Type", "application/json");
        assert_eq!(
            classify("https://other.test", &api, &Method::POST, &json),
            Mode::Preflight {
                method: Method::POST,
                headers: vec!["content-type".into()]
            }
        );
        assert_eq!(
            classify("https://other.test", &api, &Method::DELETE, &[]),
            Mode::Preflight {
                method: Method::DELETE,
                headers: vec![]
            }
        );
        // Another port is another origin.
        assert_eq!(
            classify("https://myapp.test:8443", &api, &Method::GET, &[]),
            Mode::Simple
        );
    }

    #[test]
    fn an_answer_is_readable_only_when_it_names_the_origin() {
        assert!(
            readable(
                &h(&[("access-control-allow-origin", "https://a.test")]),
                "https://a.test",
                false
            )
            .is_ok()
        );
        assert!(
            readable(
                &h(&[("access-control-allow-origin", "*")]),
                "https://a.test",
                false
            )
            .is_ok()
        );
        assert!(
            readable(
                &h(&[("access-control-allow-origin", "https://b.test")]),
                "https://a.test",
                false
            )
            .is_err()
        );
        assert!(
            readable(&h(&[]), "https://a.test", false)
                .unwrap_err()
                .contains("no Access-Control-Allow-Origin")
        );
    }

    #[test]
    fn a_preflight_must_allow_the_origin_method_and_headers() {
        let ok = h(&[
            ("access-control-allow-origin", "https://a.test"),
            ("access-control-allow-methods", "GET,POST,PUT"),
            ("access-control-allow-headers", "content-type,authorization"),
        ]);
        let names = vec!["content-type".to_string()];
        assert!(preflight_allows(204, &ok, "https://a.test", &Method::PUT, &names, false).is_ok());
        let e = preflight_allows(204, &ok, "https://a.test", &Method::DELETE, &names, false)
            .unwrap_err();
        assert!(e.contains("DELETE"), "{e}");
        let e = preflight_allows(
            204,
            &ok,
            "https://a.test",
            &Method::PUT,
            &["x-secret".into()],
            false,
        )
        .unwrap_err();
        assert!(e.contains("x-secret"), "{e}");
        assert!(
            preflight_allows(204, &h(&[]), "https://a.test", &Method::PUT, &[], false).is_err()
        );
        assert!(preflight_allows(405, &ok, "https://a.test", &Method::PUT, &[], false).is_err());
    }

    #[test]
    fn with_credentials_the_origin_is_named_exactly_and_credentials_allowed() {
        let o = "https://a.test";
        let exact = h(&[("access-control-allow-origin", o)]);
        let e = readable(&exact, o, true).unwrap_err();
        assert!(e.contains("Access-Control-Allow-Credentials"), "{e}");
        let both = h(&[
            ("access-control-allow-origin", o),
            ("access-control-allow-credentials", "true"),
        ]);
        assert!(readable(&both, o, true).is_ok());
        let star = h(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
        ]);
        assert!(readable(&star, o, true).unwrap_err().contains("may not be"));
        assert!(readable(&star, o, false).is_ok());
        // "*" in the preflight's lists is no wildcard with credentials.
        let pre = h(&[
            ("access-control-allow-origin", o),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "*"),
        ]);
        let e = preflight_allows(204, &pre, o, &Method::PUT, &[], true).unwrap_err();
        assert!(
            e.contains("PUT is not in Access-Control-Allow-Methods"),
            "{e}"
        );
        let pre = h(&[
            ("access-control-allow-origin", o),
            ("access-control-allow-methods", "*"),
        ]);
        assert!(preflight_allows(204, &pre, o, &Method::PUT, &[], false).is_ok());
    }

    #[test]
    fn a_preflight_is_kept_for_its_max_age_and_covers_only_what_it_allowed() {
        let now = std::time::Instant::now();
        let url = u("https://myapp.test/api/users/1");
        let o = "https://partner.test";
        let pre = h(&[
            ("access-control-allow-origin", o),
            ("access-control-allow-methods", "GET, PUT, DELETE"),
            ("access-control-allow-headers", "content-type"),
            ("access-control-max-age", "600"),
        ]);
        let mut c = PreflightCache::default();
        assert_eq!(c.store(o, &url, false, &pre, now), 600);
        let later = now + std::time::Duration::from_secs(599);
        let names = ["content-type".to_string()];
        let hit = c.covers(o, &url, false, &Method::DELETE, &names, later);
        assert_eq!(
            hit,
            Some(Hit {
                age_secs: 599,
                max_age_secs: 600
            })
        );
        // Not another method, header, origin, URL or credentials mode,
        // and not once it has expired.
        assert!(
            c.covers(o, &url, false, &Method::PATCH, &[], later)
                .is_none()
        );
        let other = ["x-other".to_string()];
        assert!(
            c.covers(o, &url, false, &Method::PUT, &other, later)
                .is_none()
        );
        assert!(
            c.covers("https://a.test", &url, false, &Method::PUT, &[], later)
                .is_none()
        );
        let elsewhere = u("https://myapp.test/api/users/2");
        assert!(
            c.covers(o, &elsewhere, false, &Method::PUT, &[], later)
                .is_none()
        );
        assert!(c.covers(o, &url, true, &Method::PUT, &[], later).is_none());
        let expired = now + std::time::Duration::from_secs(600);
        assert!(
            c.covers(o, &url, false, &Method::PUT, &[], expired)
                .is_none()
        );
        // No Max-Age: 5 seconds; a huge one: capped at 2 hours; 0: not kept.
        let bare = h(&[("access-control-allow-methods", "PUT")]);
        assert_eq!(c.store(o, &url, false, &bare, now), DEFAULT_MAX_AGE);
        let huge = h(&[("access-control-max-age", "86400")]);
        assert_eq!(c.store(o, &url, false, &huge, now), MAX_MAX_AGE);
        let zero = h(&[("access-control-max-age", "0")]);
        assert_eq!(c.store(o, &url, false, &zero, now), 0);
        assert!(c.covers(o, &url, false, &Method::GET, &[], now).is_none());
        // "*" is a wildcard only without credentials.
        let star = h(&[("access-control-allow-methods", "*")]);
        c.store(o, &url, false, &star, now);
        assert!(c.covers(o, &url, false, &Method::PATCH, &[], now).is_some());
        c.store(o, &url, true, &star, now);
        assert!(c.covers(o, &url, true, &Method::PATCH, &[], now).is_none());
    }
}
