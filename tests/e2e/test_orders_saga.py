"""The orders-saga example end to end, over real HTTP against `fanstack run`.

Orders go in through `POST /orders` (a route that starts the `order-saga` workflow); the
tests then read the execution (its record and history, from the server's data dir, as an
operator's script would), the app's tables and `GET /orders/{id}`. Every scenario's order is
placed at once by one fixture, so their executions run side by side and the module takes about
as long as its slowest saga; the sales report's Map runs on its own. One server serves all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fanstack import App
from fanstack.workflows import Execution
from fanstack.workflows.store import ExecutionRecord

from .conftest import ORDERS_SAGA, Server, start_server

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000000"  # ends in 0000: the example's issuer declines it
SAGA_TIMEOUT = 60.0
REPORT_TIMEOUT = 120.0

# What the sales report must find in the 10,000 generated sales (100 batches of 100): sale i
# is in CATEGORIES[(i % 7 + i % 3) % 5] and worth (i * 7919) % 5000 + 1 cents.
EXPECTED_BY_CATEGORY = {
    "books": {"count": 1905, "amount_cents": 4_754_681},
    "games": {"count": 2380, "amount_cents": 5_954_882},
    "garden": {"count": 2381, "amount_cents": 5_955_022},
    "kitchen": {"count": 1905, "amount_cents": 4_765_654},
    "music": {"count": 1429, "amount_cents": 3_574_761},
}
EXPECTED_TOTAL_CENTS = 25_005_000


def order(order_id: str, *lines: tuple[str, int], card: str = GOOD_CARD) -> dict[str, Any]:
    """An order request body for `lines` of (sku, qty)."""
    return {
        "order_id": order_id,
        "customer": {"name": "Ada", "email": f"{order_id}@example.com"},
        "items": [{"sku": sku, "qty": qty} for sku, qty in lines],
        "payment": {"card_number": card},
    }


# Each scenario's request; "twice-1" and "twice-2" are the same order placed twice.
SCENARIOS = {
    "good": order("o-good", ("TEA-1", 2), ("MUG-1", 1)),
    "declined": order("o-declined", ("TEA-1", 1), card=DECLINED_CARD),
    "sold-out": order("o-sold-out", ("KETTLE-1", 1)),
    "unknown-product": order("o-unknown", ("NOPE-1", 1)),
    "too-many": order("o-too-many", ("TEA-1", 11)),
    "rejected-then-corrected": order("o-corrected", ("NOPE-1", 1)),
    "twice-1": order("o-twice", ("MUG-1", 2)),
    "twice-2": order("o-twice", ("MUG-1", 2)),
}


@pytest.fixture(scope="module")
def saga(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `fanstack run` of the example for the whole module."""
    server = start_server(ORDERS_SAGA, tmp_path_factory.mktemp("orders-saga") / "state")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def state(saga: Server) -> Iterator[App]:
    """The server's state, opened in the test process: executions and the app's tables."""
    app = App("orders-saga", data_dir=saga.data_dir)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def client(saga: Server) -> Iterator[httpx.Client]:
    """An HTTP client of the shared server."""
    with saga.client() as http:
        yield http


@pytest.fixture(scope="module")
def placed(saga: Server) -> dict[str, str]:
    """Every scenario's order, placed through the API at once: scenario -> execution ARN."""
    with saga.client() as http:
        return {name: place(http, body) for name, body in SCENARIOS.items()}


# -- helpers -----------------------------------------------------------------------------


def place(client: httpx.Client, body: dict[str, Any]) -> str:
    """POST an order; the ARN of the execution the route started."""
    response = client.post("/orders", json=body)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert set(answer) == {"execution_arn", "start_date"}
    arn: str = answer["execution_arn"]
    assert ":execution:order-saga:" in arn
    return arn


def finished(state: App, arn: str, timeout: float = SAGA_TIMEOUT) -> ExecutionRecord:
    """The execution's record once it has ended (polled up to `timeout` seconds)."""
    return Execution.from_arn(state.backend, arn).wait(timeout=timeout)


def history(state: App, arn: str) -> list[dict[str, Any]]:
    """The execution's history events, in order."""
    return Execution.from_arn(state.backend, arn).history()


def entered(events: list[dict[str, Any]]) -> list[str]:
    """The names of the states entered, in order (a retried task is entered again)."""
    return [e["name"] for e in events if e["type"].endswith("StateEntered")]


def task_results(events: list[dict[str, Any]], resource: str) -> list[tuple[str, str | None]]:
    """(TaskSucceeded or TaskFailed, error) of each run of the function `resource`."""
    return [
        (e["type"], e.get("error"))
        for e in events
        if e["type"] in ("TaskSucceeded", "TaskFailed") and e["resource"] == resource
    ]


def first_index(events: list[dict[str, Any]], kind: str, **fields: str) -> int | None:
    """The position of the first event of type `kind` with these fields, or None."""
    return next(
        (
            i
            for i, e in enumerate(events)
            if e["type"] == kind and all(e.get(k) == v for k, v in fields.items())
        ),
        None,
    )


def order_view(client: httpx.Client, order_id: str) -> dict[str, Any]:
    """`GET /orders/{id}`: the order as the app's tables tell it."""
    response = client.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def fanstack(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `fanstack` command line against the server's data dir."""
    command = [sys.executable, "-m", "fanstack.cli", "--data-dir", str(server.data_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def peak_concurrency(events: list[dict[str, Any]], state_name: str) -> int:
    """How many runs of `state_name` (in Map items) overlapped at most, by their history."""
    starts: dict[str, float] = {}
    edges: list[tuple[float, int]] = []
    for e in events:
        if e.get("name") != state_name:
            continue
        frame = str(e["step"]).rsplit("#", 1)[0]  # the item a state ran in (`.../m<index>`)
        if e["type"] == "TaskStateEntered":
            starts.setdefault(frame, e["timestamp"])
        elif e["type"] == "TaskStateExited":
            edges += [(starts[frame], 1), (e["timestamp"], -1)]
    running = peak = 0
    for _, change in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        running += change
        peak = max(peak, running)
    return peak


# -- the saga ----------------------------------------------------------------------------


def test_a_good_order_succeeds_with_its_reservation_charge_and_email_recorded(
    client: httpx.Client, state: App, placed: dict[str, str]
) -> None:
    record = finished(state, placed["good"])
    assert record.status == "SUCCEEDED", record
    assert record.output["status"] == "completed"
    assert record.output["execution_arn"] == placed["good"]
    view = order_view(client, "o-good")
    assert (view["status"], view["reason"], view["amount_cents"]) == ("completed", None, 2700)
    assert view["reservation"]["status"] == "reserved"
    assert view["reservation"]["lines"] == [{"sku": "TEA-1", "qty": 2}, {"sku": "MUG-1", "qty": 1}]
    payment = view["payment"]
    assert (payment["status"], payment["amount_cents"], payment["refunded_cents"]) == (
        "charged",
        2700,
        0,
    )
    assert payment["card_last4"] == "4242"
    email = view["email"]
    assert email["to"] == "o-good@example.com"
    assert email["subject"] == "Your order o-good is confirmed"
    assert email["charge_id"] == payment["charge_id"]
    assert email["body"].endswith("Total: 27.00")
    states = entered(history(state, placed["good"]))
    assert states[:2] == ["ValidateOrder", "ReserveAndCharge"]
    assert states[-2:] == ["SendConfirmation", "CompleteOrder"]
    assert {"ReserveInventory", "ChargePayment"} <= set(states)
    assert not {"ReleaseInventory", "RefundPayment", "OrderFailed"} & set(states)


def test_a_transient_inventory_busy_is_retried_after_its_interval(
    state: App, placed: dict[str, str]
) -> None:
    assert finished(state, placed["good"]).status == "SUCCEEDED"
    events = history(state, placed["good"])
    assert task_results(events, "reserve_inventory") == [
        ("TaskFailed", "InventoryBusy"),
        ("TaskSucceeded", None),
    ]
    failed, succeeded = (
        e["timestamp"]
        for e in events
        if e["type"] in ("TaskFailed", "TaskSucceeded") and e["resource"] == "reserve_inventory"
    )
    assert succeeded - failed >= 1.0  # the retrier's IntervalSeconds
    assert state.table("inventory-attempts").get("o-good") == {"attempts": 2}
    assert task_results(events, "charge_payment") == [("TaskSucceeded", None)]  # run once


def test_a_declined_card_fails_the_order_after_compensating_in_order(
    client: httpx.Client, state: App, placed: dict[str, str]
) -> None:
    record = finished(state, placed["declined"])
    assert (record.status, record.error) == ("FAILED", "OrderFailed")
    assert record.cause == "PaymentDeclined: card ending 0000 was declined"
    events = history(state, placed["declined"])
    assert task_results(events, "charge_payment") == [("TaskFailed", "PaymentDeclined")]
    states = entered(events)
    compensations = ["ReleaseInventory", "RefundPayment", "CloseFailedOrder", "OrderFailed"]
    assert [s for s in states if s in compensations] == compensations
    assert states.index("ReleaseInventory") > states.index("ReserveAndCharge")
    assert "SendConfirmation" not in states
    assert events[-1]["type"] == "ExecutionFailed"
    assert events[-1]["error"] == "OrderFailed"
    # The reservation is released (or forbidden, if its retry had not run yet), nothing is
    # charged, nothing is sent, and the order says why.
    assert state.table("inventory").get("o-declined")["status"] == "released"  # type: ignore[index]
    payment = state.table("payments").get("o-declined")
    assert payment is not None
    assert (payment["status"], payment["charge_id"], payment["refunded_cents"]) == (
        "voided",
        None,
        0,
    )
    assert state.table("emails").get("o-declined") is None
    view = order_view(client, "o-declined")
    assert (view["status"], view["reason"]) == ("failed", record.cause)


def test_an_out_of_stock_order_leaves_no_money_taken(
    client: httpx.Client, state: App, placed: dict[str, str]
) -> None:
    record = finished(state, placed["sold-out"])
    assert (record.status, record.error) == ("FAILED", "OrderFailed")
    assert record.cause == "OutOfStock: not in stock: KETTLE-1"
    events = history(state, placed["sold-out"])
    assert task_results(events, "reserve_inventory") == [
        ("TaskFailed", "InventoryBusy"),
        ("TaskFailed", "OutOfStock"),
    ]
    names = entered(events)
    assert names.index("ReleaseInventory") < names.index("RefundPayment")
    payment = order_view(client, "o-sold-out")["payment"]
    # The charge ran in the other branch: refunded in full if it was made before the refund
    # ran (the usual case: the reservation fails only after a 1 s retry), else voided so that
    # it never is.
    charged = first_index(events, "TaskSucceeded", resource="charge_payment")
    refunding = first_index(events, "TaskStateEntered", name="RefundPayment")
    assert refunding is not None
    if charged is not None and charged < refunding:
        assert (payment["status"], payment["amount_cents"], payment["refunded_cents"]) == (
            "refunded",
            4900,
            4900,
        )
    else:
        assert (payment["status"], payment["refunded_cents"]) == ("voided", 0)
    assert state.table("inventory").get("o-sold-out")["status"] == "released"  # type: ignore[index]
    assert state.table("emails").get("o-sold-out") is None


@pytest.mark.parametrize(
    ("scenario", "order_id", "reason"),
    [
        ("unknown-product", "o-unknown", "InvalidOrder: unknown product NOPE-1"),
        ("too-many", "o-too-many", "InvalidOrder: at most 10 of TEA-1 per order"),
    ],
)
def test_an_invalid_order_is_rejected_at_once_without_reserving_or_charging(
    client: httpx.Client,
    state: App,
    placed: dict[str, str],
    scenario: str,
    order_id: str,
    reason: str,
) -> None:
    record = finished(state, placed[scenario])
    assert (record.status, record.error, record.cause) == ("FAILED", "OrderRejected", reason)
    events = history(state, placed[scenario])
    assert entered(events) == ["ValidateOrder", "RejectOrder", "OrderRejected"]
    assert task_results(events, "validate_order") == [("TaskFailed", "InvalidOrder")]  # no retry
    view = order_view(client, order_id)
    assert (view["status"], view["reason"]) == ("rejected", reason)
    assert (view["reservation"], view["payment"], view["email"]) == (None, None, None)


def test_an_order_placed_twice_is_fulfilled_once(
    client: httpx.Client, state: App, placed: dict[str, str]
) -> None:
    records = {name: finished(state, placed[name]) for name in ("twice-1", "twice-2")}
    by_status = {r.status: r for r in records.values()}
    assert set(by_status) == {"SUCCEEDED", "FAILED"}
    loser = by_status["FAILED"]
    assert (loser.error, loser.cause) == (
        "OrderRejected",
        "InvalidOrder: order o-twice was already placed",
    )
    assert "ReserveAndCharge" not in entered(history(state, loser.arn))
    view = order_view(client, "o-twice")
    assert (view["status"], view["execution_arn"]) == ("completed", by_status["SUCCEEDED"].arn)
    assert (view["payment"]["status"], view["payment"]["amount_cents"]) == ("charged", 2400)


def test_a_rejected_order_can_be_placed_again_once_corrected(
    client: httpx.Client, state: App, placed: dict[str, str]
) -> None:
    rejected = finished(state, placed["rejected-then-corrected"])
    assert (rejected.status, rejected.error) == ("FAILED", "OrderRejected")
    again = place(client, order("o-corrected", ("TEA-1", 1)))
    assert finished(state, again).status == "SUCCEEDED"
    view = order_view(client, "o-corrected")
    assert (view["status"], view["execution_arn"], view["amount_cents"]) == (
        "completed",
        again,
        750,
    )
    assert view["payment"]["status"] == "charged"


def test_a_malformed_order_is_400_naming_each_field_and_starts_nothing(
    client: httpx.Client, saga: Server
) -> None:
    bad = {
        "order_id": "o-malformed",
        "customer": {"email": "not an email"},
        "items": [],
        "payment": {"card_number": "12"},
    }
    response = client.post("/orders", json=bad)
    assert response.status_code == 400, response.text
    fields = {(e["in"], e["name"]) for e in response.json()["errors"]}
    assert {("body", "/customer/email"), ("body", "/items"), ("body", "/payment/card_number")} <= (
        fields
    )
    listed = fanstack(saga, "executions", "order-saga", "--json")
    assert listed.returncode == 0, listed.stderr
    inputs = [execution["input"] for execution in json.loads(listed.stdout)]
    assert all(i.get("order_id") != "o-malformed" for i in inputs)
    assert client.get("/orders/o-malformed").status_code == 404


def test_fanstack_execution_draws_the_declined_order_as_a_tree_of_states(
    saga: Server, state: App, placed: dict[str, str]
) -> None:
    finished(state, placed["declined"])
    shown = fanstack(saga, "execution", placed["declined"])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == placed["declined"]
    assert lines[1].startswith("FAILED in ")
    assert lines[1].endswith(": OrderFailed: PaymentDeclined: card ending 0000 was declined")
    assert any(line.startswith("  [branch 1] ! TaskFailed: PaymentDeclined: ") for line in lines)
    tops = [line.split(" ")[0] for line in lines[2:] if line[:1].isalpha()]
    assert tops == [
        "ValidateOrder",
        "ReserveAndCharge",
        "ReleaseInventory",
        "RefundPayment",
        "CloseFailedOrder",
    ]
    failed = fanstack(saga, "executions", "order-saga", "--status", "FAILED", "--json")
    assert placed["declined"] in {execution["arn"] for execution in json.loads(failed.stdout)}


# -- the sales report (Map) --------------------------------------------------------------


def test_the_sales_report_sums_10000_sales_in_100_batches_exactly(
    client: httpx.Client, state: App
) -> None:
    response = client.post("/reports", json={"dataset": "q1"})
    assert response.status_code == 202, response.text
    arn = response.json()["execution_arn"]
    record = finished(state, arn, timeout=REPORT_TIMEOUT)
    assert record.status == "SUCCEEDED", record
    report = record.output
    assert report["by_category"] == EXPECTED_BY_CATEGORY
    assert (report["records"], report["batches"]) == (10_000, 100)
    assert report["amount_cents"] == EXPECTED_TOTAL_CENTS
    assert client.get("/reports/q1").json() == report
    events = history(state, arn)
    assert len(task_results(events, "sum_batch")) == 100  # one invocation a batch
    [map_exited] = [e for e in events if e["type"] == "MapStateExited"]
    partials = json.loads(map_exited["output"])["partials"]
    assert [p["batch"] for p in partials] == list(range(100))  # results in item order
    assert 1 < peak_concurrency(events, "SumBatch") <= 10  # MaxConcurrency


def test_an_unknown_report_is_404(client: httpx.Client) -> None:
    response = client.get("/reports/never-made")
    assert response.status_code == 404
    assert response.json() == {"message": "no report for data set never-made yet"}
