"""Reading OpenAPI documents with plain values: operations with `x-fanstack-integration`,
`$ref`s followed, path-level parameters merged, and every mistake named where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fanstack.core.errors import InvalidParameterValue
from fanstack.gateway.integrations import Integration
from fanstack.gateway.openapi import integration_from, load_document, routes_in

SEND = {"type": "send", "target": "inbox"}


def document(**paths: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "shop", "version": "2.0.0"},
        "components": {
            "parameters": {
                "Market": {"name": "market", "in": "path", "required": True, "schema": {}},
            },
            "requestBodies": {
                "Order": {"required": True, "content": {"application/json": {"schema": {}}}},
            },
        },
        "paths": paths,
    }


def test_operations_become_routes_with_refs_followed_and_parameters_merged() -> None:
    doc = document(
        **{
            "/market/{market}/orders": {
                "parameters": [
                    {"$ref": "#/components/parameters/Market"},
                    {"name": "x-tenant", "in": "header", "schema": {"type": "string"}},
                ],
                "post": {
                    "operationId": "placeOrder",
                    "parameters": [
                        {"name": "x-tenant", "in": "header", "required": True, "schema": {}},
                    ],
                    "requestBody": {"$ref": "#/components/requestBodies/Order"},
                    "x-fanstack-integration": {**SEND, "attributes": {"m": "$request.path.market"}},
                    "x-fanstack-auth": "jwt",
                },
                "get": {"x-fanstack-integration": {"type": "invoke", "target": "echo"}},
            }
        }
    )
    get, post = routes_in(doc)  # in method order, whatever the order in the document
    assert (post.method, post.path, post.auth) == ("post", "/market/{market}/orders", "jwt")
    assert post.integration == Integration(
        kind="send", target="inbox", attributes={"m": "$request.path.market"}
    )
    assert post.operation["operationId"] == "placeOrder"
    assert not any(key.startswith("x-fanstack") for key in post.operation)
    assert post.operation["parameters"] == [
        {"name": "market", "in": "path", "required": True, "schema": {}},
        {"name": "x-tenant", "in": "header", "required": True, "schema": {}},  # its own wins
    ]
    assert post.operation["requestBody"]["required"] is True
    assert (get.method, get.auth) == ("get", "api_key")  # the default auth


def test_an_operation_without_an_integration_is_refused() -> None:
    doc = document(**{"/orders": {"post": {"summary": "no integration"}}})
    with pytest.raises(InvalidParameterValue, match="POST /orders: no x-fanstack-integration"):
        list(routes_in(doc))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({**SEND, "queue": "inbox"}, r"GET /x: unknown integration fields \['queue'\]"),
        ({"type": "send"}, "GET /x: an integration needs 'type' and 'target'"),
        ({"target": "inbox"}, "an integration needs 'type' and 'target'"),
        ({"type": "mail", "target": "inbox"}, "integration type 'mail'"),
    ],
)
def test_an_integration_object_is_checked(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidParameterValue, match=problem):
        integration_from(raw, "GET /x")


def test_an_integration_object_reads_every_field() -> None:
    raw = {
        "type": "publish",
        "target": "events",
        "body": {"id": "$request.body#/id"},
        "attributes": {"kind": "$request.path.kind"},
        "defaults": {"source": "api"},
        "group_id": "$request.header.x-group",
        "deduplication_id": "$request.body#/id",
        "status": 201,
        "response": {"id": "$message.id"},
    }
    assert integration_from(raw, "POST /x") == Integration(
        kind="publish",
        target="events",
        body={"id": "$request.body#/id"},
        attributes={"kind": "$request.path.kind"},
        defaults={"source": "api"},
        group_id="$request.header.x-group",
        deduplication_id="$request.body#/id",
        status=201,
        response={"id": "$message.id"},
    )


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("other.yaml#/components/parameters/Market", "only local refs"),
        ("#/components/parameters/Nothing", "names nothing in the document"),
    ],
)
def test_only_local_refs_that_name_something_are_followed(ref: str, problem: str) -> None:
    doc = document(
        **{"/x": {"get": {"parameters": [{"$ref": ref}], "x-fanstack-integration": SEND}}}
    )
    with pytest.raises(InvalidParameterValue, match=problem):
        list(routes_in(doc))


def test_a_ref_cycle_is_refused() -> None:
    doc = document(
        **{"/x": {"get": {"parameters": [{"$ref": "#/loop"}], "x-fanstack-integration": SEND}}}
    )
    doc["loop"] = {"$ref": "#/loop"}
    with pytest.raises(InvalidParameterValue, match="cannot resolve"):
        list(routes_in(doc))


def test_documents_are_read_from_yaml_files_or_copied_from_mappings(tmp_path: Path) -> None:
    path = tmp_path / "openapi.yaml"
    path.write_text("openapi: 3.1.0\ninfo: {title: shop, version: '1'}\npaths: {}\n")
    assert load_document(path)["info"] == {"title": "shop", "version": "1"}
    given = document()
    loaded = load_document(given)
    loaded["components"]["parameters"].clear()
    assert given["components"]["parameters"]  # the caller's document is not changed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("openapi: 2.0\n", "version '2.0': need 3.x"),
        ("swagger: '2.0'\n", "version '': need 3.x"),
        ("- a list\n", "is not an object"),
        ("openapi: [3\n", "cannot read OpenAPI document"),
    ],
)
def test_a_document_that_is_not_openapi_3_is_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "openapi.yaml"
    path.write_text(text)
    with pytest.raises(InvalidParameterValue, match=problem):
        load_document(path)
    with pytest.raises(InvalidParameterValue, match="cannot read OpenAPI document"):
        load_document(tmp_path / "missing.yaml")
