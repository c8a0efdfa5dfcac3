#!/usr/bin/env bash
# Member list and members CSV at scale (issue 16; local only, never in CI).
#
#   bench/members.sh
#
# Builds the release binary, seeds a temporary SQLite database (with
# BENCH_DB=postgres: a fresh schema in BENCH_PG_URL, default the local
# server's `test` database, analysed after seeding) with one
# workspace of BENCH_MEMBERS (default 100 000) members, 300 open
# invitations, two groups (20 members and half the workspace) and a rare
# role (40 members), then times with curl, on the same process:
#   * GET .../members?limit=100: the first page, a page 90 % of the way
#     down (a cursor built from the seeded emails), an email filter with one
#     match, with none and with every member, the rare role, the small and
#     the large group;
#     BENCH_REPEAT (default 20) requests each, median and worst (the
#     target, <= 10 ms, is on the median);
#   * GET /w/acme/access?tab=users and ?tab=groups (the Access page) and
#     the large group's page, signed in as the owner through the login
#     form: BENCH_REPEAT requests each, median and worst (no target of the
#     issue's; reported);
#   * GET .../members.csv: the whole download (3 times), with the gateway's
#     own memory (RssAnon from /proc: not the SQLite file pages it maps)
#     before, at most during (sampled every 50 ms) and after each. Freed
#     memory stays with the process for a while (mimalloc's purge delay);
#     MIMALLOC_PURGE_DELAY=0 in the environment shows the working set.
# With BENCH_BASELINE=<git rev> (or BENCH_BASELINE_BIN=<binary>) it does
# the same with that build first, on its own database seeded the same way,
# and prints each "after / before" time ratio.
#
# Environment: BENCH_MEMBERS, BENCH_REPEAT, BENCH_DB, BENCH_PG_URL, BENCH_BASELINE,
# BENCH_BASELINE_BIN, CARGO_TARGET_DIR. Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

MEMBERS=${BENCH_MEMBERS:-100000}
DB=${BENCH_DB:-sqlite}
PG_URL=${BENCH_PG_URL:-postgres://root@127.0.0.1:5432/test}
REPEAT=${BENCH_REPEAT:-20}
target_dir=${CARGO_TARGET_DIR:-target}

case $DB in sqlite) ;; postgres) need psql || { echo "missing: psql" >&2; exit 1; } ;;
  *) echo "BENCH_DB must be sqlite or postgres" >&2; exit 2 ;; esac
for t in curl python3; do need "$t" || { echo "missing: $t" >&2; exit 1; }; done

bench_setup
cleanup_more() {
  [ -d "$work/baseline-src" ] && git worktree remove --force "$work/baseline-src" 2>/dev/null
  return 0
}

echo "building the release binary" >&2
cargo build --release --locked --bin iam-gateway >&2
AFTER=$target_dir/release/iam-gateway
BEFORE=${BENCH_BASELINE_BIN:-}
if [ -z "$BEFORE" ] && [ -n "${BENCH_BASELINE:-}" ]; then
  echo "building the baseline $BENCH_BASELINE" >&2
  git worktree add -q --detach "$work/baseline-src" "$BENCH_BASELINE"
  (cd "$work/baseline-src" && CARGO_TARGET_DIR=$PWD/../baseline-target \
    cargo build --release --locked --bin iam-gateway >&2)
  BEFORE=$work/baseline-target/release/iam-gateway
fi

# seed TARGET: MEMBERS users in workspace acme (created by bootstrap), in an
# order unrelated to their emails; prints "small_group large_group
# deep_email one_email". TARGET is the SQLite file, or for PostgreSQL a
# file to write a psql script of COPY blocks to, with WS_ID and
# MEMBERSHIP_COLUMNS (comma-separated) set.
seed() {
  python3 - "$1" "$MEMBERS" "$DB" "${WS_ID:-}" "${MEMBERSHIP_COLUMNS:-}" <<'PY'
import hashlib, json, sqlite3, sys, uuid
target, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "sqlite":
    c = sqlite3.connect(target)
    ws = c.execute("SELECT id FROM workspaces WHERE slug = 'acme'").fetchone()[0]
    cols = [r[1] for r in c.execute("PRAGMA table_info(memberships)")]
    def insert(table, columns, rows):
        marks = ", ".join("?" for _ in columns)
        c.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(columns), marks), rows)
else:
    ws, cols = sys.argv[4], sys.argv[5].split(",")
    out = open(target, "w")
    def insert(table, columns, rows):
        out.write("COPY %s (%s) FROM STDIN;\n" % (table, ", ".join(columns)))
        for r in rows:
            out.write("\t".join("\\N" if v is None else str(v) for v in r) + "\n")
        out.write("\\.\n")
# Policies as the gateway writes them (no spaces): a role filter looks
# for `"role":"id"`.
def compact(v): return json.dumps(v, separators=(",", ":"))
member = compact([{"role": "workspace_member"}])
rare = compact([{"role": "workspace_member"}, {"role": "billing_admin"}])
now = 1_780_000_000
users, members, emails = [], [], []
for i in range(n):
    uid = str(uuid.UUID(bytes=hashlib.md5(b"u%d" % i).digest()))
    email = "%s.%d@bench.test" % (hashlib.sha1(b"%d" % i).hexdigest()[:8], i)
    emails.append(email)
    users.append((uid, email, email, "Member %d" % i, now))
    members.append((ws, uid, rare if i % (n // 40) == 7 else member, now, email))
insert("users", ["id", "email", "email_norm", "name", "created_at"], users)
if "sort_email" in cols:
    insert("memberships", ["workspace_id", "user_id", "policies", "created_at", "sort_email"], members)
else:
    insert("memberships", ["workspace_id", "user_id", "policies", "created_at"], [m[:4] for m in members])
groups = []
for name, every in (("Small", n // 20), ("Large", 2)):
    gid = str(uuid.uuid4())
    groups.append(gid)
    insert("user_groups", ["id", "workspace_id", "name", "policies", "created_at"],
           [(gid, ws, name, member, now)])
    insert("group_members", ["group_id", "user_id", "workspace_id"],
           [(gid, users[i][0], ws) for i in range(0, n, every)])
invites = []
for i in range(300):
    email = "%s.invited%d@bench.test" % (hashlib.sha1(b"i%d" % i).hexdigest()[:8], i)
    invites.append((str(uuid.uuid4()), ws, email, email, hashlib.sha256(email.encode()).hexdigest(),
                    member, json.dumps([groups[0]]), now, now + 10**9))
insert("invitations", ["id", "workspace_id", "email", "email_norm", "token_hash", "policies", "group_ids",
                       "created_at", "expires_at"], invites)
if kind == "sqlite":
    c.commit()
else:
    out.write("VACUUM ANALYZE;\n")
    out.close()
ordered = sorted(emails)
print(groups[0], groups[1], ordered[len(ordered) * 9 // 10], emails[n // 3])
PY
}

run_one() {
  local label=$1 bin=$2 dir port base token gw
  dir=$work/$label
  mkdir -p "$dir"
  port=$(free_port)
  base=http://127.0.0.1:$port
  local url=sqlite://$dir/gw.db
  if [ "$DB" = postgres ]; then
    local schema="iamgw_bench_$$_$label" sep='?'
    psql -q "$PG_URL" -c "CREATE SCHEMA $schema" >/dev/null
    schemas+=("$schema")
    [[ "$PG_URL" == *\?* ]] && sep='&'
    url="${PG_URL}${sep}options=-c%20search_path%3D$schema"
  fi
  local env=(IAMGW_LISTEN=127.0.0.1:$port IAMGW_PUBLIC_URL=$base IAMGW_TWILIO__MODE=off
    IAMGW_DATABASE_URL=$url IAMGW_SECRET_KEY_FILE=$dir/secret.key IAMGW_LOG=warn)
  echo 'benchmark passphrase, long enough' | env "${env[@]}" "$bin" bootstrap --workspace acme \
    --owner-email owner@acme.test --password-stdin >/dev/null
  echo "seeding $MEMBERS members ($label, $DB)" >&2
  if [ "$DB" = postgres ]; then
    read -r small large deep one < <(WS_ID=$(psql -Atq "$url" -c "SELECT id FROM workspaces WHERE slug = 'acme'") \
      MEMBERSHIP_COLUMNS=$(psql -Atq "$url" -c "SELECT string_agg(column_name, ',') FROM information_schema.columns \
        WHERE table_schema = current_schema() AND table_name = 'memberships'") seed "$dir/seed.sql")
    psql -q -v ON_ERROR_STOP=1 "$url" -f "$dir/seed.sql" >/dev/null
  else
    read -r small large deep one < <(seed "$dir/gw.db")
  fi
  token=$(env "${env[@]}" "$bin" token create --workspace acme --role workspace_owner)
  env "${env[@]}" "$bin" serve >"$dir/serve.log" 2>&1 &
  gw=$!
  pids+=("$gw")
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$base/healthz" && break; sleep 0.1; done
  local api=$base/api/v1/workspaces/acme
  local cursor
  cursor=$(python3 -c 'import base64,sys; print(base64.urlsafe_b64encode((sys.argv[1] + "\n").encode()).decode().rstrip("="))' "$deep")
  local cases=(
    "first-page|$api/members?limit=100"
    "page-at-90%|$api/members?limit=100&cursor=$cursor"
    "email-1-match|$api/members?limit=100&email=${one%%@*}"
    "email-no-match|$api/members?limit=100&email=nobody-has-this"
    "email-everyone|$api/members?limit=100&email=bench.test"
    "rare-role|$api/members?limit=100&role=billing_admin"
    "common-role|$api/members?limit=100&role=workspace_member"
    "role-and-email|$api/members?limit=100&role=billing_admin&email=bench.test"
    "small-group|$api/members?limit=100&group_id=$small"
    "large-group|$api/members?limit=100&group_id=$large"
  )
  local c name url times code
  for c in "${cases[@]}"; do
    name=${c%%|*} url=${c#*|}
    code=$(curl -s -o "$dir/page.json" -w '%{http_code}' -H "Authorization: Bearer $token" "$url")
    [ "$code" = 200 ] || { echo "$name answered $code: $(head -c 300 "$dir/page.json")" >&2; exit 1; }
    echo "# $label $name: $(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["items"]))' "$dir/page.json") rows on the page" >&2
    times=$(for _ in $(seq 1 "$REPEAT"); do
      curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" "$url"
    done | sort -n)
    echo "$label $name $(awk '{a[NR] = $1 * 1000} END {printf "%.2f %.2f", a[int((NR + 1) / 2)], a[NR]}' <<<"$times")"
  done
  # The Access page (signed in as the owner, through the login form): the
  # Users and Groups tabs, and the large group's page, REPEAT times each,
  # median and worst ms.
  python3 - "$base" "$REPEAT" "$label" "$large" <<'PY'
import http.cookiejar, re, sys, time, urllib.parse, urllib.request
base, repeat, label, large = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
def form(html):
    return re.search(r'<form method="post" action="([^"]+)"', html).group(1), \
        dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
action, fields = form(web.open(base + "/login").read().decode())
fields["email"] = "owner@acme.test"
action, fields = form(web.open(base + action, urllib.parse.urlencode(fields).encode()).read().decode())
fields["password"] = "benchmark passphrase, long enough"
web.open(base + action, urllib.parse.urlencode(fields).encode()).read()
for name, path in (("access-users", "/w/acme/access?tab=users"),
                   ("access-groups", "/w/acme/access?tab=groups"),
                   ("access-large-group", "/w/acme/access/groups/" + large)):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        page = web.open(base + path)
        page.read()
        if page.status != 200 or "/access" not in page.url:
            sys.exit("%s answered %s at %s" % (path, page.status, page.url))
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print("%s %s %.2f %.2f" % (label, name, times[(len(times) - 1) // 2], times[-1]))
PY
  # The CSV: time and peak RSS growth of the gateway process.
  local rows rss0 rss1 times sampler
  times=$(for _ in 1 2 3; do
    rss0=$(awk '/^RssAnon/ {print $2}' "/proc/$gw/status")
    # The highest RssAnon while the download runs, sampled every 50 ms.
    echo "$rss0" >"$dir/peak"
    rm -f "$dir/stop"
    (
      peak=$rss0
      while [ ! -e "$dir/stop" ]; do
        r=$(awk '/^RssAnon/ {print $2}' "/proc/$gw/status" 2>/dev/null || true)
        if [ -n "$r" ] && [ "$r" -gt "$peak" ]; then peak=$r; echo "$peak" >"$dir/peak"; fi
        sleep 0.05
      done
    ) &
    sampler=$!
    curl -s -o "$dir/members.csv" -w '%{time_total}\n' -H "Authorization: Bearer $token" "$api/members.csv"
    touch "$dir/stop"
    wait "$sampler"
    rss1=$(awk '/^RssAnon/ {print $2}' "/proc/$gw/status")
    echo "# $label: the gateway's own memory (RssAnon) $((rss0 / 1024)) MB before the download, $(($(cat "$dir/peak") / 1024)) MB at most during it, $((rss1 / 1024)) MB after" >&2
  done | sort -n)
  echo "$label csv $(awk '{a[NR] = $1 * 1000} END {printf "%.2f %.2f", a[int((NR + 1) / 2)], a[NR]}' <<<"$times")"
  rows=$(($(wc -l <"$dir/members.csv") - 1))
  echo "# $label: the CSV has $rows records" >&2
  kill "$gw"
  wait "$gw" 2>/dev/null || true
}

echo "# member list and CSV benchmark, $(date -u +%Y-%m-%dT%H:%MZ), commit $(bench_commit), baseline ${BENCH_BASELINE:-${BENCH_BASELINE_BIN:-none}}"
echo "# $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $MEMBERS members, $DB, $REPEAT requests per case (median / worst ms)"
run_before_after
printf '%-16s %14s %14s %8s %s\n' case before_ms after_ms ratio target
awk '
  { med[$1, $2] = $3; worst[$1, $2] = $4; if (!seen[$2]++) order[++n] = $2 }
  END {
    for (i = 1; i <= n; i++) {
      c = order[i]
      b = ((("before", c) in med) ? sprintf("%.2f/%.2f", med["before", c], worst["before", c]) : "-")
      a = sprintf("%.2f/%.2f", med["after", c], worst["after", c])
      r = ((("before", c) in med) ? sprintf("%.3f", med["after", c] / med["before", c]) : "-")
      limit = (c == "csv") ? 300 : 10
      if (c ~ /^access-/) { printf "%-16s %14s %14s %8s (a page: no target)\n", c, b, a, r; continue }
      printf "%-16s %14s %14s %8s <= %d ms: %s\n", c, b, a, r, limit, (med["after", c] <= limit) ? "met" : "MISSED"
    }
  }' "$results"
