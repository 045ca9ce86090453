"""kmock's Kubernetes API emulator on loopback, and Corral's lightkube adapter aimed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import kmock
from lightkube import AsyncClient, KubeConfig

from corral.kube.lightkube_client import LightkubeClient

VERBS = {"get", "list", "watch", "create", "patch", "delete"}


@asynccontextmanager
async def emulated_api(
    resources: Mapping[str, tuple[str, bool]],
) -> AsyncIterator[kmock.KubernetesEmulator]:
    """An emulator serving ``resources`` (``group/version/plural`` → (kind, namespaced))."""
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator):
        for key, (kind, namespaced) in resources.items():
            emulator.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs=VERBS
            )
        yield emulator


@asynccontextmanager
async def lightkube_on(api: kmock.KubernetesEmulator) -> AsyncIterator[LightkubeClient]:
    """The real adapter, with the ``corral`` field manager, talking to ``api``."""
    config = KubeConfig.from_dict(
        {
            "clusters": [{"name": "kmock", "cluster": {"server": str(api.url)}}],
            "users": [{"name": "test", "user": {}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
            "current-context": "kmock",
        }
    )
    client = LightkubeClient(AsyncClient(config=config, field_manager="corral"))
    try:
        yield client
    finally:
        await client.close()
