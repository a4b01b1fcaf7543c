//! Any OTLP/HTTP export body, protobuf or JSON: parsing fails cleanly, and
//! every span that comes out has non-zero ids and ordered times; whatever
//! decodes encodes again (events into attributes), in canonical bytes, and
//! decodes to as many spans. The collector's path that keeps spans encoded
//! agrees with the full decode: the hand-written walk of one span accepts
//! exactly what prost accepts and reads the same fields, and every span
//! it keeps decodes later to the span the full decode gives.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use weblab_otlp::convert::{
    Accept, Encoding, decode, encode, encode_protobuf, parse, receive_protobuf, to_protobuf,
};
use weblab_otlp::head::span_head;
use weblab_otlp::wire;

fuzz_target!(|data: &[u8]| {
    let now = 1_700_000_000_000_000_000;
    // The walk of one span against prost.
    let walked = span_head(data);
    let full = wire::Span::decode(data);
    assert_eq!(walked.is_ok(), full.is_ok());
    if let (Ok(h), Ok(s)) = (walked, full) {
        assert_eq!(
            (h.trace_id, h.span_id, h.parent_span_id),
            (&s.trace_id[..], &s.span_id[..], &s.parent_span_id[..])
        );
        assert_eq!(
            (h.start_time_unix_nano, h.end_time_unix_nano),
            (s.start_time_unix_nano, s.end_time_unix_nano)
        );
    }
    let body = bytes::Bytes::copy_from_slice(data);
    let kept = receive_protobuf(body.clone(), now, Accept::default());
    for enc in [Encoding::Protobuf, Encoding::Json] {
        if let Ok(req) = parse(enc, body.clone()) {
            let out = decode(&req, now, Accept::default());
            for s in &out.spans {
                assert!(s.trace.0 != 0 && s.id.0 != 0);
                assert!(s.end_ns >= s.start_ns);
            }
            if enc == Encoding::Protobuf {
                // Nesting counts from each span when kept, from the
                // request when decoded whole: the kept path may accept a
                // little deeper, never less.
                let kept = kept
                    .as_ref()
                    .expect("the kept path accepts what decode accepts");
                assert_eq!(kept.rejected, out.rejected);
                assert_eq!(kept.spans.len(), out.spans.len());
                for ((head, span), want) in kept.spans.iter().zip(&out.spans) {
                    assert_eq!(head.trace, want.trace);
                    assert_eq!(head.root, want.parent.is_none());
                    let got = span.decode().expect("a kept span decodes");
                    assert_eq!(
                        serde_json::to_value(&got).unwrap(),
                        serde_json::to_value(want).unwrap()
                    );
                }
            }
            // The bytes written are canonical: prost writes them again
            // unchanged.
            let body = encode_protobuf(&out.spans);
            let tree = encode(&out.spans);
            assert_eq!(to_protobuf(&tree), body);
            let again = decode(&tree, now, Accept::default());
            assert_eq!(again.spans.len(), out.spans.len());
            assert_eq!(again.rejected, 0);
        }
    }
    if let Ok(kept) = kept {
        for (_, span) in &kept.spans {
            assert!(span.decode().is_some(), "whatever is kept decodes later");
        }
    }
});
