"""A real HTTP endpoint on a free loopback port, recording what it is sent (an outside service)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fanstack.bus import ApiDestination


class Endpoint:
    """An HTTP server answering every request with `status`, keeping the bodies it got."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                endpoint.requests.append(self.rfile.read(length).decode())
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Where the endpoint listens."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    @property
    def destination(self) -> ApiDestination:
        """The endpoint as a rule target."""
        return ApiDestination(url=self.url)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
