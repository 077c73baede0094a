"""`http_request` connects to the address its SSRF check approved, not to a second lookup.

Real DNS is not available here, so the worker's activity gets a resolver of the test's own
(the seam the activity takes, defaulting to the event loop's getaddrinfo): it can answer one
address on the first lookup and another one later, which is what a DNS-rebinding attacker does.
Peers listen on different loopback addresses (127.0.0.1 and 127.0.0.2) on one port, so the
address alone decides which of them a request reaches.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from temporalio.client import Client

from activities.http import HttpNodeActivities
from activities.registry import ActivityDeps, default_registry
from runlane.settings import Settings
from tests.api.helpers import create_published, wait_for_run
from tests.conftest import ORG_A_KEY
from workflows.worker import create_worker

HOST = "service.runlane.test"


class Recorder:
    """An HTTP(S) server on one loopback address that records the requests it receives."""

    def __init__(self, address: str, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        self.server_names: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps connections alive, as real servers do

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.requests.append({"path": self.path, **dict(self.headers)})
                payload = b'{"answered_by": "%s"}' % address.encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        server_class = ThreadingHTTPServer
        if ":" in address:

            class server_class(ThreadingHTTPServer):  # type: ignore[no-redef]  # noqa: N801
                address_family = socket.AF_INET6

        self.server = server_class((address, port), Handler)
        if tls is not None:

            def remember_name(sock: Any, name: str | None, context: Any) -> None:
                recorder.server_names.append(name)

            tls.sni_callback = remember_name
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorders() -> Iterator[Callable[..., Recorder]]:
    started: list[Recorder] = []

    def start(address: str, port: int = 0, tls: ssl.SSLContext | None = None) -> Recorder:
        started.append(Recorder(address, port, tls))
        return started[-1]

    yield start
    for recorder in started:
        recorder.stop()


class Resolver:
    """Answers `first` on the first lookup and `later` on every other one, like a rebinding
    DNS server with a zero TTL; remembers how often it was asked."""

    def __init__(self, first: str, later: str | None = None) -> None:
        self.answers = [first, later or first]
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        return [self.answers[min(len(self.lookups) - 1, 1)]]


@asynccontextmanager
async def api_with(
    app: FastAPI,
    client: Client,
    settings: Settings,
    resolver: Resolver,
    *,
    allow_private: bool = True,
    verify: ssl.SSLContext | bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    """The API and a worker whose http_request activity resolves through `resolver`."""
    deps_settings = settings.model_copy(update={"http_allow_private": allow_private})
    async with httpx.AsyncClient(verify=verify) as outbound:
        deps = ActivityDeps(settings=deps_settings, http_client=outbound)
        pinned = HttpNodeActivities(outbound, allow_private=allow_private, resolve=resolver)
        activities = [
            activity
            for activity in default_registry().activities(deps)
            if getattr(activity, "__name__", None) != "http_request"
        ]
        async with create_worker(
            client, task_queue=settings.task_queue, activities=[*activities, pinned.http_request]
        ):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://runlane.test",
                headers={"Api-Key": ORG_A_KEY},
            ) as api:
                yield api


async def call(
    api: httpx.AsyncClient, url: str, **node: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run start -> http_request(url) -> end; the run and the http node's step."""
    call_node = {"id": "call", "type": "http_request", "config": {"method": "POST", "url": url}}
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            call_node | node,
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "in", "target": "call"}, {"source": "call", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"in": "x"}})
    assert started.status_code == 202, started.text
    run = await wait_for_run(api, started.json()["id"], timeout=60)
    steps = (await api.get(f"/v1/workflows/runs/{run['id']}/steps")).json()["data"]
    return run, next(step for step in steps if step["node_id"] == "call")


async def test_the_request_goes_to_the_checked_address_not_to_a_second_lookup(
    app: FastAPI, client: Client, settings: Settings, recorders: Callable[..., Recorder]
) -> None:
    checked = recorders("127.0.0.1")
    rebound = recorders("127.0.0.2", checked.port)
    resolver = Resolver(first="127.0.0.1", later="127.0.0.2")
    async with api_with(app, client, settings, resolver) as api:
        run, step = await call(api, f"http://{HOST}:{checked.port}/hook")

    assert run["status"] == "completed", run
    assert step["output"]["body"] == {"answered_by": "127.0.0.1"}
    assert resolver.lookups == [(HOST, checked.port)], "the host name was resolved again"
    assert [request["path"] for request in checked.requests] == ["/hook"]
    assert rebound.requests == []
    # The peer still sees the name it was called by, and the key to deduplicate retries.
    assert checked.requests[0]["Host"] == f"{HOST}:{checked.port}"
    assert checked.requests[0]["Idempotency-Key"] == f"{run['id']}:call"


async def test_a_name_resolving_to_a_private_address_is_refused_without_the_flag(
    app: FastAPI, client: Client, settings: Settings, recorders: Callable[..., Recorder]
) -> None:
    private = recorders("127.0.0.1")
    resolver = Resolver(first="127.0.0.1")
    async with api_with(app, client, settings, resolver, allow_private=False) as api:
        run, _ = await call(api, f"http://{HOST}:{private.port}/internal")

    assert run["status"] == "error"
    assert run["error"]["type"] == "HttpTargetNotAllowed"
    assert "RUNLANE_HTTP_ALLOW_PRIVATE" in run["error"]["message"]
    assert private.requests == []


def self_signed(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for `name` only, and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


async def test_https_verifies_the_certificate_of_the_name_at_the_checked_address(
    app: FastAPI,
    client: Client,
    settings: Settings,
    recorders: Callable[..., Recorder],
    tmp_path: Path,
) -> None:
    server_tls, client_tls = self_signed(tmp_path, HOST)
    checked = recorders("127.0.0.1", tls=server_tls)
    rebound = recorders("127.0.0.2", checked.port)
    resolver = Resolver(first="127.0.0.1", later="127.0.0.2")
    async with api_with(app, client, settings, resolver, verify=client_tls) as api:
        run, step = await call(api, f"https://{HOST}:{checked.port}/secure")

    assert run["status"] == "completed", run
    assert step["output"]["body"] == {"answered_by": "127.0.0.1"}
    # SNI and the certificate check are on the name (the certificate has no IP in it).
    assert checked.server_names == [HOST]
    assert checked.requests[0]["Host"] == f"{HOST}:{checked.port}"
    assert rebound.requests == []
    assert len(resolver.lookups) == 1


async def test_a_connection_verified_for_one_name_never_carries_another(
    app: FastAPI,
    client: Client,
    settings: Settings,
    recorders: Callable[..., Recorder],
    tmp_path: Path,
) -> None:
    # Connections to a checked address are pooled by address: reusing one that TLS verified
    # for HOST would send a request for another name there without checking its certificate.
    server_tls, client_tls = self_signed(tmp_path, HOST)
    peer = recorders("127.0.0.1", tls=server_tls)
    resolver = Resolver(first="127.0.0.1")
    async with api_with(app, client, settings, resolver, verify=client_tls) as api:
        first, _ = await call(api, f"https://{HOST}:{peer.port}/first")
        other, _ = await call(
            api, f"https://other.runlane.test:{peer.port}/other", retry={"max_attempts": 1}
        )

    assert first["status"] == "completed", first
    assert other["status"] == "error"
    assert "CERTIFICATE_VERIFY_FAILED" in other["error"]["message"], other["error"]
    assert [request["path"] for request in peer.requests] == ["/first"]


async def test_ip_literals_are_called_without_a_lookup(
    app: FastAPI, client: Client, settings: Settings, recorders: Callable[..., Recorder]
) -> None:
    v6 = recorders("::1")
    resolver = Resolver(first="127.0.0.2")
    async with api_with(app, client, settings, resolver) as api:
        run, step = await call(api, f"http://[::1]:{v6.port}/v6")

    assert run["status"] == "completed", run
    assert step["output"]["body"] == {"answered_by": "::1"}
    assert v6.requests[0]["Host"] == f"[::1]:{v6.port}"
    assert resolver.lookups == []
