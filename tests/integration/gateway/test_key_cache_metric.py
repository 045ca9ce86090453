"""The key cache's size is a metric: how many keys a process holds in memory, read at scrape."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from corral.composition.platform import running_platform
from corral.principals import KeyDirectory, Principal, Role
from corral.settings import CorralSettings


async def test_the_key_cache_size_follows_the_directory(tmp_path: Path) -> None:
    keys, registry = KeyDirectory(b"s" * 32), CollectorRegistry()
    keys.add("a" * 64, Principal("key_a", Role.DEVELOPER))
    async with running_platform(CorralSettings(data_dir=tmp_path), keys=keys, registry=registry):
        assert registry.get_sample_value("corral_key_cache_keys") == 1
        keys.apply({"b" * 64: Principal("key_b", Role.DEVELOPER)}, ["a" * 64])
        keys.add("c" * 64, Principal("key_c", Role.DEVELOPER))
        assert registry.get_sample_value("corral_key_cache_keys") == 2
