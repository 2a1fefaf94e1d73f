#!/usr/bin/env bash
# Issue 10 §3: client-credentials tokens/s with an aws-kms key beside Keycloak's own generated key,
# one Keycloak, interleaved A B B A, ES256 and RS256, 1/16/64 clients, KMS latency 0 and 5 ms.
#
#   scripts/bench/token-issuance.sh           # ~8 min (after scripts/setup.sh and scripts/build.sh)
#   scripts/bench/token-issuance.sh --quick   # ~1 min: 16 clients, A B, 3 s runs
#
# Needs wrk (Debian package `wrk`; installed here with apt-get when missing and running as root).
# Writes java/target/bench-token-issuance/{results.json,results.md}.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$AWSKMS_ROOT"

# shellcheck source=common.sh
. "$AWSKMS_ROOT/scripts/bench/common.sh"
need_wrk
need_test_venv
say_machine
exec "$AWSKMS_VENV/bin/python" scripts/bench/token_issuance.py "$@"
