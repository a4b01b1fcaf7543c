//! Any bytes as a frame captured on lo (weblab experiment layers): split
//! or refused, never a panic; what is split adds up to the frame; grouped
//! by host pair (as `--page` does), it is counted once.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weblab::layers::{Frame, group, split};

fuzz_target!(|data: &[u8]| {
    let frame = Frame {
        at_us: 0,
        bytes: data.to_vec(),
    };
    if let Some(l) = split(&frame) {
        assert_eq!(l.raw, data);
        assert!(l.link_len + l.ip_len + l.tcp_len + l.payload().len() <= data.len());
    }
    // Two copies of the frame, its addresses named, grouped as a page
    // load's frames are: one pair or none, with both frames counted.
    let names = [
        ([127, 0, 0, 1].into(), "a".to_string()),
        ([127, 0, 0, 2].into(), "b".to_string()),
    ]
    .into_iter()
    .chain(
        data.get(26..34)
            .map(|a| {
                [
                    ([a[0], a[1], a[2], a[3]].into(), "src".to_string()),
                    ([a[4], a[5], a[6], a[7]].into(), "dst".to_string()),
                ]
            })
            .into_iter()
            .flatten(),
    )
    .collect();
    let hops = group(&[frame.clone(), frame], &names);
    assert!(hops.len() <= 1);
    if let Some(h) = hops.first() {
        assert_eq!(h.frames, 2);
        assert_eq!(h.bytes, 2 * data.len());
    }
});
