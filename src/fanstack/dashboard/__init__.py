"""The dashboard at `/_fanstack/`: queues, topics, functions, routes, buses, schedules, workflows.

Server-rendered pages (`pages`) on rows read from the app and its store (`rows`), live counts
over server-sent events (`stream`), and the page's own stylesheet and script (`static/`): no
asset comes from anywhere but fanstack, so it works with no internet. The gateway serves these
routes behind its admin guard (open on loopback, the admin token off it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fanstack.dashboard.pages import PREFIX, Pages
from fanstack.dashboard.stream import ThroughputStream

if TYPE_CHECKING:
    from fanstack.app import App


def dashboard_routes(app: App) -> list[BaseRoute]:
    """The dashboard's routes, all under `/_fanstack/`."""
    pages = Pages(app)
    return [
        Mount(
            PREFIX,
            routes=[
                Route("/", pages.overview, methods=["GET"]),
                Route("/queues/{name}", pages.queue, methods=["GET"]),
                Route("/queues/{name}/redrive", pages.redrive, methods=["POST"]),
                Route("/topics", pages.topics, methods=["GET"]),
                Route("/functions", pages.functions, methods=["GET"]),
                Route("/routes", pages.routes, methods=["GET"]),
                Route("/buses", pages.buses, methods=["GET"]),
                Route("/schedules", pages.schedules, methods=["GET"]),
                Route("/workflows", pages.workflows, methods=["GET"]),
                Route("/stream", ThroughputStream(app).endpoint, methods=["GET"]),
                Mount("/static", StaticFiles(packages=[("fanstack.dashboard", "static")])),
            ],
        )
    ]


__all__ = ["dashboard_routes"]
