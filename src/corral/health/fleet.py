"""The cluster as remediation safety sees it: NodePool members, their health, and the breaker."""

from __future__ import annotations

from typing import Any

from corral.clock import Clock
from corral.health.remediation import ACTED_AT, TAINT_KEY
from corral.health.safety import Fleet, PoolNode
from corral.kube.port import KubeClient

CONDITION = "CorralGpuHealthy"
"""The node condition the agent keeps up to date (False while a GPU is faulty)."""
POOL_LABEL = "karpenter.sh/nodepool"
"""The label naming a node's Karpenter NodePool."""
OPT_OUT_LABEL = "corral.dev/gpu-remediation"
"""Set to ``disabled`` on a node to have its faults reported but never acted on."""
BREAKER_NAME = "corral-gpu-health-breaker"


class Breaker:
    """The circuit breaker, kept in a ConfigMap so every agent sees it and a human can reset it."""

    def __init__(self, kube: KubeClient, clock: Clock, namespace: str) -> None:
        self._kube = kube
        self._clock = clock
        self._namespace = namespace

    async def state(self) -> tuple[bool, str]:
        """(open, why); closed when the ConfigMap is absent."""
        found = await self._kube.get("v1", "ConfigMap", BREAKER_NAME, self._namespace)
        data = (found or {}).get("data") or {}
        return data.get("open") == "true", str(data.get("reason", ""))

    async def trip(self, reason: str) -> None:
        data = {"open": "true", "reason": reason, "trippedAt": f"{self._clock.now():.0f}"}
        meta = {"name": BREAKER_NAME, "namespace": self._namespace}
        await self._kube.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
        )

    async def reset(self) -> None:
        """Close the breaker (a human's decision: `corral health reset-breaker`)."""
        await self._kube.delete("v1", "ConfigMap", BREAKER_NAME, self._namespace)


async def read_fleet(kube: KubeClient, node: str, breaker: Breaker) -> Fleet:
    """The NodePool ``node`` belongs to (just the node when it has none) and the breaker state."""
    own = await kube.get("v1", "Node", node)
    pool = _labels(own).get(POOL_LABEL) if own else None
    members = await kube.list("v1", "Node", label_selector={POOL_LABEL: pool}) if pool else []
    if own is not None and not members:
        members = [own]
    is_open, reason = await breaker.state()
    return Fleet(tuple(pool_node(n) for n in members), breaker_open=is_open, breaker_reason=reason)


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
