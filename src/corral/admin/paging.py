"""Cursor pagination of the admin API's lists: the page's query fields and opaque cursors.

A cursor is the (sort value, id) of the last record of a page, as URL-safe base64 JSON: the
store pages by keyset from it (no offset), so every page costs the same however deep it is.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from corral.errors import InvalidRequest
from corral.store.records import Listing

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_Record = TypeVar("_Record")


class PageQuery(BaseModel):
    """The query fields every paged list takes."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Records per page.")
    after: str | None = Field(
        None, max_length=400, description="Cursor: the next_after of the page before."
    )
    name_prefix: str | None = Field(
        None, min_length=1, max_length=200, description="Only records whose name starts so."
    )


def listing(query: PageQuery) -> Listing:
    """The store's page request for ``query``: one record more than asked, to see if more."""
    after = None if query.after is None else decode_cursor(query.after)
    return Listing(limit=query.limit + 1, after=after, name_prefix=query.name_prefix)


def page_of(
    found: Sequence[_Record], query: PageQuery, position: Callable[[_Record], tuple[Any, str]]
) -> tuple[list[_Record], str | None]:
    """The records to show and the cursor of the next page (None: this is the last)."""
    shown = list(found[: query.limit])
    if len(found) <= query.limit or not shown:
        return shown, None
    return shown, encode_cursor(position(shown[-1]))


def encode_cursor(position: tuple[Any, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, str]:
    """The position in ``cursor``; InvalidRequest when it is not one this API handed out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort, id_ = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(sort, str | int | float) or not isinstance(id_, str):
        raise _bad_cursor()
    return sort, id_


def _bad_cursor() -> InvalidRequest:
    return InvalidRequest(
        "after: not a cursor from this API; pass the next_after of the page before, or leave "
        "it out for the first page",
        param="after",
    )
