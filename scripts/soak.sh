#!/usr/bin/env bash
# Issue 9 "Time and lifetime": a soak of one Keycloak at a fixed rate (client-credentials tokens
# signed by an aws-kms key, signed-JWT client authentication, public key cache churn across more
# sources than the LRU holds), sampling Keycloak's RSS, threads, descriptors and the native
# library's JNI global references; then Keycloak is stopped under load and its exit timed.
# A script, not a CI stage (RELIABILITY.md, "Time and lifetime").
#
#   scripts/soak.sh                # 10 minutes (after scripts/setup.sh and scripts/build.sh)
#   scripts/soak.sh --minutes 2    # shorter
#
# It is a measurement: on a shared machine run it under the benchmark lock, e.g.
#   flock /tmp/awskms-bench.lock scripts/soak.sh
# Writes target/soak/{soak.csv,soak.png,summary.json,keycloak.log}; exits 1 on any error.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AWSKMS_ROOT"
[ -x "$AWSKMS_VENV/bin/python" ] || die "no $AWSKMS_VENV: run scripts/setup.sh first"

# The plot's own venv, made or updated when scripts/soak/requirements.txt changes.
soak_venv="$AWSKMS_CACHE_DIR/soak-venv"
requirements="$AWSKMS_ROOT/scripts/soak/requirements.txt"
sum="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$soak_venv/bin/python" ] || [ "$(cat "$soak_venv/.requirements.sha256" 2>/dev/null)" != "$sum" ]; then
    say "soak venv: installing scripts/soak/requirements.txt into $soak_venv"
    python3 -m venv "$soak_venv"
    "$soak_venv/bin/pip" install -q -r "$requirements"
    printf '%s\n' "$sum" >"$soak_venv/.requirements.sha256"
fi

status=0
nice -n 5 "$AWSKMS_VENV/bin/python" scripts/soak/soak.py "$@" || status=$?
out=target/soak
for arg in "$@"; do
    case "$arg" in --out=*) out="${arg#--out=}" ;; esac
done
if [ -s "$out/soak.csv" ]; then
    "$soak_venv/bin/python" scripts/soak/plot.py "$out/soak.csv"
fi
exit "$status"
