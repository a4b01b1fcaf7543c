#!/usr/bin/env bash
# The cost of observing over OTLP, on vs off, in one run:
#  1. the whole tour (release), RUNS times without export and RUNS times
#     exporting every span to a `weblab collect`: page-load time and the
#     process's wall time, medians and ratio;
#  2. the web server under wrk (static file, keep-alive), serving alone vs
#     exporting every span: requests per second and ratio, and each
#     process's CPU per request; once sharing both cores with wrk and the
#     collector, once pinned to a core of its own (what export costs the
#     server itself, apart from what the collector takes from wrk).
# Loopback only; every load bounded in time; processes stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
BLOCK=${BLOCK:-78}
SECS=${SECS:-10}
cargo build --release -q -p weblab
BIN=$PWD/target/release/weblab
DATA=$(mktemp -d /tmp/weblab-otlp.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DATA"; }
trap cleanup EXIT
W=(--block "$BLOCK" --data "$DATA")
OTLP=http://127.$BLOCK.0.1:4318

wait_for() { # $1 = file, $2 = text
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1
}

"$BIN" "${W[@]}" collect > "$DATA/collect.log" 2>&1 &
PIDS+=($!); COL=$!
wait_for "$DATA/collect.log" "collecting traces"

tour() { # $@ extra args; prints "page_ms wall_ms"
  local t0 t1
  t0=$(date +%s%N)
  "$BIN" "${W[@]}" tour --json "$@" > "$DATA/tour.json"
  t1=$(date +%s%N)
  python3 -c "
import json,sys
d=json.load(open('$DATA/tour.json')); t=d['timings']
assert d['ok']
print((max(x['end_ns'] for x in t)-min(x['start_ns'] for x in t))/1e6, ($t1-$t0)/1e6)"
}
# Off and on alternate, so a drift of the machine's speed during the
# runs falls on both (one block after the other measured the drift).
for _ in $(seq "$RUNS"); do
  tour >> "$DATA/off.txt"
  tour --otlp "$OTLP" >> "$DATA/on.txt"
done

# The web server alone (its app behind it), without and with export.
# WEB_CPU (when set): the CPU the web server is pinned to; wrk, the app
# and the collector then share the other one.
WEB_CPU=""
on_cpu() { # $1 = cpu list or "", then the command; always in a subshell
  # of its own (`&` or `$(...)`), which it becomes, so $! is its PID.
  local cpu=$1; shift
  if [[ -n $cpu ]]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}
serve_web() { # $@ extra args
  on_cpu "$OTHER_CPU" "$BIN" "${W[@]}" serve app "$@" > "$DATA/app.log" 2>&1 &
  PIDS+=($!); APP=$!
  wait_for "$DATA/app.log" " on "
  on_cpu "$WEB_CPU" "$BIN" "${W[@]}" serve web --host web1 "$@" > "$DATA/web.log" 2>&1 &
  PIDS+=($!); WEB=$!
  wait_for "$DATA/web.log" " on "
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime
run_wrk() { # prints "req/s requests web_ticks collector_ticks"
  local addr w0 c0 out
  addr=$(grep -o "web web1 on [0-9.:]*" "$DATA/web.log" | head -1 | awk '{print $4}')
  w0=$(ticks "$WEB"); c0=$(ticks "$COL")
  out=$(on_cpu "$OTHER_CPU" wrk -t1 -c32 -d"${SECS}s" -H 'Host: myapp.test' "http://$addr/static/app.css")
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '/requests in/ {print $1}' <<<"$out") \
$(( $(ticks "$WEB") - w0 )) $(( $(ticks "$COL") - c0 ))"
}
off_on() { # sets OFF_RUN and ON_RUN
  serve_web
  OFF_RUN=$(run_wrk)
  kill "$WEB" "$APP"; wait "$WEB" "$APP" 2>/dev/null || true
  serve_web --otlp "$OTLP"
  ON_RUN=$(run_wrk)
  kill "$WEB" "$APP"; wait "$WEB" "$APP" 2>/dev/null || true
  if grep -o "otlp: cannot send.*" "$DATA/web.log" >&2; then echo "export failed during the run" >&2; exit 1; fi
}
# Unpinned: the server, wrk and the collector share both cores.
OTHER_CPU=""
off_on; off_run=$OFF_RUN on_run=$ON_RUN
# Pinned: the web server alone on CPU 1; wrk, the app and the collector on
# CPU 0. What export costs the server itself shows apart from what the
# collector, on the same machine, takes from the load generator.
WEB_CPU=1 OTHER_CPU=0
# -a: every thread of the collector (its runtime's workers too), not only
# its first; without it the workers kept running on CPU 1 beside the server.
taskset -apc 0 "$COL" >/dev/null
off_on; off_pin=$OFF_RUN on_pin=$ON_RUN
taskset -apc 0,1 "$COL" >/dev/null

python3 - "$DATA" "$off_run" "$on_run" "$RUNS" "$(getconf CLK_TCK)" "$off_pin" "$on_pin" <<'PY'
import statistics, sys
d, runs, hz = sys.argv[1], sys.argv[4], float(sys.argv[5])
off = [float(x) for x in sys.argv[2].split()]
on = [float(x) for x in sys.argv[3].split()]
off_p = [float(x) for x in sys.argv[6].split()]
on_p = [float(x) for x in sys.argv[7].split()]
off_rps, on_rps = off[0], on[0]
us = lambda ticks, reqs: ticks / hz * 1e6 / reqs
def cols(name):
    rows = [list(map(float, l.split())) for l in open(f"{d}/{name}") if l.strip()]
    return [r[0] for r in rows], [r[1] for r in rows]
off_page, off_wall = cols("off.txt")
on_page, on_wall = cols("on.txt")
med = statistics.median
print(f"OTLP export on vs off ({runs} tours each; wrk 1 thread, 32 connections)")
print(f"{'measure':<34} {'off':>10} {'on':>10} {'on/off':>8}")
print(f"{'tour page load, median ms':<34} {med(off_page):>10.2f} {med(on_page):>10.2f} {med(on_page)/med(off_page):>8.3f}")
print(f"{'tour process wall time, median ms':<34} {med(off_wall):>10.1f} {med(on_wall):>10.1f} {med(on_wall)/med(off_wall):>8.3f}")
print(f"{'web server static file, req/s':<34} {off_rps:>10.0f} {on_rps:>10.0f} {on_rps/off_rps:>8.3f}")
print(f"{'web server CPU per request, us':<34} {us(off[2], off[1]):>10.2f} {us(on[2], on[1]):>10.2f} {us(on[2], on[1])/us(off[2], off[1]):>8.3f}")
print(f"{'collector CPU per request, us':<34} {'':>10} {us(on[3], on[1]):>10.2f}")
print("pinned: web server alone on CPU 1; wrk, app and collector on CPU 0")
print(f"{'web server static file, req/s':<34} {off_p[0]:>10.0f} {on_p[0]:>10.0f} {on_p[0]/off_p[0]:>8.3f}")
a, b = us(off_p[2], off_p[1]), us(on_p[2], on_p[1])
print(f"{'web server CPU per request, us':<34} {a:>10.2f} {b:>10.2f} {b/a:>8.3f}")
print(f"{'web server capacity (1/CPU), req/s':<34} {1e6/a:>10.0f} {1e6/b:>10.0f} {a/b:>8.3f}")
print(f"{'collector CPU per request, us':<34} {'':>10} {us(on_p[3], on_p[1]):>10.2f}")
PY
echo
echo "Per span, in one process (encode to protobuf, decode back):"
cargo run --release -q -p weblab-otlp --example convert_speed
