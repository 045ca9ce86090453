"""From a checked spec to manifests a cluster can run: size to the plan, render, check."""

from __future__ import annotations

from dataclasses import dataclass

from corral.control.feasibility.check import ensure_feasible
from corral.control.feasibility.report import FeasibilityReport
from corral.control.planner.cold_start import cold_start_note
from corral.control.planner.instances import PriceTable
from corral.control.planner.sizing import size_to_plan
from corral.control.render.manifests import render
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifests


@dataclass(frozen=True, slots=True)
class Prepared:
    """What ``corral deploy`` applies, and what it tells the user about it."""

    spec: DeploymentSpec
    """The spec as rendered: sized to the plan where it left parallelism unset."""
    manifests: Manifests
    feasibility: FeasibilityReport
    notes: list[str]


def prepare(spec: DeploymentSpec, table: PriceTable) -> Prepared:
    """Size, render and check; ConfigError (with each fix) when the result cannot run."""
    sizing = size_to_plan(spec, table)
    objs = render(sizing.spec, table)
    report = ensure_feasible(sizing.spec, objs, table)
    cold_start = cold_start_note(sizing.spec, table)
    notes = [n for n in (sizing.note, *report.notes, cold_start) if n]
    return Prepared(sizing.spec, objs, report, notes)
