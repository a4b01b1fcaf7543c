//! Any OTLP/HTTP export body, protobuf or JSON: parsing fails cleanly, and
//! every span that comes out has non-zero ids and ordered times; whatever
//! decodes encodes again (events into attributes), in canonical bytes, and
//! decodes to as many spans.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weblab_otlp::convert::{Accept, Encoding, decode, encode, encode_protobuf, parse, to_protobuf};

fuzz_target!(|data: &[u8]| {
    let now = 1_700_000_000_000_000_000;
    for enc in [Encoding::Protobuf, Encoding::Json] {
        if let Ok(req) = parse(enc, bytes::Bytes::copy_from_slice(data)) {
            let out = decode(&req, now, Accept::default());
            for s in &out.spans {
                assert!(s.trace.0 != 0 && s.id.0 != 0);
                assert!(s.end_ns >= s.start_ns);
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
});
