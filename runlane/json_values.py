"""What a JSON value must be to be stored, sent to Temporal and answered back: the checks the
API's request schemas apply to JSON fields, and the parse of a raw JSON body (an inbound
webhook's, which is read as bytes so that its signature can be checked first)."""

from __future__ import annotations

import json
import math
from typing import Any

from runlane.errors import InvalidInput, invalid
from runlane.unicode import NOT_UNICODE, has_lone_surrogate

# Deeper values would be accepted and then fail serialization (pydantic stops near 255 levels,
# wrappers included) as a 500; no real definition or input comes close.
MAX_JSON_DEPTH = 64


def json_value_problem(value: Any) -> str | None:
    """Why `value` cannot be stored and answered back as JSON, or None."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"nested more than {MAX_JSON_DEPTH} levels deep"
            stack.extend((child, depth + 1) for child in _children(item))
        elif isinstance(item, float) and not math.isfinite(item):
            # 1e999 parses as inf; JSON has no inf or NaN to answer it with.
            return "numbers must be finite JSON numbers"
    return None


def _children(item: dict[Any, Any] | list[Any]) -> list[Any]:
    return list(item.values()) if isinstance(item, dict) else item


def _no_constant(name: str) -> Any:
    # Python's parser reads NaN, Infinity and -Infinity, which JSON does not have.
    raise ValueError(f"{name} is not a JSON number")


def parse_json_body(body: bytes) -> Any:
    """The JSON value of a request body, or InvalidInput (`invalid_json`) saying why it is
    not one this API can take (the same rules as every JSON field of the API)."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        problem = json_value_problem(value)
        if problem is None and has_lone_surrogate(value):
            problem = NOT_UNICODE
    except UnicodeDecodeError:
        problem = "it is not UTF-8"
    except RecursionError:
        problem = "it nests too deep"
    except json.JSONDecodeError as error:
        problem = f"{error.msg} (line {error.lineno}, column {error.colno})"
    except ValueError as error:
        # An integer of more than 4,300 digits, or a NaN/Infinity constant.
        problem = str(error)
    if problem is not None:
        raise _not_json(problem)
    return value


def _not_json(problem: str) -> InvalidInput:
    message = f"The body is not JSON this API can read: {problem}."
    return invalid("invalid_json", message, [{"loc": ["body"], "message": message}])
