"""Issue 10 §1 end to end, per-process bias: signed-JWT client authentication on two Keycloak
processes per storage (native-lru ×2, infinispan ×2, started together), 16 connections.

Run through scripts/bench/client-auth.sh --replicas (the e2e venv). The client-auth step compares
one process per side, and a control process with the same storage as one side differs from it by
as much as the sides differ. Here each side has two processes, run in the order
A1 B1 A2 B2 B2 A2 B1 A1 after a round-robin warm-up: the spread within a side (A1 vs A2, B1 vs B2)
is set beside the difference between the sides. Writes java/target/bench-client-auth-replicas/.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import shutil
import tempfile
from pathlib import Path
from typing import Any

import client_auth
import benchlib
from benchlib import ROOT, load_average, prebuilt_keycloak

import harness  # noqa: E402  (on the path through benchlib)
from public_keys.jwks_server import JwksServer  # noqa: E402

STORAGES = {"A": client_auth.NATIVE, "B": client_auth.INFINISPAN}
ORDER = ("A1", "B1", "A2", "B2", "B2", "A2", "B1", "A1")


def start(env: dict[str, str], workdir: Path, name: str, storage: str) -> harness.Keycloak:
    window = f"min-time-between-requests={client_auth.WINDOW_SECONDS}"
    return client_auth.start_keycloak(env, workdir / name, [harness.provider_jar()],
                                      (f"--spi-public-key-storage--provider={storage}",),
                                      (f"--spi-public-key-storage--{storage}--{window}",))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "java" / "target" / "bench-client-auth-replicas")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = harness.setup_env()
    workdir = Path(tempfile.mkdtemp(prefix="awskms-bench-replicas-"))
    key, published, unknown = client_auth.client_keys()
    jwks_server = JwksServer()
    names = sorted({run for run in ORDER})
    keycloaks: dict[str, harness.Keycloak] = {}
    runs: list[dict[str, Any]] = []
    try:
        # Each storage's home built once, before the concurrent starts (a build takes both cores).
        for storage in sorted(set(STORAGES.values())):
            prebuilt_keycloak(env, [harness.provider_jar()], (f"--spi-public-key-storage--provider={storage}",))
        print(f"==> 4 Keycloaks starting (load {load_average()})", flush=True)
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            futures = {name: pool.submit(start, env, workdir, name, STORAGES[name[0]]) for name in names}
            failure = None
            for name, future in futures.items():
                try:
                    keycloaks[name] = future.result()
                except Exception as error:  # noqa: BLE001 (the finally stops the others, then raise)
                    failure = error
            if failure is not None:
                raise failure
        targets = {}
        for name, keycloak in keycloaks.items():
            # Named by process, not storage: its JWKS endpoint and pool files are its own.
            target = client_auth.Target(name, keycloak, jwks_server, published)
            client_auth.check(target, key, unknown)
            targets[name] = target
        guess: dict[str, float] = {}
        for _ in range(2):
            for name in names:
                warm = client_auth.measured_run(targets[name], workdir, key, 16, 15, 500)
                guess[name] = max(guess.get(name, 0), warm["rate"])
        for name in ORDER:
            row = client_auth.measured_run(targets[name], workdir, key, 16, args.seconds, guess[name])
            row["process"], row["storage"] = name, STORAGES[name[0]]
            runs.append(row)
            print(f"    {name} ({row['storage']}): {row['rate']:.1f} req/s, KC {row['keycloakCpuMsPerRequest']:.2f} "
                  f"ms CPU/req, non-2xx {row['non2xx']}, load {row['loadavg']}", flush=True)
    finally:
        for keycloak in keycloaks.values():
            keycloak.stop()
        jwks_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    benchlib.write_results(args.out, runs, render(runs))
    return 0


def render(runs: list[dict[str, Any]]) -> str:
    def per(key: str, field: str) -> float:
        return client_auth.mean([r[field] for r in runs if r["process"] == key or r["storage"] == key])

    lines = ["| process | storage | req/s (mean of 2 runs) | KC CPU ms/req |", "|---|---|---|---|"]
    for name in ("A1", "A2", "B1", "B2"):
        lines.append(f"| {name} | {STORAGES[name[0]]} | {per(name, 'rate'):.0f} "
                     f"| {per(name, 'keycloakCpuMsPerRequest'):.2f} |")
    a, b = per(client_auth.NATIVE, "rate"), per(client_auth.INFINISPAN, "rate")
    spread = max(per("A1", "rate"), per("A2", "rate")) / min(per("A1", "rate"), per("A2", "rate"))
    spread_b = max(per("B1", "rate"), per("B2", "rate")) / min(per("B1", "rate"), per("B2", "rate"))
    lines += ["", f"native-lru / infinispan (all four processes): **{a / b:.2f}**; spread within a side "
              f"(faster / slower process): native-lru {spread:.2f}, infinispan {spread_b:.2f}; "
              f"CPU/req native-lru {per(client_auth.NATIVE, 'keycloakCpuMsPerRequest'):.2f} vs infinispan "
              f"{per(client_auth.INFINISPAN, 'keycloakCpuMsPerRequest'):.2f} ms"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
