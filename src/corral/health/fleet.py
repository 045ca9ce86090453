"""The cluster as remediation safety sees it: NodePool members, recent replacements, the breaker."""

from __future__ import annotations

from typing import Any

from corral.clock import Clock
from corral.health.markers import (
    ACTED_AT,
    BREAKER_NAME,
    CONDITION,
    EJECTED_NAME,
    OPT_OUT_LABEL,
    POOL_LABEL,
    REPLACEMENTS_NAME,
    TAINT_KEY,
)
from corral.health.safety import Fleet, PoolNode
from corral.kube.port import KubeClient, Manifest


class _ConfigMapState:
    """A small string map kept in one ConfigMap, so every agent and a human see the same one."""

    def __init__(self, kube: KubeClient, namespace: str, name: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._name = name

    async def read(self) -> dict[str, str]:
        found = await self._kube.get("v1", "ConfigMap", self._name, self._namespace)
        return {str(k): str(v) for k, v in ((found or {}).get("data") or {}).items()}

    async def write(self, data: dict[str, str]) -> None:
        # The whole map every time: server-side apply drops keys this manager stops sending.
        meta = {"name": self._name, "namespace": self._namespace}
        manifest: Manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
        await self._kube.apply({**manifest, "data": data})

    async def remove(self) -> None:
        await self._kube.delete("v1", "ConfigMap", self._name, self._namespace)


class Breaker:
    """The circuit breaker. Open pauses all remediation until a human resets it."""

    def __init__(self, kube: KubeClient, clock: Clock, namespace: str) -> None:
        self._state = _ConfigMapState(kube, namespace, BREAKER_NAME)
        self._clock = clock

    async def state(self) -> tuple[bool, str]:
        """(open, why); closed when the ConfigMap is absent."""
        data = await self._state.read()
        return data.get("open") == "true", data.get("reason", "")

    async def trip(self, reason: str) -> None:
        await self._state.write(
            {"open": "true", "reason": reason, "trippedAt": f"{self._clock.now():.0f}"}
        )

    async def reset(self) -> None:
        """Close the breaker: a human's decision (`corral health reset-breaker`)."""
        await self._state.remove()


class Replacements:
    """Nodes deleted for replacement; each counts against its pool's budget for ``settle_s``."""

    def __init__(
        self, kube: KubeClient, clock: Clock, namespace: str, settle_s: float = 1800.0
    ) -> None:
        self._kube = kube
        self._state = _ConfigMapState(kube, namespace, REPLACEMENTS_NAME)
        self._clock = clock
        self._settle_s = settle_s

    async def record(self, node: str) -> None:
        found = await self._kube.get("v1", "Node", node)
        pool = _labels(found).get(POOL_LABEL, "") if found else ""
        recent = {n.name: f"{n.pool}@{n.last_action_at:.0f}" for n in await self.recent()}
        await self._state.write({**recent, node: f"{pool}@{self._clock.now():.0f}"})

    async def recent(self) -> list[PoolNode]:
        """Replacements within the settle time, as unhealthy nodes still in remediation."""
        found = []
        for node, value in (await self._state.read()).items():
            pool, _, at = value.rpartition("@")
            if self._clock.now() - float(at) < self._settle_s:
                found.append(PoolNode(node, pool, True, True, False, float(at)))
        return found


class ConfigMapEjector:
    """An EndpointEjector that lists ejected nodes in a ConfigMap the gateway's discovery watches.

    Used by ``corral health agent`` until the gateway's own ejection interface is wired in.
    """

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self._state = _ConfigMapState(kube, namespace, EJECTED_NAME)

    async def eject_node(self, node: str, reason: str) -> None:
        await self._state.write({**await self._state.read(), node: reason[:500]})

    async def restore_node(self, node: str) -> None:
        data = await self._state.read()
        if data.pop(node, None) is not None:
            await self._state.write(data)


async def read_fleet(
    kube: KubeClient, node: str, breaker: Breaker, replacements: Replacements | None = None
) -> Fleet:
    """The NodePool ``node`` belongs to (just the node when it has none) and the breaker state."""
    own = await kube.get("v1", "Node", node)
    pool = _labels(own).get(POOL_LABEL) if own else None
    members = await kube.list("v1", "Node", label_selector={POOL_LABEL: pool}) if pool else []
    if own is not None and not members:
        members = [own]
    nodes = [pool_node(n) for n in members]
    present = {n.name for n in nodes}
    gone = await replacements.recent() if replacements else []
    nodes += [g for g in gone if g.pool == pool and g.name not in present]
    is_open, reason = await breaker.state()
    return Fleet(tuple(nodes), breaker_open=is_open, breaker_reason=reason)


def pool_node(node: dict[str, Any]) -> PoolNode:
    """How safety sees one Node object."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    conditions = (node.get("status") or {}).get("conditions") or []
    acted = (meta.get("annotations") or {}).get(ACTED_AT)
    return PoolNode(
        name=meta["name"],
        pool=_labels(node).get(POOL_LABEL, ""),
        unhealthy=any(
            c.get("type") == CONDITION and c.get("status") == "False" for c in conditions
        ),
        in_remediation=any(t.get("key") == TAINT_KEY for t in spec.get("taints") or []),
        opted_out=_labels(node).get(OPT_OUT_LABEL) == "disabled",
        last_action_at=float(acted) if acted else None,
    )


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})
