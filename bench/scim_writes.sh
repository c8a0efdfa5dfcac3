#!/usr/bin/env bash
# Write throughput (issue 19; local only, never run in CI): SCIM user
# creations per second (`POST /scim/v2/Users`, each a new user) at 1, 8 and
# 32 concurrent clients, on SQLite and on PostgreSQL.
#
# Builds the release binary, installs wrk (apt) if missing, runs the gateway
# on a free 127.0.0.1 port with a fresh database per measurement (a
# temporary SQLite file; a fresh schema in BENCH_PG_URL), mints a SCIM token
# with the CLI, drives it with wrk and stops everything it started. Every
# answer must be 201: the script fails otherwise. Results:
# docs/benchmarks.md.
#
# Environment: BENCH_BIN (a binary to measure instead of building the
# release one, e.g. an earlier build to compare with), BENCH_SECONDS (per measurement, default 5), BENCH_CLIENTS
# (default "1 8 32"), BENCH_DBS (default "sqlite postgres"), BENCH_PG_URL
# (default postgres://root@127.0.0.1:5432/test; PostgreSQL is skipped when
# it does not answer), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

SECONDS_EACH=${BENCH_SECONDS:-5}
CLIENTS=${BENCH_CLIENTS:-1 8 32}
DBS=${BENCH_DBS:-sqlite postgres}
PG_URL=${BENCH_PG_URL:-postgres://root@127.0.0.1:5432/test}
PASSWORD='benchmark passphrase, long enough'

if ! need wrk; then
  echo "installing wrk" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
  else sudo apt-get install -y -q wrk >/dev/null; fi
fi
for t in curl wrk; do need "$t" || { echo "missing: $t" >&2; exit 1; }; done

BIN=$(release_bin)

bench_setup

# Each wrk connection posts new users: userName b<run>-<thread>-<n>@corp.test.
cat >"$work/post.lua" <<'EOF'
-- `id` is a global that setup() sets in each thread (a chunk-level local
-- would shadow it).
local threads = {}
local started = 0
function setup(thread)
  started = started + 1
  thread:set("id", started)
  table.insert(threads, thread)
end
function init(args)
  run = args[1]
  token = args[2]
  n = 0
end
function request()
  n = n + 1
  local body = string.format(
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"b%s-%d-%d@corp.test"}',
    run, id, n)
  return wrk.format("POST", "/scim/v2/Users", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/scim+json",
  }, body)
end
function response(status, headers, body)
  if status ~= 201 then
    bad = (bad or 0) + 1
    sample = status .. " " .. string.sub(body, 1, 200)
  end
end
function done(summary, latency, requests)
  local bad_total = 0
  for _, t in ipairs(threads) do
    bad_total = bad_total + (t:get("bad") or 0)
    if t:get("sample") then
      io.write("SAMPLE " .. t:get("sample") .. "\n")
    end
  end
  io.write(string.format("RESULT %d %d %.3f %.2f %.2f\n",
    summary.requests, bad_total, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
EOF

pg_ok=0
if [[ " $DBS " == *" postgres "* ]] && need psql && psql -q "$PG_URL" -c "SELECT 1" >/dev/null 2>&1; then
  pg_ok=1
fi

printf '| database | clients | users/s | p50 ms | p99 ms | answers | non-201 |\n|---|---:|---:|---:|---:|---:|---:|\n'
run=0
for db in $DBS; do
  if [ "$db" = postgres ] && [ "$pg_ok" = 0 ]; then
    echo "skipping PostgreSQL: $PG_URL does not answer" >&2
    continue
  fi
  for c in $CLIENTS; do
    run=$((run + 1))
    dir=$work/$db-$c
    mkdir -p "$dir"
    port=$(free_port)
    case $db in
      sqlite) url="sqlite://$dir/gw.db" ;;
      postgres)
        schema="iamgw_bench_$$_$run"
        psql -q "$PG_URL" -c "CREATE SCHEMA $schema" >/dev/null
        schemas+=("$schema")
        sep='?'; [[ "$PG_URL" == *\?* ]] && sep='&'
        url="${PG_URL}${sep}options=-c%20search_path%3D$schema" ;;
    esac
    env=(IAMGW_LISTEN=127.0.0.1:$port IAMGW_PUBLIC_URL=http://127.0.0.1:$port
      IAMGW_TWILIO__MODE=off IAMGW_DATABASE_URL=$url
      IAMGW_SECRET_KEY_FILE=$dir/secret.key IAMGW_LOG=warn)
    echo "$PASSWORD" | env "${env[@]}" "$BIN" bootstrap --workspace acme \
      --owner-email owner@acme.test --password-stdin >/dev/null
    token=$(env "${env[@]}" "$BIN" scim-token create --workspace acme --description bench)
    env "${env[@]}" "$BIN" serve >"$dir/serve.log" 2>&1 &
    pids+=($!)
    wait_http "http://127.0.0.1:$port/healthz"
    threads=$(( c < 2 ? c : 2 ))
    out=$(wrk -t"$threads" -c"$c" -d"${SECONDS_EACH}s" -s "$work/post.lua" \
      "http://127.0.0.1:$port" -- "$run" "$token")
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
    read -r _ requests bad secs p50 p99 <<<"$(grep '^RESULT' <<<"$out")"
    rate=$(awk -v r="$requests" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
    printf '| %s | %d | %s | %s | %s | %d | %d |\n' "$db" "$c" "$rate" "$p50" "$p99" "$requests" "$bad"
    if [ "$bad" != 0 ]; then
      echo "$db, $c clients: $bad answers were not 201, e.g.:" >&2
      grep '^SAMPLE' <<<"$out" >&2 || true
      echo "log:" >&2
      tail -n 5 "$dir/serve.log" >&2
      exit 1
    fi
  done
done
