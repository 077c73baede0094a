"""Custom node types come from installed packages through the `runlane.node_types` entry point."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from activities.registry import ActivityDeps, default_registry
from activities.usage import Ledger, report_cost, temporal_organizations
from store.db import Database
from store.usage import UsageRepository
from tests.api.helpers import create_published, wait_for_run
from workflows.worker import create_worker

PLUGIN = """
from pydantic import BaseModel, ConfigDict
from temporalio import activity

from activities.models import NodeTaskInput, NodeTaskOutput
from activities.registry import NodeType
from runlane.templating import render


class ShoutConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


@activity.defn(name="shout")
async def shout(task: NodeTaskInput) -> NodeTaskOutput:
    config = ShoutConfig.model_validate(task.node.config)
    return NodeTaskOutput.done(str(render(config.text, task.template_context())).upper())


NODE_TYPE = NodeType(
    name="shout", role="task", config_model=ShoutConfig, execution="local",
    description="Upper-cases a template", make_activity=lambda deps: shout,
)
"""


@contextmanager
def installed_plugin(tmp_path: Path, module: str, source: str, entry: str) -> Iterator[None]:
    """`source` as module `module` of an installed distribution (a dist-info whose entry
    points declare `entry`, e.g. "shout = runlane_shout:NODE_TYPE") on sys.path."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    name = module.replace("_", "-")
    dist = tmp_path / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[runlane.node_types]\n{entry}\n")
    sys.path.insert(0, str(tmp_path))
    default_registry.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)
        default_registry.cache_clear()


@pytest.fixture
def shout_plugin(tmp_path: Path) -> Iterator[None]:
    with installed_plugin(tmp_path, "runlane_shout", PLUGIN, "shout = runlane_shout:NODE_TYPE"):
        yield


async def test_a_plugin_node_type_is_validated_listed_and_executed(
    shout_plugin: None, app, client: Client, settings, http_client: httpx.AsyncClient
) -> None:
    registry = default_registry()
    assert "shout" in registry
    deps = ActivityDeps(settings=settings, http_client=http_client)
    async with create_worker(
        client, task_queue=settings.task_queue, activities=registry.activities(deps)
    ):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"Api-Key": "key_org_a"}
        ) as api:
            listed = (await api.get("/v1/node-types")).json()["data"]
            assert "shout" in [t["type"] for t in listed]
            assert (
                "NodeConfig.shout"
                in (await api.get("/openapi.json")).json()["components"]["schemas"]
            )
            bad = await api.post(
                "/v1/workflows/validate",
                json={
                    "definition": {
                        "nodes": [{"id": "s", "type": "shout", "config": {}}],
                        "edges": [],
                    }
                },
            )
            assert any(e["node_id"] == "s" and "text" in e["message"] for e in bad.json()["errors"])

            workflow_id = await create_published(
                api,
                {
                    "nodes": [
                        {"id": "note", "type": "start_text"},
                        {"id": "loud", "type": "shout", "config": {"text": "hi {{note.text}}"}},
                        {"id": "out", "type": "end", "config": {"outputs": "{{loud}}"}},
                    ],
                    "edges": [
                        {"source": "note", "target": "loud"},
                        {"source": "loud", "target": "out"},
                    ],
                },
            )
            started = await api.post(
                f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"note": "there"}}
            )
            done = await wait_for_run(api, started.json()["id"])
            assert done["final_outputs"] == "HI THERE"


COSTLY_PLUGIN = """
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.models import NodeTaskInput, NodeTaskOutput
from activities.registry import NodeType
from activities.usage import report_cost
from runlane.templating import render


class AskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str


@activity.defn(name="ask_llm")
async def ask_llm(task: NodeTaskInput) -> NodeTaskOutput:
    config = AskConfig.model_validate(task.node.config)
    prompt = str(render(config.prompt, task.template_context()))
    if activity.info().attempt == 1:
        # The model was called and the tokens spent, then the answer was lost.
        report_cost("llm_tokens", 1000)
        raise ApplicationError("the model's answer was cut off", type="Truncated")
    report_cost("llm_tokens", 200)
    report_cost("llm_tokens", 34)
    report_cost("usd", 0.25)
    return NodeTaskOutput.done({"answer": prompt[::-1]})


NODE_TYPE = NodeType(
    name="ask_llm", role="task", config_model=AskConfig, execution="remote",
    description="Asks a language model (a test double that reports its tokens)",
    make_activity=lambda deps: ask_llm,
)
"""


@pytest.fixture
def costly_plugin(tmp_path: Path) -> Iterator[None]:
    """A plugin whose activity reports cost units (`activities.usage.report_cost`)."""
    entry = "ask_llm = runlane_costly:NODE_TYPE"
    with installed_plugin(tmp_path, "runlane_costly", COSTLY_PLUGIN, entry):
        yield


async def test_a_plugin_reports_cost_units_shown_in_usage(
    costly_plugin: None,
    app,
    client: Client,
    settings,
    http_client: httpx.AsyncClient,
    database: Database,
) -> None:
    ledger = Ledger(UsageRepository(database), organizations=temporal_organizations(client))
    deps = ActivityDeps(settings=settings, http_client=http_client, ledger=ledger)
    async with create_worker(
        client,
        task_queue=settings.task_queue,
        activities=default_registry().activities(deps),
        ledger=ledger,
    ):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"Api-Key": "key_org_a"}
        ) as api:
            workflow_id = await create_published(
                api,
                {
                    "nodes": [
                        {"id": "q", "type": "start_text"},
                        {
                            "id": "ask",
                            "type": "ask_llm",
                            "config": {"prompt": "{{q.text}}"},
                            "retry": {"max_attempts": 2, "initial_interval_s": 0.1},
                        },
                        {"id": "out", "type": "end", "config": {"outputs": "{{ask.answer}}"}},
                    ],
                    "edges": [
                        {"source": "q", "target": "ask"},
                        {"source": "ask", "target": "out"},
                    ],
                },
            )
            started = await api.post(
                f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"q": "olleh"}}
            )
            done = await wait_for_run(api, started.json()["id"])
            assert done["final_outputs"] == "hello"
            # Both attempts' tokens: the failed one spent them too.
            assert done["usage"]["cost"] == {"llm_tokens": 1234, "usd": 0.25}
            step = (await api.get(f"/v1/workflows/runs/{done['id']}/steps/ask")).json()
            assert step["usage"]["cost"] == {"llm_tokens": 1234, "usd": 0.25}
            assert step["usage"]["activity_attempts"] == 2
            assert step["usage"]["nodes_executed"] == 1
            # A node that sends no HTTP request of Runlane's has no ledger of requests.
            assert "effects" not in step
            usage = (await api.get("/v1/usage", params={"workflow_id": workflow_id})).json()
            assert usage["usage"]["cost"] == {"llm_tokens": 1234, "usd": 0.25}
    await ledger.close()


def test_report_cost_refuses_what_is_no_cost() -> None:
    report_cost("llm_tokens", 5)  # outside a node activity: nothing to add it to, no error
    for unit, amount in (("", 1), ("a b", 1), ("x" * 65, 1)):
        with pytest.raises(ValueError, match="unit"):
            report_cost(unit, amount)
    for amount in (-1, float("nan"), float("inf"), True, "3"):
        with pytest.raises(ValueError, match="amount"):
            report_cost("llm_tokens", amount)  # type: ignore[arg-type]
