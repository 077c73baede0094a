"""`condition` expressions: JMESPath over an object keyed by ancestor node ids."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError


class ExpressionError(ValueError):
    pass


# Deeper expressions exhaust Python's stack while parsing or evaluating (both recurse): an
# OR chain of 2,000 terms, or 500 nested parentheses, used to fail the run's workflow task
# for ever. Real conditions nest a handful of levels.
MAX_EXPRESSION_DEPTH = 100
# jmespath's lexer is quadratic in a literal's length (a 1 MB literal took 15 s to parse, in
# the API and in the run); 16 Ki characters parse in milliseconds and leave room for a long
# list literal. A condition reads data, it does not carry it.
MAX_EXPRESSION_CHARS = 16 * 1024


def compile_expression(expression: str) -> Any:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            f"expression is {len(expression):,} characters; the limit is "
            f"{MAX_EXPRESSION_CHARS:,} (pass large values as inputs and compare with those)"
        )
    try:
        compiled = jmespath.compile(expression)
    except JMESPathError as exc:
        raise ExpressionError(f"invalid JMESPath expression: {exc}") from exc
    except RecursionError:
        compiled = None
    if compiled is None or _depth(compiled.parsed) > MAX_EXPRESSION_DEPTH:
        raise ExpressionError(
            f"expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep"
        ) from None
    return compiled


def _depth(parsed: Any) -> int:
    """How deep a parsed expression nests, walked without recursion."""
    deepest, stack = 0, [(parsed, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_EXPRESSION_DEPTH:
            children = node.get("children", []) if isinstance(node, dict) else []
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict))
    return deepest


def _fields(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("type") == "field" and isinstance(node.get("value"), str):
            yield node["value"]
        for child in node.get("children", []):
            yield from _fields(child)
    elif isinstance(node, list):
        for child in node:
            yield from _fields(child)


def field_names(expression: str) -> set[str]:
    """Every identifier the expression mentions: a superset of the node ids it reads.

    Used to pass only what a condition needs into its activity (history stays small) and to
    check that it names no node that is not an ancestor. Inside the run workflow too: an
    expression the limits refuse (a definition published before them) names nothing here, and
    its node fails with the reason when it is evaluated, instead of the workflow task.
    """
    try:
        return set(_fields(compile_expression(expression).parsed))
    except ExpressionError:
        return set()


def evaluate(expression: str, data: Mapping[str, Any]) -> Any:
    try:
        return compile_expression(expression).search(dict(data))
    except JMESPathError as exc:
        raise ExpressionError(f"expression failed: {exc}") from exc


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, empty string/list/object are false."""
    # Compared by identity/type: in Python `0 == False`, but 0 is true in JMESPath.
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and len(value) == 0)
