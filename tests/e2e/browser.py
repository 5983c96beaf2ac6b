"""A real browser for end-to-end tests: the system's headless Chromium, driven by Selenium.

Chromium and its driver come from the system packages (`apt-get install chromium
chromium-driver`, done by `.ci/run`); nothing is downloaded at test time. The browser resolves
no host but 127.0.0.1, so a page that needs the internet (a CDN) shows it. Screenshots go to
`test-artifacts/<test name>/` at the top of the repository (git-ignored), kept after the run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import REPO

CHROMIUM = os.environ.get("FANSTACK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FANSTACK_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("FANSTACK_TEST_ARTIFACTS", REPO / "test-artifacts"))


def start_browser() -> WebDriver:
    """Headless Chromium with no route to any host but this machine."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            raise AssertionError(
                f"{path} is missing: install the browser with "
                "`apt-get install -y chromium chromium-driver` (.ci/run does)"
            )
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


def browser_session() -> Iterator[WebDriver]:
    """A browser for a module's tests (a fixture's body: `yield from browser_session()`)."""
    driver = start_browser()
    yield driver
    driver.quit()


def screenshots(request: pytest.FixtureRequest, browser: WebDriver) -> Callable[[str], Path]:
    """Saves what the browser shows now as `test-artifacts/<test>/<name>.png`."""
    folder = ARTIFACTS / re.sub(r"[^\w.-]", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = folder / f"{name}.png"
        browser.save_screenshot(str(path))
        print(f"screenshot: {path}")
        return path

    return take


def wait_until(
    browser: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = 30
) -> Any:
    """Poll `condition(browser)` until it is truthy (its value), or fail after `timeout`."""
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(condition)
