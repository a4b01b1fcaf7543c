//! What a client controls about a static file request: the request line
//! (HTTP/0.9's simple request is parsed by hand), the URL path, the Range
//! header and Accept-Encoding. Mapping never leaves the root (no `..`, no
//! absolute part) and a range never points outside the file. The same
//! bytes as Cache-Control and Vary go through the cache's rules (RFC
//! 9111), which must never panic, and as RFC 9218's priority field.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Component;
use weblab_edge::files::{Range, accepts, range, relative_path};

fuzz_target!(|data: &[u8]| {
    if let Some(target) = weblab_server::http::http09::simple_request(data) {
        assert!(target.starts_with('/') && !target.contains(' '));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(p) = relative_path(text) {
        assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
    }
    for len in [0u64, 1, 1000, u64::MAX] {
        if let Range::Part(a, b) = range(Some(text), len) {
            assert!(a <= b && b < len, "{text:?} {len} -> {a}-{b}");
        }
    }
    let mut h = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(text) {
        h.insert(http::header::ACCEPT_ENCODING, v.clone());
        let _ = accepts(&h, "gzip");
        let mut resp = http::HeaderMap::new();
        resp.insert(http::header::CACHE_CONTROL, v.clone());
        resp.insert(http::header::VARY, v.clone());
        resp.insert(http::header::EXPIRES, v);
        let _ = weblab_edge::cache::Directives::of(&resp);
        for kind in [
            weblab_edge::cache::Kind::Shared,
            weblab_edge::cache::Kind::Private,
        ] {
            let _ = weblab_edge::cache::lifetime(&resp, kind);
            let _ = weblab_edge::cache::storable(
                &http::Method::GET,
                &h,
                http::StatusCode::OK,
                &resp,
                kind,
            );
        }
        // RFC 9218's priority field: any bytes give an urgency in range.
        h.insert("priority", resp[http::header::CACHE_CONTROL].clone());
        let p = weblab_server::http::priority::Priority::of(&h);
        assert!(p.urgency <= 7, "{text:?} -> {p:?}");
    }
});
