"""Content-addressed local blob store: documents live here, runs carry only references.

Blobs are named by their SHA-256, so the same content is stored once and a blob never
changes once written; the API writes, the worker's activities read.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Small chunks are gathered and written together: one thread hop per MiB, not per chunk.
_FLUSH_BYTES = 1024 * 1024


class BlobTooLarge(Exception):
    """More than `limit` bytes arrived; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"blob larger than {limit} bytes")
        self.limit = limit


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        # The name becomes a path: anything but a digest could escape the root.
        if not _SHA256_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> tuple[str, int]:
        """Stream into a temp file beside the blobs, then rename it into place atomically, so
        readers never see a partial blob. Returns (sha256 hex, size)."""
        handle, temp_path = await asyncio.to_thread(self._open_temp)
        digest = hashlib.sha256()
        size = 0
        pending = bytearray()
        placed = False
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLarge(max_bytes)
                pending += chunk
                if len(pending) >= _FLUSH_BYTES:
                    await asyncio.to_thread(_write, handle, digest, bytes(pending))
                    pending.clear()
            await asyncio.to_thread(_write, handle, digest, bytes(pending))
            sha256 = digest.hexdigest()
            await asyncio.to_thread(self._place, handle, temp_path, self.path(sha256))
            placed = True
            return sha256, size
        finally:
            if not placed:
                # Also on cancellation (a client that hung up): leave nothing partial behind.
                await asyncio.shield(asyncio.to_thread(_discard, handle, temp_path))

    def _open_temp(self) -> tuple[BinaryIO, Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".upload-", suffix=".part")
        return os.fdopen(fd, "wb"), Path(name)

    @staticmethod
    def _place(handle: BinaryIO, temp_path: Path, final: Path) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        final.parent.mkdir(parents=True, exist_ok=True)
        # Same name means same bytes: replacing an existing blob is harmless and atomic.
        os.replace(temp_path, final)


def _write(handle: BinaryIO, digest: hashlib._Hash, data: bytes) -> None:
    digest.update(data)
    handle.write(data)


def _discard(handle: BinaryIO, temp_path: Path) -> None:
    handle.close()
    temp_path.unlink(missing_ok=True)
