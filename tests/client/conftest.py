"""The API served by a real uvicorn server on a 127.0.0.1 socket, for the client to call
over HTTP as a user's program would. It runs on the test's event loop: sync client calls go
through asyncio.to_thread, or they would block the loop that answers them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from temporalio.worker import Worker

from tests.live_api import served


@pytest.fixture
async def base_url(app: FastAPI, worker: Worker) -> AsyncIterator[str]:
    """The real app, with a worker, at http://127.0.0.1:<port>."""
    async with served(app) as url:
        yield url
