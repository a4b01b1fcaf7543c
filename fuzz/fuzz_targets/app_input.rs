//! What the application server reads from clients: STOMP frames (a parsed
//! frame must encode and parse back to itself), JSON bodies, Accept
//! headers, paging queries, and route lists for `lint-routes`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weblab_app::routes::lint;
use weblab_app::{rest, stomp};

fuzz_target!(|data: &[u8]| {
    let _ = rest::parse_object(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(f)) = stomp::parse(s)
        && f.command != "CONNECT"
        && f.command != "STOMP"
    {
        // Escaping, and the content-length it adds, can take a frame past
        // the limits.
        let wire = f.encode();
        if wire.len() <= stomp::MAX_FRAME && f.headers.len() < 32 {
            let again = stomp::parse(&wire).unwrap().unwrap();
            assert_eq!(again.command, f.command);
            assert_eq!(again.body, f.body);
            for (k, v) in f.headers.iter().filter(|(k, _)| k != "content-length") {
                assert!(again.headers.contains(&(k.clone(), v.clone())));
            }
        }
    }
    let _ = rest::Page::from_query(Some(s));
    if let Ok(v) = http::HeaderValue::from_str(s) {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::ACCEPT, v);
        let _ = rest::negotiate(&h);
    }
    if let Ok(routes) = lint::parse(s) {
        for (m, p) in routes {
            let _ = lint::check(&m, &p);
        }
    }
});
