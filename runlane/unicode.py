"""Lone surrogates: JSON can escape one ("\\ud800") that UTF-8 cannot encode, so no answer,
store or Temporal payload can hold it. Inputs that carry one are refused; text echoed back in
an answer shows U+FFFD in its place. Walked without recursion: inputs may nest deeply."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_UNICODE = "text is not valid Unicode (a lone surrogate escape such as \\ud800)"


def has_lone_surrogate(value: Any) -> bool:
    """Whether any text in `value` (strings, mapping keys, at any depth) holds one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def shown(text: str) -> str:
    """Text as an answer can show it: U+FFFD for each lone surrogate."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def replaced(value: Any) -> Any:
    """A copy of a JSON value with U+FFFD for each lone surrogate."""
    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = shown(item)
        elif isinstance(item, Mapping):
            mapping = {shown(k) if isinstance(k, str) else k: v for k, v in item.items()}
            container[key] = mapping
            stack.extend((mapping, k) for k in mapping)
        elif isinstance(item, list | tuple):
            items = list(item)
            container[key] = items
            stack.extend((items, i) for i in range(len(items)))
    return root[0]
