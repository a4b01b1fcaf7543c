//! A Netscape cookie file (`weblab fetch -b FILE`): errors are values,
//! never panics; what loads writes back out and loads again the same.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = 1_700_000_000;
    let mut jar = weblab_browser::cookies::Jar::default();
    if jar.load_netscape(text, now).is_ok() {
        let out = jar.to_netscape(now);
        let mut again = weblab_browser::cookies::Jar::default();
        let loaded = again.load_netscape(&out, now);
        assert_eq!(loaded, Ok(jar.len()), "{out}");
        assert_eq!(again.to_netscape(now), out);
    }
});
