"""Cursor pagination over prefixed, time-sortable ids: newest first, `next_cursor` is the last id of the page.

Queries fetch `limit + 1` rows; the extra row only says whether another page exists. `total` counts every row that
matches the filters (not just this page), as DESIGN §3 asks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

P = TypeVar("P", bound=BaseModel)


def page_of(page_model: type[P], rows: Sequence[Any], total: int, limit: int, view: Callable[[Any], Any]) -> P:
    more = len(rows) > limit
    rows = rows[:limit]
    return page_model(
        data=[view(row) for row in rows], total=total, limit=limit, next_cursor=rows[-1].id if more else None
    )
