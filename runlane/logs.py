"""Log lines as JSON, one object a line, carrying `run_id`, `node_id` and `trace_id` where they
apply: the worker (`configure_logging()`) and the API (uvicorn's `--log-config
runlane/logging.json`, which `make run` and the image pass) use the same configuration.

Where the fields come from:
- `run_id` / `node_id`: bound with `log_context()` for the length of a node's activity
  (activities/log_context.py binds them from its input); a workflow's own lines
  (`workflow.logger`) carry its id, which is the run's id, in Temporal's `temporal_workflow`.
- `trace_id` / `span_id`: the current OpenTelemetry span's, when tracing is on
  (runlane/telemetry.py) and a span is current.

What is logged is the message: Runlane's own messages never hold a secret's value or a
document's bytes, and the HTTP libraries' lines are masked while a node holds secrets
(runlane/redaction.py). No request or node data is added here.
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

CONFIG_PATH = Path(__file__).with_name("logging.json")
# The run workflow's type: its workflow id is the run's id (runs/starter.py).
RUN_WORKFLOW = "RunWorkflow"
# Activities of the workflow's own machinery are named `runlane.*`; node activities are named
# by their node type and have the node's id as their activity id (workflows/run_workflow.py).
_INTERNAL_ACTIVITY_PREFIX = "runlane."

_run_id: ContextVar[str | None] = ContextVar("runlane_log_run_id", default=None)
_node_id: ContextVar[str | None] = ContextVar("runlane_log_node_id", default=None)


@contextmanager
def log_context(*, run_id: str | None, node_id: str | None = None) -> Iterator[None]:
    """Lines logged in this context (this task and those it starts) carry these ids."""
    run_token = _run_id.set(run_id)
    node_token = _node_id.set(node_id)
    try:
        yield
    finally:
        _node_id.reset(node_token)
        _run_id.reset(run_token)


class ContextFilter(logging.Filter):
    """Adds `run_id`, `node_id`, `trace_id` and `span_id` to a record where they apply."""

    def filter(self, record: logging.LogRecord) -> bool:
        run_id = _run_id.get()
        node_id = _node_id.get()
        if run_id is None:
            run_id, node_id = _temporal_ids(record)
        if run_id is not None and not hasattr(record, "run_id"):
            record.run_id = run_id
        if node_id is not None and not hasattr(record, "node_id"):
            record.node_id = node_id
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def _temporal_ids(record: logging.LogRecord) -> tuple[str | None, str | None]:
    """Ids from the Temporal SDK's extras: `workflow.logger` lines carry `temporal_workflow`,
    `activity.logger` lines (the SDK's own too, such as an activity's failure, logged after
    the activity returned) `temporal_activity`."""
    workflow = getattr(record, "temporal_workflow", None)
    if isinstance(workflow, dict) and workflow.get("workflow_type") == RUN_WORKFLOW:
        return workflow.get("workflow_id"), None
    task = getattr(record, "temporal_activity", None)
    if isinstance(task, dict) and task.get("workflow_type") == RUN_WORKFLOW:
        node_activity = not str(task.get("activity_type", "")).startswith(_INTERNAL_ACTIVITY_PREFIX)
        return task.get("workflow_id"), task.get("activity_id") if node_activity else None
    return None, None


class JsonFormatter(_JsonFormatter):
    """`{"time", "level", "logger", "message", ...}` plus what the record carries (the ids
    above, `exc_info` as text)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", ["levelname", "name", "message"])
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        # uvicorn's copy of each message with terminal colours in it.
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "color_message"])
        super().__init__(**kwargs)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """The dictConfig of runlane/logging.json (the one file uvicorn reads too)."""
    config: dict[str, Any] = json.loads(CONFIG_PATH.read_text())
    config["root"]["level"] = level
    return config


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for this process (worker.py; the API gets the same from uvicorn)."""
    logging.config.dictConfig(logging_config(level))
