"""Nodes and replicas: placement, start-up, draining, idle removal, spot reclaims and billing."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from corral.control.planner.instances import InstanceType, PriceTable
from corral.simulation.engine import ReplicaEngine
from corral.simulation.replica import ReplicaModel
from corral.simulation.startup import StartupModel


class ReplicaState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class CapacitySettings:
    """How nodes come and go: capacity type, spot behaviour and idle removal."""

    spot_first: bool
    spot_interruptions_per_hour: float = 0.0
    """Poisson rate of spot reclaims per spot node-hour."""
    spot_notice_s: float = 120.0
    """EC2's two-minute interruption notice."""
    spot_unavailable_share: float = 0.0
    """Share of spot launches that find no capacity and fall back to on-demand (the NodePool
    lists both capacity types; Karpenter takes on-demand when spot is short)."""
    node_idle_s: float = 600.0
    """An empty node's life before removal: the Ray autoscaler's idle timeout for the worker
    pod plus Karpenter's ``consolidateAfter``."""


class Node:
    """One instance: its launch, readiness, replicas and end."""

    __slots__ = (
        "capacity_type",
        "empty_since",
        "ended_s",
        "image_cached",
        "index",
        "instance",
        "launched_s",
        "ready_s",
        "reclaim_s",
        "replicas",
        "slots",
    )

    def __init__(
        self, index: int, instance: InstanceType, slots: int, launched_s: float, ready_s: float
    ) -> None:
        self.index = index
        self.instance = instance
        self.slots = slots
        self.launched_s = launched_s
        self.ready_s = ready_s
        self.capacity_type = "on-demand"
        self.replicas: list[Replica] = []
        self.empty_since: float | None = None
        self.ended_s: float | None = None
        self.image_cached = False
        self.reclaim_s: float | None = None
        """When a spot reclaim will take the node (set at the interruption notice)."""

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.replicas)

    @property
    def usable(self) -> bool:
        """Takes new replicas: not ended, not under an interruption notice."""
        return self.ended_s is None and self.reclaim_s is None


class Replica:
    """One engine replica on a node."""

    __slots__ = ("engine", "index", "node", "ready_s", "state")

    def __init__(self, index: int, node: Node, engine: ReplicaEngine, ready_s: float) -> None:
        self.index = index
        self.node = node
        self.engine = engine
        self.ready_s = ready_s
        self.state = ReplicaState.STARTING


class Fleet:
    """Replicas and the nodes under them; the simulator schedules the events this returns."""

    def __init__(
        self,
        model: ReplicaModel,
        *,
        startup: StartupModel,
        instance: InstanceType,
        prices: PriceTable,
        capacity: CapacitySettings,
        rng: random.Random,
    ) -> None:
        self.model = model
        self.startup = startup
        self.instance = instance
        self.prices = prices
        self.capacity = capacity
        self.rng = rng
        self.slots_per_node = max(1, instance.count // model.devices)
        self.nodes: list[Node] = []
        self.replicas: list[Replica] = []
        """Every replica ever started, in order (stopped ones included)."""
        self.active: list[Replica] = []
        """Replicas not stopped."""

    def live(self) -> list[Replica]:
        """Replicas that count toward the target: starting or ready."""
        return [r for r in self.replicas if r.state in (ReplicaState.STARTING, ReplicaState.READY)]

    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state is ReplicaState.READY]

    def launch_node(self, now: float, *, warm: bool = False) -> Node:
        """A new instance; ``warm`` ones exist from the start with the image pulled."""
        ready = now if warm else now + self.startup.node_provision_s
        node = Node(len(self.nodes), self.instance, self.slots_per_node, now, ready)
        node.image_cached = warm
        spot = (
            self.capacity.spot_first and self.rng.random() >= self.capacity.spot_unavailable_share
        )
        node.capacity_type = "spot" if spot else "on-demand"
        self.nodes.append(node)
        return node

    def add_replica(self, now: float, *, warm: bool = False) -> Replica:
        """Place a replica on a usable node with room (ready nodes first), else a new node."""
        candidates = [n for n in self.nodes if n.usable and n.free_slots > 0]
        candidates.sort(key=lambda n: (n.ready_s > now, n.ready_s, n.index))
        node = candidates[0] if candidates else self.launch_node(now, warm=warm)
        if warm:
            ready = now
        elif node.ready_s <= now:
            ready = now + (
                self.startup.on_warm_node_s
                if node.image_cached
                else self.startup.image_and_engine_s
            )
        else:
            ready = node.ready_s + self.startup.image_and_engine_s
        replica = Replica(len(self.replicas), node, ReplicaEngine(self.model), ready)
        node.replicas.append(replica)
        node.empty_since = None
        self.replicas.append(replica)
        self.active.append(replica)
        return replica

    def choose_to_stop(self, count: int) -> list[Replica]:
        """Starting replicas first (newest first), then the ready ones holding least work."""
        starting = [r for r in self.active if r.state is ReplicaState.STARTING]
        starting.sort(key=lambda r: -r.ready_s)
        ready = sorted(self.ready(), key=lambda r: (r.engine.ongoing, -r.index))
        return (starting + ready)[:count]

    def detach(self, replica: Replica, now: float) -> Node:
        """The replica is gone; its node may now be empty."""
        replica.state = ReplicaState.STOPPED
        self.active.remove(replica)
        node = replica.node
        node.replicas.remove(replica)
        if not node.replicas:
            node.empty_since = now
        return node

    def billed(self, until: float) -> tuple[float, float, float]:
        """(device-hours, USD, spot share of device-hours) of every node up to ``until``."""
        devices = cost = spot = 0.0
        for node in self.nodes:
            end = min(until, node.ended_s if node.ended_s is not None else until)
            hours = max(0.0, end - node.launched_s) / 3600
            node_devices = hours * node.instance.count
            devices += node_devices
            if node.capacity_type == "spot":
                spot += node_devices
                cost += hours * self.prices.spot_price(node.instance)
            else:
                cost += hours * node.instance.on_demand_usd_per_hour
        return devices, cost, (spot / devices if devices else 0.0)
