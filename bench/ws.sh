#!/usr/bin/env bash
# WebSocket broadcast: weblab's chat room beside a Node `ws` room (the
# usual Node baseline), in one run, same pinning (server on SERVER_CPU,
# clients on LOAD_CPU):
#   - CLIENTS clients join one room; the server's resident memory before
#     and after, per idle WebSocket;
#   - one more client sends MESSAGES numbered messages (at most 32 not yet
#     delivered to everyone); deliveries per second to all CLIENTS + 1
#     members (weblab's rooms hold 1000: 999 + the sender by default).
# The clients are crates/app/examples/ws_fanout.rs. Loopback only; every
# process is stopped by its PID (the peers' lib.sh); each run is bounded
# (60 s in the client).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-$PWD/../shared/peers}
CLIENTS=${CLIENTS:-999}
MESSAGES=${MESSAGES:-2000}
NODE_DEPS=${NODE_DEPS:-/tmp/bench-peers-node}
cargo build --release -q -p weblab
cargo build --release -q -p weblab-app --example ws_fanout
BIN=$PWD/target/release/weblab
LOAD=$PWD/target/release/examples/ws_fanout
if [[ ! -d $NODE_DEPS/node_modules/ws ]]; then
    mkdir -p "$NODE_DEPS"
    (cd "$NODE_DEPS" && { [[ -f package.json ]] || npm init -y >/dev/null; } && npm install --no-audit --no-fund ws >/dev/null)
fi
OUT=$(mktemp /tmp/weblab-ws-out.XXXXXX)
DATA=$(mktemp -d /tmp/weblab-ws.XXXXXX)
trap 'rm -rf "$OUT" "$DATA"' EXIT
BLOCK=${BLOCK:-65}
PORT=$([ "$(id -u)" = 0 ] && echo 80 || echo 10080)
# 1000 sockets each side, plus the server's: above a default soft limit of 1024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bash -c '
source "$1/lib.sh"
BLOCK=$2 PORT=$3 BIN=$4 DATA=$5 LOAD=$6 CLIENTS=$7 MESSAGES=$8 NODE_DEPS=$9 HERE=${10}
ADDR=127.$BLOCK.5.1
start_bg weblab-app "$SERVER_CPU" "$BIN" --block "$BLOCK" --data "$DATA" serve app --host app1
APP=$LAST_PID
wait_tcp "$PORT" 30 "$ADDR"
echo "case=weblab-chat $(pin "$LOAD_CPU" "$LOAD" "ws://$ADDR:$PORT/ws/chat/bench" "$CLIENTS" "$MESSAGES" "$APP")"
stop_pid "$APP"
start_bg node-ws "$SERVER_CPU" node "$HERE/bench/peer/ws_broadcast.js" "$NODE_DEPS" 127.0.0.1 18095
NODE=$LAST_PID
wait_tcp 18095 30 127.0.0.1
echo "case=node-ws $(pin "$LOAD_CPU" "$LOAD" "ws://127.0.0.1:18095/" "$CLIENTS" "$MESSAGES" "$NODE")"
stop_pid "$NODE"
' _ "$PEERS" "$BLOCK" "$PORT" "$BIN" "$DATA" "$LOAD" "$CLIENTS" "$MESSAGES" "$NODE_DEPS" "$PWD" | tee -a "$OUT"

python3 - "$OUT" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"case=(\S+) RESULT (.*)", line)
    if m:
        rows[m.group(1)] = dict(re.findall(r"(\w+)=(\S+)", m.group(2)))
for name, r in rows.items():
    print(f"{name:12} {int(r['clients']):5} clients: {float(r['deliveries_per_s']):9.0f} deliveries/s "
          f"({float(r['messages_per_s']):6.0f} messages/s), {r['deliveries']}/{r['expected']} delivered, "
          f"{r['lag_notices']} lag notices, {float(r['kib_per_idle_ws']):5.1f} KiB per idle WebSocket")
a, b = rows.get("weblab-chat"), rows.get("node-ws")
if a and b:
    print(f"ratio weblab/node: deliveries/s {float(a['deliveries_per_s']) / float(b['deliveries_per_s']):.2f}, "
          f"memory per idle WebSocket {float(a['kib_per_idle_ws']) / max(float(b['kib_per_idle_ws']), 0.1):.2f}")
PY
