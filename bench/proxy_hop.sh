#!/usr/bin/env bash
# The proxy hop (issue 16; local only, never in CI): a protected page
# through nginx `auth_request` and the gateway, against nginx serving the
# same page alone, with the gateway reached over loopback TCP and over a
# Unix socket (listen = "unix:...").
#
#   bench/proxy_hop.sh
#
# Builds the release binary, starts one gateway on a free 127.0.0.1 port
# and a second on a Unix socket, both on the same temporary SQLite database
# (so one sign-in's cookie holds on both), and one Debian nginx with four
# servers: the page alone (a static file); `auth_request` to each gateway
# in front of that page; and the deployment template
# (deploy/nginx/templates/iam-gateway.conf.template) over the Unix socket,
# which reaches the page through a second proxy hop as it would an app.
# A fifth, the ceiling, is `auth_request` to a "gateway that costs
# nothing": nginx itself, on a Unix socket, answering every check with a
# fixed 200 that carries the same headers the gateway's answer does (read
# from the gateway once). No forward-auth backend can do better than that
# through nginx, so its ratio bounds what any gateway can reach here.
# Then, in rounds (BENCH_ROUNDS, default 3), wrk
# (2 threads, BENCH_CONNECTIONS, default 64) measures each for
# BENCH_SECONDS (default 8); the median ratio to the page alone counts.
# With BENCH_ONE_CORE=1, nginx (one worker) and both gateways are pinned to
# CPU 0 and wrk to CPU 1. Targets (issue 16): >= 0.5 x nginx alone; p99
# <= 2 ms with nginx and the gateway on one core.
#
# Environment: BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS,
# BENCH_ONE_CORE, BENCH_PERF (a directory: `perf record` the Unix-socket
# gateway during its first measurement, report in gateway.txt),
# CARGO_TARGET_DIR. Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

SECONDS_EACH=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
ONE_CORE=${BENCH_ONE_CORE:-0}
PASSWORD='benchmark passphrase, long enough'
EMAIL=bench@acme.test
target_dir=${CARGO_TARGET_DIR:-target}

scripts/install-deps bench >&2
for t in curl wrk nginx envsubst; do
  need "$t" || [ -x "/usr/sbin/$t" ] || { echo "missing: $t" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
pin=()
wrk_pin=()
if [ "$ONE_CORE" = 1 ]; then
  need taskset || { echo "missing: taskset" >&2; exit 1; }
  pin=(taskset -c 0)
  wrk_pin=(taskset -c 1)
fi

echo "building the release binary" >&2
cargo build --release --locked --bin iam-gateway >&2
BIN=$target_dir/release/iam-gateway

bench_setup
chmod 755 "$work"

port=$(free_port)
base=http://127.0.0.1:$port
sock=$work/gw.sock
env=(IAMGW_PUBLIC_URL=$base IAMGW_TWILIO__MODE=off IAMGW_LOG=warn
  IAMGW_DATABASE_URL=sqlite://$work/gw.db IAMGW_SECRET_KEY_FILE=$work/secret.key
  IAMGW_TRUSTED_PROXIES='["127.0.0.1/32"]')
echo "$PASSWORD" | env "${env[@]}" "$BIN" bootstrap --workspace acme \
  --owner-email "$EMAIL" --password-stdin >/dev/null
env "${env[@]}" IAMGW_LISTEN="127.0.0.1:$port" "${pin[@]}" "$BIN" serve >"$work/tcp.log" 2>&1 &
pids+=($!)
env "${env[@]}" IAMGW_LISTEN="unix:$sock" "${pin[@]}" "$BIN" serve >"$work/unix.log" 2>&1 &
unix_pid=$!
pids+=($!)
( wait_http "$base/healthz" ) || { cat "$work/tcp.log" >&2; exit 1; }
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "the gateway on $sock did not start:" >&2; cat "$work/unix.log" >&2; exit 1; }
sign_in

# The page, and nginx: the page alone, and the template guarding it per gateway.
mkdir -p "$work/www" "$work/tmp"
head -c 2048 /dev/zero | tr '\0' 'x' >"$work/www/index.html"
page_port=$(free_port) tcp_port=$(free_port) unix_port=$(free_port) tpl_port=$(free_port) ceil_port=$(free_port)
# guarded LISTEN GATEWAY: auth_request in front of the page itself, as
# nginx serves it alone (the hop to the gateway is the only difference).
guarded() {
  cat <<NGINX
  upstream gw_$1 { server $2; keepalive 64; }
  server {
    listen 127.0.0.1:$1;
    location = /_auth {
      internal;
      proxy_pass http://gw_$1/auth/verify?workspace=acme;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location / { auth_request /_auth; root $work/www; }
  }
NGINX
}
render() { # listen gateway
  IAMGW_NGINX_LISTEN="127.0.0.1:$1" IAMGW_GATEWAY_UPSTREAM=$2 \
    IAMGW_APP_UPSTREAM="127.0.0.1:$page_port" IAMGW_WORKSPACE=acme \
    envsubst '${IAMGW_NGINX_LISTEN} ${IAMGW_GATEWAY_UPSTREAM} ${IAMGW_APP_UPSTREAM} ${IAMGW_WORKSPACE}' \
    <deploy/nginx/templates/iam-gateway.conf.template |
    sed 's/upstream iamgw_gateway/upstream iamgw_gateway_'"$1"'/; s/upstream iamgw_app/upstream iamgw_app_'"$1"'/;
         s#http://iamgw_gateway#http://iamgw_gateway_'"$1"'#g; s#http://iamgw_app#http://iamgw_app_'"$1"'#g'
}
workers=auto
[ "$ONE_CORE" = 1 ] && workers=1
{
  echo "user root; worker_processes $workers;"
  echo "events { worker_connections 4096; }"
  echo "http {"
  echo "  access_log off;"
  for d in body proxy fastcgi uwsgi scgi; do echo "  ${d}_temp_path $work/tmp/$d;" | sed 's/^  body_/  client_body_/'; done
  echo "  server { listen 127.0.0.1:$page_port; location / { root $work/www; } }"
  guarded "$tcp_port" "127.0.0.1:$port"
  guarded "$unix_port" "unix:$sock"
  render "$tpl_port" "unix:$sock"
  echo "  server { listen unix:$work/ceiling.sock; location / {"
  # The gateway's own allowed answer, header for header.
  curl -sf -D - -o /dev/null -H "Cookie: $cookie" --unix-socket "$sock" "http://gw/auth/verify?workspace=acme" |
    tr -d '\r' | awk -F': ' 'tolower($1) ~ /^x-auth-/ {printf "    add_header %s \"%s\";\n", $1, $2}'
  echo "    return 200; } }"
  guarded "$ceil_port" "unix:$work/ceiling.sock"
  echo "}"
} >"$work/nginx.conf"
"${pin[@]}" "$NGINX" -t -p "$work" -c "$work/nginx.conf" -e "$work/nginx.err" -g "daemon off; pid $work/nginx.pid;" 2>/dev/null || { cat -n "$work/nginx.conf" >&2; exit 1; }
"${pin[@]}" "$NGINX" -p "$work" -c "$work/nginx.conf" -e "$work/nginx.err" -g "daemon off; pid $work/nginx.pid;" &
pids+=($!)
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$page_port/" && break; sleep 0.1; done
for p in $tcp_port $unix_port $tpl_port $ceil_port; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "http://127.0.0.1:$p/")
  [ "$code" = 200 ] || { echo "the protected page through :$p answers $code" >&2; cat "$work/nginx.err" >&2; exit 1; }
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/")
  case "$p:$code" in "$tpl_port:302" | *:401 | "$ceil_port:200") ;; *) echo "without a session :$p answers $code" >&2; exit 1 ;; esac
done

measure() { "${wrk_pin[@]}" wrk -t 2 -c "$CONNS" -d "${SECONDS_EACH}s" --latency "$@" | wrk_summary; }
warm() { "${wrk_pin[@]}" wrk -t 2 -c "$CONNS" -d 2s "$@" >/dev/null; }

commit=$(bench_commit deploy)
echo "# proxy hop benchmark, $(date -u +%Y-%m-%dT%H:%MZ), commit $commit, $(nginx -v 2>&1 | sed 's/.*: //')"
echo "# $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), wrk $CONNS connections, ${SECONDS_EACH}s each, one core: $ONE_CORE"
printf '%-6s %-22s %10s %9s %9s %7s %s\n' round path req/s p50_ms p99_ms ratio non-2xx/3xx
tcp_ratios=() unix_ratios=() tpl_ratios=() ceil_ratios=() tcp_p99=() unix_p99=() tpl_p99=() ceil_p99=()
for round in $(seq 1 "$ROUNDS"); do
  warm "http://127.0.0.1:$page_port/"
  read -r a_rps a50 a99 aerr < <(measure "http://127.0.0.1:$page_port/")
  printf '%-6s %-22s %10.0f %9s %9s %7s %s\n' "$round" "nginx alone" "$a_rps" "$a50" "$a99" - "$aerr"
  for kind in tcp unix template ceiling; do
    case $kind in tcp) p=$tcp_port ;; unix) p=$unix_port ;; template) p=$tpl_port ;; ceiling) p=$ceil_port ;; esac
    warm -H "Cookie: $cookie" "http://127.0.0.1:$p/"
    if [ -n "${BENCH_PERF:-}" ] && [ "$round" = 1 ] && [ "$kind" = unix ]; then
      mkdir -p "$BENCH_PERF"
      perf record -q -F 499 -g -p "$unix_pid" -o "$BENCH_PERF/gateway.data" -- sleep "$SECONDS_EACH" 2>/dev/null &
    fi
    read -r rps r50 r99 rerr < <(measure -H "Cookie: $cookie" "http://127.0.0.1:$p/")
    if [ -n "${BENCH_PERF:-}" ] && [ "$round" = 1 ] && [ "$kind" = unix ]; then
      wait $! 2>/dev/null || true
      perf report -i "$BENCH_PERF/gateway.data" --no-children --percent-limit 0.7 --stdio -g none \
        --sort dso,symbol >"$BENCH_PERF/gateway.txt" 2>/dev/null || true
    fi
    ratio=$(awk -v a="$rps" -v b="$a_rps" 'BEGIN {printf "%.2f", a / b}')
    printf '%-6s %-22s %10.0f %9s %9s %7s %s\n' "$round" "guarded, $kind" "$rps" "$r50" "$r99" "$ratio" "$rerr"
    case $kind in
      tcp) tcp_ratios+=("$ratio") tcp_p99+=("$r99") ;;
      unix) unix_ratios+=("$ratio") unix_p99+=("$r99") ;;
      template) tpl_ratios+=("$ratio") tpl_p99+=("$r99") ;;
      ceiling) ceil_ratios+=("$ratio") ceil_p99+=("$r99") ;;
    esac
  done
done
report() { # label ratios... -- p99s...
  local label=$1 r q met
  shift
  local -a ratios=() p99s=()
  while [ "$1" != -- ]; do ratios+=("$1"); shift; done
  shift
  p99s=("$@")
  r=$(median "${ratios[@]}") q=$(median "${p99s[@]}")
  met=$(awk -v r="$r" 'BEGIN {print (r >= 0.5) ? "met" : "MISSED"}')
  echo "# $label: ratio to nginx alone $r (median), target >= 0.5: $met; p99 $q ms (median)"
}
report "auth_request over loopback TCP" "${tcp_ratios[@]}" -- "${tcp_p99[@]}"
report "auth_request over the Unix socket" "${unix_ratios[@]}" -- "${unix_p99[@]}"
report "the deployment template (Unix socket; the page behind a second proxy hop, as an app)" "${tpl_ratios[@]}" -- "${tpl_p99[@]}"
report "the ceiling (nginx answering the check itself, Unix socket: a gateway that costs nothing)" "${ceil_ratios[@]}" -- "${ceil_p99[@]}"
