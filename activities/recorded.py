"""Outcomes a run recorded before a reset, for the reset task's batches to take back.

A reset (retry from the failure point, or an operator's reset in the Temporal UI) starts a new
execution that replays history up to the reset point and then executes the reset task again.
Local activities are written to history when their workflow task completes, so the batches of
that task are not in the new execution's history and would run again. Instead, their activity
reads the outcomes from the history of the execution the reset replaced, where that same task
recorded them, so the steps keep their outputs, times and attempt: History stays the source of
truth across resets too. Error outcomes are left out: the failed node runs again.

Only executions made by a reset look anything up (their run id differs from the first run id of
their chain), and only for batches scheduled in the reset task.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client

from activities.models import NodeOutcome, PureBatchInput, PureBatchResult

LOCAL_ACTIVITY_MARKER = "core_local_activity"
_RESET = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
_CACHED_ORIGINS = 1024


@dataclass(frozen=True)
class ResetOrigin:
    base_run_id: str
    # WorkflowTaskStarted event id of the reset task in the base execution and in this one.
    base_task_event_id: int
    task_event_id: int


class RecordedOutcomes:
    def __init__(self, client: Client) -> None:
        self._client = client
        # Per run id: where its reset came from. A run id's reset never changes (a later reset
        # makes a new run id), so entries stay right; the cache only saves history reads.
        self._origins: OrderedDict[str, ResetOrigin | None] = OrderedDict()

    async def before_reset(self, batch: PureBatchInput, activity_id: str) -> dict[str, NodeOutcome]:
        """The outcomes, by node id, that the batch `activity_id` recorded in the execution a
        reset replaced, when `batch` runs in the reset task; else nothing."""
        if (
            not batch.take_back
            or not batch.temporal_run_id
            or batch.temporal_run_id == batch.first_execution_run_id
        ):
            return {}
        origin = await self._origin(batch.run_id, batch.temporal_run_id)
        if origin is None or origin.task_event_id != batch.task_event_id:
            return {}
        recorded = await self._recorded_result(batch.run_id, origin, activity_id)
        if recorded is None:
            return {}
        return {
            outcome.node_id: outcome.model_copy(update={"reused": True})
            for outcome in recorded.outcomes
            if outcome.status != "error"
        }

    async def _origin(self, workflow_id: str, run_id: str) -> ResetOrigin | None:
        if run_id in self._origins:
            self._origins.move_to_end(run_id)
            return self._origins[run_id]
        origin: ResetOrigin | None = None
        reset: tuple[str, int] | None = None
        handle = self._client.get_workflow_handle(workflow_id, run_id=run_id)
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failed = event.workflow_task_failed_event_attributes
                if failed.cause == _RESET:
                    reset = (failed.base_run_id, failed.started_event_id)
                    origin = None
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and reset:
                if origin is None:  # the first task after the (last) reset
                    origin = ResetOrigin(reset[0], reset[1], event.event_id)
        self._origins[run_id] = origin
        if len(self._origins) > _CACHED_ORIGINS:
            self._origins.popitem(last=False)
        return origin

    async def _recorded_result(
        self, workflow_id: str, origin: ResetOrigin, activity_id: str
    ) -> PureBatchResult | None:
        handle = self._client.get_workflow_handle(workflow_id, run_id=origin.base_run_id)
        async for event in handle.fetch_history_events():
            if (
                event.event_id <= origin.base_task_event_id
                or event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED
            ):
                continue
            marker = event.marker_recorded_event_attributes
            if marker.marker_name != LOCAL_ACTIVITY_MARKER or "result" not in marker.details:
                continue
            [data] = marker.details["data"].payloads
            if json.loads(data.data).get("activity_id") != activity_id:
                continue
            [result] = await self._client.data_converter.decode(
                marker.details["result"].payloads, [PureBatchResult]
            )
            return result if isinstance(result, PureBatchResult) else None
        return None
