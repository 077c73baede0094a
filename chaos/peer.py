"""The suite's HTTP peer: a real server on 127.0.0.1 that `http_request` nodes call.

It records every request's `Idempotency-Key` and the `token` its JSON body carries (one token
per run, from the run's input), so the suite can tell a duplicate call (the same token seen
twice: a node executed again after its worker was killed) and whether the duplicate carried
the key of the first. Each answer waits `delay_s`, so that calls are in flight when a worker
dies; without it a SIGKILL would almost never land between the call and its recorded outcome.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Hit:
    path: str
    idempotency_key: str | None
    token: str | None


@dataclass
class CountingPeer:
    delay_s: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    # path -> statuses to answer, first to last, before answering 200 again.
    failures: dict[str, list[int]] = field(default_factory=dict)
    # Requests whose body was cut off (their worker died while sending): never answered, and
    # not calls, since a peer acts on no half-received request.
    truncated: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(self, path: str, times: int, status: int = 400) -> None:
        with self.lock:
            self.failures[path] = [status] * times

    def hits_to(self, path: str) -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.path == path]

    def tokens_seen(self, path: str) -> int:
        with self.lock:
            return len({hit.token for hit in self.hits if hit.path == path})

    def by_token(self, path: str) -> dict[str | None, list[Hit]]:
        grouped: dict[str | None, list[Hit]] = defaultdict(list)
        for hit in self.hits_to(path):
            grouped[hit.token].append(hit)
        return grouped

    def _record(self, hit: Hit) -> int:
        with self.lock:
            self.hits.append(hit)
            pending = self.failures.get(hit.path)
            return pending.pop(0) if pending else 200

    def start(self) -> None:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                if len(raw) < length:
                    with peer.lock:
                        peer.truncated += 1
                    return
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                token = body.get("token") if isinstance(body, dict) else None
                status = peer._record(
                    Hit(self.path, self.headers.get("Idempotency-Key"), token and str(token))
                )
                time.sleep(peer.delay_s)
                payload = json.dumps({"ok": status == 200}).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the caller died waiting: its retry is what the suite counts

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a connection its killed caller dropped: no traceback on the console

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
