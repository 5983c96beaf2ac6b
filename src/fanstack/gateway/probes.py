"""Liveness and readiness, in the shape Kubernetes probes expect.

`/_fanstack/health` is liveness: 200 while the event loop answers, nothing else asked (a slow
store must not get a healthy process restarted). `/_fanstack/ready` runs every readiness check
(the store answers, the consumers run, a schedule leader is known, ...) and answers 200 when all
pass, 503 naming the ones that failed otherwise; the JSON body lists each check either way.
Both are open off loopback too: a kubelet probe carries no token, and they reveal only the
checks' names and short reasons.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fanstack.backends.base import Backend
from fanstack.core.errors import FanstackError

log = logging.getLogger("fanstack.gateway")


class NotReady(FanstackError):
    """Raised by a readiness check that fails; its message says why (one short line)."""

    code = "NotReady"


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """One named condition of readiness: `check()` returns a short detail or raises NotReady."""

    name: str
    check: Callable[[], str]


def storage_check(backend: Callable[[], Backend]) -> ReadinessCheck:
    """The store answers a cheap call (listing topics)."""

    def check() -> str:
        try:
            backend().list_topics()
        except Exception as exc:
            raise NotReady(f"storage unreachable: {type(exc).__name__}") from exc
        return "reachable"

    return ReadinessCheck("storage", check)


class Probes:
    """The endpoints of the liveness and readiness probes."""

    def __init__(self, checks: Sequence[ReadinessCheck]) -> None:
        self.checks = list(checks)

    async def health(self, request: Request) -> Response:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """Readiness: 200 when every check passes, else 503 naming the failed checks."""
        results = await run_in_threadpool(self.run_checks)
        failed = [name for name, result in results.items() if not result["ok"]]
        body = {"status": "not ready" if failed else "ready", "failed": failed, "checks": results}
        return JSONResponse(body, status_code=503 if failed else 200)

    def run_checks(self) -> dict[str, dict[str, object]]:
        """Every check's outcome, by name: `{"ok": bool, "detail": str}`."""
        results: dict[str, dict[str, object]] = {}
        for check in self.checks:
            try:
                results[check.name] = {"ok": True, "detail": check.check()}
            except NotReady as exc:
                results[check.name] = {"ok": False, "detail": str(exc)}
            except Exception as exc:
                log.exception("readiness check failed", extra={"check": check.name})
                results[check.name] = {"ok": False, "detail": type(exc).__name__}
        return results
