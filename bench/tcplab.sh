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
echo
echo "== a fast long path beside ns-3 3.37: 1 Gbit/s, 50 ms RTT, p = 1e-4, NewReno + SACK, delayed ACKs, 60 s, seeds 1-10 =="
# ns-3 runs the same dumbbell (bench/peer/ns3_dumbbell.cc; Debian: libns3-dev).
if [ -d /usr/include/ns3 ] || [ -d /usr/include/ns3.37 ]; then
  NS3=$(mktemp -d /tmp/weblab-ns3.XXXXXX)
  trap 'rm -rf "$NS3"' EXIT
  g++ -O2 -std=c++17 bench/peer/ns3_dumbbell.cc -o "$NS3/dumbbell" \
    -lns3-core -lns3-network -lns3-internet -lns3-point-to-point -lns3-applications \
    -lns3-traffic-control -lns3-bridge -lns3-stats 2>/dev/null
  for seed in $(seq 10); do "$NS3/dumbbell" 1e9 50 0.0001 60 "$seed"; done > "$NS3/runs.txt"
  read -r after whole < <(awk -F'[ =]' '{a += $2; w += $4} END {printf "%.3f %.3f\n", a / NR, w / NR}' "$NS3/runs.txt")
  cargo run --release -q -p weblab-tcplab --example ns3 -- fast "$after" "$whole"
else
  echo "(ns-3 is not installed here: apt-get install libns3-dev; ours alone)"
  cargo run --release -q -p weblab-tcplab --example ns3 -- fast
fi
