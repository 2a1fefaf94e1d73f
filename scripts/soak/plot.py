"""Plots a soak's samples (soak.csv, written by soak.py) to soak.png: RSS, threads, open
descriptors, and the JNI global references with the sources cached, against minutes.

    python scripts/soak/plot.py target/soak/soak.csv   # writes target/soak/soak.png
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    csv_path = Path(sys.argv[1])
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        print(f"{csv_path}: no samples", file=sys.stderr)
        return 1
    minutes = [float(r["seconds"]) / 60 for r in rows]

    def column(name: str) -> list[float]:
        return [float(r[name]) for r in rows]

    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    panels = (
        (axes[0][0], "Keycloak RSS (MiB)", [("rss_mib", "RSS")]),
        (axes[0][1], "Threads", [("threads", "threads")]),
        (axes[1][0], "Open file descriptors", [("fds", "descriptors")]),
        (axes[1][1], "JNI global references / sources cached",
         [("jni_global_refs", "global references"), ("lru_entries", "sources (LRU)")]),
    )
    for axis, title, series in panels:
        for name, label in series:
            axis.plot(minutes, column(name), label=label, linewidth=1.2)
        axis.set_title(title)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        if len(series) > 1:
            axis.legend(loc="lower right")
    for axis in axes[1]:
        axis.set_xlabel("minutes")
    requests, errors = int(float(rows[-1]["requests"])), int(float(rows[-1]["errors"]))
    figure.suptitle(f"Soak: {requests} requests, {errors} errors ({csv_path.parent.name}/{csv_path.name})")
    figure.tight_layout()
    out = csv_path.with_suffix(".png")
    figure.savefig(out, dpi=110)
    print(f"==> plot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
