"""FakeKube: an in-memory KubeClient that records every call, for tests and dry runs."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

from corral.clock import Clock, FakeClock
from corral.errors import CorralError, PermanentError, TemporaryError
from corral.kube.port import (
    EventType,
    Manifest,
    Manifests,
    ObjectKey,
    WatchEvent,
    WatchEventType,
    labels_match,
    object_reference,
)

Call = tuple[str, tuple[Any, ...]]


def merge_applied(current: Manifest, applied: Mapping[str, Any]) -> Manifest:
    """Overlay ``applied`` on ``current``: maps merge key by key, everything else is replaced."""
    merged = copy.deepcopy(current)
    for key, value in applied.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_applied(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class FakeKube:
    """A KubeClient kept in memory.

    ``calls`` holds every call in order as ``(verb, args)``: ``("apply", (ObjectKey,))``,
    ``("get"|"delete", (ObjectKey,))``, ``("list", (api_version, kind, namespace, selector))``,
    and for node operations the arguments as given, e.g. ``("cordon", (node, taint))`` or
    ``("evict", (pod_name, namespace))``. Knobs: ``refuse_evictions`` makes the next N evictions
    fail as a PodDisruptionBudget would (429 → TemporaryError); ``fail`` makes the next N calls
    of a verb raise a given error.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.calls: list[Call] = []
        self.objects: dict[ObjectKey, Manifest] = {}
        self.events: list[Manifest] = []
        self._clock = clock or FakeClock()
        self._version = 0
        self._evictions_refused = 0
        self._eviction_delay = 5.0
        self._failures: dict[str, list[CorralError]] = {}
        self._watchers: list[tuple[ObjectKey, Mapping[str, str] | None, asyncio.Queue[Any]]] = []

    # -- knobs and seeding -------------------------------------------------------------------

    def refuse_evictions(self, times: int, *, delay: float = 5.0) -> None:
        """The next ``times`` evictions answer 429 (TemporaryError with ``delay``)."""
        self._evictions_refused = times
        self._eviction_delay = delay

    def fail(self, verb: str, error: CorralError, *, times: int = 1) -> None:
        """The next ``times`` calls of ``verb`` raise ``error`` (after being recorded)."""
        self._failures.setdefault(verb, []).extend([error] * times)

    def verbs(self) -> list[str]:
        """The verbs of the recorded calls, in order."""
        return [verb for verb, _ in self.calls]

    def add_node(self, name: str, labels: Mapping[str, str] | None = None) -> Manifest:
        """Seed a Node (not recorded as a call)."""
        node: Manifest = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": dict(labels or {})},
            "spec": {},
        }
        return self._store(node)

    def add_pod(
        self, name: str, namespace: str, node: str, labels: Mapping[str, str] | None = None
    ) -> Manifest:
        """Seed a Pod bound to ``node`` (not recorded as a call)."""
        pod: Manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]},
        }
        return self._store(pod)

    def set_status(self, key: ObjectKey, status: Mapping[str, Any]) -> Manifest:
        """Replace an object's status, as a controller would (not recorded as a call)."""
        obj = self.objects[key]
        obj["status"] = copy.deepcopy(dict(status))
        return self._store(obj)

    # -- the KubeClient port -----------------------------------------------------------------

    async def apply(self, obj: Manifest) -> Manifest:
        key = ObjectKey.of(obj)
        self._record("apply", key)
        current = self.objects.get(key)
        merged = merge_applied(current, obj) if current else copy.deepcopy(obj)
        if current is not None and merged == current:
            return copy.deepcopy(current)
        return copy.deepcopy(self._store(merged))

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        key = ObjectKey(api_version, kind, name, namespace)
        self._record("get", key)
        found = self.objects.get(key)
        return copy.deepcopy(found) if found is not None else None

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> Manifests:
        selector = dict(label_selector) if label_selector else None
        self._record("list", api_version, kind, namespace, selector)
        return [copy.deepcopy(o) for o in self._select(api_version, kind, namespace, selector)]

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> None:
        key = ObjectKey(api_version, kind, name, namespace)
        self._record("delete", key)
        self._remove(key)

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> AsyncIterator[WatchEvent]:
        self._record("watch", api_version, kind, namespace, label_selector)
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        pattern = ObjectKey(api_version, kind, "", namespace)
        self._watchers.append((pattern, label_selector, queue))
        try:
            for obj in self._select(api_version, kind, namespace, label_selector):
                yield WatchEvent("ADDED", copy.deepcopy(obj))
            while True:
                yield await queue.get()
        finally:
            self._watchers = [w for w in self._watchers if w[2] is not queue]

    async def cordon(self, node: str, taint: Mapping[str, str] | None = None) -> None:
        self._record("cordon", node, dict(taint) if taint else None)
        obj = self._node(node)
        obj["spec"]["unschedulable"] = True
        if taint:
            taints = obj["spec"].setdefault("taints", [])
            same = [t for t in taints if (t["key"], t["effect"]) == (taint["key"], taint["effect"])]
            if not same:
                taints.append(dict(taint))
        self._store(obj)

    async def uncordon(self, node: str, taint_key: str | None = None) -> None:
        self._record("uncordon", node, taint_key)
        obj = self._node(node)
        obj["spec"].pop("unschedulable", None)
        if taint_key:
            kept = [t for t in obj["spec"].get("taints", []) if t["key"] != taint_key]
            obj["spec"]["taints"] = kept
        self._store(obj)

    async def list_pods_on_node(self, node: str) -> Manifests:
        self._record("list_pods_on_node", node)
        pods = self._select("v1", "Pod", None, None)
        return [copy.deepcopy(p) for p in pods if p["spec"].get("nodeName") == node]

    async def evict(self, pod_name: str, namespace: str) -> None:
        self._record("evict", pod_name, namespace)
        if self._evictions_refused > 0:
            self._evictions_refused -= 1
            raise TemporaryError(
                f"eviction of pod {namespace}/{pod_name} refused by a PodDisruptionBudget (429)",
                delay=self._eviction_delay,
            )
        self._remove(ObjectKey("v1", "Pod", pod_name, namespace))

    async def delete_node(self, node: str) -> None:
        self._record("delete_node", node)
        self._remove(ObjectKey("v1", "Node", node))

    async def set_node_condition(
        self, node: str, type: str, status: str, reason: str, message: str
    ) -> None:
        self._record("set_node_condition", node, type, status, reason, message)
        obj = self._node(node)
        conditions = obj.setdefault("status", {}).setdefault("conditions", [])
        stamp = self._timestamp()
        fresh = {
            "type": type,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        for i, cond in enumerate(conditions):
            if cond["type"] == type:
                if cond.get("status") == status:
                    fresh["lastTransitionTime"] = cond.get("lastTransitionTime", stamp)
                conditions[i] = fresh
                break
        else:
            conditions.append(fresh)
        self._store(obj)

    async def emit_event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        type: EventType = "Normal",
    ) -> None:
        ref = object_reference(involved)
        self._record("emit_event", ref, reason, message, type)
        event: Manifest = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{ref.get('name', 'object')}.{len(self.events) + 1}",
                "namespace": ref.get("namespace", "default"),
            },
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": "corral"},
            "firstTimestamp": self._timestamp(),
        }
        self.events.append(event)
        self._store(event)

    # -- internals ---------------------------------------------------------------------------

    def _record(self, verb: str, *args: Any) -> None:
        self.calls.append((verb, args))
        pending = self._failures.get(verb)
        if pending:
            raise pending.pop(0)

    def _node(self, name: str) -> Manifest:
        node = self.objects.get(ObjectKey("v1", "Node", name))
        if node is None:
            raise PermanentError(
                f"node {name!r} does not exist; check the name with `kubectl get nodes`"
            )
        node.setdefault("spec", {})
        return node

    def _select(
        self, api_version: str, kind: str, namespace: str | None, selector: Mapping[str, str] | None
    ) -> Manifests:
        return [
            obj
            for key, obj in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
            if (key.api_version, key.kind) == (api_version, kind)
            and (namespace is None or key.namespace == namespace)
            and labels_match(obj, selector)
        ]

    def _store(self, obj: Manifest) -> Manifest:
        key = ObjectKey.of(obj)
        self._version += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._version)
        meta.setdefault("uid", f"uid-{self._version}")
        created = key not in self.objects
        self.objects[key] = obj
        self._notify("ADDED" if created else "MODIFIED", key, obj)
        return obj

    def _remove(self, key: ObjectKey) -> None:
        gone = self.objects.pop(key, None)
        if gone is not None:
            self._notify("DELETED", key, gone)

    def _notify(self, kind: WatchEventType, key: ObjectKey, obj: Manifest) -> None:
        for pattern, selector, queue in self._watchers:
            same_kind = (pattern.api_version, pattern.kind) == (key.api_version, key.kind)
            in_ns = pattern.namespace is None or pattern.namespace == key.namespace
            if same_kind and in_ns and labels_match(obj, selector):
                queue.put_nowait(WatchEvent(kind, copy.deepcopy(obj)))

    def _timestamp(self) -> str:
        moment = dt.datetime.fromtimestamp(self._clock.now(), tz=dt.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
