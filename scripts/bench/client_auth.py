"""Issue 10 §1 end to end, §4 and §5: signed-JWT client authentication on real Keycloaks.

Run through scripts/bench/client-auth.sh (which picks the e2e venv). Three Keycloak processes
(the e2e harness, `start --optimized` from homes `kc.sh build` made once per JAR and build
options, kept in the cache; separate homes and ports, started once, at the same time):

- `native-lru`: the provider JAR, `--spi-public-key-storage--provider=native-lru`;
- `infinispan`: the same JAR, `--spi-public-key-storage--provider=infinispan` (Keycloak's storage);
- `no-extension`: the distribution without the JAR (footprint only).

In each, one client authenticates with `private_key_jwt` (client_credentials, an ES256
`client_assertion`) against a JWKS served by a loopback HTTP server that counts its downloads.
Keycloak refuses a replayed `jti`, so wrk posts assertions generated before each run, one per
request (a Lua script reads them from a file, each wrk thread its own share).

§1: requests/s of native-lru vs infinispan at 1/16/64 connections, interleaved A B C C B A, where
    C, the distribution without the JAR (Keycloak's Infinispan storage like B), is the control:
    C / B is how far two processes with the same storage differ on this machine in this run.
§4: the legitimate client's latency at a paced load, alone and beside a paced flood of assertions
    with random kids signed by a key nobody published (native-lru; infinispan too unless --quick),
    with the JWKS downloads the flood caused.
§5: each process's RSS idle and its peak under load.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
from benchlib import ROOT, RssSampler, group_cpu_ns, group_rss_kib, load_average, prebuilt_keycloak, run_wrk

import harness  # noqa: E402  (on the path through benchlib)
from public_keys.client_keys import (  # noqa: E402
    CLIENT_ASSERTION_TYPE, ClientKey, ec_key, jwks, jwt_client, random_kid, rsa_key,
)
from public_keys.jwks_server import JwksServer  # noqa: E402
import requests  # noqa: E402

NATIVE, INFINISPAN, NONE = "native-lru", "infinispan", "no-extension"
SIDES = {"A": NATIVE, "B": INFINISPAN, "C": NONE}
REALM = "bench-client-auth"
CLIENT_ID = "bench-jwt-client"
# The reload window (minTimeBetweenRequests) of both storages; Keycloak's default is 10 s.
WINDOW_SECONDS = 5
# As a 2 GiB container would give it, the same for every process, and touched at startup: the heap
# is then all resident from the start, and RSS differences between the processes are native memory
# (libraries, threads, metaspace, code), not how far each one's young generation got before a GC.
HEAP = "-Xms1g -Xmx1g -XX:+AlwaysPreTouch"
# Requests per second each paced wrk of §4 aims at, as a share of native-lru's 16-connection rate.
PACED_SHARE = 0.25
PACED_CONNECTIONS = 4

LUA = """
-- Posts one line of {path} per request; thread i of n takes lines i, i+n, i+2n, ...
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  bodies = {{}}
  local i = 0
  for line in io.lines("{path}") do
    if i % {threads} == id then bodies[#bodies + 1] = line end
    i = i + 1
  end
  sent = 0
  {delay}
end
function request()
  sent = sent + 1
  return wrk.format("POST", nil, {{["Content-Type"] = "application/x-www-form-urlencoded"}},
                    bodies[(sent - 1) % #bodies + 1])
end
"""


def form_body(assertion: str) -> str:
    return ("grant_type=client_credentials&client_assertion_type="
            + CLIENT_ASSERTION_TYPE.replace(":", "%3A") + "&client_assertion=" + assertion)


def post_form(url: str, body: str) -> requests.Response:
    return requests.post(url, data=body, timeout=60,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})


class Target:
    """One Keycloak process, its client and the JWKS endpoint that client downloads from."""

    def __init__(self, provider: str, keycloak: harness.Keycloak, jwks_server: JwksServer,
                 keys: list[ClientKey]) -> None:
        self.provider, self.keycloak = provider, keycloak
        self.endpoint = jwks_server.endpoint(provider)
        self.endpoint.serve_keys(jwks(*keys))
        self.pgid = os.getpgid(keycloak.process.pid)
        admin = harness.Admin(keycloak.base_url)
        admin.create_realm({"realm": REALM, "enabled": True})
        admin.add_client(REALM, jwt_client(CLIENT_ID, self.endpoint.url))
        self.url = keycloak.token_url(REALM)
        self.audience = keycloak.realm_url(REALM)

    def pool(self, workdir: Path, name: str, key: ClientKey, count: int, random_kids: bool = False) -> Path:
        """`count` request bodies with fresh assertions (unique jti), one a line."""
        path = workdir / f"{self.provider}-{name}.txt"
        with path.open("w") as out:
            for _ in range(count):
                kid = random_kid() if random_kids else None
                out.write(form_body(key.assertion(CLIENT_ID, self.audience, kid)) + "\n")
        return path


def client_keys() -> tuple[ClientKey, list[ClientKey], ClientKey]:
    """The client's signing key, the JWKS it publishes (that key and two others), and a key nobody
    published (for unknown kids)."""
    key = ec_key("bench-ec-current")
    return key, [key, rsa_key("bench-rsa-previous"), ec_key("bench-ec-next")], ec_key("nobody-published-this")


def lua_script(workdir: Path, pool: Path, threads: int, delay_ms: float = 0) -> Path:
    delay = f"function delay() return {delay_ms:.0f} end" if delay_ms > 0 else ""
    path = pool.with_suffix(".lua")
    path.write_text(LUA.format(path=pool, threads=threads, delay=delay))
    return path


def start_keycloak(env: dict[str, str], home: Path, jars: list[Path], build_options: tuple[str, ...],
                   options: tuple[str, ...]) -> harness.Keycloak:
    """One benchmark Keycloak in a new directory `home`, from a prebuilt home (`kc.sh build` with
    these JARs and build-time options, cached): INFO logging, the fixed pre-touched heap."""
    home.mkdir()
    return harness.Keycloak.start(
        Path(env["KEYCLOAK_DIST_TGZ"]), Path(env["KEYCLOAK_JAVA_HOME"]), home, jars,
        extra_args=options, timeout=900, log_level="INFO",
        extra_env={"JAVA_OPTS_KC_HEAP": HEAP},
        prebuilt_home=prebuilt_keycloak(env, jars, build_options),
    )


def start_keycloaks(env: dict[str, str], workdir: Path) -> dict[str, harness.Keycloak]:
    jar = harness.provider_jar()
    window = f"min-time-between-requests={WINDOW_SECONDS}"
    # The storage provider is a build-time option; the window a runtime one.
    setups = {
        NATIVE: ([jar], ("--spi-public-key-storage--provider=native-lru",),
                 (f"--spi-public-key-storage--native-lru--{window}",)),
        INFINISPAN: ([jar], ("--spi-public-key-storage--provider=infinispan",),
                     (f"--spi-public-key-storage--infinispan--{window}",)),
        NONE: ([], (), (f"--spi-public-key-storage--infinispan--{window}",)),
    }
    # Built one after the other (a build takes both cores), then started together.
    for jars, build_options, _ in setups.values():
        prebuilt_keycloak(env, jars, build_options)

    def start(provider: str) -> harness.Keycloak:
        return start_keycloak(env, workdir / provider, *setups[provider])

    with concurrent.futures.ThreadPoolExecutor(len(setups)) as pool:
        futures = {provider: pool.submit(start, provider) for provider in setups}
        started, failure = {}, None
        for provider, future in futures.items():
            try:
                started[provider] = future.result()
            except Exception as error:  # noqa: BLE001 (stop the others, then raise)
                failure = error
    if failure is not None:
        for keycloak in started.values():
            keycloak.stop()
        raise failure
    return started


def check(target: Target, key: ClientKey, unknown: ClientKey) -> None:
    """The client authenticates with its key and is refused with an unknown one."""
    ok = post_form(target.url, form_body(key.assertion(CLIENT_ID, target.audience)))
    if ok.status_code != 200 or "access_token" not in ok.json():
        raise RuntimeError(f"{target.provider}: expected a token, got {ok.status_code} {ok.text[:300]}")
    refused = post_form(
        target.url, form_body(unknown.assertion(CLIENT_ID, target.audience, random_kid())))
    if refused.status_code not in (400, 401):
        raise RuntimeError(f"{target.provider}: a random kid got {refused.status_code} {refused.text[:300]}")


def measured_run(target: Target, workdir: Path, key: ClientKey, clients: int, seconds: float,
                 rate_guess: float) -> dict[str, Any]:
    """One wrk run with `clients` connections, with Keycloak's CPU, RSS peak and JWKS downloads."""
    threads = min(clients, 2)
    # A replayed assertion is refused at once, so running short would inflate the rate: a wide margin.
    count = int(max(rate_guess, 150) * seconds * 3) + 500
    pool = target.pool(workdir, f"c{clients}", key, count)
    lua = lua_script(workdir, pool, threads)
    downloads, cpu = target.endpoint.requests, group_cpu_ns(target.pgid)
    with RssSampler(target.pgid) as rss:
        result = run_wrk(target.url, lua, clients, seconds, threads=threads)
    cpu = group_cpu_ns(target.pgid) - cpu
    return {
        **result, "provider": target.provider, "clients": clients, "pool": count,
        "poolExhausted": result["requests"] > count,
        "keycloakCpuMsPerRequest": cpu / 1e6 / max(result["requests"], 1),
        "peakRssMiB": rss.peak_kib / 1024, "jwksDownloads": target.endpoint.requests - downloads,
        "loadavg": load_average(),
    }


def flood_run(target: Target, workdir: Path, key: ClientKey, unknown: ClientKey, seconds: float,
              rate: float, flood: bool) -> dict[str, Any]:
    """The legitimate client paced at `rate` requests/s, alone or beside a flood paced the same."""
    delay_ms = max(PACED_CONNECTIONS * 1000 / rate, 1)
    legit_pool = target.pool(workdir, "legit", key, int(rate * seconds * 1.5) + 200)
    legit_lua = lua_script(workdir, legit_pool, 1, delay_ms)
    flood_process = None
    downloads, started = target.endpoint.requests, time.monotonic()
    if flood:
        # Assertions that fail at the key lookup are refused before their jti is recorded: a
        # pool of a few thousand random kids may repeat.
        flood_pool = target.pool(workdir, "flood", unknown, 3000, random_kids=True)
        flood_lua = lua_script(workdir, flood_pool, 1, delay_ms)
        command = benchlib.wrk_command(target.url, flood_lua, PACED_CONNECTIONS, seconds + 1, threads=1)
        flood_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
    legit = run_wrk(target.url, legit_lua, PACED_CONNECTIONS, seconds, threads=1)
    row: dict[str, Any] = {"provider": target.provider, "flood": flood, "legit": legit,
                           "pacedRate": rate, "loadavg": load_average()}
    if flood_process is not None:
        output, errors = flood_process.communicate(timeout=seconds + 60)
        if flood_process.returncode != 0:
            raise RuntimeError(f"flood wrk failed: {errors}")
        elapsed = time.monotonic() - started
        flood_result = benchlib.parse_wrk(output)
        row.update(flood=True, floodResult=flood_result, floodSeconds=elapsed,
                   jwksDownloads=target.endpoint.requests - downloads,
                   windows=elapsed / WINDOW_SECONDS)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="16 connections, A B, 3 s runs; flood on native-lru only")
    parser.add_argument("--out", type=Path, default=ROOT / "java" / "target" / "bench-client-auth")
    args = parser.parse_args()
    seconds = 3 if args.quick else 8
    warm_seconds = 5 if args.quick else 15
    flood_seconds = 6 if args.quick else 12
    client_counts = (16,) if args.quick else (1, 16, 64)
    order = ("A", "B") if args.quick else ("A", "B", "C", "C", "B", "A")
    flood_order = (False, True) if args.quick else (False, True, True, False)
    flood_providers = (NATIVE,) if args.quick else (NATIVE, INFINISPAN)
    args.out.mkdir(parents=True, exist_ok=True)

    env = harness.setup_env()
    workdir = Path(tempfile.mkdtemp(prefix="awskms-bench-client-auth-"))
    key, published, unknown = client_keys()
    jwks_server = JwksServer()
    keycloaks: dict[str, harness.Keycloak] = {}
    results: dict[str, Any] = {"quick": args.quick, "windowSeconds": WINDOW_SECONDS, "heap": HEAP,
                               "runs": [], "flood": [], "footprint": {}}
    try:
        print(f"==> 3 Keycloaks {env['KEYCLOAK_VERSION']} starting in {workdir} (load {load_average()})", flush=True)
        begun = time.monotonic()
        keycloaks = start_keycloaks(env, workdir)
        print(f"==> ready in {time.monotonic() - begun:.0f}s", flush=True)
        targets = {provider: Target(provider, keycloak, jwks_server, published)
                   for provider, keycloak in keycloaks.items()}
        for target in targets.values():
            check(target, key, unknown)
        time.sleep(5)
        for provider, target in targets.items():
            results["footprint"][provider] = {"idleRssMiB": group_rss_kib(target.pgid) / 1024,
                                              "threads": benchlib.group_threads(target.pgid)}
        rate_guess: dict[str, float] = {}
        # Round robin, so that no process's JIT gets its warm-up long before the others'.
        for round_ in range(1 if args.quick else 2):
            for provider in (NATIVE, INFINISPAN, NONE):
                print(f"==> warm-up {provider} ({warm_seconds}s, 16 connections)", flush=True)
                warm = measured_run(targets[provider], workdir, key, 16, warm_seconds, 500)
                rate_guess[provider] = max(rate_guess.get(provider, 0), warm["rate"])

        for clients in client_counts:
            for side in order:
                provider = SIDES[side]
                row = measured_run(targets[provider], workdir, key, clients, seconds, rate_guess[provider])
                rate_guess[provider] = max(rate_guess[provider], row["rate"])
                results["runs"].append(row)
                print(f"    {clients:>2} connections {provider:>10}: {row['rate']:7.1f} req/s p50 {row['p50']} ms "
                      f"p99 {row['p99']} ms non-2xx {row['non2xx']} KC {row['keycloakCpuMsPerRequest']:.2f} ms "
                      f"CPU/req, RSS {row['peakRssMiB']:.0f} MiB, load {row['loadavg']}", flush=True)
        if "C" not in order:
            # §5: the distribution without the JAR under the same load, once.
            none = measured_run(targets[NONE], workdir, key, 16, seconds, rate_guess[NONE])
            results["noExtensionRun"] = none
            print(f"    16 connections no-extension: {none['rate']:7.1f} req/s, RSS {none['peakRssMiB']:.0f} MiB",
                  flush=True)

        paced = PACED_SHARE * max(r["rate"] for r in results["runs"] if r["clients"] == 16 and r["provider"] == NATIVE)
        for provider in flood_providers:
            for flood in flood_order:
                row = flood_run(targets[provider], workdir, key, unknown, flood_seconds, paced, flood)
                results["flood"].append(row)
                legit = row["legit"]
                extra = (f", flood {row['floodResult']['rate']:.0f} req/s, {row['jwksDownloads']} JWKS downloads "
                         f"in {row['windows']:.1f} windows" if flood else "")
                print(f"    §4 {provider} {'with' if flood else 'without'} flood: {legit['rate']:.0f} req/s "
                      f"p50 {legit['p50']} p99 {legit['p99']} ms non-2xx {legit['non2xx']}{extra}, "
                      f"load {row['loadavg']}", flush=True)
        for provider, target in targets.items():
            results["footprint"][provider]["peakRssMiB"] = max(
                [r["peakRssMiB"] for r in results["runs"] if r["provider"] == provider]
                + ([results["noExtensionRun"]["peakRssMiB"]]
                   if provider == NONE and "noExtensionRun" in results else []))
            results["footprint"][provider]["startupSeconds"] = target.keycloak.startup_seconds
    finally:
        for provider, keycloak in keycloaks.items():
            keycloak.stop()
            if keycloak.log_path.exists():
                shutil.copy2(keycloak.log_path, args.out / f"keycloak-{provider}.log")
        jwks_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    benchlib.write_results(args.out, results, render(results))
    return 0


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def render(results: dict[str, Any]) -> str:
    lines = [
        "| connections | native-lru req/s | infinispan req/s | **ratio** | target | native-lru p50 / p99 ms "
        "| infinispan p50 / p99 ms | KC CPU ms/req native-lru / infinispan "
        "| control: no-extension / infinispan req/s | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for clients in sorted({r["clients"] for r in results["runs"]}):
        a = [r for r in results["runs"] if r["clients"] == clients and r["provider"] == NATIVE]
        b = [r for r in results["runs"] if r["clients"] == clients and r["provider"] == INFINISPAN]
        c = [r for r in results["runs"] if r["clients"] == clients and r["provider"] == NONE]
        ratio = mean([r["rate"] for r in a]) / mean([r["rate"] for r in b])
        control = f"{mean([r['rate'] for r in c]) / mean([r['rate'] for r in b]):.2f}" if c else "—"
        bad = sum(r["non2xx"] for r in a + b + c)
        exhausted = any(r["poolExhausted"] for r in a + b + c)
        lines.append(
            f"| {clients} | {mean([r['rate'] for r in a]):.0f} | {mean([r['rate'] for r in b]):.0f} | **{ratio:.2f}** "
            f"| ≥ 1.0 {'met' if ratio >= 1.0 else '**missed**'} "
            f"| {mean([r['p50'] for r in a]):.1f} / {mean([r['p99'] for r in a]):.1f} "
            f"| {mean([r['p50'] for r in b]):.1f} / {mean([r['p99'] for r in b]):.1f} "
            f"| {mean([r['keycloakCpuMsPerRequest'] for r in a]):.2f} / "
            f"{mean([r['keycloakCpuMsPerRequest'] for r in b]):.2f} | {control} "
            f"| {', '.join(r['loadavg'] for r in sorted(a + b + c, key=results['runs'].index))}"
            f"{' (non-2xx: %d)' % bad if bad else ''}{' (pool exhausted)' if exhausted else ''} |")
    lines += [
        "",
        "| storage | paced req/s | alone: p50 / p99 ms | with flood: p50 / p99 ms | **p99 ratio** | target ≤ 1.2 "
        "| flood req/s | JWKS downloads / windows | **downloads per window** | target ≤ 1 | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for provider in (NATIVE, INFINISPAN):
        alone = [r for r in results["flood"] if r["provider"] == provider and not r["flood"]]
        flooded = [r for r in results["flood"] if r["provider"] == provider and r["flood"]]
        if not alone or not flooded:
            continue
        p99_alone, p99_flood = mean([r["legit"]["p99"] for r in alone]), mean([r["legit"]["p99"] for r in flooded])
        ratio = p99_flood / p99_alone
        downloads, windows = sum(r["jwksDownloads"] for r in flooded), sum(r["windows"] for r in flooded)
        per_window = max(r["jwksDownloads"] / math.ceil(r["windows"]) for r in flooded)
        bad = sum(r["legit"]["non2xx"] for r in alone + flooded)
        lines.append(
            f"| {provider} | {mean([r['legit']['rate'] for r in alone + flooded]):.0f} "
            f"| {mean([r['legit']['p50'] for r in alone]):.1f} / {p99_alone:.1f} "
            f"| {mean([r['legit']['p50'] for r in flooded]):.1f} / {p99_flood:.1f} | **{ratio:.2f}** "
            f"| {'met' if ratio <= 1.2 else '**missed**'} | {mean([r['floodResult']['rate'] for r in flooded]):.0f} "
            f"| {downloads} / {windows:.1f} | **{per_window:.2f}** | {'met' if per_window <= 1 else '**missed**'} "
            f"| {', '.join(r['loadavg'] for r in sorted(alone + flooded, key=results['flood'].index))}"
            f"{' (legit non-2xx: %d)' % bad if bad else ''} |")
    lines += [
        "",
        "| Keycloak process | idle RSS MiB | peak RSS under load MiB | threads (idle) | startup s |",
        "|---|---|---|---|---|",
    ]
    for provider, f in results["footprint"].items():
        lines.append(f"| {provider} | {f['idleRssMiB']:.0f} | {f.get('peakRssMiB', float('nan')):.0f} "
                     f"| {f.get('threads', '')} | {f.get('startupSeconds', float('nan')):.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
