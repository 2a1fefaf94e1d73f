"""The admin console tests: the session's Keycloak, driven in the system's headless Chromium.

Screenshots of every step are written to target/e2e-artifacts/console/ (printed at the end of the
run), and a screenshot and the page's HTML of any failing test too.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

import harness

from .page import AdminConsole, start_chromium

ARTIFACTS = harness.ROOT / "target" / "e2e-artifacts" / "console"
_used: list[Path] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if _used:
        terminalreporter.write_line(f"admin console screenshots: {_used[0]}")


@pytest.fixture(scope="session")
def console_artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    _used.append(ARTIFACTS)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser_paths(setup_env: dict[str, str]) -> tuple[str, str]:
    chromium = setup_env.get("CHROMIUM", "")
    chromedriver = setup_env.get("CHROMEDRIVER", "")
    for name, path in (("CHROMIUM", chromium), ("CHROMEDRIVER", chromedriver)):
        if not path or not Path(path).is_file():
            raise RuntimeError(f"{name}={path!r} is not a file: run scripts/setup.sh")
    return chromium, chromedriver


@pytest.fixture(scope="module")
def browser(
    keycloak, browser_paths: tuple[str, str], console_artifacts: Path
) -> Iterator[AdminConsole]:
    """One Chromium for the module, on the session's Keycloak (not logged in yet)."""
    chromium, chromedriver = browser_paths
    driver = start_chromium(chromium, chromedriver, console_artifacts / "chromedriver.log")
    try:
        yield AdminConsole(driver, keycloak.base_url, console_artifacts)
    finally:
        driver.quit()


@pytest.fixture
def console(browser: AdminConsole) -> AdminConsole:
    """The console, logged in as the bootstrap administrator."""
    browser.ensure_logged_in(harness.ADMIN_USERNAME, harness.ADMIN_PASSWORD)
    return browser


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and report.failed:
        console = item.funcargs.get("console") or item.funcargs.get("browser")
        if isinstance(console, AdminConsole):
            name = "".join(c if c.isalnum() or c in "-_" else "_" for c in item.name)[:120]
            try:
                shot = console.shoot(f"FAILED-{name}")
                page = shot.with_suffix(".html")
                page.write_text(console.driver.page_source)
                report.sections.append(("admin console at the failure", f"{shot}\n{page}"))
            except Exception as error:  # the browser itself may be what failed
                report.sections.append(("admin console at the failure", f"no screenshot: {error}"))
    return report
