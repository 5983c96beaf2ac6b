"""Mappings with plain values: runtime expressions, templates, claims and JSON pointers."""

from __future__ import annotations

from typing import Any

import pytest

from fanstack.core.errors import InvalidParameterValue
from fanstack.gateway.expressions import (
    RequestContext,
    check_template,
    evaluate,
    render,
    resolve_pointer,
)

CONTEXT = RequestContext(
    path={"market": "eu", "shop_id": "s-1"},
    query={"limit": 5},
    headers={"x-tenant": "t-9"},
    body={"order": {"id": "o-1", "lines": [{"sku": "tea"}, {"sku": "cup"}]}, "a/b": 1, "m~n": 2},
    request_id="req-1",
    api_key="key-1",
    claims={"sub": "u-42", "roles": ["buyer"]},
)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("$request.path.market", "eu"),
        ("$request.query.limit", 5),
        ("$request.header.x-tenant", "t-9"),
        ("$request.header.X-Tenant", "t-9"),  # header names are case-insensitive
        ("$request.body", CONTEXT.body),
        ("$request.body#/order/id", "o-1"),
        ("$request.body#/order/lines/1/sku", "cup"),
        ("$context.requestId", "req-1"),
        ("$context.apiKey", "key-1"),
        ("$context.claims.sub", "u-42"),
        ("$context.claims", {"sub": "u-42", "roles": ["buyer"]}),
        ("$context.claims.roles", ["buyer"]),
    ],
)
def test_an_expression_names_a_part_of_the_request(expression: str, value: Any) -> None:
    assert evaluate(expression, CONTEXT) == value


@pytest.mark.parametrize(
    "expression",
    [
        "$request.path.missing",
        "$request.query.missing",
        "$request.header.x-missing",
        "$request.body#/order/missing",
        "$request.body#/order/lines/7/sku",
        "$request.cookie.session",
        "$context.claims.missing",
        "$context.stage",
        "$message.id",
    ],
)
def test_what_is_not_there_evaluates_to_none(expression: str) -> None:
    assert evaluate(expression, CONTEXT) is None


def test_without_a_token_there_are_no_claims_and_no_key() -> None:
    anonymous = RequestContext(request_id="req-2")
    assert render({"user": "$context.claims.sub", "key": "$context.apiKey"}, anonymous) == {}
    assert evaluate("$context.claims", anonymous) == {}


def test_a_response_template_reads_the_stored_message() -> None:
    stored = RequestContext(message={"id": "m-1", "body": {"order": {"id": "o-1"}}})
    template = {"id": "$message.id", "order": "$message.body#/order/id", "all": "$message.body"}
    assert render(template, stored) == {
        "id": "m-1",
        "order": "o-1",
        "all": {"order": {"id": "o-1"}},
    }


def test_a_template_is_rendered_through_objects_and_lists() -> None:
    template = {
        "market": "$request.path.market",
        "user": {"id": "$context.claims.sub", "tenant": "$request.header.x-tenant"},
        "skus": ["$request.body#/order/lines/0/sku", "$request.body#/nothing", "fixed"],
        "gone": "$request.query.missing",
        "literal": "eu",
        "number": 3,
        "flag": True,
        "nothing": None,
    }
    assert render(template, CONTEXT) == {
        "market": "eu",
        "user": {"id": "u-42", "tenant": "t-9"},
        "skus": ["tea", None, "fixed"],  # a list keeps its positions
        "literal": "eu",
        "number": 3,
        "flag": True,
    }  # a key whose value is None is left out of an object


def test_strings_that_are_not_expressions_are_kept_as_they_are() -> None:
    for literal in ("eu", "", "request.path.market", "costs $5", "#/order/id"):
        assert render(literal, CONTEXT) == literal


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("", CONTEXT.body),
        ("/order/id", "o-1"),
        ("/order/lines/0", {"sku": "tea"}),
        ("/a~1b", 1),  # ~1 is a slash
        ("/m~0n", 2),  # ~0 is a tilde
        ("/order/lines/x", None),
        ("/order/lines/-1", None),
        ("/order/id/deeper", None),
    ],
)
def test_json_pointers_follow_rfc_6901(pointer: str, value: Any) -> None:
    assert resolve_pointer(CONTEXT.body, pointer) == value


def test_templates_that_can_be_evaluated_are_accepted() -> None:
    check_template(
        {
            "body": "$request.body#/order",
            "attributes": {"user": "$context.claims.sub", "tenant": "$request.header.x-tenant"},
            "ids": ["$request.path.shop_id", "$request.query.limit", "$message.id"],
            "literal": "eu",
            "number": 1,
        },
        "integration body",
    )


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("$requests.body", "integration body: unknown expression '\\$requests.body'"),
        ("$5", "unknown expression"),
        ("$request.cookie.session", "integration body: unknown request part"),
        ({"a": {"b": "$ctx.x"}}, "integration body.a.b: unknown expression"),
        ({"a": ["ok", "$request.form.x"]}, "integration body.a\\[1\\]: unknown request part"),
    ],
)
def test_a_template_that_cannot_be_evaluated_is_refused_where_it_is(
    template: Any, problem: str
) -> None:
    with pytest.raises(InvalidParameterValue, match=problem):
        check_template(template, "integration body")
