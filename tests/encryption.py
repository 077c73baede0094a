"""Fixtures for tests of a deployment with RUNLANE_PAYLOAD_KEY set.

tests/encrypted/conftest.py takes `settings` and `client` from here; they override the suite's
fixtures of the same names, so the worker, app and api fixtures of that folder's tests are built
with the payload key and every payload a run stores is encrypted.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from runlane.converter import data_converter
from runlane.payload_crypto import generate_key
from runlane.settings import Settings

# Two keys: the first encrypts, both decrypt (rotation by key id).
PAYLOAD_KEY = f"k2:{generate_key()},k1:{generate_key()}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"payload_key": SecretStr(PAYLOAD_KEY)})


@pytest.fixture
def client(temporal_env: WorkflowEnvironment, settings: Settings) -> Client:
    plain = temporal_env.client
    return Client(
        plain.service_client,
        namespace=plain.namespace,
        data_converter=data_converter(settings.payload_keys()),
    )
