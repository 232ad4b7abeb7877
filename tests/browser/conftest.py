"""The status page in a real browser: Debian's Chromium, headless, driven through its own chromedriver (both
installed by `make setup`; nothing is downloaded), one browser per test file. The function app is served over
HTTP by `bcsync serve`'s host, with a local worker taking the job messages, against the local stack with the
sample company fully synchronised once per file. Screenshots go to test-results/screenshots/."""

from __future__ import annotations

import os
import time
from typing import Callable
from urllib.parse import urlencode

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

import function_app
from bcsync import host
from shared.wiring import build_services
from simulators import sample
from sync.runs import RunStatus
from tests.conftest import SCREENSHOTS, fresh
from tests.e2e.conftest import Env

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT = 120   # seconds for a run started from the page to finish on this shared machine


@pytest.fixture(scope="module")
def browser():
    if not all(os.access(path, os.X_OK) for path in (CHROMIUM, CHROMEDRIVER)):
        pytest.fail("Chromium is missing: `make setup` installs it (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


class Console:
    """The browser on the status page of a served function app, and the stack behind it."""

    def __init__(self, env: Env, driver: webdriver.Chrome, base: str):
        self.env, self.driver, self.base = env, driver, base

    def open(self, page: str, **params) -> None:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        self.driver.get(f"{self.base}/api/console/{page}" + (f"?{query}" if query else ""))
        self.wait(lambda: self.driver.execute_script("return document.readyState") == "complete")

    def wait(self, condition: Callable[[], object], timeout: float = WAIT, message: str = ""):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(lambda _: condition(), message)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def status(self) -> str:
        return self.find("#status").text

    def confirm(self) -> None:
        """Accept the page's confirmation question."""
        self.wait(lambda: self._alert(), 10).accept()

    def _alert(self):
        try:
            return self.driver.switch_to.alert
        except Exception:  # noqa: BLE001 - selenium's NoAlertPresentException: not yet
            return None

    def act(self, control: WebElement, confirm: bool = False) -> None:
        """Click an action that reloads the page once it succeeded (answering its question); returns after the
        reload, so that nothing of the old page is read or races a navigation."""
        self.driver.execute_script("window.beforeAction = true")
        control.click()
        if confirm:
            self.confirm()
        self.wait(lambda: self.driver.execute_script(
            "return window.beforeAction === undefined && document.readyState === 'complete'"), 30,
            "the page did not reload after the action")

    def screenshot(self, name: str) -> None:
        """The whole page (not only the window) as test-results/screenshots/<name>.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        width, height = self.driver.get_window_size().values()
        full = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, max(height, full + 140))   # the window's frame around the page
        try:
            self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        finally:
            self.driver.set_window_size(width, height)

    def run_from_page(self) -> tuple[str, list[str]]:
        """After an action that starts a run: the run page opens, and its live progress reaches the end (the page
        is not reloaded meanwhile). Returns the run's id, and the statuses the page showed on the way."""
        self.wait(lambda: "/console/jobs/" in self.driver.current_url, 30, "the run page did not open")
        run_id = self.driver.current_url.split("/console/jobs/", 1)[1].split("?")[0]
        self.wait(lambda: self.all("section.run[data-run]"))
        self.driver.execute_script("window.notReloaded = true")
        seen = []

        def finished():
            shown = self.find("[data-field=run-status]").text
            if not seen or seen[-1] != shown:
                seen.append(shown)
            return shown not in ("running", "")
        self.wait(finished, message=f"the run page never showed the end of run {run_id}")
        assert self.driver.execute_script("return window.notReloaded === true"), "the page was reloaded"
        return run_id, seen


@pytest.fixture(scope="module")
def console(stack, browser):
    env = Env(stack, fresh(stack))
    sample.seed(env.dv, env.bc)
    started = time.monotonic()
    report = env.full_sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    print(f"sample company synchronised in {time.monotonic() - started:.0f} s")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(function_app, "_services", env.services)
        with host.serving(function_app.app, worker=build_services(env.settings)) as base:
            yield Console(env, browser, base)
