//! The mechanisms, asserted on what the simulator recorded (C17, C18).

use weblab_tcplab::models::jain;
use weblab_tcplab::segment_log::{SegmentEvent, SegmentFate};
use weblab_tcplab::time::{MS, SEC, Time};
use weblab_tcplab::{
    CcKind, FlowConfig, LinkConfig, LossModel, ReactionKind, SimConfig, SimResult, run,
};

/// 10 Mbit/s, 50 ms RTT, one scripted loss of the 60th packet.
fn one_loss(cc: CcKind) -> SimConfig {
    SimConfig {
        data: LinkConfig {
            rate_bps: 10_000_000,
            delay: 25 * MS,
            queue_limit: 100,
            loss: LossModel::Nth(vec![60]),
            ..Default::default()
        },
        ack: LinkConfig {
            delay: 25 * MS,
            ..Default::default()
        },
        flows: vec![FlowConfig {
            cc,
            delayed_ack: false,
            ..Default::default()
        }],
        duration: 3 * SEC,
        sample_every: MS,
        ..Default::default()
    }
}

#[test]
fn tahoe_drops_cwnd_to_one_on_three_duplicate_acks_and_reno_halves_it() {
    let tahoe = run(&one_loss(CcKind::Tahoe));
    let reno = run(&one_loss(CcKind::Reno));
    for r in [&tahoe, &reno] {
        assert_eq!(r.flows[0].timeouts, 0);
        assert_eq!(r.flows[0].fast_retransmits, 1);
    }
    let t = tahoe.flows[0].reactions[0];
    assert_eq!(t.kind, ReactionKind::FastRetransmit);
    assert_eq!(t.cwnd_after, 1.0);
    assert!(t.ssthresh_after >= t.cwnd_before / 2.0 - 3.0, "{t:?}");
    let r = reno.flows[0].reactions[0];
    // Reno: ssthresh about half the window, cwnd = ssthresh + 3 in recovery.
    assert!(
        (r.ssthresh_after - r.cwnd_before / 2.0).abs() <= 2.5,
        "{r:?}"
    );
    assert_eq!(r.cwnd_after, r.ssthresh_after + 3.0);
    // After recovery Reno continues from ssthresh, Tahoe slow-starts from 1:
    // 30 ms after the reaction Reno's window is far larger.
    let at = |res: &weblab_tcplab::SimResult, time| {
        res.samples.iter().find(|s| s.time >= time).unwrap().cwnd
    };
    let later = r.time.max(t.time) + 60 * MS;
    assert!(
        at(&reno, later) > 2.0 * at(&tahoe, later),
        "reno {} tahoe {}",
        at(&reno, later),
        at(&tahoe, later)
    );
}

#[test]
fn the_same_seed_gives_the_same_run_bit_for_bit() {
    let mut cfg = one_loss(CcKind::Cubic);
    cfg.data.loss = LossModel::Bernoulli(0.01);
    cfg.data.jitter = 2 * MS;
    cfg.seed = 99;
    let a = run(&cfg);
    let b = run(&cfg);
    assert_eq!(a.samples, b.samples);
    assert_eq!(a.flows, b.flows);
    cfg.seed = 100;
    let c = run(&cfg);
    assert_ne!(a.samples, c.samples, "another seed, another run");
}

#[test]
fn two_aimd_flows_converge_to_a_fair_share_and_a_late_joiner_catches_up() {
    let cfg = SimConfig {
        data: LinkConfig {
            rate_bps: 10_000_000,
            delay: 20 * MS,
            queue_limit: 40,
            ..Default::default()
        },
        ack: LinkConfig {
            delay: 20 * MS,
            ..Default::default()
        },
        flows: vec![
            FlowConfig {
                cc: CcKind::Aimd,
                init_cwnd: 30,
                delayed_ack: false,
                ..Default::default()
            },
            FlowConfig {
                cc: CcKind::Aimd,
                init_cwnd: 1,
                start: 5 * SEC,
                delayed_ack: false,
                ..Default::default()
            },
        ],
        duration: 120 * SEC,
        sample_every: SEC,
        ..Default::default()
    };
    let r = run(&cfg);
    // Throughput of each flow over the last 20 s, from delivered bytes.
    let delivered = |flow: usize, t: u64| {
        r.samples
            .iter()
            .find(|s| s.flow == flow && s.time >= t * SEC)
            .unwrap()
            .delivered as f64
    };
    let share = |flow| delivered(flow, 119) - delivered(flow, 99);
    let index = jain(&[share(0), share(1)]);
    assert!(
        index > 0.95,
        "Jain index {index:.3}: {} vs {}",
        share(0),
        share(1)
    );
    // Early on, the late joiner had much less.
    let early = jain(&[
        delivered(0, 8) - delivered(0, 6),
        delivered(1, 8) - delivered(1, 6),
    ]);
    assert!(early < index, "{early} {index}");
}

#[test]
fn a_slow_reader_limits_the_sender_and_a_stalled_one_closes_the_window() {
    // The application reads 1 Mbit/s from a 64 KiB buffer on a 10 Mbit/s
    // path, and stops reading between 8 s and 12 s.
    let cfg = SimConfig {
        measure_from: 2 * SEC,
        sample_every: 10 * MS,
        ..slow_reader((8 * SEC, 12 * SEC), 20 * SEC)
    };
    let r = run(&cfg);
    // 18 s measured, 4 of them stalled: about 14 s at 1 Mbit/s.
    let goodput = r.goodput_bps(0);
    assert!((0.7e6..0.9e6).contains(&goodput), "{goodput}");
    let stalled: Vec<_> = r
        .samples
        .iter()
        .filter(|s| (9 * SEC..12 * SEC).contains(&s.time))
        .collect();
    assert!(
        stalled.iter().all(|s| s.rwnd == 0 && s.in_flight == 0),
        "the window stayed open while stalled"
    );
    let after: Vec<_> = r.samples.iter().filter(|s| s.time > 13 * SEC).collect();
    assert!(
        after.iter().any(|s| s.rwnd > 0),
        "the window never reopened"
    );
    assert_eq!(r.flows[0].timeouts, 0, "flow control is not congestion");
    // Before the stall the window, not congestion, limited the sender.
    let before: Vec<_> = r
        .samples
        .iter()
        .filter(|s| (4 * SEC..8 * SEC).contains(&s.time))
        .collect();
    assert!(
        before.iter().all(|s| (s.in_flight as f64) < s.cwnd),
        "cwnd was the limit"
    );
}

/// A reader of 1 Mbit/s from a 64 KiB buffer on a 10 Mbit/s path that
/// stops reading for `stall`.
fn slow_reader(stall: (Time, Time), duration: Time) -> SimConfig {
    SimConfig {
        data: LinkConfig {
            rate_bps: 10_000_000,
            delay: 10 * MS,
            queue_limit: 100,
            ..Default::default()
        },
        ack: LinkConfig {
            delay: 10 * MS,
            ..Default::default()
        },
        flows: vec![FlowConfig {
            rcv_buffer: 64 * 1024,
            app_read_bps: 1_000_000,
            app_stall: Some(stall),
            ..Default::default()
        }],
        duration,
        ..Default::default()
    }
}

/// A reader stalled from 4 s to 12 s, every segment logged; `lose` are
/// data-link packets (counted from 0) lost on the wire.
fn stalled_reader(lose: Vec<u64>) -> SimResult {
    let mut cfg = slow_reader((4 * SEC, 12 * SEC), 16 * SEC);
    cfg.data.loss = LossModel::Nth(lose);
    cfg.log_segments = true;
    run(&cfg)
}

/// (time, index among the data link's packets, fate) of each probe.
fn probes(r: &SimResult) -> Vec<(Time, u64, SegmentFate)> {
    let mut sent = 0;
    let mut out = Vec::new();
    for l in &r.log {
        match &l.event {
            SegmentEvent::Data { .. } => sent += 1,
            SegmentEvent::ZeroWindowProbe { fate, .. } => {
                out.push((l.at, sent, *fate));
                sent += 1;
            }
            _ => {}
        }
    }
    out
}

#[test]
fn zero_window_probes_are_segments_on_the_link_backing_off_and_can_be_lost() {
    let r = stalled_reader(vec![]);
    let p = probes(&r);
    assert!(p.len() >= 3, "{p:?}");
    // Each probe crosses the link (it arrives later than it left), and
    // the persist timer doubles between them (RFC 1122 §4.2.2.17).
    for (at, _, fate) in &p {
        assert!(
            matches!(fate, SegmentFate::Arrives(t) if t > at),
            "{fate:?}"
        );
    }
    let gaps: Vec<Time> = p.windows(2).map(|w| w[1].0 - w[0].0).collect();
    for g in gaps.windows(2) {
        assert_eq!(g[1], 2 * g[0], "{gaps:?}");
    }
    // The receiver's window update reopens it, and data flows again.
    let update = r
        .log
        .iter()
        .position(|l| matches!(l.event, SegmentEvent::WindowUpdate { window } if window > 0))
        .expect("no window update");
    assert!(r.log[update].at >= 12 * SEC);
    assert!(
        r.log[update..]
            .iter()
            .any(|l| matches!(l.event, SegmentEvent::Data { .. }))
    );
    // Lose the first probe on the wire: the log says so, the next probe
    // still comes, and the transfer goes on as before.
    let lossy = stalled_reader(vec![p[0].1]);
    let q = probes(&lossy);
    assert_eq!(q[0].2, SegmentFate::Lost, "{q:?}");
    assert!(matches!(q[1].2, SegmentFate::Arrives(_)), "{q:?}");
    assert_eq!(
        lossy.flows[0].retransmits, 0,
        "a lost probe is not data to retransmit"
    );
    assert_eq!(lossy.flows[0].delivered, r.flows[0].delivered);
}

#[test]
fn sack_repairs_several_holes_in_one_round_trip_where_newreno_needs_one_each() {
    let transfer = |sack: bool| {
        let mut cfg = one_loss(CcKind::NewReno);
        cfg.data.loss = LossModel::Nth(vec![60, 62, 64, 66, 68, 70]);
        cfg.flows[0].sack = sack;
        cfg.flows[0].bytes = Some(400 * 1448);
        cfg.duration = 20 * SEC;
        cfg.log_segments = true;
        run(&cfg)
    };
    // Seconds of the first and the last retransmission, from the segment log.
    let spread = |r: &weblab_tcplab::SimResult| {
        let times: Vec<f64> = r
            .log
            .iter()
            .filter(|l| l.event.is_retransmit())
            .map(|l| weblab_tcplab::time::secs(l.at))
            .collect();
        times.last().unwrap() - times.first().unwrap()
    };
    let newreno = transfer(false);
    let sack = transfer(true);
    for r in [&newreno, &sack] {
        assert_eq!(r.flows[0].fast_retransmits, 1, "one loss event");
        assert_eq!(r.flows[0].retransmits, 6, "each hole sent once");
        assert_eq!(r.flows[0].timeouts, 0);
    }
    // NewReno learns of one hole per round trip (50 ms): five more RTTs.
    assert!(spread(&newreno) >= 0.24, "newreno {}", spread(&newreno));
    assert!(spread(&sack) < 0.05, "sack {}", spread(&sack));
}

#[test]
fn red_keeps_the_queue_shorter_than_drop_tail() {
    let with = |red: Option<weblab_tcplab::link::Red>| {
        let cfg = SimConfig {
            data: LinkConfig {
                rate_bps: 10_000_000,
                delay: 20 * MS,
                queue_limit: 200,
                red,
                ..Default::default()
            },
            ack: LinkConfig {
                delay: 20 * MS,
                ..Default::default()
            },
            flows: (0..4)
                .map(|i| FlowConfig {
                    cc: CcKind::Reno,
                    start: i * 200 * MS,
                    ..Default::default()
                })
                .collect(),
            duration: 60 * SEC,
            measure_from: 10 * SEC,
            sample_every: 10 * MS,
            ..Default::default()
        };
        run(&cfg)
    };
    let tail = with(None);
    let red = with(Some(weblab_tcplab::link::Red {
        min_th: 10.0,
        max_th: 50.0,
        max_p: 0.1,
        weight: 0.002,
    }));
    assert_eq!(tail.data_link.early_drops, 0);
    assert!(red.data_link.early_drops > 0);
    // Smaller standing queue: lower smoothed RTT for the same link.
    let mean_srtt = |r: &weblab_tcplab::SimResult| {
        let xs: Vec<f64> = r
            .samples
            .iter()
            .filter(|s| s.time > 10 * SEC)
            .map(|s| s.srtt as f64)
            .collect();
        xs.iter().sum::<f64>() / xs.len() as f64
    };
    assert!(
        mean_srtt(&red) < 0.7 * mean_srtt(&tail),
        "{} vs {}",
        mean_srtt(&red),
        mean_srtt(&tail)
    );
    // And the link stays busy.
    let total = |r: &weblab_tcplab::SimResult| (0..4).map(|i| r.goodput_bps(i)).sum::<f64>();
    assert!(
        total(&red) > 0.9 * total(&tail),
        "{} vs {}",
        total(&red),
        total(&tail)
    );
}

#[test]
fn goodput_never_exceeds_the_bottleneck_rate_whatever_the_jitter_and_loss() {
    // Reordering makes the receiver hold segments and hand many over at
    // once; counted when handed over, over the stated window, goodput must
    // still stay under the link's rate (which also carries the headers).
    for rate in [1_000_000, 10_000_000] {
        for jitter in [0, MS, 10 * MS, 50 * MS, 300 * MS] {
            for p in [0.0, 0.02, 0.1] {
                for sack in [false, true] {
                    let cfg = SimConfig {
                        data: LinkConfig {
                            rate_bps: rate,
                            delay: 10 * MS,
                            jitter,
                            queue_limit: 50,
                            loss: if p > 0.0 {
                                LossModel::Bernoulli(p)
                            } else {
                                LossModel::None
                            },
                            ..Default::default()
                        },
                        ack: LinkConfig {
                            delay: 10 * MS,
                            ..Default::default()
                        },
                        flows: vec![FlowConfig {
                            sack,
                            ..Default::default()
                        }],
                        duration: 4 * SEC,
                        measure_from: 400 * MS,
                        ..Default::default()
                    };
                    let r = run(&cfg);
                    let g = r.goodput_bps(0);
                    assert!(
                        g <= rate as f64,
                        "{g} bit/s over a {rate} bit/s link (jitter {jitter}, loss {p}, sack {sack})"
                    );
                }
            }
        }
    }
}
