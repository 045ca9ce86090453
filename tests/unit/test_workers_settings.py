"""Settings that several gateway workers cannot run are refused with the field to fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from corral.composition.workers import CRASH_LOOP_DEATHS, restart_delay
from corral.settings import CorralSettings

EXTERNAL = {"name": "m", "engine": {"kind": "openai", "endpoints": [{"url": "http://e:8000/v1"}]}}
REDIS = {"redis_url": "redis://127.0.0.1:6379/0"}


def test_one_worker_needs_nothing_shared() -> None:
    settings = CorralSettings(models=[{"name": "m", "engine": {"kind": "fake"}}])  # type: ignore[list-item]
    assert settings.server.workers == 1


def test_several_workers_need_redis_counters() -> None:
    with pytest.raises(ValidationError, match=r"server.workers > 1 needs limits.redis_url"):
        CorralSettings(server={"workers": 2}, models=[EXTERNAL])  # type: ignore[arg-type,list-item]


def test_several_workers_refuse_in_process_engines() -> None:
    fake = {"name": "local-one", "engine": {"kind": "fake"}}
    with pytest.raises(ValidationError, match=r"model 'local-one' has an in-process engine"):
        CorralSettings(server={"workers": 2}, limits=REDIS, models=[fake])  # type: ignore[arg-type,list-item]


def test_several_workers_with_shared_parts_are_fine() -> None:
    settings = CorralSettings(server={"workers": 4}, limits=REDIS, models=[EXTERNAL])  # type: ignore[arg-type,list-item]
    assert settings.server.workers == 4


def test_a_worker_is_restarted_sooner_than_a_crash_loop_and_a_crash_loop_stops() -> None:
    assert restart_delay(0) == 0.5  # it had been running: back at once
    assert [restart_delay(n) for n in range(1, 5)] == [1.0, 2.0, 4.0, 8.0]
    assert restart_delay(CRASH_LOOP_DEATHS) is None
