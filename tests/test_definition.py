"""The definition validator: every problem reported, each with its node id."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activities.registry import default_registry
from runlane.definition import Graph, validate_definition

REGISTRY = default_registry()

API_MD_EXAMPLE: dict[str, Any] = {
    "nodes": [
        {"id": "doc", "type": "start", "label": "Invoice PDF"},
        {
            "id": "meta",
            "type": "start_json",
            "label": "Metadata",
            "config": {"schema": {"type": "object", "required": ["customer_id"]}},
        },
        {"id": "note", "type": "start_text", "label": "Instructions"},
        {
            "id": "shape",
            "type": "transform",
            "config": {"output": {"customer": "{{meta.customer_id}}", "file": "{{doc.filename}}"}},
        },
        {"id": "big", "type": "condition", "config": {"expression": "meta.amount > `1000`"}},
        {
            "id": "review",
            "type": "human_review",
            "label": "Approve",
            "config": {"instructions": "Check the amount", "payload": "{{shape}}"},
        },
        {
            "id": "notify",
            "type": "http_request",
            "config": {
                "method": "POST",
                "url": "http://127.0.0.1:9000/hook",
                "body": {"run": "{{$run.id}}"},
            },
        },
        {"id": "out", "type": "end", "config": {"outputs": {"customer": "{{shape.customer}}"}}},
    ],
    "edges": [
        {"source": "doc", "target": "shape"},
        {"source": "meta", "target": "shape"},
        {"source": "shape", "target": "big"},
        {"source": "big", "target": "review", "branch": "true"},
        {"source": "big", "target": "notify", "branch": "false"},
        {"source": "review", "target": "notify"},
        {"source": "notify", "target": "out"},
    ],
}


def problems(raw: Any) -> list[tuple[str | None, str]]:
    definition, found = validate_definition(raw, REGISTRY)
    assert (definition is None) == bool(found)
    return [(p.node_id, p.message) for p in found]


def about(found: list[tuple[str | None, str]], node_id: str | None, *words: str) -> bool:
    return any(n == node_id and all(w in m for w in words) for n, m in found)


def test_the_api_md_example_is_valid() -> None:
    # `note` (start_text) is not connected in API.md's example: it is a start node, so it is
    # reachable by definition.
    assert problems(API_MD_EXAMPLE) == []


def test_seed_style_ids_are_valid() -> None:
    definition = {
        "nodes": [
            {"id": "start-node-1", "type": "start_text"},
            {"id": "end-node_2", "type": "end"},
        ],
        "edges": [{"source": "start-node-1", "target": "end-node_2"}],
    }
    assert problems(definition) == []


def test_every_problem_is_reported_at_once_with_its_node() -> None:
    definition = {
        "nodes": [
            {"id": "s", "type": "start_text"},
            {"id": "s", "type": "start_text"},
            {"id": "bad id!", "type": "transform", "config": {"output": 1}},
            {"id": "mystery", "type": "teleport"},
            {"id": "cond", "type": "condition", "config": {"expression": "a >"}},
            {"id": "call", "type": "http_request", "config": {"method": "FETCH"}},
            {"id": "wait", "type": "delay", "config": {"seconds": -1}},
            {"id": "js", "type": "start_json", "config": {"schema": {"type": "nope"}}},
            {"id": "extra", "type": "end", "config": {"outputs": {}, "surprise": True}},
        ],
        "edges": [],
    }
    found = problems(definition)
    assert about(found, "s", "duplicate")
    assert about(found, "bad id!", "[A-Za-z0-9_-]")
    assert about(found, "mystery", "unknown node type", "teleport")
    assert about(found, "cond", "expression")
    assert about(found, "call", "url")
    assert about(found, "call", "method")
    assert about(found, "wait", "seconds")
    assert about(found, "js", "JSON Schema")
    assert about(found, "extra", "surprise")


def test_duplicate_ids_do_not_hide_edge_problems() -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "in", "type": "start_text"},
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "in", "target": "ghost"}],
    }
    found = problems(definition)
    assert about(found, "in", "duplicate") and about(found, "ghost", "unknown node")


def _chain(*ids: str) -> list[dict[str, str]]:
    return [{"source": a, "target": b} for a, b in zip(ids, ids[1:], strict=False)]


def test_graph_problems() -> None:
    base = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "a", "type": "transform", "config": {"output": 1}},
            {"id": "b", "type": "transform", "config": {"output": 2}},
            {"id": "island", "type": "transform", "config": {"output": 3}},
            {"id": "out", "type": "end"},
        ],
        "edges": [*_chain("in", "a", "b", "out"), {"source": "b", "target": "a"}],
    }
    found = problems(base)
    assert about(found, "a", "cycle") and about(found, "b", "cycle")
    # Downstream of the cycle is not on it, and the message names the cycle's members.
    assert not about(found, "out", "cycle") and about(found, "a", "cycle with a, b")

    two_cycles = copy.deepcopy(base)
    two_cycles["nodes"].insert(3, {"id": "c", "type": "transform", "config": {"output": 4}})
    two_cycles["edges"] = [
        *_chain("in", "a", "b", "c", "out"),
        {"source": "b", "target": "a"},
        {"source": "c", "target": "c"},
    ]
    found = problems(two_cycles)
    assert about(found, "b", "cycle with a, b") and about(found, "c", "cycle with c")
    assert not about(found, "in", "cycle") and not about(found, "out", "cycle")

    dangling = copy.deepcopy(base)
    dangling["edges"] = [*_chain("in", "a", "out"), {"source": "a", "target": "ghost"}]
    assert about(problems(dangling), "ghost", "unknown node")

    unreachable = copy.deepcopy(base)
    unreachable["edges"] = _chain("in", "a", "b", "out")
    assert about(problems(unreachable), "island", "not reachable")

    no_start = {"nodes": [{"id": "out", "type": "end"}], "edges": []}
    assert about(problems(no_start), None, "start")
    no_end = {"nodes": [{"id": "in", "type": "start_text"}], "edges": []}
    assert about(problems(no_end), None, "'end'")

    into_start = {
        "nodes": [{"id": "in", "type": "start_text"}, {"id": "out", "type": "end"}],
        "edges": [*_chain("in", "out"), {"source": "out", "target": "in"}],
    }
    assert about(problems(into_start), "in", "incoming")


def test_branches() -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {"id": "c", "type": "condition", "config": {"expression": "in.x"}},
            {"id": "r", "type": "human_review"},
            {"id": "t", "type": "transform", "config": {"output": 1}},
            {"id": "out", "type": "end"},
        ],
        "edges": [
            {"source": "in", "target": "c"},
            {"source": "c", "target": "r"},  # no branch on a condition edge
            {"source": "r", "target": "t", "branch": "rejected"},  # fine
            {"source": "r", "target": "out"},
            {"source": "t", "target": "out", "branch": "true"},  # not a condition
        ],
    }
    found = problems(definition)
    assert about(found, "c", "branch")
    assert about(found, "t", "branch 'true'")
    assert not about(found, "r", "branch")


def test_template_references() -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "left", "type": "transform", "config": {"output": "{{in.text}}"}},
            {"id": "right", "type": "transform", "config": {"output": "{{left}}"}},
            {"id": "ghosty", "type": "transform", "config": {"output": "{{ghost.x}}"}},
            {"id": "runx", "type": "transform", "config": {"output": "{{$run.secret}}"}},
            {"id": "out", "type": "end", "config": {"outputs": "{{right}} {{$vars.v}}"}},
        ],
        "edges": [
            {"source": "in", "target": "left"},
            {"source": "in", "target": "right"},
            {"source": "in", "target": "ghosty"},
            {"source": "in", "target": "runx"},
            {"source": "left", "target": "out"},
            {"source": "right", "target": "out"},
            {"source": "ghosty", "target": "out"},
            {"source": "runx", "target": "out"},
        ],
    }
    found = problems(definition)
    assert about(found, "right", "'left'", "not an ancestor")
    assert about(found, "ghosty", "unknown node 'ghost'")
    assert about(found, "runx", "$run")
    assert not about(found, "out", "template")


def test_not_an_object_is_a_problem_not_a_crash() -> None:
    assert problems([1, 2]) != []
    assert problems({"nodes": "x"}) != []
    assert problems({"nodes": [{"id": 5}]}) != []


# ------------------------------------------------------------ nothing hides anything


def _everything_wrong_at_once() -> dict[str, Any]:
    """One definition with a problem of each kind; issue 12's starting point was an unknown
    edge target hiding the template and branch problems."""
    return {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {"id": "c", "type": "condition", "config": {"expression": "in.x"}},
            {"id": "r", "type": "human_review"},
            {"id": "early", "type": "transform", "config": {"output": "{{late.x}}"}},
            {"id": "ghosty", "type": "transform", "config": {"output": "{{ghost}}"}},
            {"id": "late", "type": "transform", "config": {"output": 1}},
            {"id": "island", "type": "transform", "config": {"output": 2}},
            {"id": "mystery", "type": "teleport"},
            {"id": "out", "type": "end"},
        ],
        "edges": [
            {"source": "in", "target": "c"},
            {"source": "c", "target": "r"},  # a condition edge without a branch
            {"source": "r", "target": "early", "branch": "maybe"},  # not a review branch
            {"source": "r", "target": "ghosty"},
            {"source": "early", "target": "late"},
            {"source": "ghosty", "target": "late"},
            {"source": "late", "target": "out"},
            {"source": "late", "target": "nowhere"},  # unknown target
            {"source": "out", "target": "in"},  # into a start node (and a cycle)
            {"source": "out", "target": "mystery"},
        ],
    }


def test_an_unknown_edge_target_hides_nothing() -> None:
    definition = _everything_wrong_at_once()
    definition["edges"].remove({"source": "out", "target": "in"})
    found = problems(definition)
    assert about(found, "nowhere", "unknown node 'nowhere'")
    assert about(found, "c", 'branch "true" or "false"')
    assert about(found, "r", "branch 'maybe'", "rejected")
    assert about(found, "early", "'late'", "not an ancestor")
    assert about(found, "ghosty", "unknown node 'ghost'")
    assert about(found, "island", "not reachable")
    assert about(found, "mystery", "unknown node type")
    assert not about(found, "late", "template") and not about(found, "out", "reachable")


def test_a_cycle_hides_only_what_needs_an_order() -> None:
    found = problems(_everything_wrong_at_once())
    # The cycle in -> c -> r -> ... -> out -> in, an edge into a start node, a dangling edge.
    assert about(found, "in", "cycle") and about(found, "out", "cycle")
    assert about(found, "in", "incoming") and about(found, "nowhere", "unknown node")
    # What needs no order is still checked...
    assert about(found, "c", 'branch "true" or "false"')
    assert about(found, "r", "branch 'maybe'")
    assert about(found, "ghosty", "unknown node 'ghost'")
    assert about(found, "island", "not reachable")
    assert about(found, "mystery", "unknown node type")
    # ... and ancestry, undefined on the cycle, is not guessed.
    assert not about(found, "early", "not an ancestor")


def test_ancestry_is_still_checked_before_a_cycle() -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "a", "type": "transform", "config": {"output": "{{b}}"}},
            {"id": "b", "type": "transform", "config": {"output": 1}},
            {"id": "loop", "type": "transform", "config": {"output": 1}},
            {"id": "out", "type": "end"},
        ],
        "edges": [
            *_chain("in", "a", "b", "loop", "out"),
            {"source": "loop", "target": "loop"},
        ],
    }
    found = problems(definition)
    assert about(found, "loop", "cycle") and about(found, "a", "'b'", "not an ancestor")


def test_duplicate_ids_hide_only_what_they_make_ambiguous() -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "in", "type": "start_text"},
            {"id": "c", "type": "condition", "config": {"expression": "in.text"}},
            {"id": "t", "type": "transform", "config": {"output": "{{ghost}} {{out}}"}},
            {"id": "island", "type": "transform", "config": {"output": 2}},
            {"id": "out", "type": "end"},
        ],
        "edges": [*_chain("in", "c", "t", "out")],
    }
    found = problems(definition)
    assert about(found, "in", "duplicate")
    assert about(found, "c", 'branch "true" or "false"')
    assert about(found, "t", "unknown node 'ghost'")
    assert about(found, "t", "'out'", "not an ancestor")
    assert about(found, "island", "not reachable")


def test_a_malformed_node_or_edge_hides_nothing_else() -> None:
    definition = _everything_wrong_at_once()
    definition["edges"].remove({"source": "out", "target": "in"})
    definition["nodes"] += [
        {"id": 5, "type": "transform"},
        {"id": "nulled", "type": "transform", "config": None},
        {"id": "coloured", "type": "transform", "config": {"output": 1}, "colour": "red"},
        {"id": "typeless", "type": ["end"]},
        "not a node",
    ]
    definition["edges"] += [
        {"source": "in", "target": 7},
        {"source": "in", "target": "nulled", "branch": 3},
        {"source": "in", "target": "coloured"},
        {"source": "in", "target": "typeless"},
        {"source": 5, "target": "ghost"},
    ]
    found = problems(definition)
    # The malformed parts, each named...
    assert about(found, None, "nodes.9.id")
    assert about(found, "nulled", "config", "dictionary")
    assert about(found, "coloured", "colour")
    assert about(found, "typeless", "type")
    assert about(found, None, "nodes.13")
    assert about(found, "in", "edges.9.target") and about(found, "in", "edges.10.branch")
    # ... and every problem of the rest, still found.
    assert about(found, "nowhere", "unknown node 'nowhere'")
    assert about(found, "c", 'branch "true" or "false"')
    assert about(found, "early", "not an ancestor")
    assert about(found, "ghosty", "unknown node 'ghost'")
    assert about(found, "island", "not reachable")
    # No problem is invented from what could not be read: a node with a broken config or
    # type is not also "missing config", "of unknown type" or "not reachable".
    assert [m for n, m in found if n == "nulled"] == [
        "nodes.10.config: Input should be a valid dictionary"
    ]
    assert not about(found, "typeless", "unknown node type")
    assert not about(found, "coloured", "reachable")
    assert [m for n, m in found if n == "in" and "branch" in m] == [
        "edges.10.branch: Input should be a valid string"
    ]


def test_ids_match_in_full_and_expressions_stay_shallow() -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {"id": "x\n", "type": "transform", "config": {"output": 1}},
            {"id": "paren", "type": "condition", "config": {"expression": "(" * 3_000 + "in"}},
            {"id": "nots", "type": "condition", "config": {"expression": "!" * 3_000 + "in"}},
            {"id": "pipes", "type": "condition", "config": {"expression": "in" + "|in" * 500}},
            {"id": "ok", "type": "condition", "config": {"expression": "in" + "|in" * 90}},
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "in", "target": n} for n in ("x\n", "paren", "nots", "pipes")]
        + [
            {"source": "in", "target": "ok"},
            {"source": "ok", "target": "out", "branch": "true"},
        ],
    }
    found = problems(definition)  # a problem each, never a RecursionError
    assert about(found, "x\n", "must match")
    for node_id in ("paren", "nots", "pipes"):
        assert about(found, node_id, "config.expression", "nested more than 100 levels"), node_id
    assert not about(found, "ok", "expression")


def test_lone_surrogates_are_a_problem_and_never_echoed() -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text", "label": "\ud800"},
            {"id": "x\udfff", "type": "transform", "config": {"output": {"\ud801": 1}}},
            {"id": "out", "type": "end", "config": {"outputs": "{{ghost}}"}},
        ],
        "edges": [*_chain("in", "x\udfff", "out"), {"source": "in", "target": "y\ud802"}],
        "vars": {"v": ["\ud803"]},
    }
    found = problems(definition)
    assert about(found, "in", "nodes.0: text is not valid Unicode")
    assert about(found, "x\ufffd", "nodes.1: text is not valid Unicode")
    assert about(found, "in", "edges.2: text is not valid Unicode")
    assert about(found, None, "vars: text is not valid Unicode")
    # Every other problem is still found, with U+FFFD for what could not be shown.
    assert about(found, "x\ufffd", "node id must match")
    assert about(found, "y\ufffd", "unknown node 'y\ufffd'")
    assert about(found, "out", "unknown node 'ghost'")
    for node_id, message in found:
        (node_id or "").encode() and message.encode()  # all of it can be answered as UTF-8


def test_the_same_problem_is_reported_once() -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "out", "type": "end", "config": {"outputs": ["{{out}}"] * 1_000}},
        ],
        "edges": _chain("in", "out"),
    }
    assert problems(definition) == [
        ("out", "template '{{out}}' names 'out', which is not an ancestor of this node")
    ]


HTTP_URLS: list[tuple[str, str | None]] = [
    ("http://127.0.0.1:9000/hook", None),
    ("https://api.example.com", None),
    ("HTTPS://api.example.com/x?y=1#z", None),
    ("{{in.base}}/x", None),  # the scheme comes from the template: checked at run time
    ("https://{{in.host}}/x", None),
    ("http{{in.s}}://example.com", None),
    ("https://api.{{in.zone}}.example.com/x", None),
    ("http:{{in.rest}}", None),
    ("ftp://example.com/file", "url scheme 'ftp' is not allowed; use http or https"),
    ("ftp://{{in.host}}/x", "url scheme 'ftp' is not allowed; use http or https"),
    ("file:///etc/passwd", "url scheme 'file' is not allowed; use http or https"),
    ("localhost:8080/x", "url scheme 'localhost' is not allowed; use http or https"),
    ("example.com/hook", "url has no scheme; use http:// or https://"),
    ("/relative/{{in.x}}", "url has no scheme; use http:// or https://"),
    ("http://", "url has no host"),
    ("https:///path", "url has no host"),
    ("http:/x/{{in.y}}", "url has no host"),
    ("https:///{{in.path}}", "url has no host"),
    ("http://[::1/x", "not a valid URL"),
    ("http://example.com:99999/", "not a valid URL"),
    ("https://example.com:{{in.port}}/x", None),
    (" https://example.com/\tx", None),  # what urlsplit ignores, ignored
    ("mailto:{{in.who}}", "url scheme 'mailto' is not allowed; use http or https"),
]


def _http(url: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {"id": "call", "type": "http_request", "config": {"url": url}},
            {"id": "out", "type": "end"},
        ],
        "edges": _chain("in", "call", "out"),
    }


def test_http_urls_are_checked_as_far_as_they_are_literal() -> None:
    for url, expected in HTTP_URLS:
        found = problems(_http(url))
        if expected is None:
            assert found == [], (url, found)
        else:
            assert found == [("call", f"config.url: {expected}")] or about(
                found, "call", "config.url", expected
            ), (url, found)


# ------------------------------------------------------------------ properties

node_ids = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)


@st.composite
def dags(draw: st.DrawFn) -> dict[str, Any]:
    """A random valid DAG: a start node first, an end node last, edges only forward, every
    node reachable from the start."""
    ids = draw(st.lists(node_ids, min_size=2, max_size=12, unique=True))
    nodes: list[dict[str, Any]] = [{"id": ids[0], "type": "start_json"}]
    edges: list[dict[str, str]] = []
    for index, node_id in enumerate(ids[1:], start=1):
        parents = draw(st.lists(st.integers(0, index - 1), min_size=1, max_size=3, unique=True))
        parent = ids[draw(st.sampled_from(parents))]
        is_end = index == len(ids) - 1
        config = (
            {"outputs": {"v": f"{{{{{parent}}}}}"}} if is_end else {"output": f"{{{{{parent}}}}}"}
        )
        nodes.append({"id": node_id, "type": "end" if is_end else "transform", "config": config})
        edges += [{"source": ids[p], "target": node_id} for p in parents]
    return {"nodes": nodes, "edges": edges}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_random_dags_are_valid_and_ordered(definition: dict[str, Any]) -> None:
    parsed, found = validate_definition(definition, REGISTRY)
    assert found == [] and parsed is not None
    order = {node_id: i for i, node_id in enumerate(Graph(parsed).topological_order)}
    assert len(order) == len(definition["nodes"])
    assert all(order[e["source"]] < order[e["target"]] for e in definition["edges"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.data())
def test_mutations_are_caught_naming_the_right_node(
    definition: dict[str, Any], data: st.DataObject
) -> None:
    ids = [n["id"] for n in definition["nodes"]]
    mutation = data.draw(st.sampled_from(["cycle", "no_end", "island", "non_ancestor"]))
    broken = copy.deepcopy(definition)
    if mutation == "cycle":
        broken["edges"].append({"source": ids[1], "target": ids[1]})
        assert about(problems(broken), ids[1], "cycle")
    elif mutation == "no_end":
        broken["nodes"][-1]["type"] = "transform"
        broken["nodes"][-1]["config"] = {"output": 1}
        assert about(problems(broken), None, "'end'")
    elif mutation == "island":
        broken["nodes"].append({"id": "zz-island", "type": "transform", "config": {"output": 1}})
        assert about(problems(broken), "zz-island", "not reachable")
    else:
        # The start node reads the end node's output: not an ancestor.
        broken["nodes"].insert(
            1, {"id": "zz-reader", "type": "transform", "config": {"output": f"{{{{{ids[-1]}}}}}"}}
        )
        broken["edges"].append({"source": ids[0], "target": "zz-reader"})
        broken["edges"].append({"source": "zz-reader", "target": ids[-1]})
        assert about(problems(broken), "zz-reader", "not an ancestor")


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.sampled_from(["nodes", "edges", "id", "type", "config", "x"])
    return st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    _containers,  # a def, not a lambda: hypothesis misreads a multi-line lambda's source
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_arbitrary_json_never_raises(raw: Any) -> None:
    validate_definition(raw, REGISTRY)  # problems, never an exception


@st.composite
def messy_graphs(draw: st.DrawFn) -> dict[str, Any]:
    """Known and unknown node types, duplicate ids, unreadable parts, any edges (dangling,
    cyclic, with or without branches)."""
    ids = draw(st.lists(st.sampled_from("abcde"), min_size=1, max_size=5))
    types = [*REGISTRY, "teleport"]
    nodes: list[Any] = [{"id": i, "type": draw(st.sampled_from(types))} for i in ids]
    # Now and then a node or an edge end the parser refuses, or a node that is no object.
    unreadable = st.sampled_from([None, 5, ["a"], {"id": "a"}])
    for node in nodes:
        if draw(st.integers(0, 5)) == 0:
            node[draw(st.sampled_from(["id", "type", "config"]))] = draw(unreadable)
    if draw(st.integers(0, 5)) == 0:
        nodes.append(draw(unreadable))
    ends = st.sampled_from(ids) | st.just("z") | unreadable
    edges = draw(
        st.lists(
            st.fixed_dictionaries(
                {"source": ends, "target": ends},
                optional={"branch": st.sampled_from(["true", "false", "rejected", "x"])},
            ),
            max_size=8,
        )
    )
    return {"nodes": nodes, "edges": edges}


@settings(max_examples=300, deadline=None)
@given(messy_graphs())
def test_messy_graphs_never_raise(raw: dict[str, Any]) -> None:
    validate_definition(raw, REGISTRY)
