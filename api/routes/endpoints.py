"""Outbound event webhooks (API.md "Triggers"): endpoints an organization subscribes, and
the log of what was delivered to them."""

from __future__ import annotations

from fastapi import APIRouter

from api import schemas
from api.deps import JsonBody

router = APIRouter(
    tags=["event webhooks"], dependencies=[JsonBody], responses=schemas.ERROR_RESPONSES
)
