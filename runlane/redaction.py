"""Masking secrets' values in what is shown: text, JSON values, exceptions and log lines.

Secrets are rendered as `***` wherever they are not being sent (runlane/templating.py), so
Runlane's own messages never hold a value. This is the second line: what a peer answers (an
echo of the request, a URL in an error page), what a library puts in an exception or a log
line, is scanned for every form a value is sent in (as is, percent-encoded in a URL, escaped in
JSON) and each occurrence replaced by `***`, as CI systems mask their secrets in build logs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote, quote_plus

from runlane.templating import MASK


def _forms(value: str) -> set[str]:
    """The ways a value can appear once sent: as is, in a URL, in JSON text."""
    return {
        value,
        quote(value, safe=""),
        quote(value, safe="/:@!$&'()*+,;="),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }


class Redactor:
    """Replaces the given values (in every form they are sent in) with `***`."""

    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            if value:
                forms |= _forms(value)
        # Longest first: a value that contains another is masked whole.
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def found_in(self, text: str) -> bool:
        return self._pattern is not None and self._pattern.search(text) is not None

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """A JSON value with every string (object keys too) masked; walked without recursion,
        since outputs may nest deeply."""
        if self._pattern is None:
            return value
        root: list[Any] = [value]
        stack: list[tuple[Any, Any]] = [(root, 0)]
        while stack:
            container, key = stack.pop()
            item = container[key]
            if isinstance(item, str):
                container[key] = self.text(item)
            elif isinstance(item, dict):
                masked = {self.text(k) if isinstance(k, str) else k: v for k, v in item.items()}
                container[key] = masked
                stack.extend((masked, k) for k in masked)
            elif isinstance(item, list | tuple):
                copied = list(item)
                container[key] = copied
                stack.extend((copied, index) for index in range(len(copied)))
        return root[0]


# -------------------------------------------------------------------------------- logging
#
# Libraries log what they send: httpx logs every request's URL at INFO, httpcore its
# connections and response headers at DEBUG. While an activity holds secrets it makes its
# redactor current (`masking`); the filter below, on those libraries' loggers, masks what
# they log in that context (a context variable: other activities running at the same time,
# in other tasks, are not affected).

_current: ContextVar[Redactor | None] = ContextVar("runlane_redactor", default=None)
LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        redactor = _current.get()
        if redactor:
            message = record.getMessage()
            if redactor.found_in(message):
                record.msg, record.args = redactor.text(message), None
        return True


_FILTER = MaskingFilter()


def install_log_masking() -> None:
    """Put the masking filter on the loggers of the HTTP libraries (once; idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


@contextmanager
def masking(redactor: Redactor) -> Iterator[None]:
    """Log lines of the HTTP libraries written in this context are masked with `redactor`."""
    token = _current.set(redactor)
    try:
        yield
    finally:
        _current.reset(token)


def current_redactor() -> Redactor | None:
    """The redactor made current by `masking`, if any (for what else records a request)."""
    return _current.get()
