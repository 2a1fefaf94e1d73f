#!/usr/bin/env bash
# Issue 10 §2: where one signature of ours spends its CPU. Runs SignPathBenchmark's `ours` (JCA →
# JNI → Rust → KMS emulator) with a library built with its symbols kept, samples every thread of
# the benchmark JVM and of the emulator with perf(1) during one measured iteration, and prints
# the CPU per signature split by what runs it (calling thread, the I/O runtime's threads, the JVM's
# own) and by what it is: the local verification of KMS's answer (aws-lc), the AWS SDK for Rust
# (orchestrator, SigV4, interceptors), HTTP (hyper), tokio, the allocator, the kernel (syscalls,
# sleeps and wake-ups), the JVM. Not part of scripts/bench.sh (it needs perf and its own build).
#
#   scripts/bench/sign-path-profile.sh               # ES256, 1 thread (~2 min after the build)
#   BENCH_ALGORITHM=RS256 BENCH_THREADS=16 scripts/bench/sign-path-profile.sh
#
# Builds target/profile/release/libkeycloak_aws_kms.so (the release profile without `strip`; the
# first time ~4 min). Needs perf (Debian: linux-perf) and root or perf_event_paranoid <= 0.
# Writes java/target/bench-sign-path-profile/{perf.data,samples.txt,results.md}.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=common.sh
. "$AWSKMS_ROOT/scripts/bench/common.sh"
cd "$AWSKMS_ROOT"

algorithm="${BENCH_ALGORITHM:-ES256}"
threads="${BENCH_THREADS:-1}"
seconds=10
command -v perf >/dev/null || die "perf is missing (Debian: apt-get install linux-perf)"
emulator="$AWSKMS_ROOT/target/release/kms-emulator"
[ -x "$emulator" ] || die "no $emulator: run scripts/build.sh first"
out="$AWSKMS_ROOT/java/target/bench-sign-path-profile"
mkdir -p "$out"

say "cargo build --release -p keycloak-aws-kms-jni with symbols (target/profile)"
CARGO_PROFILE_RELEASE_STRIP=none CARGO_TARGET_DIR="$AWSKMS_ROOT/target/profile" \
    cargo build --locked --release -p keycloak-aws-kms-jni
library="$AWSKMS_ROOT/target/profile/release/libkeycloak_aws_kms.so"
use_snapshot "$out/snapshot"
classpath="$(bench_classpath "$snapshot")"

rm -f "$out/cpu.jsonl"
start_sign_path_emulator "$emulator" "$out"
jmh_pid=""
trap 'kill "$emulator_pid" ${jmh_pid:+"$jmh_pid"} 2>/dev/null || true' EXIT

say_machine
say "JMH SignPathBenchmark.ours $algorithm, $threads threads; perf samples ${seconds}s of the measured iteration"
java "-Dawskms.native.library=$library" "${sign_path_properties[@]}" \
    -cp "$classpath" org.openjdk.jmh.Main 'dev.awskms.keycloak.bench.SignPathBenchmark.ours$' \
    -p "algorithm=$algorithm" -t "$threads" -i 1 -r $((seconds + 6)) \
    -jvmArgsAppend "-XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit" >"$out/jmh.log" 2>&1 &
jmh_pid=$!
for _ in $(seq 600); do
    grep -q '^Iteration   1:' "$out/jmh.log" && break
    kill -0 "$jmh_pid" 2>/dev/null || die "JMH ended early: $(tail -n 30 "$out/jmh.log")"
    sleep 0.1
done
grep -q '^Iteration   1:' "$out/jmh.log" || die "JMH did not reach its measured iteration: $(tail -n 30 "$out/jmh.log")"
sleep 2
perf record -F 1999 -a -o "$out/perf.data" -- sleep "$seconds" 2>"$out/perf-record.log"
wait "$jmh_pid" || die "JMH failed: $(tail -n 30 "$out/jmh.log")"
jmh_pid=""
perf script -i "$out/perf.data" -F comm,pid,tid,ip,sym,dso 2>/dev/null >"$out/samples.txt"

python3 - "$out" "$emulator_pid" "$algorithm" "$threads" "$seconds" >"$out/results.md" <<'PY'
import json, re, sys
from collections import Counter, defaultdict
from pathlib import Path

out, emulator_pid, algorithm, threads, seconds = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
# What each sample is, first match wins (symbol, then library).
KINDS = [
    ("verification of KMS's signature (aws-lc ECDSA/RSA)", r"ecp_nistz256|beeu_mod_inverse|p256|ec_GFp|ec_point|ecdsa|bn_|BN_|rsa|RSA_|mont"),
    ("hashing (SHA-2)", r"sha256|sha512|sha2::|SHA256|SHA512"),
    ("AWS SDK for Rust (orchestrator, SigV4, interceptors, config)", r"aws_smithy|aws_sdk|aws_sigv4|aws_runtime|aws_types|aws_credential|aws_config|tracing"),
    ("HTTP (hyper, http, bytes)", r"hyper|\bhttp::|http_body|bytes::|httparse"),
    ("tokio (scheduler, I/O driver, timers)", r"tokio|mio::"),
]
samples = defaultdict(Counter)  # (pid, role) -> kind -> count
roles = {}
rows = []
for line in (out / "samples.txt").read_text(errors="replace").splitlines():
    # "comm pid/tid ip symbol (dso)"; thread names and Rust symbols may hold spaces.
    match = re.match(r"\s*(.*?)\s+(\d+)/(\d+)\s+[0-9a-f]+\s+(.*)\s+\((.*)\)\s*$", line)
    if not match:
        continue
    comm, pid, sym, dso = match.group(1), int(match.group(2)), match.group(4), match.group(5)
    rows.append((pid, comm, sym, dso))
# The benchmark's fork is the process with the I/O runtime's threads.
fork = Counter(pid for pid, comm, _, _ in rows if comm == "aws-kms-io").most_common(1)
if not fork:
    sys.exit("no samples of the I/O runtime's threads (aws-kms-io): did the benchmark run?")
fork_pid = fork[0][0]
for pid, comm, sym, dso in rows:
    if pid == fork_pid:
        role = ("calling (JMH) threads" if "jmh-worker" in comm or comm.startswith("dev.awskms") else
                "I/O runtime threads (aws-kms-io)" if comm == "aws-kms-io" else "JVM's own threads (JIT, GC)")
    elif pid == emulator_pid:
        role = "KMS emulator"
    else:
        continue
    if "kernel" in dso:
        kind = "kernel (syscalls, scheduling, wake-ups)"
    elif re.search(r"/(libc|libm|ld-linux[^/]*)[.-][^/]*$", dso):
        kind = "libc (malloc, free, memcpy)"
    elif dso.startswith(("[JIT]", "/tmp/perf-")) or "libjvm" in dso or "libjava" in dso or "libnio" in dso or "libnet" in dso:
        kind = "JVM (JCA, JNI transitions, JIT code)"
    elif "keycloak_aws_kms" in dso:
        kind = next((name for name, pattern in KINDS if re.search(pattern, sym)), "other Rust (ours, std, core, alloc)")
    elif pid == emulator_pid:
        kind = "OpenSSL (RSA signing)" if "libcrypto" in dso else "emulator"
    else:
        kind = f"other ({dso})"
    samples[role][kind] += 1

cpu = [json.loads(line) for line in (out / "cpu.jsonl").read_text().splitlines() if line.strip()]
calls = sum(c["calls"] for c in cpu)
jvm_cpu_us = sum(c["jvmCpuNs"] for c in cpu) / 1e3 / max(calls, 1)
emulator_cpu_us = sum(c["emulatorCpuNs"] for c in cpu) / 1e3 / max(calls, 1)
fork_samples = sum(sum(kinds.values()) for role, kinds in samples.items() if role != "KMS emulator")
emulator_samples = sum(samples["KMS emulator"].values())
scale = {role: (emulator_cpu_us / max(emulator_samples, 1) if role == "KMS emulator" else jvm_cpu_us / max(fork_samples, 1))
         for role in samples}
print(f"`ours`, {algorithm}, {threads} thread(s): {calls} signatures in the measured iteration, "
      f"benchmark JVM {jvm_cpu_us:.0f} µs CPU per signature, emulator {emulator_cpu_us:.0f} µs "
      f"(/proc); perf's samples split them ({fork_samples} of the JVM, {emulator_samples} of the emulator).")
print()
print("| runs on | what | µs CPU per signature | share of the JVM's |")
print("|---|---|---|---|")
for role in ("calling (JMH) threads", "I/O runtime threads (aws-kms-io)", "JVM's own threads (JIT, GC)", "KMS emulator"):
    kinds = samples.get(role, Counter())
    for kind, count in kinds.most_common():
        share = "—" if role == "KMS emulator" else f"{100 * count / max(fork_samples, 1):.1f}%"
        print(f"| {role} | {kind} | {count * scale[role]:.1f} | {share} |")
PY
cat "$out/results.md"
