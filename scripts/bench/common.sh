# Helpers the benchmark scripts in this directory share. Source it after ../lib.sh; do not run it.
# shellcheck shell=bash

# wrk (Debian package `wrk`), installed with apt-get when missing and running as root.
need_wrk() {
    command -v wrk >/dev/null && return 0
    [ "$(id -u)" = 0 ] || die "wrk is missing: apt-get install wrk"
    say "wrk: apt-get install wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
}

# The e2e venv scripts/setup.sh made (the HTTP benchmarks reuse the e2e harness).
need_test_venv() {
    [ -x "$AWSKMS_VENV/bin/python" ] || die "no $AWSKMS_VENV: run scripts/setup.sh first"
}

# The plots' own venv ($AWSKMS_CACHE_DIR/bench-venv, scripts/bench/requirements.txt), made or
# updated when that file changes; prints its python.
BENCH_VENV="$AWSKMS_CACHE_DIR/bench-venv"
need_bench_venv() {
    local requirements="$AWSKMS_ROOT/scripts/bench/requirements.txt" stamp="$BENCH_VENV/.requirements.sha256" sum
    sum="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [ ! -x "$BENCH_VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
        say "bench venv: installing scripts/bench/requirements.txt into $BENCH_VENV" >&2
        python3 -m venv "$BENCH_VENV" >&2
        "$BENCH_VENV/bin/pip" install -q -r "$requirements" >&2
        printf '%s\n' "$sum" >"$stamp"
    fi
    printf '%s\n' "$BENCH_VENV/bin/python"
}

say_machine() {
    say "machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Maven with the bench profile: only the benchmarks and their helpers are compiled (tests are not
# needed, and one being edited meanwhile must not stop a run): every *Test.java is left out.
# shellcheck disable=SC2086  # MVN_ARGS is a word list on purpose
mvn_bench() {
    mvn -q -B -Dstyle.color=never ${MVN_ARGS:-} -f "$AWSKMS_ROOT/java/pom.xml" -Pbench \
        "-Dnative.library.path=$AWSKMS_ROOT/target/release/libkeycloak_aws_kms.so" \
        '-Dbench.sources.excluded=**/*Test.java' "$@"
}

# Compiles the benchmarks and snapshots into $1 what a run needs (classes, test classes, the
# classpath in classpath.txt, the native library): other builds may rewrite java/target and
# target/release while it runs. Holds the flock(1) file $BENCH_LOCK, if set, meanwhile.
bench_snapshot() {
    local out="$1"
    if [ -n "${BENCH_LOCK:-}" ]; then
        exec 9>"$BENCH_LOCK"
        flock 9
    fi
    say "mvn -Pbench test-compile (benchmarks and their helpers)"
    mvn_bench test-compile
    rm -rf "$out" && mkdir -p "$out"
    cp -r "$AWSKMS_ROOT/java/target/classes" "$out/classes"
    cp -r "$AWSKMS_ROOT/java/target/test-classes" "$out/test-classes"
    # The maven-dependency-plugin version is pinned here, not in the POM, since only the benchmarks use it.
    mvn_bench org.apache.maven.plugins:maven-dependency-plugin:2.8:build-classpath \
        -Dmdep.includeScope=test "-Dmdep.outputFile=$out/classpath.txt"
    cp "$AWSKMS_ROOT/target/release/libkeycloak_aws_kms.so" "$out/libkeycloak_aws_kms.so"
    if [ -n "${BENCH_LOCK:-}" ]; then
        flock -u 9
        exec 9>&-
    fi
}

# The classpath of a snapshot made by bench_snapshot.
bench_classpath() {
    printf '%s\n' "$1/test-classes:$1/classes:$(cat "$1/classpath.txt")"
}

# Sets `snapshot` to a snapshot of the benchmarks for this step: the one scripts/bench.sh made for
# every step of its run ($BENCH_SNAPSHOT), else a new one in $1 (bench_snapshot).
use_snapshot() {
    if [ -n "${BENCH_SNAPSHOT:-}" ] && [ -s "$BENCH_SNAPSHOT/classpath.txt" ]; then
        snapshot="$BENCH_SNAPSHOT"
    else
        bench_snapshot "$1"
        snapshot="$1"
    fi
}

# Starts the sign-path benchmarks' KMS emulator ($1, the binary) with its two keys, writing its
# address line, log and (from the benchmark) CPU readings into $2; sets emulator_pid and
# sign_path_properties, the -D options SignPathBenchmark reads, and stops the emulator when the
# script exits (a caller's own EXIT trap must stop it too).
start_sign_path_emulator() {
    local access_key_id=AKIABENCHSIGNPATH001 secret_access_key=bench-sign-path-secret-0001
    rm -f "$2/emulator.json"
    "$1" --quiet --listen 127.0.0.1:0 --control-listen 127.0.0.1:0 \
        --credentials "$access_key_id:$secret_access_key" \
        --create-key alias/bench-rsa=RSA_2048 --create-key alias/bench-ec256=ECC_NIST_P256 \
        >"$2/emulator.json" 2>"$2/emulator.log" &
    emulator_pid=$!
    # shellcheck disable=SC2064  # the pid is fixed now, on purpose
    trap "kill $emulator_pid 2>/dev/null || true" EXIT
    for _ in $(seq 100); do
        [ -s "$2/emulator.json" ] && break
        sleep 0.1
    done
    [ -s "$2/emulator.json" ] || die "the emulator did not start: $(cat "$2/emulator.log")"
    local kms_url region
    read -r kms_url region < <(python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).readline()); print(d["kms"], d["region"])' "$2/emulator.json")
    sign_path_properties=("-Dawskms.bench.kms=$kms_url" "-Dawskms.bench.region=$region"
        "-Dawskms.bench.accessKeyId=$access_key_id" "-Dawskms.bench.secretAccessKey=$secret_access_key"
        "-Dawskms.bench.emulatorPid=$emulator_pid" "-Dawskms.bench.cpuOut=$2/cpu.jsonl"
        -Dorg.jboss.logging.provider=slf4j -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
    say "emulator $kms_url (pid $emulator_pid)"
}
