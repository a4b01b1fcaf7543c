#!/usr/bin/env bash
# The edge beside its peers, in one run, with ../shared/peers (same pinning,
# connections and duration for every case), then the ratios:
#   static  weblab's web server vs nginx: ~1 KiB file, HTTP/1.1 keep-alive
#   static  the same with a 100 KiB file
#   proxy   weblab's web server proxying round robin to two nginx backends
#           vs nginx and HAProxy doing the same (the peers' case b)
#   TLS+h2  weblab's load balancer (TLS 1.3, HTTP/2, h2load) in front of
#           weblab's two web servers serving static files, against nginx
#           serving the same files over TLS+h2 itself (the peers' case a)
#           and against nginx as the same TLS+h2 front over two nginx
#           static backends. The front is alone on its CPU; its backends
#           share the other one with h2load.
# Tracing: a `serve`d role without --otlp keeps no spans, so it builds
# none; the "spans exported" static row is the same server sending every
# span over OTLP to `weblab collect` (pinned with the load generator): the
# cost of tracing on this 2-core machine.
# Loopback only; every process is stopped by its PID (lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-$PWD/../shared/peers}
export DURATION=${DURATION:-10}
cargo build --release -q -p weblab
BIN=$PWD/target/release/weblab
OUT=$(mktemp /tmp/weblab-edge-out.XXXXXX)
trap 'rm -f "$OUT"' EXIT
BLOCK=${BLOCK:-63}
PORT=$([ "$(id -u)" = 0 ] && echo 80 || echo 10080)

# Peers first: nginx static, then nginx and HAProxy as proxies.
bash "$PEERS/a_static.sh" | tee -a "$OUT"
bash "$PEERS/b_proxy.sh" | tee -a "$OUT"

# Peer: nginx as a TLS+h2 front proxying to two nginx static backends.
HTTPS=$([ "$(id -u)" = 0 ] && echo 443 || echo 10443)
bash -c '
source "$1/lib.sh"
BLOCK=$2 PORT=$3 HTTPS=$4
chmod 755 "$WORK"; mkdir -p "$WORK/www" "$WORK/tmp"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"; head -c 102400 /dev/urandom >"$WORK/www/100k.bin"
chmod 644 "$WORK/www/"*
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
conf() {
cat >"$WORK/$1.conf" <<CONF
daemon off; master_process on; worker_processes 1; pid $WORK/$1.pid; error_log $WORK/$1.err warn;
events { worker_connections 4096; }
http {
    access_log off; default_type application/octet-stream;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_timeout 65s; keepalive_requests 100000; open_file_cache max=1000 inactive=60s;
    client_body_temp_path $WORK/tmp/$1-b; proxy_temp_path $WORK/tmp/$1-p;
    fastcgi_temp_path $WORK/tmp/$1-f; uwsgi_temp_path $WORK/tmp/$1-u; scgi_temp_path $WORK/tmp/$1-s;
$2
}
CONF
}
AUX_PIDS=""
for i in 1 2; do
    conf "s$i" "server { listen 127.$BLOCK.8.$i:$PORT; root $WORK/www; }"
    start_bg "static$i" "$AUX_CPU" nginx -e "$WORK/s$i.err" -p "$WORK" -c "$WORK/s$i.conf"
    AUX_PIDS+=" $LAST_PID"
    wait_tcp "$PORT" 10 "127.$BLOCK.8.$i"
done
conf front "upstream backends { server 127.$BLOCK.8.1:$PORT; server 127.$BLOCK.8.2:$PORT; keepalive 1024; }
server { listen 127.$BLOCK.8.9:$HTTPS ssl http2;
  ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_protocols TLSv1.3;
  location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
start_bg nginx-front "$SERVER_CPU" nginx -e "$WORK/front.err" -p "$WORK" -c "$WORK/front.conf"
FRONT=$LAST_PID
wait_tcp "$HTTPS" 10 "127.$BLOCK.8.9"
run_h2load nginx-front-1k-h2tls "https://127.$BLOCK.8.9:$HTTPS/1k.bin" "$FRONT"
run_h2load nginx-front-100k-h2tls "https://127.$BLOCK.8.9:$HTTPS/100k.bin" "$FRONT"
' _ "$PEERS" "$BLOCK" "$PORT" "$HTTPS" | tee -a "$OUT"

# Ours: static.
DATA=$(mktemp -d /tmp/weblab-edge.XXXXXX)
# Files beside the world's own document root (only the world's files are
# rewritten at start).
mkdir -p "$DATA/www/static"
head -c 1024 /dev/urandom >"$DATA/www/static/1k.bin"
head -c 102400 /dev/urandom >"$DATA/www/static/100k.bin"
bash "$PEERS/any_http.sh" weblab-static-1k-h1 "http://127.$BLOCK.4.1:$PORT/static/app.css" -- \
    "$BIN" --block "$BLOCK" --data "$DATA" serve web --host web1 | tee -a "$OUT"
bash "$PEERS/any_http.sh" weblab-static-100k-h1 "http://127.$BLOCK.4.1:$PORT/static/100k.bin" -- \
    "$BIN" --block "$BLOCK" --data "$DATA" serve web --host web1 | tee -a "$OUT"

# Ours: the load balancer as the TLS+h2 front, both web servers behind it
# on the aux CPU.
bash -c '
source "$1/lib.sh"
BLOCK=$2 PORT=$3 HTTPS=$4 BIN=$5 DATA=$6
start_bg weblab-webs "$AUX_CPU" "$BIN" --block "$BLOCK" --data "$DATA" serve web
export AUX_PIDS=$LAST_PID
wait_tcp "$PORT" 30 "127.$BLOCK.4.1"; wait_tcp "$PORT" 30 "127.$BLOCK.4.2"
start_bg weblab-lb "$SERVER_CPU" "$BIN" --block "$BLOCK" --data "$DATA" serve lb
LB=$LAST_PID
wait_tcp "$HTTPS" 30 "127.$BLOCK.3.1"
[[ $(curl -sk --http2 -o /dev/null -w "%{http_version} %{size_download}" "https://127.$BLOCK.3.1:$HTTPS/static/1k.bin") == "2 1024" ]] || die "no 1 KiB over HTTP/2 through the load balancer"
run_h2load weblab-lb-1k-h2tls "https://127.$BLOCK.3.1:$HTTPS/static/1k.bin" "$LB"
run_h2load weblab-lb-100k-h2tls "https://127.$BLOCK.3.1:$HTTPS/static/100k.bin" "$LB"
' _ "$PEERS" "$BLOCK" "$PORT" "$HTTPS" "$BIN" "$DATA" | tee -a "$OUT"

# Ours: static again, every span exported to a collector on the aux CPU.
bash -c '
source "$1/lib.sh"
BLOCK=$2 BIN=$3 DATA=$4 PORT=$5
start_bg weblab-collect "$AUX_CPU" "$BIN" --block "$BLOCK" --data "$DATA" collect
COL=$LAST_PID
export AUX_PIDS=$COL   # the collector is a helper, not "other" load
wait_tcp 4318 30 "127.$BLOCK.0.1"
bash "$1/any_http.sh" weblab-static-1k-h1-otlp "http://127.$BLOCK.4.1:$PORT/static/app.css" -- \
    "$BIN" --block "$BLOCK" --data "$DATA" serve web --host web1 --otlp "http://127.$BLOCK.0.1:4318"
stop_pid "$COL"
' _ "$PEERS" "$BLOCK" "$BIN" "$DATA" "$PORT" | tee -a "$OUT"

# Ours: proxy. The world's app1/app2 addresses get the same nginx backends
# the peers' case b uses (1 KiB body from the config), on the aux CPU.
bash -c '
source "$1/lib.sh"
BLOCK=$2 PORT=$3 BIN=$4 DATA=$5
BODY=$(head -c 768 /dev/urandom | base64 -w0)
chmod 755 "$WORK"; mkdir -p "$WORK/tmp"
AUX_PIDS=""
for i in 1 2; do
cat >"$WORK/app$i.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
pid $WORK/app$i.pid;
error_log $WORK/app$i.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 65s; keepalive_requests 100000;
    client_body_temp_path $WORK/tmp/$i-body; proxy_temp_path $WORK/tmp/$i-proxy;
    fastcgi_temp_path $WORK/tmp/$i-fcgi; uwsgi_temp_path $WORK/tmp/$i-uwsgi; scgi_temp_path $WORK/tmp/$i-scgi;
    server { listen 127.$BLOCK.5.$i:$PORT; location / { add_header X-Backend b$i; return 200 "$BODY"; } }
}
CONF
start_bg "app$i" "$AUX_CPU" nginx -e "$WORK/app$i.err" -p "$WORK" -c "$WORK/app$i.conf"
AUX_PIDS+=" $LAST_PID"
wait_tcp "$PORT" 10 "127.$BLOCK.5.$i"
done
# (any_http.sh would refuse: the backends already use the same port
# number on their own addresses.)
start_bg weblab-web "$SERVER_CPU" "$BIN" --block "$BLOCK" --data "$DATA" serve web --host web1
WEB=$LAST_PID
wait_tcp "$PORT" 30 "127.$BLOCK.4.1"
run_wrk weblab-proxy-rr "http://127.$BLOCK.4.1:$PORT/1k.bin" "$WEB"
' _ "$PEERS" "$BLOCK" "$PORT" "$BIN" "$DATA" | tee -a "$OUT"
# Memory per connection: ours and nginx, 1000 keep-alive connections each.
bash -c '
source "$1/lib.sh"
BLOCK=$2 PORT=$3 BIN=$4 DATA=$5 HERE=$6
start_bg weblab-web "$SERVER_CPU" "$BIN" --block "$BLOCK" --data "$DATA" serve web --host web1
WEB=$LAST_PID
wait_tcp "$PORT" 30 "127.$BLOCK.4.1"
python3 "$HERE/conn_memory.py" weblab-conn-memory "127.$BLOCK.4.1" "$PORT" "$WEB"
stop_pid "$WEB"
mkdir -p "$WORK/www/static" "$WORK/tmp"; chmod -R 755 "$WORK"
head -c 1134 /dev/urandom > "$WORK/www/static/app.css"
cat >"$WORK/n.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $WORK/n.pid; error_log $WORK/n.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_timeout 65s; client_body_temp_path $WORK/tmp/b; proxy_temp_path $WORK/tmp/p;
 fastcgi_temp_path $WORK/tmp/f; uwsgi_temp_path $WORK/tmp/u; scgi_temp_path $WORK/tmp/s;
 server { listen 127.$BLOCK.9.1:$PORT; root $WORK/www; } }
CONF
start_bg nginx-mem "$SERVER_CPU" nginx -p "$WORK" -c "$WORK/n.conf"
NG=$LAST_PID
wait_tcp "$PORT" 10 "127.$BLOCK.9.1"
python3 "$HERE/conn_memory.py" nginx-conn-memory "127.$BLOCK.9.1" "$PORT" "$NG"
' _ "$PEERS" "$BLOCK" "$PORT" "$BIN" "$DATA" "$PWD/bench" | tee -a "$OUT"
rm -rf "$DATA"

python3 - "$OUT" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.search(r"RESULT case=(\S+)(.*)", line)
    if m:
        kv = dict(re.findall(r"(\w+)=(\S+)", m.group(2)))
        rows[m.group(1)] = kv
def show(ours, peer, what):
    a, b = rows.get(ours), rows.get(peer)
    if not a or not b:
        print(f"{what}: missing {ours if not a else peer}")
        return
    ra, rb = float(a["rps"]), float(b["rps"])
    # Requests per second of the server's own CPU: when the load generator
    # is the limit (100 KiB bodies: wrk copying 3+ GB/s), req/s alone
    # hides how much each server spent.
    ca, cb = float(a.get("server_cpu_pct", 0)), float(b.get("server_cpu_pct", 0))
    per_cpu = f"{(ra / ca) / (rb / cb):.2f}" if ca and cb else "-"
    print(f"{what:40} weblab {ra:8.0f} req/s p99 {a.get('p99_ms','-'):>6} ms cpu {ca:3.0f}% | "
          f"{peer:16} {rb:8.0f} req/s p99 {b.get('p99_ms','-'):>6} ms cpu {cb:3.0f}% | "
          f"ratio {ra/rb:.2f}, per CPU {per_cpu}")
show("weblab-static-1k-h1", "nginx-static-1k-h1", "static ~1 KiB, HTTP/1.1")
show("weblab-static-1k-h1-otlp", "nginx-static-1k-h1", "static ~1 KiB, spans exported (OTLP)")
show("weblab-static-100k-h1", "nginx-static-100k-h1", "static 100 KiB, HTTP/1.1")
show("weblab-lb-1k-h2tls", "nginx-static-1k-h2tls", "TLS+h2 front, 1 KiB (nginx serves)")
show("weblab-lb-1k-h2tls", "nginx-front-1k-h2tls", "TLS+h2 front, 1 KiB (nginx proxies)")
show("weblab-lb-100k-h2tls", "nginx-static-100k-h2tls", "TLS+h2 front, 100 KiB (nginx serves)")
show("weblab-lb-100k-h2tls", "nginx-front-100k-h2tls", "TLS+h2 front, 100 KiB (nginx proxies)")
show("weblab-proxy-rr", "lb-haproxy-rr", "round-robin proxy, 2 backends")
show("weblab-proxy-rr", "lb-nginx-rr", "round-robin proxy, 2 backends")
a, b = rows.get("weblab-conn-memory"), rows.get("nginx-conn-memory")
if a and b:
    for k, what in (("idle_bytes_per_conn", "idle"), ("after_request_bytes_per_conn", "after one request")):
        x, y = float(a[k]), float(b[k])
        print(f"memory per connection, {what:18} weblab {x:8.0f} B | nginx {y:8.0f} B | ratio {x / max(y, 1):.1f}")
PY
