#!/usr/bin/env bash
# weblab's client beside curl, in one run: the same 1 KiB file over HTTPS
# (TLS 1.3, ALPN) from nginx on loopback, RUNS requests each, every one on
# a new connection (curl: a new process; weblab fetch --runs: a fresh
# browser per run). Prints min / median / p95 of the total time of each
# (curl's time_total; weblab's request total, connect to last byte) and
# the ratio of medians. nginx on CPU 0, the clients on CPU 1; stopped by
# its PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}
PORT=${PORT:-18543}
BLOCK=${BLOCK:-66}
cargo build --release -q -p weblab
BIN=$PWD/target/release/weblab
W=$(mktemp -d /tmp/weblab-client.XXXXXX)
cleanup() {
    [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
chmod 755 "$W"
mkdir -p "$W/www" "$W/tmp"
head -c 1024 /dev/urandom >"$W/www/1k.bin"
chmod 644 "$W/www/1k.bin"

# A CA of this run and nginx.test's certificate from it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$W/ca.key" -out "$W/ca.pem" -days 2 -subj /CN=bench-client-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$W/key.pem" -out "$W/leaf.csr" -subj /CN=nginx.test 2>/dev/null
printf 'subjectAltName=DNS:nginx.test\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >"$W/ext"
openssl x509 -req -in "$W/leaf.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial \
    -out "$W/cert.pem" -days 2 -extfile "$W/ext" 2>/dev/null

cat >"$W/nginx.conf" <<CONF
daemon on;
master_process on;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path $W/tmp/b; proxy_temp_path $W/tmp/p;
    fastcgi_temp_path $W/tmp/f; uwsgi_temp_path $W/tmp/u; scgi_temp_path $W/tmp/s;
    server {
        listen 127.0.0.1:$PORT ssl http2;
        ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem;
        ssl_protocols TLSv1.3;
        root $W/www;
    }
}
CONF
taskset -c 0 nginx -e "$W/error.log" -p "$W" -c "$W/nginx.conf"
for _ in $(seq 50); do [ -f "$W/nginx.pid" ] && break; sleep 0.1; done

URL="https://nginx.test:$PORT/1k.bin"
RESOLVE="nginx.test:$PORT:127.0.0.1"
: >"$W/curl.txt"
for _ in $(seq "$RUNS"); do
    taskset -c 1 curl -s -o /dev/null --resolve "$RESOLVE" --cacert "$W/ca.pem" \
        -w '%{time_total} %{time_connect} %{time_appconnect} %{time_starttransfer}\n' \
        "$URL" >>"$W/curl.txt"
done
taskset -c 1 "$BIN" --block "$BLOCK" --data "$W/data" fetch "$URL" --resolve "$RESOLVE" \
    --cacert "$W/ca.pem" --runs "$RUNS" >"$W/weblab.txt"

python3 - "$W/curl.txt" "$W/weblab.txt" "$RUNS" <<'PY'
import sys
rows = [[float(v) * 1000 for v in l.split()] for l in open(sys.argv[1]) if l.strip()]
curl = sorted(r[0] for r in rows)
def pct(v, p):
    k = max(1, -(-len(v) * p // 100))
    return v[int(k) - 1]
row = next(l for l in open(sys.argv[2]) if l.startswith("total "))
w_min, w_med, w_p95 = (float(x) for x in row.split()[1:4])
c = (curl[0], pct(curl, 50), pct(curl, 95))
print(f"one 1 KiB GET over HTTPS from nginx, a new connection each, {sys.argv[3]} runs (ms)")
print(f"{'':10} {'min':>8} {'median':>8} {'p95':>8}")
print(f"{'weblab':10} {w_min:>8.3f} {w_med:>8.3f} {w_p95:>8.3f}")
print(f"{'curl':10} {c[0]:>8.3f} {c[1]:>8.3f} {c[2]:>8.3f}")
print(f"weblab / curl, median: {w_med / c[1]:.2f}x  (goal: <= 0.8x)")
print("(curl's time_total includes building its TLS context and reading the CA file on each")
print(" transfer; weblab's browser has its TLS settings ready before the request starts)")
# The phases, as curl -w counts them (each from the start of the
# transfer): TCP connected, TLS done, first byte. weblab's from its stage
# medians, summed the same way.
med = {}
for l in open(sys.argv[2]):
    p = l.split()
    if len(p) == 4 and p[0] in ("blocked", "dns", "connect", "ssl", "send", "wait", "ttfb", "total"):
        med[p[0]] = float(p[2])
cw = [sorted(r[i] for r in rows) for i in range(4)]
ours = {
    "connected": med["blocked"] + med["dns"] + med["connect"],
    "TLS done": med["blocked"] + med["dns"] + med["connect"] + med["ssl"],
    "first byte": med["ttfb"],
}
theirs = {"connected": pct(cw[1], 50), "TLS done": pct(cw[2], 50), "first byte": pct(cw[3], 50)}
print("\nphases, median ms from the start (curl -w time_connect, time_appconnect, time_starttransfer)")
print(f"{'':12} {'weblab':>8} {'curl':>8}")
for k in ("connected", "TLS done", "first byte"):
    print(f"{k:12} {ours[k]:>8.3f} {theirs[k]:>8.3f}")
print("(the TLS handshake itself: weblab %.3f ms, curl %.3f ms)" % (med["ssl"], pct(sorted(r[2] - r[1] for r in rows), 50)))
PY

# A page of twenty pictures from the world (its own servers, booted by
# each `weblab open`), over HTTP/2 (one connection) and HTTP/1.1 (at most
# six): the page-load time, first request to last byte.
PAGE_RUNS=${PAGE_RUNS:-20}
for mode in h2 h1; do
    flag=()
    [ "$mode" = h1 ] && flag=(--http1.1)
    for _ in $(seq "$PAGE_RUNS"); do
        "$BIN" --block "$BLOCK" --data "$W/data" open https://myapp.test/static/gallery.html \
            "${flag[@]}" --json >"$W/page.json"
        python3 -c "
import json, sys
d = json.load(open(sys.argv[1])); t = d['timings']
assert d['ok'] and len(t) == 22, (d.get('error'), len(t))
page = (max(x['end_ns'] for x in t) - min(x['start_ns'] for x in t)) / 1e6
conns = sum(1 for s in d['spans'] if s['event']['kind'] == 'tcp_connect')
print(page, conns)" "$W/page.json"
    done >"$W/$mode.txt"
done
python3 - "$W/h2.txt" "$W/h1.txt" "$PAGE_RUNS" <<'PY'
import statistics, sys
def rows(p):
    r = [tuple(map(float, l.split())) for l in open(p) if l.strip()]
    return sorted(x[0] for x in r), statistics.median(x[1] for x in r)
(h2, c2), (h1, c1) = rows(sys.argv[1]), rows(sys.argv[2])
def pct(v, p):
    k = max(1, -(-len(v) * p // 100))
    return v[int(k) - 1]
print(f"\nweblab open of a page with 20 pictures + 1 stylesheet (22 requests), {sys.argv[3]} runs each (ms)")
print(f"{'':10} {'min':>8} {'median':>8} {'p95':>8} {'connections':>12}")
for name, v, c in (("HTTP/2", h2, c2), ("HTTP/1.1", h1, c1)):
    print(f"{name:10} {v[0]:>8.3f} {pct(v, 50):>8.3f} {pct(v, 95):>8.3f} {c:>12.0f}")
print(f"HTTP/2 / HTTP/1.1, median page load: {pct(h2, 50) / pct(h1, 50):.2f}x")
print(f"(HTTP/2 opened {c2:.0f} connection(s) and HTTP/1.1 {c1:.0f}, each with its own TCP and TLS")
print(" handshakes; on loopback a round trip costs tens of microseconds, so what HTTP/2 saves")
print(" there is handshakes, not waiting)")
PY
