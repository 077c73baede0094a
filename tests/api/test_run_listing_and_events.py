"""Listing runs (Temporal visibility), progress as SSE, reads when no worker answers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from api.deps import get_api_settings, get_temporal_client
from runlane.settings import Settings
from runlane.temporal import connect
from tests.api.helpers import (
    create_published,
    linear_definition,
    review_definition,
    wait_for_run,
    wait_until,
)

INPUTS = {"json_inputs": {"meta": {"customer_id": "c1"}}, "text_inputs": {"note": "n"}}


async def test_list_filters_and_pages(api: httpx.AsyncClient) -> None:
    first = await create_published(api, linear_definition(), name="first")
    second = await create_published(api, linear_definition(), name="second")
    run_ids = []
    for workflow_id in (first, first, first, second):
        started = await api.post(f"/v1/workflows/{workflow_id}/run", json=INPUTS)
        run_ids.append(started.json()["id"])
    for run_id in run_ids:
        await wait_for_run(api, run_id)

    async def listed(**params: str) -> list[str]:
        page = (await api.get("/v1/workflows/runs", params=params)).json()
        return [run["id"] for run in page["data"]]

    # The dev server is shared by the whole test session: scope every query by workflow.
    async def all_completed_visible() -> bool:
        done_first = await listed(workflow_id=first, status="completed")
        done_second = await listed(workflow_id=second, status="completed")
        return len(done_first) == 3 and len(done_second) == 1

    await wait_until(all_completed_visible)
    assert sorted(await listed(workflow_id=first)) == sorted(run_ids[:3])
    assert await listed(workflow_id=second) == [run_ids[3]]
    assert await listed(workflow_id=first, status="error") == []
    assert len(await listed(workflow_id=first, trigger_type="api")) == 3
    assert await listed(workflow_id=first, trigger_type="rerun") == []

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", "workflow_id": first} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/v1/workflows/runs", params=params)).json()
        assert len(page["data"]) <= 2
        seen += [run["id"] for run in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(run_ids[:3]) and len(seen) == len(set(seen))

    # Another organization sees none of them, listed or read.
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Api-Key": "key_org_b"}
    ) as other:
        foreign = await other.get("/v1/workflows/runs", params={"workflow_id": first})
        assert foreign.status_code == 200 and foreign.json()["data"] == []
        everything = (await other.get("/v1/workflows/runs", params={"limit": "200"})).json()
        assert not {run["id"] for run in everything["data"]} & set(run_ids)
        assert (await other.get(f"/v1/workflows/runs/{run_ids[0]}")).status_code == 404

    for bad in ({"status": "finished"}, {"trigger_type": "cron"}, {"limit": "0"}, {"cursor": "%%"}):
        response = await api.get("/v1/workflows/runs", params=bad)
        assert response.status_code == 422, bad


async def read_events(api: httpx.AsyncClient, run_id: str) -> list[str]:
    async with api.stream("GET", f"/v1/workflows/runs/{run_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = []
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
                if events[-1] == "end":
                    break
        return events


async def test_events_stream_until_the_run_ends(api: httpx.AsyncClient) -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "wait", "type": "delay", "config": {"seconds": 1}},
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "in", "target": "wait"}, {"source": "wait", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    run_id = (
        await api.post(f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"in": "x"}})
    ).json()["id"]
    live = await asyncio.wait_for(read_events(api, run_id), timeout=30)
    assert live[0] in ("run", "step") and live[-1] == "end"
    assert live.count("run") >= 2  # at least: running, completed
    assert live.count("step") >= 3
    # An ended run streams its state and ends at once.
    ended = await asyncio.wait_for(read_events(api, run_id), timeout=10)
    assert ended[-1] == "end" and ended.count("run") == 1


@pytest.fixture
async def api_without_worker(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API with its runs on a task queue no worker polls."""
    lonely = settings.model_copy(update={"task_queue": settings.task_queue + "-no-worker"})
    app.dependency_overrides[get_api_settings] = lambda: lonely
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Api-Key": "key_org_a"},
    ) as api:
        yield api


async def test_reading_a_run_nobody_executes_yet(api_without_worker: httpx.AsyncClient) -> None:
    api = api_without_worker
    workflow_id = await create_published(api, linear_definition())
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json=INPUTS)
    assert started.status_code == 202
    assert started.json()["status"] == "pending"
    run_id = started.json()["id"]
    # Well under the 5 s a state query would wait for a worker that never comes.
    read = await asyncio.wait_for(api.get(f"/v1/workflows/runs/{run_id}"), 4.5)
    assert read.status_code == 200
    run = read.json()
    assert run["status"] == "pending" == run["lifecycle"]["kind"]
    assert run["inputs"]["json_data"] == {"meta": {"customer_id": "c1"}}
    assert run["inputs"]["text_data"] == {"note": "n"}
    assert run["timing"]["started_at"] is None and run["final_outputs"] is None
    steps = await asyncio.wait_for(api.get(f"/v1/workflows/runs/{run_id}/steps"), 4.5)
    assert [s["node_id"] for s in steps.json()["data"]] == ["meta", "note", "shape", "out"]
    assert {s["status"] for s in steps.json()["data"]} == {"pending"}


async def test_lists_are_newest_first_whatever_the_status(api: httpx.AsyncClient) -> None:
    """A completed run created after a waiting one is listed before it (API.md part 2), and
    `created_after` / `created_before` bound the list."""
    waits = await create_published(api, review_definition(), name="waits")
    finishes = await create_published(api, linear_definition(), name="finishes")
    before_all = datetime.now(UTC)
    older = await api.post(
        f"/v1/workflows/{waits}/run", json={"json_inputs": {"meta": {"amount": 1}}}
    )
    older_id = older.json()["id"]
    await wait_for_run(api, older_id, until={"waiting_for_human"})
    newer = await api.post(f"/v1/workflows/{finishes}/run", json=INPUTS)
    newer_id = newer.json()["id"]
    await wait_for_run(api, newer_id)
    created_between = newer.json()["timing"]["created_at"]

    async def listed(**params: str) -> list[str]:
        page = await api.get("/v1/workflows/runs", params=params)
        assert page.status_code == 200, page.text
        return [run["id"] for run in page.json()["data"]]

    async def both_listed() -> bool:
        return len(await listed(created_after=before_all.isoformat())) == 2

    await wait_until(both_listed)
    assert await listed(created_after=before_all.isoformat()) == [newer_id, older_id]
    first = await api.get(
        "/v1/workflows/runs", params={"created_after": before_all.isoformat(), "limit": "1"}
    )
    assert [r["id"] for r in first.json()["data"]] == [newer_id]
    second = await api.get(
        "/v1/workflows/runs",
        params={
            "created_after": before_all.isoformat(),
            "limit": "1",
            "cursor": first.json()["next_cursor"],
        },
    )
    assert [r["id"] for r in second.json()["data"]] == [older_id]
    assert second.json()["next_cursor"] is None
    assert await listed(created_after=before_all.isoformat(), created_before=created_between) == [
        older_id
    ]
    assert await listed(created_after=created_between) == [newer_id]
    bad = await api.get(
        "/v1/workflows/runs",
        params={"created_after": created_between, "created_before": created_between},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_filter"
    assert (await api.get("/v1/workflows/runs", params={"cursor": "not-ours"})).status_code == 422


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_hostile_listing_parameters_are_422_and_edge_dates_list(
    api: httpx.AsyncClient,
) -> None:
    """Every listing parameter a careless or hostile caller can send: a 422 naming the
    parameter, never a 500 (nor a 502 from Temporal refusing the query we wrote)."""
    workflow_id = await create_published(api, linear_definition())
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json=INPUTS)
    run_id = started.json()["id"]
    await wait_for_run(api, run_id)

    async def listed(**params: str) -> list[str]:
        page = await api.get("/v1/workflows/runs", params={"workflow_id": workflow_id, **params})
        assert page.status_code == 200, (params, page.text)
        return [run["id"] for run in page.json()["data"]]

    assert await wait_until(lambda: listed())
    # Bounds at the ends of what a datetime holds, some beyond them once in UTC: valid RFC 3339.
    for early in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00"):
        assert await listed(created_after=early) == [run_id], early
        assert await listed(created_before=early) == [], early
    for late in (
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999+00:00",
        "9999-12-31T23:59:59-23:59",
    ):
        assert await listed(created_before=late) == [run_id], late
        assert await listed(created_after=late) == [], late
    assert await listed(
        created_after="0001-01-01T00:00:00Z", created_before="9999-12-31T23:59:59Z"
    ) == [run_id]
    # Not RFC 3339 date-times: no offset (then compared with one that has it), a bare date,
    # numbers pydantic would read as Unix times.
    for value in ("2024-01-01T00:00:00", "2024-01-01", "0", "-1", "1e20", "yesterday"):
        for name in ("created_after", "created_before"):
            response = await api.get("/v1/workflows/runs", params={name: value})
            assert response.status_code == 422, (name, value, response.text)
            assert response.json()["error"]["details"]["errors"][0]["loc"] == ["query", name]
    mixed = await api.get(
        "/v1/workflows/runs",
        params={"created_after": "2024-01-01T00:00:00", "created_before": "2025-01-01T00:00:00Z"},
    )
    assert mixed.status_code == 422, mixed.text
    reversed_bounds = await api.get(
        "/v1/workflows/runs",
        params={"created_after": "2025-01-01T00:00:00Z", "created_before": "2024-01-01T00:00:00Z"},
    )
    assert reversed_bounds.status_code == 422
    assert reversed_bounds.json()["error"]["details"]["errors"][0]["loc"][0] == "query"

    # Cursors this API never wrote: a bool or float phase, keys beyond any datetime, JSON
    # nested deeper than the decoder recurses, one too long to be ours.
    cursors = [
        _cursor(b'{"p":true,"k":1,"r":"x"}'),
        _cursor(b'{"p":1.0,"k":1,"r":"x"}'),
        _cursor(b'{"p":0,"k":1.0,"r":"x"}'),
        _cursor(b'{"p":1,"k":100000000000000000000000000000,"r":"x"}'),
        _cursor(b'{"p":1,"k":-1000000000000000000,"r":"x"}'),
        _cursor(b'{"p":0,"k":9223372036854775808,"r":"x"}'),
        _cursor(b"[" * 30000),
        "a" * 5000,
    ]
    for cursor in cursors:
        for path in ("/v1/workflows/runs", "/v1/reviews", "/v1/workflows"):
            response = await api.get(path, params={"cursor": cursor})
            assert response.status_code == 422, (path, cursor[:40], response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_cursor"
            assert error["details"]["errors"][0]["loc"] == ["query", "cursor"]
    snapshots = await api.get(
        f"/v1/workflows/{workflow_id}/snapshots", params={"cursor": _cursor(b"[" * 30000)}
    )
    assert snapshots.status_code == 422, snapshots.text


class _Proxy:
    """A TCP proxy on 127.0.0.1 to the test session's Temporal frontend, cut on demand: a real
    connection loss, not a stand-in."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.relayed_from_temporal = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, upstream_writer]

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, from_temporal: bool
        ) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
                    if from_temporal:
                        self.relayed_from_temporal += len(data)
            sink.close()

        await asyncio.gather(
            pipe(reader, upstream_writer, False), pipe(upstream_reader, writer, True)
        )

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self._writers:
            writer.close()


async def test_a_stream_ends_with_an_error_event_when_temporal_goes_away(
    app: FastAPI, api: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 1}}}
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    proxy = _Proxy(settings.temporal_address)
    through_proxy = await connect(
        settings.model_copy(update={"temporal_address": await proxy.start()})
    )
    app.dependency_overrides[get_temporal_client] = lambda: through_proxy
    # What one read of the run costs through the proxy (the stream's 404 check is one such
    # read, each of its polls another).
    proxy.relayed_from_temporal = 0
    assert (await api.get(f"/v1/workflows/runs/{run_id}/steps")).status_code == 200
    one_read = proxy.relayed_from_temporal

    async def stream_polled_once() -> bool:
        return proxy.relayed_from_temporal >= 3 * one_read

    async def cut_once_the_stream_polled() -> None:
        # httpx's ASGI transport hands a response over only once it has ended, so Temporal is
        # cut from beside the stream, once the stream has read the run twice.
        await wait_until(stream_polled_once)
        await proxy.cut()

    cutter = asyncio.create_task(cut_once_the_stream_polled())
    events: list[tuple[str, str]] = []
    async with api.stream("GET", f"/v1/workflows/runs/{run_id}/events") as response:
        assert response.status_code == 200
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, line.removeprefix("data: ")))
    await cutter
    assert events[0][0] == "step" and events[-1][0] == "error", events
    error = json.loads(events[-1][1])["error"]
    assert error["code"] == "temporal_unavailable" and error["type"] == "server_error"
