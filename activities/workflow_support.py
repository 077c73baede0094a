"""Activities the run workflow itself needs, whatever the definition: registered on every
worker by `workflows.worker.create_worker`."""

from __future__ import annotations

from temporalio import activity

PAUSE = "runlane.pause"
# Evaluates a batch of pure work (activities/evaluation.py).
EVALUATE = "runlane.evaluate"


@activity.defn(name=PAUSE)
async def pause() -> None:
    """Does nothing. Runs started before outcomes were recorded call it as a local activity
    between long stretches of pure nodes they evaluate in the workflow: its result arrives in
    a new activation, which restarts the SDK's 2 s deadlock clock without a server round trip
    (a 1 ms timer takes up to a second on the dev server)."""


ACTIVITIES = (pause,)
