"""Schedules (API.md "Triggers"): Temporal Schedules that start runs of a workflow."""

from __future__ import annotations

from fastapi import APIRouter

from api import schemas
from api.deps import JsonBody

router = APIRouter(tags=["schedules"], dependencies=[JsonBody], responses=schemas.ERROR_RESPONSES)
