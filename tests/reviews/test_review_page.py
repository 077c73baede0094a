"""The reviewers' page in a real headless Chromium, against the API served on a real port."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.api.helpers import create_published, wait_for_run, wait_until
from tests.conftest import ORG_A_KEY

pytestmark = pytest.mark.timeout(180)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The README's screenshot is refreshed on purpose only:
#   RUNLANE_REVIEWS_SCREENSHOT=docs/reviews-page.png make test PYTEST_ARGS=tests/reviews
SCREENSHOT_ENV = "RUNLANE_REVIEWS_SCREENSHOT"
# Flags for this closed network and a root user (see the environment notes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(app: FastAPI, worker: object) -> AsyncIterator[str]:
    """The app on 127.0.0.1 (a browser cannot use an in-process transport)."""
    port = free_port()
    # No lifespan: the fixtures already supply its Temporal client and database, and the real
    # one would open the default ./.data database of whoever runs the tests.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as probe:

        async def up() -> bool:
            try:
                return (await probe.get(f"{base}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(up)
    try:
        yield base
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium, headless; a missing browser fails the test (never a skip)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"chromium not found at {CHROMIUM}: run scripts/install-chromium.sh as root "
            "(`make test` does), or `apt-get install chromium`."
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


def review_definition() -> dict:
    return {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {
                "id": "review",
                "type": "human_review",
                "label": "Approve payout",
                "config": {
                    "instructions": "Check the amount against the contract",
                    "payload": {"customer": "{{meta.customer}}", "amount": "{{meta.amount}}"},
                },
            },
            {"id": "out", "type": "end", "config": {"outputs": "{{review}}"}},
        ],
        "edges": [{"source": "meta", "target": "review"}, {"source": "review", "target": "out"}],
    }


async def card(page: Page, run_id: str):  # type: ignore[no-untyped-def]
    locator = page.locator(f'article[data-review="{run_id}/review"]')
    await expect(locator).to_be_visible(timeout=15_000)
    return locator


async def test_approve_with_an_edit_and_reject_in_the_browser(
    served: str, api: httpx.AsyncClient, chromium: Browser, tmp_path: Path
) -> None:
    workflow_id = await create_published(api, review_definition(), name="Payouts")
    run_ids = []
    for customer, amount in (("acme", 1200), ("globex", 99000)):
        started = await api.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"json_inputs": {"meta": {"customer": customer, "amount": amount}}},
        )
        run_ids.append(started.json()["id"])
    for run_id in run_ids:
        await wait_for_run(api, run_id, until={"waiting_for_human"})
    approve_id, reject_id = run_ids

    page = await chromium.new_page(viewport={"width": 1100, "height": 900})
    await page.goto(f"{served}/reviews")
    await expect(page.locator("#status")).to_contain_text("API key")
    await page.fill("#api-key", ORG_A_KEY)
    await page.fill("#reviewer", "Ann Reviewer")
    await page.click("#save-key")

    first = await card(page, approve_id)
    second = await card(page, reject_id)
    await expect(first).to_contain_text("Check the amount against the contract")
    payload = json.loads(await first.locator("textarea").input_value())
    assert payload == {"customer": "acme", "amount": 1200}
    await expect(page.locator("#status")).to_contain_text("2 pending")
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "reviews.png")
    await page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000

    await first.locator("textarea").fill(json.dumps({"customer": "acme", "amount": 1000}))
    await first.locator(".comment").fill("capped at the contract amount")
    await first.locator("button.edit").click()
    await expect(first).to_have_count(0, timeout=15_000)

    await second.locator(".comment").fill("amount far too high")
    await second.locator("button.reject").click()
    await expect(second).to_have_count(0, timeout=15_000)
    # The list refreshes by itself to its empty state.
    await expect(page.locator(".empty")).to_be_visible(timeout=15_000)

    # Without a reload, a new review appears and one decided elsewhere goes away.
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {"customer": "initech", "amount": 5}}},
    )
    third_id = started.json()["id"]
    third = await card(page, third_id)
    decided = await api.post(
        f"/v1/workflows/runs/{third_id}/reviews/review", json={"decision": "approve"}
    )
    assert decided.status_code == 202
    await expect(third).to_have_count(0, timeout=15_000)
    await expect(page.locator(".empty")).to_be_visible()

    approved = await wait_for_run(api, approve_id)
    assert approved["status"] == "completed"
    assert approved["final_outputs"] == {"customer": "acme", "amount": 1000}
    rejected = await wait_for_run(api, reject_id)
    assert rejected["status"] == "error" and rejected["error"]["node_id"] == "review"
    assert "amount far too high" in rejected["error"]["message"]
    steps = (await api.get(f"/v1/workflows/runs/{approve_id}/steps")).json()["data"]
    review = next(s for s in steps if s["node_id"] == "review")["review"]
    assert review["reviewer"] == "Ann Reviewer"
    assert review["comment"] == "capped at the contract amount"


async def test_a_decision_someone_else_made_first_is_shown(
    served: str, api: httpx.AsyncClient, chromium: Browser
) -> None:
    workflow_id = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {"customer": "c", "amount": 1}}},
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    page = await chromium.new_page()
    await page.goto(f"{served}/reviews")
    await page.fill("#api-key", ORG_A_KEY)
    await page.click("#save-key")
    item = await card(page, run_id)

    # An edit is never dropped by the plain Approve button.
    await item.locator("textarea").fill('{"customer": "c", "amount": 2}')
    await item.locator("button.approve").click()
    await expect(item.locator(".error")).to_contain_text("Approve with edits")

    # Hold the page's refreshes so the card is still on screen when another reviewer decides
    # through the API: the reviewer's click then meets the API's 409.
    def is_inbox(url: str) -> bool:
        return "/v1/reviews?" in url

    await page.route(is_inbox, lambda route: route.abort())
    decided = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "approve"}
    )
    assert decided.status_code == 202
    await item.locator("button.reject").click()
    await expect(item.locator(".error")).to_contain_text("not waiting", timeout=10_000)
    await page.unroute(is_inbox)
    # It stays readable across the page's own refreshes until dismissed.
    await expect(page.locator("#status")).to_contain_text("0 pending", timeout=10_000)
    await expect(item.locator(".error")).to_contain_text("not waiting")
    await expect(item.locator("button.reject")).to_be_disabled()
    await item.locator("button.dismiss").click()
    await expect(item).to_have_count(0)
    await expect(page.locator(".empty")).to_be_visible()


async def test_a_wrong_key_is_reported_and_shows_nothing(served: str, chromium: Browser) -> None:
    page = await chromium.new_page()
    await page.goto(f"{served}/reviews")
    await page.fill("#api-key", "not-a-key")
    await page.click("#save-key")
    await expect(page.locator("#status")).to_contain_text("Unknown API key")
    await expect(page.locator("#list .card, #list .empty")).to_have_count(0)
    # The key is remembered: a reload does not ask again.
    await page.reload()
    await expect(page.locator("#api-key")).to_have_value("not-a-key")


async def test_a_form_for_the_data_schema_with_assignees_and_approvals(
    served: str, api: httpx.AsyncClient, chromium: Browser
) -> None:
    definition = review_definition()
    definition["nodes"][1]["config"] |= {
        "data_schema": {
            "type": "object",
            "properties": {
                "customer": {"type": "string"},
                "amount": {"type": "number", "maximum": 5000},
                "urgent": {"type": "boolean"},
            },
            "required": ["amount"],
        },
        "assignees": ["Ann", "Bob"],
        "approvals_required": 2,
        "escalate_after_s": 1,
        "escalate_to": ["Cy"],
    }
    workflow_id = await create_published(api, definition)
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {"customer": "acme", "amount": 1200}}},
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})

    page = await chromium.new_page()
    await page.goto(f"{served}/reviews")
    await page.fill("#api-key", ORG_A_KEY)
    await page.fill("#reviewer", "Ann")
    await page.click("#save-key")
    item = await card(page, run_id)
    # One field per property of the schema, filled from the payload; no JSON editor.
    await expect(item.locator('[data-field="customer"]')).to_have_value("acme")
    await expect(item.locator('[data-field="amount"]')).to_have_value("1200")
    await expect(item.locator('[data-field="urgent"]')).not_to_be_checked()
    await expect(item.locator("label.required")).to_have_text("amount")
    await expect(item.locator(".editor")).to_have_count(0)
    await expect(item.locator(".assignees")).to_contain_text("Ann, Bob")
    await expect(item.locator(".approvals")).to_contain_text("0 of 2")
    # The escalation timer fires: the card shows it without a reload.
    await expect(item.locator(".escalation")).to_contain_text("to Cy", timeout=15_000)
    await expect(item.locator(".assignees")).to_contain_text("Ann, Bob, Cy")

    # The API's 422 names the problem on the card.
    await item.locator('[data-field="amount"]').fill("99000")
    await item.locator("button.approve").click()
    await expect(item.locator(".error")).to_contain_text("5000", timeout=10_000)
    await item.locator('[data-field="amount"]').fill("1000")
    await item.locator('[data-field="urgent"]').check()
    await item.locator("button.approve").click()
    # The node still waits for a second reviewer: the card comes back with Ann's approval.
    item = await card(page, run_id)
    await expect(item.locator(".approvals")).to_contain_text("1 of 2 (Ann)", timeout=15_000)
    await expect(item.locator('[data-field="amount"]')).to_have_value("1000")

    await page.fill("#reviewer", "Bob")
    await page.click("#save-key")
    await item.locator("button.approve").click()
    await expect(page.locator(".empty")).to_be_visible(timeout=15_000)
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    assert done["final_outputs"] == {"customer": "acme", "amount": 1000, "urgent": True}
