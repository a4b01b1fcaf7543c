//! The simulator against theory and against ns-3 (C17–C19).
//!
//! The ns-3 3.37 figures come from `../shared/anchors/ns3-tcp.md` (measured
//! on this kind of machine): a dumbbell with RTT 100 ms, a 100 Mbit/s
//! bottleneck that never limits, a drop-tail queue of one BDP, Bernoulli
//! loss on data packets, MSS 1448, initial window 10, minimum RTO 1 s.

use weblab_tcplab::CcKind;
use weblab_tcplab::anchors::{
    NS3_FAST_PATH, NS3_NEWRENO_DELACK1, NS3_NEWRENO_DELACK2, NS3_NEWRENO_SACK, anchor_goodput,
    fast_path,
};
use weblab_tcplab::models::{mathis_segments_per_sec, pftk_segments_per_sec};

fn mbit(segments_per_sec: f64) -> f64 {
    segments_per_sec * 1448.0 * 8.0 / 1e6
}

#[test]
fn newreno_matches_mathis_pftk_and_ns3() {
    let mut report = String::new();
    let mut failures = Vec::new();
    for (delayed, sack, b, table) in [
        (true, false, 2.0, NS3_NEWRENO_DELACK2),
        (false, false, 1.0, NS3_NEWRENO_DELACK1),
        (true, true, 2.0, NS3_NEWRENO_SACK),
    ] {
        for (p, ns3) in table {
            let ours = anchor_goodput(CcKind::NewReno, delayed, sack, p, 10, 200);
            let mathis = mbit(mathis_segments_per_sec(0.1, p, b));
            let pftk = mbit(pftk_segments_per_sec(0.1, p, b, 1.0, 1e9));
            report.push_str(&format!(
                "delack={delayed} sack={sack} p={p}: ours {ours:.3} ns-3 {ns3:.3} ({:.2}) mathis {mathis:.3} ({:.2}) pftk {pftk:.3} ({:.2})\n",
                ours / ns3,
                ours / mathis,
                ours / pftk
            ));
            if !(0.75..=1.25).contains(&(ours / ns3)) {
                failures.push(format!("ns-3 at p={p} delack={delayed} sack={sack}"));
            }
            if p <= 0.005 && !(0.8..=1.2).contains(&(ours / mathis)) {
                failures.push(format!("Mathis at p={p} delack={delayed} sack={sack}"));
            }
            if p <= 0.02 && !(0.8..=1.2).contains(&(ours / pftk)) {
                failures.push(format!("PFTK at p={p} delack={delayed} sack={sack}"));
            }
        }
    }
    println!("{report}");
    assert!(
        failures.is_empty(),
        "outside the bounds: {failures:?}\n{report}"
    );
}

#[test]
fn a_fast_long_path_matches_ns3_both_ways_of_counting() {
    // 1 Gbit/s, 50 ms, p = 1e-4: from 10 s on both sit on Mathis with
    // b = 2; over the whole run slow start's first window adds half again.
    let ours = fast_path(1_000_000_000, 50, 1e-4, 10, 60);
    let after = ours.after_10s_mbps / NS3_FAST_PATH.after_10s_mbps;
    let whole = ours.whole_run_mbps / NS3_FAST_PATH.whole_run_mbps;
    assert!(
        (0.9..=1.1).contains(&after),
        "{ours:?} vs {NS3_FAST_PATH:?}"
    );
    assert!(
        (0.9..=1.1).contains(&whole),
        "{ours:?} vs {NS3_FAST_PATH:?}"
    );
}
