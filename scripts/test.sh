#!/usr/bin/env bash
# Runs every test of the project, stage by stage, and stops at the first failing stage.
#
#   scripts/test.sh            all stages
#   scripts/test.sh e2e        only the named stages (setup runs first whenever e2e is named),
#                              stage names: setup fmt clippy cargo-test build java java-next e2e
#   scripts/test.sh fuzz-smoke the optional stage (not in "all"): every fuzz target for a few
#                              seconds (scripts/fuzz.sh --smoke; nightly; a clean build of the
#                              targets alone takes longer than CI's budget, see RELIABILITY.md)
#
# java-next compiles the Java side and runs its unit tests against the newest Keycloak artefacts
# Maven Central serves (profile keycloak-next in java/pom.xml), with the native libraries the
# build stage made; it builds into java/target/keycloak-next and leaves the provider JAR alone.
#
# Extra pytest arguments can be given in AWSKMS_PYTEST_ARGS (e.g. "-k faults -x").
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AWSKMS_ROOT"

ALL_STAGES=(setup fmt clippy cargo-test build java java-next e2e)
# Run only when named.
OPTIONAL_STAGES=(fuzz-smoke)
if [ "$#" -gt 0 ]; then
    for stage in "$@"; do
        [[ " ${ALL_STAGES[*]} ${OPTIONAL_STAGES[*]} " == *" $stage "* ]] ||
            die "unknown stage '$stage' (stages: ${ALL_STAGES[*]}; optional: ${OPTIONAL_STAGES[*]})"
    done
    stages=("$@")
    [[ " ${stages[*]} " == *" e2e "* && " ${stages[*]} " != *" setup "* ]] && stages=(setup "${stages[@]}")
else
    stages=("${ALL_STAGES[@]}")
fi

stage_setup() { bash scripts/setup.sh; }
stage_fmt() { cargo fmt --all --check; }
stage_clippy() {
    cargo clippy --locked --release --workspace --all-targets -- -D warnings &&
        cargo clippy --locked --release -p keycloak-aws-kms-jni --features test-hooks -- -D warnings
}
stage_cargo-test() { cargo test --locked --release --workspace; }
stage_build() { bash scripts/build.sh; }
stage_fuzz-smoke() { bash scripts/fuzz.sh --smoke; }
stage_java() { mvn -B --no-transfer-progress -Dstyle.color=never -f java/pom.xml verify; }
stage_java-next() { mvn -B --no-transfer-progress -Dstyle.color=never -f java/pom.xml -Pkeycloak-next test; }
stage_e2e() {
    # Stage functions run in an `if`, where `set -e` does not apply: chain explicitly.
    [ -f "$AWSKMS_SETUP_ENV" ] || return 1
    # shellcheck disable=SC1090  # written by setup.sh
    set -a && . "$AWSKMS_SETUP_ENV" && set +a || return 1
    # shellcheck disable=SC2086
    "$AWSKMS_VENV/bin/python" -m pytest tests/e2e ${AWSKMS_PYTEST_ARGS:-}
}

duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

summary=()
total_start=$SECONDS
for stage in "${stages[@]}"; do
    printf '\n=== stage %s ===\n' "$stage"
    start=$SECONDS
    if "stage_$stage"; then
        line="$(printf '%-11s ok     %s' "$stage" "$(duration $((SECONDS - start)))")"
        summary+=("$line")
        printf -- '--- %s\n' "$line"
    else
        status=$?
        line="$(printf '%-11s FAILED %s (exit %d)' "$stage" "$(duration $((SECONDS - start)))" "$status")"
        summary+=("$line")
        printf '\n=== summary ===\n'
        printf '%s\n' "${summary[@]}"
        [ "$stage" = "${stages[-1]}" ] || die "stage '$stage' failed (exit $status); later stages were not run"
        die "stage '$stage' failed (exit $status)"
    fi
done
printf '\n=== summary ===\n'
printf '%s\n' "${summary[@]}"
say "all ${#stages[@]} stages passed in $(duration $((SECONDS - total_start)))"
