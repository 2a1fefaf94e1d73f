#!/usr/bin/env bash
# Benchmarks the native-lru public key storage beside Keycloak's Infinispan one, in one JMH run,
# and prints a Markdown table of ratios (results and how to read them: BENCHMARKS.md).
#
#   ./scripts/bench.sh                  # release-builds the JNI library, then runs everything (~5 min)
#   BENCH_SKIP_BUILD=1 ./scripts/bench.sh              # reuse target/release/libkeycloak_aws_kms.so
#   BENCH_JMH_ARGS='-f 1 -wi 2 -i 2' ./scripts/bench.sh  # a quick look (JMH options; default: the class's own)
#   MVN_ARGS=-o ./scripts/bench.sh      # Maven offline, once the bench profile's dependencies are cached
#   BENCH_LOCK=/tmp/build.lock ./scripts/bench.sh      # hold this flock(1) file only while cargo/mvn run
#   BENCH_CLASSES='NativeCrossingBenchmark' ./scripts/bench.sh  # other benchmark classes (regex, JMH's)
#   BENCH_QUICK=1 ./scripts/bench.sh   # the sign-path and token-issuance runs in their --quick form
#   BENCH_ONLY_STORAGE=1 ./scripts/bench.sh   # only the public key storage JMH run
#
# Writes java/target/bench/results.json (JMH's raw data) and java/target/bench/results.md (the table).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AWSKMS_ROOT"

native_library="$AWSKMS_ROOT/target/release/libkeycloak_aws_kms.so"
out="$AWSKMS_ROOT/java/target/bench"
# shellcheck disable=SC2086  # MVN_ARGS and BENCH_JMH_ARGS are word lists on purpose
# Only the benchmarks and their helpers are compiled (tests are not needed, and one being edited meanwhile
# must not stop a run): every *Test.java is left out.
mvn_bench() {
    mvn -q -B -Dstyle.color=never ${MVN_ARGS:-} -f java/pom.xml -Pbench "-Dnative.library.path=$native_library" \
        '-Dbench.sources.excluded=**/*Test.java' "$@"
}

# The machine may be shared with other builds: BENCH_LOCK names a lock file held while this script
# builds and snapshots the classes, and released before anything is measured.
if [ -n "${BENCH_LOCK:-}" ]; then
    exec 9>"$BENCH_LOCK"
    flock 9
fi
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
# Every fork loads this copy of the library, whatever later builds write to target/release.
cp "$native_library" "$out/libkeycloak_aws_kms.so"
if [ -n "${BENCH_LOCK:-}" ]; then
    flock -u 9
    exec 9>&-
fi

say "machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "java: $(java -version 2>&1 | head -n1)"
classes="${BENCH_CLASSES:-PublicKeyStorageBenchmark}"
say "JMH: $classes ${BENCH_JMH_ARGS:-}"
# JMH's forks inherit this JVM's -D options, so every fork loads the snapshot of the library.
# shellcheck disable=SC2086
java "-Dawskms.native.library=$out/libkeycloak_aws_kms.so" -cp "$classpath" org.openjdk.jmh.Main \
    "dev.awskms.keycloak.bench.($classes)" -rf json -rff "$out/results.json" ${BENCH_JMH_ARGS:-}

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

# Issue 10 §2 (sign path vs the AWS SDK for Java) and §3 (token issuance vs Keycloak's own key):
# BENCHMARKS.md "Sign path" and "Token issuance". Each starts its own emulator / Keycloak.
# BENCH_ONLY_STORAGE=1 stops after the public key storage table above.
if [ -z "${BENCH_ONLY_STORAGE:-}" ]; then
    [ -n "${BENCH_SKIP_BUILD:-}" ] || cargo build --release -p kms-emulator
    scripts/bench/sign-path.sh ${BENCH_QUICK:+--quick}
    scripts/bench/token-issuance.sh ${BENCH_QUICK:+--quick}
fi
