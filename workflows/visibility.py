"""What operators see of a run outside the `state` query: its search attributes (status, the
nodes waiting for a review), which the API lists and filters by, and the Temporal UI's current
details (a table of every node's status). Used inside the run workflow."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from runlane import search_attributes
    from workflows.models import RunState, RunStatus, StepState

# Rows of the step table shown in the Temporal UI's current details (the `state` query has all).
_DETAILS_ROWS = 60


class Visibility:
    """Recorded runs write at most one search-attribute upsert per workflow task (at the
    checkpoint); runs started before recording upserted each change as it happened, and
    replay that way."""

    def __init__(
        self, state: RunState, steps: Mapping[str, StepState], *, once_per_task: bool
    ) -> None:
        self._state = state
        self._steps = steps
        self._once_per_task = once_per_task
        # Changes not written yet (once_per_task), by search attribute.
        self._unsent: dict[str, SearchAttributeUpdate] = {}

    def set_status(self, status: RunStatus) -> None:
        if self._state.status != status:
            self._state.status = status
            self._upsert(search_attributes.RUN_STATUS.value_set(status))

    def set_waiting(self, node_ids: Sequence[str]) -> None:
        key = search_attributes.WAITING_NODES
        self._upsert(key.value_set(list(node_ids)) if node_ids else key.value_unset())

    def _upsert(self, update: SearchAttributeUpdate) -> None:
        if self._once_per_task:  # written at the checkpoint
            self._unsent[update.key.name] = update
        else:
            workflow.upsert_search_attributes([update])

    def checkpoint(self) -> None:
        """Before the workflow task ends: the table of steps and the search attributes that
        changed during it, in one upsert."""
        self.publish_details()
        if self._unsent:
            workflow.upsert_search_attributes(list(self._unsent.values()))
            self._unsent.clear()

    def publish_details(self) -> None:
        """Every node's status in the Temporal UI (current details), whether it ran as an
        activity, in a batch, or waits for a timer or a decision."""
        # Runs once per activation: only the rows shown are visited, not every step.
        rows = [
            f"| {s.label or s.node_id} | `{s.node_id}` | {s.node_type} | {s.status} |"
            for s in itertools.islice(self._steps.values(), _DETAILS_ROWS)
        ]
        more = len(self._steps) - _DETAILS_ROWS
        details = "\n".join(
            [
                f"**{self._state.status}** · attempt {self._state.attempt}",
                "",
                "| node | id | type | status |",
                "|---|---|---|---|",
                *rows,
                *([f"\n… and {more} more (query `state`)"] if more > 0 else []),
            ]
        )
        workflow.set_current_details(details)

    def ended(self) -> None:
        """The run ended: what changed in its last task is written."""
        if self._once_per_task:
            self.checkpoint()
        else:
            self.publish_details()
