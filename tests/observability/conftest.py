"""The log lines this process writes, as runlane/logs.py formats them: JSON objects."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runlane.logs import ContextFilter, JsonFormatter

JsonLines = Callable[[], list[dict[str, Any]]]
UVICORN_LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error")


@pytest.fixture
def json_lines() -> Iterator[JsonLines]:
    """Every line logged (DEBUG and up, every logger) while the test runs, parsed; each must
    be one JSON object."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # Another test's uvicorn.Config may have applied uvicorn's own logging configuration, which
    # gives its loggers handlers of their own and stops them propagating: undo that here.
    uvicorn_loggers = [logging.getLogger(name) for name in UVICORN_LOGGERS]
    saved = [(lg, lg.propagate, lg.disabled, lg.level) for lg in uvicorn_loggers]
    for logger in uvicorn_loggers:
        logger.propagate, logger.disabled = True, False
        logger.setLevel(logging.NOTSET)

    def lines() -> list[dict[str, Any]]:
        handler.flush()
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for logger, propagate, disabled, logger_level in saved:
            logger.propagate, logger.disabled = propagate, disabled
            logger.setLevel(logger_level)
