"""File metadata rows over content-addressed blobs (claim check: bytes never enter Temporal)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from runlane import ids
from runlane.blobs import BlobStore, BlobTooLarge, OpenedBlob
from store.db import Database
from store.tables import FileRow

# store_bytes hands the blob store slices, so one large document is not copied in one go.
_SLICE = 1024 * 1024


@dataclass(frozen=True)
class FileRecord:
    id: str
    organization_id: str
    filename: str
    mime_type: str
    size_bytes: int
    sha256: str
    created_at: datetime


class FileTooLarge(Exception):
    """The upload passed `limit` bytes; neither a row nor a blob was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"file larger than {limit} bytes")
        self.limit = limit


class FileRepository:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db = db
        self._blobs = blobs

    async def store(
        self,
        org: str,
        *,
        filename: str,
        mime_type: str,
        chunks: AsyncIterator[bytes],
        max_bytes: int,
    ) -> FileRecord:
        """Blob first, then the row: a row never points at missing bytes. If the insert
        fails, the blob stays (it may already be shared by another file) and is harmless."""
        try:
            sha256, size = await self._blobs.put_stream(chunks, max_bytes=max_bytes)
        except BlobTooLarge as exc:
            raise FileTooLarge(exc.limit) from None
        row = FileRow(
            id=ids.new_id(ids.FILE),
            organization_id=org,
            filename=filename,
            mime_type=mime_type,
            size_bytes=size,
            sha256=sha256,
            created_at=datetime.now(UTC),
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return _record(row)

    async def store_bytes(
        self, org: str, *, filename: str, mime_type: str, content: bytes, max_bytes: int
    ) -> FileRecord:
        if len(content) > max_bytes:
            raise FileTooLarge(max_bytes)
        return await self.store(
            org,
            filename=filename,
            mime_type=mime_type,
            chunks=_slices(content),
            max_bytes=max_bytes,
        )

    async def get(self, org: str, file_id: str) -> FileRecord | None:
        if not ids.is_valid(ids.FILE, file_id):
            return None  # not an id this store issues (and NUL would break PostgreSQL)
        query = select(FileRow).where(FileRow.id == file_id, FileRow.organization_id == org)
        async with self._db.session() as session:
            row = await session.scalar(query)
        return _record(row) if row is not None else None

    def content_path(self, record: FileRecord) -> Path | None:
        """The file's bytes on this machine's disk when documents are kept in a local
        directory; None when they are in object storage (read them with `open_content`)."""
        return self._blobs.local_path(record.sha256)

    async def open_content(self, record: FileRecord) -> OpenedBlob:
        """The file's bytes as a stream; BlobStoreUnavailable when the store cannot answer."""
        return await self._blobs.open(record.sha256)


async def _slices(content: bytes) -> AsyncIterator[bytes]:
    view = memoryview(content)
    for start in range(0, len(view), _SLICE):
        yield bytes(view[start : start + _SLICE])


def _record(row: FileRow) -> FileRecord:
    return FileRecord(
        id=row.id,
        organization_id=row.organization_id,
        filename=row.filename,
        mime_type=row.mime_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        created_at=row.created_at,
    )
