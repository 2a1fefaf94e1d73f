#!/usr/bin/env bash
# Issue 4 / 10 §1 (JMH): the native-lru public key storage beside Keycloak's Infinispan one, in one
# JMH run, and a Markdown table of ratios (results and how to read them: BENCHMARKS.md). Run by
# scripts/bench.sh; alone:
#
#   scripts/bench/storage.sh            # the class's own JMH settings (3 forks x 5+5 iterations, ~5 min)
#   scripts/bench/storage.sh --quick    # 1 fork, 2+2 iterations, no floors (~45 s; a look)
#   BENCH_JMH_ARGS='-f 1 -wi 2 -i 2' …  # other JMH options
#   BENCH_CLASSES='NativeCrossingBenchmark' …  # other benchmark classes (regex, JMH's)
#   BENCH_LOCK=/tmp/build.lock …        # hold this flock(1) file only while Maven compiles
#   MVN_ARGS=-o …                       # Maven offline
#
# Needs target/release/libkeycloak_aws_kms.so. Writes java/target/bench/{results.json,results.md}.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=common.sh
. "$AWSKMS_ROOT/scripts/bench/common.sh"
cd "$AWSKMS_ROOT"

quick_args=()
# Quick: one fork, shorter, without the floors (the three comparisons only).
[ "${1:-}" = "--quick" ] && quick_args=(-f 1 -wi 2 -i 2 -e 'hitFloor')
out="$AWSKMS_ROOT/java/target/bench"
[ -f target/release/libkeycloak_aws_kms.so ] || die "no target/release/libkeycloak_aws_kms.so: run scripts/build.sh"
# Every fork loads the snapshot's copy of the library, whatever later builds write to target/release.
use_snapshot "$out"
mkdir -p "$out" && rm -f "$out/results.json" "$out/results.md"
classpath="$(bench_classpath "$snapshot")"

say_machine
say "java: $(java -version 2>&1 | head -n1)"
classes="${BENCH_CLASSES:-PublicKeyStorageBenchmark}"
say "JMH: $classes ${quick_args[*]} ${BENCH_JMH_ARGS:-}"
# JMH's forks inherit this JVM's -D options, so every fork loads the snapshot of the library.
# shellcheck disable=SC2086  # BENCH_JMH_ARGS is a word list on purpose
java "-Dawskms.native.library=$snapshot/libkeycloak_aws_kms.so" -cp "$classpath" org.openjdk.jmh.Main \
    "dev.awskms.keycloak.bench.($classes)" -rf json -rff "$out/results.json" "${quick_args[@]}" ${BENCH_JMH_ARGS:-}

say "results ($out/results.md)"
python3 - "$out/results.json" >"$out/results.md" <<'PY'
import json, statistics, sys

results = {r["benchmark"].rsplit(".", 1)[1]: r for r in json.load(open(sys.argv[1]))}

def iterations(name):
    """Every measured iteration of every fork, in ns/op."""
    return [score for fork in results[name]["primaryMetric"]["rawData"] for score in fork]

def summary(name):
    scores = sorted(iterations(name))
    quartiles = statistics.quantiles(scores, n=4) if len(scores) > 1 else [scores[0]] * 3
    return statistics.median(scores), quartiles[0], quartiles[2], len(scores)

pairs = [
    ("hit, known kid (1 thread)", "hitNative", "hitInfinispan"),
    ("unknown kid inside the window, throttled (1 thread)", "unknownKidThrottledNative", "unknownKidThrottledInfinispan"),
    ("hit, known kid (2 threads)", "hitTwoThreadsNative", "hitTwoThreadsInfinispan"),
]
print("| Case | native-lru / infinispan (median) | native-lru median [IQR] ns/op | infinispan median [IQR] ns/op | iterations each |")
print("|---|---|---|---|---|")
for case, native, infinispan in pairs:
    if native not in results or infinispan not in results:
        continue
    n, i = summary(native), summary(infinispan)
    print(f"| {case} | **{n[0] / i[0]:.2f}×** | {n[0]:.0f} [{n[1]:.0f}–{n[2]:.0f}] | {i[0]:.0f} [{i[1]:.0f}–{i[2]:.0f}] | {n[3]} |")
others = sorted(set(results) - {name for pair in pairs for name in pair[1:]} - {"hitFloorSelectAndClone"})
if others:
    print()
    print("| Benchmark | median [IQR] ns/op | iterations |")
    print("|---|---|---|")
    for name in others:
        s = summary(name)
        print(f"| {name} | {s[0]:.1f} [{s[1]:.1f}–{s[2]:.1f}] | {s[3]} |")
if "hitFloorSelectAndClone" in results:
    f = summary("hitFloorSelectAndClone")
    print()
    print(f"Floor for a hit (Keycloak's key selection + cloneKey, no cache): median {f[0]:.0f} ns/op "
          f"[IQR {f[1]:.0f}–{f[2]:.0f}]. Ratio < 1: native-lru is faster.")
PY
cat "$out/results.md"
