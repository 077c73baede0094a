"""The one data converter: the API, the worker and the tests all build clients with it.

Payloads are pydantic JSON. Those larger than COMPRESS_OVER_BYTES are zlib-compressed by a
payload codec: Temporal refuses any payload over 2 MB, and a large run's input (definition and
plans) and final state exceed that long before the history limits matter — a 10,000-node
definition is about 2.2 MB of JSON and compresses to a few percent of it. Smaller payloads,
nearly all of them, stay plain JSON, so the Temporal UI and CLI show them as they are; they
read the compressed ones through the API's codec endpoint (api/routes/codec.py).
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from collections.abc import Sequence

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter, pydantic_data_converter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
)

COMPRESS_OVER_BYTES = 256 * 1024
ZLIB_ENCODING = b"binary/zlib"


class CompressLargePayloads(PayloadCodec):
    """zlib for large payloads, pass-through for the rest (and for anything not ours)."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [compress(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [decompress(payload) for payload in payloads]


def compress(payload: Payload) -> Payload:
    if payload.ByteSize() <= COMPRESS_OVER_BYTES:
        return payload
    # The whole Payload (metadata included) is compressed, so decoding restores it exactly.
    data = zlib.compress(payload.SerializeToString(), level=6)
    return Payload(metadata={"encoding": ZLIB_ENCODING}, data=data)


class InflatesTooLarge(ValueError):
    """A compressed payload inflates beyond the limit its reader set."""


def decompress(payload: Payload, max_bytes: int | None = None) -> Payload:
    """Raises zlib.error or protobuf's DecodeError for data that is not a payload of ours."""
    if payload.metadata.get("encoding") != ZLIB_ENCODING:
        return payload
    if max_bytes is None:
        return Payload.FromString(zlib.decompress(payload.data))
    inflater = zlib.decompressobj()
    data = inflater.decompress(payload.data, max_bytes)
    if inflater.unconsumed_tail:
        raise InflatesTooLarge(f"a payload inflates to more than {max_bytes} bytes")
    if not inflater.eof:
        raise zlib.error("truncated zlib stream")
    return Payload.FromString(data)


# One cache of pydantic TypeAdapters for every converter instance. The SDK makes a payload
# converter per workflow run (inside its sandbox), so a per-instance cache rebuilt each model's
# validation schema on every run: a fifth of the worker's CPU for a short run. The models are
# imported through the sandbox unchanged, so one adapter per model serves every run.
_shared_type_adapters = functools.lru_cache(maxsize=1024)(TypeAdapter)


class _SharedAdaptersJSON(PydanticJSONPlainPayloadConverter):
    def __init__(self) -> None:
        super().__init__(max_cached_type_adapters=0)
        self._type_adapter = _shared_type_adapters


class RunlanePayloadConverter(CompositePayloadConverter):
    """Pydantic JSON (temporalio.contrib.pydantic) with TypeAdapters shared across runs."""

    def __init__(self) -> None:
        json_converter = _SharedAdaptersJSON()
        super().__init__(
            *(
                json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


def data_converter() -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=RunlanePayloadConverter,
        payload_codec=CompressLargePayloads(),
    )
