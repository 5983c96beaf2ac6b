"""Protecting routes: API keys with usage plans (rate, burst, daily quota) and JWT bearer tokens.

Rates are token buckets kept per gateway process (as API Gateway's are approximate per node);
daily quotas are counted in the backend's table store, so every gateway shares them. A key is
known, counted and stored only by its SHA-256 (`key_id`): the quota table never holds a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from fanstack.core.errors import ConditionalCheckFailed, InvalidParameterValue

OPEN, API_KEY, JWT = "open", "api_key", "jwt"
AUTH_MODES = (OPEN, API_KEY, JWT)
QUOTA_TABLE = "fanstack-api-quota"


class AuthFailure(Exception):
    """A request that may not pass: 401, 403 or 429, with headers such as Retry-After."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True, kw_only=True)
class UsagePlan:
    """Throttling and quota for the API keys on this plan."""

    name: str
    rate: float  # steady requests per second
    burst: int
    quota_per_day: int | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise InvalidParameterValue(f"usage plan {self.name!r}: rate must be > 0")
        if self.burst < 1:
            raise InvalidParameterValue(f"usage plan {self.name!r}: burst must be >= 1")
        if self.quota_per_day is not None and self.quota_per_day < 1:
            raise InvalidParameterValue(f"usage plan {self.name!r}: quota_per_day must be >= 1")


def key_id(key: str) -> str:
    """What an API key is known by, in memory and in the quota table: its SHA-256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_matches(authorization: str | None, token: str | None) -> bool:
    """Whether an Authorization header is `Bearer <token>`, compared in constant time."""
    if token is None or authorization is None:
        return False
    return hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class ApiKeys:
    """API keys, their plans, and the throttling state of this process."""

    plans: dict[str, UsagePlan] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # key_id(key) -> plan name
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_plan(self, plan: UsagePlan) -> None:
        """Declare a usage plan."""
        self.plans[plan.name] = plan

    def add_key(self, key: str, plan: str) -> None:
        """Issue an API key on a declared plan."""
        if plan not in self.plans:
            raise InvalidParameterValue(f"API key on unknown usage plan {plan!r}")
        if len(key) < 20:
            raise InvalidParameterValue("an API key must be at least 20 characters")
        self.keys[key_id(key)] = plan

    def admit(self, key: str | None, table: Any, now: float | None = None) -> str:
        """Check the key, its rate and its quota; return the plan name or raise AuthFailure."""
        if not key:
            raise AuthFailure(403, "Forbidden: missing x-api-key header")
        identity = key_id(key)
        plan_name = self.keys.get(identity)
        if plan_name is None:
            raise AuthFailure(403, "Forbidden: invalid API key")
        plan = self.plans[plan_name]
        moment = time.monotonic() if now is None else now
        self._take(identity, plan, moment)
        if plan.quota_per_day is not None:
            self._count(identity, plan, table)
        return plan_name

    def _take(self, identity: str, plan: UsagePlan, now: float) -> None:
        with self._lock:
            bucket = self._buckets.setdefault(identity, _Bucket(float(plan.burst), now))
            bucket.tokens = min(plan.burst, bucket.tokens + (now - bucket.updated) * plan.rate)
            bucket.updated = now
            if bucket.tokens < 1:
                wait = (1 - bucket.tokens) / plan.rate
                raise AuthFailure(
                    429,
                    f"Too Many Requests: usage plan {plan.name!r} allows {plan.rate:g} "
                    f"requests/s with a burst of {plan.burst}",
                    {"Retry-After": str(max(1, round(wait + 0.5)))},
                )
            bucket.tokens -= 1

    def _count(self, identity: str, plan: UsagePlan, table: Any) -> None:
        today = datetime.now(UTC)
        item_key = f"{identity}#{today:%Y-%m-%d}"
        limit = plan.quota_per_day or 0
        for _ in range(20):
            item = table.get_item(item_key)
            used = int(item.value["used"]) if item else 0
            if used >= limit:
                midnight = today.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
                retry = int(midnight + 86_400 - today.timestamp()) + 1
                raise AuthFailure(
                    429,
                    f"Limit Exceeded: usage plan {plan.name!r} allows {limit} requests per day",
                    {"Retry-After": str(retry)},
                )
            try:
                table.put(
                    item_key,
                    {"used": used + 1},
                    ttl=2 * 86_400,
                    if_absent=item is None,
                    if_version=item.version if item else None,
                )
                return
            except ConditionalCheckFailed:
                continue  # another request counted first; read again
        raise AuthFailure(
            429, "Too Many Requests: quota counter is contended", {"Retry-After": "1"}
        )


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
