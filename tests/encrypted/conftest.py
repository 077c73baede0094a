"""Every test in this folder runs against a deployment with RUNLANE_PAYLOAD_KEY set: these
fixtures override the suite's `settings` and `client` (tests/encryption.py)."""

from tests.encryption import client, settings  # noqa: F401 (fixtures)
