"""The Ray Serve model source: Corral's Serve applications, reached through Serve's HTTP proxy."""

from __future__ import annotations

import asyncio

from corral.discovery import DiscoveredModel
from corral.engines.ray.deployer import ApplicationState, RayServeTarget
from corral.errors import TemporaryError

CORRAL_DEPLOYMENTS = frozenset({"corral-replica", "OpenAiIngress"})
"""Deployments that mark an application as one Corral deployed (CPU replicas, Ray Serve LLM)."""
ROUTED_STATUSES = frozenset({"RUNNING", "DEPLOYING", "UNHEALTHY"})
"""Application states in which the proxy routes (or will route) requests to it."""


def discovered(app: ApplicationState, serve_url: str) -> DiscoveredModel | None:
    """The model one Serve application serves, or None when it is not Corral's or not routed.

    Corral mounts each application at ``/{name}`` (``RayApplication.route_prefix``) and names it
    after the deployment spec, so the public model name is the application's name. A model is
    ready when every deployment of it (ingress and servers) has a running replica.
    """
    if app.status not in ROUTED_STATUSES:
        return None
    if not CORRAL_DEPLOYMENTS.intersection(d.name for d in app.deployments):
        return None
    prefix = app.route_prefix or f"/{app.name}"
    return DiscoveredModel(
        name=app.name,
        base_urls=(f"{serve_url.rstrip('/')}{prefix.rstrip('/')}/v1",),
        source="ray",
        ready_replicas=min((d.running for d in app.deployments), default=0),
        # Ray's controller checks its replicas; a gateway probe would be traffic that keeps
        # a model with min_replicas 0 from ever reaching zero.
        active_probes=False,
    )


class RayServeSource:
    """ModelSource over a Ray cluster's Serve status (the gateway process joins the cluster)."""

    name = "ray"

    def __init__(self, target: RayServeTarget, serve_url: str) -> None:
        self._target = target
        self._serve_url = serve_url

    @classmethod
    def attached(cls, address: str, serve_url: str) -> RayServeSource:
        """Join the cluster at ``address``; ConfigError saying how to install ray without it."""
        target = RayServeTarget()
        target.attach(address)
        return cls(target, serve_url)

    async def models(self) -> list[DiscoveredModel]:
        try:
            apps = await asyncio.to_thread(self._target.applications)
        except Exception as exc:  # Ray raises its own tree (RaySystemError, RayServeException, ...)
            raise TemporaryError(f"reading Ray Serve's status failed: {exc}", delay=5) from exc
        found = (discovered(app, self._serve_url) for app in apps)
        return [model for model in found if model is not None]
