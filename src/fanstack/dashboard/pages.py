"""The dashboard's pages: server-rendered HTML (Jinja2 templates, autoescaped) on the app's rows.

Every page reads the store off the event loop, in Starlette's thread pool. The one action, a
redrive, is a form POST answered with a redirect back to the queue (so a reload never repeats
it); a peek is a GET and changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from fanstack.core.errors import FanstackError, QueueDoesNotExist
from fanstack.dashboard import rows
from fanstack.dashboard.figures import duration_text

if TYPE_CHECKING:
    from fanstack.app import App

PREFIX = "/_fanstack"
PEEK_DEFAULT, PEEK_MAX = 10, 100
NAV = (
    ("queues", "Queues", f"{PREFIX}/"),
    ("topics", "Topics", f"{PREFIX}/topics"),
    ("functions", "Functions", f"{PREFIX}/functions"),
    ("routes", "Routes", f"{PREFIX}/routes"),
    ("buses", "Buses", f"{PREFIX}/buses"),
    ("schedules", "Schedules", f"{PREFIX}/schedules"),
    ("workflows", "Workflows", f"{PREFIX}/workflows"),
)


def _queue_path(name: str, **query: object) -> str:
    return f"{PREFIX}/queues/{quote(name)}?{urlencode(query)}"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty_body(body: str) -> str:
    """A JSON body indented (an SNS envelope's `Message` too), any other body as it is."""
    try:
        value = json.loads(body)
    except ValueError:
        return body
    if isinstance(value, dict) and isinstance(value.get("Message"), str):
        with contextlib.suppress(ValueError):  # a message that is not JSON stays text
            value = {**value, "Message": json.loads(value["Message"])}
    return json.dumps(value, indent=2, ensure_ascii=False)


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("fanstack.dashboard", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["duration"] = duration_text
    environment.filters["clock"] = _clock
    environment.filters["pretty_body"] = _pretty_body
    return environment


class Pages:
    """The endpoints of the dashboard's pages for one app."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.templates = _environment()

    def render(self, template: str, page: str, status: int = 200, **values: Any) -> Response:
        """A page from its template, with the layout's values (app name, nav, prefix)."""
        html = self.templates.get_template(template).render(
            app_name=self.app.name, nav=NAV, page=page, prefix=PREFIX, now=time.time(), **values
        )
        return HTMLResponse(html, status_code=status)

    async def _read(self, read: Callable[[], Any]) -> Any:
        return await run_in_threadpool(read)

    async def overview(self, request: Request) -> Response:
        """Queues with depths, ages and DLQs, and the live throughput chart."""
        queues = await self._read(lambda: rows.queue_rows(self.app))
        return self.render("overview.html", "queues", queues=queues)

    async def queue(self, request: Request) -> Response:
        """One queue: its settings and depths, its DLQ, a peek at its messages, redrive."""
        name = request.path_params["name"]
        try:
            limit = min(max(int(request.query_params.get("peek", "0")), 0), PEEK_MAX)
        except ValueError:
            limit = PEEK_DEFAULT

        def read() -> tuple[rows.QueueRow, list[Any] | None]:
            row = rows.queue_row(self.app, name)
            return row, rows.peek(self.app, name, limit) if limit else None

        try:
            row, messages = await self._read(read)
        except QueueDoesNotExist:
            return self.render("missing.html", "queues", status=404, what=f"queue {name!r}")
        redriven = request.query_params.get("redriven")
        return self.render(
            "queue.html",
            "queues",
            queue=row,
            messages=messages,
            peek_default=PEEK_DEFAULT,
            redriven=redriven,
            error=request.query_params.get("error"),
        )

    async def redrive(self, request: Request) -> Response:
        """Move the queue's dead letters back to it; back to the queue's page with the count."""
        name = request.path_params["name"]
        try:
            moved = await self._read(lambda: self.app.backend.redrive_dead_letters(name))
        except QueueDoesNotExist:
            return self.render("missing.html", "queues", status=404, what=f"queue {name!r}")
        except FanstackError as exc:
            return RedirectResponse(_queue_path(name, error=str(exc)), status_code=303)
        return RedirectResponse(_queue_path(name, redriven=moved), status_code=303)

    async def topics(self, request: Request) -> Response:
        """Topics and their subscriptions with filter policies."""
        topics = await self._read(lambda: rows.topic_rows(self.app))
        return self.render("topics.html", "topics", topics=topics)

    async def functions(self, request: Request) -> Response:
        """Functions: invocations, errors, p50/p99, and the recent failures."""
        functions, failures = await self._read(
            lambda: (rows.function_rows(self.app), rows.recent_failures(self.app))
        )
        return self.render("functions.html", "functions", functions=functions, failures=failures)

    async def routes(self, request: Request) -> Response:
        """The API's routes: method, path, integration and auth."""
        return self.render("routes.html", "routes", operations=self.app.api.operations)

    async def buses(self, request: Request) -> Response:
        """Event buses, their rules and archives."""
        buses = await self._read(lambda: rows.bus_rows(self.app))
        return self.render("buses.html", "buses", buses=buses)

    async def schedules(self, request: Request) -> Response:
        """Schedules: expression, target, last and next fire."""
        schedules = await self._read(lambda: rows.schedule_rows(self.app))
        return self.render("schedules.html", "schedules", schedules=schedules)

    async def workflows(self, request: Request) -> Response:
        """Workflows: executions by status and the latest ones."""
        workflows = await self._read(lambda: rows.workflow_rows(self.app))
        return self.render("workflows.html", "workflows", workflows=workflows)
