"""Keycloak's admin console (a React app on PatternFly), driven in the system's headless Chromium.

Selectors are the ones the console itself sets: element ids (`config.<key>` for a provider's
text fields, `<key>` for its lists), `data-testid`s, and ARIA roles. Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TypeVar

# Selenium Manager (the helper that downloads browsers and drivers) must never run: a driver is
# always given explicitly, and should anything still call it, it runs /bin/false and fails.
os.environ["SE_MANAGER_PATH"] = "/bin/false"
os.environ["SE_OFFLINE"] = "true"

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

T = TypeVar("T")

# The network here is closed: these keep Chromium from reaching for it (updates, sync, field
# trials, QUIC) and from anything a first run would show.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--password-store=basic",
    "--lang=en-US",
    # Tall enough for the whole Add provider dialog in one screenshot.
    "--window-size=1600,2000",
)

# How long one step may take on a loaded 2-core machine (page loads, a save that calls KMS).
STEP_TIMEOUT = 60


def start_chromium(chromium: str, chromedriver: str, log_path: Path) -> webdriver.Chrome:
    """Chromium through its own chromedriver, with a new empty profile directory."""
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="awskms-console-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    service = Service(executable_path=chromedriver, log_output=str(log_path))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(STEP_TIMEOUT)
    driver.set_script_timeout(STEP_TIMEOUT)
    return driver


@dataclass(frozen=True)
class Alert:
    """A toast in the console's alert group."""

    kind: str  # "success", "danger", "warning", "info"
    text: str


@dataclass(frozen=True)
class KeyRow:
    """One row of Realm settings → Keys → Keys list."""

    algorithm: str
    type: str
    kid: str
    use: str
    provider: str
    valid_to: str
    # The base64 DER the row's "Certificate" button shows (the console keeps it in the button id).
    certificate: Optional[str]


class AdminConsole:
    """The admin console of one Keycloak, as the bootstrap administrator uses it."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, artifacts: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.artifacts = artifacts
        self._shots = 0

    # --- plumbing -------------------------------------------------------------------------------

    def wait(self, condition: Callable[[webdriver.Chrome], T], what: str, timeout: float = STEP_TIMEOUT) -> T:
        try:
            return WebDriverWait(
                self.driver,
                timeout,
                poll_frequency=0.2,
                ignored_exceptions=(StaleElementReferenceException,),
            ).until(condition)
        except TimeoutException:
            raise AssertionError(
                f"admin console: {what} did not happen within {timeout}s "
                f"(at {self.driver.current_url}; last screenshot in {self.artifacts})"
            ) from None

    def visible(self, by: str, selector: str, what: str) -> WebElement:
        return self.wait(EC.visibility_of_element_located((by, selector)), what)

    def clickable(self, by: str, selector: str, what: str) -> WebElement:
        return self.wait(EC.element_to_be_clickable((by, selector)), what)

    def click(self, by: str, selector: str, what: str) -> None:
        element = self.clickable(by, selector, what)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()

    def open_tab(self, testid: str, what: str, attempts: int = 3) -> None:
        """Clicks a tab until it is the selected one. The realm settings tab bar grows its scroll
        buttons once it has measured itself, which moves every tab sideways: a click aimed before
        that shift lands on the neighbouring tab (seen: Keys → Themes)."""
        selector = f"[data-testid={testid}]"
        for attempt in range(attempts):
            self.click(By.CSS_SELECTOR, selector, what)
            try:
                self.wait(lambda d: d.find_element(By.CSS_SELECTOR, selector).get_attribute("aria-selected") == "true",
                          f"{what} selected (click {attempt + 1} of {attempts})", timeout=5)
                return
            except AssertionError:
                if attempt == attempts - 1:
                    raise

    def shoot(self, name: str) -> Path:
        """Saves a PNG of the window as NN-name.png in the artefact directory."""
        self._shots += 1
        path = self.artifacts / f"{self._shots:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    # --- logging in -----------------------------------------------------------------------------

    def console_url(self, realm: str = "master", route: str = "") -> str:
        return f"{self.base_url}/admin/master/console/#/{realm}/{route}"

    def open_login_page(self) -> None:
        self.driver.get(self.console_url())
        self.visible(By.ID, "username", "the login form")

    def log_in(self, username: str, password: str) -> None:
        self.driver.find_element(By.ID, "username").send_keys(username)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.ID, "kc-login").click()
        self.visible(By.CSS_SELECTOR, "[data-testid=nav-item-realm-settings]", "the console after logging in")

    def ensure_logged_in(self, username: str, password: str) -> None:
        self.driver.get(self.console_url())
        seen = self.wait(
            lambda d: d.find_elements(By.ID, "username")
            or d.find_elements(By.CSS_SELECTOR, "[data-testid=nav-item-realm-settings]"),
            "the login form or the console",
        )
        if seen[0].get_attribute("id") == "username":
            self.log_in(username, password)

    # --- Realm settings → Keys ------------------------------------------------------------------

    def open_realm(self, realm: str) -> None:
        """The realm's console, loaded afresh (a realm made since the console loaded is unknown
        to it until then)."""
        self.driver.get(self.console_url(realm))
        self.driver.refresh()
        self.wait(
            lambda d: realm
            in d.find_element(By.CSS_SELECTOR, "[data-testid=currentRealm]").text,
            f"realm {realm} as the current realm",
        )

    def open_key_providers(self, realm: str) -> None:
        """Realm settings → Keys → Providers, from the realm's console."""
        self.open_realm(realm)
        self.click(By.CSS_SELECTOR, "[data-testid=nav-item-realm-settings]", "Realm settings")
        self.open_tab("rs-keys-tab", "the Keys tab")
        self.open_tab("rs-providers-tab", "the Providers tab")
        self.visible(By.CSS_SELECTOR, "[data-testid=addProviderDropdown]", "the Add provider button")

    def add_provider_options(self) -> list[str]:
        """Opens Add provider and returns the provider ids it offers."""
        self.click(By.CSS_SELECTOR, "[data-testid=addProviderDropdown]", "Add provider")
        self.visible(By.CSS_SELECTOR, "[data-testid^=option-]", "the provider choices")
        return [
            (element.get_attribute("data-testid") or "").removeprefix("option-")
            for element in self.driver.find_elements(By.CSS_SELECTOR, "[data-testid^=option-]")
        ]

    def choose_provider(self, provider_id: str) -> None:
        self.click(By.CSS_SELECTOR, f"[data-testid=option-{provider_id}]", f"the {provider_id} choice")
        self.visible(By.ID, "config.kmsKeyId", f"the {provider_id} form")

    def open_provider(self, realm: str, name: str) -> None:
        """Realm settings → Keys → Providers → the provider's name: its Edit provider page."""
        self.open_key_providers(realm)
        self.click(
            By.XPATH,
            f"//*[@data-testid='provider-name-link'][normalize-space()='{name}']",
            f"the link of provider {name}",
        )
        self.visible(By.ID, "config.kmsKeyId", f"the Edit provider page of {name}")
        # The form is filled from the component once it has loaded.
        self.wait(
            lambda d: d.find_element(By.ID, "name").get_attribute("value") == name,
            f"the form of {name} filled in",
        )

    def key_rows(self, realm: str) -> list[KeyRow]:
        """Realm settings → Keys → Keys list (active keys), as the table shows them."""
        self.open_realm(realm)
        self.click(By.CSS_SELECTOR, "[data-testid=nav-item-realm-settings]", "Realm settings")
        self.open_tab("rs-keys-tab", "the Keys tab")
        self.open_tab("rs-keys-list-tab", "the Keys list tab")
        self.visible(By.CSS_SELECTOR, "table tbody tr td", "the keys table")
        rows = []
        for row in self.driver.find_elements(By.CSS_SELECTOR, "table tbody tr"):
            cells = row.find_elements(By.CSS_SELECTOR, "td")
            if len(cells) < 6:
                continue
            certificates = row.find_elements(By.CSS_SELECTOR, "button.kc-certificate")
            rows.append(
                KeyRow(
                    *(cell.text.strip() for cell in cells[:6]),
                    certificate=certificates[0].get_attribute("id") if certificates else None,
                )
            )
        return rows

    def show_certificate(self, kid: str) -> str:
        """Clicks the Certificate button of the key `kid` and returns what the dialog shows."""
        row = self.visible(
            By.XPATH, f"//tbody/tr[td[normalize-space()='{kid}']]", f"the row of key {kid}"
        )
        button = row.find_element(By.CSS_SELECTOR, "button.kc-certificate")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
        button.click()
        dialog = self.visible(By.CSS_SELECTOR, "[role=dialog]", "the certificate dialog")
        return dialog.text

    def close_dialog(self) -> None:
        self.driver.find_element(By.CSS_SELECTOR, "[role=dialog] button[aria-label=Close]").click()
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "[role=dialog]"), "the dialog closed")

    # --- the provider form ----------------------------------------------------------------------

    def field(self, key: str) -> WebElement:
        """The text or password input of config key `key` (or `name`)."""
        element_id = key if key == "name" else f"config.{key}"
        return self.visible(By.ID, element_id, f"the field {element_id}")

    def label_of(self, element_id: str) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, f"label[for='{element_id}']").text.strip()

    def labels(self) -> list[str]:
        """The form's labels in order, without the required marker."""
        return [
            label.text.replace("*", "").strip()
            for label in self.driver.find_elements(By.CSS_SELECTOR, "form label.pf-v5-c-form__label")
            if label.text.strip()
        ]

    def fill(self, key: str, value: str) -> None:
        element = self.field(key)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        element.send_keys(value)
        self.wait(lambda d: element.get_attribute("value") == value, f"{key} to read {value!r}")

    def reveal(self, key: str) -> None:
        """Clicks the eye button of password field `key` ("Show password field in clear text")."""
        element_id = f"config.{key}"
        self.click(
            By.XPATH,
            f"//input[@id='{element_id}']"
            "/ancestor::div[contains(concat(' ', @class, ' '), ' pf-v5-c-input-group ')][1]"
            "//button[@aria-label='Show password field in clear text']",
            f"the show button of {key}",
        )
        self.wait(
            lambda d: d.find_element(By.ID, element_id).get_attribute("type") == "text",
            f"{key} shown in clear text",
        )

    def list_options(self, key: str) -> list[str]:
        """Opens the list `key` and returns its options (the list stays open)."""
        self.click(By.ID, key, f"the list {key}")
        self.visible(By.CSS_SELECTOR, "[role=option]", f"the options of {key}")
        return [option.text.strip() for option in self.driver.find_elements(By.CSS_SELECTOR, "[role=option]")]

    def choose(self, key: str, option: str) -> None:
        toggle = self.clickable(By.ID, key, f"the list {key}")
        if toggle.get_attribute("aria-expanded") != "true":
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", toggle)
            toggle.click()
        self.click(
            By.XPATH, f"//*[@role='option'][normalize-space()='{option}']", f"option {option} of {key}"
        )
        self.wait(
            lambda d: d.find_element(By.ID, key).text.strip() == option, f"{key} to show {option}"
        )

    def list_value(self, key: str) -> str:
        return self.driver.find_element(By.ID, key).text.strip()

    def upload_certificate(self, path: Path) -> None:
        """Chooses `path` in the certificate's file control (the browser reads the file)."""
        file_input = self.driver.find_element(
            By.XPATH,
            "//textarea[@id='certificate']/ancestor::div[contains(@class, 'pf-v5-c-file-upload')]"
            "//input[@type='file']",
        )
        file_input.send_keys(str(path))
        self.wait(
            lambda d: "BEGIN CERTIFICATE"
            in (d.find_element(By.ID, "certificate").get_attribute("value") or ""),
            "the certificate text to appear under the file control",
        )

    def help_text(self, element_id: str, label: str) -> str:
        """Opens the help popover of a field (by the id its label is for) and returns its text."""
        selector = (
            f"[data-testid='help-label-{element_id}']"
            if element_id.startswith("config.") or element_id == "name"
            else f"[data-testid='help-label-{label}']"
        )
        button = self.clickable(By.CSS_SELECTOR, selector, f"the help of {label}")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
        button.click()
        body = self.visible(By.CSS_SELECTOR, ".pf-v5-c-popover__body", f"the help of {label}")
        self.settle()  # the popover fades in
        return body.text.strip()

    def close_help(self) -> None:
        """Closes the help popover with its own close button (Escape would close the dialog)."""
        self.click(By.CSS_SELECTOR, ".pf-v5-c-popover button[aria-label=Close]", "the help's close button")
        self.wait(
            lambda d: not d.find_elements(By.CSS_SELECTOR, ".pf-v5-c-popover__body"), "the help closed"
        )

    # --- saving and alerts ----------------------------------------------------------------------

    def dismiss_alerts(self) -> None:
        for button in self.driver.find_elements(
            By.CSS_SELECTOR, "[data-testid=global-alerts] .pf-v5-c-alert__action button"
        ):
            try:
                button.click()
            except WebDriverException:
                pass
        self.wait(
            lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-testid=global-alerts] .pf-v5-c-alert"),
            "the earlier alerts dismissed",
        )

    def save(self) -> Alert:
        """Clicks Save (Add provider dialog or Edit provider page) and returns the alert it raises."""
        self.dismiss_alerts()
        button = self.clickable(By.CSS_SELECTOR, "[data-testid=add-provider-button]", "the Save button")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
        button.click()
        alert = self.visible(By.CSS_SELECTOR, "[data-testid=global-alerts] .pf-v5-c-alert", "an alert after Save")
        classes = alert.get_attribute("class") or ""
        match = re.search(r"pf-m-(success|danger|warning|info)", classes)
        title = alert.find_element(By.CSS_SELECTOR, ".pf-v5-c-alert__title").text
        return Alert(kind=match.group(1) if match else classes, text=title.strip())

    def wait_for_dialog_closed(self) -> None:
        self.wait(
            lambda d: not d.find_elements(By.CSS_SELECTOR, "[role=dialog]"),
            "the Add provider dialog to close",
        )

    def settle(self, seconds: float = 0.3) -> None:
        """A short pause for an animation to end before a screenshot (never for correctness)."""
        time.sleep(seconds)
