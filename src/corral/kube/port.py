"""The KubeClient port: what Corral asks of a Kubernetes API server, as plain dictionaries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Manifest = dict[str, Any]
"""A Kubernetes object as JSON-shaped data (``apiVersion``, ``kind``, ``metadata``, ...)."""

Manifests = list[Manifest]
"""Several objects (named so that classes with a ``list`` method can still annotate lists)."""

FIELD_MANAGER = "corral"
"""The server-side apply field manager every Corral write uses."""

EventType = Literal["Normal", "Warning"]
WatchEventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """Identifies one object: group/version, kind, namespace (None when cluster-scoped), name."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectKey:
        """The key of a manifest; raises KeyError when apiVersion, kind or name is missing."""
        meta = obj.get("metadata") or {}
        return cls(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name} ({self.api_version})"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change seen by ``KubeClient.watch``."""

    type: WatchEventType
    object: Manifest


class KubeClient(Protocol):
    """The Kubernetes API as Corral uses it.

    Errors: adapters raise ``corral.errors.TemporaryError`` (with a ``delay``) for failures worth
    retrying (throttling, server errors, a PodDisruptionBudget refusing an eviction, conflicts)
    and ``corral.errors.PermanentError`` for ones that are not (forbidden, invalid object, unknown
    kind). Reads of a missing object return ``None``; deletes of a missing object do nothing.
    """

    async def apply(self, obj: Manifest) -> Manifest:
        """Server-side apply ``obj`` with field manager ``corral``; returns the object as stored."""
        ...

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        """The object, or None when it does not exist."""
        ...

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> Manifests:
        """Objects of a kind (in one namespace, or all when None) whose labels match exactly."""
        ...

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> None:
        """Delete the object (foreground propagation); nothing happens when it is already gone."""
        ...

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Changes to objects of a kind: ADDED for those that exist, then every change."""
        ...

    async def cordon(self, node: str, taint: Mapping[str, str] | None = None) -> None:
        """Mark the node unschedulable and, when given, add the taint (key, value, effect)."""
        ...

    async def uncordon(self, node: str, taint_key: str | None = None) -> None:
        """Make the node schedulable again and remove the taint with ``taint_key`` if given."""
        ...

    async def list_pods_on_node(self, node: str) -> Manifests:
        """Every pod bound to the node, in every namespace."""
        ...

    async def evict(self, pod_name: str, namespace: str) -> None:
        """Evict a pod through the Eviction API, so PodDisruptionBudgets are respected.

        Raises ``TemporaryError`` when a budget refuses (HTTP 429); a missing pod is not an error.
        """
        ...

    async def delete_node(self, node: str) -> None:
        """Delete the Node object (Karpenter then terminates the instance)."""
        ...

    async def set_node_condition(
        self, node: str, type: str, status: str, reason: str, message: str
    ) -> None:
        """Add or replace the node status condition of ``type``."""
        ...

    async def emit_event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        type: EventType = "Normal",
    ) -> None:
        """Record a core/v1 Event about ``involved`` (a manifest or an object reference)."""
        ...


def labels_match(obj: Mapping[str, Any], selector: Mapping[str, str] | None) -> bool:
    """True when every selector label is on the object with the same value."""
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def object_reference(involved: Mapping[str, Any]) -> dict[str, str]:
    """An ObjectReference for an Event, from a manifest or something already shaped like one."""
    meta = involved.get("metadata")
    if meta is None:
        return {k: str(v) for k, v in involved.items() if v is not None}
    ref = {
        "apiVersion": str(involved.get("apiVersion", "v1")),
        "kind": str(involved["kind"]),
        "name": str(meta["name"]),
    }
    for field in ("namespace", "uid"):
        if meta.get(field):
            ref[field] = str(meta[field])
    return ref
