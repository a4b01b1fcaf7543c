//! Any world file: a clear error or a world, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = weblab::config::World::parse("fuzz.toml", text);
    }
});
