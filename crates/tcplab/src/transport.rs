//! Two small experiments on what the application sees:
//! - UDP against TCP over the same lossy, reordering link (C20);
//! - how writes become segments: MSS splitting and Nagle's coalescing (C22).

use crate::link::{Fate, Link, LinkConfig};
use crate::rng::Rng;
use crate::sim::{FlowConfig, SimConfig, run};
use crate::time::{SEC, Time, tx_time};

/// What the receiving application got.
#[derive(Clone, Debug, PartialEq)]
pub struct UdpVsTcp {
    pub messages: u64,
    /// UDP: datagram numbers in the order they arrived.
    pub udp_arrivals: Vec<u64>,
    pub udp_lost: u64,
    /// Datagrams that arrived after a higher-numbered one.
    pub udp_out_of_order: u64,
    pub udp_duplicates: u64,
    pub udp_done: Time,
    /// TCP: messages delivered, always in order.
    pub tcp_delivered: u64,
    pub tcp_retransmits: u64,
    /// Retransmissions after the timer ran out (each after at least
    /// `tcp_min_rto` with nothing acknowledged).
    pub tcp_timeouts: u64,
    pub tcp_fast_retransmits: u64,
    pub tcp_min_rto: Time,
    /// Most messages the receiver held behind a missing one at once.
    pub tcp_held: usize,
    pub tcp_done: Option<Time>,
}

/// Sends `messages` of `size` bytes over `link` once as UDP datagrams at
/// the link's pace, once as one TCP stream, and reports what arrived.
pub fn udp_vs_tcp(
    link: &LinkConfig,
    ack_delay: Time,
    messages: u64,
    size: u32,
    seed: u64,
) -> UdpVsTcp {
    let mut l = Link::new(link.clone());
    let mut rng = Rng::new(seed);
    let gap = tx_time(size + 28, link.rate_bps);
    let mut arrivals: Vec<(Time, u64)> = Vec::new();
    for i in 0..messages {
        if let Fate::Arrives(t, dup) = l.send(i * gap, size + 28, &mut rng) {
            arrivals.push((t, i));
            if let Some(d) = dup {
                arrivals.push((d, i));
            }
        }
    }
    arrivals.sort();
    let mut seen = std::collections::HashSet::new();
    let (mut highest, mut out_of_order, mut dups) = (None::<u64>, 0, 0);
    for (_, i) in &arrivals {
        if !seen.insert(*i) {
            dups += 1;
            continue;
        }
        if highest.is_some_and(|h| *i < h) {
            out_of_order += 1;
        }
        highest = highest.max(Some(*i));
    }
    let tcp = run(&SimConfig {
        data: link.clone(),
        ack: LinkConfig {
            delay: ack_delay,
            ..Default::default()
        },
        flows: vec![FlowConfig {
            bytes: Some(messages * u64::from(size)),
            mss: size,
            ..Default::default()
        }],
        duration: 600 * SEC,
        seed,
        ..Default::default()
    });
    let f = &tcp.flows[0];
    UdpVsTcp {
        messages,
        udp_lost: messages - seen.len() as u64,
        udp_out_of_order: out_of_order,
        udp_duplicates: dups,
        udp_done: arrivals.last().map_or(0, |a| a.0),
        udp_arrivals: arrivals.into_iter().map(|a| a.1).collect(),
        tcp_delivered: f.delivered / u64::from(size),
        tcp_retransmits: f.retransmits,
        tcp_timeouts: f.timeouts,
        tcp_fast_retransmits: f.fast_retransmits,
        tcp_min_rto: FlowConfig::default().min_rto,
        tcp_held: f.max_reorder_buffer,
        tcp_done: f.finished_at,
    }
}

/// One segment put on the wire by [`segment_writes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emitted {
    pub time: Time,
    pub bytes: u32,
}

/// Turns application writes `(time, bytes)` into segments. Writes larger
/// than `mss` are split; with `nagle` on, a segment smaller than the MSS
/// waits while earlier data is unacknowledged (RFC 896, RFC 9293
/// §3.7.4), and what waits is coalesced. Each segment is acknowledged one
/// `rtt` after it leaves (no delayed ACKs), the window never limits.
pub fn segment_writes(writes: &[(Time, u32)], mss: u32, nagle: bool, rtt: Time) -> Vec<Emitted> {
    let mut out = Vec::new();
    let mut pending: u64 = 0;
    // Times at which outstanding segments are acknowledged.
    let mut acks: std::collections::VecDeque<Time> = std::collections::VecDeque::new();
    let mut writes = writes.to_vec();
    writes.sort_by_key(|w| w.0);
    let mut i = 0;
    let mut now: Time = 0;
    loop {
        // Next moment something happens: a write, or an ACK that frees Nagle.
        let next_write = writes.get(i).map(|w| w.0);
        let next_ack = acks.front().copied();
        let t = match (next_write, next_ack) {
            (Some(w), Some(a)) => w.min(a),
            (Some(w), None) => w,
            (None, Some(a)) => a,
            (None, None) if pending == 0 => break,
            (None, None) => now,
        };
        now = now.max(t);
        while acks.front().is_some_and(|&a| a <= now) {
            acks.pop_front();
        }
        while writes.get(i).is_some_and(|w| w.0 <= now) {
            pending += u64::from(writes[i].1);
            i += 1;
        }
        // Full segments always go; a partial one only when nothing is
        // unacknowledged (or Nagle is off).
        while pending > 0 {
            let full = pending >= u64::from(mss);
            if !full && nagle && !acks.is_empty() {
                break;
            }
            let bytes = pending.min(u64::from(mss)) as u32;
            pending -= u64::from(bytes);
            out.push(Emitted { time: now, bytes });
            acks.push_back(now + rtt);
        }
        if i >= writes.len() && pending == 0 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::LossModel;
    use crate::time::MS;

    #[test]
    fn udp_loses_and_reorders_while_tcp_delivers_everything_in_order() {
        let link = LinkConfig {
            rate_bps: 10_000_000,
            delay: 20 * MS,
            jitter: 3 * MS,
            loss: LossModel::Bernoulli(0.02),
            ..Default::default()
        };
        let r = udp_vs_tcp(&link, 20 * MS, 2000, 1000, 7);
        assert!(r.udp_lost > 10, "{r:?}");
        assert!(r.udp_out_of_order > 10);
        assert_eq!(r.tcp_delivered, 2000);
        assert!(r.tcp_retransmits >= r.udp_lost / 2);
        assert!(
            r.tcp_done.is_some_and(|t| t > r.udp_done),
            "reliability costs time"
        );
    }

    #[test]
    fn large_writes_are_split_at_the_mss() {
        let segs = segment_writes(&[(0, 10_000)], 1448, true, 50 * MS);
        let sizes: Vec<u32> = segs.iter().map(|s| s.bytes).collect();
        assert_eq!(sizes, [1448, 1448, 1448, 1448, 1448, 1448, 1312]);
        // With Nagle the short tail waits for the first ACK; without, it
        // leaves with the rest.
        assert_eq!(segs[6].time, 50 * MS);
        assert!(
            segment_writes(&[(0, 10_000)], 1448, false, 50 * MS)
                .iter()
                .all(|s| s.time == 0)
        );
    }

    #[test]
    fn nagle_coalesces_small_writes_while_data_is_unacknowledged() {
        // 100 writes of 10 bytes, one per millisecond, 50 ms RTT.
        let writes: Vec<(Time, u32)> = (0..100).map(|i| (i * MS, 10)).collect();
        let off = segment_writes(&writes, 1448, false, 50 * MS);
        let on = segment_writes(&writes, 1448, true, 50 * MS);
        assert_eq!(off.len(), 100);
        assert!(on.len() <= 4, "{on:?}");
        assert_eq!(on.iter().map(|s| s.bytes).sum::<u32>(), 1000);
        assert_eq!(
            on[1].time,
            50 * MS,
            "the second segment waits for the first ACK"
        );
    }
}
