"""`corral deploy --dry-run`, `plan`, `schema` and the deploy flow over FakeKube."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from rich.console import Console
from typer.testing import CliRunner

from corral.cli.deploy import app, run_deploy
from corral.clock import FakeClock
from corral.control.render.manifests import render
from corral.control.spec import load_spec
from corral.errors import ConfigError
from corral.kube.fake import FakeKube
from corral.kube.port import ObjectKey

FIXTURES = Path(__file__).parents[2] / "fixtures" / "control"
SPEC = FIXTURES / "specs" / "small-gpu.yaml"
runner = CliRunner()


def test_dry_run_prints_the_golden_manifests() -> None:
    result = runner.invoke(app, ["deploy", str(SPEC), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (FIXTURES / "golden" / "small-gpu.yaml").read_text()
    assert [d["kind"] for d in yaml.safe_load_all(result.stdout)][-1] == "PodMonitor"
    # What was validated goes to stderr, CEL rule coverage included.
    assert "valid; CEL: " in result.stderr
    assert "0 not evaluable" in " ".join(result.stderr.split())


def test_schema_prints_the_deployment_schema() -> None:
    result = runner.invoke(app, ["schema", "deployment"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "DeploymentSpec"


def test_plan_prints_options_managed_price_and_trace_replay() -> None:
    result = runner.invoke(
        app,
        [
            "plan",
            str(SPEC),
            "--api-price-in",
            "0.2",
            "--api-price-out",
            "0.6",
            "--trace",
            str(Path(__file__).parents[3] / "examples" / "traces" / "azure-code-slice.csv"),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "weights 16.1 GB + KV cache 17.2 GB (16 × 8192 tokens)" in result.output
    assert "g6e.xlarge" in result.output
    assert "managed API for the same token mix: $0.280 per 1M tokens" in result.output
    assert "trace replay on l4 × 2" in result.output
    assert "device-hours autoscaled" in result.output


class ReadyAfterTenSeconds(FakeKube):
    """A cluster whose RayService becomes Ready once ten (fake) seconds have passed."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.clock = clock

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, object] | None:
        key = ObjectKey(api_version, kind, name, namespace)
        if kind == "RayService" and self.clock.monotonic() >= 10 and key in self.objects:
            self.set_status(key, {"conditions": [{"type": "Ready", "status": "True"}]})
        return await super().get(api_version, kind, name, namespace)


async def test_run_deploy_applies_then_waits_for_ready() -> None:
    spec = load_spec(SPEC)
    clock = FakeClock()
    kube = ReadyAfterTenSeconds(clock)
    console = Console(record=True, width=200)
    state = await run_deploy(kube, spec, render(spec), console, clock)
    assert state is not None
    assert state.ready
    assert clock.monotonic() == 10
    text = console.export_text()
    assert "applied RayService/corral-models/llama-8b" in text
    assert "waiting llama-8b: serviceStatus=unknown" in text
    assert "ready llama-8b: model 'llama-3.1-8b' at http://llama-8b.corral-models.svc" in text


def test_dry_run_says_how_the_plan_sized_the_spec_and_that_it_is_feasible() -> None:
    result = runner.invoke(app, ["deploy", str(SPEC), "--dry-run"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    stderr = " ".join(result.stderr.split())
    assert "note sized to the plan: 2× l4 with tensor_parallel 2" in stderr
    assert "feasible: checked engine arguments, Ray autoscaler placement" in stderr


def test_plan_and_dry_run_refuse_a_replica_that_needs_two_nodes() -> None:
    refused = FIXTURES / "refused" / "llama-405b-fp8-h100-2-nodes.yaml"
    for command in (["deploy", str(refused), "--dry-run"], ["plan", str(refused)]):
        result = runner.invoke(app, command, env={"COLUMNS": "300"})
        assert result.exit_code != 0
        assert isinstance(result.exception, ConfigError)
        assert "needs 16 h100 GPUs on 2 nodes" in result.exception.message
        assert "or accelerator h200 with count 8" in result.exception.message
        assert "apiVersion" not in result.stdout  # nothing rendered for a cluster
