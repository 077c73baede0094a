"""An S3-compatible server per session (tests/s3.py) and a bucket per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.s3 import S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A RUNLANE_BLOB_URL for a fresh bucket on the test server, the AWS variables set."""
    s3_server.use(monkeypatch)
    return f"s3://{s3_server.create_bucket()}/documents"
