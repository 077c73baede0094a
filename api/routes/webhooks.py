"""Inbound webhooks (API.md "Triggers"): signed calls that start runs of a workflow."""

from __future__ import annotations

from fastapi import APIRouter

from api import schemas

router = APIRouter(tags=["webhooks"], responses=schemas.ERROR_RESPONSES)
