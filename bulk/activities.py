"""The activity that applies a bulk operation's action to one batch of its runs.

Each run's action is the run service's own (retry, cancel, restart, rerun): the run's rules
apply exactly as for the REST call, and a refusal (a run that may not be retried: Conflict
`retry_not_allowed`) is that run's outcome, `failed` with the error, never forced.

Idempotent across activity retries, twice over: a run whose outcome is already recorded is
not touched again, and each action carries a command_id derived from the operation and the
run (`command_id_for`), so an action whose outcome was lost with a dying worker replays to its
first result (a restart's new run is the same run) instead of acting twice.

What may pass (Temporal or the store out of reach) is raised, so Temporal retries the batch;
a domain error is an outcome; anything else unexpected is recorded as that run's failure
(`server_error`) rather than retried forever.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from temporalio import activity
from temporalio.service import RPCError

from bulk.models import APPLY_BATCH, BatchInput, BatchResult, BulkAction, Progress
from runlane.errors import Conflict, InvalidInput, NotFound, RunlaneError, TooLarge, Unavailable
from runs.models import RetrySpec
from runs.service import RunService
from store.bulk import BulkRepository, OutcomeRecord, Target

log = logging.getLogger("runlane.bulk")

# API.md's error `type` of each domain error an action may raise.
_ERROR_TYPES: tuple[tuple[type[RunlaneError], str], ...] = (
    (NotFound, "not_found"),
    (Conflict, "conflict"),
    (InvalidInput, "invalid_request"),
    (TooLarge, "payload_too_large"),
)


def command_id_for(bulk_id: str, run_id: str) -> str:
    """The command_id of one run's action in one operation: stable across activity retries,
    and never one a caller's own commands use (they do not start with `runlane:`)."""
    return f"runlane:bulk:{bulk_id}:{run_id}"


def error_of(err: RunlaneError) -> dict[str, str]:
    kind = next((name for cls, name in _ERROR_TYPES if isinstance(err, cls)), "server_error")
    return {"type": kind, "code": err.code, "message": err.message}


class BulkActivities:
    def __init__(self, runs: RunService, repo: BulkRepository) -> None:
        self._runs = runs
        self._repo = repo

    @activity.defn(name=APPLY_BATCH)
    async def apply_batch(self, batch: BatchInput) -> BatchResult:
        targets = await self._repo.targets(batch.bulk_id, offset=batch.offset, limit=batch.limit)
        recorded = await self._repo.outcomes_of(batch.bulk_id, [t.run_id for t in targets])
        outcomes = list(recorded.values())
        todo = [t for t in targets if t.run_id not in recorded]
        semaphore = asyncio.Semaphore(batch.concurrency)

        async def one(target: Target) -> None:
            async with semaphore:
                outcome = await self._apply(batch, target)
                await self._repo.record_outcome(batch.bulk_id, outcome)
                outcomes.append(outcome)
                activity.heartbeat(len(outcomes))

        await asyncio.gather(*(one(target) for target in todo))
        progress = Progress(done=len(outcomes))
        for outcome in outcomes:
            setattr(progress, outcome.status, getattr(progress, outcome.status) + 1)
        return BatchResult(progress=progress)

    async def _apply(self, batch: BatchInput, target: Target) -> OutcomeRecord:
        org, run_id = batch.organization_id, target.run_id
        command_id = command_id_for(batch.bulk_id, run_id)
        status, error, result_run_id = "succeeded", None, None
        try:
            result_run_id = await _act(self._runs, batch.action, org, run_id, command_id)
        except NotFound as err:
            status, error = "skipped", error_of(err)
        except Unavailable:
            raise  # Temporal out of reach: the batch is retried
        except RunlaneError as err:
            status, error = "failed", error_of(err)
        except (RPCError, OSError):
            raise  # the same, from below the run service; the store too
        except Exception as err:  # noqa: BLE001 - one run's bug must not stall the operation
            log.exception("bulk %s: %s of run %s failed", batch.bulk_id, batch.action, run_id)
            status = "failed"
            error = {
                "type": "server_error",
                "code": "action_failed",
                "message": f"The {batch.action} failed unexpectedly ({type(err).__name__}).",
            }
        return OutcomeRecord(
            run_id=run_id,
            seq=target.seq,
            status=status,
            error=error,
            result_run_id=result_run_id,
            finished_at=datetime.now(UTC),
        )


async def _act(
    runs: RunService, action: BulkAction, org: str, run_id: str, command_id: str
) -> str | None:
    """Apply `action` to the run; the new run's id for restart and rerun."""
    if action == "retry":
        await runs.retry(
            org, run_id, RetrySpec(), command_id=command_id, body={"from": "failure_point"}
        )
        return None
    if action == "cancel":
        await runs.cancel(org, run_id, command_id=command_id)
        return None
    if action == "restart":
        outcome = await runs.restart(org, run_id, command_id=command_id)
    else:
        outcome = await runs.rerun(org, run_id, command_id=command_id)
    return outcome.view.state.run_id
