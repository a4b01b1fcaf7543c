//! What the application server reads from clients: STOMP frames (a parsed
//! frame must encode and parse back to itself), JSON bodies, Accept
//! headers, paging queries, route lists for `lint-routes`, and what the
//! identity provider reads: authorization requests and token requests
//! (whatever they hold, an unknown redirect URI is never redirected to).
#![no_main]
use libfuzzer_sys::fuzz_target;
use weblab_app::routes::lint;
use weblab_app::{idp, rest, stomp};

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
    let params: Vec<(String, String)> = url::form_urlencoded::parse(data).into_owned().collect();
    let client = idp::flow::Client {
        id: "myapp".into(),
        name: "myapp".into(),
        secret_digest: weblab_app::auth::digest("s3cret"),
        redirect_uris: vec!["https://myapp.test/cb".into()],
    };
    if let Err(r) = idp::flow::check_authorize(&params, std::slice::from_ref(&client))
        && let Some(to) = idp::flow::refusal_location(&r)
    {
        assert!(to.starts_with("https://myapp.test/cb?"), "{to}");
    }
    let mut grants = idp::flow::Grants::default();
    let _ = grants.exchange(&params, None, &[client], "t".into(), 0);
    if let Ok(routes) = lint::parse(s) {
        for (m, p) in routes {
            let _ = lint::check(&m, &p);
        }
    }
});
