"""The ports GPU health talks through: probes in, gateway ejection, node reset and audit out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from corral.health.observations import Observation, merge


class GpuProbe(Protocol):
    """Reads the accelerators on this machine. Blocking; the agent calls it off the event loop.

    A probe that cannot read something it normally could says so in ``Observation.problems``;
    it raises ``PermanentError`` only when it can never work here (no driver, no library).
    """

    def observe(self) -> Observation: ...


class EndpointEjector(Protocol):
    """The gateway's side of remediation: stop sending requests to a node's endpoints at once.

    Implemented by the gateway's routing (replicas on the node are skipped for new requests;
    requests in flight finish). Both calls are idempotent.
    """

    async def eject_node(self, node: str, reason: str) -> None:
        """From now on, route no new request to any endpoint on ``node``."""
        ...

    async def restore_node(self, node: str) -> None:
        """Route to ``node``'s endpoints again (after a repair was verified)."""
        ...


class NodeResetter(Protocol):
    """Resets GPUs or reboots the node this agent runs on (after it was drained)."""

    async def reset(self, node: str, devices: tuple[int, ...]) -> None:
        """Reset ``devices`` (all when empty) or reboot; a CorralError when that failed."""
        ...


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One remediation step as the audit log records it (no secrets, no prompt text)."""

    at: float
    actor: str
    action: str
    target: str
    detail: str
    outcome: str
    dry_run: bool = False


class AuditSink(Protocol):
    """Where remediation steps are recorded; the store implements it with its audit log."""

    async def record(self, entry: AuditEntry) -> None: ...


class CombinedProbe:
    """Several probes read as one (NVML + kernel log + DCGM, or neuron-monitor alone)."""

    def __init__(self, probes: Sequence[GpuProbe]) -> None:
        self._probes = tuple(probes)

    def observe(self) -> Observation:
        return merge(p.observe() for p in self._probes)
