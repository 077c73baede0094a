"""Retry bookkeeping of the run workflow: the run's attempts, which steps belong to which, and
the outcomes a reset execution reused rather than produced again. Used inside the workflow.

A retry from the failure point resets the run (a new Temporal execution, same workflow id)
and sends it the `retry` signal with the attempts so far; a retry from the start is a fresh
execution whose input carries the same request. An operator's reset in the Temporal UI sends
nothing: the run records it as an attempt of its own when it ends.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.events import Events
    from workflows.models import (
        AttemptRecord,
        KeptStep,
        RetryRequest,
        RunState,
        RunStatus,
        StepState,
    )

# How long a reset execution waits, before it ends, for the retry bookkeeping signal.
RETRY_SIGNAL_WAIT = timedelta(seconds=10)


class Attempts:
    def __init__(self, state: RunState, steps: Mapping[str, StepState], events: Events) -> None:
        self._state = state
        self._steps = steps
        self._events = events
        # Nodes whose outcome a batch took from the history of the execution a reset replaced
        # (insertion-ordered, used as a set): their steps keep the attempt that produced them.
        self.reused: dict[str, None] = {}
        # A retry from a node: nodes whose recorded outcome the attempt keeps (they are not
        # executed again; see RunWorkflow._keep_outcomes). Insertion-ordered, used as a set.
        self.kept: dict[str, None] = {}
        # The retry request this execution applied (its input's or its `retry` signal's).
        self.request: RetryRequest | None = None
        # Runs started before recording: records a retry kept for the steps its reset task
        # computed again (RetryRequest.kept_steps, which retries no longer send).
        self._kept: dict[str, KeptStep] = {}

    def begin(self, retry: RetryRequest | None, now: datetime) -> None:
        """The run's first workflow task: the attempt it is."""
        if retry is not None:  # a retry from the start: a new execution, same run id
            self.apply(retry)
        elif not self._state.attempts:
            # (A reset to the very first task delivers the `retry` signal before this runs.)
            self._state.attempts = [
                AttemptRecord(
                    attempt=1,
                    temporal_run_id=workflow.info().first_execution_run_id,
                    started_at=now,
                )
            ]

    def receive(self, request: RetryRequest) -> None:
        """The `retry` signal; a request already applied is ignored."""
        if any(a.request_id == request.request_id for a in self._state.attempts):
            return
        self.apply(request)

    def apply(self, request: RetryRequest) -> None:
        self.request = request
        self._state.attempt = request.attempt
        self._state.attempts = [
            *request.previous_attempts,
            AttemptRecord(
                attempt=request.attempt,
                temporal_run_id=workflow.info().run_id,
                started_at=workflow.now(),
                resumed_from_node_id=request.resumed_from_node_id,
                request_id=request.request_id,
            ),
        ]
        if request.reset_event_id is not None:
            # Steps this execution produced anew belong to the new attempt (the signal may
            # arrive after the reset task); outcomes reused from before the reset keep theirs.
            for step in self._steps.values():
                started = step.started_event_id
                if (
                    started is not None
                    and started >= request.reset_event_id
                    and step.node_id not in self.reused
                ):
                    step.attempt = request.attempt
        self._kept = {kept.node_id: kept for kept in request.kept_steps}
        for node_id in self._kept:
            if node_id in self._steps:
                self.keep_record(self._steps[node_id])
        self._events.emit("run.retried")

    def keep_record(self, step: StepState) -> None:
        """Runs started before recording: a step the reset task computed again reads as the
        retry's signal recorded it (replays of those runs must rebuild what they showed)."""
        kept = self._kept.get(step.node_id)
        if kept is None or kept.status != step.status:
            return
        step.attempt = kept.attempt
        step.started_at, step.completed_at = kept.started_at, kept.completed_at
        step.duration_ms = kept.duration_ms
        step.started_event_id, step.finished_event_id = (
            kept.started_event_id,
            kept.finished_event_id,
        )

    async def settle(self) -> None:
        """Before the run ends. After a reset the new execution has a new run id: wait
        (bounded) for the API's `retry` signal; a reset made by an operator in the Temporal UI
        sends none, so it is recorded as an attempt of its own."""
        attempts = self._state.attempts
        run_id = workflow.info().run_id
        if not attempts or attempts[-1].temporal_run_id == run_id:
            return
        try:
            await workflow.wait_condition(
                lambda: self._state.attempts[-1].temporal_run_id == run_id,
                timeout=RETRY_SIGNAL_WAIT,
            )
        except builtins.TimeoutError:
            previous = self._state.attempts
            self._state.attempt = previous[-1].attempt + 1
            self._state.attempts = [
                *previous,
                AttemptRecord(
                    attempt=self._state.attempt,
                    temporal_run_id=run_id,
                    started_at=workflow.now(),
                ),
            ]

    def end(self, status: RunStatus, at: datetime) -> None:
        """The run ended: so did its current attempt."""
        if self._state.attempts:
            self._state.attempts[-1].ended_at = at
            self._state.attempts[-1].status = status
