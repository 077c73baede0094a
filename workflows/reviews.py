"""Human review in the run workflow: the nodes waiting for a decision, what their reviewers
see, and the decisions the `review` signal brought. Used inside the workflow.

Decisions arrive only as signals, never updates: an update runs in a speculative workflow task,
which Temporal writes to history in one batch with what it scheduled, so no reset could target
it and a retry after a review would be impossible. The API answers "not waiting" synchronously
from the run's state and a slot per decision instead (api/routes/reviews.py).

A node may need several approvals (`approvals_required`, distinct reviewers): approvals are
counted in the order their signals arrive, the last required one completes the node, one
reject rejects it. An approval whose `data` fails the node's `data_schema` is ignored and
logged. The check runs here, in the signal handler, with jsonschema: it is deterministic, and
the API checks the same data with the same function before it sends a decision (422), so only
signals sent around the API (an operator's) can fail it. (A jsonschema upgrade that changed a
verdict on data an operator sent could change how an old run replays; validating in a local
activity would record the verdict but run signal handlers out of arrival order, which the
quorum's bookkeeping relies on.)

`escalate_after_s` is a durable timer started when the node begins to wait; when it fires
before a decision, the step and the pending review record `escalated_at` and the inbox counts
`escalate_to` among the assignees. Not behind a `workflow.patched` marker: whether a node
escalates is frozen in the run's input (its definition), and no run started before this code
can have such a node (the config refused unknown fields), so every earlier history replays
unchanged. A marker would also be wrong here: a prepared review starts waiting after a batch's
local activity, whose result can reach the workflow in a later task live than on replay, so
`patched` would be asked in another task on replay than the one holding its marker.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.control import HumanReviewConfig, review_data_problems
    from activities.models import NodeOutcome
    from runlane import templating
    from runlane.definition import Edge, Node
    from workflows.events import Events
    from workflows.models import (
        Approval,
        PendingReview,
        ReviewDecision,
        ReviewRecord,
        StepError,
    )
    from workflows.steps import NodeFailed, RunContext, ms
    from workflows.visibility import Visibility


class Reviews:
    def __init__(self, run: RunContext, visibility: Visibility, events: Events) -> None:
        self._input = run.input
        self._graph = run.graph
        self._state = run.state
        self._steps = run.steps
        self._outputs: Mapping[str, Any] = run.outputs
        self._clock = run.clock
        self._visibility = visibility
        self._events = events
        # The nodes waiting for a decision, in the order they began to wait.
        self.waiting: list[str] = []
        self._pending: dict[str, PendingReview] = {}
        self._decisions: dict[str, tuple[ReviewDecision, datetime]] = {}
        # Rendered payloads of reviews a batch prepared, waiting for their decision.
        self._prepared: dict[str, Any] = {}

    def pending(self) -> list[PendingReview]:
        return [self._pending[node_id] for node_id in self.waiting]

    def receive(self, decision: ReviewDecision) -> None:
        """The `review` signal: invalid or repeated decisions are ignored (a decision applies
        at most once per node)."""
        problem = self._problem(decision)
        if problem:
            workflow.logger.warning("review signal ignored: %s", problem)
            return
        node_id = decision.node_id
        config = self._config(node_id)
        if decision.decision == "approve" and config.approvals_required > 1:
            approval = Approval(
                reviewer=decision.reviewer,
                comment=decision.comment,
                data=decision.data,
                approved_at=workflow.now(),
            )
            pending = self._pending[node_id]
            pending.approvals.append(approval)
            self._steps[node_id].approvals.append(approval)
            if len(pending.approvals) < config.approvals_required:
                return
            # The node outputs the latest edit any approval carried (else the payload).
            edits = [a.data for a in pending.approvals if a.data is not None]
            decision = decision.model_copy(update={"data": edits[-1] if edits else None})
        self._decisions[node_id] = (decision, workflow.now())

    def _config(self, node_id: str) -> HumanReviewConfig:
        return HumanReviewConfig.model_validate(self._graph.nodes[node_id].config)

    def _problem(self, decision: ReviewDecision) -> str | None:
        node_id = decision.node_id
        if node_id not in self.waiting:
            return f"node '{node_id}' is not waiting for a review"
        if node_id in self._decisions:
            return f"node '{node_id}' already has a decision"
        if decision.decision != "approve":
            return None
        config = self._config(node_id)
        if decision.data is not None and config.data_schema is not None:
            problems = review_data_problems(config.data_schema, decision.data)
            if problems:
                return f"node '{node_id}': data fails data_schema: {'; '.join(problems[:5])}"
        if config.approvals_required > 1:
            if not decision.reviewer:
                return (
                    f"node '{node_id}' needs {config.approvals_required} approvals from "
                    "distinct reviewers: an approval must name its reviewer"
                )
            if any(a.reviewer == decision.reviewer for a in self._pending[node_id].approvals):
                return f"node '{node_id}' was already approved by {decision.reviewer!r}"
        return None

    def _pending_review(
        self, node: Node, config: HumanReviewConfig, payload: Any, since: datetime
    ) -> PendingReview:
        return PendingReview(
            node_id=node.id,
            label=node.label,
            instructions=config.instructions,
            payload=payload,
            waiting_since=since,
            data_schema=config.data_schema,
            assignees=list(config.assignees or []),
            approvals_required=config.approvals_required,
            escalate_to=list(config.escalate_to or []),
        )

    def is_prepared(self, node_id: str) -> bool:
        """A batch prepared this review: it waits for its decision already."""
        return node_id in self._prepared

    def prepare(self, outcome: NodeOutcome) -> None:
        """A review a batch prepared: it waits from now on, showing the recorded payload."""
        node = self._graph.nodes[outcome.node_id]
        config = HumanReviewConfig.model_validate(node.config)
        step = self._steps[node.id]
        step.status = "waiting_for_human"
        step.attempt = self._state.attempt
        step.started_at = self._clock.now()
        step.started_event_id = self._clock.task_event_id()
        step.output = outcome.output
        self._prepared[node.id] = outcome.output
        self._pending[node.id] = self._pending_review(
            node, config, outcome.output, self._clock.now()
        )
        self._begin_waiting(node.id)

    async def decision(self, node: Node) -> tuple[Any, list[Edge]]:
        """Waits for the node's decision (or its timeout's); returns the node's output and the
        edges it takes. A rejection without a `rejected` edge fails the node."""
        config = HumanReviewConfig.model_validate(node.config)
        step = self._steps[node.id]
        if node.id in self._prepared:
            payload = self._prepared[node.id]
        else:  # a run started before recording renders the payload here
            context = templating.TemplateContext(
                outputs={
                    k: v for k, v in self._outputs.items() if self._graph.is_ancestor(k, node.id)
                },
                run={"id": self._input.run_id, "workflow_id": self._input.workflow.workflow_id},
                vars=self._input.definition.vars,
            )
            payload = templating.render(config.payload, context)
            step.status = "waiting_for_human"
            step.output = payload
            self._pending[node.id] = self._pending_review(node, config, payload, workflow.now())
            self._begin_waiting(node.id)
            self._visibility.publish_details()
        # No `finally` here: on cache eviction the coroutine is closed outside the workflow's
        # event loop; a cancelled run's waits are closed by `end` instead.
        timeout = config.timeout_s
        # (A run that escalates has it in its frozen definition: see the module docstring.)
        escalates = config.escalate_after_s is not None and node.id not in self._decisions
        if escalates:
            timeout = await self._wait_to_escalate(node, config)
        try:
            if node.id not in self._decisions or not escalates:
                await workflow.wait_condition(lambda: node.id in self._decisions, timeout=timeout)
        except TimeoutError:
            self._decisions[node.id] = (
                ReviewDecision(
                    node_id=node.id,
                    decision=config.on_timeout or "reject",
                    reviewer="timeout",
                    comment=f"no decision within {config.timeout_s:g}s",
                ),
                workflow.now(),
            )
        self._pending.pop(node.id, None)
        self._prepared.pop(node.id, None)
        self._end_waiting(node.id)
        decision, decided_at = self._decisions[node.id]
        step.review = ReviewRecord(
            decision=decision.decision,
            reviewer=decision.reviewer,
            comment=decision.comment,
            decided_at=decided_at,
        )
        self._events.emit("review.decided", node.id)
        outgoing = self._graph.outgoing[node.id]
        if decision.decision == "approve":
            output = decision.data if decision.data is not None else payload
            return output, [edge for edge in outgoing if edge.branch is None]
        rejected = [edge for edge in outgoing if edge.branch == "rejected"]
        if not rejected:
            who = f" by {decision.reviewer}" if decision.reviewer else ""
            why = f": {decision.comment}" if decision.comment else ""
            raise NodeFailed(
                node.id, StepError(type="ReviewRejected", message=f"rejected{who}{why}")
            )
        return {"decision": "reject", "comment": decision.comment}, rejected

    async def _wait_to_escalate(self, node: Node, config: HumanReviewConfig) -> float | None:
        """Waits for a decision until `escalate_after_s` (a durable timer, so a worker restart
        does not lose it), then escalates; returns what is left of `timeout_s`."""
        assert config.escalate_after_s is not None
        try:
            await workflow.wait_condition(
                lambda: node.id in self._decisions,
                timeout=config.escalate_after_s,
                timeout_summary=f"Escalate {node.label or node.id}",
            )
        except TimeoutError:
            escalated_at = workflow.now()
            self._steps[node.id].escalated_at = escalated_at
            pending = self._pending.get(node.id)
            if pending is not None:
                pending.escalated_at = escalated_at
            self._events.emit("review.escalated", node.id)
            workflow.logger.info(
                "review %s escalated to %s", node.id, ", ".join(config.escalate_to or []) or "-"
            )
        if config.timeout_s is None:
            return None
        # Validation keeps escalate_after_s shorter than timeout_s.
        return config.timeout_s - config.escalate_after_s

    def end(self) -> None:
        """The run ended: nothing waits any more (a prepared review reads as cancelled)."""
        for node_id in list(self.waiting):
            step = self._steps[node_id]
            if step.status == "waiting_for_human":  # prepared, but the run ended first
                self._clock.close_step(step, "cancelled")
            self._end_waiting(node_id)

    def _begin_waiting(self, node_id: str) -> None:
        if not self.waiting:
            self._state.timing.human_waiting_started_at = self._clock.now()
        self.waiting.append(node_id)
        self._visibility.set_waiting(self.waiting)
        self._events.emit("review.requested", node_id)
        if self._state.status != "waiting_for_human":
            self._visibility.set_status("waiting_for_human")
            self._events.emit("run.waiting_for_human", node_id)

    def _end_waiting(self, node_id: str) -> None:
        if node_id in self.waiting:
            self.waiting.remove(node_id)
        timing = self._state.timing
        if not self.waiting and timing.human_waiting_started_at is not None:
            timing.accumulated_human_waiting_ms += ms(
                timing.human_waiting_started_at, self._clock.now()
            )
            timing.human_waiting_started_at = None
        self._visibility.set_waiting(self.waiting)
        if self._state.status == "waiting_for_human" and not self.waiting:
            self._visibility.set_status("running")
