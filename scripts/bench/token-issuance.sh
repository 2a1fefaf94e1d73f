#!/usr/bin/env bash
# Issue 10 §3: client-credentials tokens/s with an aws-kms key beside Keycloak's own generated key,
# one Keycloak, interleaved A B B A, ES256 and RS256, 1/16/64 clients, KMS latency 0 and 5 ms.
#
#   scripts/bench/token-issuance.sh           # ~12 min (after scripts/setup.sh and scripts/build.sh)
#   scripts/bench/token-issuance.sh --quick   # ~3 min: 1 and 16 clients, A B, 3 s runs
#
# Needs wrk (Debian package `wrk`; installed here with apt-get when missing and running as root).
# Writes java/target/bench-token-issuance/{results.json,results.md}.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$AWSKMS_ROOT"

if ! command -v wrk >/dev/null; then
    [ "$(id -u)" = 0 ] || die "wrk is missing: apt-get install wrk"
    say "wrk: apt-get install wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
fi
[ -x "$AWSKMS_VENV/bin/python" ] || die "no $AWSKMS_VENV: run scripts/setup.sh first"
say "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
exec "$AWSKMS_VENV/bin/python" scripts/bench/token_issuance.py "$@"
