#!/usr/bin/env bash
# PNG plots of the benchmark results java/target/bench*/ holds (scripts/bench/plots.py), written
# to docs/bench/ (BENCHMARKS.md links them). Installs matplotlib into its own venv on first use.
#
#   scripts/bench/plots.sh      # (--quick is accepted and changes nothing)
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=common.sh
. "$AWSKMS_ROOT/scripts/bench/common.sh"
cd "$AWSKMS_ROOT"
python="$(need_bench_venv)"
say "plots (docs/bench/)"
exec "$python" scripts/bench/plots.py
