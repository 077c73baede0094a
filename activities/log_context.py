"""Binds a node activity's `run_id` and `node_id` to the log lines written while it runs
(runlane/logs.py): a worker interceptor, so every node type's activity gets them, and the
libraries it calls (httpx, the store) log with them too."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.models import NodeTaskInput
from runlane.logs import RUN_WORKFLOW, log_context


class _LogContextInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        task = input.args[0] if input.args else None
        run_id: str | None = None
        node_id: str | None = None
        if isinstance(task, NodeTaskInput):
            run_id, node_id = task.run_id, task.node.id
        elif activity.info().workflow_type == RUN_WORKFLOW:
            # The run workflow's own activities (batches of pure nodes): the run's id.
            run_id = activity.info().workflow_id
        with log_context(run_id=run_id, node_id=node_id):
            return await self.next.execute_activity(input)


class LogContextInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _LogContextInbound(next)
