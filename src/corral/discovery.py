"""Models learned at runtime: what a model source reports, and the port every source implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DiscoveredModel:
    """One model a source says is deployed, and where its OpenAI-compatible API answers."""

    name: str
    """The public model name clients send (the deployment's served name)."""
    base_urls: tuple[str, ...]
    """OpenAI base URLs including the API prefix, e.g. ``http://llama.models.svc:8000/v1``."""
    source: str
    """Which source reported it (``ray``, ``kubernetes``, ...), for logs."""
    upstream_model: str | None = None
    """The name the engine expects, when it differs from ``name``."""
    min_replicas: int | None = None
    """The deployment's fewest replicas; 0 means it scales to zero. None: not reported."""
    ready_replicas: int | None = None
    """Replicas serving now; None: the source cannot tell."""
    active_probes: bool = True
    """False where the platform checks its replicas itself and a gateway probe would count as
    traffic that keeps the model from scaling down (Ray Serve)."""

    @property
    def scales_to_zero(self) -> bool:
        """Whether a request may find no replica and must be held while one starts."""
        return self.min_replicas == 0 or self.ready_replicas == 0


class ModelSource(Protocol):
    """Where the gateway learns deployed models without a restart (Ray Serve, Kubernetes, ...).

    ``models`` returns everything the source knows now, and raises (``corral.errors.CorralError``
    by preference) when the source cannot be read; the caller then keeps what it learned last.
    """

    name: str

    async def models(self) -> list[DiscoveredModel]: ...
