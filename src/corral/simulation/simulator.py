"""The discrete-event loop: arrivals, engine steps, autoscaler ticks, start-ups and reclaims."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from corral.control.planner.trace import TraceRequest
from corral.gateway.policies.routing import EndpointSnapshot, RoutingKey, RoutingPolicy, choose
from corral.settings import ColdStartSettings
from corral.simulation.autoscalers import Autoscaler, LoadSample
from corral.simulation.engine import SimRequest, StepResult
from corral.simulation.fleet import Fleet, Node, Replica, ReplicaState

TIMELINE_S = 10.0
"""Spacing of the replica/load timeline kept for charts."""
OVERRUN_LIMIT_S = 6 * 3600.0
"""Stop this long after the trace if requests still have not finished (a stuck fleet)."""

_ARRIVAL, _STEP_END, _READY, _CONTROL, _SAMPLE, _TIMELINE, _IDLE, _NOTICE, _RECLAIM, _HOLD = range(
    10
)


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """What the loop needs beyond the fleet and the autoscaler."""

    max_ongoing_requests: int
    """Requests one replica accepts; more wait in front of the replicas."""
    initial_replicas: int
    cold_start: ColdStartSettings = field(default_factory=ColdStartSettings)
    routing: RoutingPolicy = RoutingPolicy.LEAST_OUTSTANDING
    seed: int = 0


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    at_s: float
    ready: int
    target: int
    nodes: int
    queued: int


@dataclass(frozen=True, slots=True)
class LoopOutcome:
    """Everything the loop observed; ``report`` turns it into figures."""

    requests: list[SimRequest]
    timeline: list[TimelinePoint]
    horizon_s: float
    device_hours: float
    cost_usd: float
    spot_share: float
    replica_device_hours: float
    interrupted: int
    nodes_launched: int
    unfinished: int
    """Requests neither finished nor refused when the loop stopped (0 unless the fleet stuck)."""


class Simulation:
    """One run of a trace against a fleet driven by one autoscaler."""

    def __init__(
        self,
        trace: Sequence[TraceRequest],
        fleet: Fleet,
        autoscaler: Autoscaler,
        settings: LoopSettings,
        horizon_s: float,
    ) -> None:
        self.fleet = fleet
        self.autoscaler = autoscaler
        self.settings = settings
        self.horizon_s = horizon_s
        self.requests = [
            SimRequest(i, r.at_s, r.prompt_tokens, r.output_tokens) for i, r in enumerate(trace)
        ]
        self.rng = random.Random(settings.seed)  # noqa: S311 - seeded routing ties
        self.queue: deque[SimRequest] = deque()
        self.held = 0
        self.target = settings.initial_replicas
        self.open = 0
        self.interrupted = 0
        self.timeline: list[TimelinePoint] = []
        self._events: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()

    def _push(self, at: float, kind: int, payload: Any = None) -> None:
        heapq.heappush(self._events, (at, next(self._seq), kind, payload))

    def run(self) -> LoopOutcome:
        for _ in range(self.settings.initial_replicas):
            replica = self.fleet.add_replica(0.0, warm=True)
            replica.state = ReplicaState.READY
            self._watch_spot(replica.node)
        if self.requests:
            self._push(self.requests[0].arrival_s, _ARRIVAL, 0)
        for kind in (_CONTROL, _SAMPLE, _TIMELINE):
            self._push(0.0, kind, 0)
        handlers: dict[int, Callable[[float, Any], None]] = {
            _ARRIVAL: self._arrival,
            _STEP_END: self._step_end,
            _READY: self._ready,
            _CONTROL: self._control,
            _SAMPLE: self._sample,
            _TIMELINE: self._record,
            _IDLE: self._idle,
            _NOTICE: self._notice,
            _RECLAIM: self._reclaim,
            _HOLD: self._hold_timeout,
        }
        self.open = len(self.requests)
        while self._events:
            at, _, kind, payload = heapq.heappop(self._events)
            handlers[kind](at, payload)
        return self._outcome()

    def _ticking(self, at: float) -> bool:
        if at < self.horizon_s:
            return True
        return self.open > 0 and at < self.horizon_s + OVERRUN_LIMIT_S

    # --- traffic -----------------------------------------------------------------------

    def _arrival(self, now: float, index: int) -> None:
        request = self.requests[index]
        if index + 1 < len(self.requests):
            self._push(self.requests[index + 1].arrival_s, _ARRIVAL, index + 1)
        if not self.fleet.ready():
            if self.held >= self.settings.cold_start.max_waiting:
                self._refuse(request)
                return
            request.held = True
            self.held += 1
            self._push(now + self.settings.cold_start.max_wait_s, _HOLD, request)
        self.queue.append(request)
        self._dispatch(now)

    def _refuse(self, request: SimRequest) -> None:
        request.refused = True
        self.open -= 1

    def _hold_timeout(self, now: float, request: SimRequest) -> None:
        if request.dispatched_s is None and request.held and not request.refused:
            self.queue.remove(request)
            self.held -= 1
            self._refuse(request)

    def _dispatch(self, now: float) -> None:
        if not self.queue:
            return
        ready = self.fleet.ready()
        limit = self.settings.max_ongoing_requests
        while self.queue and ready:
            snapshots = [
                EndpointSnapshot(i, r.engine.ongoing, available=r.engine.ongoing < limit)
                for i, r in enumerate(ready)
            ]
            decision = choose(self.settings.routing, snapshots, RoutingKey(), self.rng)
            if decision.index is None:
                return
            request = self.queue.popleft()
            if request.held:
                request.held = False
                self.held -= 1
            request.dispatched_s = now
            replica = ready[decision.index]
            replica.engine.submit(request)
            if not replica.engine.stepping:
                self._step(replica, now)

    def _step(self, replica: Replica, now: float) -> None:
        result = replica.engine.step(now)
        replica.engine.stepping = True
        self._push(now + result.duration_s, _STEP_END, (replica, result))

    def _step_end(self, now: float, payload: tuple[Replica, StepResult]) -> None:
        replica, result = payload
        self.open -= len(result.finished)
        if replica.state is ReplicaState.STOPPED:
            # Stopped or reclaimed mid-step: what finished in the step is done; the rest was
            # handed back to the queue when the replica went.
            return
        engine = replica.engine
        engine.end_step(result.finished)
        engine.stepping = False
        if engine.has_work:
            self._step(replica, now)
        elif replica.state is ReplicaState.DRAINING:
            self._stop(replica, now)
        self._dispatch(now)

    # --- scaling -----------------------------------------------------------------------

    def _control(self, now: float, tick: int) -> None:
        running = len(self.fleet.ready())
        self.target = self.autoscaler.decide(now, running, self.target)
        self._reconcile(now)
        if self._ticking(now):
            self._push((tick + 1) * self.autoscaler.interval_s, _CONTROL, tick + 1)

    def _reconcile(self, now: float) -> None:
        live = self.fleet.live()
        for _ in range(self.target - len(live)):
            known = len(self.fleet.nodes)
            replica = self.fleet.add_replica(now)
            self._push(replica.ready_s, _READY, replica)
            if len(self.fleet.nodes) > known:
                self._watch_spot(replica.node)
        if len(live) > self.target:
            for replica in self.fleet.choose_to_stop(len(live) - self.target):
                if replica.state is ReplicaState.STARTING or not replica.engine.has_work:
                    self._stop(replica, now)
                else:
                    replica.state = ReplicaState.DRAINING

    def _ready(self, now: float, replica: Replica) -> None:
        if replica.state is not ReplicaState.STARTING:
            return
        replica.state = ReplicaState.READY
        replica.node.image_cached = True
        self._dispatch(now)

    def _stop(self, replica: Replica, now: float) -> None:
        node = self.fleet.detach(replica, now)
        if node.empty_since is not None and node.ended_s is None:
            self._push(now + self.fleet.capacity.node_idle_s, _IDLE, (node, node.empty_since))

    def _idle(self, now: float, payload: tuple[Node, float]) -> None:
        node, since = payload
        if node.empty_since == since and not node.replicas and node.ended_s is None:
            node.ended_s = now

    def _watch_spot(self, node: Node) -> None:
        rate = self.fleet.capacity.spot_interruptions_per_hour
        if node.capacity_type == "spot" and rate > 0:
            self._push(node.launched_s + self.rng.expovariate(rate / 3600), _NOTICE, node)

    def _notice(self, now: float, node: Node) -> None:
        if node.ended_s is not None or not self._ticking(now):
            return
        node.reclaim_s = now + self.fleet.capacity.spot_notice_s
        for replica in list(node.replicas):
            if replica.state is ReplicaState.STARTING or not replica.engine.has_work:
                self._stop(replica, now)
            else:
                replica.state = ReplicaState.DRAINING
        self._push(node.reclaim_s, _RECLAIM, node)
        self._reconcile(now)

    def _reclaim(self, now: float, node: Node) -> None:
        lost: list[SimRequest] = []
        for replica in list(node.replicas):
            lost.extend(replica.engine.evict())
            self.fleet.detach(replica, now)
        node.ended_s = now
        for request in reversed(lost):
            request.restart()
            self.queue.appendleft(request)
        self.interrupted += len(lost)
        self._dispatch(now)

    # --- observation -------------------------------------------------------------------

    def _load(self, now: float) -> LoadSample:
        serving = self.fleet.active
        return LoadSample(
            at_s=now,
            ongoing_at_replicas=sum(r.engine.ongoing for r in serving),
            queued_before_replicas=len(self.queue),
            tokens_in_flight=sum(r.engine.tokens_in_flight for r in serving)
            + sum(q.tokens for q in self.queue),
            ready_replicas=sum(1 for r in serving if r.state is ReplicaState.READY),
        )

    def _sample(self, now: float, tick: int) -> None:
        self.autoscaler.observe(self._load(now))
        if self._ticking(now):
            self._push((tick + 1) * self.autoscaler.sample_interval_s, _SAMPLE, tick + 1)

    def _record(self, now: float, tick: int) -> None:
        if now >= self.horizon_s:
            return
        nodes = sum(1 for n in self.fleet.nodes if n.ended_s is None)
        point = TimelinePoint(now, len(self.fleet.ready()), self.target, nodes, len(self.queue))
        self.timeline.append(point)
        self._push((tick + 1) * TIMELINE_S, _TIMELINE, tick + 1)

    def _outcome(self) -> LoopOutcome:
        device_hours, cost, spot_share = self.fleet.billed(self.horizon_s)
        replica_hours = 0.0
        for point in self.timeline:
            replica_hours += point.ready * TIMELINE_S / 3600
        return LoopOutcome(
            requests=self.requests,
            timeline=self.timeline,
            horizon_s=self.horizon_s,
            device_hours=device_hours,
            cost_usd=cost,
            spot_share=spot_share,
            replica_device_hours=replica_hours * self.fleet.model.devices,
            interrupted=self.interrupted,
            nodes_launched=len(self.fleet.nodes),
            unfinished=self.open,
        )


def horizon_of(trace: Sequence[TraceRequest], window_s: float = 60.0) -> float:
    """The trace's length rounded up to whole windows (what the references cover)."""
    last = max((r.at_s for r in trace), default=0.0)
    return (math.floor(last / window_s) + 1) * window_s
