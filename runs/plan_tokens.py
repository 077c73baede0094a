"""Plan tokens: every retry plan carries a `plan_id`, and a retry given one does exactly what
that plan said, or refuses with `409 plan_stale` when the run changed since.

A token is self-contained, so nothing is stored per plan: it names the kind of retry it planned
(`from`, `node_id`) and a digest of the run as the plan saw it (its Temporal execution, attempt
and status: anything that changes a plan changes one of them). A retry recomputes the plan for
the run as it is now and compares digests. A forged token only names a retry its caller could
ask for directly, so the digest needs no key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from runlane.errors import Conflict, invalid
from runs.retry_plan import RetryFrom
from workflows.models import RunState

_PREFIX = "plan_"
_FROM: tuple[RetryFrom, ...] = ("failure_point", "start", "node")


@dataclass(frozen=True)
class PlannedRetry:
    """What a plan token names."""

    from_: RetryFrom
    node_id: str | None
    digest: str


def _digest(state: RunState, temporal_run_id: str | None, from_: str, node_id: str | None) -> str:
    seen = [state.run_id, temporal_run_id, state.attempt, state.status, from_, node_id]
    return hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:32]


def plan_id(
    state: RunState, temporal_run_id: str | None, from_: RetryFrom, node_id: str | None
) -> str:
    what = json.dumps({"from": from_, "node_id": node_id}, separators=(",", ":"))
    encoded = base64.urlsafe_b64encode(what.encode()).decode().rstrip("=")
    return f"{_PREFIX}{encoded}.{_digest(state, temporal_run_id, from_, node_id)}"


def parse(token: str) -> PlannedRetry:
    """The retry a token names; InvalidInput (naming `plan_id`) when it is not a plan token."""
    bad = invalid(
        "invalid_plan_id",
        "plan_id is not a plan token: use the plan_id of GET .../retry-plan as it was given",
        [{"loc": ["body", "plan_id"], "message": "not a plan token"}],
    )
    encoded, dot, digest = token.removeprefix(_PREFIX).partition(".")
    if not token.startswith(_PREFIX) or not dot or len(digest) != 32:
        raise bad
    try:
        what = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(what, dict) or what.get("from") not in _FROM:
        raise bad
    node_id = what.get("node_id")
    if not (node_id is None or isinstance(node_id, str)) or (what["from"] == "node") != (
        node_id is not None
    ):
        raise bad
    return PlannedRetry(from_=what["from"], node_id=node_id, digest=digest)


def check_fresh(planned: PlannedRetry, state: RunState, temporal_run_id: str | None) -> None:
    """Conflict `plan_stale` when the run changed since the plan was made."""
    if planned.digest != _digest(state, temporal_run_id, planned.from_, planned.node_id):
        raise Conflict(
            "plan_stale",
            f"Run {state.run_id} changed since this plan was made (it is now {state.status}, "
            f"attempt {state.attempt}); read a new plan with GET .../retry-plan and retry "
            "with its plan_id.",
        )
