//! Any compressed body: decoding fails cleanly and stays within its bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weblab_browser::decode::{MAX_DECODED, decode};

fuzz_target!(|data: &[u8]| {
    for enc in ["gzip", "deflate", "br"] {
        if let Ok(out) = decode(enc, data) {
            assert!(out.len() as u64 <= MAX_DECODED);
        }
    }
});
