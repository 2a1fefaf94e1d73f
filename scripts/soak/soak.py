"""Issue 9, "Time and lifetime": a soak of one Keycloak at a fixed rate, sampling what must stay flat.

Run through scripts/soak.sh (which picks the e2e venv and plots with scripts/soak/plot.py). One
Keycloak (the e2e harness, start-dev, the provider JAR, `native-lru` public key storage with a
small LRU) and the KMS emulator; three request streams at fixed rates for `--minutes`:

- `tokens`: client_credentials with a client secret; the access token is signed by an `aws-kms`
  ES256 key (one KMS `Sign`), and verified here against the realm's published key;
- `jwt`: client_credentials authenticated with a signed JWT (private_key_jwt), the client's keys
  downloaded from a loopback JWKS server, verified the same way;
- `churn`: the same from CHURN_CLIENTS clients, each with a JWKS endpoint of its own, round robin:
  more sources than the LRU holds (`max-entries`), so most of them are evicted and downloaded again.

Every few seconds: Keycloak's RSS, threads and open descriptors (/proc), and from its metrics
endpoint the JNI global references the native library holds and the sources cached. Writes
soak.csv, summary.json and the logs to the output directory. Any request that does not end in a
verified token counts as an error; the exit status is 1 if there were errors. At the end Keycloak
is stopped (SIGTERM) while the load still runs, and the time it takes to exit is recorded: the
native runtime must not hold up a shutdown.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import harness  # noqa: E402
import jwt  # noqa: E402
import realms  # noqa: E402
import requests  # noqa: E402
from public_keys.client_keys import ec_key, jwks, jwt_client  # noqa: E402
from public_keys.jwks_server import JwksServer  # noqa: E402

REALM = "soak"
ALG = "ES256"
KEY_ALIAS = "alias/soak-es256"
ACCESS_KEY_ID = "AKIASOAKTEST00000001"
SECRET_ACCESS_KEY = "soak-secret-access-key-0001"
JWT_CLIENT = "soak-jwt"
CHURN_CLIENTS = 24
# The LRU holds a third of the churning sources (plus the main JWT client's).
MAX_ENTRIES = 8
# Requests per second of each stream.
RATES = {"tokens": 8.0, "jwt": 4.0, "churn": 4.0}
SAMPLE_SECONDS = 5.0
# As the benchmarks: a fixed heap, so that RSS can level off.
HEAP = "-Xms512m -Xmx512m"
# A SIGTERM that takes longer than this to end Keycloak is a hang (the harness kills at 30 s).
SHUTDOWN_BOUND_SECONDS = 25.0


class Stream:
    """One request stream at a fixed rate on its own thread: request n starts at start + n/rate
    (late requests start at once, without bursts beyond the backlog); counts and first errors."""

    def __init__(self, name: str, rate: float, request: Callable[[int], Optional[str]]) -> None:
        self.name, self.rate, self._request = name, rate, request
        self.ok = self.errors = 0
        self.first_errors: list[str] = []
        self.latencies_ms: list[float] = []
        self._stop = threading.Event()
        self.counting = True
        self._thread = threading.Thread(target=self._run, name=f"soak-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = started + n / self.rate
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            begun = time.monotonic()
            try:
                problem = self._request(n)
            except Exception as error:  # noqa: BLE001 (every failure is an error of the run)
                problem = f"{type(error).__name__}: {error}"
            if not self.counting:
                n += 1
                continue
            self.latencies_ms.append((time.monotonic() - begun) * 1000)
            if problem is None:
                self.ok += 1
            else:
                self.errors += 1
                if len(self.first_errors) < 10:
                    self.first_errors.append(f"#{n}: {problem[:300]}")
            n += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


class Verifier:
    """Checks tokens against the realm's published signing keys (fetched once, by kid)."""

    def __init__(self, keycloak: harness.Keycloak) -> None:
        self._keys = {k["kid"]: jwt.PyJWK(k) for k in keycloak.certs(REALM)["keys"] if k.get("alg") == ALG}
        self._audience = None

    def problem(self, response: requests.Response) -> Optional[str]:
        if response.status_code != 200:
            return f"HTTP {response.status_code} {response.text[:200]}"
        token = response.json().get("access_token")
        if not token:
            return f"no access_token in {response.text[:200]}"
        kid = jwt.get_unverified_header(token).get("kid")
        key = self._keys.get(kid)
        if key is None:
            return f"token signed with kid {kid}, not the aws-kms key"
        try:
            jwt.decode(token, key=key, algorithms=[ALG], options={"verify_aud": False})
        except jwt.PyJWTError as error:
            return f"token does not verify: {error}"
        return None


def java_pid(keycloak: harness.Keycloak) -> int:
    """Keycloak's JVM: the java process of the group kc.sh started."""
    pgid = os.getpgid(keycloak.process.pid)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "java" and int(stat[stat.rindex(")") + 2:].split()[2]) == pgid:
            return int(entry)
    raise RuntimeError("no java process in Keycloak's process group")


def process_sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss_mib": rss / 1024, "threads": threads, "fds": fds}


def metrics_sample(keycloak: harness.Keycloak) -> dict[str, float]:
    text = requests.get(f"{keycloak.management_url}/metrics", timeout=10).text
    wanted = {
        "jni_global_refs": "keycloak_aws_kms_jni_global_references",
        "lru_entries": "keycloak_aws_kms_public_keys_entries",
        "jwks_downloads": 'keycloak_aws_kms_public_keys_downloads_total{outcome="success"}',
        "kms_signs": 'keycloak_aws_kms_requests_total{operation="Sign",outcome="success"}',
    }
    values: dict[str, float] = {}
    for column, name in wanted.items():
        match = re.search(r"^" + re.escape(name) + r"(?:\{[^}]*\})?\s+(\S+)$", text, re.M)
        values[column] = float(match.group(1)) if match else float("nan")
    return values


def setup_realm(keycloak: harness.Keycloak, emulator: harness.Emulator, jwks_server: JwksServer,
                login: realms.Login) -> tuple[Any, list[Any]]:
    admin = harness.Admin(keycloak.base_url)
    component = realms.emulator_component("soak-kms", ALG, KEY_ALIAS, emulator)
    representation = realms.realm(REALM, ALG, login, key_providers=[component])
    client = realms.confidential_client(login)
    client["serviceAccountsEnabled"] = True
    representation["clients"] = [client]
    admin.create_realm(representation)
    main_key = ec_key("soak-jwt-key")
    endpoint = jwks_server.endpoint(JWT_CLIENT)
    endpoint.serve_keys(jwks(main_key))
    admin.add_client(REALM, jwt_client(JWT_CLIENT, endpoint.url))
    churn_keys = []
    for i in range(CHURN_CLIENTS):
        key = ec_key(f"soak-churn-{i}")
        churn_endpoint = jwks_server.endpoint(f"churn-{i}")
        churn_endpoint.serve_keys(jwks(key))
        admin.add_client(REALM, jwt_client(f"soak-churn-{i}", churn_endpoint.url))
        churn_keys.append(key)
    return main_key, churn_keys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the measured load (default 10)")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "soak")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = harness.setup_env()
    workdir = Path(tempfile.mkdtemp(prefix="awskms-soak-"))
    login = realms.Login("soak-client", "soak-client-secret-0001", "soak-user", "soak-password")
    emulator = harness.Emulator.start(workdir / "kms-emulator.log", ACCESS_KEY_ID, SECRET_ACCESS_KEY,
                                      create_keys=(f"{KEY_ALIAS}=ECC_NIST_P256",))
    jwks_server = JwksServer()
    keycloak: Optional[harness.Keycloak] = None
    streams: list[Stream] = []
    summary: dict[str, Any] = {"minutes": args.minutes, "rates": RATES, "maxEntries": MAX_ENTRIES,
                               "churnClients": CHURN_CLIENTS}
    try:
        print(f"==> Keycloak {env['KEYCLOAK_VERSION']} starting in {workdir}", flush=True)
        keycloak = harness.Keycloak.start(
            Path(env["KEYCLOAK_DIST_TGZ"]), Path(env["KEYCLOAK_JAVA_HOME"]), workdir,
            [harness.provider_jar()], timeout=600, log_level="INFO",
            extra_args=("--metrics-enabled=true",
                        "--spi-public-key-storage--provider=native-lru",
                        f"--spi-public-key-storage--native-lru--max-entries={MAX_ENTRIES}",
                        # Each churning client comes round every CHURN_CLIENTS / rate = 6 s.
                        "--spi-public-key-storage--native-lru--min-time-between-requests=1"),
            extra_env={"JAVA_OPTS_KC_HEAP": HEAP},
        )
        print(f"==> ready in {keycloak.startup_seconds:.0f}s", flush=True)
        main_key, churn_keys = setup_realm(keycloak, emulator, jwks_server, login)
        verifier = Verifier(keycloak)
        token_url, audience = keycloak.token_url(REALM), keycloak.realm_url(REALM)
        sessions = {name: requests.Session() for name in RATES}

        def tokens(_: int) -> Optional[str]:
            return verifier.problem(sessions["tokens"].post(token_url, timeout=30, data={
                "grant_type": "client_credentials", "client_id": login.client_id,
                "client_secret": login.client_secret}))

        def signed_jwt(key: Any, client_id: str, session: requests.Session) -> Optional[str]:
            return verifier.problem(session.post(token_url, timeout=30, data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": key.assertion(client_id, audience)}))

        def jwt_main(_: int) -> Optional[str]:
            return signed_jwt(main_key, JWT_CLIENT, sessions["jwt"])

        def churn(n: int) -> Optional[str]:
            i = n % CHURN_CLIENTS
            return signed_jwt(churn_keys[i], f"soak-churn-{i}", sessions["churn"])

        # A warm-up that every stream passes once, so that a broken setup fails fast.
        for name, request in (("tokens", tokens), ("jwt", jwt_main), ("churn", churn)):
            problem = request(0)
            if problem:
                raise RuntimeError(f"warm-up {name}: {problem}")
        pid = java_pid(keycloak)
        streams = [Stream("tokens", RATES["tokens"], tokens), Stream("jwt", RATES["jwt"], jwt_main),
                   Stream("churn", RATES["churn"], churn)]
        csv_path = args.out / "soak.csv"
        columns = ["seconds", "rss_mib", "threads", "fds", "jni_global_refs", "lru_entries",
                   "jwks_downloads", "kms_signs", "requests", "errors"]
        print(f"==> {args.minutes:g} min at {sum(RATES.values()):g} requests/s "
              f"({', '.join(f'{k} {v:g}/s' for k, v in RATES.items())}); samples every {SAMPLE_SECONDS:g} s "
              f"to {csv_path}", flush=True)
        with csv_path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            started = time.monotonic()
            for stream in streams:
                stream.start()
            end = started + args.minutes * 60
            next_sample = started
            while True:
                now = time.monotonic()
                row = {"seconds": round(now - started, 1), **process_sample(pid), **metrics_sample(keycloak),
                       "requests": sum(s.ok + s.errors for s in streams),
                       "errors": sum(s.errors for s in streams)}
                writer.writerow(row)
                out.flush()
                if int(row["seconds"]) % 60 < SAMPLE_SECONDS:
                    print(f"    {row['seconds']:6.0f}s RSS {row['rss_mib']:.0f} MiB, {row['threads']} threads, "
                          f"{row['fds']} fds, {row['jni_global_refs']:.0f} global refs, "
                          f"{row['lru_entries']:.0f} sources, {row['requests']} requests, "
                          f"{row['errors']} errors", flush=True)
                if now >= end:
                    break
                next_sample += SAMPLE_SECONDS
                time.sleep(max(0.0, min(next_sample, end) - time.monotonic()))
        elapsed = time.monotonic() - started
        for stream in streams:
            stream.counting = False
        summary["streams"] = {
            s.name: {"ok": s.ok, "errors": s.errors, "firstErrors": s.first_errors,
                     "achievedRate": round((s.ok + s.errors) / elapsed, 2),
                     "p50Ms": percentile(s.latencies_ms, 50), "p99Ms": percentile(s.latencies_ms, 99),
                     "maxMs": round(max(s.latencies_ms), 1) if s.latencies_ms else None}
            for s in streams}
        summary["errors"] = sum(s.errors for s in streams)
        summary["requests"] = sum(s.ok + s.errors for s in streams)
        summary["jwksDownloads"] = sum(e.requests for e in
                                       (jwks_server.endpoint_at(f"/jwks/churn-{i}") for i in range(CHURN_CLIENTS)))
        summary["emulatorSigns"] = emulator.calls().get("Sign")
        summary["samples"] = flatness(csv_path)
        # Stop Keycloak with the load still running: requests in flight in the native runtime.
        print("==> stopping Keycloak (SIGTERM) under load", flush=True)
        stopping = time.monotonic()
        keycloak.stop()
        summary["shutdownSeconds"] = round(time.monotonic() - stopping, 1)
        summary["shutdownWithinBound"] = summary["shutdownSeconds"] < SHUTDOWN_BOUND_SECONDS
        keycloak = None
    finally:
        for stream in streams:
            stream.stop()
        if keycloak is not None:
            keycloak.stop()
        jwks_server.stop()
        emulator.stop()
        for log in ("keycloak.log", "kms-emulator.log"):
            if (workdir / log).exists():
                shutil.copy2(workdir / log, args.out / log)
        shutil.rmtree(workdir, ignore_errors=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    failed = summary["errors"] > 0 or not summary["shutdownWithinBound"]
    print(f"==> {'FAILED' if failed else 'passed'}: {summary['requests']} requests, {summary['errors']} errors, "
          f"shutdown {summary['shutdownSeconds']} s", flush=True)
    return 1 if failed else 0


def percentile(values: list[float], p: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 1)


def flatness(csv_path: Path) -> dict[str, Any]:
    """Each sampled column: first, min, max, last, and the medians of the run's second and last
    quarters (the first quarter is warm-up: JIT, heap growing to its fixed size)."""
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    result: dict[str, Any] = {"count": len(rows)}
    if not rows:
        return result
    quarter = max(1, len(rows) // 4)
    for column in ("rss_mib", "threads", "fds", "jni_global_refs", "lru_entries"):
        values = [float(r[column]) for r in rows]
        second, last = sorted(values[quarter:2 * quarter]), sorted(values[-quarter:])
        result[column] = {
            "first": values[0], "min": min(values), "max": max(values), "last": values[-1],
            "medianSecondQuarter": second[len(second) // 2] if second else None,
            "medianLastQuarter": last[len(last) // 2] if last else None,
        }
    return result


if __name__ == "__main__":
    sys.exit(main())
