"""The resources, mirroring the REST paths: ``client.workflows``, ``client.workflows.runs``,
``client.reviews``, ``client.files``. Each method builds its request in ``_requests`` and
hands it to the client's transport; the async classes are the same methods, awaited."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import runlane.client._requests as rq
from runlane.client._http import AsyncTransport, SyncTransport
from runlane.client._requests import (
    SETTLED_STATUSES,
    ConfigSource,
    Decision,
    Order,
    RetryFrom,
    RunStatus,
    TriggerType,
)
from runlane.client.errors import WaitTimeoutError
from runlane.client.events import RunStreamEvent
from runlane.client.models import (
    FileOut,
    PendingReviewOut,
    RetryPlanOut,
    RunOut,
    SnapshotOut,
    StepOut,
    ValidateResult,
    WorkflowOut,
)

# `runs.wait` polls the run (one short GET each time) rather than holding its event stream:
# a poll survives API restarts and proxies that cut long responses without reconnect logic,
# and the API's own stream polls just as often. Backoff from 0.2 s to 2 s keeps short runs
# quick to notice and long ones cheap.
WAIT_FIRST_POLL_S = 0.2
WAIT_MAX_POLL_S = 2.0


def _poll_delays() -> Iterator[float]:
    delay = WAIT_FIRST_POLL_S
    while True:
        yield delay
        delay = min(delay * 1.5, WAIT_MAX_POLL_S)


def _wait_timed_out(run: RunOut, timeout: float) -> WaitTimeoutError:
    return WaitTimeoutError(f"Run {run.id} is still {run.status} after {timeout:g} s.", run)


# ======================================================================= sync


class Runs:
    """``/v1/workflows/runs``: start, read, follow and act on runs."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport

    def create(
        self,
        workflow_id: str,
        *,
        documents: Mapping[str, Path | bytes | Mapping[str, Any] | FileOut] | None = None,
        json_inputs: Mapping[str, Any] | None = None,
        text_inputs: Mapping[str, str] | None = None,
        config_source: ConfigSource | None = None,
        command_id: str | None = None,
    ) -> RunOut:
        """Start a run. ``documents`` per start node: a ``Path`` or ``bytes`` (sent inline,
        base64), ``{"file_id": ...}`` or a :class:`FileOut` from ``files.upload``. Without a
        ``command_id`` one is generated, so retries of this call start one run."""
        return self._t.send(
            rq.start_run(
                workflow_id,
                documents=documents,
                json_inputs=json_inputs,
                text_inputs=text_inputs,
                config_source=config_source,
                command_id=command_id,
            )
        )

    def get(self, run_id: str) -> RunOut:
        return self._t.send(rq.get_run(run_id))

    def list(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | None = None,
        trigger_type: TriggerType | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        parent_run_id: str | None = None,
        schedule_id: str | None = None,
        limit: int | None = None,
        order: Order | None = None,
    ) -> Iterator[RunOut]:
        """Every matching run, newest first (``order="asc"``: oldest first), fetching the
        next page (of ``limit``) as the iteration reaches it."""
        return self._t.paginate(
            lambda cursor: rq.list_runs(
                workflow_id=workflow_id,
                status=status,
                trigger_type=trigger_type,
                created_after=created_after,
                created_before=created_before,
                parent_run_id=parent_run_id,
                schedule_id=schedule_id,
                limit=limit,
                order=order,
                cursor=cursor,
            )
        )

    def steps(self, run_id: str) -> builtins.list[StepOut]:
        """The run's steps, one per node, in topological order."""
        return self._t.send(rq.run_steps(run_id))

    def step(self, run_id: str, node_id: str) -> StepOut:
        return self._t.send(rq.run_step(run_id, node_id))

    def events(self, run_id: str) -> Iterator[RunStreamEvent]:
        """The run's progress as typed events (:class:`RunEvent`, :class:`StepEvent`), up to
        and including :class:`EndEvent`."""
        return self._t.events(rq.run_events(run_id))

    def wait(self, run_id: str, *, timeout: float | None = None) -> RunOut:
        """The run once it ended or waits for a human (``waiting_for_human``); raises
        :class:`WaitTimeoutError` (with ``.run``) after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for delay in _poll_delays():
            run = self.get(run_id)
            if run.status in SETTLED_STATUSES:
                return run
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _wait_timed_out(run, timeout or 0)
                delay = min(delay, left)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def cancel(self, run_id: str, *, command_id: str | None = None) -> RunOut:
        return self._t.send(rq.cancel_run(run_id, command_id))

    def restart(
        self,
        run_id: str,
        *,
        config_source: ConfigSource | None = None,
        command_id: str | None = None,
    ) -> RunOut:
        """A new run with the source's inputs and the current published (or draft) config."""
        return self._t.send(rq.restart_run(run_id, config_source, command_id))

    def rerun(self, run_id: str, *, command_id: str | None = None) -> RunOut:
        """A new run with the source's inputs and the snapshot the source ran."""
        return self._t.send(rq.rerun_run(run_id, command_id))

    def retry(
        self,
        run_id: str,
        *,
        from_: RetryFrom | None = None,
        node_id: str | None = None,
        plan_id: str | None = None,
        documents: Mapping[str, Path | bytes | Mapping[str, Any] | FileOut] | None = None,
        json_inputs: Mapping[str, Any] | None = None,
        text_inputs: Mapping[str, str] | None = None,
        command_id: str | None = None,
    ) -> RunOut:
        """The same run again: from its failure point (default), ``from_="start"`` or
        ``from_="node"`` with ``node_id``, or exactly as a plan said (``plan_id``)."""
        return self._t.send(
            rq.retry_run(
                run_id,
                from_=from_,
                node_id=node_id,
                plan_id=plan_id,
                documents=documents,
                json_inputs=json_inputs,
                text_inputs=text_inputs,
                command_id=command_id,
            )
        )

    def retry_plan(
        self, run_id: str, *, from_: RetryFrom | None = None, node_id: str | None = None
    ) -> RetryPlanOut:
        """What a retry would reuse and run again; changes nothing."""
        return self._t.send(rq.retry_plan(run_id, from_, node_id))


class Workflows:
    """``/v1/workflows``: definitions, drafts and published snapshots."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self.runs = Runs(transport)

    def create(
        self, *, name: str, definition: Mapping[str, Any], description: str | None = None
    ) -> WorkflowOut:
        return self._t.send(rq.create_workflow(name, definition, description))

    def get(self, workflow_id: str) -> WorkflowOut:
        return self._t.send(rq.get_workflow(workflow_id))

    def list(
        self, *, limit: int | None = None, order: Order | None = None
    ) -> Iterator[WorkflowOut]:
        return self._t.paginate(lambda cursor: rq.list_workflows(limit, order, cursor))

    def update_draft(self, workflow_id: str, *, definition: Mapping[str, Any]) -> WorkflowOut:
        return self._t.send(rq.update_draft(workflow_id, definition))

    def publish(self, workflow_id: str) -> SnapshotOut:
        """Freeze the draft as the next snapshot, made the published one."""
        return self._t.send(rq.publish_workflow(workflow_id))

    def snapshots(
        self, workflow_id: str, *, limit: int | None = None, order: Order | None = None
    ) -> Iterator[SnapshotOut]:
        return self._t.paginate(lambda cursor: rq.list_snapshots(workflow_id, limit, order, cursor))

    def validate(self, *, definition: Mapping[str, Any]) -> ValidateResult:
        """Check a definition without saving it: ``valid`` and every problem."""
        return self._t.send(rq.validate_definition(definition))


class Reviews:
    """Human review: the inbox across runs and decisions."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport

    def list(
        self, *, assignee: str | None = None, limit: int | None = None, order: Order | None = None
    ) -> Iterator[PendingReviewOut]:
        """Pending reviews, newest run first (``limit`` counts runs per page)."""
        return self._t.paginate(lambda cursor: rq.list_reviews(assignee, limit, order, cursor))

    def decide(
        self,
        run_id: str,
        node_id: str,
        *,
        decision: Decision,
        data: Mapping[str, Any] | None = None,
        comment: str | None = None,
        reviewer: str | None = None,
        command_id: str | None = None,
    ) -> RunOut:
        return self._t.send(
            rq.decide_review(
                run_id,
                node_id,
                decision=decision,
                data=data,
                comment=comment,
                reviewer=reviewer,
                command_id=command_id,
            )
        )


class Files:
    """Documents stored once and referenced by runs (``{"file_id": ...}``)."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport

    def upload(
        self, file: Path | bytes, *, filename: str | None = None, mime_type: str | None = None
    ) -> FileOut:
        """Store a document; its MIME type from ``mime_type``, else from its name."""
        return self._t.send(rq.upload_file(file, filename, mime_type))

    def get(self, file_id: str) -> FileOut:
        return self._t.send(rq.get_file(file_id))

    def content(self, file_id: str) -> bytes:
        return self._t.send(rq.file_content(file_id))


# ======================================================================= async


class AsyncRuns:
    """``/v1/workflows/runs``, awaited; see :class:`Runs`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(
        self,
        workflow_id: str,
        *,
        documents: Mapping[str, Path | bytes | Mapping[str, Any] | FileOut] | None = None,
        json_inputs: Mapping[str, Any] | None = None,
        text_inputs: Mapping[str, str] | None = None,
        config_source: ConfigSource | None = None,
        command_id: str | None = None,
    ) -> RunOut:
        return await self._t.send(
            rq.start_run(
                workflow_id,
                documents=documents,
                json_inputs=json_inputs,
                text_inputs=text_inputs,
                config_source=config_source,
                command_id=command_id,
            )
        )

    async def get(self, run_id: str) -> RunOut:
        return await self._t.send(rq.get_run(run_id))

    def list(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | None = None,
        trigger_type: TriggerType | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        parent_run_id: str | None = None,
        schedule_id: str | None = None,
        limit: int | None = None,
        order: Order | None = None,
    ) -> AsyncIterator[RunOut]:
        return self._t.paginate(
            lambda cursor: rq.list_runs(
                workflow_id=workflow_id,
                status=status,
                trigger_type=trigger_type,
                created_after=created_after,
                created_before=created_before,
                parent_run_id=parent_run_id,
                schedule_id=schedule_id,
                limit=limit,
                order=order,
                cursor=cursor,
            )
        )

    async def steps(self, run_id: str) -> builtins.list[StepOut]:
        return await self._t.send(rq.run_steps(run_id))

    async def step(self, run_id: str, node_id: str) -> StepOut:
        return await self._t.send(rq.run_step(run_id, node_id))

    def events(self, run_id: str) -> AsyncIterator[RunStreamEvent]:
        return self._t.events(rq.run_events(run_id))

    async def wait(self, run_id: str, *, timeout: float | None = None) -> RunOut:
        deadline = None if timeout is None else time.monotonic() + timeout
        for delay in _poll_delays():
            run = await self.get(run_id)
            if run.status in SETTLED_STATUSES:
                return run
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _wait_timed_out(run, timeout or 0)
                delay = min(delay, left)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def cancel(self, run_id: str, *, command_id: str | None = None) -> RunOut:
        return await self._t.send(rq.cancel_run(run_id, command_id))

    async def restart(
        self,
        run_id: str,
        *,
        config_source: ConfigSource | None = None,
        command_id: str | None = None,
    ) -> RunOut:
        return await self._t.send(rq.restart_run(run_id, config_source, command_id))

    async def rerun(self, run_id: str, *, command_id: str | None = None) -> RunOut:
        return await self._t.send(rq.rerun_run(run_id, command_id))

    async def retry(
        self,
        run_id: str,
        *,
        from_: RetryFrom | None = None,
        node_id: str | None = None,
        plan_id: str | None = None,
        documents: Mapping[str, Path | bytes | Mapping[str, Any] | FileOut] | None = None,
        json_inputs: Mapping[str, Any] | None = None,
        text_inputs: Mapping[str, str] | None = None,
        command_id: str | None = None,
    ) -> RunOut:
        return await self._t.send(
            rq.retry_run(
                run_id,
                from_=from_,
                node_id=node_id,
                plan_id=plan_id,
                documents=documents,
                json_inputs=json_inputs,
                text_inputs=text_inputs,
                command_id=command_id,
            )
        )

    async def retry_plan(
        self, run_id: str, *, from_: RetryFrom | None = None, node_id: str | None = None
    ) -> RetryPlanOut:
        return await self._t.send(rq.retry_plan(run_id, from_, node_id))


class AsyncWorkflows:
    """``/v1/workflows``, awaited; see :class:`Workflows`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self.runs = AsyncRuns(transport)

    async def create(
        self, *, name: str, definition: Mapping[str, Any], description: str | None = None
    ) -> WorkflowOut:
        return await self._t.send(rq.create_workflow(name, definition, description))

    async def get(self, workflow_id: str) -> WorkflowOut:
        return await self._t.send(rq.get_workflow(workflow_id))

    def list(
        self, *, limit: int | None = None, order: Order | None = None
    ) -> AsyncIterator[WorkflowOut]:
        return self._t.paginate(lambda cursor: rq.list_workflows(limit, order, cursor))

    async def update_draft(self, workflow_id: str, *, definition: Mapping[str, Any]) -> WorkflowOut:
        return await self._t.send(rq.update_draft(workflow_id, definition))

    async def publish(self, workflow_id: str) -> SnapshotOut:
        return await self._t.send(rq.publish_workflow(workflow_id))

    def snapshots(
        self, workflow_id: str, *, limit: int | None = None, order: Order | None = None
    ) -> AsyncIterator[SnapshotOut]:
        return self._t.paginate(lambda cursor: rq.list_snapshots(workflow_id, limit, order, cursor))

    async def validate(self, *, definition: Mapping[str, Any]) -> ValidateResult:
        return await self._t.send(rq.validate_definition(definition))


class AsyncReviews:
    """Human review, awaited; see :class:`Reviews`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    def list(
        self, *, assignee: str | None = None, limit: int | None = None, order: Order | None = None
    ) -> AsyncIterator[PendingReviewOut]:
        return self._t.paginate(lambda cursor: rq.list_reviews(assignee, limit, order, cursor))

    async def decide(
        self,
        run_id: str,
        node_id: str,
        *,
        decision: Decision,
        data: Mapping[str, Any] | None = None,
        comment: str | None = None,
        reviewer: str | None = None,
        command_id: str | None = None,
    ) -> RunOut:
        return await self._t.send(
            rq.decide_review(
                run_id,
                node_id,
                decision=decision,
                data=data,
                comment=comment,
                reviewer=reviewer,
                command_id=command_id,
            )
        )


class AsyncFiles:
    """Documents, awaited; see :class:`Files`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def upload(
        self, file: Path | bytes, *, filename: str | None = None, mime_type: str | None = None
    ) -> FileOut:
        return await self._t.send(rq.upload_file(file, filename, mime_type))

    async def get(self, file_id: str) -> FileOut:
        return await self._t.send(rq.get_file(file_id))

    async def content(self, file_id: str) -> bytes:
        return await self._t.send(rq.file_content(file_id))
