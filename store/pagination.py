"""Keyset pagination with opaque cursors: stable pages while rows are being added, newest
first (`desc`) or oldest first (`asc`). A cursor names the order it was written for: a
newest-first cursor is the bare key, as it always was; an oldest-first one wraps it."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, UnaryExpression, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from runlane.paging import Order
from runlane.unicode import has_lone_surrogate

T = TypeVar("T")
R = TypeVar("R")

CursorKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


# The cursors this store writes (a timestamp and an id) are well under 200 characters.
MAX_CURSOR_CHARS = 1024


class InvalidCursor(ValueError):
    """The cursor was not produced by this store (or was tampered with)."""


class CursorOrderMismatch(InvalidCursor):
    """A cursor this store wrote, for the other order; the message is the caller's to read."""

    def __init__(self, written_for: Order) -> None:
        super().__init__(
            f"cursor was returned for order={written_for}; list with that order to go on from it."
        )


def encode_cursor(key: CursorKey, order: Order = "desc") -> str:
    payload: Any = list(key) if order == "desc" else {"o": order, "k": list(key)}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...], order: Order = "desc") -> tuple[Any, ...]:
    """The key inside `cursor`, checked against the expected element types and order."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor("cursor is longer than any this store writes")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    # RecursionError: base64 of "[[[[..." nests deeper than the JSON decoder recurses.
    except (ValueError, binascii.Error, UnicodeError, RecursionError) as exc:
        raise InvalidCursor("cursor does not decode") from exc
    written_for: Order = "desc"
    if isinstance(key, dict):
        if set(key) != {"o", "k"} or key["o"] != "asc":
            raise InvalidCursor("cursor has the wrong shape")
        written_for, key = "asc", key["k"]
    if not isinstance(key, list) or len(key) != len(shape):
        raise InvalidCursor("cursor has the wrong shape")
    for value, expected in zip(key, shape, strict=True):
        # bool is an int to Python, never to us.
        if isinstance(value, bool) or not isinstance(value, expected):
            raise InvalidCursor("cursor has the wrong shape")
    if written_for != order:
        raise CursorOrderMismatch(written_for)
    return tuple(key)


def encode_time_cursor(created_at: datetime, row_id: str, order: Order = "desc") -> str:
    return encode_cursor((created_at.isoformat(), row_id), order)


def decode_time_cursor(cursor: str, order: Order = "desc") -> tuple[datetime, str]:
    created, row_id = decode_cursor(cursor, (str, str), order)
    try:
        created_at = datetime.fromisoformat(created)
    except ValueError as exc:
        raise InvalidCursor("cursor does not decode") from exc
    # NUL: PostgreSQL refuses the query; a lone surrogate (JSON's "\\ud800") is no text
    # either store's driver can send.
    if created_at.tzinfo is None or "\x00" in row_id or has_lone_surrogate(row_id):
        raise InvalidCursor("cursor does not decode")
    try:
        # An offset can push a representable local time out of datetime's range in UTC.
        created_at = created_at.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidCursor("cursor does not decode") from exc
    return created_at, row_id


def after_time_cursor(
    created_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[str],
    cursor: str,
    order: Order,
) -> ColumnElement[bool]:
    """Rows strictly after the cursor in `created_at, id` order (descending for `desc`)."""
    created_at, row_id = decode_time_cursor(cursor, order)
    if order == "asc":
        return or_(created_col > created_at, and_(created_col == created_at, id_col > row_id))
    return or_(created_col < created_at, and_(created_col == created_at, id_col < row_id))


def ordered(order: Order, *columns: InstrumentedAttribute[Any]) -> list[UnaryExpression[Any]]:
    """ORDER BY the columns, all descending for `desc` and ascending for `asc`."""
    return [column.asc() if order == "asc" else column.desc() for column in columns]


def make_page(
    rows: Sequence[R], limit: int, convert: Callable[[R], T], key: Callable[[R], str]
) -> Page[T]:
    """Build a page from up to `limit + 1` rows; the extra row only proves there is more."""
    visible = rows[:limit]
    next_cursor = key(visible[-1]) if len(rows) > limit and visible else None
    return Page(items=[convert(row) for row in visible], next_cursor=next_cursor)
