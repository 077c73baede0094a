"""Building a worker of the run workflow the same way in worker.py, the tests and the scripts.

It sits with the workflow, above the node activities: a run-workflow worker wires both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities import workflow_support
from activities.evaluation import PureBatches
from activities.log_context import LogContextInterceptor
from activities.maps import MapActivities
from activities.recorded import RecordedOutcomes
from activities.registry import default_registry
from activities.usage import Ledger
from workflows.maps import MapWorkflow
from workflows.run_workflow import RunWorkflow


def create_worker(
    client: Client,
    *,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    workflows: Sequence[type] = (),
    map_items_per_execution: int = 1000,
    ledger: Ledger | None = None,
    **options: Any,
) -> Worker:
    """A worker of the run workflow: the node activities (and other workflows, the triggers')
    given, plus the activities the workflow itself needs (the batches of pure work, which
    read histories through `client`; the maps' preparation and pure items). With `ledger`,
    these count the nodes they evaluate in the runs' usage (activities/usage.py), as the node
    activities built with the same ledger (ActivityDeps) record theirs."""
    batches = PureBatches(default_registry(), RecordedOutcomes(client), ledger)
    maps = MapActivities(
        client,
        default_registry(),
        items_per_execution=map_items_per_execution,
        ledger=ledger,
    )
    # A RecursionError in workflow code fails again at every retry of the workflow task: the
    # run would stay open for ever. It fails the run instead (the reader shows it as an error).
    failure_types = [RecursionError, *options.pop("workflow_failure_exception_types", [])]
    # Node activities' log lines carry their run_id and node_id (runlane/logs.py). Tracing's
    # interceptor, when on, comes from the client and wraps this one.
    interceptors = [LogContextInterceptor(), *options.pop("interceptors", [])]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RunWorkflow, MapWorkflow, *workflows],
        activities=[
            *activities,
            *workflow_support.ACTIVITIES,
            batches.evaluate,
            maps.prepare,
            maps.evaluate,
        ],
        workflow_failure_exception_types=failure_types,
        interceptors=interceptors,
        **options,
    )
