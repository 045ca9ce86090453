"""`corral simulate`: the JSON fields scripts read, the table, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.cli.main import app

pytest.importorskip("ray.serve.autoscaling_policy")

runner = CliRunner()
SPEC = """\
name: small
model: {source: meta-llama/Llama-3.2-3B-Instruct}
accelerator: {type: l4}
replicas: {min: 1, max: 4}
capacity: {provisioner: karpenter, capacity_types: spot-first, node_class: {cluster_name: c}}
"""


def _files(tmp_path: Path) -> tuple[Path, Path]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    trace = tmp_path / "trace.csv"
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for second in range(0, 300, 3):
        rows.append(f"2023-11-16 18:{17 + second // 60:02d}:{second % 60:02d}.0000000,1500,20")
    trace.write_text("\n".join(rows) + "\n")
    return spec, trace


def test_json_has_the_fields_scripts_read(tmp_path: Path) -> None:
    spec, trace = _files(tmp_path)
    result = runner.invoke(app, ["simulate", str(spec), "--trace", str(trace), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in (
        "gpu_hours",
        "oracle_gpu_hours",
        "static_gpu_hours",
        "slo_minutes_share",
        "cost_usd",
        "static_on_demand_cost_usd",
    ):
        assert isinstance(data[key], float), key
    assert data["policy"] == "ray-default"
    assert data["instance"] == "g6.xlarge"
    assert data["run"]["completed"] == 100
    assert 0.0 <= data["slo_minutes_share"] <= 1.0
    assert "per_minute" not in data["run"]
    # Static peak on-demand: its replicas × 5 minutes × the g6.xlarge list price.
    hours = data["static_replicas"] * 5 / 60
    assert data["static_on_demand_cost_usd"] == pytest.approx(hours * 0.8048, rel=1e-3)
    assert data["static_gpu_hours"] == pytest.approx(hours, rel=1e-3)


def test_table_prints_the_three_rows_and_the_chart(tmp_path: Path) -> None:
    spec, trace = _files(tmp_path)
    result = runner.invoke(app, ["simulate", str(spec), "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    for word in ("ray-default", "oracle", "static", "requests/min", "SLO miss"):
        assert word in result.stdout


def test_unknown_policy_and_bad_format_are_refused_clearly(tmp_path: Path) -> None:
    spec, trace = _files(tmp_path)
    bad = runner.invoke(app, ["simulate", str(spec), "--trace", str(trace), "--policy", "magic"])
    assert bad.exit_code != 0
    assert "unknown autoscaling policy 'magic'" in str(bad.exception)
    fmt = runner.invoke(app, ["simulate", str(spec), "--trace", str(trace), "--format", "xml"])
    assert "--format must be table or json" in str(fmt.exception)


def test_per_minute_json_lists_every_minute_of_the_trace(tmp_path: Path) -> None:
    spec, trace = _files(tmp_path)
    args = ["simulate", str(spec), "--trace", str(trace), "--format", "json", "--per-minute"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    minutes = json.loads(result.stdout)["run"]["per_minute"]
    assert [m["minute"] for m in minutes] == [0, 1, 2, 3, 4]
    assert sum(m["arrivals"] for m in minutes) == 100
    assert all(m["ttft_p_s"] > 0 and m["tpot_p_s"] > 0 for m in minutes)
