"""Activities of the raw baselines (the bench process runs their worker)."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError


@activity.defn
async def raw_step(value: int) -> int:
    return value + 1


class RawHttp:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url

    @activity.defn
    async def raw_http(self, value: int) -> int:
        response = await self._client.post(self._url, json={"value": value})
        response.raise_for_status()
        return value + 1


_failed_once: set[str] = set()


@activity.defn
async def raw_flaky(value: int) -> int:
    """Fails the first time per workflow id (the raw worker runs in the bench process)."""
    workflow_id = activity.info().workflow_id or ""
    if workflow_id not in _failed_once:
        _failed_once.add(workflow_id)
        raise ApplicationError("fails the first time", non_retryable=True)
    return value + 1
