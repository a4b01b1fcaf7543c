//! Reference figures measured with ns-3 3.37 on this kind of machine
//! (`../shared/anchors/ns3-tcp.md`), and the experiment that reproduces
//! their configuration in the lab.
//!
//! Dumbbell, RTT 100 ms, 100 Mbit/s bottleneck (never the limit), drop-tail
//! queue of one BDP, Bernoulli loss on data packets only, MSS 1448,
//! initial window 10, minimum RTO 1 s; goodput counted after 10 s.

use crate::cc::CcKind;
use crate::link::{LinkConfig, LossModel};
use crate::sim::{FlowConfig, SimConfig, run};
use crate::time::{MS, SEC};

/// ns-3 goodput in Mbit/s by loss rate, one ACK per two segments
/// (`newreno_nosack`: no SACK, as the lab's NewReno).
pub const NS3_NEWRENO_DELACK2: [(f64, f64); 5] = [
    (0.001, 3.218),
    (0.005, 1.260),
    (0.01, 0.804),
    (0.02, 0.534),
    (0.05, 0.293),
];
/// The same with an ACK per segment (`newreno_delack1`).
pub const NS3_NEWRENO_DELACK1: [(f64, f64); 5] = [
    (0.001, 4.574),
    (0.005, 1.857),
    (0.01, 1.211),
    (0.02, 0.786),
    (0.05, 0.415),
];
/// The same with SACK on (`newreno`).
pub const NS3_NEWRENO_SACK: [(f64, f64); 5] = [
    (0.001, 3.155),
    (0.005, 1.209),
    (0.01, 0.766),
    (0.02, 0.515),
    (0.05, 0.292),
];
/// ns-3's TcpCubic (delayed ACKs, SACK on); trustworthy only to 2 %.
pub const NS3_CUBIC: [(f64, f64); 4] =
    [(0.001, 4.620), (0.005, 1.457), (0.01, 0.827), (0.02, 0.558)];

/// ns-3's two figures for the fast long path (1 Gbit/s, 50 ms, p = 1e-4,
/// NewReno + SACK + delayed ACKs, 60 s, means of seeds 1..=10), measured
/// on 2026-12-07 with ns-3 3.37 (Debian) running `bench/peer/ns3_dumbbell.cc`.
pub const NS3_FAST_PATH: FastPath = FastPath {
    after_10s_mbps: 20.11,
    whole_run_mbps: 29.13,
};

/// Two figures of one long-distance fast path (`bench/tcplab.sh`, beside
/// ns-3 built from `bench/peer/ns3_dumbbell.cc`): the goodput counted from
/// 10 s on (the anchor's rule), and the data delivered over the whole run
/// divided by its length, which includes slow start's first window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FastPath {
    pub after_10s_mbps: f64,
    pub whole_run_mbps: f64,
}

/// The dumbbell at `rate_bps` and `rtt_ms` (one BDP of queue), NewReno with
/// SACK and delayed ACKs, loss `p`, `duration_s` seconds, means of seeds
/// 1..=`seeds`.
pub fn fast_path(rate_bps: u64, rtt_ms: u64, p: f64, seeds: u64, duration_s: u64) -> FastPath {
    let bdp_bytes = rate_bps as f64 / 8.0 * rtt_ms as f64 / 1000.0;
    let (mut after, mut whole) = (0.0, 0.0);
    for seed in 1..=seeds {
        let cfg = SimConfig {
            data: LinkConfig {
                rate_bps,
                delay: rtt_ms * MS / 2,
                queue_limit: (bdp_bytes / 1500.0) as usize,
                loss: LossModel::Bernoulli(p),
                ..Default::default()
            },
            ack: LinkConfig {
                delay: rtt_ms * MS / 2,
                ..Default::default()
            },
            flows: vec![FlowConfig {
                cc: CcKind::NewReno,
                start: 100 * MS,
                delayed_ack: true,
                sack: true,
                rcv_buffer: (4.0 * bdp_bytes) as u64,
                ..Default::default()
            }],
            duration: duration_s * SEC,
            measure_from: 10 * SEC,
            seed,
            ..Default::default()
        };
        let r = run(&cfg);
        after += r.goodput_bps(0) / 1e6;
        whole += r.flows[0].delivered as f64 * 8.0 / duration_s as f64 / 1e6;
    }
    FastPath {
        after_10s_mbps: after / seeds as f64,
        whole_run_mbps: whole / seeds as f64,
    }
}

/// Mean goodput (Mbit/s) over `seeds` runs of the anchor configuration.
pub fn anchor_goodput(
    cc: CcKind,
    delayed_ack: bool,
    sack: bool,
    p: f64,
    seeds: u64,
    duration_s: u64,
) -> f64 {
    let bdp_packets = (100e6 * 0.1 / 8.0 / 1500.0) as usize;
    let mut total = 0.0;
    for seed in 1..=seeds {
        let cfg = SimConfig {
            data: LinkConfig {
                rate_bps: 100_000_000,
                delay: 50 * MS,
                queue_limit: bdp_packets,
                loss: LossModel::Bernoulli(p),
                ..Default::default()
            },
            ack: LinkConfig {
                delay: 50 * MS,
                ..Default::default()
            },
            flows: vec![FlowConfig {
                cc,
                start: 100 * MS,
                delayed_ack,
                sack,
                rcv_buffer: 4 * 1_250_000,
                ..Default::default()
            }],
            duration: duration_s * SEC,
            measure_from: 10 * SEC,
            seed,
            ..Default::default()
        };
        total += run(&cfg).goodput_bps(0) / 1e6;
    }
    total / seeds as f64
}
