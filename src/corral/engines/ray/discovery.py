"""The Ray Serve model source: Corral's Serve applications, reached through Serve's HTTP proxy."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import replace

from corral.discovery import DiscoveredModel
from corral.engines.ray.deployer import ApplicationState, RayServeTarget
from corral.errors import TemporaryError

log = logging.getLogger("corral.engines.ray.discovery")

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


ServedNames = Callable[[str], Awaitable[list[str]]]
"""Model ids an OpenAI base URL serves (its ``GET /models``)."""


async def served_names(base_url: str) -> list[str]:
    """``GET {base_url}/models``: the ids an OpenAI-compatible application serves."""

    def fetch() -> list[str]:
        url = f"{base_url}/models"  # the Serve proxy's http URL, from Corral's own settings
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http(s) only
            body = json.loads(response.read())
        return [str(m["id"]) for m in body.get("data", []) if isinstance(m, dict) and "id" in m]

    return await asyncio.to_thread(fetch)


class RayServeSource:
    """ModelSource over a Ray cluster's Serve status (the gateway process joins the cluster).

    Serve's status names applications, not the model an application serves: a Ray Serve LLM
    application serves the spec's ``served_name`` (by default the model id's last part) while
    clients call it by the application's name. So once an application has a running replica,
    its ``/v1/models`` is read (once) and requests are sent upstream under the id it serves.
    """

    name = "ray"

    def __init__(
        self, target: RayServeTarget, serve_url: str, names: ServedNames = served_names
    ) -> None:
        self._target = target
        self._serve_url = serve_url
        self._names = names
        self._served: dict[tuple[str, str], str] = {}  # (app, base URL) -> id it serves

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
        found = [m for m in (discovered(app, self._serve_url) for app in apps) if m is not None]
        return [await self._with_served_name(model) for model in found]

    async def _with_served_name(self, model: DiscoveredModel) -> DiscoveredModel:
        key = (model.name, model.base_urls[0])
        if key not in self._served and model.ready_replicas:  # never wake a model at zero
            try:
                ids = await self._names(model.base_urls[0])
            except (OSError, ValueError) as exc:
                log.warning("ray: could not read %s's served models (%s)", model.name, exc)
            else:
                if ids:
                    self._served[key] = ids[0]
        served = self._served.get(key)
        if served is None or served == model.name:
            return model
        return replace(model, upstream_model=served)
