"""Fixtures for admin API unit tests: the in-memory world of world.py behind an ASGI client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from unit.admin.world import World, make_world


@pytest.fixture
async def world() -> AsyncIterator[World]:
    built = await make_world()
    yield built
    await built.http.aclose()
