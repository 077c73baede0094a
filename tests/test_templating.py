"""Templates and expressions as API.md specifies them (never Python eval)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from runlane import expressions
from runlane.templating import TemplateContext, render

CONTEXT = TemplateContext(
    outputs={
        "meta": {"n": 3, "tags": ["a", "b"], "ok": True, "none": None, "items": [{"name": "x"}]},
        "json-1": {"amount": 1500},
        "note": {"text": "hi"},
    },
    run={"id": "run_1", "workflow_id": "wf_1"},
    vars={"region": "eu", "limits": {"max": 9}},
)


def test_whole_value_keeps_the_json_type() -> None:
    assert render("{{meta.n}}", CONTEXT) == 3
    assert render("{{meta.tags}}", CONTEXT) == ["a", "b"]
    assert render("{{meta.ok}}", CONTEXT) is True
    assert render("{{meta}}", CONTEXT)["n"] == 3
    assert render("{{ meta.n }}", CONTEXT) == 3
    assert render("{{meta.missing}}", CONTEXT) is None
    assert render("{{nobody.x}}", CONTEXT) is None


def test_inside_text_interpolates() -> None:
    assert render("n={{meta.n}} tags={{meta.tags}}", CONTEXT) == 'n=3 tags=["a","b"]'
    assert render("[{{meta.missing}}][{{meta.none}}]", CONTEXT) == "[][]"
    assert render("{{note.text}}!", CONTEXT) == "hi!"


def test_paths_run_and_vars() -> None:
    assert render("{{meta.items.0.name}}", CONTEXT) == "x"
    assert render("{{meta.items.5.name}}", CONTEXT) is None
    assert render("{{json-1.amount}}", CONTEXT) == 1500
    assert render({"r": "{{$run.id}}", "w": "{{$run.workflow_id}}"}, CONTEXT) == {
        "r": "run_1",
        "w": "wf_1",
    }
    assert render("{{$vars.region}}-{{$vars.limits.max}}", CONTEXT) == "eu-9"
    assert render([{"k": "{{meta.n}}"}, 7, None], CONTEXT) == [{"k": 3}, 7, None]


def test_python_is_never_evaluated() -> None:
    assert render("{{__import__('os').getcwd()}}", CONTEXT) is None
    assert render("{{meta.__class__}}", CONTEXT) is None


@given(st.text().filter(lambda s: "{{" not in s))
def test_text_without_references_is_unchanged(text: str) -> None:
    assert render(text, CONTEXT) == text


def test_expressions() -> None:
    data: dict[str, Any] = dict(CONTEXT.outputs)
    assert expressions.evaluate("meta.n > `2`", data) is True
    assert expressions.evaluate('"json-1".amount > `1000`', data) is True
    assert {"json-1", "amount"} <= expressions.field_names('"json-1".amount > `1000`')
    for value, truth in [(0, True), ([], False), ({}, False), ("", False), (None, False)]:
        assert expressions.truthy(value) is truth
    assert expressions.truthy(False) is False and expressions.truthy("x") is True
