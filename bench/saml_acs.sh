#!/usr/bin/env bash
# SAML ACS throughput (issue 16; local only, never in CI).
#
#   bench/saml_acs.sh
#
# Full IdP-initiated sign-ins, as a browser posts them: each request is a
# different RSA-2048-signed assertion (signed beforehand by the xmlsec1 CLI
# with a throw-away key made for the run) for the same person, so every
# one passes the signature, the replay cache, the user and membership
# look-ups, and ends with a new session and a 303 with its cookie. The
# first sign-in provisions the person (JIT); the rest are what a busy IdP
# sends. The gateway runs on one core (taskset -c 0, SQLite, database
# sessions, the defaults), wrk on the other, BENCH_CONNECTIONS (default
# 16) connections for BENCH_SECONDS (default 5).
#
# With BENCH_BASELINE_BIN=<binary> it measures that build first, on its own
# database, and prints the ratio. This machine's runs of one build differ by
# up to +-15 %; BENCH_ROUNDS=<n> (default 1) alternates the two builds n
# times, each run on a fresh database, and prints each round's ratio and
# their median (of an even number, the lower middle one). With BENCH_PERF=1 it records a profile
# of the gateway (perf) during the run, prints its top symbols and keeps
# it as /tmp/saml-perf-<label>.data. With BENCH_LOG=<filter> (for example
# info,sqlx=debug: every SQL statement) the gateway logs at that level and
# its log is kept as /tmp/saml-<label>.log.
#
# Then, when python3-saml is there (BENCH_PYSAML, default python3: for
# example a venv with `pip install python3-saml`), it validates the same
# signed responses with python3-saml on the same core and prints the
# gateway's sign-ins per python3-saml validation (issue 16's target: 3).
#
# Environment: BENCH_BIN, BENCH_BASELINE_BIN, BENCH_ROUNDS, BENCH_SECONDS,
# BENCH_CONNECTIONS, BENCH_PERF, BENCH_LOG, BENCH_PYSAML, CARGO_TARGET_DIR. Results:
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

SECONDS_EACH=${BENCH_SECONDS:-5}
PYSAML=${BENCH_PYSAML:-python3}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
ROUNDS=${BENCH_ROUNDS:-1}
case $ROUNDS in '' | *[!0-9]* | 0) echo "BENCH_ROUNDS must be a positive number" >&2; exit 2 ;; esac
for t in curl wrk xmlsec1 openssl python3 taskset; do
  need "$t" || { echo "missing: $t" >&2; exit 1; }
done

AFTER=$(release_bin)
BEFORE=${BENCH_BASELINE_BIN:-}

bench_setup

# The throw-away IdP key, for this run only.
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj /CN=bench-idp \
  -keyout "$work/idp.key" -out "$work/idp.crt" 2>/dev/null

cat >"$work/post.lua" <<'EOF'
-- Each request posts the next pre-signed response of this thread's share
-- (`id` is set per thread by setup(); every response is posted once).
local started = 0
function setup(thread)
  thread:set("id", started)
  started = started + 1
end
local bodies = {}
function init(args)
  local i = 0
  for line in io.lines(args[1]) do
    if i % tonumber(args[2]) == id then
      table.insert(bodies, line)
    end
    i = i + 1
  end
  n = 0
end
function request()
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, bodies[n])
end
function response(status, headers, body)
  if status ~= 303 then
    bad = (bad or 0) + 1
    if bad == 1 then
      io.stderr:write("a refused sign-in: " .. status .. " " .. string.sub(body, 1, 300) .. "\n")
    end
  end
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.2f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests))
end
EOF

# sign N ACS CONN_ID: writes N form bodies (one per line) to $work/bodies-<label>.
sign() {
  python3 - "$work" "$1" "$2" "$3" "$4" <<'PY'
import base64, datetime, os, subprocess, sys, urllib.parse, uuid
from concurrent.futures import ThreadPoolExecutor
work, n, acs, audience, label = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def t(offset):
    d = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")
issuer = "https://idp.bench.test/saml"
def one(i):
    aid = "_a" + uuid.uuid4().hex
    sig = ('<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
           '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
           '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
           '<ds:Reference URI="#%s"><ds:Transforms>'
           '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
           '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>'
           '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference>'
           '</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>') % aid
    xml = ('<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
           'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r%s" Version="2.0" IssueInstant="%s" '
           'Destination="%s"><saml:Issuer>%s</saml:Issuer>'
           '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
           '<saml:Assertion ID="%s" Version="2.0" IssueInstant="%s"><saml:Issuer>%s</saml:Issuer>%s'
           '<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">'
           'pat@corp.bench.test</saml:NameID>'
           '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
           '<saml:SubjectConfirmationData NotOnOrAfter="%s" Recipient="%s"/></saml:SubjectConfirmation></saml:Subject>'
           '<saml:Conditions NotBefore="%s" NotOnOrAfter="%s"><saml:AudienceRestriction>'
           '<saml:Audience>%s</saml:Audience></saml:AudienceRestriction></saml:Conditions>'
           '<saml:AuthnStatement AuthnInstant="%s" SessionIndex="_s%d"><saml:AuthnContext>'
           '<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport'
           '</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>'
           '<saml:AttributeStatement><saml:Attribute Name="displayName"><saml:AttributeValue>Pat Bench'
           '</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>') % (
        uuid.uuid4().hex, t(0), acs, issuer, aid, t(0), issuer, sig, t(600), acs, t(-30), t(900),
        audience, t(0), i)
    src = os.path.join(work, "in-%d.xml" % i)
    with open(src, "w") as f:
        f.write(xml)
    out = subprocess.run(["xmlsec1", "--sign", "--privkey-pem",
                          "%s/idp.key,%s/idp.crt" % (work, work),
                          "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", src],
                         check=True, capture_output=True).stdout
    os.remove(src)
    return "SAMLResponse=%s&RelayState=%%2F" % urllib.parse.quote(base64.b64encode(out).decode(), safe="")
with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
    bodies = list(pool.map(one, range(n)))
with open(os.path.join(work, "bodies-%s" % label), "w") as f:
    f.write("\n".join(bodies) + "\n")
PY
}

run_one() {
  local label=$1 bin=$2 dir port base token conn gw
  runs=$((${runs:-0} + 1))
  dir=$work/$label-$runs
  mkdir -p "$dir"
  port=$(free_port)
  base=http://127.0.0.1:$port
  local env=(IAMGW_LISTEN=127.0.0.1:$port IAMGW_PUBLIC_URL=$base IAMGW_TWILIO__MODE=off
    IAMGW_DATABASE_URL=sqlite://$dir/gw.db IAMGW_SECRET_KEY_FILE=$dir/secret.key IAMGW_LOG=${BENCH_LOG:-warn})
  echo 'benchmark passphrase, long enough' | env "${env[@]}" "$bin" bootstrap --workspace acme \
    --owner-email owner@acme.test --password-stdin >/dev/null
  token=$(env "${env[@]}" "$bin" token create --workspace acme --role workspace_owner)
  env "${env[@]}" taskset -c 0 "$bin" serve >"$dir/serve.log" 2>&1 &
  gw=$!
  pids+=("$gw")
  wait_http "$base/healthz"
  local cert meta
  cert=$(sed '1d;$d' "$work/idp.crt" | tr -d '\n')
  meta="<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"https://idp.bench.test/saml\"><md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"><md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>$cert</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"https://idp.bench.test/sso\"/></md:IDPSSODescriptor></md:EntityDescriptor>"
  conn=$(python3 -c 'import json, sys; print(json.dumps({"type": "saml", "name": "Bench IdP", "idp_metadata_xml": sys.argv[1], "allow_idp_initiated": True}))' "$meta" |
    curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' --data-binary @- \
      "$base/api/v1/workspaces/acme/sso/connections" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  local acs=$base/sso/saml/$conn/acs
  echo "$acs $base/sso/saml/$conn/metadata" >"$work/acs-$label"
  # More than the run can use at 2 000 sign-ins/s, plus the warm-up (a
  # run that uses them all up posts empty bodies, refused: it stops below).
  local n=$((SECONDS_EACH * 2000 + 1))
  echo "signing $n responses ($label)" >&2
  sign "$n" "$acs" "$base/sso/saml/$conn/metadata" "$label"
  local first code
  first=$(head -n 1 "$work/bodies-$label")
  code=$(curl -s -o "$dir/first.html" -w '%{http_code}' --data-binary "$first" \
    -H 'Content-Type: application/x-www-form-urlencoded' "$acs")
  [ "$code" = 303 ] || { echo "the first sign-in answered $code: $(head -c 400 "$dir/first.html")" >&2; exit 1; }
  tail -n +2 "$work/bodies-$label" >"$dir/bodies"
  local perf_pid=
  if [ "${BENCH_PERF:-}" = 1 ]; then
    perf record -F 999 -g -p "$gw" -o "$dir/perf.data" -- sleep "$SECONDS_EACH" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  local out threads=2
  [ "$CONNECTIONS" -lt 2 ] && threads=1
  out=$(taskset -c 1 wrk -t"$threads" -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "$work/post.lua" "$acs" \
    -- "$dir/bodies" "$threads" 2>&1 || true)
  grep -q '^RESULT' <<<"$out" || { echo "$out" >&2; exit 1; }
  if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
    echo "# $label: $(grep 'Non-2xx\|Socket errors\|refused sign-in' <<<"$out")" >&2
    echo "# $label: not every request was a sign-in; no result" >&2
    exit 1
  fi
  [ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null
  echo "$label $(grep '^RESULT' <<<"$out" | cut -d' ' -f2-)"
  if [ -n "$perf_pid" ]; then
    cp "$dir/perf.data" "/tmp/saml-perf-$label.data"
    perf report -i "$dir/perf.data" --no-children --sort symbol 2>/dev/null | grep -v '^#' | grep '%' | grep -v '^ *|\|--' | head -25 >&2 || true
  fi
  [ -n "${BENCH_LOG:-}" ] && cp "$dir/serve.log" "/tmp/saml-$label.log"
  kill "$gw"
  wait "$gw" 2>/dev/null || true
}

echo "# SAML ACS benchmark, $(date -u +%Y-%m-%dT%H:%MZ), commit $(bench_commit), baseline ${BEFORE:-none}"
echo "# gateway on core 0, wrk on core 1, $CONNECTIONS connections, ${SECONDS_EACH}s; sign-ins/s, p50 ms, p99 ms, requests"
run_before_after "$ROUNDS"
cat "$results"
if [ -n "$BEFORE" ]; then
  # Round i's ratio: the i-th "after" over the i-th "before".
  mapfile -t ratios < <(awk '$1 == "before" {b[++nb] = $2} $1 == "after" {a[++na] = $2}
    END {for (i = 1; i <= na; i++) printf "%.3f\n", a[i] / b[i]}' "$results")
  for i in "${!ratios[@]}"; do echo "ratio after/before, round $((i + 1)): ${ratios[i]}"; done
  echo "ratio after/before: $(median "${ratios[@]}") (median of ${#ratios[@]})"
fi

# The reference of issue 16's target: python3-saml validating the same
# signed responses (signature, destination, audience, times; no session)
# on the same core, each once, for as long as the gateway ran.
if "$PYSAML" -c 'import onelogin.saml2.response' 2>/dev/null; then
  read -r acs audience <"$work/acs-after"
  ref=$(taskset -c 0 "$PYSAML" - "$work/bodies-after" "$acs" "$audience" "$work/idp.crt" "$SECONDS_EACH" <<'PY'
import sys, time, urllib.parse
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
bodies, acs, audience, crt, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
cert = "".join(l.strip() for l in open(crt) if "CERTIFICATE" not in l)
settings = OneLogin_Saml2_Settings({
    "strict": True,
    "sp": {"entityId": audience,
           "assertionConsumerService": {"url": acs, "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"}},
    "idp": {"entityId": "https://idp.bench.test/saml",
            "singleSignOnService": {"url": "https://idp.bench.test/sso",
                                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"},
            "x509cert": cert},
    "security": {"wantAssertionsSigned": True},
}, sp_validation_only=True)
url = urllib.parse.urlsplit(acs)
request = {"https": "off", "http_host": url.hostname, "server_port": str(url.port), "script_name": url.path}
responses = [urllib.parse.parse_qs(line.strip())["SAMLResponse"][0] for line in open(bodies) if line.strip()]
done, start = 0, time.monotonic()
for r in responses:
    ok = OneLogin_Saml2_Response(settings, r).is_valid(dict(request, post_data={"SAMLResponse": r}), raise_exceptions=True)
    assert ok
    done += 1
    if time.monotonic() - start >= seconds:
        break
print("%.1f %d" % (done / (time.monotonic() - start), done))
PY
  )
  echo "python3-saml validations/s on core 0: ${ref% *} (${ref#* } responses)"
  mapfile -t afters < <(awk '$1 == "after" {print $2}' "$results")
  after=$(median "${afters[@]}")
  awk -v ref="${ref% *}" -v after="$after" -v n="$ROUNDS" 'BEGIN {
    printf "gateway sign-ins (median of %d runs) / python3-saml validations: %.2f (target >= 3)\n", n, after / ref }'
else
  echo "# no python3-saml at $PYSAML (BENCH_PYSAML=<a python with python3-saml>): no reference measured" >&2
fi
