"""Event webhooks delivered for real: the delivery workflow on the dev server, signed POSTs to
receivers on 127.0.0.1, the delivery log read over the API."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from standardwebhooks import Webhook
from temporalio.client import Client
from temporalio.worker import Replayer, Worker

from runlane.converter import data_converter
from runlane.settings import Settings
from store.db import Database
from store.endpoints import EndpointRepository, EndpointTarget
from tests.peer import Peer
from tests.triggers.events import (
    deliver,
    deliveries,
    delivery_activities,
    lower_headers,
    org_a,
    run_event,
    subscribe,
)
from triggers.delivery import EventDeliveryWorkflow
from triggers.delivery_models import DeliveryResult
from triggers.sender import EventSender, event_body
from triggers.wiring import trigger_work
from workflows.events import EmittedEvents


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Retries within a test's time: 0.05 s, 0.1 s, 0.2 s ... for 10 s.
    return settings.model_copy(
        update={
            "event_retry_initial_s": 0.05,
            "event_retry_max_interval_s": 1,
            "event_retry_for_s": 10,
        }
    )


async def test_a_failing_receiver_gets_the_event_again_until_it_accepts(
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    peer: Peer,
) -> None:
    endpoint = await subscribe(api, f"{peer.url}/hook", ["run.completed"])
    peer.fail("/hook", 2, 500)
    event = run_event(org_a(settings))

    [result] = await deliver(client, settings, database, http_client, event)

    assert result.delivered == [endpoint["id"]] and result.attempts == 3
    [entry] = await deliveries(api, endpoint["id"])
    assert entry["status"] == "succeeded"
    assert entry["attempts"] == 3
    assert entry["last_status_code"] == 200
    assert entry["last_error"] is None and entry["next_attempt_at"] is None
    assert (entry["event_id"], entry["event_type"], entry["run_id"]) == (
        event.id,
        "run.completed",
        event.run_id,
    )
    calls = peer.raw_calls_to("/hook")
    assert len(calls) == 3
    for call, raw in calls:
        headers = lower_headers(call.headers)
        assert headers["webhook-id"] == event.id
        assert "Runlane" in headers["user-agent"]
        assert headers["content-type"] == "application/json"
        # The receiver's check: the signature of the bytes it got, with the endpoint's secret.
        assert Webhook(endpoint["secret"]).verify(raw, headers) == call.body
    body = calls[-1][0].body
    assert body["type"] == "run.completed"
    assert body["timestamp"].endswith("Z")
    run = body["data"]["run"]
    assert run["id"] == event.run_id and run["status"] == "completed"
    assert run["lifecycle"] == {"kind": "completed", "final_outputs": {"out": {"ok": True}}}
    assert run["temporal"]["workflow_id"] == event.run_id
    assert "steps" not in run and "node_id" not in body["data"]
    # Its history replays with the code as it is (timers, attempts and their results).
    history = await client.get_workflow_handle(event.id).fetch_history()
    await Replayer(
        workflows=[EventDeliveryWorkflow], data_converter=data_converter()
    ).replay_workflow(history)


async def test_a_receiver_failing_for_good_is_logged_failed_after_the_horizon(
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    peer: Peer,
) -> None:
    endpoint = await subscribe(api, f"{peer.url}/down", ["run.completed"])
    peer.fail("/down", 100, 503)
    event = run_event(org_a(settings))
    short = settings.model_copy(update={"event_retry_for_s": 0.3})

    [result] = await deliver(client, short, database, http_client, event)

    assert result.failed == [endpoint["id"]]
    [entry] = await deliveries(api, endpoint["id"])
    assert entry["status"] == "failed" and entry["attempts"] == result.attempts >= 2
    assert entry["last_status_code"] == 503 and entry["last_error"] == "answered HTTP 503"
    assert entry["next_attempt_at"] is None


async def test_only_enabled_endpoints_subscribed_to_the_type_receive_it(
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    peer: Peer,
) -> None:
    wanted = await subscribe(api, f"{peer.url}/wanted", ["run.completed", "run.failed"])
    disabled = await subscribe(api, f"{peer.url}/disabled", ["run.completed"])
    patched = await api.patch(f"/v1/webhook-endpoints/{disabled['id']}", json={"disabled": True})
    assert patched.status_code == 200 and patched.json()["disabled"] is True
    other = await subscribe(api, f"{peer.url}/other", ["run.started", "review.decided"])
    review = run_event(org_a(settings), "review.decided", node_id="approve")

    results = await deliver(
        client, settings, database, http_client, run_event(org_a(settings)), review
    )

    assert [r.delivered for r in results] == [[wanted["id"]], [other["id"]]]
    assert peer.count("/wanted") == 1 and peer.count("/disabled") == 0
    assert peer.count("/other") == 1
    assert peer.calls_to("/other")[0].body["data"]["node_id"] == "approve"
    assert await deliveries(api, disabled["id"]) == []
    assert [d["event_type"] for d in await deliveries(api, other["id"])] == ["review.decided"]


async def test_an_endpoint_disabled_between_attempts_is_not_retried(
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    peer: Peer,
) -> None:
    endpoint = await subscribe(api, f"{peer.url}/flaky", ["run.completed"])
    peer.fail("/flaky", 100, 500)
    event = run_event(org_a(settings))
    slow = settings.model_copy(update={"event_retry_initial_s": 1.0})
    await delivery_activities(client, slow, database, http_client).emit_events(
        EmittedEvents(events=[event])
    )
    while not (log := await deliveries(api, endpoint["id"])) or log[0]["attempts"] < 1:
        await asyncio.sleep(0.05)
    assert log[0]["status"] == "retrying" and log[0]["next_attempt_at"] is not None

    await api.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"disabled": True})
    result = await client.get_workflow_handle(event.id, result_type=DeliveryResult).result()

    assert result.delivered == [] and peer.count("/flaky") == 1
    [entry] = await deliveries(api, endpoint["id"])
    assert entry["status"] == "failed" and "disabled" in entry["last_error"]


async def test_redirects_are_followed_and_signed_the_same(
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    peer: Peer,
) -> None:
    endpoint = await subscribe(api, f"{peer.url}/old", ["run.completed"])
    peer.redirect("/old", f"{peer.url}/new", status=308)
    event = run_event(org_a(settings))

    [result] = await deliver(client, settings, database, http_client, event)

    assert result.delivered == [endpoint["id"]] and result.attempts == 1
    [(moved, raw)] = peer.raw_calls_to("/new")
    Webhook(endpoint["secret"]).verify(raw, lower_headers(moved.headers))


async def test_a_redirect_to_a_private_address_is_refused(settings: Settings, peer: Peer) -> None:
    """RUNLANE_HTTP_ALLOW_PRIVATE=false: the endpoint's public host answers with a redirect to
    127.0.0.1, which is checked like the first hop and refused. The public host is a resolver
    and transport of the test's own (a public address, but nothing leaves the machine); the
    loopback peer is real."""
    public = "hooks.example.com"
    strict = settings.model_copy(update={"http_allow_private": False})

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14"] if host == public else ["127.0.0.1"]

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["host"] == public  # pinned to the checked address
        return httpx.Response(307, headers={"location": f"{peer.url}/internal"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sender = EventSender(http, allow_private=strict.http_allow_private, resolve=resolve)
        outcome = await sender.send(
            EndpointTarget("we_1", f"https://{public}/hook", "whsec_" + "A" * 44),
            "evt_1",
            b"{}",
        )

    assert not outcome.succeeded and outcome.status_code is None
    assert outcome.error is not None and "127.0.0.1" in outcome.error
    assert "RUNLANE_HTTP_ALLOW_PRIVATE" in outcome.error
    assert peer.count("/internal") == 0


@asynccontextmanager
async def delivery_worker(
    client: Client, settings: Settings, database: Database, http_client: httpx.AsyncClient
) -> AsyncIterator[Worker]:
    """A worker of the delivery workflow alone, wired as worker.py wires it."""
    work = trigger_work(
        client=client, database=database, settings=settings, http_client=http_client
    )
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=work.workflows,
        activities=work.activities,
    ) as worker:
        yield worker


async def test_a_worker_restart_between_attempts_loses_no_event(
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    peer: Peer,
) -> None:
    endpoints = EndpointRepository(database, settings.secret_keys())
    org = org_a(settings)
    endpoint, _ = await endpoints.create(
        org, url=f"{peer.url}/hook", events=["run.completed"], description=""
    )
    peer.fail("/hook", 1, 500)
    event = run_event(org)
    # Long enough for the first worker to stop before the retry's timer fires.
    slow = settings.model_copy(
        update={"event_retry_initial_s": 2.0, "event_retry_max_interval_s": 2.0}
    )

    async with delivery_worker(client, slow, database, http_client):
        await delivery_activities(client, slow, database, http_client).emit_events(
            EmittedEvents(events=[event])
        )
        # Stopped once the first attempt's failure is recorded (and its timer started).
        while (
            not (log := await endpoints.deliveries(org, endpoint.id, limit=10, cursor=None)).items
            or log.items[0].attempts < 1
        ):
            await asyncio.sleep(0.05)
    assert log.items[0].status == "retrying" and peer.count("/hook") == 1

    async with delivery_worker(client, slow, database, http_client):
        handle = client.get_workflow_handle(event.id, result_type=DeliveryResult)
        result = await handle.result()

    assert result.delivered == [endpoint.id] and result.attempts == 2
    [entry] = (await endpoints.deliveries(org, endpoint.id, limit=10, cursor=None)).items
    assert (entry.status, entry.attempts, entry.last_status_code) == ("succeeded", 2, 200)
    assert [lower_headers(c.headers)["webhook-id"] for c in peer.calls_to("/hook")] == [
        event.id,
        event.id,
    ]


async def test_emitting_an_event_again_does_not_deliver_it_twice(
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    peer: Peer,
) -> None:
    endpoint = await subscribe(api, f"{peer.url}/once", ["run.completed"])
    event = run_event(org_a(settings))
    await deliver(client, settings, database, http_client, event)

    # The run's EMIT_EVENTS activity ran again (a retry after a crash): nothing new.
    await deliver(client, settings, database, http_client, event)

    assert peer.count("/once") == 1
    assert len(await deliveries(api, endpoint["id"])) == 1


async def test_a_receiver_that_never_answers_is_a_failed_attempt() -> None:
    """The request is bounded as a whole: a peer that accepts and then says nothing costs
    the attempt its timeout, then counts as a failure to retry."""
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    try:
        async with httpx.AsyncClient() as http:
            sender = EventSender(http, allow_private=True, timeout_s=0.3)
            outcome = await sender.send(
                EndpointTarget("we_1", f"http://127.0.0.1:{port}/", "whsec_" + "A" * 44),
                "evt_1",
                b"{}",
            )
    finally:
        silent.close()

    assert not outcome.succeeded and outcome.status_code is None
    assert outcome.error == "no answer within 0.3 s"


def test_a_trimmed_event_says_so_in_its_body(settings: Settings) -> None:
    trimmed = run_event("org_x", "review.requested", node_id="review")
    trimmed = trimmed.model_copy(update={"trimmed": True})

    body = json.loads(event_body(trimmed, settings))
    plain = json.loads(event_body(run_event("org_x"), settings))

    assert body["data"]["trimmed"] is True and body["data"]["node_id"] == "review"
    assert "trimmed" not in plain["data"] and "node_id" not in plain["data"]
