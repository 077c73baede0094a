"""Documents: stored once, referenced by runs (claim check)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import APIRouter, Request, UploadFile, status
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from api import schemas
from api.deps import FilesDep, OrgDep, SettingsDep, require
from api.errors import ApiError
from runlane.errors import invalid, not_found
from runlane.permissions import Permission
from store.files import FileRecord, FileTooLarge

router = APIRouter(prefix="/v1/files", tags=["files"], responses=schemas.ERROR_RESPONSES)

_CHUNK = 1024 * 1024
# Multipart framing around the file part; a request larger than limit + this is refused
# before its body is read.
_MULTIPART_OVERHEAD = 64 * 1024


def file_out(record: FileRecord) -> schemas.FileOut:
    return schemas.FileOut(
        id=record.id,
        filename=record.filename,
        mime_type=record.mime_type,
        size_bytes=record.size_bytes,
        sha256=record.sha256,
        created_at=record.created_at,
    )


class _UploadMeta(BaseModel):
    """The multipart part's own filename and type, held to the inline documents' rules."""

    filename: schemas.FileName
    mime_type: schemas.MimeType


def _upload_meta(file: UploadFile) -> _UploadMeta:
    try:
        return _UploadMeta(
            filename=file.filename or "upload",
            mime_type=file.content_type or "application/octet-stream",
        )
    except ValidationError as exc:
        errors = [
            {"loc": ["body", "file", *error["loc"]], "message": error["msg"]}
            for error in exc.errors()
        ]
        shown = "; ".join(f"{e['loc'][-1]}: {e['message']}" for e in errors)
        raise invalid("validation_failed", f"Invalid file part: {shown}", errors) from None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "file_too_large", f"The file is larger than the limit of {limit} bytes.")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.FileOut,
    dependencies=[require(Permission.RUN)],
)
async def upload_file(
    request: Request, file: UploadFile, org: OrgDep, files: FilesDep, settings: SettingsDep
) -> schemas.FileOut:
    """Store a document (multipart field `file`)."""
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _MULTIPART_OVERHEAD:
        raise _too_large(limit)
    meta = _upload_meta(file)

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await file.read(_CHUNK):
            yield chunk

    try:
        record = await files.store(
            org,
            filename=meta.filename,
            mime_type=meta.mime_type,
            chunks=chunks(),
            max_bytes=limit,
        )
    except FileTooLarge:
        raise _too_large(limit) from None
    return file_out(record)


@router.get("/{file_id}", response_model=schemas.FileOut, dependencies=[require(Permission.READ)])
async def get_file(file_id: str, org: OrgDep, files: FilesDep) -> schemas.FileOut:
    """A file's metadata."""
    record = await files.get(org, file_id)
    if record is None:
        raise not_found("file", file_id)
    return file_out(record)


@router.get(
    "/{file_id}/content", response_class=FileResponse, dependencies=[require(Permission.READ)]
)
async def get_file_content(file_id: str, org: OrgDep, files: FilesDep) -> Response:
    """A file's bytes, with its original Content-Type."""
    record = await files.get(org, file_id)
    if record is None:
        raise not_found("file", file_id)
    path = files.content_path(record)
    response: Response
    if path is not None:
        response = FileResponse(path, media_type=record.mime_type, filename=record.filename)
    else:
        # Object storage: streamed through (a store that cannot answer is a 503 here,
        # before the status line is sent).
        opened = await files.open_content(record)
        response = StreamingResponse(
            opened.chunks,
            media_type=record.mime_type,
            headers={
                "content-length": str(opened.size),
                "content-disposition": _attachment(record.filename),
            },
        )
    # Starlette appends "; charset=utf-8" to text/* types: the bytes are the uploader's, in
    # whatever encoding they declared (or did not), so answer exactly what they sent.
    response.headers["content-type"] = record.mime_type
    return response


def _attachment(filename: str) -> str:
    # As Starlette's FileResponse words it, so both backends answer alike.
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'
