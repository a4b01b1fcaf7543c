//! Any HTML body from a server: the subresource scan never panics and only
//! yields http(s) URLs; the form scan never panics; any Set-Cookie value
//! leaves the cookie jar able to answer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let base = url::Url::parse("https://myapp.test/login").unwrap();
    for (_, u) in weblab_browser::html::subresources(data, &base) {
        assert!(u.scheme() == "http" || u.scheme() == "https");
    }
    let _ = weblab_browser::html::forms(data, &base);
    if let Ok(s) = std::str::from_utf8(data) {
        let mut jar = weblab_browser::cookies::Jar::default();
        for line in s.lines() {
            jar.store(&base, line, 0);
        }
        for top_level in [true, false] {
            let from = weblab_browser::cookies::Context {
                initiator: Some(base.clone()),
                top_level,
                safe_method: top_level,
            };
            let _ = jar.header(&base, 1, &from);
        }
    }
});
