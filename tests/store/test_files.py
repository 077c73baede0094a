"""Files: metadata rows over deduplicated blobs, with the upload size limit."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runlane.blobs import LocalBlobStore
from store.files import FileRecord, FileRepository, FileTooLarge

ORG = "org_a"


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def content_of(files: FileRepository, record: FileRecord) -> bytes:
    path = files.content_path(record)
    assert path is not None  # a local store
    return path.read_bytes()


def stored_blobs(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_store_then_get_and_read_back(files: FileRepository) -> None:
    content = b"%PDF-1.7 invoice" * 1000

    record = await files.store(
        ORG,
        filename="invoice.pdf",
        mime_type="application/pdf",
        chunks=stream(content[:5000], content[5000:]),
        max_bytes=1_000_000,
    )

    assert record.id.startswith("file_")
    assert record.size_bytes == len(content)
    assert record.sha256 == hashlib.sha256(content).hexdigest()
    assert record.created_at.utcoffset() is not None
    assert await files.get(ORG, record.id) == record
    assert content_of(files, record) == content


async def test_files_of_another_organization_are_missing(files: FileRepository) -> None:
    record = await files.store_bytes(
        ORG, filename="a.txt", mime_type="text/plain", content=b"hi", max_bytes=10
    )

    assert await files.get("org_b", record.id) is None
    assert await files.get(ORG, "file_doesnotexist") is None
    assert await files.get(ORG, "file_\x00") is None  # PostgreSQL would refuse the query


async def test_a_file_exactly_at_the_limit_is_accepted(files: FileRepository) -> None:
    record = await files.store(
        ORG,
        filename="a.bin",
        mime_type="application/octet-stream",
        chunks=stream(b"x" * 6, b"y" * 4),
        max_bytes=10,
    )

    assert record.size_bytes == 10


async def test_one_byte_over_the_limit_leaves_nothing_behind(
    files: FileRepository, blobs: LocalBlobStore
) -> None:
    content = b"z" * 11

    with pytest.raises(FileTooLarge) as raised:
        await files.store(
            ORG,
            filename="a.bin",
            mime_type="application/octet-stream",
            chunks=stream(content[:6], content[6:]),
            max_bytes=10,
        )

    assert raised.value.limit == 10
    assert stored_blobs(blobs.root) == []
    assert not await blobs.exists(hashlib.sha256(content).hexdigest())


async def test_the_limit_stops_reading_the_stream(files: FileRepository) -> None:
    consumed = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal consumed
        while True:
            consumed += 1
            yield b"a" * 1024

    with pytest.raises(FileTooLarge):
        await files.store(
            ORG, filename="a", mime_type="text/plain", chunks=endless(), max_bytes=4096
        )

    assert consumed == 5


async def test_store_bytes_applies_the_limit(files: FileRepository, blobs: LocalBlobStore) -> None:
    with pytest.raises(FileTooLarge):
        await files.store_bytes(
            ORG, filename="a", mime_type="text/plain", content=b"12345", max_bytes=4
        )

    record = await files.store_bytes(
        ORG, filename="a", mime_type="text/plain", content=b"1234", max_bytes=4
    )
    assert content_of(files, record) == b"1234"
    assert len(stored_blobs(blobs.root)) == 1


async def test_the_same_content_twice_is_one_blob_and_two_files(
    files: FileRepository, blobs: LocalBlobStore
) -> None:
    first = await files.store_bytes(
        ORG, filename="a.txt", mime_type="text/plain", content=b"same", max_bytes=100
    )
    second = await files.store_bytes(
        ORG, filename="b.txt", mime_type="text/plain", content=b"same", max_bytes=100
    )

    assert first.id != second.id
    assert first.sha256 == second.sha256
    assert stored_blobs(blobs.root) == [files.content_path(first)]
    assert (await files.get(ORG, second.id)) == second


async def test_an_empty_file_is_stored(files: FileRepository) -> None:
    record = await files.store_bytes(
        ORG, filename="empty", mime_type="text/plain", content=b"", max_bytes=10
    )

    assert record.size_bytes == 0
    assert content_of(files, record) == b""
