#!/usr/bin/env bash
# weblab's web server beside nginx, in one run, with ../shared/peers: a ~1 KiB
# static file over HTTP/1.1 keep-alive (wrk, pinned CPUs, same duration),
# then the ratio. Loopback only; the peer scripts stop every process by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
export DURATION=${DURATION:-10}
cargo build --release -q -p weblab
BIN=$PWD/target/release/weblab
DATA=$(mktemp -d /tmp/weblab-peers.XXXXXX)
OUT=$(mktemp /tmp/weblab-peers-out.XXXXXX)
trap 'rm -rf "$DATA" "$OUT"' EXIT
BLOCK=${BLOCK:-61}
PORT=$([ "$(id -u)" = 0 ] && echo 80 || echo 10080)
# nginx: the peer's own case (1 KiB and 100 KiB, h1 and h2); ours: web1's
# 1134-byte stylesheet, plain HTTP/1.1, no compression asked for.
bash "$PEERS/a_static.sh" | tee -a "$OUT"
bash "$PEERS/any_http.sh" weblab-static-1k-h1 "http://127.$BLOCK.4.1:$PORT/static/app.css" -- \
    "$BIN" --block "$BLOCK" --data "$DATA" serve web --host web1 | tee -a "$OUT"
python3 - "$OUT" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.search(r"RESULT case=(\S+).*?rps=([\d.]+)", line)
    if m:
        rows[m.group(1)] = float(m.group(2))
ours, peer = rows.get("weblab-static-1k-h1"), rows.get("nginx-static-1k-h1")
if ours and peer:
    print(f"static ~1 KiB, HTTP/1.1 keep-alive: weblab {ours:.0f} req/s, nginx {peer:.0f} req/s, ratio {ours/peer:.2f}")
PY
