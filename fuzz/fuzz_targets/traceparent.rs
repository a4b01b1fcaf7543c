//! The traceparent header of any request: accepted values round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weblab_trace::Ctx;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Some(ctx) = Ctx::from_traceparent(s)
    {
        let parent = ctx.parent.unwrap();
        let again = Ctx::from_traceparent(&ctx.traceparent(parent)).unwrap();
        assert_eq!(again, ctx);
    }
});
