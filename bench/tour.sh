#!/usr/bin/env bash
# Time the tour: 20 release runs with full tracing and 20 with minimal
# tracing (the cost of observing), then curl against the same running world
# as the peer for the client-side stages. Loopback only; every loop bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
BLOCK=${BLOCK:-77}
cargo build --release -q -p weblab
BIN=target/release/weblab
DATA=$(mktemp -d /tmp/weblab-bench.XXXXXX)
trap 'rm -rf "$DATA"; [ -n "${UP_PID:-}" ] && kill "$UP_PID" 2>/dev/null || true' EXIT

run_tours() { # $1 = full|minimal
  for _ in $(seq "$RUNS"); do
    timeout 30 "$BIN" --block "$BLOCK" --data "$DATA" tour --json --trace "$1"
    echo "@@"
  done
}
run_tours full > "$DATA/full.json"
run_tours minimal > "$DATA/minimal.json"

# The peer: curl -w against a world kept up by `weblab up`.
"$BIN" --block "$BLOCK" --data "$DATA" up > "$DATA/up.log" 2>&1 &
UP_PID=$!
for _ in $(seq 100); do grep -q "Ctrl-C" "$DATA/up.log" 2>/dev/null && break; sleep 0.1; done
PORT=$(grep -o 'myapp.test:[0-9]*:127' "$DATA/up.log" | head -1 | cut -d: -f2)
LB=127.$BLOCK.3.1
for _ in $(seq "$RUNS"); do
  curl -s -o /dev/null --http2 --cacert "$DATA/ca.pem" --resolve "myapp.test:$PORT:$LB" \
    -w '%{time_namelookup} %{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total}\n' \
    "https://myapp.test:$PORT/login"
done > "$DATA/curl.txt"
kill "$UP_PID"; wait "$UP_PID" 2>/dev/null || true; UP_PID=

python3 - "$DATA" <<'PY'
import json, statistics, sys
d = sys.argv[1]
def load(name):
    docs = [json.loads(c) for c in open(f"{d}/{name}").read().split("@@") if c.strip()]
    return docs
def pct(xs, p):
    xs = sorted(xs); k = max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))
    return xs[k]
def summarize(docs):
    phases = ["blocked","dns","connect","ssl","send","wait","receive","processing"]
    rows = {}
    for ph in phases:
        v = [doc["timings"][0]["phases"][ph] / 1e6 for doc in docs if doc["timings"][0]["phases"][ph] is not None]
        rows[ph] = v
    rows["page 0 total"] = [(t["end_ns"] - t["start_ns"]) / 1e6 for doc in docs for t in doc["timings"][:1]]
    rows["whole page"] = [(max(t["end_ns"] for t in doc["timings"]) - min(t["start_ns"] for t in doc["timings"])) / 1e6 for doc in docs]
    return rows
full, mini = summarize(load("full.json")), summarize(load("minimal.json"))
assert all(doc["ok"] for doc in load("full.json") + load("minimal.json")), "a tour failed"
print(f"weblab tour, {len(full['whole page'])} runs each (ms; median / p95)")
print(f"{'stage':<14} {'full':>17} {'minimal':>17} {'cost of tracing':>16}")
for k in full:
    if not full[k] or not mini[k]:
        continue
    fm, mm = statistics.median(full[k]), statistics.median(mini[k])
    print(f"{k:<14} {fm:8.3f} / {pct(full[k],95):6.3f} {mm:8.3f} / {pct(mini[k],95):6.3f} {((fm/mm - 1)*100 if mm else 0):+14.1f}%")
curl = [list(map(float, l.split())) for l in open(f"{d}/curl.txt") if l.strip()]
c = lambda i: statistics.median(x[i] for x in curl) * 1e3
cc, ct, cs, ctot = c(1) - c(0), c(2) - c(1), c(3) - c(2), c(4)
ours = lambda k: statistics.median(full[k])
print()
print("client stages against the same world, curl 7/8 as the peer (median ms; curl has no DNS here: --resolve)")
print(f"{'stage':<22} {'weblab':>8} {'curl':>8} {'ratio':>7}")
for name, o, p in [("connect", ours("connect"), cc), ("tls", ours("ssl"), ct),
                   ("send+wait (ttfb)", ours("send") + ours("wait"), cs),
                   ("page 0 minus dns", ours("page 0 total") - ours("dns"), ctot)]:
    print(f"{name:<22} {o:8.3f} {p:8.3f} {o/p:7.2f}")
goal = statistics.median(full["whole page"])
print(f"\ngoal: whole page < 50 ms median -> {goal:.3f} ms ({'met' if goal < 50 else 'NOT met'})")
PY
