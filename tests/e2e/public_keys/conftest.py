"""Fixtures for the public key storage tests (issue 4): every test runs once against our
provider ("native-lru") and once against Keycloak's ("infinispan"), each in its own Keycloak
process started once for this package, with a loopback JWKS server the tests program.

    ~/.cache/keycloak-aws-kms/venv/bin/python -m pytest tests/e2e/public_keys
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Iterator, Optional

import pytest

import harness
from harness import Admin, Keycloak

from .jwks_server import JwksServer
from .server_under_test import INFINISPAN, NATIVE_LRU, ServerUnderTest, server_options

# The process of the provider being tested, for the failure report.
_running: dict[str, ServerUnderTest] = {}
_log_offset = pytest.StashKey[int]()
# Lines for the end of the run: each process's startup time and log.
_summary: list[str] = []


@pytest.fixture(scope="package")
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()


PROVIDERS = (NATIVE_LRU, INFINISPAN)


class KeycloakStarts:
    """Starts each provider's Keycloak in the background, so that the next one boots while the
    tests of the current one run (they mostly wait out windows). A process not handed out by
    `take` is stopped by `close`."""

    def __init__(self, setup_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
        self._setup_env = setup_env
        self._tmp_path_factory = tmp_path_factory
        self._pool = concurrent.futures.ThreadPoolExecutor(len(PROVIDERS), "keycloak-start")
        self._starting: dict[str, concurrent.futures.Future[Keycloak]] = {}

    def begin(self, provider: str) -> None:
        if provider not in self._starting:
            workdir = self._tmp_path_factory.mktemp(f"keycloak-{provider}")
            self._starting[provider] = self._pool.submit(self._start, provider, workdir)

    def take(self, provider: str) -> Keycloak:
        self.begin(provider)
        return self._starting.pop(provider).result()

    def _start(self, provider: str, workdir: Path) -> Keycloak:
        return Keycloak.start(
            Path(self._setup_env["KEYCLOAK_DIST_TGZ"]),
            Path(self._setup_env["KEYCLOAK_JAVA_HOME"]),
            workdir,
            [harness.provider_jar()],
            extra_args=server_options(provider),
        )

    def close(self) -> None:
        for starting in self._starting.values():
            try:
                starting.result().stop()
            except Exception:  # noqa: BLE001 (its failure was never anybody's test)
                pass
        self._pool.shutdown()


def _testable_providers(session: pytest.Session) -> list[str]:
    """The providers that selected tests run against, in run order."""
    wanted = {
        item.callspec.params.get("server")
        for item in session.items
        if hasattr(item, "callspec")
    }
    return [provider for provider in PROVIDERS if provider in wanted]


@pytest.fixture(scope="package")
def keycloak_starts(
    setup_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeycloakStarts]:
    starts = KeycloakStarts(setup_env, tmp_path_factory)
    yield starts
    starts.close()


@pytest.fixture(scope="package", params=PROVIDERS)
def server(
    request: pytest.FixtureRequest, keycloak_starts: KeycloakStarts, jwks_server: JwksServer
) -> Iterator[ServerUnderTest]:
    """A Keycloak with the provider JAR whose public key storage is the parameter (one process
    per provider; pytest runs every test of one provider before those of the next)."""
    provider: str = request.param
    testable = _testable_providers(request.session)
    keycloak = keycloak_starts.take(provider)
    for later in testable[testable.index(provider) + 1 :]:
        keycloak_starts.begin(later)
    started = ServerUnderTest(provider, keycloak, Admin(keycloak.base_url), jwks_server)
    _summary.append(
        f"Keycloak with public key storage {provider} was ready in "
        f"{keycloak.startup_seconds:.0f}s; log: {keycloak.log_path}"
    )
    _running["server"] = started
    try:
        yield started
    finally:
        _running.pop("server", None)
        keycloak.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    running: Optional[ServerUnderTest] = _running.get("server")
    item.stash[_log_offset] = running.keycloak.log_size() if running else 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    running: Optional[ServerUnderTest] = _running.get("server")
    if report.failed and running is not None:
        keycloak = running.keycloak
        report.sections.append(
            (
                f"Keycloak ({running.provider}) log during this test ({keycloak.log_path})",
                harness.tail(keycloak.log_path, 120, item.stash.get(_log_offset, 0)),
            )
        )
        report.sections.append(("JWKS server requests", running.jwks_server.log_tail()))
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    for line in _summary:
        terminalreporter.write_line(line)
