#!/usr/bin/env bash
# The application server beside Express, in one run, with ../shared/peers
# (same pinning, connections and duration), then the ratio:
#   read   GET /api/users/:id, random ids 1..10000, one JSON row from SQLite.
#          Express 5 + better-sqlite3 (the peers' case d) vs weblab's app
#          server with its whole middleware chain (request context, access
#          log, security headers, CORS, session, authentication,
#          compression, route + authorization, ETag) and tracing on.
#   nodb   GET /signup: the same chain without SQL, to split the read's
#          time into SQL and the rest.
#   write  POST /api/posts with a Bearer token: durable inserts per second
#          (SQLite WAL, synchronous=FULL: each 201 is on disk). Ours only;
#          the peer has no write route.
# Loopback only; every process is stopped by its PID (lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-$PWD/../shared/peers}
export DURATION=${DURATION:-10}
export USERS=${USERS:-10000}
cargo build --release -q -p weblab
BIN=$PWD/target/release/weblab
OUT=$(mktemp /tmp/weblab-app-out.XXXXXX)
trap 'rm -f "$OUT"' EXIT
BLOCK=${BLOCK:-64}
PORT=$([ "$(id -u)" = 0 ] && echo 80 || echo 10080)

bash "$PEERS/d_app.sh" | tee -a "$OUT"

DATA=$(mktemp -d /tmp/weblab-app.XXXXXX)
bash -c '
source "$1/lib.sh"
BLOCK=$2 PORT=$3 BIN=$4 DATA=$5
ADDR=127.$BLOCK.5.1
# First start: the migrations make the schema and the demo users; then the
# same 10 000 users the peer has (ids 4.. after the three demo accounts).
start_bg weblab-app-seed "$SERVER_CPU" "$BIN" --block "$BLOCK" --data "$DATA" serve app --host app1
SEED=$LAST_PID
wait_tcp "$PORT" 30 "$ADDR"
python3 - "$DATA/app.db" "$USERS" <<PY
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = int(sys.argv[2])
with db:
    db.executemany(
        "INSERT INTO users (id, name, email, role, created_at, updated_at) VALUES (?, ?, ?, \"user\", ?, ?)",
        [(i, f"User {i}", f"user{i}@example.test", 1704067200 + 60 * i, 1704067200 + 60 * i) for i in range(4, n + 1)])
print("seeded", db.execute("SELECT COUNT(*) FROM users").fetchone()[0], "users")
PY
stop_pid "$SEED"
body=$(curl -s "http://$ADDR:$PORT/api/users/42" || true)
[[ -z $body ]] || die "the seeding server is still up"
bash "$1/any_http.sh" weblab-app-read "http://$ADDR:$PORT" --wrk-script "$1/app/users.lua" -- \
    "$BIN" --block "$BLOCK" --data "$DATA" serve app --host app1
# The same chain and router without a database read (the sign-up page):
# what the read above spends in SQL is the difference.
bash "$1/any_http.sh" weblab-app-nodb "http://$ADDR:$PORT/signup" -- \
    "$BIN" --block "$BLOCK" --data "$DATA" serve app --host app1

# Writes: a token for the demo account, then POST /api/posts flat out.
start_bg weblab-app-write "$SERVER_CPU" "$BIN" --block "$BLOCK" --data "$DATA" serve app --host app1
APP=$LAST_PID
wait_tcp "$PORT" 30 "$ADDR"
TOKEN=$(curl -s -H "content-type: application/json" \
    -d "{\"grant_type\":\"password\",\"email\":\"ada@myapp.test\",\"password\":\"weblab-demo\"}" \
    "http://$ADDR:$PORT/api/tokens" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"access_token\"])")
cat >"$WORK/posts.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $TOKEN"
wrk.body = "{\"title\":\"bench\",\"body\":\"one durable row per request\"}"
LUA
before=$(python3 -c "import sqlite3; print(sqlite3.connect(\"$DATA/app.db\").execute(\"SELECT COUNT(*) FROM posts\").fetchone()[0])")
run_wrk weblab-app-write "http://$ADDR:$PORT/api/posts" "$APP" -s "$WORK/posts.lua"
stop_pid "$APP"
after=$(python3 -c "import sqlite3; print(sqlite3.connect(\"$DATA/app.db\").execute(\"SELECT COUNT(*) FROM posts\").fetchone()[0])")
echo "RESULT case=weblab-app-write-rows rows=$((after - before))"
' _ "$PEERS" "$BLOCK" "$PORT" "$BIN" "$DATA" | tee -a "$OUT"
rm -rf "$DATA"

python3 - "$OUT" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.search(r"RESULT case=(\S+)(.*)", line)
    if m:
        rows[m.group(1)] = dict(re.findall(r"(\w+)=(\S+)", m.group(2)))
ours = rows.get("weblab-app-read")
peer = rows.get("app-express-sqlite") or rows.get("app-express-memory")
if ours and peer:
    ra, rb = float(ours["rps"]), float(peer["rps"])
    print(f"GET /api/users/:id  weblab {ra:8.0f} req/s p99 {ours.get('p99_ms','-'):>6} ms | "
          f"express {rb:8.0f} req/s p99 {peer.get('p99_ms','-'):>6} ms | ratio {ra/rb:.2f}")
nodb = rows.get("weblab-app-nodb")
if ours and nodb:
    a, b = float(ours["rps"]), float(nodb["rps"])
    print(f"GET /signup (no SQL) weblab {b:8.0f} req/s p99 {nodb.get('p99_ms','-'):>6} ms | "
          f"the read's SQL share: {1e6 / a - 1e6 / b:.0f} us of {1e6 / a:.0f} us per request")
w = rows.get("weblab-app-write")
n = rows.get("weblab-app-write-rows")
if w:
    print(f"POST /api/posts     weblab {float(w['rps']):8.0f} writes/s p99 {w.get('p99_ms','-'):>6} ms "
          f"(SQLite WAL, synchronous=FULL; rows added {n['rows'] if n else '?'})")
PY
