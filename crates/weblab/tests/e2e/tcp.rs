//! `weblab tcp …` on the command line (C14–C22).

use std::process::Command;

fn weblab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weblab"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tcp_run_prints_a_summary_a_chart_a_segment_log_and_a_deterministic_csv() {
    let dir = std::env::temp_dir();
    let (a, b) = (
        dir.join(format!("weblab-tcp-a-{}.csv", std::process::id())),
        dir.join(format!("weblab-tcp-b-{}.csv", std::process::id())),
    );
    let args = |csv: &std::path::Path| {
        vec![
            "tcp".to_string(),
            "run".into(),
            "--cc".into(),
            "reno".into(),
            "--bw".into(),
            "10mbit".into(),
            "--rtt".into(),
            "50ms".into(),
            "--loss".into(),
            "1%".into(),
            "--time".into(),
            "10s".into(),
            "--events".into(),
            "--csv".into(),
            csv.display().to_string(),
        ]
    };
    let run = |csv: &std::path::Path| {
        let v = args(csv);
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        weblab(&refs)
    };
    let (code, out, err) = run(&a);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("goodput") && out.contains("fast retransmits"),
        "{out}"
    );
    assert!(out.contains("* cwnd"), "no chart");
    assert!(out.contains("-> DATA seq=0"), "no segment log");
    assert!(out.contains("Mathis"), "no model line");
    let _ = run(&b);
    let (ca, cb) = (
        std::fs::read_to_string(&a).unwrap(),
        std::fs::read_to_string(&b).unwrap(),
    );
    let _ = (std::fs::remove_file(&a), std::fs::remove_file(&b));
    assert!(ca.starts_with("cc,flow,time_s,cwnd_segments,ssthresh_segments,rwnd_segments,inflight_segments,inflight_bytes,srtt_ms,rto_ms,delivered_bytes,inflation_segments\n"));
    assert!(ca.lines().count() > 100);
    assert_eq!(ca, cb, "same seed, same CSV");
}

#[test]
fn tcp_compare_arq_and_the_state_machines_run() {
    let (code, out, _) = weblab(&[
        "tcp",
        "compare",
        "--cc",
        "tahoe,reno,newreno,cubic",
        "--loss",
        "1%",
        "--time",
        "5s",
    ]);
    assert_eq!(code, 0);
    for cc in ["tahoe", "reno", "newreno", "cubic"] {
        assert!(out.contains(&format!("{cc} flow 0")), "{cc} missing: {out}");
    }
    // Side by side: a table of the algorithms, and charts on one scale
    // (every chart's top label is the same number).
    assert!(out.contains("algorithm  goodput Mbit/s"), "{out}");
    let table_rows = out
        .lines()
        .skip_while(|l| !l.starts_with("algorithm"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .count();
    assert_eq!(table_rows, 4, "{out}");
    let scale = out
        .lines()
        .find_map(|l| l.strip_prefix("(the charts share one scale: 0 to "))
        .expect("no shared scale");
    let top = scale.split_whitespace().next().unwrap();
    let labelled = out
        .lines()
        .filter(|l| l.trim_start().starts_with(&format!("{top} |")))
        .count();
    assert_eq!(labelled, 4, "{out}");
    let (code, out, _) = weblab(&[
        "tcp",
        "arq",
        "--mode",
        "sw,gbn,sr",
        "--window",
        "5",
        "--loss",
        "10%",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("stop-and-wait")
            && out.contains("go-back-n")
            && out.contains("selective-repeat")
    );
    // Selective repeat: below 1 - p with a small window (and the output
    // says why), on it with a window of 2(2a+1) frames or more.
    let sr = |window: &str| {
        let (code, out, _) = weblab(&["tcp", "arq", "--mode", "sr", "--window", window]);
        assert_eq!(code, 0);
        let row: Vec<f64> = out
            .lines()
            .find(|l| l.starts_with("selective-repeat"))
            .unwrap()
            .split_whitespace()
            .skip(2)
            .take(2)
            .map(|x| x.parse().unwrap())
            .collect();
        (row[0], row[1], out)
    };
    let (measured, theory, out) = sr("7");
    assert!(measured < 0.8 * theory, "{out}");
    assert!(out.contains("--window 14 or more"), "{out}");
    let (measured, theory, out) = sr("24");
    assert!((measured / theory - 1.0).abs() < 0.02, "{out}");
    assert!(!out.contains("below the formula"), "{out}");
    let (_, out, _) = weblab(&["tcp", "handshake", "--lang", "ko"]);
    assert!(
        out.contains("SYN_SENT") && out.contains("SYN_RECEIVED") && out.contains("연결됨"),
        "{out}"
    );
    let (_, out, _) = weblab(&["tcp", "close"]);
    for state in [
        "FIN_WAIT_1",
        "FIN_WAIT_2",
        "CLOSE_WAIT",
        "LAST_ACK",
        "TIME_WAIT",
    ] {
        assert!(out.contains(state), "{state} missing");
    }
    let (_, out, _) = weblab(&["tcp", "udp", "--loss", "5%"]);
    assert!(
        out.contains("UDP:")
            && out.contains("got all 1000 messages, in sequence")
            && out.contains("head-of-line blocking"),
        "{out}"
    );
    let (_, out, _) = weblab(&["tcp", "segments"]);
    assert!(out.contains("Nagle on") && out.contains("Nagle off"));
}

#[test]
fn bad_tcp_arguments_are_named_in_the_error() {
    let (code, _, err) = weblab(&["tcp", "run", "--bw", "fast"]);
    assert_eq!(code, 2);
    assert!(err.contains("fast"), "{err}");
    let (code, _, err) = weblab(&["tcp", "run", "--cc", "vegas"]);
    assert_eq!(code, 2);
    assert!(err.contains("vegas"), "{err}");
}

#[test]
fn the_handshake_picks_new_initial_sequence_numbers_each_run_unless_seeded() {
    let isn = |args: &[&str]| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weblab"))
            .args(["tcp", "handshake"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let at = text
            .find("SYN seq=")
            .expect("a SYN with its sequence number");
        text[at + "SYN seq=".len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .to_string()
    };
    assert_ne!(isn(&[]), isn(&[]), "two runs, two ISNs");
    assert_eq!(
        isn(&["--seed", "7"]),
        isn(&["--seed", "7"]),
        "a seed repeats a run"
    );
}

#[test]
fn the_tcp_lab_help_lists_no_world_options_and_world_commands_keep_them() {
    for cmd in [
        &["tcp", "--help"][..],
        &["tcp", "run", "--help"],
        &["tcp", "compare", "--help"],
    ] {
        let (code, out, _) = weblab(cmd);
        assert_eq!(code, 0);
        for world_only in ["--block", "--config", "--data "] {
            assert!(
                !out.contains(world_only),
                "{cmd:?} lists {world_only}:\n{out}"
            );
        }
    }
    let (_, out, _) = weblab(&["tour", "--help"]);
    assert!(out.contains("--block") && out.contains("--config"), "{out}");
}

#[test]
fn the_svg_chart_draws_ssthresh_beside_cwnd_as_the_ascii_chart_does() {
    let path = std::env::temp_dir().join(format!("weblab-ssthresh-{}.svg", std::process::id()));
    let p = path.to_str().unwrap();
    let (code, out, err) = weblab(&[
        "tcp", "run", "--cc", "reno", "--bw", "10mbit", "--rtt", "50ms", "--loss", "1%", "--time",
        "10s", "--svg", p,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let svg = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(svg.contains("reno ssthresh"), "no ssthresh legend");
    // Two lines: cwnd, and the fainter ssthresh once a loss has set it.
    assert_eq!(
        svg.matches("<polyline fill=\"none\" opacity=\"0.45\"")
            .count(),
        2,
        "ssthresh line and its legend"
    );
}

#[test]
fn the_chart_shows_cwnd_without_fast_recovery_inflation_and_the_csv_says_how_much() {
    let path = std::env::temp_dir().join(format!("weblab-inflation-{}.csv", std::process::id()));
    let p = path.to_str().unwrap();
    let (code, out, err) = weblab(&[
        "tcp", "run", "--cc", "newreno", "--bw", "10mbit", "--rtt", "50ms", "--loss", "3%",
        "--time", "20s", "--csv", p,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let csv = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (cw, ss, inf) = (
        col("cwnd_segments"),
        col("ssthresh_segments"),
        col("inflation_segments"),
    );
    let (mut inflated, mut max_window) = (0, 0f64);
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let (c, i): (f64, f64) = (f[cw].parse().unwrap(), f[inf].parse().unwrap());
        max_window = max_window.max(c - i);
        if i > 0.0 {
            inflated += 1;
            // In recovery, the window without the inflation is ssthresh.
            let s: f64 = f[ss].parse().unwrap();
            assert!((c - i - s).abs() < 0.01, "{line}");
        }
    }
    assert!(inflated > 0, "no sample in fast recovery");
    // The chart's scale is the uninflated window's (or ssthresh's).
    let top: f64 = out
        .lines()
        .find(|l| l.contains(" |"))
        .and_then(|l| l.split('|').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(
        top <= max_window.ceil() * 2.0 + 1.0,
        "top {top} vs window {max_window}"
    );
    assert!(out.contains("fast-recovery inflation not drawn"), "{out}");
}

#[test]
fn the_hol_experiment_shows_pipelined_answers_held_behind_the_slow_one_and_h2_streams_not() {
    let (code, out, err) = weblab(&["experiment", "hol", "--delay", "200ms", "--fast", "3"]);
    assert_eq!(code, 0, "{err}");
    // (slow done, first fast, last fast) of a row, in ms.
    let row = |how: &str| -> Vec<f64> {
        let line = out
            .lines()
            .find(|l| l.starts_with(how))
            .unwrap_or_else(|| panic!("no row {how}: {out}"));
        line[how.len()..]
            .split_whitespace()
            .take(3)
            .map(|x| x.trim_end_matches("ms").parse().unwrap())
            .collect()
    };
    let pipe = row("HTTP/1.1 pipelined, 1 connection");
    assert!(pipe[1] >= pipe[0], "a fast answer overtook /slow: {out}");
    let h2 = row("HTTP/2, 1 connection");
    assert!(h2[2] < h2[0], "HTTP/2 streams waited for /slow: {out}");
    let six = row("HTTP/1.1, 6 connections");
    assert!(six[2] < six[0], "{out}");
    assert!(
        out.contains("3 of the 3 fast answers came only after /slow's"),
        "{out}"
    );
    assert!(out.contains("Over HTTP/2, 0 of them waited"), "{out}");
}

/// C26: RFC 9218 priorities decide which of two large HTTP/2 responses
/// goes first, by what the requests asked, through the command.
#[test]
fn the_priorities_experiment_sends_the_urgent_response_first_and_equals_in_order() {
    let (code, out, err) = weblab(&["experiment", "priorities", "--size", "1m"]);
    assert_eq!(code, 0, "{err}");
    // (/a when /b done, /b when /a done) of a row, in KiB.
    let row = |how: &str| -> (f64, f64) {
        let line = out
            .lines()
            .find(|l| l.starts_with(how))
            .unwrap_or_else(|| panic!("no row {how}: {out}"));
        let f: Vec<&str> = line[how.len()..].split_whitespace().collect();
        let kib = |n: &str, unit: &str| {
            let n: f64 = n.parse().unwrap();
            match unit {
                "B" => n / 1024.0,
                "KiB" => n,
                "MiB" => n * 1024.0,
                _ => panic!("unit {unit} in {line}"),
            }
        };
        (kib(f[2], f[3]), kib(f[4], f[5]))
    };
    let (a_when_b, b_when_a) = row("/a u=5, /b u=0");
    assert!(a_when_b < 256.0 && b_when_a == 1024.0, "{out}");
    let (a_when_b, b_when_a) = row("both u=3 ");
    assert!(a_when_b == 1024.0 && b_when_a < 256.0, "{out}");
    let prose = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(prose.contains("Here /b went first"), "{out}");
    assert!(prose.contains("Here /a went first"), "{out}");
}

/// C21: the socket calls in order, with the states the kernel reported
/// after each: the listener stays LISTEN beside the accepted socket, the
/// passive closer goes through CLOSE_WAIT, the active closer ends in
/// TIME_WAIT.
#[test]
fn the_socket_calls_run_one_by_one_with_the_states_the_kernel_reports() {
    let steps = weblab::sockets::run(
        std::net::Ipv4Addr::new(127, 153, 4, 1),
        std::net::Ipv4Addr::new(127, 153, 0, 2),
        8080,
    )
    .expect("the calls run");
    let text = weblab::sockets::render(&steps);
    let at = |call: &str| {
        steps
            .iter()
            .find(|s| s.call.starts_with(call))
            .unwrap_or_else(|| panic!("no {call}: {text}"))
    };
    let state = |s: &weblab::sockets::Step, who: &str| -> String {
        s.states
            .iter()
            .find(|(k, _)| k.starts_with(who))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(state(at("listen"), "listening"), "LISTEN", "{text}");
    let connect = at("connect");
    assert_eq!(state(connect, "client"), "ESTABLISHED", "{text}");
    // Accepted or not, the server's side exists once connect returned.
    assert_eq!(state(connect, "server"), "ESTABLISHED", "{text}");
    let accept = at("accept");
    let listener = accept
        .call
        .trim_start_matches("accept(fd ")
        .trim_end_matches(')');
    assert!(
        !accept.result.starts_with(&format!("fd {listener},")),
        "{text}"
    );
    assert_eq!(state(accept, "listening"), "LISTEN", "{text}");
    let server_close = steps
        .iter()
        .find(|s| s.who == "server" && s.call.starts_with("close") && !s.call.contains(listener))
        .unwrap();
    assert_eq!(state(server_close, "client"), "CLOSE_WAIT", "{text}");
    let last = steps.last().unwrap();
    assert_eq!(state(last, "server"), "TIME_WAIT", "{text}");
    assert!(text.contains("-> 0: end of stream"), "{text}");
}
