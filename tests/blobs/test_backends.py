"""The blob store contract, run against both backends RUNLANE_BLOB_URL chooses: a local
directory and S3-compatible object storage (a real S3 server on 127.0.0.1, tests/s3.py)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from runlane.blobs import (
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
    BlobTooLarge,
    LocalBlobStore,
    S3BlobStore,
    blob_store,
)
from tests.s3 import S3Server


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return blob_store("", tmp_path / "files")
    return blob_store(request.getfixturevalue("s3_url"), tmp_path / "unused")


def stored_names(store: BlobStore) -> list[str]:
    """Everything the backend holds, temporary files and parts included."""
    if isinstance(store, LocalBlobStore):
        root = store.root
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert isinstance(store, S3BlobStore)
    bucket = store.name.removeprefix("s3://").split("/", 1)[0]
    listed = obstore.list(S3Store(bucket)).collect()
    return sorted(meta["path"] for meta in listed)


async def test_a_large_stream_is_stored_under_its_digest_and_read_back(
    backend: BlobStore,
) -> None:
    # 13 MB in 1.3 MB parts: past the write batching, and past S3's single-PUT size (the
    # upload goes in parts).
    parts = [bytes([i]) * 1_300_000 for i in range(10)]
    content = b"".join(parts)

    sha256, size = await backend.put_stream(stream(*parts), max_bytes=len(content))

    assert sha256 == hashlib.sha256(content).hexdigest()
    assert size == len(content)
    assert await backend.exists(sha256)
    opened = await backend.open(sha256)
    assert opened.size == len(content)
    assert b"".join([chunk async for chunk in opened.chunks]) == content
    assert await backend.read(sha256) == content
    assert len(stored_names(backend)) == 1
    assert stored_names(backend)[0].endswith(f"{sha256[:2]}/{sha256}")


async def test_a_small_and_an_empty_blob(backend: BlobStore) -> None:
    small, _ = await backend.put_stream(stream(b"hello ", b"world"), max_bytes=100)
    empty, size = await backend.put_stream(stream(), max_bytes=100)

    assert await backend.read(small) == b"hello world"
    assert (await backend.read(empty), size) == (b"", 0)


async def test_over_the_limit_raises_and_keeps_nothing(backend: BlobStore) -> None:
    with pytest.raises(BlobTooLarge) as raised:
        await backend.put_stream(stream(b"abc", b"de"), max_bytes=4)

    assert raised.value.limit == 4
    assert not await backend.exists(hashlib.sha256(b"abcde").hexdigest())
    assert stored_names(backend) == []


async def test_a_failing_stream_keeps_nothing(backend: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await backend.put_stream(broken(), max_bytes=100)

    assert stored_names(backend) == []


async def test_a_cancelled_upload_keeps_nothing(backend: BlobStore) -> None:
    started = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"partial"
        started.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(backend.put_stream(stalled(), max_bytes=100))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert stored_names(backend) == []


async def test_concurrent_writes_of_the_same_content_give_one_blob(backend: BlobStore) -> None:
    results = await asyncio.gather(
        *(backend.put_stream(stream(b"same ", b"bytes"), max_bytes=100) for _ in range(5))
    )

    assert len(set(results)) == 1
    assert len(stored_names(backend)) == 1
    assert await backend.read(results[0][0]) == b"same bytes"


async def test_a_missing_blob(backend: BlobStore) -> None:
    missing = "0" * 64

    assert not await backend.exists(missing)
    with pytest.raises(BlobNotFound):
        await backend.open(missing)
    await backend.delete(missing)  # nothing to delete is not an error


async def test_delete_removes_the_blob(backend: BlobStore) -> None:
    sha256, _ = await backend.put_stream(stream(b"to be deleted"), max_bytes=100)

    await backend.delete(sha256)

    assert not await backend.exists(sha256)
    with pytest.raises(BlobNotFound):
        await backend.read(sha256)
    assert stored_names(backend) == []


@pytest.mark.parametrize("name", ["../../etc/passwd", "ABC", "a" * 63, ""])
async def test_names_that_are_not_digests_are_refused(backend: BlobStore, name: str) -> None:
    with pytest.raises(ValueError):
        await backend.exists(name)
    with pytest.raises(ValueError):
        await backend.open(name)


def test_the_local_store_lays_blobs_out_by_digest(tmp_path: Path) -> None:
    store = blob_store(f"file://{tmp_path}/docs", tmp_path / "default")

    assert isinstance(store, LocalBlobStore)
    assert store.local_path("ab" * 32) == tmp_path / "docs" / "ab" / ("ab" * 32)


async def test_a_store_that_is_down_is_a_named_error(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    down = S3Server().start()
    down.use(monkeypatch)
    bucket = down.create_bucket()
    store = blob_store(f"s3://{bucket}", tmp_path)
    sha256, _ = await store.put_stream(stream(b"kept"), max_bytes=100)
    down.stop()

    for attempt in (
        store.exists(sha256),
        store.open(sha256),
        store.put_stream(stream(b"new"), max_bytes=100),
        store.delete(sha256),
    ):
        with pytest.raises(BlobStoreUnavailable) as raised:
            await attempt
        assert raised.value.code == "blob_store_unavailable"
        assert raised.value.message == (
            f"The document store (s3://{bucket}) is unavailable: it cannot be reached"
        )


async def test_a_missing_bucket_is_a_named_error(s3_url: str, tmp_path: Path) -> None:
    store = blob_store("s3://runlane-no-such-bucket/x", tmp_path)

    with pytest.raises(BlobStoreUnavailable, match="the bucket does not exist"):
        await store.put_stream(stream(b"doc"), max_bytes=100)
    with pytest.raises(BlobStoreUnavailable, match="the bucket does not exist"):
        await store.open("0" * 64)
