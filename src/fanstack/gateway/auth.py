"""Who may call a route: one `Authorizer` per auth mode, wrapped around the route's endpoint.

- `open`: everyone (`OpenAccess`), as is every route of an API open on loopback;
- `api_key`: an `x-api-key` issued on a usage plan (`ApiKeyAuthorizer`): 403 without a known
  key, 429 with Retry-After over the plan's rate, burst or daily quota (`throttling`);
- `jwt`: an `Authorization: Bearer` token verified with a shared secret (HS256) or a JWKS file
  (RS256) (`JwtAuthorizer`): 401 with WWW-Authenticate otherwise.

The gateway picks each route's authorizer once, when it builds the app; `Authorizer.protect`
answers a refusal in the gateway's JSON error shape and hands an admitted request on with its
`Caller`. A key is known, counted and stored only by its SHA-256 (`key_id`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from fanstack.core.errors import InvalidParameterValue
from fanstack.gateway.responses import Endpoint, error_response
from fanstack.gateway.throttling import DailyQuota, RateLimiter, Throttled, UsagePlan

OPEN, API_KEY, JWT = "open", "api_key", "jwt"
AUTH_MODES = (OPEN, API_KEY, JWT)
MIN_API_KEY_LENGTH = 20


class AuthFailure(Exception):
    """A request that may not pass: 401, 403 or 429, with headers such as Retry-After."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from, as its route's authorizer established it."""

    api_key: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


def key_id(key: str) -> str:
    """What an API key is known by, in memory and in the quota table: its SHA-256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_matches(authorization: str | None, token: str | None) -> bool:
    """Whether an Authorization header is `Bearer <token>`, compared in constant time."""
    if token is None or authorization is None:
        return False
    return hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())


@dataclass
class ApiKeys:
    """The declared usage plans and the API keys issued on them (held by `key_id` only)."""

    plans: dict[str, UsagePlan] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # key_id(key) -> plan name

    def add_plan(self, plan: UsagePlan) -> None:
        """Declare a usage plan."""
        self.plans[plan.name] = plan

    def add_key(self, key: str, plan: str) -> None:
        """Issue an API key on a declared plan."""
        if plan not in self.plans:
            raise InvalidParameterValue(f"API key on unknown usage plan {plan!r}")
        if len(key) < MIN_API_KEY_LENGTH:
            raise InvalidParameterValue(
                f"an API key must be at least {MIN_API_KEY_LENGTH} characters"
            )
        self.keys[key_id(key)] = plan

    def identify(self, key: str | None) -> tuple[str, UsagePlan]:
        """The `key_id` of `key` and the usage plan it was issued on, or AuthFailure(403)."""
        if not key:
            raise AuthFailure(403, "Forbidden: missing x-api-key header")
        identity = key_id(key)
        plan_name = self.keys.get(identity)
        if plan_name is None:
            raise AuthFailure(403, "Forbidden: invalid API key")
        return identity, self.plans[plan_name]


@dataclass(frozen=True)
class JwtAuth:
    """Bearer-token verification: HS256 with a shared secret, or RS256 with a JWKS file."""

    secret: str | None = None
    jwks_file: str | None = None
    algorithms: Sequence[str] = ("HS256",)
    audience: str | None = None
    issuer: str | None = None
    _keys: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if (self.secret is None) == (self.jwks_file is None):
            raise InvalidParameterValue("jwt auth needs exactly one of secret or jwks_file")
        for algorithm in self.algorithms:
            if algorithm not in ("HS256", "RS256"):
                raise InvalidParameterValue(f"jwt algorithm {algorithm!r}: use HS256 or RS256")
        if self.jwks_file is not None:
            document = json.loads(Path(self.jwks_file).read_text())
            for entry in document.get("keys", []):
                key = jwt.PyJWK.from_dict(entry)
                self._keys[entry.get("kid", "")] = key.key

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims, or AuthFailure(401) saying why not."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthFailure(
                401, "Unauthorized: missing bearer token", {"WWW-Authenticate": "Bearer"}
            )
        token = authorization[7:].strip()
        try:
            key = self._key_for(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise AuthFailure(
                401,
                f"Unauthorized: {exc}",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from exc
        return claims

    def _key_for(self, token: str) -> Any:
        if self.secret is not None:
            return self.secret
        kid = jwt.get_unverified_header(token).get("kid", "")
        if kid not in self._keys:
            if len(self._keys) == 1 and not kid:
                return next(iter(self._keys.values()))
            raise jwt.InvalidKeyError(f"no key with kid {kid!r} in the JWKS")
        return self._keys[kid]


# -- authorizers: one per auth mode, each wrapping a route's endpoint --------------------------


class Authorizer(ABC):
    """One auth mode: decides, before a route's endpoint runs, whether a request may reach it."""

    @abstractmethod
    async def authorize(self, request: Request) -> Caller:
        """The request's caller, or AuthFailure saying why the request may not pass."""

    def protect(self, endpoint: Endpoint) -> Endpoint:
        """`endpoint` behind this authorizer: refusals are answered here, callers passed on."""

        async def protected(request: Request) -> Response:
            try:
                request.scope["state"]["caller"] = await self.authorize(request)
            except AuthFailure as failure:
                return error_response(
                    failure.status,
                    failure.message,
                    request.scope["state"]["request_id"],
                    headers=failure.headers,
                )
            return await endpoint(request)

        return protected


def caller_of(request: Request) -> Caller:
    """The caller that the route's authorizer established for `request`."""
    caller: Caller = request.scope["state"]["caller"]
    return caller


class OpenAccess(Authorizer):
    """auth='open' (or any route of an API open on loopback): every request passes, anonymous."""

    async def authorize(self, request: Request) -> Caller:
        """An anonymous caller."""
        return Caller()


class ApiKeyAuthorizer(Authorizer):
    """auth='api_key': a known `x-api-key`, within its plan's rate, burst and daily quota."""

    def __init__(self, keys: ApiKeys, rate_limiter: RateLimiter, quota: DailyQuota) -> None:
        self.keys = keys
        self.rate_limiter = rate_limiter
        self.quota = quota

    async def authorize(self, request: Request) -> Caller:
        """The caller named by its API key (the quota is counted in the backend: a thread)."""
        key = request.headers.get("x-api-key")
        await run_in_threadpool(self.admit, key)
        return Caller(api_key=key)

    def admit(self, key: str | None) -> UsagePlan:
        """Check `key`, spend a rate token, count it in the quota; its plan, or AuthFailure."""
        identity, plan = self.keys.identify(key)
        try:
            self.rate_limiter.take(identity, plan)
            self.quota.count(identity, plan)  # a throttled request does not use up the quota
        except Throttled as exc:
            raise AuthFailure(429, str(exc), {"Retry-After": str(exc.retry_after)}) from exc
        return plan


class JwtAuthorizer(Authorizer):
    """auth='jwt': a bearer token the API's `JwtAuth` verifies; its claims name the caller."""

    def __init__(self, verifier: JwtAuth | None) -> None:
        self.verifier = verifier

    async def authorize(self, request: Request) -> Caller:
        """The caller named by the token's claims (401 if the API configures no JWT)."""
        if self.verifier is None:
            raise AuthFailure(401, "Unauthorized: no JWT verification is configured")
        return Caller(claims=self.verifier.verify(request.headers.get("authorization")))
