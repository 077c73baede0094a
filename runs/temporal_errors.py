"""Temporal out of reach is `Unavailable`, whichever call finds out first, and found out fast.

A lazily connected client (the API starts while Temporal is down) fails its first call with a
plain RuntimeError from the SDK's connect; a connected one that loses the server fails with
RPCError UNAVAILABLE or DEADLINE_EXCEEDED. Either way the caller should hear "try again soon",
never "internal error".

But the SDK retries UNAVAILABLE for seconds before it gives up (5.6-9.8 s measured, #13), and
a short timeout on every call would cut long listings short. So one `Reachability` per process
probes Temporal instead: a cheap call, without retries, every half second. While it says
"down", calls made through `needs_temporal` are refused at once, and those already waiting on
Temporal when it goes down are cancelled and refused too; while it answers, calls take as long
as they take.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from runlane.errors import Unavailable

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("runlane.temporal")

_UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
# The SDK's message when a lazy client cannot connect (temporalio/client.py, bridge connect).
_CONNECT_FAILED = "Failed client connect"

# Probed this often; a probe not answered within PROBE_TIMEOUT counts as Temporal gone. A
# refused connection fails at once, so a stopped server is noticed within PROBE_INTERVAL.
PROBE_INTERVAL = timedelta(milliseconds=500)
PROBE_TIMEOUT = timedelta(seconds=1)


def unavailable() -> Unavailable:
    return Unavailable("temporal_unavailable", "Temporal cannot be reached right now.")


def _unreachable(err: BaseException) -> bool:
    if isinstance(err, RPCError):
        return err.status in _UNREACHABLE
    return isinstance(err, RuntimeError) and str(err).startswith(_CONNECT_FAILED)


class Reachability:
    """Whether Temporal answers `client`, as last probed; `guard` runs calls by it.

    `start` it for the process's life (or `async with Reachability(client):`).
    Until the first probe has answered, Temporal counts as reachable: calls then find out
    themselves (and are cut short when the probe finds it gone)."""

    def __init__(
        self,
        client: Client,
        *,
        interval: timedelta = PROBE_INTERVAL,
        timeout: timedelta = PROBE_TIMEOUT,
    ) -> None:
        self._client = client
        self._interval = interval.total_seconds()
        self._timeout = timeout
        # Pending while Temporal answers; done (with nothing) from the moment it is found
        # gone, until it answers again and a new pending one takes its place.
        self._outage: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._prober: asyncio.Task[None] | None = None

    @property
    def reachable(self) -> bool:
        return not self._outage.done()

    def start(self) -> Reachability:
        """Probe from now on, until `stop`."""
        self._prober = asyncio.create_task(self._probe_forever(), name="temporal-reachability")
        return self

    async def stop(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
            self._prober = None

    async def __aenter__(self) -> Reachability:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def guard(self, call: Coroutine[Any, Any, R]) -> R:
        """`call`'s result; Unavailable at once while Temporal is gone, or as soon as it is
        found gone while `call` is waiting on it (then `call` is cancelled)."""
        outage = self._outage
        if outage.done():
            call.close()
            raise unavailable()
        running = asyncio.ensure_future(call)
        try:
            await asyncio.wait((running, outage), return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Our own caller gone (or Temporal gone): nothing waits on the call any more.
            if not running.done():
                running.cancel()
                await asyncio.wait((running,))
        if running.cancelled() and outage.done():
            raise unavailable()
        return running.result()

    async def _probe_forever(self) -> None:
        while True:
            self._mark(await self._answers())
            await asyncio.sleep(self._interval)

    async def _answers(self) -> bool:
        try:
            # The SDK's timeout bounds the call; ours also bounds a connect that hangs.
            async with asyncio.timeout(self._timeout.total_seconds() * 2):
                await self._client.workflow_service.get_system_info(
                    GetSystemInfoRequest(), retry=False, timeout=self._timeout
                )
        except (TimeoutError, RPCError, RuntimeError) as err:
            # Any other answer (PERMISSION_DENIED, say) is Temporal answering.
            return not (isinstance(err, TimeoutError) or _unreachable(err))
        return True

    def _mark(self, answers: bool) -> None:
        if answers and self._outage.done():
            log.warning("Temporal answers again")
            self._outage = asyncio.get_running_loop().create_future()
        elif not answers and not self._outage.done():
            log.warning("Temporal cannot be reached: answering 503 until it can")
            self._outage.set_result(None)


class WatchesTemporal(Protocol):
    """What `needs_temporal` wraps methods of: an object that may have a `Reachability`."""

    @property
    def reachability(self) -> Reachability | None: ...


S = TypeVar("S", bound=WatchesTemporal)


def needs_temporal(
    call: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """A method that needs Temporal: Unavailable when Temporal is out of reach, fast when its
    object has a `Reachability`."""

    @functools.wraps(call)
    async def reaching(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        watch = self.reachability
        try:
            if watch is None:
                return await call(self, *args, **kwargs)
            return await watch.guard(call(self, *args, **kwargs))
        except (RPCError, RuntimeError) as err:
            if _unreachable(err):
                raise unavailable() from err
            raise

    return reaching


# Temporal refused the call outright (nothing was applied): a size limit, a closed execution.
REFUSED = (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.NOT_FOUND)


def over_payload_limit(err: RPCError) -> bool:
    return err.status == RPCStatusCode.INVALID_ARGUMENT and "size exceeds limit" in err.message
