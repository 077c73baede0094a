"""The one data converter: the API, the worker and the tests all build clients with it.

Payloads are pydantic JSON. Those larger than COMPRESS_OVER_BYTES are zlib-compressed by a
payload codec: Temporal refuses any payload over 2 MB, and a large run's input (definition and
plans) and final state exceed that long before the history limits matter — a 10,000-node
definition is about 2.2 MB of JSON and compresses to a few percent of it. Smaller payloads,
nearly all of them, stay plain JSON, so the Temporal UI and CLI show them as they are; they
read the compressed ones through the API's codec endpoint (api/routes/codec.py).

With `RUNLANE_PAYLOAD_KEY` set (runlane/payload_crypto.py), every payload is then encrypted
(AES-256-GCM) and bound to the run it belongs to, which the SDK's serialization context names;
failure messages and stack traces move into an encoded payload too (they can quote node
configuration), so the UI and CLI show nothing in plain text without the codec endpoint.
Payloads that are not encrypted still decode: histories recorded before the key was set.
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from collections.abc import Sequence
from typing import Self

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter, pydantic_data_converter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
)

from runlane.payload_crypto import (
    Binding,
    PayloadDecryptError,
    PayloadKeys,
    binding_of,
    decrypt,
    is_encrypted,
)

COMPRESS_OVER_BYTES = 256 * 1024
ZLIB_ENCODING = b"binary/zlib"


class CompressLargePayloads(PayloadCodec):
    """zlib for large payloads, pass-through for the rest (and for anything not ours)."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [compress(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        # An encrypted payload without the key is refused with a message saying so.
        return [decompress(decrypt(payload, None)) for payload in payloads]


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


class EncryptPayloads(PayloadCodec, WithSerializationContext):
    """Compression as above, then AES-256-GCM for every payload, bound to the workflow (run)
    of the serialization context; decoding passes through what is not encrypted."""

    def __init__(self, keys: PayloadKeys, workflow_id: str | None = None) -> None:
        self._keys = keys
        self._workflow_id = workflow_id

    def with_context(self, context: SerializationContext) -> Self:
        # Workflow and activity contexts both name the run; others (Nexus) name none.
        workflow_id = getattr(context, "workflow_id", None)
        return type(self)(self._keys, workflow_id if isinstance(workflow_id, str) else None)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        binding = Binding(workflow_id=self._workflow_id)
        return [self._keys.encrypt(compress(payload), binding) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [decompress(self._decrypt(payload)) for payload in payloads]

    def _decrypt(self, payload: Payload) -> Payload:
        if not is_encrypted(payload):
            return payload
        bound_to = binding_of(payload).workflow_id
        if self._workflow_id is not None and bound_to is not None and bound_to != self._workflow_id:
            # A ciphertext copied from another run's history: its data is not this run's.
            raise PayloadDecryptError(
                f"the payload belongs to run {bound_to!r}, not to {self._workflow_id!r}"
            )
        return decrypt(payload, self._keys)


def data_converter(payload_keys: PayloadKeys | None = None) -> DataConverter:
    """Without keys: compression only. With keys (Settings.payload_keys()): encryption too."""
    if payload_keys is None:
        return dataclasses.replace(
            pydantic_data_converter,
            payload_converter_class=RunlanePayloadConverter,
            payload_codec=CompressLargePayloads(),
        )
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=RunlanePayloadConverter,
        payload_codec=EncryptPayloads(payload_keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
