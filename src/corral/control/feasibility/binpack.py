"""Place Serve replicas' bundles on the Ray node types, as the autoscaler would have to."""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.control.feasibility.ray_cluster import HEAD, Bundle, NodeType, ReplicaShape

EPSILON = 1e-9


@dataclass
class _Node:
    type: NodeType
    free: dict[str, float] = field(default_factory=dict)

    def holds(self, need: Bundle) -> bool:
        return all(self.free.get(k, 0.0) + EPSILON >= v for k, v in need.items() if v > 0)

    def take(self, need: Bundle) -> None:
        for key, value in need.items():
            self.free[key] = self.free.get(key, 0.0) - value


@dataclass(frozen=True, slots=True)
class Placement:
    """How ``replicas`` replicas land: worker nodes used per type, or why they cannot."""

    replicas: int
    nodes: dict[str, int]
    unplaced: Bundle | None = None
    """The first bundle no node (running or launchable) could hold; None when all placed."""

    @property
    def ok(self) -> bool:
        return self.unplaced is None


def place(
    types: list[NodeType], shape: ReplicaShape, replicas: int, *, from_zero: bool = False
) -> Placement:
    """Start from the head plus each group's ``min_workers`` (only the head ``from_zero``), and
    place ``replicas`` replicas, launching nodes of a type up to its ``max_workers``."""
    nodes = [_Node(t, dict(t.resources)) for t in types if t.name == HEAD]
    launched = {t.name: 0 for t in types if t.name != HEAD}
    if not from_zero:
        for t in types:
            for _ in range(t.min_workers if t.name != HEAD else 0):
                nodes.append(_Node(t, dict(t.resources)))
                launched[t.name] += 1
    for _ in range(replicas):
        missing = _place_replica(nodes, launched, types, shape)
        if missing is not None:
            return Placement(replicas, launched, missing)
    return Placement(replicas, launched)


def _place_replica(
    nodes: list[_Node], launched: dict[str, int], types: list[NodeType], shape: ReplicaShape
) -> Bundle | None:
    together = _total(shape.bundles)
    if shape.strategy in ("STRICT_PACK", "PACK"):
        node = _find(nodes, together) or _launch(nodes, launched, types, together)
        if node is not None:
            node.take(together)
            return None
        if shape.strategy == "STRICT_PACK":
            return together
    for bundle in shape.bundles:  # PACK falls back to spreading bundles over nodes
        node = _find(nodes, bundle) or _launch(nodes, launched, types, bundle)
        if node is None:
            return bundle
        node.take(bundle)
    return None


def _find(nodes: list[_Node], need: Bundle) -> _Node | None:
    return next((n for n in nodes if n.holds(need)), None)


def _launch(
    nodes: list[_Node], launched: dict[str, int], types: list[NodeType], need: Bundle
) -> _Node | None:
    for t in types:
        if t.name == HEAD or launched[t.name] >= t.max_workers:
            continue
        node = _Node(t, dict(t.resources))
        if node.holds(need):
            nodes.append(node)
            launched[t.name] += 1
            return node
    return None


def _total(bundles: list[Bundle]) -> Bundle:
    out: Bundle = {}
    for bundle in bundles:
        for key, value in bundle.items():
            out[key] = out.get(key, 0.0) + value
    return out
