"""Worker memory per waiting run against the workflow cache size, one stack per size.

    .venv/bin/python -m bench.cache_sizes 1000 250     # sizes to compare, in one run

Each size gets a fresh dev server, worker and API (`RUNLANE_WORKER_MAX_CACHED_WORKFLOWS`),
then the `waiting_memory` scenario of `make bench` (2,000 runs waiting on a review, then
decided). This is how the default of `worker_max_cached_workflows` was chosen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from temporalio.client import Client

from bench import scenarios
from bench.stack import Stack
from runlane.converter import data_converter
from tests.peer import Peer


async def measure(size: int | None, quick: bool = False) -> dict[str, object]:
    """`waiting_memory` on a fresh stack (a worker heap that earlier scenarios grew and freed
    makes the memory delta meaningless); `size` None keeps the configured default."""
    settings = {} if size is None else {"RUNLANE_WORKER_MAX_CACHED_WORKFLOWS": str(size)}
    stack = Stack(settings=settings)
    stack.start()
    peer = Peer()
    peer.start()
    try:
        client = await Client.connect(stack.temporal_address, data_converter=data_converter())
        async with stack.api_client() as api:
            ctx = scenarios.Context(stack, client, api, "unused", peer, quick=quick)
            figures = await scenarios.waiting_memory(ctx)
            return figures if size is None else {"max_cached_workflows": size, **figures}
    finally:
        peer.stop()
        stack.stop()


async def main(sizes: list[int]) -> None:
    for size in sizes:
        sys.stdout.write(json.dumps(await measure(size)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="+", type=int)
    asyncio.run(main(parser.parse_args().sizes))
