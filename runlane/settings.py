"""One settings object for the API, the worker, `make run` and docker-compose.

Every variable is in API.md's configuration table, except worker tuning (README's table
has all). Nothing here is read at import time: callers go through :func:`get_settings`
(cached), and workflow code never reads settings at all.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast, get_args

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runlane.payload_crypto import PayloadKeys, parse_payload_keys
from runlane.secret_box import KEY_FILENAME as SECRETS_KEY_FILENAME
from runlane.secret_box import SecretKeys, SecretsKeyError, missing_key_message, parse_secret_keys

if TYPE_CHECKING:
    from runlane.blobs import BlobStore

DEV_ORGANIZATION = "org_dev"
DEV_KEY_FILENAME = "dev-api-key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUNLANE_", extra="ignore")

    # "key1:org_a,key2:org_b:runner,key3:org_b:reviewer:ana@example.com" (key:org[:role[:subject]]);
    # empty means: the generated development key for org_dev, an admin.
    api_keys: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://localhost:8233"
    task_queue: str = "runlane"
    data_dir: Path = Path("./.data")
    database_url: str = ""
    # Where documents live (runlane/blobs.py): unset, the data dir's `files/`;
    # `file:///absolute/dir`; or `s3://bucket/prefix` (endpoint and credentials from AWS_*).
    blob_url: str = ""
    max_upload_bytes: int = Field(default=52_428_800, gt=0)
    # Unset: room for one inline base64 document (4/3 of an upload) plus 1 MiB (API.md).
    max_request_bytes: int | None = Field(default=None, gt=0)
    http_allow_private: bool = False
    # Workflows kept in the worker's memory between tasks; an evicted one is rebuilt by
    # replaying its history when it next has work. Measured (bench, 2,000 runs waiting on a
    # review): the SDK default of 1,000 costs 129 KB of worker memory per waiting run, 250
    # costs 42 KB, and every run still completes after its decision.
    worker_max_cached_workflows: int = Field(default=250, ge=0)
    # Items a map's child workflow runs before it continues as new (worker side; each run
    # records it, so runs in flight keep theirs): bounds the events of one history.
    map_items_per_execution: int = Field(default=1000, ge=1, le=5000)
    # Event webhooks (triggers/delivery.py): the first retry after this many seconds, doubling
    # up to the max interval, for as long as `event_retry_for_s` after the event (25 h: API.md
    # promises at least 24). The worker that emits an event freezes these into its delivery.
    event_retry_initial_s: float = Field(default=5, gt=0, le=86_400)
    event_retry_max_interval_s: float = Field(default=3600, gt=0, le=86_400)
    event_retry_for_s: float = Field(default=90_000, ge=0, le=30 * 86_400)
    # Bulk operations (bulk/workflow.py): actions per second one operation applies at most,
    # paced with durable timers, and how many of them run at once; an operation keeps the
    # pace it started with. Interactive requests come first: each retried run runs again on
    # the same workers, so the pace is what the operation adds to their load (bench
    # `bulk_retry`: the p95 of other requests during a bulk retry against without one, 1.44x
    # one at a time, 1.66x two at a time, on 2 shared cores).
    bulk_rate_per_s: float = Field(default=5, gt=0, le=1000)
    bulk_concurrency: int = Field(default=1, ge=1, le=64)
    # The most runs one operation may match (a larger filter is refused: narrow it).
    bulk_max_runs: int = Field(default=10_000, ge=1, le=100_000)
    # Requests per second each organization may make with its API keys, shared by every API
    # replica (a token bucket in the relational store, api/deps.py); 0 switches the
    # limit off. The bucket holds `rate_limit_burst` tokens (unset: twice the rate).
    rate_limit_per_s: float = Field(default=100, ge=0)
    rate_limit_burst: int | None = Field(default=None, ge=1)
    # Each API process takes tokens a few at a time and spends them within this many seconds
    # (store/rate_limits.py): the limit may be exceeded by rate x this over any interval;
    # 0 takes every token from the store (exact; one write per request).
    rate_limit_lease_s: float = Field(default=0.1, ge=0, le=5)
    # `GET /metrics` on the API (request counts and latency by route and status, runs started
    # by trigger, reviews pending); off, the API neither counts nor serves them.
    api_metrics: bool = True
    # The worker's Prometheus endpoint (the Temporal SDK's metrics and Runlane's own): unset is
    # off. 127.0.0.1 unless a scraper on another host (a compose service) must reach it.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # "k2:<base64 32 bytes>,k1:<base64>": the first encrypts every payload written to
    # Temporal, all decrypt (runlane/payload_crypto.py). Empty: payloads are plain JSON.
    # Parsed by payload_keys(), not by a validator: pydantic's error would echo the value.
    payload_key: SecretStr = SecretStr("")
    # "k2:<base64 32 bytes>,k1:<base64>": encrypts organizations' secrets at rest (runlane/
    # secret_box.py); never the payload key. Required: `make run` generates one into the data
    # dir and passes it to its children; anywhere else the API and the worker refuse to start
    # without it (`secret_keys()`).
    secrets_key: SecretStr = SecretStr("")

    @field_validator("temporal_ui_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'runlane.db').resolve()}"

    @property
    def request_limit_bytes(self) -> int:
        """The largest request body the API reads (`RUNLANE_MAX_REQUEST_BYTES`)."""
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        return self.max_upload_bytes * 4 // 3 + 1_048_576

    @property
    def rate_limit_burst_tokens(self) -> float:
        """The bucket's size: `RUNLANE_RATE_LIMIT_BURST`, or twice the rate (at least 1)."""
        if self.rate_limit_burst is not None:
            return float(self.rate_limit_burst)
        return max(2 * self.rate_limit_per_s, 1.0)

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    def blob_store(self) -> BlobStore:
        """The document store RUNLANE_BLOB_URL names (one per process and URL); BlobUrlError,
        naming the variable, when it is malformed."""
        # Imported here: obstore stays out of what the workflow sandbox imports with settings.
        from runlane.blobs import blob_store

        return blob_store(self.blob_url, self.files_dir)

    @property
    def dev_key_path(self) -> Path:
        return self.data_dir / DEV_KEY_FILENAME

    def payload_keys(self) -> PayloadKeys | None:
        """RUNLANE_PAYLOAD_KEY parsed (once per value); ValueError names what is malformed."""
        return parse_payload_keys(self.payload_key.get_secret_value())

    @property
    def secrets_key_path(self) -> Path:
        """Where `make run` keeps the key it generates (read by nothing else)."""
        return self.data_dir / SECRETS_KEY_FILENAME

    def secret_keys(self) -> SecretKeys:
        """RUNLANE_SECRETS_KEY parsed (once per value); SecretsKeyError, saying what to do,
        when it is unset or malformed."""
        raw = self.secrets_key.get_secret_value()
        if not raw.strip():
            raise SecretsKeyError(missing_key_message(self.data_dir))
        return parse_secret_keys(raw)

    def api_key_grants(self) -> dict[str, ApiKeyGrant]:
        """Parse RUNLANE_API_KEYS; without it, load (or create once) the dev key (an admin)."""
        if self.api_keys.strip():
            return parse_api_keys(self.api_keys)
        return {ensure_dev_key(self.dev_key_path): ApiKeyGrant(DEV_ORGANIZATION)}

    def key_to_organization(self) -> dict[str, str]:
        """Each API key's organization, whatever its role."""
        return {key: grant.organization for key, grant in self.api_key_grants().items()}


# What an API key may do (API.md "Access control"; the table of each role's endpoints is
# api/permissions.py's).
Role = Literal["admin", "runner", "reviewer", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True)
class ApiKeyGrant:
    """One entry of RUNLANE_API_KEYS, `key:org[:role[:subject]]`."""

    organization: str
    role: Role = "admin"
    # Who holds the key (an e-mail, say): the default reviewer of its decisions, matched
    # against a review's assignees, and recorded as the starter of the runs it starts.
    subject: str | None = None


def parse_api_keys(raw: str) -> dict[str, ApiKeyGrant]:
    """ValueError, naming the entry (by position: never the key itself), for one that is
    malformed or names an unknown role: the API refuses to start rather than guess what a key
    may do."""
    keys: dict[str, ApiKeyGrant] = {}
    entries = [item.strip() for item in raw.split(",") if item.strip()]
    for number, item in enumerate(entries, start=1):
        # The subject is the rest of the entry: it may hold colons itself.
        parts = [part.strip() for part in item.split(":", 3)]
        if len(parts) < 2 or not all(parts):
            raise ValueError(
                f"RUNLANE_API_KEYS entry {number} is not 'key:organization[:role[:subject]]'"
            )
        key, org = parts[0], parts[1]
        role = parts[2] if len(parts) > 2 else "admin"
        if role not in ROLES:
            raise ValueError(
                f"RUNLANE_API_KEYS entry {number} (organization {org!r}) names the unknown "
                f"role {role!r}; the roles are {', '.join(ROLES)}"
            )
        subject = parts[3] if len(parts) > 3 else None
        keys[key] = ApiKeyGrant(org, cast(Role, role), subject)
    return keys


def ensure_dev_key(path: Path) -> str:
    """The development key lives in the data dir so it survives restarts and is shared by
    every local process (and by the README's quickstart, which reads the file)."""
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "rl_dev_" + secrets.token_urlsafe(24)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
