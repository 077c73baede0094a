"""Payload encryption in the data converter (RUNLANE_PAYLOAD_KEY): round trips, rotation by
key id, tampering and payloads copied between runs refused, plain histories still readable."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError

from runlane.converter import COMPRESS_OVER_BYTES, ZLIB_ENCODING, compress, data_converter
from runlane.payload_crypto import (
    ENCRYPTED_ENCODING,
    KEY_ID,
    WORKFLOW_ID,
    PayloadDecryptError,
    PayloadKeys,
    generate_key,
    parse_payload_keys,
)
from runlane.settings import Settings
from runlane.temporal import connect

K1, K2 = generate_key(), generate_key()
SECRET = "Bearer canary-0123456789"


def keys(raw: str) -> PayloadKeys:
    parsed = parse_payload_keys(raw)
    assert parsed is not None
    return parsed


def in_run(raw: str, run_id: str = "run_a") -> DataConverter:
    return data_converter(keys(raw)).with_context(
        WorkflowSerializationContext(namespace="default", workflow_id=run_id)
    )


async def test_every_payload_is_encrypted_and_names_its_key_and_run() -> None:
    [stored] = await in_run(f"k1:{K1}").encode([{"headers": {"Authorization": SECRET}}])

    assert stored.metadata["encoding"] == ENCRYPTED_ENCODING
    assert stored.metadata[KEY_ID] == b"k1"
    assert stored.metadata[WORKFLOW_ID] == b"run_a"
    assert SECRET.encode() not in stored.SerializeToString()
    # Read back in the run's context, and without one (the API reading a history).
    assert await in_run(f"k1:{K1}").decode([stored], [dict]) == [
        {"headers": {"Authorization": SECRET}}
    ]
    assert await data_converter(keys(f"k1:{K1}")).decode([stored], [dict]) == [
        {"headers": {"Authorization": SECRET}}
    ]


async def test_activity_payloads_are_bound_to_the_run_that_scheduled_them() -> None:
    converter = data_converter(keys(f"k1:{K1}")).with_context(
        ActivitySerializationContext(
            namespace="default",
            activity_id="1",
            activity_type="http_request",
            activity_task_queue="q",
            workflow_id="run_a",
            workflow_type="RunWorkflow",
            is_local=False,
        )
    )
    [stored] = await converter.encode([SECRET])
    assert stored.metadata[WORKFLOW_ID] == b"run_a"
    assert await in_run(f"k1:{K1}").decode([stored], [str]) == [SECRET]


async def test_large_payloads_are_compressed_then_encrypted() -> None:
    note = "x" * (COMPRESS_OVER_BYTES * 2)
    [stored] = await in_run(f"k1:{K1}").encode([note])
    assert stored.ByteSize() < COMPRESS_OVER_BYTES // 10
    assert await in_run(f"k1:{K1}").decode([stored], [str]) == [note]


async def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    [old] = await in_run(f"k1:{K1}").encode(["written before the rotation"])
    rotated = f"k2:{K2},k1:{K1}"
    [new] = await in_run(rotated).encode(["written after"])

    assert new.metadata[KEY_ID] == b"k2"
    assert await in_run(rotated).decode([old, new], [str, str]) == [
        "written before the rotation",
        "written after",
    ]
    # Once k1 is dropped, what it encrypted fails loudly, naming the key id.
    with pytest.raises(PayloadDecryptError, match="key id 'k1'"):
        await in_run(f"k2:{K2}").decode([old], [str])


async def test_changed_bytes_or_metadata_are_refused_not_returned() -> None:
    [stored] = await in_run(f"k1:{K1}").encode([SECRET])

    flipped = Payload()
    flipped.CopyFrom(stored)
    flipped.data = stored.data[:-1] + bytes([stored.data[-1] ^ 1])
    relabelled = Payload()
    relabelled.CopyFrom(stored)
    relabelled.metadata[WORKFLOW_ID] = b"run_b"  # to get it read as another run's

    for tampered in (flipped, relabelled):
        with pytest.raises(PayloadDecryptError, match="does not decrypt"):
            await data_converter(keys(f"k1:{K1}")).decode([tampered], [str])


async def test_a_ciphertext_copied_into_another_runs_history_is_refused() -> None:
    [stored] = await in_run(f"k1:{K1}", "run_a").encode([SECRET])
    with pytest.raises(PayloadDecryptError, match="belongs to run 'run_a'"):
        await in_run(f"k1:{K1}", "run_b").decode([stored], [str])


async def test_plain_and_compressed_payloads_still_decode() -> None:
    """Histories written before the key was set (tests/histories among them) still replay."""
    [plain] = await data_converter().encode(["recorded unencrypted"])
    large = compress((await data_converter().encode(["y" * COMPRESS_OVER_BYTES]))[0])
    assert large.metadata["encoding"] == ZLIB_ENCODING
    assert await in_run(f"k1:{K1}").decode([plain, large], [str, str]) == [
        "recorded unencrypted",
        "y" * COMPRESS_OVER_BYTES,
    ]


async def test_an_encrypted_payload_without_the_key_fails_loudly() -> None:
    [stored] = await in_run(f"k1:{K1}").encode([SECRET])
    with pytest.raises(PayloadDecryptError, match="RUNLANE_PAYLOAD_KEY is not set"):
        await data_converter().decode([stored], [str])


async def test_failure_messages_are_encrypted_too() -> None:
    converter = in_run(f"k1:{K1}")
    failure = Failure()
    await converter.encode_failure(ApplicationError(f"peer refused {SECRET}"), failure)

    assert SECRET.encode() not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert SECRET in str(decoded)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("k1", "no valid key id"),
        (f"bad id!:{K1}", "no valid key id"),
        ("k1:not base64 at all!", "not base64"),
        ("k1:" + "A" * 22, "16 bytes; AES-256 needs 32"),
        (f"k1:{K1},k1:{K2}", "twice"),
    ],
)
def test_a_malformed_key_is_refused_at_startup_without_echoing_it(raw: str, message: str) -> None:
    settings = Settings(payload_key=raw)
    with pytest.raises(ValueError, match=message) as refused:
        settings.payload_keys()
    assert K1 not in str(refused.value) and K2 not in str(refused.value)
    assert K1 not in repr(settings)


def test_no_key_means_no_encryption() -> None:
    assert Settings().payload_keys() is None
    assert Settings(payload_key=f" k2:{K2} , k1:{K1} ").payload_keys() is not None


async def test_the_api_and_worker_refuse_to_start_with_a_malformed_key() -> None:
    """Both connect through runlane.temporal.connect: nothing is written with a bad key."""
    with pytest.raises(ValueError, match="RUNLANE_PAYLOAD_KEY key 'k1' is 16 bytes"):
        await connect(Settings(payload_key="k1:" + "A" * 22), lazy=True)
