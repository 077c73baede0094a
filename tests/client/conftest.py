"""The API served by a real uvicorn server on a 127.0.0.1 socket, for the client to call
over HTTP as a user's program would. It runs on the test's event loop: sync client calls go
through asyncio.to_thread, or they would block the loop that answers them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fastapi import FastAPI
from temporalio.worker import Worker

from tests.api.helpers import wait_until


async def serve(app: FastAPI) -> AsyncIterator[str]:
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


@pytest.fixture
async def base_url(app: FastAPI, worker: Worker) -> AsyncIterator[str]:
    """The real app, with a worker, at http://127.0.0.1:<port>."""
    async for url in serve(app):
        yield url
