//! `weblab tcp …`: the TCP lab on the command line.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use weblab_tcplab::arq::{ArqConfig, ArqMode, run_arq};
use weblab_tcplab::models::{mathis_segments_per_sec, pftk_segments_per_sec};
use weblab_tcplab::tcb::{Scenario, run_scenario};
use weblab_tcplab::time::{MS, SEC, secs};
use weblab_tcplab::{CcKind, FlowConfig, LinkConfig, LossModel, SimConfig, SimResult};
use weblab_trace::explain::Lang;

use crate::units;

#[derive(Subcommand)]
pub enum TcpCommand {
    /// One or more flows over a bottleneck: summary, cwnd chart, CSV/SVG, segment log.
    Run(RunArgs),
    /// Several congestion controls on the same link, side by side.
    Compare(CompareArgs),
    /// Stop-and-Wait, Go-Back-N or Selective Repeat over a lossy link.
    Arq(ArqArgs),
    /// The 3-way handshake (or simultaneous open) step by step.
    Handshake(ScenarioArgs),
    /// The 4-way close and TIME_WAIT step by step.
    Close(ScenarioArgs),
    /// The same messages over UDP and over TCP on a lossy, reordering link.
    Udp(UdpArgs),
    /// How application writes become segments: MSS splitting, Nagle.
    Segments(SegmentArgs),
}

#[derive(Args)]
pub struct UdpArgs {
    #[arg(long, default_value = "10mbit", value_parser = units::positive_rate)]
    bw: u64,
    #[arg(long, default_value = "40ms", value_parser = units::duration)]
    rtt: u64,
    #[arg(long, default_value = "2%", value_parser = units::probability)]
    loss: f64,
    #[arg(long, default_value = "3ms", value_parser = units::duration)]
    jitter: u64,
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Seed of the simulation's randomness (loss, jitter): the same flags
    /// and seed give the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
pub struct SegmentArgs {
    /// Bytes per write.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    write: u32,
    /// Number of writes, one per `--every`.
    #[arg(long, default_value_t = 100)]
    count: u64,
    #[arg(long, default_value = "1ms", value_parser = units::duration)]
    every: u64,
    #[arg(long, default_value = "50ms", value_parser = units::duration)]
    rtt: u64,
    #[arg(long, default_value_t = 1448)]
    mss: u32,
}

/// The link and flow settings shared by `run` and `compare`.
#[derive(Args, Clone)]
pub struct LinkArgs {
    /// Bottleneck rate.
    #[arg(long, default_value = "10mbit", value_parser = units::positive_rate)]
    bw: u64,
    /// Round-trip propagation delay.
    #[arg(long, default_value = "50ms", value_parser = units::duration)]
    rtt: u64,
    /// Random loss of data packets (Bernoulli).
    #[arg(long, default_value = "0", value_parser = units::probability)]
    loss: f64,
    /// Bursty loss instead: p(good->bad),p(bad->good),loss in bad state.
    #[arg(long, value_name = "PGB,PBG,LOSS")]
    gilbert: Option<String>,
    /// Simulated time.
    #[arg(long, default_value = "30s", value_parser = units::positive_duration)]
    time: u64,
    /// Router queue in packets (default: one bandwidth-delay product).
    #[arg(long)]
    queue: Option<usize>,
    /// Random Early Detection at the bottleneck: min,max average queue
    /// (packets) and the drop probability at max, e.g. 10,50,0.1.
    #[arg(long, value_name = "MIN,MAX,P")]
    red: Option<String>,
    /// Extra random delay per packet (reorders).
    #[arg(long, default_value = "0", value_parser = units::duration)]
    jitter: u64,
    /// Delayed ACKs (every second segment).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    delack: String,
    /// Receive buffer (flow control).
    #[arg(long, default_value = "64m", value_parser = units::bytes)]
    rwnd: u64,
    /// The receiving application's read rate (0 = as fast as data comes).
    #[arg(long, default_value = "0", value_parser = units::rate)]
    app_read: u64,
    /// The receiving application stops reading from FROM to TO (8s..12s):
    /// its buffer fills, the window closes, the sender probes it.
    #[arg(long, value_name = "FROM..TO", value_parser = units::duration_range)]
    app_stall: Option<(u64, u64)>,
    /// Selective acknowledgments with SACK-based recovery (RFC 2018, 6675).
    #[arg(long)]
    sack: bool,
    /// Number of flows sharing the bottleneck (started 1 s apart).
    #[arg(long, default_value_t = 1)]
    flows: usize,
    /// Seed of the simulation's randomness (loss, jitter): the same flags
    /// and seed give the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
pub struct RunArgs {
    /// Congestion control: aimd, tahoe, reno, newreno, cubic.
    #[arg(long, default_value = "newreno")]
    cc: CcKind,
    #[command(flatten)]
    link: LinkArgs,
    /// Write the time series as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write the cwnd chart as SVG.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print a line per segment (the first 2000).
    #[arg(long)]
    events: bool,
}

#[derive(Args)]
pub struct CompareArgs {
    /// Comma-separated list of congestion controls.
    #[arg(
        long,
        default_value = "tahoe,reno,newreno,cubic",
        value_delimiter = ','
    )]
    cc: Vec<CcKind>,
    #[command(flatten)]
    link: LinkArgs,
    /// Write every algorithm's cwnd over time into one SVG chart.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Write every algorithm's time series as CSV (one column set each).
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Args)]
pub struct ArqArgs {
    /// sw, gbn or sr; several with commas.
    #[arg(long, default_value = "sw,gbn,sr", value_delimiter = ',')]
    mode: Vec<ArqMode>,
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    window: u32,
    #[arg(long, default_value = "10%", value_parser = units::probability)]
    loss: f64,
    /// Propagation delay over frame transmission time.
    #[arg(long, default_value_t = 3.0)]
    a: f64,
    /// The receiver sends NAKs for gaps.
    #[arg(long)]
    nak: bool,
    /// Seed of the simulation's randomness (loss, jitter): the same flags
    /// and seed give the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the first frames' events.
    #[arg(long)]
    events: bool,
}

#[derive(Args)]
pub struct ScenarioArgs {
    /// Language of the explanations.
    #[arg(long, default_value = "en")]
    lang: Lang,
    /// Repeat a run: the initial sequence numbers come from this seed
    /// (default: a fresh random one each run, as a real TCP picks them).
    #[arg(long)]
    seed: Option<u64>,
    /// handshake: `simultaneous` for a simultaneous open; close:
    /// `time-wait` or `no-time-wait` to follow a late segment, or
    /// `assassination` for a reset ending TIME_WAIT early (RFC 1337).
    #[arg(long)]
    variant: Option<String>,
}

fn sim_config(l: &LinkArgs, cc: CcKind, sample: u64) -> Result<SimConfig> {
    if l.flows == 0 || l.flows > 64 {
        bail!("--flows must be between 1 and 64");
    }
    let one_way = l.rtt / 2;
    let bdp_packets = ((l.bw as f64 * l.rtt as f64 / SEC as f64) / 8.0 / 1500.0).ceil() as usize;
    let loss = match &l.gilbert {
        Some(g) => {
            let v: Vec<f64> = g
                .split(',')
                .map(|x| units::probability(x).map_err(anyhow::Error::msg))
                .collect::<Result<_>>()?;
            let [pgb, pbg, lb] = v[..] else {
                bail!("--gilbert takes three numbers: p(good->bad),p(bad->good),loss in bad state");
            };
            LossModel::GilbertElliott {
                p_good_to_bad: pgb,
                p_bad_to_good: pbg,
                loss_good: 0.0,
                loss_bad: lb,
            }
        }
        None if l.loss > 0.0 => LossModel::Bernoulli(l.loss),
        None => LossModel::None,
    };
    let red = match &l.red {
        Some(r) => {
            let v: Vec<f64> = r
                .split(',')
                .map(|x| {
                    x.trim()
                        .parse::<f64>()
                        .map_err(|_| anyhow::anyhow!("--red: {x:?} is not a number"))
                })
                .collect::<Result<_>>()?;
            let [min_th, max_th, max_p] = v[..] else {
                bail!("--red takes three numbers: min,max,p");
            };
            if !(0.0 <= min_th && min_th < max_th && (0.0..=1.0).contains(&max_p)) {
                bail!("--red needs 0 <= min < max and 0 <= p <= 1");
            }
            Some(weblab_tcplab::link::Red {
                min_th,
                max_th,
                max_p,
                weight: 0.002,
            })
        }
        None => None,
    };
    Ok(SimConfig {
        data: LinkConfig {
            red,
            rate_bps: l.bw,
            delay: one_way,
            jitter: l.jitter,
            queue_limit: l.queue.unwrap_or(bdp_packets.max(4)),
            loss,
            ..Default::default()
        },
        ack: LinkConfig {
            delay: one_way,
            ..Default::default()
        },
        flows: (0..l.flows)
            .map(|i| FlowConfig {
                cc,
                start: i as u64 * SEC,
                delayed_ack: l.delack == "on",
                sack: l.sack,
                rcv_buffer: l.rwnd,
                app_read_bps: l.app_read,
                app_stall: l.app_stall,
                ..Default::default()
            })
            .collect(),
        duration: l.time,
        measure_from: (l.time / 10).min(10 * SEC),
        seed: l.seed,
        sample_every: sample,
        ..Default::default()
    })
}

fn sample_period(time: u64) -> u64 {
    (time / 2000).max(MS)
}

fn simulate(cfg: &SimConfig, label: &str) -> SimResult {
    // A bar only when a run takes long enough to watch.
    let long = cfg.duration as f64 * cfg.data.rate_bps as f64 / SEC as f64 > 5e10;
    if !long {
        return weblab_tcplab::run(cfg);
    }
    let bar = indicatif::ProgressBar::new(100);
    bar.set_message(label.to_string());
    let r = weblab_tcplab::run_with_progress(cfg, &mut |f| bar.set_position((f * 100.0) as u64));
    bar.finish_and_clear();
    r
}

/// Why selective repeat measured well below the textbook's 1 - p, when it
/// did: the formula has the sender always busy, which needs room in the
/// window for a whole round trip while a lost frame waits for its timer.
fn sr_below_formula(
    mode: ArqMode,
    window: u32,
    a: f64,
    measured: f64,
    theory: f64,
    timeouts: u64,
) -> Option<String> {
    let busy = (2.0 * (2.0 * a + 1.0)).ceil() as u32;
    if mode != ArqMode::SelectiveRepeat || window >= busy || measured > 0.95 * theory {
        return None;
    }
    Some(format!(
        "selective repeat is below the formula ({measured:.3} vs {theory:.3}): the formula has the sender never idle, but a lost frame holds the window's left edge for at least a round trip ({rtt} frame times) before it is sent again ({timeouts} timer expiries here), and with a window of {window} frames the sender runs out of window and waits; with --window {busy} or more (2(2a+1)) it keeps sending and lands on the formula",
        rtt = 2.0 * a + 1.0,
    ))
}

fn summary(cfg: &SimConfig, r: &SimResult, name: &str) -> String {
    let mut s = String::new();
    for (i, f) in r.flows.iter().enumerate() {
        let _ = writeln!(
            s,
            "{name} flow {i}: goodput {:.3} Mbit/s (bytes handed to the application from {:.1} s to {:.1} s), {} segments sent, {} retransmitted ({} fast retransmits, {} timeouts), {} dup ACKs",
            r.goodput_bps(i) / 1e6,
            r.measure_from as f64 / SEC as f64,
            r.duration as f64 / SEC as f64,
            f.segments_sent,
            f.retransmits,
            f.fast_retransmits,
            f.timeouts,
            f.dup_acks
        );
        if f.zero_window_probes > 0 {
            let _ = writeln!(
                s,
                "  the receiver's window closed: {} zero-window probes sent (1-byte segments on the link, the wait doubling each time) until it opened again",
                f.zero_window_probes
            );
        }
    }
    if r.flows.len() > 1 {
        let _ = writeln!(
            s,
            "Jain's fairness index over time: {}",
            jain_over_time(r, 10)
        );
    }
    let _ = writeln!(
        s,
        "bottleneck: {} packets, {} dropped at the queue ({} early by RED; limit {}), {} lost on the wire, max queue {}",
        r.data_link.sent,
        r.data_link.queue_drops,
        r.data_link.early_drops,
        cfg.data.queue_limit,
        r.data_link.lost,
        r.data_link.max_queue
    );
    s
}

/// Jain's index of the flows' throughput in `parts` equal intervals.
pub fn jain_over_time(r: &SimResult, parts: u64) -> String {
    let n = r.flows.len();
    let step = (r.duration / parts).max(1);
    let delivered_at = |flow: usize, t: u64| {
        r.samples
            .iter()
            .rfind(|s| s.flow == flow && s.time <= t)
            .map_or(0, |s| s.delivered) as f64
    };
    (1..=parts)
        .map(|k| {
            let (a, b) = ((k - 1) * step, k * step);
            let x: Vec<f64> = (0..n)
                .map(|f| delivered_at(f, b) - delivered_at(f, a))
                .collect();
            format!("{:.0}s:{:.2}", secs(b), weblab_tcplab::models::jain(&x))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The algorithms side by side: goodput and loss reactions summed over
/// each run's flows, and Jain's fairness between its flows (with --flows).
fn compare_table(results: &[(String, SimResult)]) -> String {
    let mut out = format!(
        "{:<10} {:>14} {:>12} {:>16} {:>9} {:>9}\n",
        "algorithm", "goodput Mbit/s", "retransmits", "fast retransmits", "timeouts", "fairness"
    );
    for (name, r) in results {
        let n = r.flows.len();
        let goodput: f64 = (0..n).map(|i| r.goodput_bps(i)).sum::<f64>() / 1e6;
        let sum =
            |f: fn(&weblab_tcplab::sim::FlowStats) -> u64| -> u64 { r.flows.iter().map(f).sum() };
        let fairness = match n {
            1 => "-".to_string(),
            _ => {
                let shares: Vec<f64> = (0..n).map(|i| r.goodput_bps(i)).collect();
                format!("{:.3}", weblab_tcplab::models::jain(&shares))
            }
        };
        let _ = writeln!(
            out,
            "{name:<10} {goodput:>14.3} {:>12} {:>16} {:>9} {fairness:>9}",
            sum(|f| f.retransmits),
            sum(|f| f.fast_retransmits),
            sum(|f| f.timeouts),
        );
    }
    out
}

/// The top of flow 0's chart: the largest window or ssthresh, but at most
/// twice the largest window (an early huge ssthresh would flatten it).
fn chart_top(r: &SimResult) -> f64 {
    let pts = || r.samples.iter().filter(|s| s.flow == 0);
    pts()
        .map(|p| p.window().max(p.ssthresh))
        .fold(1.0f64, f64::max)
        .min(pts().map(|p| p.window()).fold(1.0, f64::max) * 2.0)
}

/// An ASCII chart of cwnd (`*`) and ssthresh (`-`) of flow 0 over time.
pub fn ascii_chart(r: &SimResult, width: usize, height: usize) -> String {
    ascii_chart_to(r, width, height, chart_top(r))
}

/// The same chart on a given scale (`tcp compare` draws every algorithm
/// on one).
fn ascii_chart_to(r: &SimResult, width: usize, height: usize, y_max: f64) -> String {
    let pts: Vec<_> = r.samples.iter().filter(|s| s.flow == 0).collect();
    if pts.is_empty() {
        return String::new();
    }
    let t_max = pts.last().map_or(1, |p| p.time).max(1) as f64;
    let mut grid = vec![vec![' '; width]; height];
    for p in &pts {
        let x = ((p.time as f64 / t_max) * (width - 1) as f64) as usize;
        let row = |v: f64| height - 1 - ((v / y_max).min(1.0) * (height - 1) as f64) as usize;
        if p.ssthresh > 0.0 && p.ssthresh <= y_max {
            grid[row(p.ssthresh)][x] = '-';
        }
        grid[row(p.window())][x] = '*';
    }
    let mut s = String::new();
    for (i, line) in grid.iter().enumerate() {
        let label = if i == 0 {
            format!("{y_max:>7.0}")
        } else if i == height - 1 {
            format!("{:>7}", 0)
        } else {
            " ".repeat(7)
        };
        let _ = writeln!(s, "{label} |{}", line.iter().collect::<String>());
    }
    let _ = writeln!(s, "{:>7} +{}", "", "-".repeat(width));
    let _ = writeln!(
        s,
        "{:>9}0 s{:>w$.1} s   * cwnd  - ssthresh (segments; fast-recovery inflation not drawn, see the CSV)",
        "",
        secs(t_max as u64),
        w = width - 4
    );
    s
}

/// The time series as CSV; units are in the column names so a Linux
/// TCP_INFO trace can be laid beside it.
pub fn csv(results: &[(&str, &SimResult)], mss: u32) -> String {
    let mut s = String::from(
        "cc,flow,time_s,cwnd_segments,ssthresh_segments,rwnd_segments,inflight_segments,inflight_bytes,srtt_ms,rto_ms,delivered_bytes,inflation_segments\n",
    );
    for (name, r) in results {
        for p in &r.samples {
            let _ = writeln!(
                s,
                "{name},{},{:.6},{:.3},{},{},{},{},{:.3},{:.3},{},{:.3}",
                p.flow,
                secs(p.time),
                p.cwnd,
                if p.ssthresh < 0.0 {
                    String::new()
                } else {
                    format!("{:.3}", p.ssthresh)
                },
                p.rwnd,
                p.in_flight,
                p.in_flight * u64::from(mss),
                p.srtt as f64 / 1e6,
                p.rto as f64 / 1e6,
                p.delivered,
                p.inflation
            );
        }
    }
    s
}

/// cwnd of flow 0 of every run, as an SVG line chart.
fn svg(path: &PathBuf, results: &[(&str, &SimResult)]) -> Result<()> {
    use plotters::prelude::*;
    let t_max = results
        .iter()
        .map(|r| secs(r.1.duration))
        .fold(1.0, f64::max);
    let y_max = results
        .iter()
        .flat_map(|r| r.1.samples.iter().map(|s| s.window()))
        .fold(1.0, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "cwnd (and ssthresh, faint) over time (segments)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("segments")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let colors = [&BLUE, &RED, &GREEN, &MAGENTA, &BLACK, &CYAN];
    for (i, (name, r)) in results.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(
                r.samples
                    .iter()
                    .filter(|s| s.flow == 0)
                    .map(|s| (secs(s.time), s.window())),
                color,
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(name.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        // ssthresh, as the ASCII chart has it: once it is set (before the
        // first loss it is "infinite" and above the chart).
        let faint = color.mix(0.45);
        chart
            .draw_series(LineSeries::new(
                r.samples
                    .iter()
                    .filter(|s| s.flow == 0 && s.ssthresh > 0.0 && s.ssthresh <= y_max)
                    .map(|s| (secs(s.time), s.ssthresh)),
                faint.stroke_width(1),
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(format!("{name} ssthresh"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], faint));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn write(path: &PathBuf, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The models' prediction for one flow, as a line.
fn theory(l: &LinkArgs) -> Option<String> {
    if l.loss <= 0.0 || l.gilbert.is_some() {
        return None;
    }
    let b = if l.delack == "on" { 2.0 } else { 1.0 };
    let rtt = l.rtt as f64 / SEC as f64;
    let m = |seg: f64| seg * 1448.0 * 8.0 / 1e6;
    Some(format!(
        "theory for loss {:.2}%: Mathis {:.3} Mbit/s, PFTK {:.3} Mbit/s (b = {b}, T0 = 1 s)",
        l.loss * 100.0,
        m(mathis_segments_per_sec(rtt, l.loss, b)),
        m(pftk_segments_per_sec(rtt, l.loss, b, 1.0, 1e12))
    ))
}

pub fn run(cmd: TcpCommand) -> Result<()> {
    match cmd {
        TcpCommand::Run(a) => {
            let mut cfg = sim_config(&a.link, a.cc, sample_period(a.link.time))?;
            cfg.log_segments = a.events;
            cfg.max_log = 2000;
            let r = simulate(&cfg, &a.cc.to_string());
            print!("{}", summary(&cfg, &r, &a.cc.to_string()));
            if let Some(t) = theory(&a.link) {
                println!("{t}");
            }
            println!("\n{}", ascii_chart(&r, 72, 16));
            if a.events {
                for line in &r.log {
                    println!("{line}");
                }
            }
            let name = a.cc.to_string();
            if let Some(p) = &a.csv {
                write(p, &csv(&[(&name, &r)], 1448))?;
            }
            if let Some(p) = &a.svg {
                svg(p, &[(&name, &r)])?;
            }
        }
        TcpCommand::Compare(a) => {
            let mut results = Vec::new();
            for cc in &a.cc {
                let cfg = sim_config(&a.link, *cc, sample_period(a.link.time))?;
                let r = simulate(&cfg, &cc.to_string());
                print!("{}", summary(&cfg, &r, &cc.to_string()));
                results.push((cc.to_string(), r));
            }
            if let Some(t) = theory(&a.link) {
                println!("{t}");
            }
            println!("\n{}", compare_table(&results));
            // One scale for every chart, so heights compare at a glance.
            let top = results
                .iter()
                .map(|(_, r)| chart_top(r))
                .fold(1.0, f64::max);
            println!("(the charts share one scale: 0 to {top:.0} segments)");
            for (name, r) in &results {
                println!("\n{name}:\n{}", ascii_chart_to(r, 72, 10, top));
            }
            let refs: Vec<(&str, &SimResult)> =
                results.iter().map(|(n, r)| (n.as_str(), r)).collect();
            if let Some(p) = &a.csv {
                write(p, &csv(&refs, 1448))?;
            }
            if let Some(p) = &a.svg {
                svg(p, &refs)?;
            }
        }
        TcpCommand::Arq(a) => {
            use weblab_tcplab::models::{
                go_back_n_efficiency, selective_repeat_efficiency, stop_and_wait_efficiency,
            };
            println!(
                "{:<18} {:>6} {:>10} {:>10} {:>8} {:>8} {:>6} {:>11} {:>9}",
                "mode",
                "window",
                "efficiency",
                "theory",
                "sent",
                "retx",
                "naks",
                "timeouts",
                "reorder"
            );
            let mut notes = Vec::new();
            for mode in &a.mode {
                let w = if *mode == ArqMode::StopAndWait {
                    1
                } else {
                    a.window
                };
                let cfg = ArqConfig {
                    mode: *mode,
                    window: w,
                    loss: a.loss,
                    nak: a.nak,
                    delay: (a.a * 8_000_000.0) as u64,
                    payload_bits: 8_000 * 20_000,
                    seed: a.seed,
                    max_log: if a.events { 60 } else { 0 },
                    ..Default::default()
                };
                let r = run_arq(&cfg);
                let theory = match mode {
                    ArqMode::StopAndWait => stop_and_wait_efficiency(a.a, a.loss),
                    ArqMode::GoBackN => go_back_n_efficiency(a.a, a.loss, f64::from(w)),
                    ArqMode::SelectiveRepeat => {
                        selective_repeat_efficiency(a.a, a.loss, f64::from(w))
                    }
                };
                println!(
                    "{:<18} {:>6} {:>10.3} {:>10.3} {:>8} {:>8} {:>6} {:>11} {:>9}",
                    mode.to_string(),
                    w,
                    r.efficiency,
                    theory,
                    r.transmissions,
                    r.retransmissions,
                    r.naks,
                    r.timeouts,
                    r.max_reorder_buffer
                );
                if a.events {
                    for line in &r.log {
                        println!("{line}");
                    }
                }
                if let Some(why) = sr_below_formula(*mode, w, a.a, r.efficiency, theory, r.timeouts)
                {
                    notes.push(why);
                }
            }
            println!(
                "a = {} (propagation delay / frame time), frame loss {:.1}%",
                a.a,
                a.loss * 100.0
            );
            for n in notes {
                println!("{n}");
            }
        }
        TcpCommand::Udp(a) => {
            use weblab_tcplab::transport::udp_vs_tcp;
            let link = LinkConfig {
                rate_bps: a.bw,
                delay: a.rtt / 2,
                jitter: a.jitter,
                loss: LossModel::Bernoulli(a.loss),
                ..Default::default()
            };
            let r = udp_vs_tcp(&link, a.rtt / 2, a.count, 1000, a.seed);
            let first: Vec<String> = r.udp_arrivals.iter().take(24).map(u64::to_string).collect();
            println!(
                "UDP: the application got {} of {} datagrams ({} lost, {} out of order, {} duplicated), last at {:.3} s",
                r.messages - r.udp_lost,
                r.messages,
                r.udp_lost,
                r.udp_out_of_order,
                r.udp_duplicates,
                secs(r.udp_done)
            );
            println!("     arrival order: {} ...", first.join(" "));
            // TCP hands the application only the next bytes in sequence,
            // so "in order" is how it works, not a count; what is counted
            // is whether everything came.
            let got = if r.tcp_delivered == r.messages {
                format!("all {} messages", r.messages)
            } else {
                format!("{} of {} messages", r.tcp_delivered, r.messages)
            };
            println!(
                "TCP: the application got {got}, in sequence, done at {}",
                r.tcp_done
                    .map_or("never".into(), |t| format!("{:.3} s", secs(t)))
            );
            if let (Some(t), true) = (r.tcp_done, r.udp_done > 0) {
                let why = format!(
                    "     why {:.1}x later: UDP sends at the link's pace whatever is lost; TCP sent {} segments again, \
                     after {} fast retransmits (each also halving its sending window: congestion control) and {} \
                     retransmission timeout{} (each at least {:.0} s with nothing acknowledged); and up to {} messages \
                     waited at the receiver behind a missing one (head-of-line blocking: the application gets none of \
                     them until the retransmission fills the hole)",
                    secs(t) / secs(r.udp_done),
                    r.tcp_retransmits,
                    r.tcp_fast_retransmits,
                    r.tcp_timeouts,
                    if r.tcp_timeouts == 1 { "" } else { "s" },
                    secs(r.tcp_min_rto),
                    r.tcp_held
                );
                print!(
                    "{}",
                    weblab_trace::render::wrap(&why, crate::tour::term_width())
                );
            }
        }
        TcpCommand::Segments(a) => {
            use weblab_tcplab::transport::segment_writes;
            let writes: Vec<(u64, u32)> = (0..a.count).map(|i| (i * a.every, a.write)).collect();
            for nagle in [false, true] {
                let segs = segment_writes(&writes, a.mss, nagle, a.rtt);
                let total: u64 = segs.iter().map(|s| u64::from(s.bytes)).sum();
                println!(
                    "Nagle {}: {} writes of {} bytes -> {} segments (avg {:.0} bytes, {} bytes of headers at 52 per segment)",
                    if nagle { "on " } else { "off" },
                    a.count,
                    a.write,
                    segs.len(),
                    total as f64 / segs.len().max(1) as f64,
                    segs.len() * 52
                );
                for s in segs.iter().take(6) {
                    println!("    {:>9.3} s  {} bytes", secs(s.time), s.bytes);
                }
            }
        }
        TcpCommand::Handshake(a) => {
            let scenario = match a.variant.as_deref() {
                None => Scenario::Handshake,
                Some("simultaneous") => Scenario::SimultaneousOpen,
                Some(v) => bail!("unknown handshake variant {v:?} (simultaneous)"),
            };
            let seed = a.seed.unwrap_or_else(rand_seed);
            print!("{}", tell(scenario, seed, a.lang));
            println!("(initial sequence numbers from seed {seed}; --seed {seed} repeats this run)");
        }
        TcpCommand::Close(a) => {
            let scenario = match a.variant.as_deref() {
                None => Scenario::Close,
                Some(v) => v.parse::<Scenario>().map_err(anyhow::Error::msg)?,
            };
            let seed = a.seed.unwrap_or_else(rand_seed);
            print!("{}", tell(scenario, seed, a.lang));
            println!("(initial sequence numbers from seed {seed}; --seed {seed} repeats this run)");
        }
    }
    Ok(())
}

/// What a state means, in the chosen language.
fn meaning(state: weblab_tcplab::tcb::State, lang: Lang) -> &'static str {
    use weblab_tcplab::tcb::State::*;
    let (en, ko) = match state {
        Closed => ("no connection", "연결 없음"),
        Listen => ("waiting for a SYN", "SYN을 기다림"),
        SynSent => (
            "SYN sent, waiting for SYN-ACK",
            "SYN을 보내고 SYN-ACK를 기다림",
        ),
        SynReceived => (
            "SYN received and answered, waiting for the ACK",
            "SYN을 받아 응답했고 ACK를 기다림",
        ),
        Established => (
            "open: data flows both ways",
            "연결됨: 양방향으로 데이터가 흐름",
        ),
        FinWait1 => ("FIN sent, waiting for its ACK", "FIN을 보내고 ACK를 기다림"),
        FinWait2 => (
            "our side closed, waiting for the peer's FIN",
            "내 쪽은 닫힘, 상대의 FIN을 기다림",
        ),
        CloseWait => (
            "peer closed; our application must close too",
            "상대가 닫음, 내 애플리케이션이 닫기를 기다림",
        ),
        Closing => (
            "both sent FIN at once, waiting for the ACK",
            "양쪽이 동시에 FIN을 보냄, ACK를 기다림",
        ),
        LastAck => (
            "our FIN sent after the peer's, waiting for the last ACK",
            "상대 FIN 뒤에 내 FIN을 보내고 마지막 ACK를 기다림",
        ),
        TimeWait => (
            "waiting 2 MSL so late segments die and our last ACK can be resent",
            "늦게 도착하는 세그먼트가 사라지고 마지막 ACK를 다시 보낼 수 있도록 2 MSL 동안 기다림",
        ),
    };
    if lang == Lang::Ko { ko } else { en }
}

/// A scenario as numbered steps with the state changes explained.
/// A fresh seed each run, as a real TCP picks a new ISN per connection
/// (RFC 9293 §3.4.1).
fn rand_seed() -> u64 {
    rand::random()
}

pub fn tell(scenario: Scenario, seed: u64, lang: Lang) -> String {
    let (steps, _, _) = run_scenario(scenario, seed);
    let mut s = String::new();
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(s, "{:>3}. {:>9.3} s  {}", i + 1, secs(step.time), step.text);
        for (who, from, to) in &step.transitions {
            let _ = writeln!(
                s,
                "{:>18}{who}: {from} -> {to}  ({})",
                "",
                meaning(*to, lang)
            );
        }
    }
    s
}
