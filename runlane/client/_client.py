"""The two entry points, :class:`Runlane` and :class:`AsyncRunlane`."""

from __future__ import annotations

from types import TracebackType

import httpx

from runlane.client._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    resolve_api_key,
    resolve_base_url,
)
from runlane.client._http import AsyncTransport, SyncTransport
from runlane.client.resources import (
    AsyncFiles,
    AsyncReviews,
    AsyncWorkflows,
    Files,
    Reviews,
    Workflows,
)


class Runlane:
    """The Runlane API over one ``httpx.Client`` (a connection pool): create one and reuse
    it, closing it with ``close()`` or a ``with`` block.

    ``api_key``: else RUNLANE_API_KEY, else the dev key `make run` wrote (RUNLANE_DATA_DIR,
    default ./.data); ``base_url``: else RUNLANE_BASE_URL, else http://127.0.0.1:8000.
    ``max_retries``: how many times a call is sent again (see the package docstring for
    which failures are retried)."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.api_key = resolve_api_key(api_key)
        self.base_url = resolve_base_url(base_url)
        self._transport = SyncTransport(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
        )
        self.workflows = Workflows(self._transport)
        self.reviews = Reviews(self._transport)
        self.files = Files(self._transport)

    def close(self) -> None:
        """Close the connection pool (not an ``http_client`` passed in: its owner does)."""
        self._transport.close()

    def __enter__(self) -> Runlane:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRunlane:
    """:class:`Runlane` for asyncio: the same resources, with ``async`` methods and async
    iterators, over one ``httpx.AsyncClient``."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.api_key = resolve_api_key(api_key)
        self.base_url = resolve_base_url(base_url)
        self._transport = AsyncTransport(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
        )
        self.workflows = AsyncWorkflows(self._transport)
        self.reviews = AsyncReviews(self._transport)
        self.files = AsyncFiles(self._transport)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncRunlane:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
