"""Authorizers, one per auth mode, with plain requests and a clock the test moves: API keys are
known by their hash and throttled by their plan; JWTs name the caller; refusals are the
gateway's JSON errors; the admin token is compared in constant time."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import jwt
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fanstack.core.errors import InvalidParameterValue
from fanstack.gateway.auth import (
    ApiKeyAuthorizer,
    ApiKeys,
    AuthFailure,
    JwtAuth,
    JwtAuthorizer,
    OpenAccess,
    bearer_matches,
    caller_of,
    key_id,
)
from fanstack.gateway.throttling import DailyQuota, RateLimiter, UsagePlan

from .fakes import Clock, MemoryTable, call, reached, request

KEY = "a-key-that-is-long-enough-0001"
SECRET = "a-secret-that-is-long-enough-for-hs256"


def api_key_authorizer(
    plan: UsagePlan, clock: Clock, table: MemoryTable | None = None
) -> ApiKeyAuthorizer:
    keys = ApiKeys()
    keys.add_plan(plan)
    keys.add_key(KEY, plan.name)
    quota = DailyQuota(table if table is not None else MemoryTable(), clock)
    return ApiKeyAuthorizer(keys, RateLimiter(clock), quota)


async def echo_caller(request: Request) -> Response:
    """An endpoint that answers with the caller its authorizer established."""
    caller = caller_of(request)
    return JSONResponse({"api_key": caller.api_key, "claims": dict(caller.claims)})


def payload(response: Response) -> Any:
    return json.loads(bytes(response.body))


def assert_refused(response: Response, status: int) -> dict[str, Any]:
    """A refusal in the gateway's error shape, naming the request; the endpoint never ran."""
    assert response.status_code == status
    body: dict[str, Any] = payload(response)
    assert body["request_id"] == "req-1"
    assert "reached" not in body
    return body


def test_key_id_is_the_sha256_of_the_key() -> None:
    assert key_id(KEY) == hashlib.sha256(KEY.encode()).hexdigest()


def test_keys_are_held_and_counted_by_hash_only() -> None:
    clock, table = Clock(), MemoryTable()
    authorizer = api_key_authorizer(
        UsagePlan(name="p", rate=10, burst=10, quota_per_day=2), clock, table
    )
    keys = authorizer.keys
    assert KEY not in keys.keys and keys.keys == {key_id(KEY): "p"}
    assert authorizer.admit(KEY).name == "p"
    clock.now += 0.1
    assert authorizer.admit(KEY).name == "p"
    clock.now += 0.1
    with pytest.raises(AuthFailure) as over:
        authorizer.admit(KEY)
    assert over.value.status == 429
    (stored,) = table.items
    assert stored.startswith(key_id(KEY) + "#") and KEY not in stored
    with pytest.raises(AuthFailure) as wrong:
        authorizer.admit(KEY + "x")
    assert wrong.value.status == 403


def test_an_api_key_must_be_long_and_on_a_declared_plan() -> None:
    keys = ApiKeys()
    keys.add_plan(UsagePlan(name="p", rate=1, burst=1))
    with pytest.raises(InvalidParameterValue, match="unknown usage plan 'q'"):
        keys.add_key(KEY, "q")
    with pytest.raises(InvalidParameterValue, match="at least 20 characters"):
        keys.add_key("short-key", "p")


def test_bearer_matches_only_the_exact_token() -> None:
    assert bearer_matches("Bearer s3cret", "s3cret")
    for given in ("Bearer s3cre", "Bearer s3cret ", "bearer s3cret", "s3cret", "", None):
        assert not bearer_matches(given, "s3cret")
    assert not bearer_matches("Bearer None", None)
    assert not bearer_matches("Bearer zoë", "zoe")


# -- open --------------------------------------------------------------------------------------


def test_open_access_lets_everyone_through_anonymously() -> None:
    response = call(OpenAccess().protect(echo_caller), request({"x-api-key": KEY}))
    assert response.status_code == 200
    assert payload(response) == {"api_key": None, "claims": {}}


# -- API keys ----------------------------------------------------------------------------------


def test_a_missing_or_unknown_api_key_is_a_403_before_the_endpoint() -> None:
    protected = api_key_authorizer(UsagePlan(name="p", rate=10, burst=10), Clock()).protect(reached)
    missing = assert_refused(call(protected, request()), 403)
    assert missing["message"] == "Forbidden: missing x-api-key header"
    wrong = assert_refused(call(protected, request({"x-api-key": "nope"})), 403)
    assert wrong["message"] == "Forbidden: invalid API key"


def test_a_known_api_key_reaches_the_endpoint_named_as_the_caller() -> None:
    authorizer = api_key_authorizer(UsagePlan(name="p", rate=10, burst=10), Clock())
    response = call(authorizer.protect(echo_caller), request({"x-api-key": KEY}))
    assert response.status_code == 200
    assert payload(response) == {"api_key": KEY, "claims": {}}


def test_a_usage_plan_throttles_with_retry_after_then_runs_out_of_quota() -> None:
    # Moved from tests/e2e/test_gateway.py, where it slept for the bucket to refill.
    clock = Clock()
    tiny = UsagePlan(name="tiny", rate=1, burst=3, quota_per_day=5)
    protected = api_key_authorizer(tiny, clock).protect(reached)

    def post() -> Response:
        return call(protected, request({"x-api-key": KEY}))

    statuses = [post().status_code for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]  # the burst
    assert statuses[3] == 429
    throttled = post()
    assert_refused(throttled, 429)
    assert int(throttled.headers["retry-after"]) >= 1
    clock.now += 2.1  # 1 request/s refills two tokens
    assert post().status_code == 200
    assert post().status_code == 200
    clock.now += 1.1
    over_quota = post()  # the 6th today: the two throttled ones were not counted
    assert "per day" in assert_refused(over_quota, 429)["message"]
    assert int(over_quota.headers["retry-after"]) > 0


# -- JWT ---------------------------------------------------------------------------------------


def token(claims: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode({"aud": "shop", "exp": int(time.time()) + 60, **claims}, key, "HS256")


def test_a_valid_token_reaches_the_endpoint_with_its_claims() -> None:
    authorizer = JwtAuthorizer(JwtAuth(secret=SECRET, audience="shop"))
    given = request({"authorization": f"Bearer {token({'sub': 'u-42'})}"})
    response = call(authorizer.protect(echo_caller), given)
    assert response.status_code == 200
    body = payload(response)
    assert body["api_key"] is None
    assert body["claims"]["sub"] == "u-42"


def test_a_missing_or_invalid_token_is_a_401_with_www_authenticate() -> None:
    protected = JwtAuthorizer(JwtAuth(secret=SECRET, audience="shop")).protect(reached)
    missing = call(protected, request())
    assert "missing bearer token" in assert_refused(missing, 401)["message"]
    assert missing.headers["www-authenticate"] == "Bearer"
    for bad in (
        token({"sub": "u"}, key="another-secret-entirely-for-testing"),
        token({"sub": "u", "aud": "other"}),
        token({"sub": "u", "exp": int(time.time()) - 10}),
    ):
        refused = call(protected, request({"authorization": f"Bearer {bad}"}))
        assert_refused(refused, 401)
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_jwt_routes_refuse_everyone_when_no_verification_is_configured() -> None:
    given = request({"authorization": f"Bearer {token({'sub': 'u'})}"})
    body = assert_refused(call(JwtAuthorizer(None).protect(reached), given), 401)
    assert body["message"] == "Unauthorized: no JWT verification is configured"


def test_jwt_auth_needs_exactly_one_key_source_and_a_known_algorithm() -> None:
    with pytest.raises(InvalidParameterValue, match="exactly one of secret or jwks_file"):
        JwtAuth()
    with pytest.raises(InvalidParameterValue, match="use HS256 or RS256"):
        JwtAuth(secret=SECRET, algorithms=("none",))
