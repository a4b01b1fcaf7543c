//! Simulator speed: segments per wall-clock second for one long, fast flow
//! and for several flows sharing the bottleneck. Used by bench/tcplab.sh.
//!
//! cargo run --release -p weblab-tcplab --example speed [--sack] [FLOWS...]

use std::time::Instant;

use weblab_tcplab::time::{MS, SEC};
use weblab_tcplab::{CcKind, FlowConfig, LinkConfig, LossModel, SimConfig, run};

fn main() {
    let sack = std::env::args().any(|a| a == "--sack");
    let flows: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let flows = if flows.is_empty() {
        vec![1, 2, 4, 8, 16]
    } else {
        flows
    };
    println!(
        "{:>6} {:>10} {:>10} {:>12} {:>10} {:>14} {:>12}",
        "flows", "sim s", "wall s", "segments", "events", "segments/s", "link used"
    );
    for n in flows {
        // 60 s of 1 Gbit/s with 50 ms RTT and a BDP of queue; losses come
        // only from the queue overflowing (the ns-3 anchor case "p = 0").
        let bdp = (1e9 * 0.05 / 8.0 / 1500.0) as usize;
        let cfg = SimConfig {
            data: LinkConfig {
                rate_bps: 1_000_000_000,
                delay: 25 * MS,
                queue_limit: bdp,
                loss: LossModel::None,
                ..Default::default()
            },
            ack: LinkConfig {
                delay: 25 * MS,
                ..Default::default()
            },
            flows: (0..n)
                .map(|i| FlowConfig {
                    cc: CcKind::Reno,
                    sack,
                    start: i as u64 * 100 * MS,
                    rcv_buffer: 64 << 20,
                    ..Default::default()
                })
                .collect(),
            duration: 60 * SEC,
            seed: 42,
            ..Default::default()
        };
        let t0 = Instant::now();
        let r = run(&cfg);
        let wall = t0.elapsed().as_secs_f64();
        // Share of the link's 60 s carrying delivered payload.
        let delivered: u64 = r.flows.iter().map(|f| f.delivered).sum();
        let used = delivered as f64 * 1500.0 / 1448.0 * 8.0 / (1e9 * 60.0);
        println!(
            "{n:>6} {:>10} {wall:>10.3} {:>12} {:>10} {:>14.0} {:>11.0}%",
            60,
            r.segments,
            r.events,
            r.segments as f64 / wall,
            used * 100.0
        );
    }
}
