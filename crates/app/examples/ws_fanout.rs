//! The load client of `bench/ws.sh`: N WebSocket clients join one room,
//! one more sends M numbered text messages, and every member (the sender
//! too: N + 1) counts what reaches it. Prints the server's memory per idle connection (from its
//! /proc status, before and after the clients joined) and the deliveries
//! per second of the broadcast.
//!
//! At most `WINDOW` messages are in flight: message i is sent once every
//! client has message i - WINDOW, so a server with a bounded queue per
//! member (weblab's chat keeps 64) is measured at its pace, not flooded.
//! Bounded in time: the run stops after `LIMIT` whatever happened.
//!
//! usage: ws_fanout URL CLIENTS MESSAGES SERVER_PID

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const WINDOW: usize = 32;
const LIMIT: Duration = Duration::from_secs(60);

/// The server's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The message number in a text the server relayed (it may prefix the
/// sender's name: `guest-1a2b: m:17`).
fn number(text: &str) -> Option<usize> {
    let at = text.find("m:")?;
    text[at + 2..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: ws_fanout URL CLIENTS MESSAGES SERVER_PID");
        std::process::exit(2);
    }
    let url = args[1].clone();
    let clients: usize = args[2].parse().expect("CLIENTS is a number");
    let messages: usize = args[3].parse().expect("MESSAGES is a number");
    let pid: u32 = args[4].parse().expect("SERVER_PID is a number");
    let deadline = Instant::now() + LIMIT;

    let got: Arc<Vec<AtomicU32>> = Arc::new((0..messages).map(|_| AtomicU32::new(0)).collect());
    let missed = Arc::new(AtomicU64::new(0));
    let rss_before = rss_kib(pid);
    let mut readers = Vec::new();
    let mut joined = 0;
    for chunk in 0..clients.div_ceil(100) {
        let mut batch = Vec::new();
        for _ in chunk * 100..((chunk + 1) * 100).min(clients) {
            let url = url.clone();
            batch.push(tokio::spawn(async move { connect_async(url).await }));
        }
        for b in batch {
            match b.await {
                Ok(Ok((ws, _))) => {
                    joined += 1;
                    let (got, missed) = (got.clone(), missed.clone());
                    readers.push(tokio::spawn(async move {
                        let (_, mut read) = ws.split();
                        while let Some(Ok(m)) = read.next().await {
                            if let Message::Text(t) = m {
                                if let Some(i) = number(&t)
                                    && let Some(c) = got.get(i)
                                {
                                    c.fetch_add(1, Ordering::Relaxed);
                                } else if t.contains("missed") {
                                    missed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }));
                }
                Ok(Err(e)) => eprintln!("a client could not join: {e}"),
                Err(e) => eprintln!("a client task failed: {e}"),
            }
        }
    }
    // Let the join announcements drain before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_joined = rss_kib(pid);
    let per_conn = (rss_joined.saturating_sub(rss_before)) as f64 / joined.max(1) as f64;

    let (sender, _) = connect_async(url.clone()).await.expect("the sender joins");
    let (mut write, mut read) = sender.split();
    // The sender is a member too and hears its own messages; it must read,
    // or the server's writes to it would stall.
    let heard = got.clone();
    let drain = tokio::spawn(async move {
        while let Some(Ok(m)) = read.next().await {
            if let Message::Text(t) = m
                && let Some(c) = number(&t).and_then(|i| heard.get(i))
            {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let everyone = joined as u32 + 1;
    let start = Instant::now();
    let mut sent = 0;
    'send: for i in 0..messages {
        if i >= WINDOW {
            while got[i - WINDOW].load(Ordering::Relaxed) < everyone {
                if Instant::now() > deadline {
                    break 'send;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        if write.send(Message::text(format!("m:{i}"))).await.is_err() {
            break;
        }
        sent += 1;
    }
    // The last window arrives (or the time is up).
    while got
        .iter()
        .take(sent)
        .any(|c| c.load(Ordering::Relaxed) < everyone)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let delivered: u64 = got
        .iter()
        .map(|c| u64::from(c.load(Ordering::Relaxed)))
        .sum();
    let _ = write.send(Message::Close(None)).await;
    drain.abort();
    for r in readers {
        r.abort();
    }
    println!(
        "RESULT clients={} messages={sent} deliveries={delivered} expected={} secs={secs:.3} deliveries_per_s={:.0} messages_per_s={:.0} lag_notices={} rss_before_kib={rss_before} rss_joined_kib={rss_joined} kib_per_idle_ws={per_conn:.1}",
        joined + 1,
        sent as u64 * u64::from(everyone),
        delivered as f64 / secs,
        sent as f64 / secs,
        missed.load(Ordering::Relaxed),
    );
}
