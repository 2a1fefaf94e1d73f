#!/usr/bin/env bash
# Issue 10 §2: one signature through our JCA provider (JNI → Rust → KMS) beside the AWS SDK for
# Java v2's KmsClient and a raw pre-signed HTTP request, against one KMS emulator with no added
# latency, at 1, 16 and 64 threads, ES256 and RS256 (JMH, SignPathBenchmark). Prints a Markdown
# table of throughput, p50/p99 and each side's overhead above the raw request (BENCHMARKS.md).
#
#   scripts/bench/sign-path.sh            # ~6 min (needs target/release/{libkeycloak_aws_kms.so,kms-emulator})
#   scripts/bench/sign-path.sh --quick    # ~1 min: 16 threads, shorter iterations (a look, not for BENCHMARKS.md)
#   BENCH_LOCK=/tmp/awskms-build.lock …   # hold this flock(1) file only while Maven compiles
#   BENCH_THREADS='1 16' …                # other thread counts
#   MVN_ARGS=-o …                         # Maven offline
#   BENCH_JMH_ARGS='-wi 5 -w 5' …         # more JMH options (e.g. a longer warm-up on a loaded machine)
#   BENCH_PREWARM_SECONDS=30 …            # the SDK for Java's one-thread warm-up before JMH's (default 20;
#                                         # its JIT needs it, see SignPathBenchmark.preWarm)
#
# Writes java/target/bench-sign-path/{t*.json,cpu.jsonl,results.md}.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$AWSKMS_ROOT"

jmh_args=()
thread_counts="${BENCH_THREADS:-1 16 64}"
prewarm_seconds="${BENCH_PREWARM_SECONDS:-20}"
if [ "${1:-}" = "--quick" ]; then
    # A look: 16 threads only, short iterations.
    jmh_args=(-wi 1 -w 1 -i 2 -r 1)
    prewarm_seconds="${BENCH_PREWARM_SECONDS:-3}"
    thread_counts="${BENCH_THREADS:-16}"
fi
native_library="$AWSKMS_ROOT/target/release/libkeycloak_aws_kms.so"
emulator="$AWSKMS_ROOT/target/release/kms-emulator"
out="$AWSKMS_ROOT/java/target/bench-sign-path"
[ -f "$native_library" ] || die "no $native_library: run scripts/build.sh (or scripts/bench.sh) first"
[ -x "$emulator" ] || die "no $emulator: run scripts/build.sh first"

# shellcheck source=common.sh
. "$AWSKMS_ROOT/scripts/bench/common.sh"
# Run from a snapshot: other builds may rewrite java/target and target/release meanwhile.
use_snapshot "$out"
mkdir -p "$out" && rm -f "$out"/t*.json "$out/cpu.jsonl" "$out"/jmh-t*.log "$out/emulator.json"
cp "$emulator" "$out/kms-emulator"
classpath="$(bench_classpath "$snapshot")"

start_sign_path_emulator "$out/kms-emulator" "$out"

say "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086  # BENCH_JMH_ARGS is a word list on purpose
for threads in $thread_counts; do
    say "JMH SignPathBenchmark, $threads threads ${jmh_args[*]}"
    java "-Dawskms.native.library=$snapshot/libkeycloak_aws_kms.so" "-Dawskms.bench.prewarmSeconds=$prewarm_seconds" \
        "${sign_path_properties[@]}" \
        -cp "$classpath" org.openjdk.jmh.Main 'dev.awskms.keycloak.bench.SignPathBenchmark' \
        -t "$threads" -rf json -rff "$out/t$threads.json" "${jmh_args[@]}" ${BENCH_JMH_ARGS:-} >"$out/jmh-t$threads.log" 2>&1 ||
        die "JMH failed: $(tail -n 30 "$out/jmh-t$threads.log")"
done

python3 - "$out" >"$out/results.md" <<'PY'
import glob, json, os, statistics, sys
from collections import defaultdict

out = sys.argv[1]
rows = {}  # (algorithm, threads, benchmark) -> result
for path in glob.glob(os.path.join(out, "t*.json")):
    for r in json.load(open(path)):
        name = r["benchmark"].rsplit(".", 1)[1]
        rows[(r["params"]["algorithm"], r["threads"], name)] = r["primaryMetric"]
cpu = defaultdict(list)
for line in open(os.path.join(out, "cpu.jsonl")):
    c = json.loads(line)
    cpu[(c["algorithm"], c["threads"], c["benchmark"])].append(c)

def stat(key):
    m = rows[key]
    p = m["scorePercentiles"]
    threads = key[1]
    return {"mean": m["score"], "p50": p["50.0"], "p99": p["99.0"], "ops": threads * 1e6 / m["score"]}

def cpu_per_call(key):
    c = cpu.get(key, [])
    calls = sum(x["calls"] for x in c) or 1
    return (sum(x["jvmCpuNs"] for x in c) / calls / 1e3, sum(x["emulatorCpuNs"] for x in c) / calls / 1e3,
            ", ".join(sorted({x["loadavg"].split()[0] for x in c})))

def cpu_by_iteration(key):
    # Client CPU per call in each measured iteration, in order: a side still warming shows a trend.
    return " → ".join(f"{x['jvmCpuNs'] / x['calls'] / 1e3:.0f}" for x in cpu.get(key, []) if x["calls"])

print("| alg | threads | side | ops/s | p50 µs | p99 µs | mean µs | overhead above raw (mean) µs | client CPU µs/sign | per measured iteration | emulator CPU µs/sign | load avg (1 min) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
ratios = []
for alg in ("ES256", "RS256"):
    for threads in sorted({k[1] for k in rows}):
        if (alg, threads, "rawHttp") not in rows:
            continue
        raw = stat((alg, threads, "rawHttp"))
        over = {}
        for side, label in (("rawHttp", "raw HTTP (floor)"), ("ours", "**ours** (JCA → JNI → Rust)"), ("awsSdkJava", "AWS SDK for Java v2")):
            key = (alg, threads, side)
            if key not in rows:
                continue
            s = stat(key)
            jvm, emu, load = cpu_per_call(key)
            over[side] = s["mean"] - raw["mean"]
            o = "—" if side == "rawHttp" else f"{over[side]:.0f}"
            print(f"| {alg} | {threads} | {label} | {s['ops']:.0f} | {s['p50']:.0f} | {s['p99']:.0f} | {s['mean']:.0f} | {o} | {jvm:.0f} | {cpu_by_iteration(key)} | {emu:.0f} | {load} |")
        if "ours" in over and "awsSdkJava" in over:
            jo, _, _ = cpu_per_call((alg, threads, "ours"))
            js, _, _ = cpu_per_call((alg, threads, "awsSdkJava"))
            jr, _, _ = cpu_per_call((alg, threads, "rawHttp"))
            ratios.append((alg, threads, over["ours"], over["awsSdkJava"], jo - jr, js - jr))
print()
print("| alg | threads | our overhead / SDK's (latency above raw) | our client CPU above raw / SDK's | target ≤ 0.5 |")
print("|---|---|---|---|---|")
for alg, threads, o, s, co, cs in ratios:
    lat = o / s if s > 0 else float("nan")
    cpu_ratio = co / cs if cs > 0 else float("nan")
    met = "met" if lat <= 0.5 else "**missed**"
    print(f"| {alg} | {threads} | **{lat:.2f}** ({o:.0f} / {s:.0f} µs) | {cpu_ratio:.2f} ({co:.0f} / {cs:.0f} µs) | {met} |")
PY
cat "$out/results.md"
