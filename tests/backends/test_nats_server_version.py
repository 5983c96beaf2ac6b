"""fanstack refuses a nats-server too old for its layout, before it creates anything.

An old server accepts stream and consumer settings it does not know and ignores them: a
consumer's several filter subjects would be dropped, and every queue's consumer would get every
queue's messages. Opening must stop with a message that names the version needed.
"""

from __future__ import annotations

import pytest
from nats.aio.client import ServerVersion

from fanstack.backends.nats.startup import MIN_SERVER, refuse_old_server
from fanstack.core.errors import UnsupportedServer


class Connected:
    def __init__(self, version: str) -> None:
        self.connected_server_version = ServerVersion(version)


@pytest.mark.parametrize("version", ["2.9.10", "2.10.22", "2.11.9"])
def test_a_server_older_than_the_layout_needs_is_refused_with_the_version_to_use(
    version: str,
) -> None:
    with pytest.raises(UnsupportedServer) as refused:
        refuse_old_server(Connected(version))
    message = str(refused.value)
    assert f"nats-server {version} is too old" in message
    assert f"{MIN_SERVER[0]}.{MIN_SERVER[1]} or newer" in message


@pytest.mark.parametrize("version", ["2.12.0", "2.15.1", "3.0.0"])
def test_a_current_server_is_accepted(version: str) -> None:
    refuse_old_server(Connected(version))
