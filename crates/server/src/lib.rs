//! What makes a weblab listener a server: it survives any client.
//!
//! Map (start with `handle.rs`):
//! - [`handle`] — [`ServerHandle`]: a running server's tasks, its
//!   connection gauges, `stop_accepting`, `drain(grace)` and `ended()` (how a
//!   supervisor learns that a server died, and why);
//! - [`gauge`] — [`Gauge`]: a cap on concurrent connections or tasks;
//! - [`bucket`] — [`Bucket`]: a token bucket for rate limits;
//! - [`watched`] — a stream that reports the bytes each read and write moved;
//! - `http` — the HTTP accept loop shared by the load balancer, the web
//!   servers and the application servers: optional TLS, HTTP/1.1 and
//!   HTTP/2 on one port, a connection cap with clean refusal, head, body,
//!   idle and stall timeouts, the Host check of RFC 9112 §3.2, an
//!   immediate 413, and GOAWAY / close on shutdown.

pub mod bucket;
pub mod gauge;
pub mod handle;
#[cfg(feature = "http")]
pub mod http;
pub mod watched;

pub use bucket::Bucket;
pub use gauge::Gauge;
pub use handle::{Exit, InFlight, ServerHandle, StopSignal};
#[cfg(feature = "http")]
pub use http::{
    Admission, ConnInfo, Handler, Keep, Limits, RequestBody, serve_http, serve_http_on,
};
