"""`/docs` in a real browser with no internet: Swagger UI renders the served document."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from .browser import browser_session, screenshots, wait_until
from .conftest import Server, start_server

APP = Path(__file__).with_name("dashboard_app.py")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    yield from browser_session()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, browser: WebDriver) -> Callable[[str], Path]:
    return screenshots(request, browser)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(APP, tmp_path_factory.mktemp("docs") / "state")
    yield running
    running.stop()


def test_docs_render_every_route_from_assets_fanstack_serves(
    server: Server, browser: WebDriver, screenshot: Callable[[str], Path]
) -> None:
    browser.get(f"{server.url}/docs")
    title = wait_until(
        browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title")
    )
    assert "dashboard-test" in title[0].text
    paths = wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    assert {"/orders", "/parked", "/fulfil"} <= {p.text.replace("\u200b", "") for p in paths}
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(name.startswith(server.url) for name in resources)
    screenshot("docs")

    browser.find_element(By.CSS_SELECTOR, ".opblock-summary-path").click()  # expand a route
    wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock-body"))
    screenshot("docs-route-open")


def test_the_docs_page_names_no_other_host(server: Server) -> None:
    page = httpx.get(f"{server.url}/docs").text
    assert "http://" not in page and "https://" not in page
    script = httpx.get(f"{server.url}/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
