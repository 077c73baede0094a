"""Outside `make run`, the API and the worker refuse to start without RUNLANE_SECRETS_KEY, and
say what to set. (`make run` generating one is tested in tests/e2e/test_make_run.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runlane.secret_box import generate_key

REPO = Path(__file__).resolve().parent.parent


def start(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLANE_")}
    env |= {
        "RUNLANE_DATA_DIR": str(tmp_path / "data"),
        # Nothing answers here: were the key check not first, they would hang on Temporal.
        "RUNLANE_TEMPORAL_ADDRESS": "127.0.0.1:1",
        "RUNLANE_API_KEYS": "key:org",
        **extra,
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


API = ["-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", "0"]
WORKER = ["worker.py"]


@pytest.mark.parametrize("args", [API, WORKER], ids=["api", "worker"])
def test_it_refuses_to_start_without_a_key(args: list[str], tmp_path: Path) -> None:
    refused = start(args, tmp_path)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "RUNLANE_SECRETS_KEY is not set" in output, output
    assert "make run" in output
    assert not (tmp_path / "data" / "secrets-key").exists(), "only `make run` generates one"


@pytest.mark.parametrize("args", [API, WORKER], ids=["api", "worker"])
def test_it_refuses_a_malformed_key_without_echoing_it(args: list[str], tmp_path: Path) -> None:
    malformed = "k1:" + generate_key().partition(":")[2][:20]
    refused = start(args, tmp_path, RUNLANE_SECRETS_KEY=malformed)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "RUNLANE_SECRETS_KEY key 'k1' is" in output, output
    assert malformed.partition(":")[2] not in output
