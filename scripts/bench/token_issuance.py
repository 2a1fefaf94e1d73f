"""Issue 10 §3: client-credentials tokens/s from one Keycloak, an aws-kms key beside Keycloak's own
generated key of the same algorithm, same server, same run, interleaved A B B A.

Run through scripts/bench/token-issuance.sh (which picks the e2e venv). For each KMS latency
(0 ms, 5 ms: the emulator's fault injection), algorithm (ES256, RS256) and number of concurrent
clients (1, 16, 64), wrk drives the token endpoint of realm A (aws-kms key) and realm B (a
generated key) in the order A B B A. Beside each figure: the CPU Keycloak and the emulator spent
per token (from /proc), the emulator's Sign calls, and the load average.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import benchlib
from benchlib import ROOT, group_cpu_ns, load_average, prebuilt_keycloak, run_wrk, start_emulator

import harness  # noqa: E402  (on the path through benchlib)
import realms  # noqa: E402
import requests  # noqa: E402

KEY_SPECS = {"ES256": "ECC_NIST_P256", "RS256": "RSA_2048"}
ACCESS_KEY_ID = "AKIABENCHTOKENS00001"
SECRET_ACCESS_KEY = "bench-token-issuance-secret-0001"


def generated_component(alg: str) -> dict[str, Any]:
    """Keycloak's own generated key for `alg`, at the priority the aws-kms component has."""
    priority = [str(realms.KMS_PROVIDER_PRIORITY)]
    if alg.startswith("ES"):
        return {
            "name": f"own-{alg.lower()}",
            "providerId": "ecdsa-generated",
            "config": {"priority": priority, "ecdsaEllipticCurveKey": ["P-256"]},
        }
    return {
        "name": f"own-{alg.lower()}",
        "providerId": "rsa-generated",
        "config": {"priority": priority, "keySize": ["2048"], "algorithm": [alg]},
    }


def token_header(keycloak: harness.Keycloak, realm: str, login: realms.Login) -> dict[str, Any]:
    response = requests.post(
        keycloak.token_url(realm),
        data={"grant_type": "client_credentials", "client_id": login.client_id,
              "client_secret": login.client_secret},
        timeout=60,
    )
    response.raise_for_status()
    header = response.json()["access_token"].split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 clients, A B, 3 s runs")
    parser.add_argument("--out", type=Path, default=ROOT / "java" / "target" / "bench-token-issuance")
    args = parser.parse_args()
    seconds = 3 if args.quick else 8
    warm_seconds = 3 if args.quick else 10
    client_counts = (16,) if args.quick else (1, 16, 64)
    order = ("A", "B") if args.quick else ("A", "B", "B", "A")
    args.out.mkdir(parents=True, exist_ok=True)

    env = harness.setup_env()
    workdir = Path(tempfile.mkdtemp(prefix="awskms-bench-tokens-"))
    login = realms.Login("bench-client", "bench-client-secret-0001", "bench-user", "bench-password")
    client = realms.confidential_client(login)
    client["serviceAccountsEnabled"] = True
    emulator = start_emulator(workdir, ACCESS_KEY_ID, SECRET_ACCESS_KEY,
                              tuple(f"alias/bench-{alg.lower()}={spec}" for alg, spec in KEY_SPECS.items()))
    keycloak = None
    rows: list[dict[str, Any]] = []
    try:
        print(f"==> Keycloak {env['KEYCLOAK_VERSION']} starting in {workdir}", flush=True)
        jars = [harness.provider_jar()]
        keycloak = harness.Keycloak.start(
            Path(env["KEYCLOAK_DIST_TGZ"]), Path(env["KEYCLOAK_JAVA_HOME"]), workdir, jars,
            timeout=600, log_level="INFO",
            # The home client-auth's native-lru Keycloak uses too: one build serves both.
            prebuilt_home=prebuilt_keycloak(env, jars, ("--spi-public-key-storage--provider=native-lru",)),
        )
        print(f"==> ready in {keycloak.startup_seconds:.0f}s", flush=True)
        admin = harness.Admin(keycloak.base_url)
        lua = workdir / "client-credentials.lua"
        lua.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
            f'wrk.body = "grant_type=client_credentials&client_id={login.client_id}'
            f'&client_secret={login.client_secret}"\n'
        )
        realm_of: dict[tuple[str, str], str] = {}
        for alg in KEY_SPECS:
            for side, providers in (
                ("A", [realms.emulator_component(f"aws-kms-{alg.lower()}", alg,
                                                 f"alias/bench-{alg.lower()}", emulator)]),
                ("B", [generated_component(alg)]),
            ):
                name = f"bench-{'kms' if side == 'A' else 'own'}-{alg.lower()}"
                representation = realms.realm(name, alg, login, key_providers=providers)
                representation["clients"] = [client]
                admin.create_realm(representation)
                realm_of[(alg, side)] = name
                header = token_header(keycloak, name, login)
                keys = {k["kid"]: k for k in admin.keys(name)["keys"]}
                provider = keys.get(header.get("kid"), {}).get("providerId")
                ours = [c["id"] for c in admin.key_providers(name) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]
                if header.get("alg") != alg or (side == "A") != (provider in ours):
                    raise RuntimeError(f"realm {name} signs with {header} (provider {provider}), not the key meant")
        keycloak_pgid = os.getpgid(keycloak.process.pid)
        emulator_pid = emulator.process.pid
        for (alg, side), name in realm_of.items():
            print(f"==> warm-up {name} ({warm_seconds}s, 16 clients)", flush=True)
            run_wrk(keycloak.token_url(name), lua, 16, warm_seconds)

        for latency in (0, 5):
            if latency:
                emulator.set_faults("none", latency_ms=latency, operations=["Sign"])
            else:
                emulator.clear_faults()
            for alg in KEY_SPECS:
                for clients in client_counts:
                    for side in order:
                        name = realm_of[(alg, side)]
                        emulator.reset_stats()
                        kc_cpu, emu_cpu = group_cpu_ns(keycloak_pgid), group_cpu_ns(os.getpgid(emulator_pid))
                        result = run_wrk(keycloak.token_url(name), lua, clients, seconds)
                        kc_cpu = group_cpu_ns(keycloak_pgid) - kc_cpu
                        emu_cpu = group_cpu_ns(os.getpgid(emulator_pid)) - emu_cpu
                        signs = emulator.stats().get("calls", {}).get("Sign", 0)
                        row = {
                            "latencyMs": latency, "alg": alg, "clients": clients, "side": side, **result,
                            "keycloakCpuMsPerToken": kc_cpu / 1e6 / max(result["requests"], 1),
                            "emulatorCpuMsPerSign": emu_cpu / 1e6 / signs if signs else None,
                            "signs": signs, "loadavg": load_average(),
                        }
                        rows.append(row)
                        print(f"    {latency} ms {alg} {clients:>2} clients {side}: {result['rate']:8.1f} tokens/s "
                              f"p50 {result['p50']} ms p99 {result['p99']} ms non-2xx {result['non2xx']} "
                              f"KC {row['keycloakCpuMsPerToken']:.2f} ms CPU/token, load {row['loadavg']}", flush=True)
        emulator.clear_faults()
    finally:
        if keycloak is not None:
            keycloak.stop()
        emulator.stop()
        # Keep the logs, drop the unpacked Keycloak (~200 MB).
        for log in ("keycloak.log", "kms-emulator.log"):
            if (workdir / log).exists():
                shutil.copy2(workdir / log, args.out / log)
        shutil.rmtree(workdir, ignore_errors=True)
    benchlib.write_results(args.out, rows, render(rows))
    return 0


def render(rows: list[dict[str, Any]]) -> str:
    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    lines = [
        "| KMS latency | alg | clients | aws-kms tokens/s | own key tokens/s | **ratio** | target | aws-kms p50 / p99 ms | own p50 / p99 ms "
        "| KC CPU ms/token aws-kms / own | emulator CPU ms/Sign | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[int, str, int], dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        groups.setdefault((row["latencyMs"], row["alg"], row["clients"]), {}).setdefault(row["side"], []).append(row)
    for (latency, alg, clients), sides in groups.items():
        a, b = sides.get("A", []), sides.get("B", [])
        rate_a, rate_b = mean([r["rate"] for r in a]), mean([r["rate"] for r in b])
        ratio = rate_a / rate_b if rate_b else float("nan")
        target = "≥ 0.9" if latency == 0 else "grows with clients"
        met = ("met" if ratio >= 0.9 else "**missed**") if latency == 0 else ""
        emu = [r["emulatorCpuMsPerSign"] for r in a if r["emulatorCpuMsPerSign"] is not None]
        bad = sum(r["non2xx"] for r in a + b)
        lines.append(
            f"| {latency} ms | {alg} | {clients} | {rate_a:.0f} | {rate_b:.0f} | **{ratio:.2f}** | {target} {met} "
            f"| {mean([r['p50'] for r in a]):.1f} / {mean([r['p99'] for r in a]):.1f} "
            f"| {mean([r['p50'] for r in b]):.1f} / {mean([r['p99'] for r in b]):.1f} "
            f"| {mean([r['keycloakCpuMsPerToken'] for r in a]):.2f} / {mean([r['keycloakCpuMsPerToken'] for r in b]):.2f} "
            f"| {mean(emu):.3f} | {', '.join(r['loadavg'] for r in a + b)}{' (non-2xx: %d)' % bad if bad else ''} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
