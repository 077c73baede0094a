"""A real S3-compatible server for tests: moto's server (`ThreadedMotoServer`), an HTTP
server on 127.0.0.1 that implements S3's REST API (signed requests, multipart uploads,
NoSuchKey/NoSuchBucket errors), installed from PyPI with the dev extra: nothing downloaded
at run time, no container. The store under test talks to it over real HTTP, exactly as it
talks to AWS or MinIO, with the endpoint and credentials in the standard AWS variables."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


class S3Server:
    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> S3Server:
        # werkzeug logs a line per request at INFO.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def create_bucket(self) -> str:
        """A fresh bucket (its own name per test: moto's state is shared by its servers)."""
        bucket = f"runlane-test-{uuid.uuid4().hex[:16]}"
        response = httpx.put(f"{self.endpoint}/{bucket}")
        response.raise_for_status()
        return bucket

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point the AWS variables, which obstore reads when a store is built, at this server."""
        monkeypatch.setenv("AWS_ENDPOINT_URL", self.endpoint)
        monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "runlane-test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "runlane-test-secret")
        monkeypatch.setenv("AWS_REGION", REGION)
