"""The blob store on its own: content addressing, atomic placement, limits, bad names."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runlane.blobs import BlobStore, BlobTooLarge


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_a_large_stream_is_stored_under_its_digest(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    parts = [bytes([i]) * 300_000 for i in range(10)]  # crosses the write batching threshold
    content = b"".join(parts)

    sha256, size = await blobs.put_stream(stream(*parts), max_bytes=len(content))

    assert sha256 == hashlib.sha256(content).hexdigest()
    assert size == len(content)
    assert blobs.path(sha256) == tmp_path / "blobs" / sha256[:2] / sha256
    assert blobs.exists(sha256)
    assert blobs.path(sha256).read_bytes() == content
    assert files_under(blobs.root) == [blobs.path(sha256)]


async def test_over_the_limit_raises_and_keeps_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)

    with pytest.raises(BlobTooLarge) as raised:
        await blobs.put_stream(stream(b"abc", b"de"), max_bytes=4)

    assert raised.value.limit == 4
    assert files_under(tmp_path) == []


async def test_a_failing_stream_keeps_nothing(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await BlobStore(tmp_path).put_stream(broken(), max_bytes=100)

    assert files_under(tmp_path) == []


async def test_a_cancelled_upload_keeps_nothing(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"partial"
        started.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(BlobStore(tmp_path).put_stream(stalled(), max_bytes=100))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert files_under(tmp_path) == []


async def test_concurrent_writes_of_the_same_content_give_one_blob(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)

    results = await asyncio.gather(
        *(blobs.put_stream(stream(b"same ", b"bytes"), max_bytes=100) for _ in range(5))
    )

    assert len(set(results)) == 1
    assert files_under(tmp_path) == [blobs.path(results[0][0])]


@pytest.mark.parametrize("name", ["../../etc/passwd", "ABC", "a" * 63, ""])
def test_names_that_are_not_digests_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        BlobStore(tmp_path).path(name)


def test_unknown_digest_does_not_exist(tmp_path: Path) -> None:
    assert not BlobStore(tmp_path).exists("0" * 64)
