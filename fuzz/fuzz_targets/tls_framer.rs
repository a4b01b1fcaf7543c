//! Mallory's TLS record framer (weblab experiment mitm) on any byte
//! stream, cut in two anywhere: the same records as uncut, and at most one
//! bit changed, inside the record chosen.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weblab::mitm::Framer;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (cut, pick, stream) = (data[0] as usize, data[1] as usize % 8, &data[2..]);
    let cut = cut * stream.len() / 255;
    let mut whole = Vec::new();
    Framer::default().feed(&mut stream.to_vec(), |k, l, n| {
        whole.push((k, l, n));
        false
    });
    let (mut a, mut b) = (stream[..cut].to_vec(), stream[cut..].to_vec());
    let mut split = Vec::new();
    let mut f = Framer::default();
    let mut on = |k: u8, l: u16, n: usize| {
        split.push((k, l, n));
        n == pick
    };
    f.feed(&mut a, &mut on);
    f.feed(&mut b, &mut on);
    assert_eq!(whole, split);
    let out = [a, b].concat();
    let changed: Vec<usize> = (0..out.len()).filter(|&i| out[i] != stream[i]).collect();
    assert!(changed.len() <= 1, "{changed:?}");
    if let Some(&i) = changed.first() {
        assert_eq!((out[i] ^ stream[i]).count_ones(), 1);
    }
});
