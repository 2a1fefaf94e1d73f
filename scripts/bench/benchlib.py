"""What the HTTP benchmarks (token_issuance.py, client_auth.py) share: wrk runs and their parsing,
CPU and RSS of process groups from /proc, the load average, and an emulator without a request log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import harness  # noqa: E402

CLOCK_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def start_emulator(workdir: Path, access_key_id: str, secret_access_key: str,
                   create_keys: tuple[str, ...] = ()) -> harness.Emulator:
    """The emulator with --quiet (no request log: its writes would be measured as its CPU)."""
    log_path = workdir / "kms-emulator.log"
    # A copy: other builds may rewrite target/release meanwhile.
    binary = workdir / "kms-emulator"
    shutil.copy2(harness.EMULATOR_BINARY, binary)
    args = [
        str(binary), "--quiet",
        "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0",
        "--region", harness.REGION,
        "--credentials", f"{access_key_id}:{secret_access_key}",
    ]
    for spec in create_keys:
        args += ["--create-key", spec]
    with log_path.open("ab") as log:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    assert process.stdout is not None
    info = json.loads(process.stdout.readline())
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return harness.Emulator(
        process=process, kms_url=info["kms"], control_url=info["control"], region=info["region"],
        keys=dict(info.get("keys") or {}), access_key_id=access_key_id,
        secret_access_key=secret_access_key, log_path=log_path,
    )


def group_pids(pgid: int) -> list[int]:
    """The processes of a process group (field 5 of /proc/PID/stat)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[2]) == pgid:
            pids.append(int(entry))
    return pids


def group_cpu_ns(pgid: int) -> int:
    """utime + stime of every process in a process group."""
    total = 0
    for pid in group_pids(pgid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) * CLOCK_TICK_NS
    return total


def group_rss_kib(pgid: int) -> int:
    """VmRSS of every process in a process group, KiB."""
    total = 0
    for pid in group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(match.group(1)) if match else 0
    return total


def group_threads(pgid: int) -> int:
    """Threads of every process in a process group."""
    total = 0
    for pid in group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^Threads:\s+(\d+)", status, re.M)
        total += int(match.group(1)) if match else 0
    return total


class RssSampler:
    """The largest RSS of a process group while a `with` block runs, sampled every `interval` s."""

    def __init__(self, pgid: int, interval: float = 0.5) -> None:
        self._pgid, self._interval = pgid, interval
        self._stop = threading.Event()
        self.peak_kib = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, group_rss_kib(self._pgid))
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def parse_duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def wrk_command(url: str, lua: Path, clients: int, seconds: float, lua_args: tuple[str, ...] = (),
                threads: Optional[int] = None) -> list[str]:
    command = [
        "wrk", f"-t{threads or min(clients, 2)}", f"-c{clients}", f"-d{seconds}s", "--latency",
        "--timeout", "10s", "-s", str(lua), url,
    ]
    return command + (["--", *lua_args] if lua_args else [])


def parse_wrk(output: str) -> dict[str, Any]:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    latency = {p: parse_duration_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rate": rate, "requests": total, "p50": latency.get("50"), "p75": latency.get("75"),
        "p90": latency.get("90"), "p99": latency.get("99"),
        "non2xx": int(bad.group(1)) if bad else 0, "socketErrors": errors.group(1) if errors else "",
    }


def run_wrk(url: str, lua: Path, clients: int, seconds: float, lua_args: tuple[str, ...] = (),
            threads: Optional[int] = None) -> dict[str, Any]:
    """One wrk run; its rate, request count, latency percentiles (ms) and errors."""
    command = wrk_command(url, lua, clients, seconds, lua_args, threads)
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def write_results(out: Path, data: Any, report: str) -> None:
    """A step's raw data (results.json) and Markdown table (results.md), the table also printed."""
    (out / "results.json").write_text(json.dumps(data, indent=1))
    (out / "results.md").write_text(report)
    print(report)


# Options `kc.sh build` bakes into every prebuilt benchmark home: plain local caches (one node)
# and the dev-file database, as start-dev has, and the health endpoint the harness waits on.
BUILD_OPTIONS = ("--cache=local", "--db=dev-file", "--health-enabled=true")


def prebuilt_keycloak(env: dict[str, str], jars: list[Path], build_options: tuple[str, ...]) -> Path:
    """A Keycloak home augmented once by `kc.sh build` with these provider JARs and build-time
    options, kept in the cache directory under a name hashed from the distribution, the JARs'
    contents and the options; `harness.Keycloak.start(prebuilt_home=…)` copies it and runs
    `start --optimized`. Start-dev re-augments on every start (~40 s of 2 cores each)."""
    digest = hashlib.sha256()
    for item in (Path(env["KEYCLOAK_DIST_TGZ"]).name, *BUILD_OPTIONS, *build_options):
        digest.update(item.encode() + b"\0")
    for jar in jars:
        digest.update(hashlib.sha256(jar.read_bytes()).digest())
    cache = Path(os.environ.get("AWSKMS_CACHE_DIR") or Path.home() / ".cache" / "keycloak-aws-kms") / "bench-keycloak"
    built = cache / digest.hexdigest()[:20]
    homes = sorted(built.glob("keycloak-*/bin/kc.sh"))
    if (built / "built").is_file() and len(homes) == 1:
        return homes[0].parent.parent
    cache.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="building-", dir=cache))
    home = harness.unpack_keycloak(Path(env["KEYCLOAK_DIST_TGZ"]), building, jars)
    build_env = {k: v for k, v in os.environ.items() if not k.startswith(("KC_", "KEYCLOAK_"))}
    build_env["JAVA_HOME"] = env["KEYCLOAK_JAVA_HOME"]
    options = (*BUILD_OPTIONS, *build_options)
    print(f"==> kc.sh build {' '.join(options)} (kept in {built})", flush=True)
    subprocess.run([str(home / "bin" / "kc.sh"), "build", *options],
                   env=build_env, check=True, stdout=subprocess.DEVNULL)
    (building / "built").write_text("\n".join(options) + "\n")
    if (built / "built").is_file():  # another run built the same home meanwhile: keep that one
        shutil.rmtree(building, ignore_errors=True)
    else:
        shutil.rmtree(built, ignore_errors=True)
        building.rename(built)
    # Each home is ~250 MB: keep the newest few (one run needs three), drop older JARs' homes.
    kept = sorted((d for d in cache.iterdir() if (d / "built").is_file()),
                  key=lambda d: (d / "built").stat().st_mtime, reverse=True)
    for old in kept[6:]:
        shutil.rmtree(old, ignore_errors=True)
    return built / home.name
