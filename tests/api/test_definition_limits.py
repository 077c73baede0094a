"""Definition limits (issue #13): expressions and configs too large or too deep for a run to
evaluate are refused at validation, on validate, create and draft alike, with a 422 naming the
node and the problem, quickly, never a 5xx."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.api.helpers import linear_definition


def _with_condition(expression: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {"id": "big", "type": "condition", "config": {"expression": expression}},
            {"id": "out", "type": "end"},
        ],
        "edges": [
            {"source": "meta", "target": "big"},
            {"source": "big", "target": "out", "branch": "true"},
        ],
    }


def _with_transform(output: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {"id": "shape", "type": "transform", "config": {"output": output}},
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "meta", "target": "shape"}, {"source": "shape", "target": "out"}],
    }


TOO_LARGE: dict[str, tuple[dict[str, Any], str]] = {
    # Issue #13: a 500+ level nesting was a 500 (RecursionError, connection reset).
    "a condition nested 600 levels deep": (
        _with_condition("(" * 600 + "meta.amount" + ")" * 600),
        "nested more than",
    ),
    "a 600-level chain of negations": (_with_condition("!" * 600 + "meta.ok"), "nested more than"),
    # Issue #13: an OR chain of 2,000+ terms passed and then failed the workflow task for ever.
    "an OR chain of 2,500 terms": (
        _with_condition(" || ".join(f"meta.a{i}" for i in range(2_500))),
        "characters",
    ),
    "an OR chain of 2,500 short terms": (_with_condition("||".join("a" * 2_500)), "nested"),
    # Issue #13: a 1 MB literal passed and tripped the deadlock detector at run time.
    "a 1 MB JMESPath literal": (
        _with_condition('meta.note == `"' + "x" * 1_000_000 + '"`'),
        "characters",
    ),
    "a 2 MB transform template": (_with_transform({"text": "y" * 2_000_000}), "config is"),
}


@pytest.mark.parametrize("case", sorted(TOO_LARGE))
async def test_too_large_or_deep_definitions_are_422_everywhere(
    api: httpx.AsyncClient, case: str
) -> None:
    definition, fragment = TOO_LARGE[case]
    started = time.monotonic()
    checked = await api.post("/v1/workflows/validate", json={"definition": definition})
    assert checked.status_code == 200, checked.text
    assert checked.json()["valid"] is False
    [problem] = checked.json()["errors"]
    assert problem["node_id"] in ("big", "shape")
    assert fragment in problem["message"]

    created = await api.post("/v1/workflows", json={"name": "x", "definition": definition})
    assert created.status_code == 422, created.text
    error = created.json()["error"]
    assert error["type"] == "invalid_request" and error["code"] == "invalid_definition"
    assert error["details"]["errors"] == checked.json()["errors"]

    workflow = await api.post(
        "/v1/workflows", json={"name": "ok", "definition": linear_definition()}
    )
    workflow_id = workflow.json()["id"]
    draft = await api.put(f"/v1/workflows/{workflow_id}/draft", json={"definition": definition})
    assert draft.status_code == 422, draft.text
    assert draft.json()["error"]["details"]["errors"] == checked.json()["errors"]
    # Refused quickly: the 1 MB literal took 15 s to parse (the API's event loop with it).
    assert time.monotonic() - started < 10


async def test_every_problem_is_reported_at_once(api: httpx.AsyncClient) -> None:
    definition = _with_condition("!" * 600 + "meta.ok")
    definition["nodes"].append(
        {"id": "other", "type": "condition", "config": {"expression": "a" * 20_000}}
    )
    definition["edges"].append({"source": "meta", "target": "other"})
    definition["edges"].append({"source": "other", "target": "out", "branch": "true"})
    checked = await api.post("/v1/workflows/validate", json={"definition": definition})
    problems = {p["node_id"]: p["message"] for p in checked.json()["errors"]}
    assert set(problems) == {"big", "other"}


async def test_expressions_and_templates_within_the_limits_pass(api: httpx.AsyncClient) -> None:
    ok = [
        _with_condition(" || ".join(f"meta.a{i}" for i in range(90))),
        _with_condition('meta.note == `"' + "x" * 8_000 + '"`'),
        _with_transform({"text": "y" * 500_000, "ref": "{{meta}}"}),
    ]
    for definition in ok:
        checked = await api.post("/v1/workflows/validate", json={"definition": definition})
        assert checked.json() == {"valid": True, "errors": []}
