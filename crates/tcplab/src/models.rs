//! Closed-form models the simulator is checked against, and Jain's
//! fairness index.

/// Mathis, Semke, Mahdavi, Ott (1997): steady-state TCP throughput in
/// segments per second, `sqrt(3 / (2 b p)) / rtt`, where `b` is the number
/// of segments acknowledged per ACK.
pub fn mathis_segments_per_sec(rtt_s: f64, p: f64, b: f64) -> f64 {
    (3.0 / (2.0 * b * p)).sqrt() / rtt_s
}

/// Padhye, Firoiu, Towsley, Kurose (1998), the full model with timeouts:
/// segments per second, given the RTT, the loss rate `p`, `b` segments per
/// ACK, the retransmission timeout `t0` and the receiver window `w_max`.
pub fn pftk_segments_per_sec(rtt_s: f64, p: f64, b: f64, t0_s: f64, w_max: f64) -> f64 {
    let denom = rtt_s * (2.0 * b * p / 3.0).sqrt()
        + t0_s * (3.0 * (3.0 * b * p / 8.0).sqrt()).min(1.0) * p * (1.0 + 32.0 * p * p);
    (w_max / rtt_s).min(1.0 / denom)
}

/// Utilisation of stop-and-wait with frame loss `p`: `(1 - p) / (1 + 2a)`,
/// where `a` is the propagation delay over the frame's transmission time
/// (a lost frame costs a timeout taken equal to one round trip).
pub fn stop_and_wait_efficiency(a: f64, p: f64) -> f64 {
    (1.0 - p) / (1.0 + 2.0 * a)
}

/// Go-Back-N with window `w`: `(1-p)/(1+2ap)` when the window covers the
/// round trip (`w >= 1 + 2a`), else `w(1-p) / ((1+2a)(1-p+wp))`.
pub fn go_back_n_efficiency(a: f64, p: f64, w: f64) -> f64 {
    if w >= 1.0 + 2.0 * a {
        (1.0 - p) / (1.0 + 2.0 * a * p)
    } else {
        w * (1.0 - p) / ((1.0 + 2.0 * a) * (1.0 - p + w * p))
    }
}

/// Selective repeat with window `w`: `1 - p` when the window covers the
/// round trip, else `w (1 - p) / (1 + 2a)`.
pub fn selective_repeat_efficiency(a: f64, p: f64, w: f64) -> f64 {
    if w >= 1.0 + 2.0 * a {
        1.0 - p
    } else {
        w * (1.0 - p) / (1.0 + 2.0 * a)
    }
}

/// Jain's fairness index of `xs`: 1 when all are equal, 1/n when one has all.
pub fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let sq: f64 = xs.iter().map(|x| x * x).sum();
    if sq == 0.0 {
        return 1.0;
    }
    sum * sum / (xs.len() as f64 * sq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_match_the_anchor_figures() {
        // ../shared/anchors/ns3-tcp.md: RTT 100 ms, MSS 1448: Mathis at
        // p = 1% is 1.419 Mbit/s (b = 1) and 1.003 (b = 2); PFTK (b = 2,
        // T0 = 1 s) 0.818.
        let mbit = |seg: f64| seg * 1448.0 * 8.0 / 1e6;
        assert!((mbit(mathis_segments_per_sec(0.1, 0.01, 1.0)) - 1.419).abs() < 0.002);
        assert!((mbit(mathis_segments_per_sec(0.1, 0.01, 2.0)) - 1.003).abs() < 0.002);
        assert!((mbit(pftk_segments_per_sec(0.1, 0.01, 2.0, 1.0, 1e9)) - 0.818).abs() < 0.002);
        assert!((mbit(pftk_segments_per_sec(0.1, 0.05, 1.0, 1.0, 1e9)) - 0.286).abs() < 0.002);
    }

    #[test]
    fn jain_bounds() {
        assert!((jain(&[5.0, 5.0, 5.0]) - 1.0).abs() < 1e-12);
        assert!((jain(&[9.0, 0.0, 0.0]) - 1.0 / 3.0).abs() < 1e-12);
    }
}
