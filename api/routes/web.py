"""The reviewers' web page: one static HTML page that talks to the JSON API with the
reviewer's key (kept in the browser's localStorage, never in the page)."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["web"], include_in_schema=False)


@lru_cache
def _page() -> str:
    return files("api.web").joinpath("reviews.html").read_text(encoding="utf-8")


@router.get("/reviews", response_class=HTMLResponse)
async def reviews_page() -> HTMLResponse:
    """Pending reviews: approve, reject, or edit the JSON then approve."""
    return HTMLResponse(_page())
