"""A threaded HTTP server on 127.0.0.1 for `make bench` and `make chaos`: event receivers and
slow peers, each only a function from a POST (headers, body) to its answer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (status, JSON body or b"")
Answer = tuple[int, bytes]


class LoopbackServer:
    def __init__(self, answer: Callable[[Message, bytes], Answer], path: str) -> None:
        self._answer = answer
        self._path = path
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self._path}"

    def start(self) -> None:
        answer = self._answer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server interface
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, body = answer(self.headers, raw)
                self.send_response(status)
                if body:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
