"""Raw temporalio baseline workflows of the same shapes as the scenarios, without any facade."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from bench.raw_activities import raw_flaky, raw_step


TIMEOUT = timedelta(seconds=30)


@workflow.defn
class RawChainWorkflow:
    """`length` sequential regular activities (`http`: each one calls the peer)."""

    @workflow.run
    async def run(self, length: int, http: bool) -> int:
        value = 0
        for _ in range(length):
            name = "raw_http" if http else "raw_step"
            value = await workflow.execute_activity(name, value, start_to_close_timeout=TIMEOUT)
        return value


@workflow.defn
class RawFanoutWorkflow:
    @workflow.run
    async def run(self, width: int) -> int:
        first = await workflow.execute_activity(raw_step, 0, start_to_close_timeout=TIMEOUT)
        middle = await asyncio.gather(
            *(
                workflow.execute_activity(raw_step, first, start_to_close_timeout=TIMEOUT)
                for _ in range(width)
            )
        )
        return await workflow.execute_activity(
            raw_step, sum(middle), start_to_close_timeout=TIMEOUT
        )


@workflow.defn
class RawReviewWorkflow:
    def __init__(self) -> None:
        self._decided = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._decided)
        return "approved"

    @workflow.signal
    def decide(self) -> None:
        self._decided = True


@workflow.defn
class RawLongChainWorkflow:
    """`length` local activities then one regular activity that fails until reset."""

    @workflow.run
    async def run(self, length: int) -> int:
        value = 0
        for _ in range(length - 1):
            value = await workflow.execute_local_activity(
                raw_step, value, start_to_close_timeout=TIMEOUT
            )
        return await workflow.execute_activity(
            raw_flaky,
            value,
            retry_policy=RetryPolicy(maximum_attempts=1),
            start_to_close_timeout=TIMEOUT,
        )


@workflow.defn
class RawMapWorkflow:
    """`count` regular activities calling the peer, at most `concurrency` at once."""

    @workflow.run
    async def run(self, count: int, concurrency: int) -> int:
        gate = asyncio.Semaphore(concurrency)

        async def item(value: int) -> int:
            async with gate:
                result: int = await workflow.execute_activity(
                    "raw_http", value, start_to_close_timeout=TIMEOUT
                )
                return result

        return sum(await asyncio.gather(*(item(i) for i in range(count))))


@workflow.defn
class RawMidCallChainWorkflow:
    """`length` steps: local activities, with one regular activity calling the peer at `mid`
    (the shape of `retry_from_node`'s run)."""

    @workflow.run
    async def run(self, length: int, mid: int) -> int:
        value = 0
        for index in range(length):
            if index == mid:
                value = await workflow.execute_activity(
                    "raw_http", value, start_to_close_timeout=TIMEOUT
                )
            else:
                value = await workflow.execute_local_activity(
                    raw_step, value, start_to_close_timeout=TIMEOUT
                )
        return value


WORKFLOWS = [
    RawChainWorkflow,
    RawMidCallChainWorkflow,
    RawFanoutWorkflow,
    RawReviewWorkflow,
    RawLongChainWorkflow,
    RawMapWorkflow,
]
