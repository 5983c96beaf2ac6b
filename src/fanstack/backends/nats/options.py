"""What a `nats://` backend URL says: the servers, and the options after `?`.

    nats://h1:4222,h2:4222,h3:4222?stream=SHOP&replicas=3&partitions=3&connect_timeout=60

Every option is checked here, before anything connects, and a bad value is an
`InvalidParameterValue` naming the option, its value and what it accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from fanstack.core.errors import InvalidParameterValue

DEFAULT_STREAM = "FANSTACK"
MAX_PARTITIONS = 64
DEFAULT_CONNECT_TIMEOUT = 30.0  # seconds a starting process waits for the cluster to be ready
MAX_CONNECT_TIMEOUT = 86_400.0

N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True, kw_only=True)
class NatsOptions:
    """The servers and settings of a NATS backend, parsed from its URL."""

    servers: tuple[str, ...]
    stream: str = DEFAULT_STREAM
    replicas: int = 1
    partitions: int | None = None  # None: one per server named (fixed when first created)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    @property
    def hosts(self) -> str:
        """`host:port,...` without credentials, for log lines and error messages."""
        return ",".join(urlsplit(server).netloc.rpartition("@")[2] for server in self.servers)

    @classmethod
    def from_url(cls, url: str) -> NatsOptions:
        """Parse `nats://host:port[,host:port...][?option=value&...]`."""
        location = urlsplit(url)
        servers = tuple(_server(host) for host in location.netloc.split(",") if host)
        if not servers:
            raise InvalidParameterValue("the NATS backend URL names no server (nats://host:port)")
        options = parse_qs(location.query, keep_blank_values=True)

        def option(name: str) -> str | None:
            values = options.get(name)
            return values[-1] if values else None

        return cls(
            servers=servers,
            stream=option("stream") or DEFAULT_STREAM,
            replicas=_count("replicas", option("replicas"), 3 if len(servers) >= 3 else 1),
            partitions=None
            if option("partitions") is None
            else _option(
                "partitions",
                option("partitions"),
                1,
                int,
                lambda n: 1 <= n <= MAX_PARTITIONS,
                f"a whole number between 1 and {MAX_PARTITIONS}",
            ),
            connect_timeout=_option(
                "connect_timeout",
                option("connect_timeout"),
                DEFAULT_CONNECT_TIMEOUT,
                float,
                lambda seconds: 0 <= seconds <= MAX_CONNECT_TIMEOUT,  # NaN fails this too
                f"a number of seconds between 0 and {MAX_CONNECT_TIMEOUT:g}",
            ),
        )


def _server(host: str) -> str:
    server = f"nats://{host}"
    address = host.rpartition("@")[2]  # never repeat credentials in a message
    try:
        parts = urlsplit(server)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise InvalidParameterValue(
            f"the NATS backend URL's server {address!r} is not host:port"
        ) from exc
    if not parts.hostname:
        raise InvalidParameterValue(f"the NATS backend URL's server {address!r} names no host")
    return server


def _option(
    name: str,
    value: str | None,
    default: N,
    convert: Callable[[str], N],
    valid: Callable[[N], bool],
    accepted: str,
) -> N:
    """The option's value converted, its default when absent, or a message naming it."""
    if value is None:
        return default
    try:
        converted = convert(value)
    except ValueError:
        converted = None
    if converted is None or not valid(converted):
        raise InvalidParameterValue(
            f"the NATS backend URL's option {name} is {value!r}; it must be {accepted}"
        )
    return converted


def _count(name: str, value: str | None, default: int) -> int:
    return _option(name, value, default, int, lambda n: n >= 1, "a whole number of at least 1")
