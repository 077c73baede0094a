"""Custom node types come from installed packages through the `runlane.node_types` entry point."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from activities.registry import ActivityDeps, default_registry
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


@pytest.fixture
def shout_plugin(tmp_path: Path) -> Iterator[None]:
    """An installed distribution (a dist-info with entry points) on sys.path."""
    (tmp_path / "runlane_shout.py").write_text(textwrap.dedent(PLUGIN))
    dist = tmp_path / "runlane_shout-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: runlane-shout\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[runlane.node_types]\nshout = runlane_shout:NODE_TYPE\n"
    )
    sys.path.insert(0, str(tmp_path))
    default_registry.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("runlane_shout", None)
        default_registry.cache_clear()


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
