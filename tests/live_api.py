"""The app served by a real uvicorn server on a 127.0.0.1 socket, on the test's own event loop,
for callers that must go through HTTP as a user's program does (the client, the CLI, access
log lines). Sync callers go through asyncio.to_thread or a subprocess: a blocking call would
stall the loop that answers it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from tests.api.helpers import wait_until


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """`async with served(app) as base_url:` http://127.0.0.1:<port> while the block runs.
    The app's lifespan is the test fixtures' (`lifespan="off"`); logging is left as it is."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: asyncio.sleep(0, server.started))
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        sock.close()
