#!/usr/bin/env bash
# weblab's DNS servers beside NSD and Unbound (the peers' case c), in one
# run, with ../shared/peers (same zone of 1000 A records, same shuffled
# queries, same pinning, same dnsperf settings), then the ratios:
#   auth      weblab's authoritative server (a world's `auth` host serving
#             example.test from the peers' master file) vs NSD
#   resolver  weblab's resolver, cache-hot (example.test delegated from the
#             world's test. zone to auth) vs Unbound
# Each flat out (q/s; dnsperf's own core is the limit near 165k q/s) and at
# a fixed DNS_FIXED_QPS (CPU share of one core: lower is better).
# Tracing: a `serve`d role without --otlp keeps no spans, so it builds
# none; the "spans sent by OTLP" row is the same server exporting a span
# per query to `weblab collect`: the cost of tracing.
# Loopback only; every process is stopped by its PID (lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-$PWD/../shared/peers}
export DURATION=${DURATION:-10}
export DNS_FIXED_QPS=${DNS_FIXED_QPS:-100000}
cargo build --release -q -p weblab
BIN=$PWD/target/release/weblab
OUT=$(mktemp /tmp/weblab-dns-out.XXXXXX)
trap 'rm -f "$OUT"' EXIT
BLOCK=${BLOCK:-64}
PORT=$([ "$(id -u)" = 0 ] && echo 53 || echo 10053)

# Peers first.
bash "$PEERS/c_dns.sh" | tee -a "$OUT"

bash -c '
source "$1/lib.sh"
BLOCK=$2 PORT=$3 BIN=$4
"$PEERS_DIR/mkzone.sh" "$WORK" 1000
"$BIN" init "$WORK/world.toml" >/dev/null
# example.test on the auth host, delegated from test. (glue: auth).
python3 - "$WORK/world.toml" <<PY
import sys
p = sys.argv[1]
s = open(p).read()
tld = s.index("origin = \"test.\"")
end = s.index("\"\"\"", s.index("records = \"\"\"", tld) + 13)
s = s[:end] + "example    IN NS  ns1.example\nns1.example IN A  127.10.2.3\n" + s[end:]
auth = s.index("origin = \"myapp.test.\"")
end = s.index("\"\"\"", s.index("records = \"\"\"", auth) + 13) + 3
s = s[:end] + "\n[[dns.zones]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n" + s[end:]
open(p, "w").write(s)
PY
W=(--config "$WORK/world.toml" --block "$BLOCK" --data "$WORK/data")
AUTH=127.$BLOCK.2.3
RES=127.$BLOCK.1.1

start_bg weblab-auth "$SERVER_CPU" "$BIN" "${W[@]}" serve dns --host auth
A=$LAST_PID
wait_dns "$PORT" host0.example.test 30 "$AUTH"
[[ $(dig @"$AUTH" -p "$PORT" host1.example.test A +short) == 127.0.10.2 ]] || die "weblab auth answers wrong"
DNS_ADDR=$AUTH run_dnsperf weblab-auth "$PORT" "$WORK/queries.txt" "$A"
DNS_ADDR=$AUTH run_dnsperf "weblab-auth-at$((DNS_FIXED_QPS / 1000))k" "$PORT" "$WORK/queries.txt" "$A" -Q "$DNS_FIXED_QPS"
stop_pid "$A"

# What tracing costs: the same server sending a span per query over OTLP
# to `weblab collect` (on the aux CPU), at the fixed rate.
start_bg weblab-collect "$AUX_CPU" "$BIN" "${W[@]}" collect
C=$LAST_PID
wait_tcp 4318 30 "127.$BLOCK.0.1"
start_bg weblab-auth-otlp "$SERVER_CPU" "$BIN" "${W[@]}" serve dns --host auth --otlp "http://127.$BLOCK.0.1:4318"
A=$LAST_PID
wait_dns "$PORT" host0.example.test 30 "$AUTH"
AUX_PIDS="$C" DNS_ADDR=$AUTH run_dnsperf "weblab-auth-traced-at$((DNS_FIXED_QPS / 1000))k" "$PORT" "$WORK/queries.txt" "$A" -Q "$DNS_FIXED_QPS"
stop_pid "$A"; stop_pid "$C"

# The resolver: the three name servers on the aux CPU, the resolver alone.
D=""
for h in root tld auth; do
    start_bg "weblab-$h" "$AUX_CPU" "$BIN" "${W[@]}" serve dns --host "$h"
    D="$D $LAST_PID"
done
wait_dns "$PORT" host0.example.test 30 "$AUTH"
start_bg weblab-resolver "$SERVER_CPU" "$BIN" "${W[@]}" serve dns --host resolver
R=$LAST_PID
wait_dns "$PORT" host0.example.test 30 "$RES"
[[ $(dig @"$RES" -p "$PORT" host1.example.test A +short) == 127.0.10.2 ]] || die "weblab resolver answers wrong"
# One pass fills the cache (TTL 3600).
pin "$LOAD_CPU" dnsperf -s "$RES" -p "$PORT" -d "$WORK/queries.txt" -n 1 -q 50 >/dev/null 2>&1
AUX_PIDS="${D# }"
DNS_ADDR=$RES run_dnsperf weblab-resolver "$PORT" "$WORK/queries.txt" "$R"
DNS_ADDR=$RES run_dnsperf "weblab-resolver-at$((DNS_FIXED_QPS / 1000))k" "$PORT" "$WORK/queries.txt" "$R" -Q "$DNS_FIXED_QPS"
# Memory of the resolver holding those answers.
echo "RESULT case=weblab-resolver-rss rss_kb=$(awk "/VmRSS/ {print \$2}" /proc/$R/status)"
stop_pid "$R"; for p in $D; do stop_pid "$p"; done
' _ "$PEERS" "$BLOCK" "$PORT" "$BIN" | tee -a "$OUT"

python3 - "$OUT" "$DNS_FIXED_QPS" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    if not line.startswith("RESULT "):
        continue
    kv = dict(re.findall(r"(\w+)=([^\s]+)", line))
    rows[kv.get("case", "?")] = kv
k = int(sys.argv[2]) // 1000
def f(case, key):
    try:
        return float(rows[case][key])
    except (KeyError, ValueError):
        return None
print()
print(f"{'':28} {'weblab':>10} {'peer':>10} {'ratio':>7}")
for what, ours, peer, key, better in [
    ("auth q/s flat out", "weblab-auth", "dns-auth-nsd", "qps", "higher"),
    (f"auth CPU % at {k}k q/s", f"weblab-auth-at{k}k", f"dns-auth-nsd-at{k}k", "server_cpu_pct", "lower"),
    (f"  same, spans sent by OTLP", f"weblab-auth-traced-at{k}k", f"dns-auth-nsd-at{k}k", "server_cpu_pct", "lower"),
    ("resolver q/s flat out", "weblab-resolver", "dns-recursive-unbound", "qps", "higher"),
    (f"resolver CPU % at {k}k q/s", f"weblab-resolver-at{k}k", f"dns-recursive-unbound-at{k}k", "server_cpu_pct", "lower"),
]:
    a, b = f(ours, key), f(peer, key)
    ratio = f"{a / b:.2f}x" if a and b else "?"
    print(f"{what:28} {a if a is not None else '?':>10} {b if b is not None else '?':>10} {ratio:>7}  ({better} is better)")
for case in ["weblab-auth", f"weblab-auth-at{k}k", f"weblab-auth-traced-at{k}k", "weblab-resolver", f"weblab-resolver-at{k}k"]:
    lost = rows.get(case, {}).get("lost")
    if lost not in (None, "0"):
        print(f"{case}: {lost} queries lost")
traced = f(f"weblab-auth-traced-at{k}k", "qps")
if traced and traced < 0.99 * k * 1000:
    print(f"(spans sent by OTLP: {traced:.0f} q/s reached of {k}k, the collector sharing the load generator's CPU: compare CPU per query, {f(f'weblab-auth-traced-at{k}k', 'server_cpu_pct') / traced * 1e3:.2f} vs {f(f'weblab-auth-at{k}k', 'server_cpu_pct') / k:.2f} % per 1000 q/s)")
rss = rows.get("weblab-resolver-rss", {}).get("rss_kb")
if rss:
    print(f"resolver RSS with 1000 names cached: {int(rss) / 1024:.1f} MB")
PY
