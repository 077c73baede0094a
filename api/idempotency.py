"""One idempotency contract for every command (API.md "Idempotency").

Same `command_id`, operation and target: the first result, nothing new enqueued (200). Same key
with another body: 422. Same key for another operation or target: 409. Records live in the
relational store (Temporal's id policies cannot compare bodies) and are never purged, so they
outlive Temporal's retention of the runs they name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from api.errors import ApiError, conflict
from api.store.idempotency import IdempotencyRecord, IdempotencyRepository


@dataclass(frozen=True)
class Command:
    organization_id: str
    command_id: str | None
    operation: str
    target: str
    body: dict[str, Any]

    @property
    def body_hash(self) -> str:
        canonical = json.dumps(self.body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _check(record: IdempotencyRecord, command: Command) -> None:
    if record.operation != command.operation or record.target != command.target:
        raise conflict(
            "command_id_reused",
            f"command_id '{command.command_id}' was already used for {record.operation} "
            f"on {record.target}; use a new command_id.",
        )
    if record.body_hash != command.body_hash:
        raise ApiError(
            422,
            "command_id_body_mismatch",
            f"command_id '{command.command_id}' was already used with a different body.",
        )


async def previous_result(repo: IdempotencyRepository, command: Command) -> str | None:
    """The result id of an earlier identical command, if any (raises on a misused key)."""
    if command.command_id is None:
        return None
    record = await repo.get(command.organization_id, command.command_id)
    if record is None:
        return None
    _check(record, command)
    return record.result_id


async def claim(repo: IdempotencyRepository, command: Command, result_id: str) -> tuple[str, bool]:
    """Record the command; returns (result id, whether this call is a replay)."""
    if command.command_id is None:
        return result_id, False
    record, created = await repo.claim(
        command.organization_id,
        command_id=command.command_id,
        operation=command.operation,
        target=command.target,
        body_hash=command.body_hash,
        result_id=result_id,
    )
    _check(record, command)
    return record.result_id, not created


async def claim_slot(
    repo: IdempotencyRepository, org: str, *, slot: str, target: str, holder: str
) -> bool:
    """At most one holder per slot, even under concurrent requests (a row under a unique key);
    the same holder may claim it again (a retried request). Temporal cannot express these:
    it deduplicates neither resets nor signals."""
    record, created = await repo.claim(
        org,
        command_id=f"runlane:{slot}",
        operation="slot",
        target=target,
        body_hash=holder,
        result_id=target,
    )
    return created or record.body_hash == holder
