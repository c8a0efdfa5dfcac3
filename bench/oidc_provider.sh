#!/usr/bin/env bash
# OpenID Provider benchmark (issue 15; local only, never run in CI):
#
#   * the token endpoint: authorization-code exchanges per second
#     (`POST /oauth2/token`, grant_type=authorization_code with PKCE and
#     HTTP Basic client authentication, each code used once);
#   * `GET /oauth2/userinfo` with a Bearer access token;
#
# each against the same process's `GET /healthz`, measured in the same round
# with the same wrk connections and duration.
#
# Builds the release binary, installs wrk if missing (scripts/install-deps
# bench), runs the gateway on a free 127.0.0.1 port with a temporary SQLite
# database, bootstraps an owner with a password, mints an API token with the
# CLI, registers a confidential client through the API, signs in with curl,
# measures with wrk and stops everything it started. Codes are single-use
# and live 60 s, so before each token measurement the script mints a batch
# with curl (`GET /oauth2/authorize` with the session cookie, one PKCE
# verifier, every code taken from the 302's Location); wrk then posts each
# code once. A thread that runs out of codes stops, and exchanges/s is the
# number of 200 answers over the time to the last one (not wrk's own
# requests/s, which divides by the whole duration). Every answer must be
# 200 (the script fails otherwise). Results: docs/benchmarks.md.
#
# Each round (BENCH_ROUNDS, default 3): mint codes, healthz, token, healthz,
# userinfo; each ratio is against the healthz measured just before it, and
# the median ratio over the rounds is the result. gw_cores is the CPU the
# gateway process used during the measurement (from /proc), in cores.
#
# Environment: BENCH_SECONDS (per measurement, default 5), BENCH_CONNECTIONS
# (default 32), BENCH_ROUNDS (default 3), BENCH_CODES (codes minted per token
# measurement, default 5000), BENCH_SCOPE (default "openid email profile";
# with offline_access every exchange also issues a refresh token),
# CARGO_TARGET_DIR, BENCH_PERF (a directory: profile the gateway with
# `perf record` during round 1's token and userinfo measurements and write
# `perf report` there as token.txt and userinfo.txt, by symbol and by
# thread).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

SECONDS_EACH=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-32}
CODES=${BENCH_CODES:-5000}
SCOPE=${BENCH_SCOPE:-openid email profile}
THREADS=2
PASSWORD='benchmark passphrase, long enough'
EMAIL=bench@acme.test
REDIRECT=http://127.0.0.1:9/callback
target_dir=${CARGO_TARGET_DIR:-target}

if [ $((CONNS % THREADS)) != 0 ] || [ "$CONNS" -lt "$THREADS" ]; then
  echo "BENCH_CONNECTIONS must be a positive multiple of $THREADS" >&2; exit 2
fi
if [ "$CODES" -lt $((2 * CONNS + 2)) ]; then
  echo "BENCH_CODES must be at least $((2 * CONNS + 2))" >&2; exit 2
fi

scripts/install-deps bench >&2
for t in curl wrk sha256sum base64; do need "$t" || { echo "missing: $t" >&2; exit 1; }; done

echo "building the release binary" >&2
cargo build --release --locked --bin iam-gateway >&2
BIN=$target_dir/release/iam-gateway

bench_setup

# wrk [extra args...] URL -> "req/s p50_ms p99_ms non-2xx/3xx"
measure() { wrk -t "$THREADS" -c "$CONNS" -d "${SECONDS_EACH}s" --latency "$@" | wrk_summary; }

warm() { wrk -t "$THREADS" -c "$CONNS" -d 2s "$@" >/dev/null; }

urlenc() { # string -> application/x-www-form-urlencoded (enough for ours)
  local s=$1 out= c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in [A-Za-z0-9._~-]) out+=$c ;; *) out+=$(printf '%%%02X' "'$c") ;; esac
  done
  printf '%s' "$out"
}

# PKCE (S256): one fixed verifier for every code; coreutils only.
VERIFIER=bench-pkce-verifier-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ
CHALLENGE=$(printf '%b' "$(printf '%s' "$VERIFIER" | sha256sum | cut -c1-64 | sed 's/../\\x&/g')" \
  | base64 -w0 | tr '+/' '-_' | tr -d '=')

port=$(free_port)
base=http://127.0.0.1:$port
env=(IAMGW_LISTEN=127.0.0.1:$port IAMGW_PUBLIC_URL=$base IAMGW_TWILIO__MODE=off
  IAMGW_DATABASE_URL=sqlite://$work/gw.db IAMGW_SECRET_KEY_FILE=$work/secret.key
  IAMGW_SESSION__STORE=database IAMGW_LOG=warn)
echo "$PASSWORD" | env "${env[@]}" "$BIN" bootstrap --workspace acme \
  --owner-email "$EMAIL" --password-stdin >/dev/null
api_token=$(env "${env[@]}" "$BIN" token create --workspace acme --role workspace_owner \
  --description "oidc benchmark")
env "${env[@]}" "$BIN" serve >"$work/serve.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
wait_http "$base/healthz"

# A confidential client, registered through the API.
client=$(curl -s -w '\n%{http_code}' -H "Authorization: Bearer $api_token" \
  -H 'Content-Type: application/json' \
  --data "{\"name\": \"Benchmark\", \"redirect_uris\": [\"$REDIRECT\"]}" \
  "$base/api/v1/workspaces/acme/oidc-clients")
[ "$(tail -n1 <<<"$client")" = 201 ] || { echo "registering the client answered: $client" >&2; exit 1; }
client_id=$(sed -n 's/.*"client_id" *: *"\([^"]*\)".*/\1/p' <<<"$client" | head -n1)
client_secret=$(sed -n 's/.*"client_secret" *: *"\([^"]*\)".*/\1/p' <<<"$client" | head -n1)
[ -n "$client_id" ] && [ -n "$client_secret" ] || { echo "no client_id/client_secret in: $client" >&2; exit 1; }
basic=$(printf '%s:%s' "$(urlenc "$client_id")" "$(urlenc "$client_secret")" | base64 -w0)

# Sign in with the password: cookie=iamgw_session=...
sign_in

authorize_url="$base/oauth2/authorize?response_type=code&client_id=$(urlenc "$client_id")"
authorize_url+="&redirect_uri=$(urlenc "$REDIRECT")&scope=$(urlenc "$SCOPE")&state=bench"
authorize_url+="&nonce=bench-nonce&code_challenge=$CHALLENGE&code_challenge_method=S256"

# mint_codes N FILE: N fresh codes, one a line (8 transfers at a time, one
# curl process); fails unless every answer is a 302 to the app with a code.
mint_codes() {
  local n=$1 file=$2 cfg=$work/mint.curl i got
  : >"$cfg"
  for ((i = 0; i < n; i++)); do
    printf 'url = "%s"\noutput = "/dev/null"\n' "$authorize_url" >>"$cfg"
  done
  curl -s --parallel --parallel-max 8 -H "Cookie: $cookie" -w '%{http_code} %{redirect_url}\n' \
    -K "$cfg" >"$work/mint.out" 2>"$work/mint.err"
  sed -n "s|^302 ${REDIRECT}?\(.*&\)\{0,1\}code=\([^&]*\).*|\2|p" "$work/mint.out" >"$file"
  got=$(wc -l <"$file")
  if [ "$got" != "$n" ]; then
    echo "minting codes: $got of $n answers carried a code; e.g.:" >&2
    grep -v "^302 ${REDIRECT}?" "$work/mint.out" | head -n 3 >&2 || true
    echo "gateway log:" >&2
    tail -n 5 "$work/serve.log" >&2
    exit 1
  fi
}

# exchange CODE -> the token endpoint's JSON answer (fails unless 200)
exchange() {
  local out
  out=$(curl -s -w '\n%{http_code}' -H "Authorization: Basic $basic" \
    --data "grant_type=authorization_code&code=$1&redirect_uri=$(urlenc "$REDIRECT")&code_verifier=$VERIFIER" \
    "$base/oauth2/token")
  [ "$(tail -n1 <<<"$out")" = 200 ] || { echo "the token endpoint answered: $out" >&2; exit 1; }
  head -n -1 <<<"$out"
}

# The token measurement: each thread takes every THREADS-th code of the
# file, posts each once, and stops when its codes run out; done() prints
# "RESULT <200s> <others> <seconds to the last answer> <p50 ms> <p99 ms>
# <threads that ran out>".
cat >"$work/token.lua" <<'LUA'
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_s()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}
function setup(thread)
  t0 = t0 or now_s()
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  -- args: codes file, threads, connections per thread, form tail, Basic credentials
  codes = {}
  local nthreads, i = tonumber(args[2]), 0
  for line in io.lines(args[1]) do
    if i % nthreads == id - 1 then codes[#codes + 1] = line end
    i = i + 1
  end
  tail = args[4]
  hdrs = {
    ["Authorization"] = "Basic " .. args[5],
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
  -- Every connection has one request in flight, and wrk calls request()
  -- once more before the run to check it: stopping after this many answers
  -- never leaves a connection without a code.
  budget = #codes - tonumber(args[3]) - 1
  used, ok, bad, last, ran_out = 0, 0, 0, 0, 0
end

function request()
  used = used + 1
  local code = codes[used]
  if code == nil then -- cannot happen with the budget above
    ran_out = 1
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  return wrk.format("POST", "/oauth2/token", hdrs,
    "grant_type=authorization_code&code=" .. code .. tail)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"id_token"', 1, true) then
    ok = ok + 1
  else
    bad = bad + 1
    sample = sample or (status .. " " .. string.sub(body, 1, 200))
  end
  last = now_s()
  if ok + bad >= budget then
    ran_out = 1
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local ok_all, bad_all, last_all, out_all = 0, 0, t0, 0
  for _, t in ipairs(threads) do
    ok_all = ok_all + t:get("ok")
    bad_all = bad_all + t:get("bad")
    out_all = out_all + t:get("ran_out")
    if t:get("last") > last_all then last_all = t:get("last") end
    if t:get("sample") then io.write("SAMPLE " .. t:get("sample") .. "\n") end
  end
  io.write(string.format("RESULT %d %d %.3f %.2f %.2f %d\n", ok_all, bad_all,
    last_all - t0, latency:percentile(50) / 1000, latency:percentile(99) / 1000, out_all))
end
LUA

# measure_token CODES_FILE -> "exchanges/s p50_ms p99_ms exchanges
# threads_that_ran_out seconds"
measure_token() {
  local out ok bad secs p50 p99 out_threads
  out=$(wrk -t "$THREADS" -c "$CONNS" -d "${SECONDS_EACH}s" -s "$work/token.lua" "$base" -- \
    "$1" "$THREADS" "$((CONNS / THREADS))" \
    "&redirect_uri=$(urlenc "$REDIRECT")&code_verifier=$VERIFIER" "$basic")
  read -r _ ok bad secs p50 p99 out_threads <<<"$(grep '^RESULT' <<<"$out")"
  if [ "${bad:-1}" != 0 ] || [ "${ok:-0}" = 0 ]; then
    echo "token endpoint: ${bad:-?} answers were not 200 (${ok:-0} were), e.g.:" >&2
    grep '^SAMPLE' <<<"$out" >&2 || true
    tail -n 5 "$work/serve.log" >&2
    exit 1
  fi
  echo "$(awk -v n="$ok" -v s="$secs" 'BEGIN {printf "%.1f", n / s}') $p50 $p99 $ok $out_threads $secs"
}

# The gateway's CPU time so far, in clock ticks; cores A B SECONDS -> the
# cores it used in between.
ticks() { awk '{print $14 + $15}' "/proc/$gw_pid/stat"; }
cores() { awk -v a="$1" -v b="$2" -v s="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b - a) / hz / s}'; }

# perf_start / perf_stop NAME: profile the gateway (BENCH_PERF, round 1).
perf_pid=
perf_start() {
  [ -n "${BENCH_PERF:-}" ] && [ "$round" = 1 ] || return 0
  mkdir -p "$BENCH_PERF"
  perf record -q -F 499 -g -p "$gw_pid" -o "$work/perf.data" -- sleep "$SECONDS_EACH" 2>/dev/null &
  perf_pid=$!
}
perf_stop() {
  [ -n "$perf_pid" ] || return 0
  wait "$perf_pid" || true
  perf_pid=
  perf report -i "$work/perf.data" --no-children --percent-limit 0.7 --stdio -g none \
    --sort dso,symbol >"$BENCH_PERF/$1.txt" 2>/dev/null || true
  perf report -i "$work/perf.data" --no-children --stdio -g none --sort comm \
    >>"$BENCH_PERF/$1.txt" 2>/dev/null || true
}

# Sanity: one exchange by hand, and its access token answers userinfo.
mint_codes 1 "$work/one.codes"
tokens=$(exchange "$(cat "$work/one.codes")")
access=$(sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p' <<<"$tokens")
[ -n "$access" ] || { echo "no access_token in: $tokens" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $access" "$base/oauth2/userinfo")" = 200 ] \
  || { echo "userinfo does not answer 200 for a fresh access token" >&2; exit 1; }

commit=$(bench_commit)
echo "# OpenID Provider benchmark, $(date -u +%Y-%m-%dT%H:%MZ), commit $commit"
echo "# $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), wrk $THREADS threads $CONNS connections, ${SECONDS_EACH}s each, SQLite, database sessions, scope \"$SCOPE\""
printf '%-5s %-16s %10s %9s %9s %7s %8s %s\n' round endpoint req/s p50_ms p99_ms ratio gw_cores notes
t_ratios=()
u_ratios=()
for round in $(seq 1 "$ROUNDS"); do
  # Token endpoint: fresh codes, then healthz and the exchanges back to back.
  start=$(date +%s.%N)
  mint_codes "$CODES" "$work/round.codes"
  mint_rate=$(awk -v n="$CODES" -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", n / (b - a)}')
  warm "$base/healthz"
  c0=$(ticks)
  read -r h_rps h50 h99 herr < <(measure "$base/healthz")
  h_cores=$(cores "$c0" "$(ticks)" "$SECONDS_EACH")
  [ "$herr" = 0 ] || { echo "healthz: $herr answers were not 2xx" >&2; exit 1; }
  perf_start
  c0=$(ticks)
  res=$(measure_token "$work/round.codes")
  c1=$(ticks)
  perf_stop token
  read -r t_rps t50 t99 t_n t_out t_secs <<<"$res"
  t_cores=$(cores "$c0" "$c1" "$t_secs")
  ratio=$(awk -v a="$t_rps" -v b="$h_rps" 'BEGIN {printf "%.3f", a / b}')
  t_ratios+=("$ratio")
  note="$t_n exchanges"
  [ "$t_out" = 0 ] || note+=", codes ran out in $t_out of $THREADS threads (rate over the time they lasted)"
  printf '%-5s %-16s %10.0f %9s %9s %7s %8s\n' "$round" /healthz "$h_rps" "$h50" "$h99" - "$h_cores"
  printf '%-5s %-16s %10.0f %9s %9s %7s %8s %s\n' "$round" "/oauth2/token" "$t_rps" "$t50" "$t99" "$ratio" \
    "$t_cores" "$note; codes minted at $mint_rate/s"

  # Userinfo: a fresh access token (they live 10 minutes), healthz, userinfo.
  mint_codes 1 "$work/one.codes"
  tokens=$(exchange "$(cat "$work/one.codes")")
  access=$(sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p' <<<"$tokens")
  warm "$base/healthz"
  c0=$(ticks)
  read -r h_rps h50 h99 herr < <(measure "$base/healthz")
  h_cores=$(cores "$c0" "$(ticks)" "$SECONDS_EACH")
  [ "$herr" = 0 ] || { echo "healthz: $herr answers were not 2xx" >&2; exit 1; }
  warm -H "Authorization: Bearer $access" "$base/oauth2/userinfo"
  perf_start
  c0=$(ticks)
  read -r u_rps u50 u99 uerr < <(measure -H "Authorization: Bearer $access" "$base/oauth2/userinfo")
  u_cores=$(cores "$c0" "$(ticks)" "$SECONDS_EACH")
  perf_stop userinfo
  [ "$uerr" = 0 ] || { echo "userinfo: $uerr answers were not 2xx" >&2; tail -n 5 "$work/serve.log" >&2; exit 1; }
  ratio=$(awk -v a="$u_rps" -v b="$h_rps" 'BEGIN {printf "%.3f", a / b}')
  u_ratios+=("$ratio")
  printf '%-5s %-16s %10.0f %9s %9s %7s %8s\n' "$round" /healthz "$h_rps" "$h50" "$h99" - "$h_cores"
  printf '%-5s %-16s %10.0f %9s %9s %7s %8s\n' "$round" /oauth2/userinfo "$u_rps" "$u50" "$u99" "$ratio" "$u_cores"
done
echo "# token endpoint (code exchange): ratio to healthz $(median "${t_ratios[@]}") (median of ${t_ratios[*]})"
echo "# userinfo: ratio to healthz $(median "${u_ratios[@]}") (median of ${u_ratios[*]})"
echo "# every answer measured was 200"
