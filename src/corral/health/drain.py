"""Draining a node through the Eviction API: PDBs respected, back-off on 429, a time cap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from corral.clock import Clock
from corral.errors import TemporaryError
from corral.kube.port import KubeClient


@dataclass(frozen=True, slots=True)
class DrainLimits:
    """How patiently a drain waits."""

    timeout_s: float = 600.0
    """The longest a drain may block before it gives up and leaves the node cordoned."""
    backoff_initial_s: float = 5.0
    """First wait after a PodDisruptionBudget refused an eviction (doubles each refusal)."""
    backoff_max_s: float = 60.0
    """The longest single wait between eviction rounds."""
    poll_s: float = 2.0
    """Wait between checks that evicted pods have gone."""


@dataclass(frozen=True, slots=True)
class DrainResult:
    evicted: tuple[str, ...]
    remaining: tuple[str, ...]
    refusals: int
    capped: bool


async def drain(
    kube: KubeClient, node: str, clock: Clock, limits: DrainLimits | None = None
) -> DrainResult:
    """Evict every pod that a drain should move until none is left or the time cap is reached."""
    limits = limits or DrainLimits()
    started = clock.monotonic()
    evicted: list[str] = []
    refusals = 0
    backoff = limits.backoff_initial_s
    while True:
        pods = evictable(await kube.list_pods_on_node(node))
        if not pods:
            return DrainResult(tuple(evicted), (), refusals, capped=False)
        wait = limits.poll_s
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue  # already going; wait for it
            name, namespace = pod["metadata"]["name"], pod["metadata"].get("namespace", "default")
            try:
                await kube.evict(name, namespace)
            except TemporaryError as exc:
                refusals += 1
                wait = max(wait, min(max(exc.delay, backoff), limits.backoff_max_s))
                continue
            evicted.append(f"{namespace}/{name}")
        if refusals:
            backoff = min(backoff * 2, limits.backoff_max_s)
        left = limits.timeout_s - (clock.monotonic() - started)
        if left <= 0:
            remaining = tuple(_name(p) for p in evictable(await kube.list_pods_on_node(node)))
            return DrainResult(tuple(evicted), remaining, refusals, capped=bool(remaining))
        await clock.sleep(min(wait, left))


def evictable(pods: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods a drain moves: not DaemonSet pods, not static (mirror) pods, not finished."""
    return [p for p in pods if _movable(p)]


def _movable(pod: dict[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return False
    if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or []):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _name(pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace', 'default')}/{meta['name']}"
