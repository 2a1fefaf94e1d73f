"""What the HTTP benchmarks (token_issuance.py, client_auth.py) share: wrk runs and their parsing,
CPU and RSS of process groups from /proc, the load average, and an emulator without a request log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
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
