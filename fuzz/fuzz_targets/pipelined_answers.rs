//! What a server sends back on a pipelined connection (`--pipeline`):
//! answers parsed head by head and their bodies framed, the bytes fed in
//! pieces of any size. Errors are values, never panics; a body never
//! yields more bytes than came in, and a piece of `More` with the
//! connection closed never happens.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use weblab_browser::pipe::{Piece, parse_head};

fuzz_target!(|data: &[u8]| {
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 32) + 1;
    let head_request = step % 7 == 0;
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut body_bytes = 0usize;
    // Up to eight answers in a row, as a pipeline reads them.
    for _ in 0..8 {
        let head = loop {
            match parse_head(&buf) {
                Ok(Some((used, head))) => {
                    let _ = buf.split_to(used);
                    break head;
                }
                Ok(None) if fed < wire.len() => {
                    let n = step.min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
                _ => return,
            }
        };
        let _ = head.closes();
        let Ok(mut framing) = head.framing(head_request) else {
            return;
        };
        loop {
            let closed = fed >= wire.len();
            match framing.take(&mut buf, closed) {
                Ok(Piece::Data(d)) => {
                    assert!(!d.is_empty());
                    body_bytes += d.len();
                    assert!(body_bytes <= fed);
                }
                Ok(Piece::End) => break,
                Ok(Piece::More) => {
                    assert!(!closed, "More after the close");
                    let n = step.min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
                Err(_) => return,
            }
        }
    }
});
