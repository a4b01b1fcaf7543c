//! The TCP lab: a deterministic discrete-event simulator of TCP's
//! mechanisms (C14–C22). Pure logic: virtual time, a seeded RNG, no sockets.
//!
//! Map (start with `sim.rs`):
//! - [`time`], [`rng`] — virtual nanoseconds and the seeded generator;
//! - [`link`] — one link direction: drop-tail queue, rate, delay, loss models,
//!   jitter, reordering, duplication;
//! - [`cc`] — congestion control behind the [`cc::Controller`] trait;
//! - [`sack`] — SACK blocks and the RFC 6675 scoreboard;
//! - [`sim`] — senders, receivers and the event loop on a dumbbell;
//! - [`arq`] — Stop-and-Wait, Go-Back-N, Selective Repeat, adaptive frames;
//! - [`tcb`] — the RFC 9293 state machine and handshake/close scenarios;
//! - [`transport`] — UDP against TCP, and writes into segments (MSS, Nagle);
//! - [`anchors`] — the ns-3 reference figures and their configuration;
//! - [`models`] — Mathis, PFTK, ARQ efficiency formulas, Jain's index.

pub mod anchors;
pub mod arq;
pub mod cc;
pub mod link;
pub mod models;
pub mod rng;
pub mod sack;
pub mod segment_log;
pub mod sim;
pub mod tcb;
pub mod time;
pub mod transport;

pub use cc::{CcKind, Controller, Recovery, Window};
pub use link::{LinkConfig, LossModel};
pub use sim::{
    FlowConfig, FlowStats, Reaction, ReactionKind, Sample, SimConfig, SimResult, run,
    run_with_progress,
};
