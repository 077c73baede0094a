"""The one command protocol every write that starts work follows (API.md "Idempotency").

Same `command_id`, operation and target: the first call's result, nothing new enqueued
(`replayed`, 200). Same key with another body: `InvalidInput`. Same key for another operation
or target: `Conflict`. Records live in the relational store (Temporal's id policies cannot
compare bodies) and are never purged, so they outlive Temporal's retention of the runs they name.

Every command goes through `CommandLog.execute` in the same four steps:

1. A command seen before whose effect shows on its target is a replay: answered, nothing done.
2. `prepare` checks the request against the target's current state and builds what the effect
   needs; it raises before anything is recorded, so a refused command leaves nothing behind.
3. The key is claimed (a row under a unique key decides races between concurrent callers).
4. `perform` applies the effect, unless a concurrent identical call already has.

A replay whose effect does not show (the first call was lost between its claim and its effect)
prepares and performs it again: claiming a key never stands in for doing the work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from runlane.errors import Conflict, InvalidInput
from store.idempotency import IdempotencyRecord, IdempotencyRepository

Prepared = TypeVar("Prepared")

# How long a replayed retry waits for the first call's effect to show before
# concluding that the first call was lost before it (and applying it itself).
FIRST_CALL_GRACE_S = 5.0


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


@dataclass(frozen=True)
class Executed:
    """`result_id` is what the command produced (a run id); `replayed` answers 200."""

    result_id: str
    replayed: bool


@dataclass(frozen=True)
class Steps(Generic[Prepared]):
    """How one kind of command takes effect.

    `took_effect(result_id)`: whether the effect of an earlier call shows on the target.
    `prepare()`: validate against the current state (raising domain errors) and build what
    `perform(prepared, result_id)` needs. `result_id` proposes the id a first call produces.
    """

    result_id: str
    took_effect: Callable[[str], Awaitable[bool]]
    prepare: Callable[[], Awaitable[Prepared]]
    perform: Callable[[Prepared, str], Awaitable[None]]


class CommandLog:
    def __init__(self, repo: IdempotencyRepository) -> None:
        self._repo = repo

    async def execute(self, command: Command, steps: Steps[Prepared]) -> Executed:
        previous = await self._previous(command)
        if previous is not None and await steps.took_effect(previous):
            return Executed(previous, replayed=True)
        prepared = await steps.prepare()
        result_id, replayed = await self._claim(command, previous or steps.result_id)
        if replayed and await steps.took_effect(result_id):
            return Executed(result_id, replayed=True)
        await steps.perform(prepared, result_id)
        return Executed(result_id, replayed=replayed)

    async def take_slot(self, org: str, *, slot: str, target: str, holder: str) -> bool:
        """At most one holder per slot, even under concurrent requests (a row under a unique
        key); the same holder may take it again (its replay). For effects Temporal cannot
        deduplicate itself: resets (one per attempt). (Reviewers' decisions have a record of
        their own, which also holds them until delivered: store/decisions.py.)"""
        record, created = await self._repo.claim(
            org,
            command_id=f"runlane:{slot}",
            operation="slot",
            target=target,
            body_hash=holder,
            result_id=target,
        )
        return created or record.body_hash == holder

    async def release_slot(self, org: str, *, slot: str, holder: str) -> None:
        """Give `slot` up again, if `holder` still holds it: only when its effect was refused
        outright and nothing happened (an effect of unknown outcome keeps its slot, so that
        the holder's replay, and nobody else, may finish it)."""
        await self._repo.release(org, command_id=f"runlane:{slot}", body_hash=holder)

    async def slot_holder(self, org: str, *, slot: str) -> str | None:
        """Who holds `slot` (see `take_slot`), or None while nobody does."""
        record = await self._repo.get(org, f"runlane:{slot}")
        return record.body_hash if record is not None else None

    async def _previous(self, command: Command) -> str | None:
        if command.command_id is None:
            return None
        record = await self._repo.get(command.organization_id, command.command_id)
        if record is None:
            return None
        _check(record, command)
        return record.result_id

    async def _claim(self, command: Command, result_id: str) -> tuple[str, bool]:
        if command.command_id is None:
            return result_id, False
        record, created = await self._repo.claim(
            command.organization_id,
            command_id=command.command_id,
            operation=command.operation,
            target=command.target,
            body_hash=command.body_hash,
            result_id=result_id,
        )
        _check(record, command)
        return record.result_id, not created


def _check(record: IdempotencyRecord, command: Command) -> None:
    if record.operation != command.operation or record.target != command.target:
        raise Conflict(
            "command_id_reused",
            f"command_id '{command.command_id}' was already used for {record.operation} "
            f"on {record.target}; use a new command_id.",
        )
    if record.body_hash != command.body_hash:
        raise InvalidInput(
            "command_id_body_mismatch",
            f"command_id '{command.command_id}' was already used with a different body.",
        )
