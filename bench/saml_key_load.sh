#!/usr/bin/env bash
# What the SAML signature check spends on loading the IdP's certificate
# (issue 16; local only, never in CI).
#
#   bench/saml_key_load.sh
#
# samael 0.0.22 (XmlSec::reduce_xml_to_signed_with_allowed_algorithms)
# builds an xmlsec key from the pinned certificate's DER for every
# verification (xmlSecCryptoAppKeyLoadMemory), and its key type is private,
# so the gateway cannot hand it a key loaded once. This measures, on one
# core, in one C program linked to the same libxmlsec1 and OpenSSL as the
# gateway, for a throw-away RSA-2048 certificate made for the run:
#   * the baseline: verifying one RSA-2048 PKCS#1 SHA-256 signature with a
#     key already loaded (the cryptographic work of a SAML signature);
#   * loading the key from the certificate's DER, as samael does each time;
#   * duplicating a loaded xmlsec key (xmlSecKeyDuplicate), the obvious
#     cache, for comparison;
# and prints each one's microseconds and its ratio to the baseline.
#
# Environment: BENCH_ITERATIONS (default 5000). Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

N=${BENCH_ITERATIONS:-5000}
case $N in '' | *[!0-9]* | 0) echo "BENCH_ITERATIONS must be a positive number" >&2; exit 2 ;; esac
for t in cc pkg-config openssl taskset; do need "$t" || { echo "missing: $t" >&2; exit 1; }; done
pkg-config --exists xmlsec1-openssl || { echo "missing: libxmlsec1-dev" >&2; exit 1; }

bench_setup
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj /CN=bench-idp \
  -keyout "$work/idp.key" -out "$work/idp.pem" 2>/dev/null
openssl x509 -in "$work/idp.pem" -outform DER -out "$work/idp.der"
printf 'bench payload' >"$work/data"
openssl dgst -sha256 -sign "$work/idp.key" -out "$work/sig" "$work/data"

cat >"$work/keyload.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/keys.h>
#include <xmlsec/crypto.h>
#include <xmlsec/app.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static size_t slurp(const char *path, unsigned char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); exit(1); }
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

int main(int argc, char **argv) {
  if (argc != 5) return 2;
  int n = atoi(argv[4]);
  unsigned char der[8192], data[64], sig[512];
  size_t der_len = slurp(argv[1], der, sizeof der);
  size_t data_len = slurp(argv[2], data, sizeof data);
  size_t sig_len = slurp(argv[3], sig, sizeof sig);
  xmlInitParser();
  if (xmlSecInit() < 0 || xmlSecCryptoAppInit(NULL) < 0 || xmlSecCryptoInit() < 0) return 1;

  const unsigned char *p = der;
  X509 *cert = d2i_X509(NULL, &p, (long)der_len);
  EVP_PKEY *pkey = cert ? X509_get_pubkey(cert) : NULL;
  if (!pkey) { fprintf(stderr, "no key\n"); return 1; }
  double t0 = now();
  for (int i = 0; i < n; i++) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestVerify(ctx, sig, sig_len, data, data_len) != 1) {
      fprintf(stderr, "verify failed\n");
      return 1;
    }
    EVP_MD_CTX_free(ctx);
  }
  double verify = (now() - t0) / n * 1e6;

  t0 = now();
  for (int i = 0; i < n; i++) {
    xmlSecKeyPtr k = xmlSecCryptoAppKeyLoadMemory(der, der_len, xmlSecKeyDataFormatCertDer,
                                                  NULL, NULL, NULL);
    if (!k) { fprintf(stderr, "key load failed\n"); return 1; }
    xmlSecKeyDestroy(k);
  }
  double load = (now() - t0) / n * 1e6;

  xmlSecKeyPtr key = xmlSecCryptoAppKeyLoadMemory(der, der_len, xmlSecKeyDataFormatCertDer,
                                                  NULL, NULL, NULL);
  if (!key) return 1;
  t0 = now();
  for (int i = 0; i < n; i++) {
    xmlSecKeyPtr d = xmlSecKeyDuplicate(key);
    if (!d) { fprintf(stderr, "duplicate failed\n"); return 1; }
    xmlSecKeyDestroy(d);
  }
  double dup = (now() - t0) / n * 1e6;

  printf("rsa2048_verify_us %.1f\n", verify);
  printf("key_load_from_der_us %.1f ratio %.2f\n", load, load / verify);
  printf("key_duplicate_us %.1f ratio %.2f\n", dup, dup / verify);
  return 0;
}
EOF
# shellcheck disable=SC2046 # pkg-config prints several words on purpose
cc -O2 -o "$work/keyload" "$work/keyload.c" $(pkg-config --cflags --libs xmlsec1-openssl)
echo "# SAML key load, $(date -u +%Y-%m-%dT%H:%MZ), $N iterations each, core 0; microseconds, ratio to one RSA-2048 verify"
taskset -c 0 "$work/keyload" "$work/idp.der" "$work/data" "$work/sig" "$N"
