"""Keyset pagination with opaque cursors: stable pages while rows are being added."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

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


def encode_cursor(key: CursorKey) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> tuple[Any, ...]:
    """The key inside `cursor`, checked against the expected element types."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor("cursor is longer than any this store writes")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    # RecursionError: base64 of "[[[[..." nests deeper than the JSON decoder recurses.
    except (ValueError, binascii.Error, UnicodeError, RecursionError) as exc:
        raise InvalidCursor("cursor does not decode") from exc
    if not isinstance(key, list) or len(key) != len(shape):
        raise InvalidCursor("cursor has the wrong shape")
    for value, expected in zip(key, shape, strict=True):
        # bool is an int to Python, never to us.
        if isinstance(value, bool) or not isinstance(value, expected):
            raise InvalidCursor("cursor has the wrong shape")
    return tuple(key)


def encode_time_cursor(created_at: datetime, row_id: str) -> str:
    return encode_cursor((created_at.isoformat(), row_id))


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    created, row_id = decode_cursor(cursor, (str, str))
    try:
        created_at = datetime.fromisoformat(created)
    except ValueError as exc:
        raise InvalidCursor("cursor does not decode") from exc
    if created_at.tzinfo is None or "\x00" in row_id:  # NUL: PostgreSQL refuses the query
        raise InvalidCursor("cursor does not decode")
    try:
        # An offset can push a representable local time out of datetime's range in UTC.
        created_at = created_at.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidCursor("cursor does not decode") from exc
    return created_at, row_id


def newest_first_after(
    created_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[str],
    cursor: str,
) -> ColumnElement[bool]:
    """Rows strictly after the cursor in `created_at DESC, id DESC` order."""
    created_at, row_id = decode_time_cursor(cursor)
    return or_(created_col < created_at, and_(created_col == created_at, id_col < row_id))


def make_page(
    rows: Sequence[R], limit: int, convert: Callable[[R], T], key: Callable[[R], str]
) -> Page[T]:
    """Build a page from up to `limit + 1` rows; the extra row only proves there is more."""
    visible = rows[:limit]
    next_cursor = key(visible[-1]) if len(rows) > limit and visible else None
    return Page(items=[convert(row) for row in visible], next_cursor=next_cursor)
