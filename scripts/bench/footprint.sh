#!/usr/bin/env bash
# Issue 10 §5, the parts without a Keycloak (client-auth.sh measures Keycloak's RSS): the provider
# JAR's size, the native library's size and its share of the JAR, and the memory the native-lru
# cache takes for 10,000 sources (CacheFootprint.java, beside a control that keeps the same keys in
# a Java map). BENCH_CLEAN_BUILD=1 also times a clean release build of the native library in an
# empty target directory (several minutes on 2 cores; not part of --quick or the default run).
#
#   scripts/bench/footprint.sh           # 3 JVMs of each cache mode, 3 readings each (~1.5 min)
#   scripts/bench/footprint.sh --quick   # 2 runs of each
#
# Writes java/target/bench-footprint/{results.json,results.md}.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=common.sh
. "$AWSKMS_ROOT/scripts/bench/common.sh"
cd "$AWSKMS_ROOT"

runs=3
[ "${1:-}" = "--quick" ] && runs=2
sources=10000
out="$AWSKMS_ROOT/java/target/bench-footprint"
jar="$(provider_jar)" || die "expected exactly one java/target/keycloak-aws-kms-*.jar: run scripts/build.sh"
# scripts/bench.sh's snapshot of this run, else a new one.
use_snapshot "$out"
mkdir -p "$out"
classpath="$(bench_classpath "$snapshot")"
say_machine

: >"$out/cache.jsonl"
for run in $(seq "$runs"); do
    for mode in native java; do
        say "CacheFootprint $mode $sources (run $run of $runs)"
        java -XX:+UseSerialGC -Xms512m -Xmx512m -XX:+AlwaysPreTouch "-Dawskms.native.library=$snapshot/libkeycloak_aws_kms.so" \
            -cp "$classpath" scripts/bench/CacheFootprint.java "$mode" "$sources" | grep '^{' >>"$out/cache.jsonl"
    done
done

clean_build=""
if [ -n "${BENCH_CLEAN_BUILD:-}" ]; then
    target="$(mktemp -d)"
    say "clean build: cargo build --locked --release -p keycloak-aws-kms-jni into $target"
    begun=$SECONDS
    CARGO_TARGET_DIR="$target" cargo build --locked --release -p keycloak-aws-kms-jni
    clean_build="$((SECONDS - begun))"
    rm -rf "$target"
fi

python3 - "$jar" "$out" "$clean_build" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, statistics, sys, zipfile
from pathlib import Path

jar, out, clean_build, load = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
native = "META-INF/native/linux-x86_64/libkeycloak_aws_kms.so"
with zipfile.ZipFile(jar) as archive:
    info = archive.getinfo(native)
    others = sum(i.compress_size for i in archive.infolist() if i.filename != native)
runs = [json.loads(line) for line in (out / "cache.jsonl").read_text().splitlines() if line.strip()]
by_mode = {m: [r for r in runs if r["mode"] == m] for m in ("native", "java")}
def med(mode, field):
    return statistics.median(r[field] for r in by_mode[mode])
# The JVM's own native allocations (a late JIT compilation, its arenas freed again) move a reading
# either way: the median of every reading (3 per JVM) of each mode is the estimate, all are listed.
sources = runs[0]["sources"]
native_kib = med("native", "rssDeltaKiB") - med("java", "rssDeltaKiB")
results = {
    "jar": jar.name, "jarBytes": jar.stat().st_size, "nativeBytes": info.file_size,
    "nativeCompressedBytes": info.compress_size, "otherCompressedBytes": others,
    "nativeShare": info.compress_size / jar.stat().st_size, "cacheRuns": runs,
    "cacheNativeKiB": native_kib, "cacheBytesPerSource": native_kib * 1024 / sources,
    "heapKiBNative": med("native", "heapDeltaKiB"), "heapKiBJava": med("java", "heapDeltaKiB"),
    "sources": sources, "cleanBuildSeconds": int(clean_build) if clean_build else None, "loadavg": load,
}
(out / "results.json").write_text(json.dumps(results, indent=1))
rss = lambda m: ", ".join(str(r["rssDeltaKiB"]) for r in by_mode[m])
lines = [
    "| What | Measured |",
    "|---|---|",
    f"| provider JAR `{jar.name}` | {results['jarBytes']:,} bytes ({results['jarBytes'] / 2**20:.1f} MiB) |",
    f"| native library in it (`{native}`) | {info.file_size:,} bytes uncompressed, {info.compress_size:,} deflated |",
    f"| the native library's share of the JAR | **{results['nativeShare']:.0%}** (everything else: {others:,} bytes compressed) |",
    f"| native-lru cache, {sources:,} sources × 3 keys: native memory (median RSS growth per 10,000 more sources, native-lru minus the control) "
    f"| **{native_kib / 1024:.1f} MiB**, {results['cacheBytesPerSource']:.0f} bytes per source "
    f"(RSS growth KiB native-lru: {rss('native')}; control: {rss('java')}) |",
    f"| the same keys on the Java heap (KeyWrappers, both modes) | native-lru {results['heapKiBNative'] / 1024:.1f} MiB, "
    f"control {results['heapKiBJava'] / 1024:.1f} MiB |",
    f"| clean release build of the native library | "
    + (f"{clean_build} s (load average {load})" if clean_build else "not measured in this run (BENCH_CLEAN_BUILD=1)") + " |",
]
(out / "results.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
