#!/usr/bin/env bash
# Issue 10 §1 end to end, §4 and §5 (RSS): signed-JWT client authentication (private_key_jwt) on
# three Keycloaks started at once: native-lru and infinispan public key storage (same JAR, chosen
# with --spi-public-key-storage--provider) and the distribution without the JAR. Interleaved
# A B C C B A at 1/16/64 connections (C, the bare distribution, is the control for B); then the
# unknown-kid flood; RSS idle and under load.
#
#   scripts/bench/client-auth.sh           # ~8 min (after scripts/setup.sh and scripts/build.sh)
#   scripts/bench/client-auth.sh --quick   # ~1.5 min: 16 connections, A B, 3 s runs
#   scripts/bench/client-auth.sh --replicas  # ~9 min: two Keycloaks per storage, 16 connections
#                                          # (how far processes of one storage differ; not in bench.sh)
#
# Needs wrk (Debian). Writes java/target/bench-client-auth/{results.json,results.md}.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=common.sh
. "$AWSKMS_ROOT/scripts/bench/common.sh"
cd "$AWSKMS_ROOT"
need_wrk
need_test_venv
say_machine
if [ "${1:-}" = "--replicas" ]; then
    # Per-process bias: two Keycloaks per storage, 16 connections (client_auth_replicas.py).
    shift
    exec "$AWSKMS_VENV/bin/python" scripts/bench/client_auth_replicas.py "$@"
fi
exec "$AWSKMS_VENV/bin/python" scripts/bench/client_auth.py "$@"
