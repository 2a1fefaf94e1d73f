#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md in one command, each comparison measured side by side in one run
# and reported as ratios; then the plots (docs/bench/*.png).
#
#   scripts/bench.sh            # everything (~30 min on 2 cores; BENCHMARKS.md "One command")
#   scripts/bench.sh --quick    # every step in its short form (~5 min; a look, not for BENCHMARKS.md)
#
# Steps, in order (scripts/bench/<step>.sh; each prints and writes its own table):
#   storage         public key storage native-lru vs Infinispan, JMH in one JVM (§1)
#   sign-path       one signature: ours vs the AWS SDK for Java v2 vs a raw request (§2)
#   token-issuance  client-credentials tokens/s, aws-kms key vs Keycloak's own key (§3)
#   client-auth     signed-JWT client authentication on real Keycloaks: native-lru vs infinispan
#                   (§1 end to end), the unknown-kid flood (§4), Keycloak RSS (§5)
#   footprint       JAR and native library sizes, the cache's memory at 10,000 sources (§5)
#   plots           PNG plots of the results above (docs/bench/)
#
# Uses what scripts/build.sh built (target/release/{libkeycloak_aws_kms.so,kms-emulator}, the
# provider JAR in java/target); needs scripts/setup.sh's Keycloak and venv, and wrk (Debian).
#
#   BENCH_STEPS='client-auth footprint plots' scripts/bench.sh   # only these steps
#   BENCH_QUICK=1 scripts/bench.sh           # the same as --quick
#   BENCH_ONLY_STORAGE=1 scripts/bench.sh    # only the storage step
#   BENCH_BUILD=1 scripts/bench.sh           # cargo build --release the library and emulator first
#   BENCH_MEASURE_LOCK=/tmp/bench.lock …     # hold this flock(1) file around each measuring step
#   BENCH_LOCK=/tmp/build.lock …             # hold this flock(1) file only while cargo/Maven run
#   BENCH_JMH_ARGS / BENCH_CLASSES / MVN_ARGS  # passed to the JMH steps (scripts/bench/storage.sh)
#
# Writes java/target/bench*/ (raw data and tables) and java/target/bench-times.txt (each step's time).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AWSKMS_ROOT"

quick="${BENCH_QUICK:-}"
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -h | --help) sed -n '2,27s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument $arg (see --help)" ;;
    esac
done
steps="${BENCH_STEPS:-storage sign-path token-issuance client-auth footprint plots}"
[ -z "${BENCH_ONLY_STORAGE:-}" ] || steps=storage

if [ -n "${BENCH_BUILD:-}" ]; then
    [ -z "${BENCH_LOCK:-}" ] || exec 8>"$BENCH_LOCK"
    [ -z "${BENCH_LOCK:-}" ] || flock 8
    say "cargo build --release -p keycloak-aws-kms-jni -p kms-emulator"
    cargo build --release -p keycloak-aws-kms-jni -p kms-emulator
    [ -z "${BENCH_LOCK:-}" ] || exec 8>&-
fi

times="$AWSKMS_ROOT/java/target/bench-times.txt"
mkdir -p "$(dirname "$times")"
printf '# scripts/bench.sh %s, %s, %s CPUs, load average at start %s\n' "${quick:+--quick}" \
    "$(date -u +%FT%TZ)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" >"$times"
started=$SECONDS
# One snapshot of the JMH benchmarks and the library for every step that needs one (one Maven run).
case " $steps " in
    *" storage "* | *" sign-path "* | *" footprint "*)
        # shellcheck source=bench/common.sh
        . scripts/bench/common.sh
        begun=$SECONDS
        bench_snapshot "$AWSKMS_ROOT/java/target/bench-snapshot"
        export BENCH_SNAPSHOT="$AWSKMS_ROOT/java/target/bench-snapshot"
        printf '%-15s %4d s\n' snapshot $((SECONDS - begun)) | tee -a "$times"
        ;;
esac
for step in $steps; do
    script="scripts/bench/$step.sh"
    [ -x "$script" ] || die "no step $step ($script)"
    say "step $step${quick:+ (quick)}"
    begun=$SECONDS
    if [ -n "${BENCH_MEASURE_LOCK:-}" ] && [ "$step" != plots ]; then
        flock "$BENCH_MEASURE_LOCK" "$script" ${quick:+--quick}
    else
        "$script" ${quick:+--quick}
    fi
    printf '%-15s %4d s  (load average after: %s)\n' "$step" $((SECONDS - begun)) "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$times"
done
printf '%-15s %4d s\n' total $((SECONDS - started)) | tee -a "$times"
