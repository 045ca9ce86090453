"""The control plane's checked-in specs and golden manifests, for tests that read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).parents[1] / "fixtures" / "control"


def golden(name: str) -> list[dict[str, Any]]:
    """The manifests checked in for spec ``name`` (``tests/fixtures/control/golden``)."""
    return list(yaml.safe_load_all((FIXTURES / "golden" / name).read_text()))


def of_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The first object of ``kind``."""
    return next(o for o in objs if o["kind"] == kind)


def spec_data(name: str) -> dict[str, Any]:
    """A spec as parsed YAML, to change before ``parse_spec``."""
    data: dict[str, Any] = yaml.safe_load((FIXTURES / "specs" / name).read_text())
    return data
