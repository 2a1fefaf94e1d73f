"""The cluster under test: `scripts/cluster.sh` starts and stops PostgreSQL and the Keycloak nodes;
this module runs it and reads the state files it writes (their list: the script's header).

Node processes belong to the script, not to this process: whatever happens, `Cluster.down()`
stops them and PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import harness

SCRIPT = harness.ROOT / "scripts" / "cluster.sh"
NODE_NAMES = ("a", "b")
# What one script call may take: a node's start-up (schema creation on an empty database
# included) on a busy two-core machine.
SCRIPT_TIMEOUT_SECONDS = 420


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = value.strip()
    return values


@dataclass
class Node(harness.Keycloak):
    """One node, with the HTTP helpers of the single-node harness (token, introspection, certs)."""

    name: str = ""
    cluster: Optional["Cluster"] = None

    def realm_issuer(self, realm: str) -> str:
        """The realm's issuer: the cluster's hostname, whichever node answers."""
        assert self.cluster is not None
        return self.cluster.realm_issuer(realm)

    @property
    def running(self) -> bool:
        assert self.cluster is not None
        return self.cluster.node_running(self.name)

    def stop(self) -> None:
        assert self.cluster is not None
        self.cluster.stop_node(self.name)


@dataclass
class Cluster:
    """PostgreSQL and Keycloak nodes in `directory`, through scripts/cluster.sh."""

    directory: Path
    # The Keycloak options each running node was started with.
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Seconds each node start took, in order, for the run's summary.
    starts: list[tuple[str, float]] = field(default_factory=list)

    @property
    def script_log(self) -> Path:
        return self.directory / "cluster-script.log"

    def run(self, *args: str, timeout: float = SCRIPT_TIMEOUT_SECONDS) -> str:
        command = ["bash", str(SCRIPT), "--dir", str(self.directory), *args]
        env = {k: v for k, v in os.environ.items() if k != "AWSKMS_CLUSTER_DIR"}
        try:
            done = subprocess.run(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as expired:
            output = f"{expired.stdout or ''}{expired.stderr or ''}"
            self._record(args, output)
            raise RuntimeError(
                f"scripts/cluster.sh {' '.join(args)}: no answer within {timeout}s\n{output}"
            ) from None
        output = done.stdout + done.stderr
        self._record(args, output)
        if done.returncode != 0:
            raise RuntimeError(
                f"scripts/cluster.sh {' '.join(args)} exited with {done.returncode}:\n{output}"
            )
        return output

    def _record(self, args: tuple[str, ...], output: str) -> None:
        with self.script_log.open("a") as log:
            log.write(f"$ scripts/cluster.sh {' '.join(args)}\n{output}\n")

    # --- the whole cluster ---

    def prepare(self) -> None:
        """PostgreSQL running and the distribution built; no node yet."""
        self.run("postgres", "start")
        self.run("build")

    def ensure_nodes(
        self, options: tuple[str, ...], keep_running: bool = False
    ) -> tuple[Node, Node]:
        """Nodes a and b running with `options` (with `keep_running`, a node that runs is kept
        whatever its options). A node running with other options is restarted, one node at a
        time (a rolling restart); the first start is a, then b, as the script's `up` does (nodes
        starting together on an empty database race for its schema)."""
        for name in NODE_NAMES:
            if self.node_running(name) and (keep_running or self.options.get(name) == options):
                continue
            if self.node_running(name):
                self.stop_node(name)
            self.start_node(name, options)
        return self.node("a"), self.node("b")

    def down(self) -> None:
        self.run("down", timeout=180)
        self.options.clear()

    def remove_distributions(self) -> None:
        """Deletes the build and the nodes' copies of it (~200 MB each), keeping the logs."""
        for home in [self.directory / "dist", *(self.directory / "nodes").glob("*/home")]:
            shutil.rmtree(home, ignore_errors=True)

    # --- nodes ---

    def node(self, name: str) -> Node:
        env = read_env(self.directory / "nodes" / name / "node.env")
        return Node(
            process=None,  # the script's; see node_running
            home=self.directory / "nodes" / name / "home",
            base_url=env["BASE_URL"],
            management_url=env["MANAGEMENT_URL"],
            log_path=self.directory / "nodes" / name / "keycloak.log",
            name=name,
            cluster=self,
        )

    def node_running(self, name: str) -> bool:
        pid_file = self.directory / "nodes" / name / "pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def start_node(self, name: str, options: tuple[str, ...]) -> Node:
        started = time.monotonic()
        self.run("node", "start", name, "--", *options)
        self.starts.append((name, time.monotonic() - started))
        self.options[name] = options
        return self.node(name)

    def stop_node(self, name: str) -> None:
        self.run("node", "stop", name, timeout=120)
        self.options.pop(name, None)

    def kill_node(self, name: str) -> None:
        """SIGKILL to the node's process group: a crash, no shutdown of any kind."""
        self.run("node", "kill", name, timeout=60)
        self.options.pop(name, None)

    # --- what clients see ---

    @property
    def hostname_url(self) -> str:
        return read_env(self.directory / "cluster.env")["HOSTNAME_URL"]

    def realm_issuer(self, realm: str) -> str:
        return f"{self.hostname_url}/realms/{realm}"

    def log_sizes(self) -> dict[str, int]:
        return {name: self.node(name).log_size() for name in self.started_nodes()}

    def started_nodes(self) -> list[str]:
        nodes = self.directory / "nodes"
        return [name for name in NODE_NAMES if (nodes / name / "node.env").is_file()]
