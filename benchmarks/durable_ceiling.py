"""The HTTP benchmark's second ceiling: the marketplace's order POST in plain Python, at its best.

An ASGI app for the same uvicorn server as `fanstack gateway`, doing the work a 202 stands for
and nothing else: the path matched by one regular expression (market `eu|us|ru`, the shop id's
pattern), the body decoded with msgspec and checked by the `Order` schema of
`examples/marketplace/openapi.yaml` compiled once with fastjsonschema (`format` dropped, as
fanstack treats it as an annotation), `order_id` defaulted to a new id, then stored durably in
plain sqlite3 as `benchmarks/fanout.py`'s ceiling stores a publish: the body once (a payload row
with its attributes) and a row per subscribed queue (4, or 5 for market ru), on a file in WAL
mode with `synchronous=NORMAL` (fanstack's default), checkpointed as fanstack's store is
(`sqlite_best.py`). Requests that arrive during one turn of the event loop share one
transaction, committed on the loop at the end of that turn; each is answered 202 `{"order_id",
"message_id"}` only after its commit. With several server processes, writers queue on an
advisory lock (`flock`), as fanstack's do, not in SQLite's sleeping busy handler. No routing
table, auth, logs, metrics, traces, mapping templates or filter policies: what any
implementation of this API must do at least, so `fanstack / this` says how much of the gap to
the constant answer is fanstack's own, and `this / constant` how much of it any durable
implementation in Python on this server and machine leaves.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import fastjsonschema
import msgspec
import yaml

from sqlite_best import PUBLICATIONS_SCHEMA, checkpoint_like_fanstack, store_publications

SPEC = Path(__file__).resolve().parents[1] / "examples/marketplace/openapi.yaml"
ROUTE = re.compile(r"/market/(eu|us|ru)/shops/([A-Za-z0-9_-]{1,64})/orders")
QUEUES = ("process", "notify", "delivery", "reports")  # and compliance, for market ru
HEADERS = [(b"content-type", b"application/json")]


def _without_format(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {key: _without_format(value) for key, value in schema.items() if key != "format"}
    if isinstance(schema, list):
        return [_without_format(item) for item in schema]
    return schema


def order_validator() -> Any:
    """The marketplace's `Order` schema, compiled once."""
    spec = yaml.safe_load(SPEC.read_text())
    schema = _without_format(spec["components"]["schemas"]["Order"])
    return fastjsonschema.compile(schema)


class GroupCommit:
    """Rows stored by the requests of one loop turn in one transaction, on the loop."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")  # other server processes of --workers
        self._db.executescript(PUBLICATIONS_SCHEMA)
        checkpoint_like_fanstack(self._db, path)
        # Writers of all the server processes (`--workers`) queue on an advisory lock, which
        # the kernel hands on at once, instead of SQLite's busy handler, which sleeps.
        self._lock = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
        self._pending: list[tuple[tuple[Any, ...], list[str], asyncio.Future[None]]] = []

    def store(self, payload: tuple[Any, ...], queues: list[str]) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            loop.call_soon(self._commit)
        self._pending.append((payload, queues, future))
        return future

    def _commit(self) -> None:
        batch, self._pending = self._pending, []
        db = self._db
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            db.execute("BEGIN IMMEDIATE")
            # Ids from the last one stored: this transaction holds the file's write lock.
            (last,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM payloads").fetchone()
            payloads, deliveries = [], []
            for payload_id, (payload, queues, _) in enumerate(batch, start=last + 1):
                payloads.append((payload_id, *payload))
                deliveries.extend((queue, payload_id) for queue in queues)
            store_publications(db, payloads, deliveries)
            db.execute("COMMIT")
        except Exception as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for _, _, future in batch:
                future.set_exception(error)
            return
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        for _, _, future in batch:
            future.set_result(None)


class DurableOrders:
    """The ASGI app: POST orders stored as above; any other request 404 (GET / for the
    benchmark's readiness probe answers 200)."""

    def __init__(self, path: Path) -> None:
        self._validate = order_validator()
        self._store = GroupCommit(path)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        route = ROUTE.fullmatch(scope["path"])
        if scope["method"] != "POST" or route is None:
            status = 200 if scope["path"] == "/" else 404
            await _answer(send, status, b"{}")
            return
        market, shop = route.groups()
        try:
            order = msgspec.json.decode(body)
            self._validate(order)
        except (msgspec.DecodeError, fastjsonschema.JsonSchemaException) as error:
            await _answer(send, 400, json.dumps({"message": str(error)}).encode())
            return
        order.setdefault("order_id", str(uuid.uuid4()))
        message_id = str(uuid.uuid4())
        attributes = {
            "market": {"DataType": "String", "StringValue": market},
            "shop": {"DataType": "String", "StringValue": shop},
        }
        payload = (message_id, json.dumps(order, separators=(",", ":")), json.dumps(attributes))
        queues = [*QUEUES, "compliance"] if market == "ru" else list(QUEUES)
        await self._store.store((*payload, len(queues)), queues)
        answer = {"order_id": order["order_id"], "message_id": message_id}
        await _answer(send, 202, json.dumps(answer, separators=(",", ":")).encode())


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": body})


def stored_orders(path: Path) -> int:
    """Orders the ceiling stored (each a payload row)."""
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM payloads").fetchone()
    return int(count)
