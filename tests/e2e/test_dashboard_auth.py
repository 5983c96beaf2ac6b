"""The dashboard off loopback: refused without the admin token, usable with it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By

from .browser import browser_session, wait_until
from .conftest import Server, start_server

APP = Path(__file__).with_name("dashboard_app.py")
TOKEN = "dashboard-admin-secret"


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        APP,
        tmp_path_factory.mktemp("dashboard-auth") / "state",
        host="0.0.0.0",
        args=["--admin-token", TOKEN],
    )
    yield running
    running.stop()


@pytest.mark.parametrize(
    "path",
    ["/_fanstack/", "/_fanstack/topics", "/_fanstack/stream", "/_fanstack/static/dashboard.js"],
)
def test_without_the_token_every_dashboard_path_asks_for_it(server: Server, path: str) -> None:
    response = httpx.get(server.url + path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="fanstack admin"')
    wrong = httpx.get(server.url + path, headers={"authorization": basic("guess")})
    assert wrong.status_code == 401
    assert httpx.post(f"{server.url}/_fanstack/queues/parked/redrive").status_code == 401


def test_the_token_as_basic_password_or_bearer_opens_it(server: Server) -> None:
    for authorization in (basic(TOKEN), f"Bearer {TOKEN}"):
        response = httpx.get(f"{server.url}/_fanstack/", headers={"authorization": authorization})
        assert response.status_code == 200 and "<h1>Throughput</h1>" in response.text


def test_a_cross_site_post_is_refused_even_with_the_token(server: Server) -> None:
    headers = {"authorization": basic(TOKEN)}
    forged = httpx.post(
        f"{server.url}/_fanstack/queues/parked/redrive",
        headers={**headers, "origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    own = httpx.post(
        f"{server.url}/_fanstack/queues/parked/redrive",
        headers={**headers, "origin": server.url},
    )
    assert own.status_code == 303


def test_a_browser_with_the_token_sees_the_dashboard(server: Server) -> None:
    for driver in browser_session():
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": basic(TOKEN)}}
        )
        driver.get(f"{server.url}/_fanstack/")
        assert driver.title == "Queues · fanstack"
        wait_until(driver, lambda b: "live" in b.find_element(By.ID, "live").text)
