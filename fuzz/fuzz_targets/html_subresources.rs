//! Any HTML body from a server: the subresource scan never panics and only
//! yields http(s) URLs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let base = url::Url::parse("https://myapp.test/login").unwrap();
    for (_, u) in weblab_browser::html::subresources(data, &base) {
        assert!(u.scheme() == "http" || u.scheme() == "https");
    }
});
