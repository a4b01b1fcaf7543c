//! Any OTLP/HTTP export body, protobuf or JSON: parsing fails cleanly, and
//! every span that comes out has non-zero ids and ordered times; whatever
//! decodes encodes again (events into attributes) and decodes to as many
//! spans.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weblab_otlp::convert::{Accept, Encoding, decode, encode, parse};

fuzz_target!(|data: &[u8]| {
    let now = 1_700_000_000_000_000_000;
    for enc in [Encoding::Protobuf, Encoding::Json] {
        if let Ok(req) = parse(enc, bytes::Bytes::copy_from_slice(data)) {
            let out = decode(&req, now, Accept::default());
            for s in &out.spans {
                assert!(s.trace.0 != 0 && s.id.0 != 0);
                assert!(s.end_ns >= s.start_ns);
            }
            let again = decode(&encode(&out.spans), now, Accept::default());
            assert_eq!(again.spans.len(), out.spans.len());
            assert_eq!(again.rejected, 0);
        }
    }
});
