//! How much memory the resolver's cache takes for N cached names (one A
//! record each, like the peers' zone): `cargo run --release -p weblab-dns
//! --example cache_memory [N]` prints the process's RSS before and after.

use std::time::Instant;

use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record};
use weblab_dns::cache::Cache;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    eprintln!(
        "sizes: Name {} B, Record {} B, RData {} B",
        std::mem::size_of::<Name>(),
        std::mem::size_of::<Record>(),
        std::mem::size_of::<RData>()
    );
    let before = rss_kb();
    let mut cache = Cache::new(n);
    let now = Instant::now();
    for i in 0..n {
        let name = Name::from_ascii(format!("host{i}.example.test.")).expect("a name");
        let ip = std::net::Ipv4Addr::from(0x7f00_0000 + i as u32);
        cache.insert_records(&[Record::from_rdata(name, 3600, RData::A(A(ip)))], now);
    }
    let after = rss_kb();
    println!(
        "{} names cached: RSS {:.1} MB before, {:.1} MB after, {:.0} bytes per name",
        cache.len(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after - before) as f64 * 1024.0 / n as f64
    );
}
