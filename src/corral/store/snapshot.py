"""A local copy of what a gateway needs to authenticate and limit requests (key hashes with
their principals, limits), so a gateway that has served before can start while the store is down.

Keys are kept only as their keyed hashes (HMAC under the server secret, as the store keeps them):
no secret is ever written in clear. Files are replaced atomically and readable by the owner only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from corral.principals import Principal, Role
from corral.store.usage import LimitSetting

log = logging.getLogger("corral.store.snapshot")

SNAPSHOT_DIR = "store-snapshot"


class StoreSnapshot:
    """Keys and limits as last read from the store, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._written: dict[str, bytes] = {}

    def save_keys(self, keys: dict[str, Principal]) -> None:
        """Keep key hash → principal (only when it changed since the last save)."""
        self._save("keys", {h: _principal(p) for h, p in keys.items()})

    def save_limits(self, limits: list[LimitSetting]) -> None:
        """Keep every team's and key's limits (only when they changed)."""
        self._save("limits", [asdict(setting) for setting in limits])

    def keys(self) -> dict[str, Principal] | None:
        """The saved keys, or None when there is no snapshot."""
        raw = self._load("keys")
        if raw is None:
            return None
        return {h: _read_principal(p) for h, p in raw.items()}

    def limits(self) -> list[LimitSetting] | None:
        """The saved limits, or None when there is no snapshot."""
        raw = self._load("limits")
        return None if raw is None else [LimitSetting(**item) for item in raw]

    def _save(self, name: str, value: Any) -> None:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        if self._written.get(name) == data:
            return
        try:
            self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self._directory / f".{name}.json.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            tmp.replace(self._directory / f"{name}.json")
        except OSError as exc:  # a snapshot is a convenience: never fail serving for it
            log.warning("could not save the store snapshot (%s)", exc)
            return
        self._written[name] = data

    def _load(self, name: str) -> Any:
        with contextlib.suppress(FileNotFoundError):
            return orjson.loads((self._directory / f"{name}.json").read_bytes())
        return None


def _principal(principal: Principal) -> dict[str, Any]:
    data = asdict(principal)
    data["role"] = principal.role.value
    models = principal.allowed_models
    data["allowed_models"] = None if models is None else sorted(models)
    return data


def _read_principal(data: dict[str, Any]) -> Principal:
    models = data.get("allowed_models")
    return Principal(
        key_id=data["key_id"],
        role=Role(data["role"]),
        team_id=data.get("team_id"),
        user_id=data.get("user_id"),
        allowed_models=None if models is None else frozenset(models),
        expires_at=data.get("expires_at"),
    )
