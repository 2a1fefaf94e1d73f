#!/usr/bin/env bash
# Benchmarks the native-lru public key storage beside Keycloak's Infinispan one, in one JMH run,
# and prints a Markdown table of ratios (results and how to read them: BENCHMARKS.md).
#
#   ./scripts/bench.sh                  # release-builds the JNI library, then runs everything (~5 min)
#   BENCH_SKIP_BUILD=1 ./scripts/bench.sh              # reuse target/release/libkeycloak_aws_kms.so
#   BENCH_JMH_ARGS='-f 1 -wi 2 -i 2' ./scripts/bench.sh  # a quick look (JMH options; default: the class's own)
#   MVN_ARGS=-o ./scripts/bench.sh      # Maven offline, once the bench profile's dependencies are cached
#
# Writes java/target/bench/results.json (JMH's raw data) and java/target/bench/results.md (the table).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AWSKMS_ROOT"

native_library="$AWSKMS_ROOT/target/release/libkeycloak_aws_kms.so"
out="$AWSKMS_ROOT/java/target/bench"
# shellcheck disable=SC2086  # MVN_ARGS and BENCH_JMH_ARGS are word lists on purpose
mvn_bench() { mvn -q -B -Dstyle.color=never ${MVN_ARGS:-} -f java/pom.xml -Pbench "-Dnative.library.path=$native_library" "$@"; }

if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
    say "cargo build --release -p keycloak-aws-kms-jni"
    cargo build --release -p keycloak-aws-kms-jni
fi
[ -f "$native_library" ] || die "no $native_library: run without BENCH_SKIP_BUILD"

say "mvn -Pbench test-compile (benchmarks and their JMH code)"
mvn_bench test-compile
rm -rf "$out" && mkdir -p "$out"
# Other builds may rewrite java/target while JMH runs (a plain `mvn test` drops the generated
# benchmark classes): run from a snapshot.
cp -r java/target/classes "$out/classes"
cp -r java/target/test-classes "$out/test-classes"
# The maven-dependency-plugin version is pinned here, not in the POM, since only this script uses it.
mvn_bench org.apache.maven.plugins:maven-dependency-plugin:2.8:build-classpath \
    -Dmdep.includeScope=test "-Dmdep.outputFile=$out/classpath.txt"
classpath="$out/test-classes:$out/classes:$(cat "$out/classpath.txt")"

say "machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "java: $(java -version 2>&1 | head -n1)"
say "JMH: PublicKeyStorageBenchmark ${BENCH_JMH_ARGS:-}"
# JMH's forks inherit this JVM's -D options, so every fork loads the library just built.
# shellcheck disable=SC2086
java "-Dawskms.native.library=$native_library" -cp "$classpath" org.openjdk.jmh.Main \
    'dev.awskms.keycloak.bench.PublicKeyStorageBenchmark' -rf json -rff "$out/results.json" ${BENCH_JMH_ARGS:-}

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
if "hitFloorSelectAndClone" in results:
    f = summary("hitFloorSelectAndClone")
    print()
    print(f"Floor for a hit (Keycloak's key selection + cloneKey, no cache): median {f[0]:.0f} ns/op "
          f"[IQR {f[1]:.0f}–{f[2]:.0f}]. Ratio < 1: native-lru is faster.")
PY
cat "$out/results.md"
