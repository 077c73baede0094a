"""Every `bash` block of the README, run verbatim and in order against a real `make run`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.stack import (
    REPO_ROOT,
    Ports,
    check_stop,
    free_port,
    make_run,
    stack_env,
    wait_healthy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

README = REPO_ROOT / "README.md"


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_the_two_commands_and_runnable_blocks() -> None:
    text = README.read_text()
    assert text.index("make run") < text.index("## Quickstart")
    assert "make test" in text.split("## Quickstart")[0]
    assert len(bash_blocks(text)) >= 6


def test_readme_snippets_work_against_make_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = Ports(temporal=free_port(), ui=free_port(), api=free_port())
    env = stack_env(data_dir, ports)
    marker = f"RUNLANE_DATA_DIR={data_dir}"
    script = "set -euo pipefail\n" + "\n".join(bash_blocks(README.read_text()))
    with make_run(env, marker, tmp_path, "readme") as run:
        wait_healthy(ports.api)
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        output = done.stdout
        assert done.returncode == 0, f"{output}\n--- stderr\n{done.stderr}\n{run.diagnostics()}"
        # What the README says each block shows.
        assert re.search(r"^workflow wf_", output, re.M)
        assert re.search(r"^run run_", output, re.M)
        assert "event: end" in output and "event: step" in output
        # The Python client and the CLI next to curl.
        assert "client completed {'route': 'manual', 'customer': 'cust_123'}" in output
        assert "restarted once: True" in output
        assert re.search(r"^waiting_for_human$", output, re.M)
        assert "{'approved': {'amount': 200}}" in output
        assert re.search(r"^plan_$", output, re.M)
        assert "exit code 1" in output and "run_not_found" in done.stderr
        assert "{'amount': 4000}" in output  # the quorum review took ann's edit
        outputs = {
            "manual": {"route": "manual", "customer": "cust_123"},
            "auto": None,
            "file": "invoice.txt",
        }
        assert repr(outputs) in output
        assert re.search(r"^skipped$", output, re.M)
        assert f"http://127.0.0.1:{ports.ui}/namespaces/default/workflows/run_" in output
        # The run's outcomes, read from its history with `temporal workflow show`.
        assert re.search(r'^big completed \{"result": true\}$', output, re.M)
        assert re.search(r"^auto skipped null$", output, re.M)
        assert "Check the amount" in output
        assert "{'approved': {'amount': 200}}" in output
        assert "approved from the CLI" in output
        assert "'type': 'rerun'" in output
        assert "Only runs in error or cancelled can be retried" in output
        # Secrets: the run's call was authenticated with the stored key, which it never shows.
        assert "\nrunlane_key\n200\nthe key is not in the step\n" in output
        # Triggers: a schedule fired a run now, a signed webhook call started one (and its
        # replay answered the same run), and a receiver verified the run's events.
        assert re.search(r"^schedule sch_", output, re.M)
        assert "'type': 'schedule'" in output and "'schedule_id': 'sch_" in output
        assert "'webhook_id': 'wh_" in output and "the same run, no second one" in output
        assert "no signature in webhook-signature matches" in output
        assert re.search(r"^run\.started run_\S+ running evt_", output, re.M)
        assert re.search(r"^run\.completed run_\S+ completed evt_", output, re.M)
        assert re.search(r"^run\.completed run_\S+ succeeded 1 20\d$", output, re.M)
        check_stop(run, ports, marker)
