"""Cursors on every paged endpoint: one this API never wrote is `422 invalid_cursor` naming the
cursor, answered at once (nothing is asked of Temporal or the store), never a 5xx."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import create_published, linear_definition

# Paths of every paged endpoint; {workflow} is filled in with a real workflow's id.
PAGED = (
    "/v1/workflows/runs",
    "/v1/reviews",
    "/v1/workflows",
    "/v1/workflows/{workflow}/snapshots",
)


def _cursor(raw: object) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw)
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def _assert_refused(response: httpx.Response, name: str = "cursor") -> None:
    assert response.status_code == 422, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "invalid_cursor", error
    assert error["type"] == "invalid_request"
    assert error["details"]["errors"][0]["loc"] == ["query", name], error


# Shapes near each endpoint's own cursors: runs' {"p","k","r","o"} and the store's
# [created_at, id] or {"o","k":[...]}, each with one thing wrong.
BOGUS = [
    "%%%",
    "garbage!!",
    "\u00e9\u0000",
    "x" * 2000,
    _cursor("null"),
    _cursor("[]"),
    _cursor('"text"'),
    _cursor({"p": 0, "k": 1}),
    _cursor({"p": 2, "k": 1, "r": "x"}),
    _cursor({"p": -1, "k": 1, "r": "x"}),
    _cursor({"p": 0, "k": "1", "r": "x"}),
    _cursor({"p": 0, "k": 1, "r": 5}),
    _cursor({"p": 0, "k": 1, "r": "x", "o": "sideways"}),
    _cursor({"p": 0, "k": 1, "r": "x", "o": None}),
    _cursor({"p": 0, "k": 2**64, "r": "x"}),
    _cursor(["2024-01-01T00:00:00+00:00"]),
    _cursor(["2024-01-01T00:00:00", "id"]),
    _cursor(["not a date", "id"]),
    _cursor(["0001-01-01T00:00:00+14:00", "id"]),
    _cursor(["9999-12-31T23:59:59-14:00", "id"]),
    _cursor(["2024-01-01T00:00:00+00:00", "a\u0000b"]),
    _cursor('["2024-01-01T00:00:00+00:00", "\\ud800"]'),
    _cursor({"o": "desc", "k": ["2024-01-01T00:00:00+00:00", "id"]}),
    _cursor({"o": "asc", "k": ["2024-01-01T00:00:00+00:00"]}),
    _cursor("[" * 5000),
    _cursor("{" * 5000),
]


@pytest.fixture
async def workflow(api: httpx.AsyncClient) -> str:
    return await create_published(api, linear_definition())


async def test_bogus_cursors_are_422_at_once_on_every_paged_endpoint(
    api: httpx.AsyncClient, workflow: str
) -> None:
    for path in PAGED:
        for cursor in BOGUS:
            for name in ("cursor", "after"):
                started = time.monotonic()
                response = await api.get(
                    path.format(workflow=workflow), params={name: cursor, "limit": "5"}
                )
                took = time.monotonic() - started
                assert response.status_code == 422, (path, name, cursor[:60], response.text[:300])
                _assert_refused(response)
                assert took < 1.0, (path, cursor[:60], took)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.fixed_dictionaries(
        {
            "p": st.integers(-1, 2) | st.booleans() | st.none(),
            "k": st.integers() | st.none() | st.floats(allow_nan=False) | st.text(max_size=3),
            "r": st.text(max_size=8) | st.none() | st.integers(),
        },
        optional={"o": st.sampled_from(["asc", "desc", "up", 1])},
    ),
    order=st.sampled_from(["asc", "desc"]),
)
async def test_run_cursors_of_any_shape_are_answered_without_a_5xx(
    api: httpx.AsyncClient, raw: dict, order: str
) -> None:
    """A cursor shaped like a run listing's own, with any values: a page (it names a place in
    the list) or 422, quickly, never a 5xx from the query it would have become."""
    for path in ("/v1/workflows/runs", "/v1/reviews"):
        started = time.monotonic()
        response = await api.get(
            path, params={"cursor": _cursor(raw), "order": order, "workflow_id": "wf_none"}
        )
        took = time.monotonic() - started
        assert response.status_code in (200, 422), (raw, response.status_code, response.text)
        if response.status_code == 422:
            _assert_refused(response)
        assert took < 3.0, (raw, took)
