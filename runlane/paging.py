"""The order every list is paged in (API.md "Seed compatibility": `order=desc|asc`)."""

from __future__ import annotations

from typing import Literal

# By creation time: newest first (`desc`, the default) or oldest first (`asc`).
Order = Literal["desc", "asc"]
ORDERS: tuple[Order, ...] = ("desc", "asc")
