"""One nesting limit for every JSON body: refused as a client mistake, never a RecursionError."""

from __future__ import annotations

import json

import pytest

from corral import json_bounds
from corral.errors import InvalidRequest


def test_depth_counts_arrays_and_objects() -> None:
    assert not json_bounds.depth_exceeds({"a": [{"b": [1]}]}, 4)
    assert json_bounds.depth_exceeds({"a": [{"b": [1]}]}, 3)
    assert not json_bounds.depth_exceeds("text", 0)


@pytest.mark.parametrize("depth", [65, 1000, 5000])
def test_loads_refuses_deeper_than_the_limit(depth: int) -> None:
    raw = ("[" * depth + "]" * depth).encode()
    with pytest.raises(InvalidRequest, match="64 levels deep"):
        json_bounds.loads(raw)


def test_loads_accepts_the_limit_and_reports_bad_json() -> None:
    raw = ('{"a":' * 63 + "1" + "}" * 63).encode()
    assert json.dumps(json_bounds.loads(raw)).count("{") == 63
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        json_bounds.loads(b"{")
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        json_bounds.loads(b'"\xff"')
