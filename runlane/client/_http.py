"""The two transports: the retry loop and the stream around httpx.Client and
httpx.AsyncClient. Everything they decide comes from ``_base`` (what to retry, how long to
wait, how to read an answer); the loops are written twice only because one awaits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource

from runlane.client._base import (
    Request,
    check,
    connection_error,
    default_headers,
    error_for,
    parse_retry_after,
    retry_delay,
    should_retry_exception,
    should_retry_response,
)
from runlane.client.events import RunStreamEvent, parse_event

T = TypeVar("T")
Item = TypeVar("Item")

# A run's event stream sends a keep-alive comment after 15 s without news: a read timeout
# shorter than that would cut a healthy stream.
STREAM_READ_TIMEOUT_S = 60.0


def _timeout(timeout: float | httpx.Timeout) -> httpx.Timeout:
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


def _stream_timeout(timeout: httpx.Timeout) -> httpx.Timeout:
    read = max(timeout.read or 0.0, STREAM_READ_TIMEOUT_S)
    return httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool)


class _Retrying:
    """One call's attempts: whether the outcome of an attempt is retried, and after how
    long. Shared by both transports."""

    def __init__(self, request: Request[Any], max_retries: int) -> None:
        self.request = request
        self.max_retries = max_retries
        self.attempt = 0

    def after_response(self, response: httpx.Response) -> float | None:
        if response.is_success or self.attempt >= self.max_retries:
            return None
        if not should_retry_response(self.request, response):
            return None
        return self._next(parse_retry_after(response))

    def after_error(self, error: httpx.TransportError) -> float | None:
        if self.attempt >= self.max_retries or not should_retry_exception(self.request, error):
            return None
        return self._next(None)

    def _next(self, retry_after: float | None) -> float:
        delay = retry_delay(self.attempt, retry_after)
        self.attempt += 1
        return delay


class SyncTransport:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: float | httpx.Timeout,
        max_retries: int,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_retries = max_retries
        self.timeout = _timeout(timeout)
        self._sleep = sleep
        self._owned = http_client is None
        self._http = http_client or httpx.Client()
        self._base_url = base_url
        self._headers = default_headers(api_key)

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def _build(self, request: Request[Any], timeout: httpx.Timeout) -> httpx.Request:
        return self._http.build_request(
            request.method,
            self._base_url + request.path,
            params=request.query(),
            json=request.json,
            files=request.files,
            headers={**self._headers, **request.headers},
            timeout=timeout,
        )

    def send(self, request: Request[T]) -> T:
        retrying = _Retrying(request, self.max_retries)
        while True:
            try:
                response = self._http.send(self._build(request, self.timeout))
            except httpx.TransportError as error:
                delay = retrying.after_error(error)
                if delay is None:
                    raise connection_error(error) from error
                self._sleep(delay)
                continue
            delay = retrying.after_response(response)
            if delay is None:
                check(response)
                return request.parse(response)
            self._sleep(delay)

    def paginate(self, page: Callable[[str | None], Request[Any]]) -> Iterator[Any]:
        """Every item of every page, following ``next_cursor`` until it is null."""
        cursor: str | None = None
        while True:
            answer = self.send(page(cursor))
            yield from answer.data
            cursor = answer.next_cursor
            if cursor is None:
                return

    @contextmanager
    def stream(self, request: Request[Any]) -> Iterator[httpx.Response]:
        """An answer whose body is read as it comes; retried like `send` until the status
        line arrives, typed error on a non-2xx."""
        retrying = _Retrying(request, self.max_retries)
        while True:
            try:
                response = self._http.send(
                    self._build(request, _stream_timeout(self.timeout)), stream=True
                )
            except httpx.TransportError as error:
                delay = retrying.after_error(error)
                if delay is None:
                    raise connection_error(error) from error
                self._sleep(delay)
                continue
            if response.is_success:
                break
            response.read()
            response.close()
            delay = retrying.after_response(response)
            if delay is None:
                raise error_for(response)
            self._sleep(delay)
        try:
            yield response
        finally:
            response.close()

    def events(self, request: Request[Any]) -> Iterator[RunStreamEvent]:
        """A run's typed events until ``end``. A stream cut before ``end`` is opened again
        (the API starts a new stream with the run's current state), up to max_retries
        times in a row."""
        failures = 0
        while True:
            try:
                with self.stream(request) as response:
                    for sse in EventSource(response).iter_sse():
                        event = parse_event(sse)
                        if event is None:
                            continue
                        failures = 0
                        yield event
                        if event.event == "end":
                            return
            except httpx.TransportError as error:
                if failures >= self.max_retries:
                    raise connection_error(error) from error
                self._sleep(retry_delay(failures))
                failures += 1
                continue
            # The server closed the stream without `end` (a restart, a proxy): reconnect.
            if failures >= self.max_retries:
                raise connection_error(httpx.RemoteProtocolError("stream closed before end"))
            self._sleep(retry_delay(failures))
            failures += 1


class AsyncTransport:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: float | httpx.Timeout,
        max_retries: int,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.max_retries = max_retries
        self.timeout = _timeout(timeout)
        self._sleep = sleep
        self._owned = http_client is None
        self._http = http_client or httpx.AsyncClient()
        self._base_url = base_url
        self._headers = default_headers(api_key)

    async def close(self) -> None:
        if self._owned:
            await self._http.aclose()

    def _build(self, request: Request[Any], timeout: httpx.Timeout) -> httpx.Request:
        return self._http.build_request(
            request.method,
            self._base_url + request.path,
            params=request.query(),
            json=request.json,
            files=request.files,
            headers={**self._headers, **request.headers},
            timeout=timeout,
        )

    async def send(self, request: Request[T]) -> T:
        retrying = _Retrying(request, self.max_retries)
        while True:
            try:
                response = await self._http.send(self._build(request, self.timeout))
            except httpx.TransportError as error:
                delay = retrying.after_error(error)
                if delay is None:
                    raise connection_error(error) from error
                await self._sleep(delay)
                continue
            delay = retrying.after_response(response)
            if delay is None:
                check(response)
                return request.parse(response)
            await self._sleep(delay)

    async def paginate(self, page: Callable[[str | None], Request[Any]]) -> AsyncIterator[Any]:
        cursor: str | None = None
        while True:
            answer = await self.send(page(cursor))
            for item in answer.data:
                yield item
            cursor = answer.next_cursor
            if cursor is None:
                return

    @asynccontextmanager
    async def stream(self, request: Request[Any]) -> AsyncIterator[httpx.Response]:
        retrying = _Retrying(request, self.max_retries)
        while True:
            try:
                response = await self._http.send(
                    self._build(request, _stream_timeout(self.timeout)), stream=True
                )
            except httpx.TransportError as error:
                delay = retrying.after_error(error)
                if delay is None:
                    raise connection_error(error) from error
                await self._sleep(delay)
                continue
            if response.is_success:
                break
            await response.aread()
            await response.aclose()
            delay = retrying.after_response(response)
            if delay is None:
                raise error_for(response)
            await self._sleep(delay)
        try:
            yield response
        finally:
            await response.aclose()

    async def events(self, request: Request[Any]) -> AsyncIterator[RunStreamEvent]:
        failures = 0
        while True:
            try:
                async with self.stream(request) as response:
                    async for sse in EventSource(response).aiter_sse():
                        event = parse_event(sse)
                        if event is None:
                            continue
                        failures = 0
                        yield event
                        if event.event == "end":
                            return
            except httpx.TransportError as error:
                if failures >= self.max_retries:
                    raise connection_error(error) from error
                await self._sleep(retry_delay(failures))
                failures += 1
                continue
            if failures >= self.max_retries:
                raise connection_error(httpx.RemoteProtocolError("stream closed before end"))
            await self._sleep(retry_delay(failures))
            failures += 1
