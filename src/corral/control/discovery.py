"""The Kubernetes model source: the Services `corral deploy` applied, as in-cluster model URLs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from corral.control.render.common import (
    MANAGED_BY,
    MIN_REPLICAS_ANNOTATION,
    MODEL_ANNOTATION,
    PORT_ANNOTATION,
)
from corral.discovery import DiscoveredModel
from corral.errors import PermanentError
from corral.kube.port import KubeClient, Manifest

log = logging.getLogger("corral.control.discovery")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""The label EndpointSlices carry naming their Service."""


def discovered(service: Manifest, ready: Mapping[str, int] | None) -> DiscoveredModel | None:
    """The model a Corral Service routes to; None when it does not say which model it serves.

    ``ready`` counts ready endpoints by Service name (None: EndpointSlices cannot be read).
    """
    meta = service.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    model = annotations.get(MODEL_ANNOTATION)
    if not model:
        return None
    name, namespace = meta["name"], meta.get("namespace", "default")
    port = _port(annotations.get(PORT_ANNOTATION), service)
    if port is None:
        return None
    return DiscoveredModel(
        name=model,
        base_urls=(f"http://{name}.{namespace}.svc:{port}/v1",),
        source="kubernetes",
        min_replicas=_int(annotations.get(MIN_REPLICAS_ANNOTATION)),
        ready_replicas=None if ready is None else ready.get(name, 0),
    )


def ready_endpoints(slices: Sequence[Manifest]) -> dict[str, int]:
    """Ready endpoints per Service, from its EndpointSlices (unset ``ready`` counts as ready)."""
    counts: dict[str, int] = {}
    for endpoint_slice in slices:
        service = ((endpoint_slice.get("metadata") or {}).get("labels") or {}).get(
            SERVICE_NAME_LABEL
        )
        if not service:
            continue
        ready = sum(
            1
            for e in endpoint_slice.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready") is not False
        )
        counts[service] = counts.get(service, 0) + ready
    return counts


class KubeServiceSource:
    """ModelSource over the Kubernetes API: Services labelled as Corral's, with its annotations."""

    name = "kubernetes"

    def __init__(self, kube: KubeClient, namespaces: Sequence[str]) -> None:
        self._kube = kube
        self._namespaces = list(namespaces)
        self._slices_readable = True

    async def models(self) -> list[DiscoveredModel]:
        found: list[DiscoveredModel] = []
        for namespace in self._namespaces:
            services = await self._kube.list("v1", "Service", namespace, {MANAGED_BY: "corral"})
            ready = await self._ready(namespace) if services else {}
            found += [m for s in services if (m := discovered(s, ready)) is not None]
        return found

    async def _ready(self, namespace: str) -> dict[str, int] | None:
        if not self._slices_readable:
            return None
        try:
            slices = await self._kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace)
        except PermanentError as exc:
            # Without RBAC for EndpointSlices, models still route; cold starts then wait on
            # the endpoint answering instead of on a replica count.
            log.warning("cannot read EndpointSlices (%s); replica counts unknown", exc)
            self._slices_readable = False
            return None
        return ready_endpoints(slices)


def _port(annotated: str | None, service: Manifest) -> int | None:
    port = _int(annotated)
    if port is not None:
        return port
    ports: list[dict[str, Any]] = (service.get("spec") or {}).get("ports") or []
    return int(ports[0]["port"]) if ports and "port" in ports[0] else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
