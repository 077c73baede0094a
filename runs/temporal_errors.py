"""Temporal out of reach is `Unavailable`, whichever call finds out first.

A lazily connected client (the API starts while Temporal is down) fails its first call with a
plain RuntimeError from the SDK's connect; a connected one that loses the server fails with
RPCError UNAVAILABLE or DEADLINE_EXCEEDED. Either way the caller should hear "try again soon",
never "internal error".
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio.service import RPCError, RPCStatusCode

from runlane.errors import Unavailable

P = ParamSpec("P")
R = TypeVar("R")

_UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
# The SDK's message when a lazy client cannot connect (temporalio/client.py, bridge connect).
_CONNECT_FAILED = "Failed client connect"


def unavailable() -> Unavailable:
    return Unavailable("temporal_unavailable", "Temporal cannot be reached right now.")


def needs_temporal(call: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(call)
    async def reaching(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await call(*args, **kwargs)
        except RPCError as err:
            if err.status in _UNREACHABLE:
                raise unavailable() from err
            raise
        except RuntimeError as err:
            if str(err).startswith(_CONNECT_FAILED):
                raise unavailable() from err
            raise

    return reaching


# Temporal refused the call outright (nothing was applied): a size limit, a closed execution.
REFUSED = (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.NOT_FOUND)


def over_payload_limit(err: RPCError) -> bool:
    return err.status == RPCStatusCode.INVALID_ARGUMENT and "size exceeds limit" in err.message
