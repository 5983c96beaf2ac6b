"""`/metrics` after a known workload: scraped from a real server, parsed with prometheus_client.

The workload (tests/e2e/observed_app.py): three orders for market ru, one for de, one ru order
that fails. Every figure a scraper reads must add up to exactly that, across the server
processes of `--workers 2` and the function workers that publish the shipments.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import REPO, Server, start_server, wait_for

APP = REPO / "tests" / "e2e" / "observed_app.py"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: Server, **headers: str) -> Samples:
    """Every sample of `/metrics`, by name and labels."""
    response = httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def place_orders(server: Server, *, fresh_connections: bool = False) -> None:
    """Three market=ru orders, one market=de, one ru order that fails in `fulfil`."""
    orders = [
        ("ru", {"order_id": "o-1"}),
        ("ru", {"order_id": "o-2"}),
        ("ru", {"order_id": "o-3"}),
        ("de", {"order_id": "o-4"}),
        ("ru", {"order_id": "o-5", "fail": True}),
    ]
    with server.client() as client:
        for market, order in orders:
            if fresh_connections:  # several server processes: spread the requests over them
                response = httpx.post(f"{server.url}/orders/{market}", json=order, timeout=30)
            else:
                response = client.post(f"/orders/{market}", json=order)
            assert response.status_code == 202, response.text


def settled(server: Server) -> Samples | None:
    """The scrape once the workload is done and counted: shipped, dead-lettered, nothing in
    flight, every count in.

    A counter goes up just after the commit it counts, so a scrape can see a delete's effect
    on the queue before the delete is counted; the counts are awaited, then asserted exactly.
    """
    samples = scrape(server)
    done = (
        value(samples, "fanstack_queue_messages", queue="shipments", state="visible") == 3
        and value(samples, "fanstack_queue_messages", queue="ru-orders-dlq", state="visible") == 1
        and value(samples, "fanstack_queue_messages", queue="ru-orders", state="in_flight") == 0
        and value(samples, "fanstack_function_concurrency", function="fulfil") == 0
    )
    if not done:
        return None
    try:
        assert_workload_counted(samples)
    except AssertionError:
        return None
    return samples


def counted(server: Server) -> Samples:
    """The settled scrape; if it never settles, the last scrape's first wrong count fails."""
    try:
        samples = wait_for(lambda: settled(server), timeout=60)
    except AssertionError:
        samples = scrape(server)
        assert_workload_counted(samples)
        raise
    assert isinstance(samples, dict)
    return samples


def assert_workload_counted(samples: Samples) -> None:
    assert value(samples, "fanstack_topic_messages_published_total", topic="orders") == 5
    # the shipments are published by the handler, inside the function's worker processes
    assert value(samples, "fanstack_topic_messages_published_total", topic="shipments") == 3
    assert value(samples, "fanstack_queue_messages_sent_total", queue="audit") == 5
    assert value(samples, "fanstack_queue_messages_sent_total", queue="ru-orders") == 4
    # 3 successes + the failing order twice (max_attempts=2), then the DLQ
    assert value(samples, "fanstack_queue_messages_delivered_total", queue="ru-orders") == 5
    assert value(samples, "fanstack_queue_messages_deleted_total", queue="ru-orders") == 3
    assert value(samples, "fanstack_function_invocations_total", function="fulfil") == 5
    errors = value(
        samples, "fanstack_function_errors_total", function="fulfil", error_type="ValueError"
    )
    assert errors == 2
    assert value(samples, "fanstack_function_duration_seconds_count", function="fulfil") == 5
    cold = value(samples, "fanstack_function_cold_start_duration_seconds_count", function="fulfil")
    assert 1 <= cold <= 5
    requests = value(
        samples, "fanstack_http_requests_total", route="/orders/{market}", method="POST",
        status="202",
    )  # fmt: skip
    assert requests == 5
    timed = value(
        samples, "fanstack_http_request_duration_seconds_count", route="/orders/{market}",
        method="POST",
    )  # fmt: skip
    assert timed == 5
    assert value(samples, "fanstack_queue_messages", queue="audit", state="visible") == 5
    assert value(samples, "fanstack_queue_messages_dead_lettered_total", queue="ru-orders") == 1
    assert value(samples, "fanstack_queue_oldest_message_age_seconds", queue="audit") > 0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(APP, tmp_path / "state")
    yield running
    running.stop()


def test_metrics_count_a_known_workload(server: Server) -> None:
    place_orders(server)
    counted(server)
    # and nothing is counted again after it settled
    assert_workload_counted(scrape(server))


def test_metrics_add_up_across_server_processes(tmp_path: Path) -> None:
    server = start_server(APP, tmp_path / "state", args=["--workers", "2"])
    try:
        place_orders(server, fresh_connections=True)
        counted(server)
        # whichever server process answers, the sums are the same
        for _ in range(4):
            again = scrape(server)
            assert value(again, "fanstack_topic_messages_published_total", topic="orders") == 5
    finally:
        server.stop()


def test_unmatched_requests_are_one_series_not_one_per_path(server: Server) -> None:
    for path in ("/nope/1", "/nope/2", "/nope/3"):
        assert httpx.get(f"{server.url}{path}").status_code == 404
    samples = scrape(server)
    unmatched = value(
        samples, "fanstack_http_requests_total", route="unmatched", method="GET", status="404"
    )
    assert unmatched == 3
    assert not any("/nope" in dict(labels).get("route", "") for _, labels in samples)


def test_metrics_need_the_admin_token_off_loopback(tmp_path: Path) -> None:
    server = start_server(
        APP, tmp_path / "state", host="0.0.0.0", args=["--admin-token", "admin-secret"]
    )
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        wrong = httpx.get(f"{server.url}/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code in (401, 403)
        samples = scrape(server, authorization="Bearer admin-secret")
        assert value(samples, "fanstack_queue_messages", queue="audit", state="visible") == 0
        audit = frozenset({("queue", "audit"), ("state", "visible")})
        assert ("fanstack_queue_messages", audit) in samples
    finally:
        server.stop()


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    server = start_server(APP, tmp_path / "state", env={"FANSTACK_METRICS": "off"})
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        place_orders(server)
    finally:
        server.stop()


def test_a_worker_process_serves_its_metrics_on_a_port_of_its_own(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.e2e.conftest import free_port

    data_dir = tmp_path / "state"
    port = free_port()
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "fanstack.cli", "--data-dir", str(data_dir), "worker", str(APP),
         "--metrics-port", str(port), "--grace", "5"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=dict(os.environ),
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def scraped() -> Samples | None:
            try:
                response = httpx.get(url, timeout=5)
            except httpx.HTTPError:
                return None
            samples: Samples = {}
            for family in text_string_to_metric_families(response.text):
                for sample in family.samples:
                    samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
            shipped = value(samples, "fanstack_queue_messages", queue="shipments", state="visible")
            # Counts reach the shared files within a flush interval of their commits.
            counted = value(samples, "fanstack_topic_messages_published_total", topic="shipments")
            return samples if shipped == 2 and counted >= 2 else None

        from fanstack import App

        producer = App("observed", data_dir=str(data_dir))
        orders = producer.topic("orders")
        wait_for(lambda: _up(url))
        orders.publish({"order_id": "w-1"}, attributes={"market": "ru"})
        orders.publish({"order_id": "w-2"}, attributes={"market": "ru"})
        samples = wait_for(scraped, timeout=60)
        assert isinstance(samples, dict)
        assert value(samples, "fanstack_function_invocations_total", function="fulfil") == 2
        assert value(samples, "fanstack_queue_messages_delivered_total", queue="ru-orders") == 2
        assert value(samples, "fanstack_topic_messages_published_total", topic="shipments") == 2
        assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404
        producer.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


def _up(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def test_a_killed_servers_metrics_directory_is_removed_by_the_next_start(tmp_path: Path) -> None:
    import signal
    import tempfile

    first = start_server(APP, tmp_path / "one")
    pid = first.process.pid
    root = Path(tempfile.gettempdir())
    left = wait_for(lambda: list(root.glob(f"fanstack-metrics-{pid}-*")))
    assert isinstance(left, list) and left
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=30)
    assert all(directory.exists() for directory in left)
    second = start_server(APP, tmp_path / "two")
    try:
        assert not any(directory.exists() for directory in left)
        assert list(root.glob(f"fanstack-metrics-{second.process.pid}-*"))
    finally:
        second.stop()
    assert not list(root.glob(f"fanstack-metrics-{second.process.pid}-*"))  # removed at exit
