"""Reading a run's documents inside a node's activity (core or plugin node types).

A document input reaches nodes as its file reference (claim check: `start` nodes output
`{"file_id", "filename", "mime_type", "size_bytes", "sha256"}`); its bytes are in the blob
store the worker shares with the API (`ActivityDeps.blobs`, RUNLANE_BLOB_URL). Failures
become node errors that say what happened: a store that cannot be reached is retried as the
node's retry policy says, a missing blob or a worker without a store is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio.exceptions import ApplicationError

from runlane.blobs import BlobNotFound, BlobStore, BlobStoreUnavailable, OpenedBlob


async def open_document(blobs: BlobStore | None, document: Mapping[str, Any]) -> OpenedBlob:
    """The document's bytes as a stream (`size`, `chunks`); `document` is a file reference."""
    if blobs is None:
        raise ApplicationError(
            "this worker has no document store (ActivityDeps.blobs)",
            type="DocumentStoreMissing",
            non_retryable=True,
        )
    sha256 = document.get("sha256") if isinstance(document, Mapping) else None
    if not isinstance(sha256, str):
        raise ApplicationError(
            "not a document reference (a start node's output, with its sha256)",
            type="NotADocument",
            non_retryable=True,
        )
    try:
        return await blobs.open(sha256)
    except ValueError:
        raise ApplicationError(
            f"not a document reference: sha256 {sha256[:80]!r}",
            type="NotADocument",
            non_retryable=True,
        ) from None
    except BlobNotFound:
        raise ApplicationError(
            f"document {document.get('file_id', sha256)} has no bytes in the store {blobs.name}",
            type="DocumentNotFound",
            non_retryable=True,
        ) from None
    except BlobStoreUnavailable as err:
        raise ApplicationError(err.message, type="BlobStoreUnavailable") from None


async def read_document(blobs: BlobStore | None, document: Mapping[str, Any]) -> bytes:
    """The whole document (mind its `size_bytes`: stream large ones with `open_document`)."""
    opened = await open_document(blobs, document)
    try:
        return b"".join([chunk async for chunk in opened.chunks])
    except BlobStoreUnavailable as err:
        raise ApplicationError(err.message, type="BlobStoreUnavailable") from None
