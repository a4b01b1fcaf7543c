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
}
