"""The `/docs` page: Swagger UI on the served OpenAPI document, with no internet needed.

Swagger UI's script and stylesheet come from the `swagger-ui-bundle-v2` package (Swagger UI 5,
which renders OpenAPI 3.1, the version the gateway serves) and are served by the gateway itself
under `/docs/assets/`, so the page works on a machine with no route to a CDN.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]  # untyped

DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
INIT_PATH = f"{DOCS_PATH}/init.js"
SWAGGER_UI_DIR: str = swagger_ui_path  # the package's copy of Swagger UI's dist files

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} API docs</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head><body><div id="docs"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{init}"></script>
</body></html>
"""

# Outside the page, so the page needs no inline script (a strict CSP stays possible).
_INIT = 'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#docs"});\n'


def docs_routes(title: str) -> list[BaseRoute]:
    """The docs page, its start-up script and Swagger UI's assets."""
    page = _PAGE.format(title=html.escape(title), assets=ASSETS_PATH, init=INIT_PATH)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    async def init(request: Request) -> Response:
        return Response(_INIT, media_type="text/javascript")

    return [
        Route(DOCS_PATH, docs, methods=["GET"]),
        Route(INIT_PATH, init, methods=["GET"]),
        Mount(ASSETS_PATH, app=StaticFiles(directory=SWAGGER_UI_DIR), name="docs-assets"),
    ]
