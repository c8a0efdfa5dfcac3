#!/usr/bin/env bash
# SCIM `userName eq` lookup cost at 100 users versus at 100 000 users, in one
# run: two fresh SQLite databases (100 and 100 000 provisioned members of one
# workspace), one gateway each on 127.0.0.1, the same number of sequential
# `GET /scim/v2/Users?filter=userName eq "..."` lookups of random existing
# users over one keep-alive connection. Prints the time per lookup for each
# size and their ratio. Loopback only; bounded (LOOKUPS per size).
#
#   bench/scim_filter.sh            # LOOKUPS=500 BIG=100000 SMALL=100
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
LOOKUPS="${LOOKUPS:-500}"
SMALL="${SMALL:-100}"
BIG="${BIG:-100000}"

cargo build --locked --quiet --bin iam-gateway
bin="${CARGO_TARGET_DIR:-$root/target}/debug/iam-gateway"
if [ "${BENCH_RELEASE:-0}" = 1 ]; then
  cargo build --locked --quiet --release --bin iam-gateway
  bin="${CARGO_TARGET_DIR:-$root/target}/release/iam-gateway"
fi

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Fills a migrated database with N members (provisioned through SCIM) of
# workspace "bench", straight in SQL: the HTTP path is what is measured.
seed() {
  python3 - "$1" "$2" <<'PY'
import json, sqlite3, sys, time, uuid
db, n = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(db)
ws = con.execute("SELECT id FROM workspaces WHERE slug = 'bench'").fetchone()[0]
now = int(time.time())
pol = json.dumps([{"role": "minimal_access", "scope": None}])
users, members, scim = [], [], []
for i in range(n):
    uid = str(uuid.uuid4())
    email = f"user{i:06d}@Bench.test"
    users.append((uid, email, email.lower(), f"User {i}", now))
    members.append((ws, uid, pol, now))
    scim.append((ws, uid, f"ext-{i}", 1, json.dumps({"displayName": f"User {i}"}), now, now))
with con:
    con.executemany("INSERT INTO users (id, email, email_norm, name, created_at) VALUES (?, ?, ?, ?, ?)", users)
    con.executemany("INSERT INTO memberships (workspace_id, user_id, policies, created_at) VALUES (?, ?, ?, ?)", members)
    con.executemany("INSERT INTO scim_users (workspace_id, user_id, external_id, active, attributes, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?)", scim)
con.execute("ANALYZE")
con.close()
PY
}

# Times LOOKUPS lookups against a running gateway; prints mean ms.
measure() {
  python3 - "$1" "$2" "$3" "$LOOKUPS" <<'PY'
import http.client, json, random, statistics, sys, time, urllib.parse
port, token, n, lookups = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
def lookup(i):
    f = urllib.parse.quote(f'userName eq "USER{i:06d}@bench.test"')
    conn.request("GET", f"/scim/v2/Users?filter={f}", headers={"Authorization": f"Bearer {token}"})
    r = conn.getresponse()
    body = json.loads(r.read())
    assert r.status == 200 and body["totalResults"] == 1, (r.status, body)
rnd = random.Random(7)
for _ in range(min(50, lookups)):
    lookup(rnd.randrange(n))
times = []
for _ in range(lookups):
    i = rnd.randrange(n)
    t = time.perf_counter()
    lookup(i)
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"{statistics.mean(times):.3f} {times[len(times)//2]:.3f} {times[int(len(times)*0.95)]:.3f}")
PY
}

run_size() {
  local n=$1 dir="$work/$1"
  mkdir -p "$dir"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  export IAMGW_DATABASE_URL="sqlite://$dir/gw.db" IAMGW_SECRET_KEY_FILE="$dir/secret.key"
  export IAMGW_LISTEN="127.0.0.1:$port" IAMGW_PUBLIC_URL="http://127.0.0.1:$port"
  export IAMGW_SESSION__STORE=database IAMGW_TWILIO__MODE=off RUST_LOG=warn
  "$bin" bootstrap --workspace bench --owner-email owner@bench.test >/dev/null
  seed "$dir/gw.db" "$n"
  local token
  token=$("$bin" scim-token create --workspace bench)
  "$bin" serve >"$dir/gateway.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  measure "$port" "$token" "$n"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

read -r small_mean small_p50 small_p95 < <(run_size "$SMALL")
read -r big_mean big_p50 big_p95 < <(run_size "$BIG")
printf 'SCIM userName eq lookup over HTTP (SQLite, %s lookups each, %s build):\n' "$LOOKUPS" \
  "$([ "${BENCH_RELEASE:-0}" = 1 ] && echo release || echo debug)"
printf '  %7s users: %s ms/lookup (p50 %s, p95 %s)\n' "$SMALL" "$small_mean" "$small_p50" "$small_p95"
printf '  %7s users: %s ms/lookup (p50 %s, p95 %s)\n' "$BIG" "$big_mean" "$big_p50" "$big_p95"
python3 -c "import sys; print(f'  ratio {sys.argv[2]}/{sys.argv[1]} users: {float(sys.argv[4])/float(sys.argv[3]):.2f}x')" \
  "$SMALL" "$BIG" "$small_mean" "$big_mean"
