"""Profile the API under `POST .../run` load with py-spy (the slowest path `make bench` found).

    .venv/bin/python -m bench.profile_api    # writes bench/results/profile-api.txt

py-spy (PyPI) samples the API process while 32 clients start runs; the report lists the
functions where the API spends its time, own time first.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from bench import scenarios
from bench.stack import REPO, Stack

OUT = REPO / "bench" / "results" / "profile-api.txt"
PY_SPY = Path(sys.executable).parent / "py-spy"


async def load(stack: Stack, seconds: float) -> int:
    async with httpx.AsyncClient(
        base_url=stack.api_url, headers={"Api-Key": stack.api_key}, timeout=60
    ) as api:
        created = await api.post(
            "/v1/workflows", json={"name": "p", "definition": scenarios.transform_chain(10)}
        )
        workflow_id = created.json()["id"]
        await api.post(f"/v1/workflows/{workflow_id}/publish")
        deadline = time.monotonic() + seconds
        count = 0

        async def client() -> None:
            nonlocal count
            while time.monotonic() < deadline:
                response = await api.post(
                    f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"in": {"n": 1}}}
                )
                response.raise_for_status()
                count += 1

        await asyncio.gather(*(client() for _ in range(32)))
        return count


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
    lines += ["", "inclusive time (project code):"]
    project = [
        (f, n)
        for f, n in inclusive.most_common()
        if "/work/" in f or "(api/" in f or "(runlane/" in f
    ]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in project[:top]]
    return "\n".join(lines)


def main() -> None:
    stack = Stack()
    stack.start()
    try:
        collapsed = stack.workdir / "api.collapsed"
        spy = subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "-p",
                str(stack.pid("api")),
                "-d",
                "12",
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(collapsed),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        started = asyncio.run(load(stack, 10))
        spy.wait(timeout=60)
        report = f"{started} runs started in 10 s by 32 clients\n\n" + summarize(
            collapsed.read_text()
        )
        OUT.write_text(report + "\n")
        sys.stdout.write(report[:4000] + "\n")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
