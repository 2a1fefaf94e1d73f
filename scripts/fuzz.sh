#!/usr/bin/env bash
# Fuzzes every parser of outside bytes in rust/core (cargo fuzz, libFuzzer, AddressSanitizer):
# JWKS documents and JWK members, SPKIs and uploaded certificates, KMS and STS answers, and the
# JSON that crosses JNI. The targets are in rust/fuzz (a workspace of its own, built into
# rust/fuzz/target); each starts from its committed seeds (rust/fuzz/seeds/<target>) and keeps
# what it finds in rust/fuzz/corpus/<target> (not committed). RELIABILITY.md "Hostile bytes" has
# the results.
#
#   scripts/fuzz.sh                 every target, 60 s each
#   scripts/fuzz.sh 300             every target, 300 s each
#   scripts/fuzz.sh --smoke         every target, 5 s each (scripts/test.sh fuzz-smoke; CI runs the
#                                   stable seed replay rust/core/tests/fuzz_smoke.rs instead)
#   scripts/fuzz.sh 120 jwks_document spki_der     only these targets
#   scripts/fuzz.sh --build-only    build the targets, run nothing
#   scripts/fuzz.sh --list          the targets
#
# Needs the nightly toolchain (`rustup toolchain install nightly`): cargo fuzz builds with
# sanitizer flags only nightly accepts. cargo-fuzz itself is installed into the cache directory
# ($AWSKMS_CACHE_DIR/tools) with `cargo install --locked cargo-fuzz` the first time.
# A crash stops the run with the input in rust/fuzz/artifacts/<target>/ and the command that
# reproduces it. Runs are niced (the machines are shared).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AWSKMS_ROOT"

FUZZ_DIR="$AWSKMS_ROOT/rust/fuzz"
TOOLS_DIR="$AWSKMS_CACHE_DIR/tools"
SMOKE_SECONDS=5
seconds=60
build_only=false
targets=()

all_targets() { grep -A1 '^\[\[bin\]\]' "$FUZZ_DIR/Cargo.toml" | sed -n 's/^name = "\(.*\)"$/\1/p'; }

for argument in "$@"; do
    case "$argument" in
    --smoke) seconds=$SMOKE_SECONDS ;;
    --build-only) build_only=true ;;
    --list)
        all_targets
        exit 0
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *[!0-9]*) targets+=("$argument") ;;
    *) seconds="$argument" ;;
    esac
done
known="$(all_targets)"
for target in "${targets[@]}"; do
    grep -qx "$target" <<<"$known" || die "unknown fuzz target '$target' (targets: $(echo $known))"
done
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets <<<"$known"

if ! cargo +nightly --version >/dev/null 2>&1; then
    die "the nightly Rust toolchain is not installed, and cargo fuzz needs it (sanitizer flags are nightly-only). Install it with: rustup toolchain install nightly --profile minimal"
fi
export PATH="$TOOLS_DIR/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz into $TOOLS_DIR (cargo install --locked cargo-fuzz)"
    # Built with the stable toolchain, outside the project's pinned one.
    (cd "$TOOLS_DIR/.." && nice -n 10 cargo +stable install --locked cargo-fuzz --root "$TOOLS_DIR")
fi
say "$(cargo +nightly --version), $(cargo fuzz --version)"

# cargo fuzz SUBCOMMAND ARGS…, on rust/fuzz.
fuzz() {
    local subcommand="$1"
    shift
    nice -n 10 cargo +nightly fuzz "$subcommand" --fuzz-dir "$FUZZ_DIR" "$@"
}

started=$SECONDS
say "building ${#targets[@]} fuzz targets (release with debug assertions, AddressSanitizer)"
if [ "${#targets[@]}" -eq "$(wc -l <<<"$known")" ]; then
    fuzz build -O
else
    for target in "${targets[@]}"; do
        fuzz build -O "$target"
    done
fi
say "built in $((SECONDS - started)) s"
$build_only && exit 0

summary=()
for target in "${targets[@]}"; do
    corpus="$FUZZ_DIR/corpus/$target"
    mkdir -p "$corpus" "$FUZZ_DIR/artifacts/$target"
    log="$FUZZ_DIR/artifacts/$target/last-run.log"
    say "fuzzing $target for $seconds s"
    # New inputs go to the first directory (the working corpus); the seeds are only read.
    if fuzz run -O "$target" "$corpus" "$FUZZ_DIR/seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        >"$log" 2>&1; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
        summary+=("$(printf '%-30s ok      %10s executions in %s s' "$target" "${runs:-?}" "$seconds")")
    else
        tail -n 60 "$log" >&2
        artifact="$(grep -o "$FUZZ_DIR/artifacts/$target/[a-z]*-[0-9a-f]*" "$log" | tail -n1 || true)"
        printf '\n=== summary ===\n'
        printf '%s\n' "${summary[@]}"
        die "fuzz target $target failed; input: ${artifact:-see $log}; reproduce with: cargo +nightly fuzz run --fuzz-dir rust/fuzz -O $target ${artifact:-<input>}"
    fi
done
printf '\n=== summary ===\n'
printf '%s\n' "${summary[@]}"
say "all ${#targets[@]} fuzz targets ran without a finding in $((SECONDS - started)) s"
