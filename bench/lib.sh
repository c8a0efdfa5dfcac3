# Helpers the bench/ scripts share (sourced, not run).

need() { command -v "$1" >/dev/null 2>&1; }

# bench_setup: a temporary directory $work, and on exit: every process in
# $pids stopped (SIGTERM; SIGKILL after 10 s), every PostgreSQL schema in
# $schemas dropped (in $PG_URL), cleanup_more run when the script defines
# it, and $work removed.
bench_setup() {
  work=$(mktemp -d)
  pids=()
  schemas=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local p s
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
      echo "pid $p did not stop on SIGTERM; killing it" >&2
      kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  for s in "${schemas[@]}"; do psql -q "$PG_URL" -c "DROP SCHEMA $s CASCADE" >/dev/null 2>&1 || true; done
  if declare -F cleanup_more >/dev/null; then cleanup_more; fi
  rm -rf "$work"
}

# The binary to measure: $BENCH_BIN when set (an earlier build, say), else
# the release build, built here.
release_bin() {
  if [ -n "${BENCH_BIN:-}" ]; then
    echo "$BENCH_BIN"
    return
  fi
  echo "building the release binary" >&2
  cargo build --release --locked --bin iam-gateway >&2
  echo "${CARGO_TARGET_DIR:-target}/release/iam-gateway"
}

# The commit measured, with "+local changes" when the gateway's sources
# (or the further paths given) differ from it.
bench_commit() {
  local commit
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD -- src migrations Cargo.toml Cargo.lock "$@" 2>/dev/null || commit="$commit+local changes"
  echo "$commit"
}

# Runs the script's run_one for the baseline ($BEFORE, when set) and then
# for $AFTER, each as "run_one <label> <binary>", their lines into
# $results ($work/results).
run_before_after() { # [rounds, default 1: the two alternate that many times]
  results=$work/results
  : >"$results"
  for _ in $(seq 1 "${1:-1}"); do
    if [ -n "${BEFORE:-}" ]; then run_one before "$BEFORE" >>"$results"; fi
    run_one after "$AFTER" >>"$results"
  done
}

# The median of the numbers given (of an even count, the lower middle one).
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# A port nothing listens on, below Linux's ephemeral range (32768 and up,
# where a client connection of an earlier run can still hold a port and make
# a server's bind fail).
free_port() {
  local p
  while :; do
    p=$((10000 + RANDOM % 22000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    if need ss && [ -n "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then continue; fi
    echo "$p"
    return
  done
}

wait_http() { # url
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2; exit 1
}

# Milliseconds from wrk's "402.00us" / "1.20ms" / "1.02s".
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
    printf "%.2f", n }'
}

# wrk --latency output on stdin -> "req/s p50_ms p99_ms non-2xx/3xx"
wrk_summary() {
  local out rps p50 p99 errs
  out=$(cat)
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") ${errs:-0}"
}

# sign_in: signs EMAIL in with PASSWORD at the gateway at $base (curl, a
# cookie jar under $work) -> sets cookie (iamgw_session=...), csrf_cookie
# and csrf, after checking that the session verifies for workspace acme.
sign_in() {
  local jar=$work/jar.$RANDOM page code
  page=$(curl -sf -c "$jar" "$base/login")
  csrf=$(sed -n 's/.*<meta name="csrf-token" content="\([^"]*\)".*/\1/p' <<<"$page" | head -n1)
  curl -sf -b "$jar" -c "$jar" -o /dev/null --data-urlencode "email=$EMAIL" \
    --data-urlencode "csrf_token=$csrf" "$base/login"
  code=$(curl -s -b "$jar" -c "$jar" -o /dev/null -w '%{http_code}' \
    --data-urlencode "email=$EMAIL" --data-urlencode "password=$PASSWORD" \
    --data-urlencode "csrf_token=$csrf" "$base/login/password")
  [ "$code" = 303 ] || { echo "sign-in answered $code" >&2; exit 1; }
  cookie="iamgw_session=$(awk '$6 == "iamgw_session" {print $7}' "$jar")"
  csrf_cookie="iamgw_csrf=$(awk '$6 == "iamgw_csrf" {print $7}' "$jar")"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$base/auth/verify?workspace=acme")" = 200 ] \
    || { echo "the session does not verify" >&2; exit 1; }
}
