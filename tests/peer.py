"""A real HTTP server on 127.0.0.1 that nodes call in tests; it counts calls per path."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Peer:
    """Answers 200 with a JSON echo unless a path is scripted with `fail(path, times, status)`."""

    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[int]] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)
    # Scripted JSON answers by path (instead of the echo), e.g. an API's answer for a client.
    answers: dict[str, Any] = field(default_factory=dict)
    # The bytes of each call's body, in call order (signatures are computed over them).
    raw_bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(self, path: str, times: int, status: int = 500) -> None:
        with self.lock:
            self.failures[path] = [status] * times

    def redirect(self, path: str, location: str, times: int = 1, status: int = 307) -> None:
        """Answer `status` with `Location: location` the next `times` calls to `path`."""
        with self.lock:
            self.failures[path] = [status] * times
            self.locations[path] = location

    def respond(self, path: str, body: Any) -> None:
        """Answer calls to `path` with `body` (JSON) instead of the echo."""
        with self.lock:
            self.answers[path] = body

    def count(self, path: str) -> int:
        with self.lock:
            return Counter(call.path for call in self.calls)[path]

    def calls_to(self, path: str) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.path == path]

    def raw_calls_to(self, path: str) -> list[tuple[Call, bytes]]:
        """The calls to `path`, each with the bytes of its body."""
        with self.lock:
            pairs = zip(self.calls, self.raw_bodies, strict=True)
            return [(call, raw) for call, raw in pairs if call.path == path]

    def _answer(self, path: str) -> int:
        with self.lock:
            pending = self.failures.get(path)
            return pending.pop(0) if pending else 200

    def start(self) -> None:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                with peer.lock:
                    peer.calls.append(Call(self.command, self.path, dict(self.headers), body))
                    peer.raw_bodies.append(raw)
                status = peer._answer(self.path)
                with peer.lock:
                    scripted = peer.answers.get(self.path)
                echo = {"path": self.path, "method": self.command, "received": body}
                payload = json.dumps(echo if scripted is None or status >= 300 else scripted)
                self.send_response(status)
                if 300 <= status < 400 and self.path in peer.locations:
                    self.send_header("location", peer.locations[self.path])
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
