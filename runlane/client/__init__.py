"""Python client for the Runlane REST API (API.md), sync and async::

    from runlane.client import Runlane

    with Runlane() as client:
        run = client.workflows.runs.create("wf_...", documents={"doc": Path("invoice.pdf")})
        run = client.workflows.runs.wait(run.id, timeout=60)
        print(run.status, run.final_outputs)

It needs only httpx and pydantic (and httpx-sse for event streams): no FastAPI, Temporal or
database code is imported. Answers are pydantic models generated from the API's OpenAPI
document (``runlane.client.models``); failures are typed (``runlane.client.errors``).

Retries. A call is sent again, up to ``max_retries`` times with exponential backoff (0.5 s
doubling to 8 s, with jitter) or after the server's ``Retry-After``, when:

- the answer is ``429``: the rate limit refuses before anything is done, so every call;
- the connection could not be opened (connect error or timeout): nothing was sent, so
  every call;
- the answer is ``502``/``503``/``504``, or the connection broke or timed out after the
  request may have been sent: only for calls that are safe to repeat. Those are reads,
  ``update_draft`` and ``validate`` (the same result however often), and the commands that
  carry a ``command_id``: start, cancel, restart, rerun, retry and review decisions. The
  client generates the ``command_id`` (uuid4) when the caller gives none and sends the
  same one on every retry of that call, so the API answers a retry with the run the first
  attempt made (API.md "Idempotency") instead of acting twice.
- ``workflows.create``, ``workflows.publish`` and ``files.upload`` take no idempotency key:
  a second send could create a second workflow, snapshot or file, so they are retried only
  on 429 and when the connection never opened.
"""

from runlane.client._client import AsyncRunlane, Runlane
from runlane.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    InvalidRequestError,
    MissingAPIKeyError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    RunlaneError,
    ServiceUnavailableError,
    UnprocessableEntityError,
    WaitTimeoutError,
)
from runlane.client.events import EndEvent, RunEvent, RunStreamEvent, StepEvent

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncRunlane",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "EndEvent",
    "InternalServerError",
    "InvalidRequestError",
    "MissingAPIKeyError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RunEvent",
    "RunStreamEvent",
    "Runlane",
    "RunlaneError",
    "ServiceUnavailableError",
    "StepEvent",
    "UnprocessableEntityError",
    "WaitTimeoutError",
]
