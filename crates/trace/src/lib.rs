//! The trace model every weblab component records into, and the renderers
//! that draw it.
//!
//! Map of the crate (start with `span.rs`):
//! - [`span`] — ids, the monotonic clock, [`Span`], [`Layer`], W3C `traceparent`.
//! - [`event`] — the typed attributes of a span, one enum, one line of `Display` each.
//! - [`collector`] — where spans go ([`Collector`] and its [`SpanSink`]s), the
//!   per-host [`Recorder`], and how one request's spans are assembled across
//!   hosts ([`Collector::assemble`]).
//! - [`store`] — the in-memory [`TraceStore`]: indexed by trace id, bounded
//!   by bytes, with a live broadcast.
//! - [`har`] — HAR 1.2 export of the client's requests;
//! - [`render`] — story (en/ko), stage table, waterfall; JSON is plain serde.
//!
//! This crate depends on nothing else of weblab; everything else depends on it.

pub mod collector;
pub mod event;
pub mod explain;
pub mod har;
pub mod korean;
pub mod render;
pub mod size;
pub mod span;
pub mod store;

pub use collector::{Collector, Detail, Recorder, SpanSink};
pub use event::{CacheLevel, DnsOutcome, Event, Phase, error_chain};
pub use span::{Correlation, Ctx, Label, Layer, Span, SpanId, TraceId, now_ns};
pub use store::{Encoded, Head, StoreLimits, StoreStats, TraceStore};
