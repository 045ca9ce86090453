"""Ids in CLI tables shown beside what people call them: ``ml (team_1a2b)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corral.admin.client import AdminClient
from corral.errors import CorralError

# What each list holds, read once per command when a table first needs a name.
_SOURCES: tuple[tuple[str, dict[str, str | bool | None] | None], ...] = (
    ("/teams", {"limit": "1000"}),
    ("/users", {"limit": "1000"}),
    ("/keys", {"include_inactive": True, "limit": "1000"}),
)
"""Where names come from: the first page of each list, as large as the API gives (lists page)."""


class Names:
    """Team, user and key names by id, from the admin API as the caller may see them; an id
    the caller may not see (or a list it may not read) stays a bare id."""

    def __init__(self, api: AdminClient) -> None:
        self._api = api
        self._known: dict[str, str] | None = None

    def label(self, ref: Any) -> str | None:
        """``name (id)`` for a known id; the id itself otherwise."""
        if not isinstance(ref, str) or not ref:
            return None if ref is None else str(ref)
        name = self._table().get(ref)
        return f"{name} ({ref})" if name and name != ref else ref

    def column(self, title: str, field: str) -> tuple[str, Callable[[dict[str, Any]], Any]]:
        """A table column showing ``field`` (an id) with its name."""
        return (title, lambda row: self.label(row.get(field)))

    def _table(self) -> dict[str, str]:
        if self._known is None:
            known: dict[str, str] = {}
            for path, params in _SOURCES:
                try:
                    rows = self._api.get(path, params)["data"]
                except (CorralError, KeyError, TypeError):
                    continue  # e.g. a developer may not list users: ids stay ids
                for row in rows:
                    name = row.get("name") or row.get("email")
                    if isinstance(row.get("id"), str) and isinstance(name, str):
                        known[row["id"]] = name
            self._known = known
        return self._known
