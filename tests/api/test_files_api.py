"""Documents over REST: multipart upload, metadata, the exact bytes back, the size limit."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from runlane.settings import Settings

# Small, so the limit is cheap to cross; every other upload here stays below it.
LIMIT = 4096


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_upload_bytes": LIMIT})


def _error(response: httpx.Response) -> dict:
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "details"}
    return error


async def _upload(
    api: httpx.AsyncClient, content: bytes, filename: str = "doc.bin", mime: str = "a/b"
) -> httpx.Response:
    return await api.post("/v1/files", files={"file": (filename, content, mime)})


def _blobs_named(root: Path, name: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and name in p.name]


async def test_upload_then_read_metadata_and_the_same_bytes(api: httpx.AsyncClient) -> None:
    content = bytes(range(256)) * 12  # every byte value, 3072 bytes
    uploaded = await _upload(api, content, "invoice.pdf", "application/pdf")
    assert uploaded.status_code == 201, uploaded.text
    file = uploaded.json()
    assert set(file) == {"id", "filename", "mime_type", "size_bytes", "sha256", "created_at"}
    assert file["id"].startswith("file_")
    assert file["filename"] == "invoice.pdf" and file["mime_type"] == "application/pdf"
    assert file["size_bytes"] == len(content)
    assert file["sha256"] == hashlib.sha256(content).hexdigest()
    assert datetime.fromisoformat(file["created_at"]).utcoffset() == timedelta(0)

    metadata = await api.get(f"/v1/files/{file['id']}")
    assert metadata.status_code == 200 and metadata.json() == file

    download = await api.get(f"/v1/files/{file['id']}/content")
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"] == "application/pdf"
    assert "invoice.pdf" in download.headers["content-disposition"]


@pytest.mark.parametrize(
    "mime",
    ["text/plain", "text/csv; charset=latin-1", "application/json", "image/png", "x-custom/y"],
)
async def test_content_type_is_answered_exactly_as_uploaded(
    api: httpx.AsyncClient, mime: str
) -> None:
    # Latin-1 bytes: answering "text/plain; charset=utf-8" would misdescribe them.
    content = "café, naïve".encode("latin-1")
    file = (await _upload(api, content, "notes.txt", mime)).json()
    assert file["mime_type"] == mime
    download = await api.get(f"/v1/files/{file['id']}/content")
    assert download.headers["content-type"] == mime
    assert download.content == content


async def test_same_bytes_twice_are_two_files(api: httpx.AsyncClient) -> None:
    first = (await _upload(api, b"same", "a.txt", "text/plain")).json()
    second = (await _upload(api, b"same", "b.csv", "text/csv")).json()
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    assert (await api.get(f"/v1/files/{first['id']}")).json()["filename"] == "a.txt"
    assert (await api.get(f"/v1/files/{second['id']}")).json()["filename"] == "b.csv"
    for file in (first, second):
        download = await api.get(f"/v1/files/{file['id']}/content")
        assert download.content == b"same"
        assert download.headers["content-type"] == file["mime_type"]


async def test_empty_and_unicode_named_files(api: httpx.AsyncClient) -> None:
    empty = await _upload(api, b"", "empty.bin", "application/octet-stream")
    assert empty.status_code == 201
    assert empty.json()["size_bytes"] == 0
    assert empty.json()["sha256"] == hashlib.sha256(b"").hexdigest()
    assert (await api.get(f"/v1/files/{empty.json()['id']}/content")).content == b""

    named = await _upload(api, b"%PDF-1.7", "Rechnung März 日本.pdf", "application/pdf")
    assert named.status_code == 201
    assert named.json()["filename"] == "Rechnung März 日本.pdf"
    download = await api.get(f"/v1/files/{named.json()['id']}/content")
    assert download.status_code == 200 and download.content == b"%PDF-1.7"


async def test_size_limit(api: httpx.AsyncClient, settings: Settings) -> None:
    at_limit = b"a" * LIMIT
    accepted = await _upload(api, at_limit)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["size_bytes"] == LIMIT
    assert (await api.get(f"/v1/files/{accepted.json()['id']}/content")).content == at_limit

    # Just over (streamed and counted) and far over (refused from Content-Length alone).
    for size in (LIMIT + 1, LIMIT + 200_000):
        content = b"b" * size
        refused = await _upload(api, content)
        assert refused.status_code == 413, (size, refused.text)
        error = _error(refused)
        assert error["type"] == "payload_too_large" and error["code"] == "file_too_large"
        assert str(LIMIT) in error["message"]
        # Nothing of it was kept: no blob under its hash and no partial upload left over.
        assert _blobs_named(settings.files_dir, hashlib.sha256(content).hexdigest()) == []
        assert _blobs_named(settings.files_dir, ".part") == []
    # The store still works after a refusal.
    assert (await _upload(api, b"fine")).status_code == 201


async def test_requests_without_a_file_part_are_422(api: httpx.AsyncClient) -> None:
    for kwargs in (
        {"files": {"document": ("a.txt", b"x", "text/plain")}},
        {"data": {"file": "just a string, not a file"}},
        {"json": {"file": "aGVsbG8="}},
        {},
    ):
        response = await api.post("/v1/files", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 422, (kwargs, response.text)
        error = _error(response)
        assert error["type"] == "invalid_request"
        assert error["details"]["errors"][0]["loc"] == ["body", "file"]
    for body, content_type in (
        (b"no multipart here", "multipart/form-data; boundary=zzz"),
        (b"--zzz\r\nContent-Disposition: form-data\r\n\r\nx", "multipart/form-data; boundary=zzz"),
        (b"\xff\xfe\x00", "multipart/form-data"),
        (b"{}", "application/json"),
    ):
        response = await api.post("/v1/files", content=body, headers={"content-type": content_type})
        assert 400 <= response.status_code < 500, (body, response.status_code, response.text)
        assert _error(response)["type"] == "invalid_request"


async def test_file_names_and_types_a_store_cannot_keep_are_422(api: httpx.AsyncClient) -> None:
    # httpx escapes a NUL in a filename, so this multipart body is written by hand.
    nul_name = (
        b'--zzz\r\nContent-Disposition: form-data; name="file"; filename="a\x00b.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nx\r\n--zzz--\r\n"
    )
    headers = {"content-type": "multipart/form-data; boundary=zzz"}
    for response in (
        await api.post("/v1/files", content=nul_name, headers=headers),
        await _upload(api, b"x", filename="a.txt", mime="text/" + "x" * 300),
    ):
        assert response.status_code == 422, response.text
        error = _error(response)
        assert error["type"] == "invalid_request" and error["details"]["errors"][0]["loc"][:2] == [
            "body",
            "file",
        ]


async def test_unknown_file_ids_are_404(api: httpx.AsyncClient) -> None:
    real = (await _upload(api, b"x")).json()["id"]
    for file_id in ("file_" + "0" * 32, real + "0", real.upper(), "x" * 5000, "ファイル", "a%00b"):
        for suffix in ("", "/content"):
            response = await api.get(f"/v1/files/{file_id}{suffix}")
            assert response.status_code == 404, (file_id[:40], suffix)
            error = _error(response)
            assert error["type"] == "not_found" and error["code"] == "file_not_found"


async def test_files_need_a_key(app: FastAPI, api: httpx.AsyncClient) -> None:
    file_id = (await _upload(api, b"x")).json()["id"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as anonymous:
        for response in (
            await anonymous.post("/v1/files", files={"file": ("a", b"x", "text/plain")}),
            await anonymous.get(f"/v1/files/{file_id}"),
            await anonymous.get(f"/v1/files/{file_id}/content"),
        ):
            assert response.status_code == 401
            assert _error(response)["type"] == "authentication"
