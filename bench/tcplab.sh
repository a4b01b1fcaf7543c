#!/usr/bin/env bash
# The TCP lab's speed (simulated segments per wall second, by flow count)
# and its accuracy beside ns-3 3.37 (../shared/anchors/ns3-tcp.md, measured
# on this kind of machine) and the Mathis/PFTK models. Pure computation:
# no network traffic at all. Every run is bounded in simulated time.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== speed: 60 simulated seconds of 1 Gbit/s, 50 ms RTT, Reno (ns-3 3.37: ~45k segments/s here; 1237 s wall for the one-flow case) =="
echo "-- NewReno recovery (no SACK): one hole per round trip after the slow-start overshoot"
taskset -c 0 cargo run --release -q -p weblab-tcplab --example speed 1 2 4 8 16
echo "-- with SACK (RFC 6675), as ns-3 ran it"
taskset -c 0 cargo run --release -q -p weblab-tcplab --example speed -- --sack 1 2 4 8 16
echo
echo "== accuracy: goodput (Mbit/s), mean of 10 seeds x 200 s, beside ns-3 and the models =="
cargo run --release -q -p weblab-tcplab --example ns3
