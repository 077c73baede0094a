"""(placeholder: filled in by the bulk work of issue 16)"""

from __future__ import annotations

from fastapi import APIRouter

from api import schemas
from api.deps import JsonBody

router = APIRouter(dependencies=[JsonBody], responses=schemas.ERROR_RESPONSES)
