"""The real stack for the CLI: the app served by uvicorn on a 127.0.0.1 socket in the test's
loop, a worker on the real Temporal, and the CLI run as a subprocess (so the API keeps
serving while it runs)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from temporalio.worker import Worker

from tests.conftest import ORG_A_KEY
from tests.live_api import served

ROOT = Path(__file__).resolve().parents[2]
# The slowest command waits on a run that a busy 2-core machine may take seconds to finish.
CLI_TIMEOUT_S = 60


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error(self) -> dict[str, Any]:
        """The error body `--output json` writes on stderr."""
        return dict(json.loads(self.stderr)["error"])


Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
async def base_url(app: FastAPI, worker: Worker) -> AsyncIterator[str]:
    async with served(app) as url:
        yield url


@pytest.fixture
def runlane(base_url: str, tmp_path: Path) -> Cli:
    """`await runlane("runs", "list", ...)`: the CLI as a user runs it, in tmp_path."""
    env = {
        **os.environ,
        "RUNLANE_BASE_URL": base_url,
        "RUNLANE_API_KEY": ORG_A_KEY,
        # This checkout's code, wherever the virtualenv's editable install points.
        "PYTHONPATH": str(ROOT),
        # No dev key file to fall back on, and no colours or terminal in the captured output.
        "RUNLANE_DATA_DIR": str(tmp_path / "no-data"),
        "NO_COLOR": "1",
        "TERM": "dumb",
    }

    async def run(*args: str, stdin: bytes | None = None, **extra_env: str) -> Result:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runlane.cli",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env={**env, **extra_env},
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), CLI_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(f"runlane {' '.join(args)} did not finish") from None
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())

    return run
