"""Reviews and the key's subject (API.md "Access control"): the subject is the decision's
reviewer, a reviewer's key sees, reads and decides only what waits for it, and a node with
`self_approval: false` is not approved by who started the run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from runlane.settings import Settings
from tests.api.helpers import create_published, wait_for_run
from tests.conftest import ORG_A_KEY
from tests.reviews.test_review_quorum import inbox, reviewed, step

ANA, BO = "ana@example.com", "bo@example.com"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    org = settings.key_to_organization()[ORG_A_KEY]
    keys = {
        "key_ana": f"{org}:reviewer:{ANA}",
        "key_bo": f"{org}:reviewer:{BO}",
        "key_ana_runs": f"{org}:runner:{ANA}",
        "key_nobody": f"{org}:reviewer",
    }
    extra = ",".join(f"{key}:{grant}" for key, grant in keys.items())
    return settings.model_copy(update={"api_keys": f"{settings.api_keys},{extra}"})


@asynccontextmanager
async def keyed(app: FastAPI, key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runlane.test",
        headers={"Api-Key": key},
    ) as http:
        yield http


async def start_waiting(starter: httpx.AsyncClient, workflow_id: str) -> str:
    started = await starter.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 10}}}
    )
    assert started.status_code == 202, started.text
    run_id: str = started.json()["id"]
    await wait_for_run(starter, run_id, until={"waiting_for_human"})
    return run_id


async def decide(http: httpx.AsyncClient, run_id: str, **body: Any) -> httpx.Response:
    return await http.post(f"/v1/workflows/runs/{run_id}/reviews/review", json=body)


def refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("permission", code), error


async def test_the_keys_subject_is_its_decisions_reviewer(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    workflow_id = await create_published(api, reviewed())
    first, second = await start_waiting(api, workflow_id), await start_waiting(api, workflow_id)
    async with keyed(app, "key_ana") as ana:
        approved = await decide(ana, first, decision="approve", comment="fine")
        assert approved.status_code == 202, approved.text
        await wait_for_run(api, first)
        review = (await step(api, first))["review"]
        assert (review["decision"], review["reviewer"]) == ("approve", ANA)

        refused(await decide(ana, second, decision="approve", reviewer=BO), "reviewer_not_caller")
        assert (await step(api, second))["status"] == "waiting_for_human"
        named = await decide(ana, second, decision="reject", reviewer=ANA)
        assert named.status_code == 202, named.text
        await wait_for_run(api, second)
        assert (await step(api, second))["review"]["reviewer"] == ANA


async def test_a_reviewer_sees_reads_and_decides_only_what_waits_for_it(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    workflow_id = await create_published(api, reviewed(assignees=[BO]))
    run_id = await start_waiting(api, workflow_id)
    async with (
        keyed(app, "key_ana") as ana,
        keyed(app, "key_bo") as bo,
        keyed(app, "key_nobody") as nobody,
    ):
        assert run_id in {item["run_id"] for item in await inbox(api)}  # an admin sees all
        assert run_id in {item["run_id"] for item in await inbox(bo)}
        assert run_id not in {item["run_id"] for item in await inbox(ana)}
        assert run_id not in {item["run_id"] for item in await inbox(nobody)}

        refused(await ana.get(f"/v1/workflows/runs/{run_id}"), "run_not_waiting_for_you")
        refused(await ana.get(f"/v1/workflows/runs/{run_id}/steps"), "run_not_waiting_for_you")
        refused(await decide(ana, run_id, decision="approve"), "review_not_assigned")
        refused(await decide(nobody, run_id, decision="reject"), "review_not_assigned")
        refused(await ana.get("/v1/workflows/runs"), "forbidden")
        refused(await ana.get(f"/v1/workflows/{workflow_id}"), "forbidden")

        read = await bo.get(f"/v1/workflows/runs/{run_id}")
        assert read.status_code == 200 and read.json()["status"] == "waiting_for_human"
        steps = await bo.get(f"/v1/workflows/runs/{run_id}/steps")
        assert steps.status_code == 200, steps.text
        decided = await decide(bo, run_id, decision="approve")
        assert decided.status_code == 202, decided.text
        await wait_for_run(api, run_id)
        assert (await step(api, run_id))["review"]["reviewer"] == BO
        # Decided: the run waits for nobody any more, and bo reads it no longer.
        refused(await bo.get(f"/v1/workflows/runs/{run_id}"), "run_not_waiting_for_you")


async def test_self_approval_false_stops_who_started_the_run_approving_it(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    bad = await api.post(
        "/v1/workflows", json={"name": "x", "definition": reviewed(self_approval="no")}
    )
    assert bad.status_code == 422, bad.text
    four_eyes = await create_published(api, reviewed(self_approval=False))
    async with (
        keyed(app, "key_ana") as ana,
        keyed(app, "key_bo") as bo,
        keyed(app, "key_ana_runs") as ana_runs,
    ):
        own = await start_waiting(ana_runs, four_eyes)
        refused(await decide(ana, own, decision="approve"), "self_approval_forbidden")
        assert (await ana.get(f"/v1/workflows/runs/{own}")).json()["status"] == "waiting_for_human"
        approved = await decide(bo, own, decision="approve")
        assert approved.status_code == 202, approved.text
        assert (await wait_for_run(api, own))["status"] == "completed"

        # Rejecting her own run stays allowed.
        rejected_own = await start_waiting(ana_runs, four_eyes)
        rejected = await decide(ana, rejected_own, decision="reject")
        assert rejected.status_code == 202, rejected.text
        assert (await wait_for_run(api, rejected_own))["status"] == "error"

        # A run started by another key (no subject), or a node without the rule: she approves.
        theirs = await start_waiting(api, four_eyes)
        assert (await decide(ana, theirs, decision="approve")).status_code == 202
        plain = await create_published(api, reviewed())
        own_plain = await start_waiting(ana_runs, plain)
        assert (await decide(ana, own_plain, decision="approve")).status_code == 202
        for run_id in (theirs, own_plain):
            assert (await wait_for_run(api, run_id))["status"] == "completed"

        # A restart by her key is a run she started too.
        restarted = await ana_runs.post(f"/v1/workflows/runs/{own}/restart", json={})
        assert restarted.status_code == 202, restarted.text
        again = restarted.json()["id"]
        await wait_for_run(api, again, until={"waiting_for_human"})
        refused(await decide(ana, again, decision="approve"), "self_approval_forbidden")
