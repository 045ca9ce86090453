"""What the feasibility check found: problems (each with a fix) and notes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason the deployment cannot run as rendered, and what to change."""

    rule: str
    """Which rule: ``ray-autoscaler``, ``pod-fit``, ``engine``, ``disk``."""
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.reason}; fix: {self.fix}"


@dataclass(frozen=True, slots=True)
class FeasibilityReport:
    """Every problem found; empty when the deployment can run."""

    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    """What was checked, for the CLI's summary line."""
    notes: list[str] = field(default_factory=list)
    """Things that run but not as well as the spec may expect (printed, not refused)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = "feasible" if self.ok else f"{len(self.problems)} feasibility problem(s)"
        return f"{head}: checked {', '.join(self.checked)}"
