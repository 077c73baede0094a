"""Requests per organization (API.md "Access control"): a token bucket of
`RUNLANE_RATE_LIMIT_BURST` tokens refilled at `RUNLANE_RATE_LIMIT_PER_S` a second, kept in the
relational store so that every API replica spends from the same one (store/rate_limits.py).

Every route that authenticates with an API key depends on :func:`enforce_rate_limit` (router
dependencies, api/main.py): the caller's key is checked first (a request without a valid key
spends nothing), then one token is taken; without one the answer is `429 rate_limited` with
`Retry-After`, the whole seconds until a token is back.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends

from api.deps import DatabaseDep, OrgDep, SettingsDep
from api.errors import ApiError
from store.rate_limits import RateLimitRepository


def rate_limited(retry_after_s: float, rate: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after_s))
    return ApiError(
        429,
        "rate_limited",
        f"Too many requests for this organization (limit {rate:g} a second); "
        f"retry after {seconds} s.",
        {"retry_after_s": seconds, "limit_per_s": rate},
        headers={"Retry-After": str(seconds)},
    )


async def enforce_rate_limit(
    organization: OrgDep, settings: SettingsDep, database: DatabaseDep
) -> None:
    rate = settings.rate_limit_per_s
    if rate <= 0:
        return
    take = await RateLimitRepository(database).take(
        organization, rate=rate, burst=settings.rate_limit_burst_tokens
    )
    if not take.granted:
        raise rate_limited(take.retry_after_s, rate)


RateLimited = Depends(enforce_rate_limit)
RateLimitDep = Annotated[None, RateLimited]
