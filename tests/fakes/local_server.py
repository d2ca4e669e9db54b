"""A real HTTP server on a loopback thread: what every fake outside service here runs on."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LocalServer:
    """Serve `handler` (which reaches this object as `self.fake`) on 127.0.0.1.

    Subclasses set `handler`; `start()` picks a free port unless given one, and `url` is the
    base URL to configure the service under test with.
    """

    handler: type[BaseHTTPRequestHandler]
    _server: ThreadingHTTPServer | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Serve on a daemon thread; port 0 picks a free one (see `url`)."""
        # TCP_NODELAY: a handler writes its headers and its body separately, and with Nagle's
        # algorithm the body of a quick second request on a kept-alive connection waits for
        # the client's delayed ACK (~40 ms), which no real provider makes its clients wait.
        handler = type("Handler", (self.handler,), {"fake": self,
                                                    "disable_nagle_algorithm": True})
        server = ThreadingHTTPServer((host, port), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True,
                         name=type(self).__name__).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The server's base URL, e.g. http://127.0.0.1:40123."""
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
