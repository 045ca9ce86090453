"""Passive outlier ejection: endpoints that keep failing leave rotation for a growing back-off."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    """When an endpoint is ejected and for how long."""

    consecutive_failures: int = 5
    """Connect errors or 5xx in a row that eject an endpoint."""
    base_ejection_s: float = 30.0
    """First ejection's length; each further one doubles it."""
    max_ejection_s: float = 300.0
    """Longest ejection. An endpoint in rotation this long after its last ejection starts over."""
    max_ejected_share: float = 0.5
    """Most of a model's endpoints ejected at once; one may always go, one always stays."""

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("consecutive_failures must be at least 1")
        if not 0 < self.base_ejection_s <= self.max_ejection_s:
            raise ValueError("base_ejection_s must be positive and at most max_ejection_s")
        if not 0.0 <= self.max_ejected_share <= 1.0:
            raise ValueError("max_ejected_share must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class Ejection:
    """An endpoint just taken out of rotation until ``until``."""

    index: int
    until: float
    back_off_s: float
    ejections: int
    """How many times in a row (without a clean spell) this endpoint has been ejected."""


@dataclass(slots=True)
class EndpointHealth:
    """The detector's state for one endpoint."""

    consecutive_failures: int = 0
    ejected_until: float | None = None
    ejections: int = 0
    on_probation: bool = False
    """Ejected and not yet proven since: a failure before the next success ejects again."""
    ejected_total: int = 0
    """Every ejection since start (``ejections`` resets after a clean spell; this never does)."""


@dataclass(slots=True)
class OutlierDetector:
    """Counts failures per endpoint (by index) and ejects the ones that keep failing.

    Time is passed in (``clock.monotonic()``), so the detector never reads a clock itself.
    """

    endpoints: int
    config: OutlierConfig = field(default_factory=OutlierConfig)
    _health: list[EndpointHealth] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._health = [EndpointHealth() for _ in range(self.endpoints)]

    def health(self, index: int) -> EndpointHealth:
        """The state of endpoint ``index`` (for metrics; do not mutate)."""
        return self._health[index]

    def resize(self, endpoints: int) -> None:
        """Track ``endpoints`` endpoints; new ones start healthy, removed ones are forgotten."""
        self._health = self._health[:endpoints] + [
            EndpointHealth() for _ in range(endpoints - len(self._health))
        ]
        self.endpoints = endpoints

    def is_ejected(self, index: int, now: float) -> bool:
        """True while endpoint ``index`` is out of rotation."""
        until = self._health[index].ejected_until
        return until is not None and now < until

    def ejections(self, index: int) -> int:
        """How many times endpoint ``index`` has been taken out of rotation since start."""
        return self._health[index].ejected_total

    def ejected(self, now: float) -> frozenset[int]:
        """Every endpoint out of rotation at ``now``."""
        return frozenset(i for i in range(self.endpoints) if self.is_ejected(i, now))

    def record_success(self, index: int) -> None:
        """An answer that was not a connect error or a 5xx."""
        health = self._health[index]
        health.consecutive_failures = 0
        health.on_probation = False

    def record_failure(self, index: int, now: float) -> Ejection | None:
        """A connect error or 5xx; the Ejection when this one takes the endpoint out."""
        health = self._health[index]
        if self.is_ejected(index, now):
            return None  # a request already in flight when it was ejected
        self._readmit_if_due(health, now)
        health.consecutive_failures += 1
        due = health.on_probation or health.consecutive_failures >= self.config.consecutive_failures
        if not due or not self._room_to_eject(now):
            return None
        return self._eject(index, health, now)

    def record_probe(self, index: int, ok: bool, now: float) -> Ejection | None:
        """An active health probe's result: success re-admits at once, failure counts as one."""
        if not ok:
            return self.record_failure(index, now)
        health = self._health[index]
        if self.is_ejected(index, now):
            health.ejected_until = now
        health.consecutive_failures = 0
        health.on_probation = False
        return None

    def max_ejected(self) -> int:
        """How many endpoints may be out of rotation at once."""
        if self.endpoints <= 1:
            return 0
        share = int(self.config.max_ejected_share * self.endpoints)
        return min(self.endpoints - 1, max(1, share))

    def _room_to_eject(self, now: float) -> bool:
        return len(self.ejected(now)) < self.max_ejected()

    def _readmit_if_due(self, health: EndpointHealth, now: float) -> None:
        until = health.ejected_until
        if until is None:
            return
        health.ejected_until = None
        if now - until >= self.config.max_ejection_s:
            health.ejections = 0  # a long clean spell forgives earlier ejections

    def _eject(self, index: int, health: EndpointHealth, now: float) -> Ejection:
        health.ejections += 1
        health.ejected_total += 1
        back_off = min(
            self.config.max_ejection_s,
            self.config.base_ejection_s * 2.0 ** (health.ejections - 1),
        )
        health.ejected_until = now + back_off
        health.consecutive_failures = 0
        health.on_probation = True
        return Ejection(index, now + back_off, back_off, health.ejections)
