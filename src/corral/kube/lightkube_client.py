"""The KubeClient adapter over lightkube's async client (server-side apply, generic CRDs)."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import httpx2 as httpx  # lightkube >= 1.0 speaks HTTP through httpx2
from lightkube import ApiError, AsyncClient, KubeConfig, codecs
from lightkube.config.kubeconfig import DEFAULT_KUBECONFIG
from lightkube.core.exceptions import ConfigError as LightkubeConfigError
from lightkube.core.exceptions import LoadResourceError
from lightkube.core.resource import GlobalResource
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event, Node, Pod
from lightkube.types import CascadeType, PatchType

from corral.errors import ConfigError, PermanentError, TemporaryError
from corral.kube.port import (
    FIELD_MANAGER,
    EventType,
    Manifest,
    Manifests,
    WatchEvent,
    WatchEventType,
    labels_match,
    object_reference,
)

CUSTOM_KINDS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("ray.io", "v1", "RayService", "rayservices", True),
    ("ray.io", "v1", "RayCluster", "rayclusters", True),
    ("karpenter.sh", "v1", "NodePool", "nodepools", False),
    ("karpenter.sh", "v1", "NodeClaim", "nodeclaims", False),
    ("karpenter.k8s.aws", "v1", "EC2NodeClass", "ec2nodeclasses", False),
    ("eks.amazonaws.com", "v1", "NodeClass", "nodeclasses", False),
    ("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet", "leaderworkersets", True),
    ("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors", True),
    ("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors", True),
)
"""The custom resources Corral reads and writes: (group, version, kind, plural, namespaced)."""

_event_ids = itertools.count(1)


def register_custom_kinds() -> None:
    """Make lightkube know Corral's CRD kinds (idempotent)."""
    for group, version, kind, plural, namespaced in CUSTOM_KINDS:
        if resource_registry.get(f"{group}/{version}", kind) is None:
            make = create_namespaced_resource if namespaced else create_global_resource
            make(group, version, kind, plural)


def status_code(exc: Exception) -> int | None:
    """The HTTP status of a failed API call (lightkube's ApiError or a plain httpx status error)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    return None


def _status_message(exc: httpx.HTTPStatusError) -> str:
    if isinstance(exc, ApiError) and exc.status.message:
        return str(exc.status.message)
    try:
        body = exc.response.json()
    except ValueError:
        return exc.response.reason_phrase
    return str(body.get("message", exc.response.reason_phrase)) if isinstance(body, dict) else ""


def translate(exc: Exception, what: str) -> Exception:
    """A Corral error for a lightkube or httpx failure (the caller raises it ``from exc``)."""
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        message = f"{what}: {_status_message(exc)} (HTTP {code})"
        if code == 429:
            retry = exc.response.headers.get("Retry-After", "")
            return TemporaryError(message, delay=float(retry) if retry.isdigit() else 5.0)
        if code == 409 or code >= 500:
            return TemporaryError(message, delay=2.0)
        return PermanentError(message)
    if isinstance(exc, httpx.HTTPError):
        return TemporaryError(f"{what}: cannot reach the Kubernetes API ({exc})", delay=5.0)
    if isinstance(exc, LoadResourceError):
        return PermanentError(f"{what}: unknown kind ({exc})")
    return PermanentError(f"{what}: {exc}")


class LightkubeClient:
    """KubeClient over a lightkube ``AsyncClient``."""

    def __init__(self, client: AsyncClient) -> None:
        register_custom_kinds()
        self._client = client

    @classmethod
    def from_kubeconfig(cls, context: str | None = None) -> LightkubeClient:
        """A client for a kubeconfig context (the current one when None)."""
        # $KUBECONFIG may list several files; kubectl merges them, Corral reads only the first.
        path = (os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG).split(os.pathsep)[0]
        try:
            config = KubeConfig.from_file(path)
        except (LightkubeConfigError, OSError) as exc:
            raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc
        try:
            return cls(
                AsyncClient(config=config.get(context_name=context), field_manager=FIELD_MANAGER)
            )
        except LightkubeConfigError as exc:
            raise ConfigError(
                f"kubeconfig context {context!r}: {exc}; see `kubectl config get-contexts`"
            ) from exc

    @classmethod
    def in_cluster(cls) -> LightkubeClient:
        """A client from the pod's service account, else $KUBECONFIG or ~/.kube/config."""
        try:
            config = KubeConfig.from_env()
        except LightkubeConfigError as exc:
            raise ConfigError(
                f"no service account token and no kubeconfig found ({exc}); run in a pod with a "
                "ServiceAccount or set KUBECONFIG"
            ) from exc
        return cls(AsyncClient(config=config, field_manager=FIELD_MANAGER))

    async def close(self) -> None:
        await self._client.close()

    @staticmethod
    def _kind(api_version: str, kind: str) -> Any:
        try:
            return resource_registry.load(api_version, kind)
        except LoadResourceError as exc:
            raise PermanentError(f"{kind} ({api_version}) is not a kind Corral knows") from exc

    async def apply(self, obj: Manifest) -> Manifest:
        what = f"apply {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            resource = codecs.from_dict(obj)
            try:
                result = await self._client.apply(resource, field_manager=FIELD_MANAGER)
            except httpx.HTTPStatusError as exc:
                # Real servers create on apply; API emulators without apply answer 404.
                if status_code(exc) != 404:
                    raise
                result = await self._client.create(resource, field_manager=FIELD_MANAGER)
        except (httpx.HTTPError, LoadResourceError) as exc:
            raise translate(exc, what) from exc
        return _as_dict(result)

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        res = self._kind(api_version, kind)
        try:
            return _as_dict(await self._client.get(res, name, namespace=namespace))
        except httpx.HTTPError as exc:
            if status_code(exc) == 404:
                return None
            raise translate(exc, f"get {kind}/{name}") from exc

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> Manifests:
        res = self._kind(api_version, kind)
        ns: str | None = namespace if namespace is not None else "*"
        if issubclass(res, GlobalResource):
            ns = None
        try:
            found = [
                _as_dict(o)
                async for o in self._client.list(res, namespace=ns, labels=_labels(label_selector))
            ]
        except httpx.HTTPError as exc:
            raise translate(exc, f"list {kind}") from exc
        # Filter again: some API emulators ignore label selectors.
        return [o for o in found if labels_match(o, label_selector)]

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> None:
        res = self._kind(api_version, kind)
        try:
            await self._client.delete(
                res, name, namespace=namespace, cascade=CascadeType.FOREGROUND
            )
        except httpx.HTTPError as exc:
            if status_code(exc) != 404:
                raise translate(exc, f"delete {kind}/{name}") from exc

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> AsyncIterator[WatchEvent]:
        res = self._kind(api_version, kind)
        try:
            async for change, obj in self._client.watch(
                res,
                namespace=namespace if namespace is not None else "*",
                labels=_labels(label_selector),
            ):
                data = _as_dict(obj)
                if labels_match(data, label_selector):
                    yield WatchEvent(cast(WatchEventType, change), data)
        except httpx.HTTPError as exc:
            raise translate(exc, f"watch {kind}") from exc

    async def cordon(self, node: str, taint: Mapping[str, str] | None = None) -> None:
        current = await self._node(node)
        spec: dict[str, Any] = {"unschedulable": True}
        if taint:
            taints = list(current.get("spec", {}).get("taints") or [])
            if not any((t["key"], t["effect"]) == (taint["key"], taint["effect"]) for t in taints):
                spec["taints"] = [*taints, dict(taint)]
        await self._patch_node(node, {"spec": spec}, "cordon")

    async def uncordon(self, node: str, taint_key: str | None = None) -> None:
        current = await self._node(node)
        spec: dict[str, Any] = {"unschedulable": None}
        if taint_key:
            taints = current.get("spec", {}).get("taints") or []
            spec["taints"] = [t for t in taints if t["key"] != taint_key]
        await self._patch_node(node, {"spec": spec}, "uncordon")

    async def list_pods_on_node(self, node: str) -> Manifests:
        try:
            pods = self._client.list(Pod, namespace="*", fields={"spec.nodeName": node})
            found = [_as_dict(p) async for p in pods]
        except httpx.HTTPError as exc:
            raise translate(exc, f"list pods on {node}") from exc
        return [p for p in found if p.get("spec", {}).get("nodeName") == node]

    async def evict(self, pod_name: str, namespace: str) -> None:
        eviction = Pod.Eviction(metadata=ObjectMeta(name=pod_name, namespace=namespace))
        try:
            await self._client.create(eviction, name=pod_name, namespace=namespace)
        except httpx.HTTPError as exc:
            if status_code(exc) == 404:
                return
            if status_code(exc) == 429:
                raise TemporaryError(
                    f"eviction of pod {namespace}/{pod_name} refused by a "
                    "PodDisruptionBudget (429)",
                    delay=5.0,
                ) from exc
            raise translate(exc, f"evict {namespace}/{pod_name}") from exc

    async def delete_node(self, node: str) -> None:
        await self.delete("v1", "Node", node)

    async def set_node_condition(
        self, node: str, type: str, status: str, reason: str, message: str
    ) -> None:
        stamp = _now()
        condition = {
            "type": type,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        try:
            await self._client.patch(
                Node.Status,
                node,
                {"status": {"conditions": [condition]}},
                patch_type=PatchType.STRATEGIC,
            )
        except httpx.HTTPError as exc:
            raise translate(exc, f"set condition {type} on node {node}") from exc

    async def emit_event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        type: EventType = "Normal",
    ) -> None:
        ref = object_reference(involved)
        namespace = ref.get("namespace", "default")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{ref.get('name', 'object')}.corral{next(_event_ids)}",
                "namespace": namespace,
            },
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": "corral"},
            "firstTimestamp": _now(),
            "lastTimestamp": _now(),
            "count": 1,
        }
        try:
            await self._client.create(cast(Event, Event.from_dict(event)))
        except httpx.HTTPError as exc:
            raise translate(exc, f"emit event {reason}") from exc

    async def _node(self, node: str) -> Manifest:
        found = await self.get("v1", "Node", node)
        if found is None:
            raise PermanentError(
                f"node {node!r} does not exist; check the name with `kubectl get nodes`"
            )
        return found

    async def _patch_node(self, node: str, patch: dict[str, Any], what: str) -> None:
        try:
            await self._client.patch(Node, node, patch, patch_type=PatchType.MERGE)
        except httpx.HTTPError as exc:
            raise translate(exc, f"{what} node {node}") from exc


def _as_dict(obj: Any) -> Manifest:
    data: Manifest = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return data


def _labels(selector: Mapping[str, str] | None) -> dict[str, Any] | None:
    return dict(selector) if selector else None


def _now() -> str:
    return dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
