"""Opaque, prefixed public ids (API.md: wf_, snap_, run_, file_)."""

from __future__ import annotations

import hashlib
import re
import uuid

WORKFLOW = "wf"
SNAPSHOT = "snap"
RUN = "run"
FILE = "file"

_ID_RE = re.compile(r"^(wf|snap|run|file)_[0-9a-f]{24,32}$")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def derived_id(prefix: str, *parts: str) -> str:
    """A stable id derived from its parts: idempotent operations reuse it on replay."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"{prefix}_{digest}"


def is_valid(prefix: str, value: str) -> bool:
    match = _ID_RE.match(value)
    return match is not None and match.group(1) == prefix
