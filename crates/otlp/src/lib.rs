//! weblab's spans over OTLP/HTTP, so that roles in other processes (and
//! any OpenTelemetry-instrumented program) join one trace.
//!
//! Map (start with `convert.rs`):
//! - [`convert`] — weblab spans ↔ OTLP export requests (pure);
//! - [`export`] — [`OtlpExporter`], a span sink that batches spans and
//!   posts them to a collector;
//! - [`receive`] — the receiver: `POST /v1/traces` into a trace store, and
//!   the small JSON API that `trace list`, `trace show` and `tour --attach`
//!   read.

pub mod convert;
pub mod export;
pub mod head;
pub mod read;
pub mod receive;
pub mod wire;
mod write;

pub use export::OtlpExporter;
pub use receive::{Receiver, TraceSummary};
