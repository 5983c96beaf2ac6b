"""The served OpenAPI document says which auth is enforced and which errors may come back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fanstack import App


@pytest.fixture
def app(tmp_path: Path) -> Any:
    app = App("doc", data_dir=tmp_path)
    queue = app.queue("q")
    app.api.post("/keyed", send=queue, request_schema={"type": "object"}, auth="api_key")
    app.api.post("/tokened", send=queue, request_schema={"type": "object"}, auth="jwt")
    app.api.get("/open", send=queue, body={"a": 1}, auth="open")
    yield app
    app.close()


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {path: next(iter(item.values())) for path, item in document["paths"].items()}


def test_enforced_auth_is_declared_with_its_error_statuses(app: App) -> None:
    ops = operations(app.api.document())
    assert ops["/keyed"]["security"] == [{"apiKey": []}]
    assert {"400", "403", "413", "415", "429"} <= set(ops["/keyed"]["responses"])
    assert ops["/tokened"]["security"] == [{"bearer": []}]
    assert "401" in ops["/tokened"]["responses"]
    assert ops["/open"]["security"] == []
    assert set(ops["/open"]["responses"]) == {"202", "400"}


def test_auth_open_on_loopback_is_declared_open(app: App) -> None:
    ops = operations(app.api.document(auth_enforced=False))
    for path in ("/keyed", "/tokened"):
        assert ops[path]["security"] == []
        assert not {"401", "403", "429"} & set(ops[path]["responses"])
    components = app.api.document()["components"]["responses"]
    assert {"BadRequest", "Forbidden", "UnsupportedMediaType"} <= set(components)
