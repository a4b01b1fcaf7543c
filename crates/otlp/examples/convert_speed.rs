//! How long encoding and decoding take per span (the cost behind
//! bench/otlp.sh): `cargo run --release -p weblab-otlp --example convert_speed`.

use std::time::Instant;

// The allocator of the weblab binary, so the numbers are the servers'.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use weblab_otlp::convert::{Accept, Encoding, decode, encode_protobuf, parse, receive_protobuf};
use weblab_trace::event::WebAction;
use weblab_trace::{Event, Layer, Span, SpanId, TraceId, now_ns};

fn main() {
    let now = now_ns();
    let spans: Vec<Span> = (0..20_000u64)
        .map(|i| Span {
            trace: TraceId(u128::from(i / 2) + 1),
            id: SpanId(i + 1),
            parent: (i % 2 == 1).then_some(SpanId(i)),
            host: "web1".into(),
            addr: "127.10.4.1".into(),
            layer: Layer::Application,
            component: "web".into(),
            start_ns: now,
            end_ns: now + 50_000,
            request: None,
            link: None,
            correlates: vec![],
            event: if i % 2 == 0 {
                Event::HttpServe {
                    method: "GET".into(),
                    path: "/static/app.css".into(),
                    version: "HTTP/1.1".into(),
                    peer: "127.10.3.1:40000".into(),
                    status: 200,
                }
            } else {
                Event::WebDecision {
                    path: "/static/app.css".into(),
                    action: WebAction::Static {
                        file: "/www/static/app.css".into(),
                        bytes: 1234,
                    },
                }
            },
        })
        .collect();
    // ROUNDS=N repeats both halves (for a profiler); the times are per span.
    let rounds: u32 = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
        .max(1);
    let t = Instant::now();
    let mut bodies = Vec::new();
    for _ in 0..rounds {
        bodies.clear();
        for chunk in spans.chunks(512) {
            bodies.push(bytes::Bytes::from(encode_protobuf(chunk)));
        }
    }
    let enc = t.elapsed() / rounds;
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        n = 0;
        for b in &bodies {
            n += decode(
                &parse(Encoding::Protobuf, b.clone()).unwrap(),
                now,
                Accept::default(),
            )
            .spans
            .len();
        }
    }
    let dec = t.elapsed() / rounds;
    assert_eq!(n, spans.len());
    // What a collector does with protobuf: check each span and keep it
    // encoded (the store's own work is not in this number).
    let t = Instant::now();
    let mut kept = Vec::new();
    for _ in 0..rounds {
        kept.clear();
        for b in &bodies {
            let got = receive_protobuf(b.clone(), now, Accept::default()).unwrap();
            kept.extend(got.spans);
        }
    }
    let keep = t.elapsed() / rounds;
    assert_eq!(kept.len(), spans.len());
    let per = |d: std::time::Duration| d.as_nanos() as f64 / spans.len() as f64 / 1000.0;
    let bytes: usize = bodies.iter().map(bytes::Bytes::len).sum();
    println!(
        "{} spans: encode {:.2} us/span, decode {:.2} us/span, check and keep encoded {:.2} us/span, {:.0} bytes/span on the wire",
        spans.len(),
        per(enc),
        per(dec),
        per(keep),
        bytes as f64 / spans.len() as f64
    );
}
