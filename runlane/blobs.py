"""Content-addressed blob stores: documents live here, runs carry only references.

Blobs are named by their SHA-256, so the same content is stored once and a blob never
changes once written; the API writes, the worker's activities read. Where they live is
`RUNLANE_BLOB_URL`'s choice (`parse_blob_url`): a local directory (the default, the data
dir's `files/`), or S3-compatible object storage (`s3://bucket/prefix`, through obstore),
so API replicas and workers on different machines share documents without a shared volume.
Both backends keep the same guarantees: a reader never sees a partial blob, an upload over
the limit leaves nothing behind, and a store that cannot be reached is a named error
(`BlobStoreUnavailable`, a 503 in the API), never a stack trace.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Literal
from urllib.parse import unquote, urlsplit

import obstore
from obstore.exceptions import BaseError as ObjectStoreError
from obstore.exceptions import NotFoundError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from runlane.errors import Unavailable

if TYPE_CHECKING:
    from obstore.store import RetryConfig  # a TypedDict of the stubs only

log = logging.getLogger("runlane.blobs")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Small chunks are gathered and written together: one thread hop per MiB, not per chunk.
_FLUSH_BYTES = 1024 * 1024
_READ_CHUNK = 1024 * 1024
# An S3 upload up to this size is one PUT from memory; a larger one is spooled to a local
# temporary file (its digest, hence its name, is known only at the end) and sent in parts.
_SINGLE_PUT_BYTES = 8 * 1024 * 1024
# obstore retries for up to 3 minutes by default: a request (an upload, a node) would hang
# that long on a store that is down. A few quick retries, then the caller hears why.
_S3_RETRY: RetryConfig = {"max_retries": 2, "retry_timeout": timedelta(seconds=10)}
# S3 bucket names (the rules all S3-compatible servers accept).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
BLOB_URL_VARIABLE = "RUNLANE_BLOB_URL"
# obstore raises its own NotFoundError or the built-in FileNotFoundError for a missing object,
# its own errors or built-in OSErrors (a refused connection among them) for the rest.
_NOT_FOUND = (NotFoundError, FileNotFoundError)
_FAILED = (ObjectStoreError, OSError)


class BlobTooLarge(Exception):
    """More than `limit` bytes arrived; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"blob larger than {limit} bytes")
        self.limit = limit


class BlobNotFound(Exception):
    """No blob under that digest."""


class BlobStoreUnavailable(Unavailable):
    """The store did not answer, or refused (credentials, a missing bucket): trying later, or
    fixing the configuration, may work. The message names the store and the reason."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(
            "blob_store_unavailable",
            f"The document store ({store}) is unavailable: {reason}",
        )


def _failure_kind(err: Exception) -> str:
    text = str(err)
    if "NoSuchBucket" in text:
        return "the bucket does not exist"
    if isinstance(err, PermissionDeniedError | UnauthenticatedError) or re.search(
        r"\b(AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|403 Forbidden)\b", text
    ):
        return "access denied (check the AWS_* credentials)"
    if "error sending request" in text or "timed out" in text.lower():
        return "it cannot be reached"
    return "it answered with an error"


class BlobUrlError(ValueError):
    """RUNLANE_BLOB_URL is malformed; the message names the variable and the accepted forms."""


@dataclass(frozen=True)
class BlobLocation:
    kind: Literal["file", "s3"]
    root: Path | None = None  # file
    bucket: str = ""  # s3
    prefix: str = ""  # s3, without leading or trailing slashes


def parse_blob_url(url: str, default_root: Path) -> BlobLocation:
    """`""` -> `default_root`; `file:///absolute/dir`; `s3://bucket[/prefix]`. Anything else
    raises BlobUrlError naming RUNLANE_BLOB_URL."""
    url = url.strip()
    if not url:
        return BlobLocation("file", root=Path(default_root))
    forms = "file:///absolute/directory or s3://bucket[/prefix]"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BlobUrlError(f"{BLOB_URL_VARIABLE} must be {forms}, not {url!r}") from None
    if parts.query or parts.fragment or parts.username or parts.password or port:
        # Not echoed: it may hold credentials.
        raise BlobUrlError(
            f"{BLOB_URL_VARIABLE} must be {forms}, with no credentials, port, query or "
            "fragment (credentials and the endpoint come from the AWS_* variables)"
        )
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise BlobUrlError(f"{BLOB_URL_VARIABLE} must be {forms}, not {url!r}")
        return BlobLocation("file", root=Path(path))
    if parts.scheme == "s3":
        bucket = parts.netloc  # as written: `hostname` would lower-case it
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise BlobUrlError(
                f"{BLOB_URL_VARIABLE}: {bucket!r} is not an S3 bucket name (3-63 lowercase "
                f"letters, digits, dots and hyphens); expected {forms}"
            )
        prefix = unquote(parts.path).strip("/")
        if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
            raise BlobUrlError(
                f"{BLOB_URL_VARIABLE}: the prefix {prefix!r} has an empty, '.' or '..' segment"
            )
        return BlobLocation("s3", bucket=bucket, prefix=prefix)
    raise BlobUrlError(f"{BLOB_URL_VARIABLE} must be {forms}, not {url!r}")


def blob_key(sha256: str) -> str:
    """The blob's name inside the store: `ab/abcdef...`."""
    # The name becomes a path or a key: anything but a digest could escape the root.
    if not _SHA256_RE.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"{sha256[:2]}/{sha256}"


@dataclass
class OpenedBlob:
    """A blob being read: its size is known before its bytes arrive (Content-Length)."""

    size: int
    chunks: AsyncIterator[bytes]


class BlobStore(ABC):
    """One interface over every backend; what the API (FileRepository) and the worker's
    activities (ActivityDeps.blobs) read and write documents through."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Where the blobs live, for messages (never carries credentials)."""

    @abstractmethod
    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> tuple[str, int]:
        """Store the stream under its digest; returns (sha256 hex, size). Raises BlobTooLarge
        past `max_bytes` (keeping nothing)."""

    @abstractmethod
    async def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    async def open(self, sha256: str) -> OpenedBlob:
        """Raises BlobNotFound when there is no such blob."""

    @abstractmethod
    async def delete(self, sha256: str) -> None:
        """Removes the blob; a missing one is not an error."""

    async def read(self, sha256: str) -> bytes:
        opened = await self.open(sha256)
        return b"".join([chunk async for chunk in opened.chunks])

    def local_path(self, sha256: str) -> Path | None:
        """The blob's file when the store is a local directory (served with sendfile and
        ranges); None for object storage."""
        return None


class LocalBlobStore(BlobStore):
    """A directory: one machine, or a volume every process mounts."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def name(self) -> str:
        return str(self.root)

    def path(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def local_path(self, sha256: str) -> Path | None:
        return self.path(sha256)

    async def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def open(self, sha256: str) -> OpenedBlob:
        try:
            handle = await asyncio.to_thread(self.path(sha256).open, "rb")
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None
        size = os.fstat(handle.fileno()).st_size
        return OpenedBlob(size=size, chunks=_read_file(handle))

    async def delete(self, sha256: str) -> None:
        await asyncio.to_thread(self.path(sha256).unlink, missing_ok=True)

    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> tuple[str, int]:
        """Stream into a temp file beside the blobs, then rename it into place atomically, so
        readers never see a partial blob."""
        handle, temp_path = await asyncio.to_thread(_open_temp, self.root)
        placed = False
        try:
            sha256, size = await _spool(chunks, handle, max_bytes)
            await asyncio.to_thread(self._place, handle, temp_path, self.path(sha256))
            placed = True
            return sha256, size
        finally:
            if not placed:
                # Also on cancellation (a client that hung up): leave nothing partial behind.
                await asyncio.shield(asyncio.to_thread(_discard, handle, temp_path))

    @staticmethod
    def _place(handle: BinaryIO, temp_path: Path, final: Path) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        final.parent.mkdir(parents=True, exist_ok=True)
        # Same name means same bytes: replacing an existing blob is harmless and atomic.
        os.replace(temp_path, final)


class S3BlobStore(BlobStore):
    """S3-compatible object storage through obstore. The endpoint, credentials and region
    come from the standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP for a plain-http endpoint, ...), read
    by obstore when the store is built. An object appears whole or not at all (a PUT or a
    completed multipart upload), so readers never see a partial blob."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        self._name = f"s3://{bucket}/{prefix}".rstrip("/")
        # client_options are left to the environment: passing any replaces what the AWS_*
        # variables set (AWS_ALLOW_HTTP among them).
        self._store = S3Store(bucket, prefix=prefix or None, retry_config=_S3_RETRY)

    @property
    def name(self) -> str:
        return self._name

    def _unavailable(self, err: Exception) -> BlobStoreUnavailable:
        # The caller hears what kind of failure it is; the details (the endpoint's address,
        # the request, the store's answer) go to this process's log, for its operator.
        # obstore appends a multi-line debug dump: the first line says what failed and why.
        log.warning("document store %s: %s", self._name, str(err).split("\n", 1)[0].strip())
        return BlobStoreUnavailable(self._name, _failure_kind(err))

    async def exists(self, sha256: str) -> bool:
        key = blob_key(sha256)
        try:
            await obstore.head_async(self._store, key)
        except _NOT_FOUND as err:
            if "NoSuchBucket" in str(err):
                raise self._unavailable(err) from None
            return False
        except _FAILED as err:
            raise self._unavailable(err) from None
        return True

    async def open(self, sha256: str) -> OpenedBlob:
        key = blob_key(sha256)
        try:
            result = await obstore.get_async(self._store, key)
        except _NOT_FOUND as err:
            if "NoSuchBucket" in str(err):
                raise self._unavailable(err) from None
            raise BlobNotFound(sha256) from None
        except _FAILED as err:
            raise self._unavailable(err) from None
        return OpenedBlob(size=int(result.meta["size"]), chunks=self._chunks(result))

    async def _chunks(self, result: obstore.GetResult) -> AsyncIterator[bytes]:
        try:
            async for chunk in result.stream(min_chunk_size=_READ_CHUNK):
                yield bytes(chunk)
        except _FAILED as err:
            raise self._unavailable(err) from None

    async def delete(self, sha256: str) -> None:
        try:
            await obstore.delete_async(self._store, blob_key(sha256))
        except _NOT_FOUND:
            return
        except _FAILED as err:
            raise self._unavailable(err) from None

    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> tuple[str, int]:
        # The key is the digest, known only once the last byte arrived: spool first (memory
        # up to a few MiB, then a temp file), then upload once, unless the blob is there.
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SINGLE_PUT_BYTES)  # noqa: SIM115
        try:
            sha256, size = await _spool(chunks, spool, max_bytes)
            if await self.exists(sha256):
                return sha256, size  # same name, same bytes: stored already
            key = blob_key(sha256)
            try:
                if size <= _SINGLE_PUT_BYTES:
                    spool.seek(0)
                    await obstore.put_async(self._store, key, spool.read())
                else:
                    await obstore.put_async(
                        self._store, key, _read_spool(spool), use_multipart=True
                    )
            except _FAILED as err:
                raise self._unavailable(err) from None
            return sha256, size
        finally:
            await asyncio.shield(asyncio.to_thread(spool.close))


async def _spool(
    chunks: AsyncIterator[bytes], handle: IO[bytes], max_bytes: int
) -> tuple[str, int]:
    """Write the stream to `handle` while hashing it; BlobTooLarge past `max_bytes`."""
    digest = hashlib.sha256()
    size = 0
    pending = bytearray()
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise BlobTooLarge(max_bytes)
        pending += chunk
        if len(pending) >= _FLUSH_BYTES:
            await asyncio.to_thread(_write, handle, digest, bytes(pending))
            pending.clear()
    await asyncio.to_thread(_write, handle, digest, bytes(pending))
    return digest.hexdigest(), size


async def _read_spool(spool: IO[bytes]) -> AsyncIterator[bytes]:
    await asyncio.to_thread(spool.seek, 0)
    while chunk := await asyncio.to_thread(spool.read, _SINGLE_PUT_BYTES):
        yield chunk


async def _read_file(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, _READ_CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


def _open_temp(root: Path) -> tuple[BinaryIO, Path]:
    root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=root, prefix=".upload-", suffix=".part")
    return os.fdopen(fd, "wb"), Path(name)


def _write(handle: IO[bytes], digest: hashlib._Hash, data: bytes) -> None:
    digest.update(data)
    handle.write(data)


def _discard(handle: BinaryIO, temp_path: Path) -> None:
    handle.close()
    temp_path.unlink(missing_ok=True)


def open_blob_store(location: BlobLocation) -> BlobStore:
    if location.kind == "s3":
        return S3BlobStore(location.bucket, location.prefix)
    assert location.root is not None
    return LocalBlobStore(location.root)


@lru_cache(maxsize=16)
def _cached_store(url: str, default_root: Path) -> BlobStore:
    return open_blob_store(parse_blob_url(url, default_root))


def blob_store(url: str, default_root: Path) -> BlobStore:
    """The process's store for `RUNLANE_BLOB_URL` (one per URL, so an S3 store's connection
    pool is shared by every request). Raises BlobUrlError when the URL is malformed."""
    return _cached_store(url.strip(), Path(default_root))
