"""The short smoke of the soak (RELIABILITY.md "Time and lifetime"): `scripts/soak/soak.py` for
half a minute instead of ten, in CI. Its own Keycloak (native-lru bounded to 8 sources, so the
churn evicts), tokens signed by an aws-kms key, signed-JWT client authentication and cache churn
at a fixed rate; then Keycloak is stopped under load.

What it asserts is what the 10-minute run shows, in small: no request fails (every token
verifies against the KMS key), the native library holds no more global references than the
cache holds sources, and Keycloak's shutdown with calls in flight is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOAK = ROOT / "scripts" / "soak" / "soak.py"
MINUTES = 0.5


@pytest.mark.timeout(900)
def test_a_short_soak_has_no_errors_no_growing_global_references_and_a_bounded_shutdown(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SOAK), f"--minutes={MINUTES}", f"--out={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=840,
    )
    summary_file = tmp_path / "summary.json"
    assert summary_file.exists(), f"the soak wrote no summary:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    summary = json.loads(summary_file.read_text())
    assert run.returncode == 0, f"soak failed: {json.dumps(summary)[:3000]}\n{run.stderr[-2000:]}"
    assert summary["errors"] == 0, summary["streams"]
    for name, stream in summary["streams"].items():
        assert stream["ok"] > 0, f"the {name} stream made no request: {stream}"
    references = summary["samples"]["jni_global_refs"]
    # One per cached key set; one more may exist for the moment between a reload's store and the
    # release of the set it replaced.
    assert references["max"] <= summary["maxEntries"] + 1, (
        f"more JNI global references than cached sources: {references}"
    )
    assert summary["jwksDownloads"] > 0, "the churn evicted nothing"
    assert summary["shutdownWithinBound"], f"shutdown took {summary['shutdownSeconds']} s"
