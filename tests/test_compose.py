"""docker-compose.yml and the Dockerfile, checked without Docker (none runs here).

What can drift silently is checked: every service reports health and waits for the health of
what it needs, Runlane's services are configured only through variables Settings reads, and
they run the same entry points that `make run` (and its end-to-end test) exercises.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.supervisor import API_ARGS, MIGRATE_ARGS, WORKER_ARGS
from runlane.secret_box import generate_key
from runlane.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RUNLANE_SERVICES = ("worker", "api")
# Run to completion before the services that need them: no healthcheck, waited for by
# `service_completed_successfully`.
ONE_SHOTS = ("migrate", "minio-bucket")
# Compose interpolation with a default: ${NAME:-default}.
INTERPOLATION = re.compile(r"\$\{(\w+):-([^}]*)\}")
# Compose interpolation of a required variable: ${NAME:?message} (compose refuses to start
# without it).
REQUIRED = re.compile(r"\$\{(\w+):\?([^}]*)\}")
# What the operator exports for the required ones, in these tests.
OPERATOR_ENV = {"RUNLANE_SECRETS_KEY": generate_key()}
# The standard AWS variables the object-storage client reads (runlane/blobs.py), besides
# RUNLANE_*: where the documents bucket is and how to sign in.
AWS_VARIABLES = {
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as the container sees it (defaults of ${X:-d} applied)."""
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, so anchors can merge"
    return {
        key: REQUIRED.sub(lambda m: OPERATOR_ENV[m.group(1)], INTERPOLATION.sub(r"\2", str(value)))
        for key, value in env.items()
    }


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "temporal", "temporal-ui", "worker", "api"} <= services.keys()
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert service.get("restart", "no") == "no", f"{name} runs once"
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for dependency, options in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = (
                "service_completed_successfully" if dependency in ONE_SHOTS else "service_healthy"
            )
            assert options == {"condition": condition}, f"{name} -> {dependency}"
    for name in ("temporal", "temporal-ui", "worker", "api"):
        assert services[name].get("depends_on"), f"{name} starts without waiting for anything"


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin {image}"
    assert services["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")


def test_temporal_persists_in_postgres(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["temporal"])
    assert env["DB"].startswith("postgres")
    assert env["POSTGRES_SEEDS"] in services
    assert "postgres" in services[env["POSTGRES_SEEDS"]]["image"]


def test_runlane_is_configured_only_through_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = Settings.model_config.get("env_prefix")
    assert prefix == "RUNLANE_"
    for name in RUNLANE_SERVICES:
        env = environment(services[name])
        for key in env:
            if key in AWS_VARIABLES:
                continue
            assert key.startswith(prefix), f"{name} sets {key}, which Runlane does not read"
            field = key.removeprefix(prefix).lower()
            assert field in Settings.model_fields, f"{name} sets {key}: no Settings field"
        # The values are valid too: Settings parses them as the container would.
        for key in [k for k in os.environ if k.startswith(prefix)]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        settings.secret_keys()  # what the API and the worker check before they start
        settings.blob_store()
        assert settings.database_url.startswith("postgresql+asyncpg://")
        database_host = settings.database_url.split("@", 1)[1].split(":", 1)[0]
        assert database_host in services, "the Runlane database is the compose PostgreSQL"
        temporal_host = settings.temporal_address.rpartition(":")[0]
        assert temporal_host in services, "the worker and the API talk to the compose Temporal"


def test_api_and_worker_share_documents_through_object_storage(
    services: dict[str, dict[str, Any]],
) -> None:
    # No shared volume: the worker reads the documents the API stored from the same bucket.
    envs = [environment(services[name]) for name in RUNLANE_SERVICES]
    shared = {key: envs[0][key] for key in ("RUNLANE_BLOB_URL", *AWS_VARIABLES)}
    for env in envs:
        assert {key: env[key] for key in shared} == shared
    assert shared["RUNLANE_BLOB_URL"].startswith("s3://")
    assert "volumes" not in services["worker"], "the worker needs no volume"
    endpoint_host = shared["AWS_ENDPOINT_URL"].split("://", 1)[1].split(":", 1)[0]
    assert endpoint_host in services
    storage = environment(services[endpoint_host])
    assert shared["AWS_ACCESS_KEY_ID"] == storage["MINIO_ROOT_USER"]
    assert shared["AWS_SECRET_ACCESS_KEY"] == storage["MINIO_ROOT_PASSWORD"]
    # The bucket in the URL is the one the one-shot service creates before either starts.
    bucket = shared["RUNLANE_BLOB_URL"].removeprefix("s3://").split("/", 1)[0]
    creator = services["minio-bucket"]
    assert environment(creator)["BUCKET"] == bucket
    assert "mc mb --ignore-existing" in " ".join(creator["command"])
    for name in RUNLANE_SERVICES:
        assert services[name]["depends_on"]["minio-bucket"] == {
            "condition": "service_completed_successfully"
        }


def test_commands_are_the_entry_points_make_run_uses(
    services: dict[str, dict[str, Any]], dockerfile: str
) -> None:
    assert "$(BIN)/python -m devstack" in (ROOT / "Makefile").read_text()
    assert services["worker"]["command"] == ["python", *WORKER_ARGS]

    api = services["api"]
    command = api["command"]
    assert command[: 1 + len(API_ARGS)] == ["python", *API_ARGS]
    flags = command[1 + len(API_ARGS) :]
    options = dict(zip(flags[::2], flags[1::2], strict=True))
    env = environment(api)
    assert options == {"--host": env["RUNLANE_API_HOST"], "--port": env["RUNLANE_API_PORT"]}
    assert any(port.endswith(f":{env['RUNLANE_API_PORT']}") for port in api["ports"])

    # The image's default command is the API, exactly as compose spells it.
    cmd_line = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    assert json.loads(cmd_line.removeprefix("CMD ")) == command
    for name in RUNLANE_SERVICES:
        assert services[name]["build"] == ".", f"{name} must use the one Dockerfile"


def test_dockerfile_installs_the_project_from_pyproject(dockerfile: str) -> None:
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert re.search(r"^COPY pyproject\.toml ", dockerfile, re.MULTILINE)
    assert re.search(r"pip install (--no-deps )?\.", dockerfile)
    assert "temporal server" not in dockerfile, "no dev server inside the image"
    # Every top-level package and module pyproject installs must be copied into the image.
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE))
    top_level = {package.split(".")[0] for package in setuptools["packages"]}
    top_level |= {f"{module}.py" for module in setuptools.get("py-modules", [])}
    assert top_level <= copied, f"not copied into the image: {top_level - copied}"


def test_the_secrets_key_is_required_and_shared(services: dict[str, dict[str, Any]]) -> None:
    # `make run` generates a key; compose has no `make run`: it must refuse to start without
    # one (a `${X:?message}`), and the worker and the API must get the same one.
    values = {
        str(services[name]["environment"]["RUNLANE_SECRETS_KEY"]) for name in RUNLANE_SERVICES
    }
    assert len(values) == 1
    [value] = values
    match = REQUIRED.fullmatch(value)
    assert match and match.group(1) == "RUNLANE_SECRETS_KEY", value
    assert "RUNLANE_SECRETS_KEY" in match.group(2), "the refusal says what to set"
    for name in RUNLANE_SERVICES:
        env = environment(services[name])
        assert env["RUNLANE_SECRETS_KEY"] != env.get("RUNLANE_PAYLOAD_KEY"), "two keys, not one"


def test_migrations_run_before_the_worker_and_the_api(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    # The command `make run` runs before it starts the worker (devstack/supervisor.py).
    assert migrate["command"] == ["python", *MIGRATE_ARGS]
    assert migrate["build"] == ".", "the one image"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in RUNLANE_SERVICES:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, f"{name} starts before the migrations ran"
    env = environment(migrate)
    assert set(env) == {"RUNLANE_DATABASE_URL"}, "only what migrating needs"
    for name in RUNLANE_SERVICES:
        assert env["RUNLANE_DATABASE_URL"] == environment(services[name])["RUNLANE_DATABASE_URL"]
