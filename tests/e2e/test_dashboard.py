"""The dashboard in a real browser: a person clicks through `fanstack run`'s pages.

A real `fanstack run` serves `dashboard_app.py` on a SQLite data dir; headless Chromium (the
system's) opens `/_fanstack/`, follows links, presses buttons and reads what the page shows.
Screenshots are kept under `test-artifacts/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from fanstack import App

from .browser import browser_session, screenshots, wait_until
from .conftest import Server, start_server, wait_for

APP = Path(__file__).with_name("dashboard_app.py")
Shot = Callable[[str], Path]


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    yield from browser_session()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, browser: WebDriver) -> Shot:
    return screenshots(request, browser)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(APP, tmp_path_factory.mktemp("dashboard") / "state")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def store(server: Server) -> Iterator[App]:
    """The server's store, opened from the test (another process, as an operator's CLI)."""
    app = App("dashboard-test", backend=f"sqlite://{server.data_dir}")
    yield app
    app.close()


def text(browser: WebDriver, selector: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def cell(browser: WebDriver, queue: str, field: str) -> str:
    return text(browser, f'tr[data-queue="{queue}"] [data-field="{field}"]')


def receive_counts(browser: WebDriver) -> dict[str, int]:
    """The receive count of each message the page shows, by message id."""
    return {
        str(row.get_attribute("data-message-id")): int(
            row.find_element(By.CSS_SELECTOR, ".receive-count").text
        )
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.message")
    }


def test_queues_list_depths_and_the_dead_letter_queue_of_each(
    server: Server, store: App, browser: WebDriver, screenshot: Shot
) -> None:
    store.queue_for("parked").send("one waiting")
    browser.get(f"{server.url}/_fanstack/")
    assert browser.title == "Queues · fanstack"
    wait_until(browser, lambda b: cell(b, "parked", "visible") == "1")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="parked"]')
    assert "parked-dlq" in row.text  # its dead-letter queue, linked
    dlq_row = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="parked-dlq"]')
    assert "DLQ" in dlq_row.text
    assert cell(browser, "parked", "oldest_age").endswith("s")  # "388.9 ms", "2.10 s"
    screenshot("queues")


def test_peek_at_a_dead_letter_queue_then_redrive_it_with_the_button(
    server: Server, store: App, browser: WebDriver, screenshot: Shot
) -> None:
    parked = store.queue_for("parked")
    parked.purge()
    parked.send(json.dumps({"order": "A-1"}))
    parked.send(json.dumps({"order": "A-2"}))
    for _ in range(4):  # max_receive_count is 3: the 4th receive dead-letters them
        parked.receive(max_messages=10, visibility_timeout=0)
    dlq = store.queue_for("parked-dlq")
    wait_for(lambda: dlq.stats().visible == 2)
    browser.get(f"{server.url}/_fanstack/")
    wait_until(browser, lambda b: cell(b, "parked-dlq", "visible") == "2")
    browser.find_element(By.LINK_TEXT, "parked-dlq").click()
    wait_until(browser, lambda b: "Queue parked-dlq" in text(b, "h1"))
    assert "Dead letters of" in browser.page_source

    browser.find_element(By.ID, "peek").click()
    messages = wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "tr.message"))
    assert len(messages) == 2
    assert '"order": "A-1"' in messages[0].text and '"order": "A-2"' in messages[1].text
    counts = receive_counts(browser)
    screenshot("peek")

    # A peek receives nothing: the messages stay visible, their receive counts unchanged.
    stats = dlq.stats()
    assert (stats.visible, stats.in_flight) == (2, 0)
    browser.refresh()
    assert receive_counts(browser) == counts
    received = dlq.receive(max_messages=10, visibility_timeout=0)
    assert {m.id: m.receive_count for m in received} == {k: v + 1 for k, v in counts.items()}

    browser.find_element(By.LINK_TEXT, "parked").click()
    wait_until(browser, lambda b: "Queue parked" in text(b, "h1"))
    browser.find_element(By.ID, "redrive").click()
    notice = wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "p.notice"))
    assert "2 messages moved back to parked" in notice[0].text
    assert browser.current_url.startswith(f"{server.url}/_fanstack/queues/parked?")
    wait_for(lambda: store.queue_for("parked").stats().visible == 2)
    assert dlq.stats().visible == 0
    wait_until(browser, lambda b: text(b, 'dl.facts [data-field="visible"]') == "2")
    screenshot("redriven")


def test_topics_show_their_subscriptions_and_filter_policies(
    server: Server, browser: WebDriver, screenshot: Shot
) -> None:
    browser.get(f"{server.url}/_fanstack/")
    browser.find_element(By.LINK_TEXT, "Topics").click()
    section = wait_until(
        browser, lambda b: b.find_elements(By.CSS_SELECTOR, 'section[data-topic="orders"]')
    )[0]
    payments = section.find_element(By.CSS_SELECTOR, 'tr[data-subscription="payments"]')
    policy = json.loads(payments.find_element(By.CSS_SELECTOR, "pre.policy").text)
    assert policy == {"market": ["ru", "de"], "total": [{"numeric": [">", 100]}]}
    assert "MessageAttributes" in payments.text  # the filter's scope
    audit = section.find_element(By.CSS_SELECTOR, 'tr[data-subscription="audit"]')
    assert "every message" in audit.text and "raw" in audit.text
    screenshot("topics")


def test_functions_show_invocations_percentiles_and_a_recent_failure(
    server: Server, browser: WebDriver, screenshot: Shot
) -> None:
    with server.client() as client:
        declined = {"market": "ru", "total": 150, "decline": True}
        for body in (declined, {"market": "de", "total": 200}):
            assert client.post("/orders", json=body).status_code == 202
    browser.get(f"{server.url}/_fanstack/functions")

    def counted(b: WebDriver) -> bool:
        b.refresh()
        row = b.find_element(By.CSS_SELECTOR, 'tr[data-function="charge"]')
        return (
            bool(b.find_elements(By.CSS_SELECTOR, "tr.failure"))
            and int(row.find_element(By.CSS_SELECTOR, '[data-field="invocations"]').text) >= 2
        )

    wait_until(browser, counted)
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-function="charge"]')
    assert int(row.find_element(By.CSS_SELECTOR, '[data-field="errors"]').text) >= 1
    assert row.find_element(By.CSS_SELECTOR, ".p50").text.endswith("s")
    assert row.find_element(By.CSS_SELECTOR, ".p99").text != "-"
    failure = browser.find_element(By.CSS_SELECTOR, "tr.failure")
    assert failure.find_element(By.CSS_SELECTOR, ".error-type").text == "CardDeclined"
    assert "card declined" in failure.find_element(By.CSS_SELECTOR, ".error-message").text
    screenshot("functions")


def test_the_live_chart_and_tables_update_over_server_sent_events(
    server: Server, store: App, browser: WebDriver, screenshot: Shot
) -> None:
    browser.get(f"{server.url}/_fanstack/")
    wait_until(browser, lambda b: "live" in text(b, "#live"))
    before = int(cell(browser, "audit", "visible"))
    store.queue_for("audit").send("sent while the page is open")
    # The page is not reloaded: the count arrives over the event stream.
    wait_until(browser, lambda b: int(cell(b, "audit", "visible")) == before + 1)
    with server.client() as client:
        for n in range(5):
            client.post("/orders", json={"market": "de", "total": 101 + n})

    def drawn(b: WebDriver) -> bool:
        points = b.find_element(By.ID, "line-invocations").get_attribute("points") or ""
        rate = text(b, "#rate-invocations")
        peak = max((float(p.split(",")[1]) for p in points.split()), default=159.0)
        return peak < 150 or (rate not in ("-", "0.0"))  # a rise above the baseline

    wait_until(browser, drawn)
    assert int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-updates") or 0) >= 2
    screenshot("live-chart")


def test_routes_buses_schedules_and_workflows_have_pages(
    server: Server, browser: WebDriver, screenshot: Shot
) -> None:
    browser.get(f"{server.url}/_fanstack/")
    browser.find_element(By.LINK_TEXT, "Routes").click()
    route = wait_until(
        browser, lambda b: b.find_elements(By.CSS_SELECTOR, 'tr[data-route="POST /orders"]')
    )[0]
    assert "publish → orders" in route.text and "open" in route.text
    screenshot("routes")

    browser.find_element(By.LINK_TEXT, "Buses").click()
    rule = wait_until(
        browser, lambda b: b.find_elements(By.CSS_SELECTOR, '[data-rule="big-orders"]')
    )
    assert "queue:audit" in rule[0].text and '"source"' in rule[0].text
    screenshot("buses")

    browser.find_element(By.LINK_TEXT, "Schedules").click()
    schedule = wait_until(
        browser, lambda b: b.find_elements(By.CSS_SELECTOR, '[data-schedule="nightly-report"]')
    )[0]
    assert "rate(1 day)" in schedule.text and "UTC" in schedule.text
    screenshot("schedules")

    with server.client() as client:  # one execution to show
        assert client.post("/fulfil", json={"order": "A-9"}).status_code in (200, 202)
    browser.find_element(By.LINK_TEXT, "Workflows").click()
    workflow = wait_until(
        browser, lambda b: b.find_elements(By.CSS_SELECTOR, '[data-workflow="fulfil"]')
    )[0]
    assert "STANDARD" in workflow.text and "1 states" in workflow.text

    def succeeded(b: WebDriver) -> bool:
        b.refresh()
        return "SUCCEEDED 1" in text(b, '[data-workflow="fulfil"] .counts')

    wait_until(browser, succeeded)
    screenshot("workflows")


def test_a_missing_queue_is_a_404_page(server: Server, browser: WebDriver) -> None:
    browser.get(f"{server.url}/_fanstack/queues/nope")
    assert "There is no queue 'nope'." in text(browser, "main")
    assert httpx.get(f"{server.url}/_fanstack/queues/nope").status_code == 404


def test_functions_invoked_by_another_process_show_everyones_counts(
    tmp_path: Path, browser: WebDriver, screenshot: Shot
) -> None:
    # With --workers 2 the pages are served by server processes while the parent invokes the
    # functions: the counts come from the metrics every process shares.
    server = start_server(APP, tmp_path / "state", args=["--workers", "2"])
    try:
        for n in range(3):
            body = {"market": "de", "total": 150 + n}
            response = httpx.post(f"{server.url}/orders", json=body, timeout=30)
            assert response.status_code == 202
        browser.get(f"{server.url}/_fanstack/functions")

        # The invoking process counts an invocation, then its duration: a page may be served
        # between the two, so both are waited for.
        def counted(b: WebDriver) -> bool:
            b.refresh()
            row = b.find_element(By.CSS_SELECTOR, 'tr[data-function="charge"]')
            invocations = int(row.find_element(By.CSS_SELECTOR, '[data-field="invocations"]').text)
            return invocations == 3 and row.find_element(By.CSS_SELECTOR, ".p50").text.endswith("s")

        wait_until(browser, counted, timeout=60)
        screenshot("functions-across-processes")
    finally:
        server.stop()
