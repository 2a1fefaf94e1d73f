"""Fixtures for the cluster tests (issue 12): PostgreSQL and two Keycloak nodes in production mode
(`kc.sh start`), clustered by Keycloak's default cache stack, all started by scripts/cluster.sh
for this package only — never the session's Keycloak. Nothing starts unless a test here is
selected; everything stops when the package's tests are over, failed or not.

    ~/.cache/keycloak-aws-kms/venv/bin/python -m pytest tests/e2e/cluster
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import pytest

import harness
from harness import Admin
from public_keys.jwks_server import JwksServer

from .cluster_harness import Cluster, Node
from .scenarios import ClusterUnderTest, node_options

HERE = Path(__file__).resolve().parent

# The cluster, for the failure report; lines for the end of the run.
_running: dict[str, Cluster] = {}
_log_offsets = pytest.StashKey[dict[str, int]]()
_summary: list[str] = []


@pytest.fixture(scope="package")
def cluster(
    setup_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """PostgreSQL running and the distribution built once (`kc.sh build`); nodes start on demand
    (`nodes`). Stopped, with PostgreSQL's data removed, when the package is done."""
    started = Cluster(tmp_path_factory.mktemp("cluster"))
    _running["cluster"] = started
    try:
        started.prepare()
        yield started
    finally:
        _running.pop("cluster", None)
        try:
            started.down()
            started.remove_distributions()
        finally:
            starts = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in started.starts)
            _summary.append(
                f"cluster: node starts {starts or 'none'}; logs in {started.directory}/nodes, "
                f"script output {started.script_log}"
            )


@pytest.fixture(scope="package")
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nodes(request: pytest.FixtureRequest, cluster: Cluster) -> tuple[Node, Node]:
    """Nodes a and b. A module that sets `WINDOW_SECONDS` (native-lru's
    min-time-between-requests) gets nodes running with it: nodes running with another window are
    restarted, one at a time. Other modules take the nodes as they run (started with the long
    window if they do not). The module order (by file name) keeps restarts few: the flood's
    short window first, then the node loss test, which brings node a back with the long window,
    then the eviction tests (the long window: only node b restarts) and the rest."""
    window = getattr(request.module, "WINDOW_SECONDS", None)
    if window is None:
        return cluster.ensure_nodes(node_options(None), keep_running=True)
    return cluster.ensure_nodes(node_options(window))


@pytest.fixture(scope="module")
def under_test(
    cluster: Cluster,
    nodes: tuple[Node, Node],
    emulator: harness.Emulator,
    kms,
    jwks_server: JwksServer,
    login,
) -> ClusterUnderTest:
    a, b = nodes
    return ClusterUnderTest(
        cluster=cluster,
        a=a,
        b=b,
        admin_a=Admin(a.base_url),
        admin_b=Admin(b.base_url),
        emulator=emulator,
        kms=kms,
        jwks_server=jwks_server,
        login=login,
    )


# --- selection and reporting --------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cluster: needs PostgreSQL and two Keycloak nodes (tests/e2e/cluster); "
        "-m 'not cluster' leaves them out",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)



@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    running: Optional[Cluster] = _running.get("cluster")
    item.stash[_log_offsets] = running.log_sizes() if running else {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    running: Optional[Cluster] = _running.get("cluster")
    if report.failed and running is not None:
        offsets = item.stash.get(_log_offsets, {})
        for name in running.started_nodes():
            node = running.node(name)
            report.sections.append(
                (
                    f"Keycloak node {name} log during this test ({node.log_path})",
                    harness.tail(node.log_path, 80, offsets.get(name, 0)),
                )
            )
        report.sections.append(("scripts/cluster.sh output", harness.tail(running.script_log, 30)))
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    for line in _summary:
        terminalreporter.write_line(line)
