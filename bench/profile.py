"""Profile a Runlane process under load with py-spy: the API or the worker.

    .venv/bin/python -m bench.profile api      # 32 clients start 10-node pure runs
    .venv/bin/python -m bench.profile worker   # 16 clients run 10-node http_request chains
    .venv/bin/python -m bench.profile worker_events   # the same, 3 event endpoints subscribed

py-spy (PyPI, a dev dependency) samples the process for the load's duration; the report,
written to bench/results/profile-<process>.txt, lists where the process spends its time: own
time first, then inclusive time.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import events, scenarios
from bench.stack import REPO, Stack
from tests.peer import Peer

PY_SPY = Path(sys.executable).parent / "py-spy"
SECONDS = 12


async def _load(stack: Stack, definition: dict[str, Any], clients: int, wait_for_end: bool) -> int:
    async with stack.api_client(timeout=60) as api:
        created = await api.post("/v1/workflows", json={"name": "p", "definition": definition})
        created.raise_for_status()
        workflow_id = created.json()["id"]
        (await api.post(f"/v1/workflows/{workflow_id}/publish")).raise_for_status()
        deadline = time.monotonic() + SECONDS
        count = 0

        async def client() -> None:
            nonlocal count
            while time.monotonic() < deadline:
                response = await api.post(
                    f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"in": {"n": 1}}}
                )
                response.raise_for_status()
                run_id = response.json()["id"]
                # Polling the run reads its state; the worker answers those queries too.
                while wait_for_end and (await api.get(f"/v1/workflows/runs/{run_id}")).json()[
                    "status"
                ] not in ("completed", "error"):
                    await asyncio.sleep(0.05)
                count += 1

        await asyncio.gather(*(client() for _ in range(clients)))
        return count


async def _load_with_endpoints(stack: Stack, peer: Peer) -> int:
    """The worker's load with three receivers subscribed to every event type."""
    receivers = [events.Receiver() for _ in range(3)]
    async with stack.api_client() as api:
        for receiver in receivers:
            receiver.start()
            created = await api.post(
                "/v1/webhook-endpoints", json={"url": receiver.url, "events": events.ALL_TYPES}
            )
            created.raise_for_status()
    try:
        return await _load(stack, scenarios.http_chain(10, f"{peer.url}/p"), 16, True)
    finally:
        for receiver in receivers:
            receiver.stop()


LOADS: dict[str, tuple[str, Callable[[Stack, Peer], Any]]] = {
    "api": (
        "runs started by 32 clients",
        lambda stack, peer: _load(stack, scenarios.transform_chain(10), 32, False),
    ),
    "worker": (
        "10-node http_request runs completed by 16 clients",
        lambda stack, peer: _load(stack, scenarios.http_chain(10, f"{peer.url}/p"), 16, True),
    ),
    "worker_events": (
        "10-node http_request runs completed by 16 clients, 3 endpoints subscribed",
        _load_with_endpoints,
    ),
}


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` for `seconds` at 200 Hz into `out` (raw collapsed stacks)."""
    command = [str(PY_SPY), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200"]
    command += ["-f", "raw", "-o", str(out), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(raw: str, top: int = 25) -> str:
    """Collapsed stacks -> own time and inclusive time per function."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        n = int(samples)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(2 * top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("process", choices=sorted(LOADS))
    args = parser.parse_args()
    what, load = LOADS[args.process]
    stack = Stack()
    stack.start()
    peer = Peer()
    peer.start()
    try:
        collapsed = stack.workdir / f"{args.process}.collapsed"
        spy = record(stack.pid(args.process.split("_")[0]), SECONDS + 2, collapsed)
        time.sleep(1)  # py-spy attaches
        count = asyncio.run(load(stack, peer))
        spy.wait(timeout=60)
        report = f"{count} {what} in {SECONDS} s\n\n" + summarize(collapsed.read_text())
        out = REPO / "bench" / "results" / f"profile-{args.process}.txt"
        out.write_text(report + "\n")
        sys.stdout.write(report[:6000] + f"\n\nwrote {out}\n")
    finally:
        peer.stop()
        stack.stop()


if __name__ == "__main__":
    main()
