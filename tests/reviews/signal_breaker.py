"""A real network fault for one kind of call: a TCP proxy between a Temporal client and the dev
server that, while armed, breaks every connection carrying a `review` signal.

Everything else (describes, queries, history reads) passes, so a test can make exactly the
decision's delivery fail the way a Temporal hiccup does, with the SDK's own client and no mock.
The request is recognised in its HTTP/2 DATA frame: a SignalWorkflowExecutionRequest's field 3
(the signal name) is `\\x1a\\x06review`, near the start of the (gzipped) gRPC message.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from typing import Literal, Self

SIGNAL_NAME_FIELD = b"\x1a\x06review"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _PADDED = 0, 0x8

# "drop": the signal never reaches Temporal. "lose_answer": it does, its answer never comes back
# (the outcome a caller cannot know).
Mode = Literal["pass", "drop", "lose_answer"]


def carries_signal(frame: bytes) -> bool:
    """Whether an HTTP/2 frame is the DATA frame of a `review` signal request. Its gRPC message
    (a flag byte, a 4-byte length, the message) is gzipped by the SDK's client."""
    if frame[3] != _DATA:
        return False
    body = frame[9:]
    if frame[4] & _PADDED and body:
        body = body[1 : len(body) - body[0]]
    if len(body) < 5:
        return False
    message = body[5:]
    if body[0] == 1:
        try:  # the start of the message is enough: the signal name is its third field
            message = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(message, 4096)
        except zlib.error:
            return False
    return SIGNAL_NAME_FIELD in message[:4096]


class SignalBreaker:
    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.mode: Mode = "pass"
        self.broken = 0  # connections broken because they carried a signal

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        # Not cancelled: asyncio logs a cancelled connection handler as an error.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)

    @property
    def address(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_in, server_out = await asyncio.open_connection(*self._upstream)
        self._writers.update((client_out, server_out))
        pumps = [
            asyncio.create_task(self._requests(client_in, server_out, client_out)),
            asyncio.create_task(self._pipe(server_in, client_out)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            lost_answer = pumps[0].done() and pumps[0].exception() is None and pumps[0].result()
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            client_out.close()
        try:
            # A lost answer keeps the server's side open a moment: the signal it received is
            # processed (closing at once could cancel it), its answer just goes nowhere.
            if lost_answer:
                await asyncio.sleep(2)
        finally:
            server_out.close()
            self._writers.difference_update((client_out, server_out))
            self._tasks.discard(task)

    async def _requests(
        self,
        client_in: asyncio.StreamReader,
        server_out: asyncio.StreamWriter,
        client_out: asyncio.StreamWriter,
    ) -> bool:
        """Forwards the client's HTTP/2 frames one by one; True when it broke the connection
        after forwarding a signal (its answer is to be lost)."""
        server_out.write(await client_in.readexactly(len(H2_PREFACE)))
        while True:
            header = await client_in.readexactly(9)
            frame = header + await client_in.readexactly(int.from_bytes(header[:3], "big"))
            if self.mode != "pass" and carries_signal(frame):
                self.broken += 1
                lose_answer = self.mode == "lose_answer"
                if lose_answer:
                    server_out.write(frame)
                    await server_out.drain()
                client_out.transport.abort()  # the client sees the connection reset
                return lose_answer
            server_out.write(frame)
            await server_out.drain()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
