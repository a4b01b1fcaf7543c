//! Our goodput beside ns-3's in the anchor configuration, with ratios, and
//! beside the Mathis and PFTK models. Used by bench/tcplab.sh.
//!
//! `ns3 fast AFTER WHOLE`: only the 1 Gbit/s, 50 ms, p = 1e-4 case, beside
//! ns-3's two figures for it (Mbit/s after 10 s, and over the whole run).

use weblab_tcplab::CcKind;
use weblab_tcplab::anchors::{
    NS3_CUBIC, NS3_NEWRENO_DELACK1, NS3_NEWRENO_DELACK2, NS3_NEWRENO_SACK, anchor_goodput,
    fast_path,
};
use weblab_tcplab::models::{mathis_segments_per_sec, pftk_segments_per_sec};

/// A configuration row: name, algorithm, delayed ACKs, ACKs per segment (b), ns-3 figures.
type Row = (&'static str, CcKind, bool, bool, f64, &'static [(f64, f64)]);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("fast") {
        let num = |i: usize| args.get(i).and_then(|a| a.parse::<f64>().ok());
        let ours = fast_path(1_000_000_000, 50, 1e-4, 10, 60);
        let m = mbit_of(mathis_segments_per_sec(0.05, 1e-4, 2.0));
        println!(
            "{:<34} {:>8} {:>8} {:>6}",
            "1 Gbit/s, 50 ms, p = 1e-4", "weblab", "ns-3", "ratio"
        );
        for (what, ours, theirs) in [
            ("goodput from 10 s on", ours.after_10s_mbps, num(2)),
            ("delivered / whole run", ours.whole_run_mbps, num(3)),
        ] {
            match theirs {
                Some(t) => println!("{what:<34} {ours:>8.2} {t:>8.2} {:>6.2}", ours / t),
                None => println!("{what:<34} {ours:>8.2} {:>8} {:>6}", "-", "-"),
            }
        }
        println!("(Mathis with b = 2: {m:.2} Mbit/s)");
        return;
    }
    let mbit = mbit_of;
    println!(
        "{:<16} {:>6} {:>8} {:>8} {:>6} {:>8} {:>6} {:>8} {:>6}",
        "config", "p", "weblab", "ns-3", "ratio", "Mathis", "ratio", "PFTK", "ratio"
    );
    let rows: [Row; 4] = [
        (
            "newreno delack2",
            CcKind::NewReno,
            true,
            false,
            2.0,
            &NS3_NEWRENO_DELACK2,
        ),
        (
            "newreno delack1",
            CcKind::NewReno,
            false,
            false,
            1.0,
            &NS3_NEWRENO_DELACK1,
        ),
        (
            "newreno sack",
            CcKind::NewReno,
            true,
            true,
            2.0,
            &NS3_NEWRENO_SACK,
        ),
        ("cubic sack", CcKind::Cubic, true, true, 2.0, &NS3_CUBIC),
    ];
    for (name, cc, delayed, sack, b, table) in rows {
        for &(p, ns3) in table {
            let ours = anchor_goodput(cc, delayed, sack, p, 10, 200);
            let m = mbit(mathis_segments_per_sec(0.1, p, b));
            let pf = mbit(pftk_segments_per_sec(0.1, p, b, 1.0, 1e9));
            println!(
                "{name:<16} {p:>6} {ours:>8.3} {ns3:>8.3} {:>6.2} {m:>8.3} {:>6.2} {pf:>8.3} {:>6.2}",
                ours / ns3,
                ours / m,
                ours / pf
            );
        }
    }
}

fn mbit_of(seg: f64) -> f64 {
    seg * 1448.0 * 8.0 / 1e6
}
