"""PNG plots of the benchmark results (scripts/bench/plots.sh; linked from BENCHMARKS.md).

Reads what the other steps wrote under java/target/bench*/ and draws, for each result present:
throughput against concurrency, with the latency percentiles wrk reports beside it, and the
footprint. A step that did not run is skipped (and named).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "java" / "target"
PERCENTILES = ("p50", "p75", "p90", "p99")


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


def throughput_and_latency(title, series, path, x_label):
    """series: label -> {x: [rows]} with rate and p50..p99 (ms) per row."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, by_x in series.items():
        xs = sorted(by_x)
        line, = left.plot(xs, [mean([r["rate"] for r in by_x[x]]) for x in xs], marker="o", label=label)
        for x in xs:
            available = [p for p in PERCENTILES if by_x[x][0].get(p) is not None]
            right.plot([int(p[1:]) for p in available], [mean([r[p] for r in by_x[x]]) for p in available],
                       marker=".", color=line.get_color(), alpha=0.35 + 0.65 * (xs.index(x) + 1) / len(xs),
                       label=f"{label}, {x}")
    left.set(xscale="log", xlabel=x_label, ylabel="requests/s", title="throughput (mean of runs)")
    left.set_xticks(sorted({x for s in series.values() for x in s}))
    left.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    right.set(yscale="log", xlabel="percentile", ylabel="latency ms", title="latency percentiles (wrk)")
    right.set_xticks([50, 75, 90, 99])
    right.legend(fontsize=6, ncol=2)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def client_auth(out: Path) -> list[str]:
    source = TARGET / "bench-client-auth" / "results.json"
    if not source.exists():
        return [f"skipped client-auth ({source} missing)"]
    results = json.loads(source.read_text())
    series = defaultdict(lambda: defaultdict(list))
    for row in results["runs"]:
        series[row["provider"]][row["clients"]].append(row)
    throughput_and_latency("Signed-JWT client authentication: native-lru vs infinispan, "
                           "no-extension as a control (one run, A B C C B A)",
                           series, out / "client-auth.png", "connections")
    made = ["client-auth.png"]
    if results["flood"]:
        figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for axis, provider in zip(axes, ("native-lru", "infinispan")):
            rows = [r for r in results["flood"] if r["provider"] == provider]
            for flood, color in ((False, "tab:blue"), (True, "tab:red")):
                for i, row in enumerate(r for r in rows if r["flood"] == flood):
                    legit = row["legit"]
                    available = [p for p in PERCENTILES if legit.get(p) is not None]
                    extra = f", {row['jwksDownloads']} JWKS downloads" if flood else ""
                    axis.plot([int(p[1:]) for p in available], [legit[p] for p in available], marker="o",
                              color=color, alpha=1 - 0.4 * i,
                              label=f"{'with' if flood else 'without'} flood, run {i + 1}{extra}")
            if not rows:
                axis.set_axis_off()
                axis.set_title(f"{provider}: not run (--quick)")
                continue
            axis.set(yscale="log", xlabel="percentile", ylabel="latency ms",
                     title=f"{provider}: legitimate client, paced")
            axis.set_xticks([50, 75, 90, 99])
            axis.legend(fontsize=7)
        figure.suptitle("Unknown-kid flood: the legitimate client's latency with and without it")
        figure.tight_layout()
        figure.savefig(out / "unknown-kid-flood.png", dpi=110)
        plt.close(figure)
        made.append("unknown-kid-flood.png")
    footprint = results.get("footprint") or {}
    if footprint:
        figure, axis = plt.subplots(figsize=(6.5, 4))
        names = list(footprint)
        width = 0.38
        axis.bar([i - width / 2 for i in range(len(names))], [footprint[n]["idleRssMiB"] for n in names], width,
                 label="idle")
        axis.bar([i + width / 2 for i in range(len(names))], [footprint[n].get("peakRssMiB", 0) for n in names],
                 width, label="peak under load")
        axis.set_xticks(range(len(names)), names)
        axis.set(ylabel="RSS MiB", title=f"Keycloak RSS (heap {results.get('heap', '')})")
        axis.legend()
        figure.tight_layout()
        figure.savefig(out / "keycloak-rss.png", dpi=110)
        plt.close(figure)
        made.append("keycloak-rss.png")
    return made


def token_issuance(out: Path) -> list[str]:
    source = TARGET / "bench-token-issuance" / "results.json"
    if not source.exists():
        return [f"skipped token-issuance ({source} missing)"]
    rows = json.loads(source.read_text())
    made = []
    for latency in sorted({r["latencyMs"] for r in rows}):
        series = defaultdict(lambda: defaultdict(list))
        for row in rows:
            if row["latencyMs"] == latency:
                side = "aws-kms" if row["side"] == "A" else "own key"
                series[f"{row['alg']} {side}"][row["clients"]].append(row)
        name = f"token-issuance-{latency}ms.png"
        throughput_and_latency(f"Client-credentials tokens: aws-kms key vs Keycloak's own, KMS latency {latency} ms",
                               series, out / name, "concurrent clients")
        made.append(name)
    return made


def sign_path(out: Path) -> list[str]:
    paths = glob.glob(str(TARGET / "bench-sign-path" / "t*.json"))
    if not paths:
        return ["skipped sign-path (no java/target/bench-sign-path/t*.json)"]
    series = defaultdict(dict)
    for path in paths:
        for r in json.loads(Path(path).read_text()):
            name = r["benchmark"].rsplit(".", 1)[1]
            series[(r["params"]["algorithm"], name)][r["threads"]] = r["threads"] * 1e6 / r["primaryMetric"]["score"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = {"rawHttp": "raw HTTP (floor)", "ours": "ours (JCA → JNI → Rust)", "awsSdkJava": "AWS SDK for Java v2"}
    for axis, alg in zip(axes, ("ES256", "RS256")):
        for name, label in labels.items():
            points = series.get((alg, name))
            if points:
                xs = sorted(points)
                axis.plot(xs, [points[x] for x in xs], marker="o", label=label)
        axis.set(xscale="log", xlabel="threads", ylabel="signatures/s", title=alg)
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=8)
    figure.suptitle("Sign path against the KMS emulator (0 ms added latency)")
    figure.tight_layout()
    figure.savefig(out / "sign-path.png", dpi=110)
    plt.close(figure)
    return ["sign-path.png"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for made in (sign_path(args.out), token_issuance(args.out), client_auth(args.out)):
        for item in made:
            print(f"    {item if item.startswith('skipped') else os.path.relpath(args.out / item, ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
