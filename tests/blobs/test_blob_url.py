"""RUNLANE_BLOB_URL: what it accepts, and the API and the worker refusing a malformed one
with a message that names the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from runlane.blobs import BlobLocation, BlobUrlError, parse_blob_url
from runlane.secret_box import generate_key
from tests.test_secrets_startup import API, WORKER, start

DEFAULT = Path("/srv/runlane/files")


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("", BlobLocation("file", root=DEFAULT)),
        ("  ", BlobLocation("file", root=DEFAULT)),
        ("file:///var/lib/runlane/docs", BlobLocation("file", root=Path("/var/lib/runlane/docs"))),
        ("file://localhost/docs", BlobLocation("file", root=Path("/docs"))),
        ("s3://runlane-docs", BlobLocation("s3", bucket="runlane-docs")),
        ("s3://runlane-docs/", BlobLocation("s3", bucket="runlane-docs")),
        ("s3://runlane.docs/a/b/", BlobLocation("s3", bucket="runlane.docs", prefix="a/b")),
    ],
)
def test_accepted_urls(url: str, location: BlobLocation) -> None:
    assert parse_blob_url(url, DEFAULT) == location


@pytest.mark.parametrize(
    "url",
    [
        "/var/lib/docs",  # a bare path: say file:///var/lib/docs
        "file://otherhost/docs",
        "file:relative/docs",
        "s3://",
        "s3:///docs",
        "s3://Runlane_Docs",
        "s3://RunlaneDocs",
        "s3://ab",
        "s3://bucket/a//b",
        "s3://key:secret@bucket",
        "s3://bucket:9000",
        "s3://bucket?region=eu-west-1",
        "gs://bucket",
        "http://minio:9000/bucket",
    ],
)
def test_malformed_urls_name_the_variable(url: str) -> None:
    with pytest.raises(BlobUrlError, match="RUNLANE_BLOB_URL"):
        parse_blob_url(url, DEFAULT)


def test_credentials_in_the_url_are_not_echoed() -> None:
    with pytest.raises(BlobUrlError) as raised:
        parse_blob_url("s3://AKIAEXAMPLE:topsecret@bucket/docs", DEFAULT)

    assert "AWS_*" in str(raised.value)
    assert "topsecret" not in str(raised.value)


@pytest.mark.parametrize("args", [API, WORKER], ids=["api", "worker"])
def test_a_malformed_url_refuses_to_start(args: list[str], tmp_path: Path) -> None:
    refused = start(
        args, tmp_path, RUNLANE_SECRETS_KEY=generate_key(), RUNLANE_BLOB_URL="gs://elsewhere"
    )

    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "RUNLANE_BLOB_URL must be file:///absolute/directory or s3://bucket" in output, output
