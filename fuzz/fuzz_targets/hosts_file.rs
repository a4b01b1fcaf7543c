//! Hosts-file text: parse errors are values, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(h) = weblab_dns::HostsFile::parse(text)
    {
        let _ = h.get("localhost");
    }
});
