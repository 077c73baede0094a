"""Figures about runs that a metrics scrape reads from Temporal: one visibility count each."""

from __future__ import annotations

from temporalio.client import Client

from runlane import search_attributes

# Open runs whose status is waiting on a reviewer (the workflow upserts it while any
# human_review node waits): what the reviewers' inbox would list, all organizations together.
WAITING_FOR_REVIEW = (
    f"{search_attributes.RUN_STATUS.name} = 'waiting_for_human' AND ExecutionStatus = 'Running'"
)


async def runs_waiting_for_review(client: Client) -> int:
    """How many runs wait for a review decision right now (one visibility count query)."""
    return (await client.count_workflows(WAITING_FOR_REVIEW)).count
