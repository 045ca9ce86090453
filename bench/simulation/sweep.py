"""Sweep autoscaling settings on the traces; prints GPU-hours and SLO minutes per setting.

    PYTHONPATH=src python bench/simulation/sweep.py --spec bench/simulation/specs/llama-8b-l40s.yaml

One simulation per setting and trace (about 1-4 s of CPU for the code trace, 10 s for the
synthetic one); bounded to the grid given. The second table of RESULTS.md is, for example,
``--targets 16 --upscale 30 --downscale 600 --node-idle 120,600 --factors 1.0,0.5,0.3``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

from corral.control.planner.instances import load_price_table
from corral.control.planner.trace import TraceRequest, read_azure_trace
from corral.control.spec import DeploymentSpec, load_spec
from corral.simulation.references import references
from corral.simulation.report import Figures
from corral.simulation.scenario import Scenario, simulate_policy
from corral.simulation.synthetic import DiurnalBursty, diurnal_bursty

CODE_TRACE = Path("/work/shared/traces/AzureLLMInferenceTrace_code.csv")
SYNTHETIC_SEED = 23
SLO_BOUNDS_S = (2.0, 5.0)


def traces(code: Path) -> dict[str, list[TraceRequest]]:
    return {
        "code": read_azure_trace(code),
        f"diurnal-bursty(seed {SYNTHETIC_SEED})": diurnal_bursty(DiurnalBursty(), SYNTHETIC_SEED),
    }


def with_replicas(spec: DeploymentSpec, **fields: float) -> DeploymentSpec:
    replicas = spec.replicas.model_copy(update=fields)
    return spec.model_copy(update={"replicas": replicas})


def slo_share(result: Figures, bound_s: float) -> float:
    busy = [m for m in result.minutes if m.arrivals]
    return sum(m.ttft_p <= bound_s for m in busy) / len(busy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--trace", type=Path, default=CODE_TRACE)
    parser.add_argument("--targets", default="4,8,16")
    parser.add_argument("--upscale", default="0,30")
    parser.add_argument("--downscale", default="60,180,600")
    parser.add_argument("--node-idle", default="120,600")
    parser.add_argument("--factors", default="1.0", help="Ray Serve upscaling_factor values.")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    table = load_price_table()
    grid = itertools.product(
        [int(v) for v in args.targets.split(",")],
        [float(v) for v in args.upscale.split(",")],
        [float(v) for v in args.downscale.split(",")],
        [float(v) for v in args.node_idle.split(",")],
        [float(v) for v in args.factors.split(",")],
    )
    loaded = traces(args.trace)
    oracle = {name: references(spec, trace).oracle_gpu_hours for name, trace in loaded.items()}
    rows = []
    for target, up, down, idle, factor in grid:
        varied = with_replicas(
            spec,
            target_ongoing_requests=target,
            max_ongoing_requests=max(target, spec.replicas.max_ongoing_requests),
            upscale_delay_s=up,
            downscale_delay_s=down,
            upscaling_factor=factor,
        )
        for name, trace in loaded.items():
            started = time.process_time()
            result = simulate_policy(varied, trace, table, Scenario(node_idle_s=idle))
            row = {
                "trace": name,
                "target": target,
                "upscale_s": up,
                "downscale_s": down,
                "node_idle_s": idle,
                "upscaling_factor": factor,
                "gpu_hours": round(result.gpu_hours, 3),
                "x_oracle": round(result.gpu_hours / oracle[name], 2),
                "cost_usd": round(result.cost_usd, 2),
                **{f"slo_{b:g}s": round(slo_share(result, b), 3) for b in SLO_BOUNDS_S},
                "ttft_p50_s": round(result.ttft_p50_s, 2),
                "cpu_s": round(time.process_time() - started, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    json.dump(rows, sys.stderr)


if __name__ == "__main__":
    main()
