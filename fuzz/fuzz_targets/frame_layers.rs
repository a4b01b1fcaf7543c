//! Any bytes as a frame captured on lo (weblab experiment layers): split
//! or refused, never a panic; what is split adds up to the frame.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weblab::layers::{Frame, split};

fuzz_target!(|data: &[u8]| {
    let frame = Frame {
        at_us: 0,
        bytes: data.to_vec(),
    };
    if let Some(l) = split(&frame) {
        assert_eq!(l.raw, data);
        assert!(l.link_len + l.ip_len + l.tcp_len + l.payload.len() <= data.len());
    }
});
