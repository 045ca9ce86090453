"""`corral deploy|undeploy|status|plan|schema`: model deployments on Kubernetes."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from corral.cli import ray as ray_cli
from corral.clock import Clock, SystemClock
from corral.control.planner.instances import load_price_table
from corral.control.planner.plan import Plan, Workload, plan
from corral.control.preparation import prepare
from corral.control.ray_target import ray_application
from corral.control.render.manifests import dump_manifests, external_references
from corral.control.rollout import Readiness, apply_all, cluster_status, undeploy, wait_ready
from corral.control.spec import DeploymentSpec, deployment_schema, load_spec
from corral.errors import ConfigError
from corral.kube.connect import lightkube_client
from corral.kube.port import KubeClient, ObjectKey

if TYPE_CHECKING:
    from corral.kube.lightkube_client import LightkubeClient

app = typer.Typer(help="Model deployments on Kubernetes (KubeRay, vLLM, Karpenter).")

SpecArg = Annotated[
    Path, typer.Argument(help="Deployment spec (YAML).", exists=True, dir_okay=False)
]
ContextOption = Annotated[
    str | None, typer.Option("--context", help="kubeconfig context (default: the current one).")
]


class Target(StrEnum):
    """Where a model deployment runs."""

    KUBERNETES = "kubernetes"
    RAY = "ray"


TargetOption = Annotated[
    Target, typer.Option("--target", help="kubernetes (KubeRay/vLLM manifests) or ray (Ray Serve).")
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="With --target ray: the Ray cluster (auto, ray://host:10001); "
        "default for deploy: start a local Ray head.",
    ),
]
PricesOption = Annotated[
    Path | None, typer.Option("--prices", help="Instance price table (default: the packaged one).")
]


def _client(context: str | None) -> LightkubeClient:
    return lightkube_client(context, purpose="talking to Kubernetes")


def _rendered(spec: DeploymentSpec, prices: Path | None) -> list[dict[str, object]]:
    from corral.control.validation.manifests import ensure_valid

    prepared = prepare(spec, load_price_table(prices))
    objs = prepared.manifests
    report = ensure_valid(objs, external=external_references(prepared.spec))
    # What was checked, CEL rules included, on stderr: stdout stays pure YAML for --dry-run.
    console = Console(stderr=True)
    for note in prepared.notes:
        console.print(f"[yellow]note[/] {escape(note)}")
    console.print(f"[dim]{escape(report.summary())}; {escape(prepared.feasibility.summary())}[/]")
    return objs


def workload_key(spec: DeploymentSpec) -> ObjectKey:
    """The object whose readiness says the deployment serves."""
    if spec.engine.runtime == "deployment" and spec.accelerator.nodes > 1:
        return ObjectKey(
            "leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", spec.name, spec.namespace
        )
    if spec.engine.runtime == "deployment":
        return ObjectKey("apps/v1", "Deployment", spec.name, spec.namespace)
    return ObjectKey("ray.io/v1", "RayService", spec.name, spec.namespace)


async def run_deploy(
    kube: KubeClient,
    spec: DeploymentSpec,
    objs: list[dict[str, object]],
    console: Console,
    clock: Clock,
    *,
    wait: bool = True,
    timeout_s: float = 1800.0,
) -> Readiness | None:
    """Apply in order, print what changed, then follow the workload until it serves."""
    for applied in await apply_all(kube, objs):
        mark = "[green]applied[/]" if applied.changed else "[dim]unchanged[/]"
        console.print(f"{mark} {escape(str(applied.key))}")
    if not wait:
        return None

    def progress(state: Readiness) -> None:
        console.print(f"[cyan]waiting[/] {spec.name}: {escape(state.detail)}")

    state = await wait_ready(
        kube, workload_key(spec), clock, timeout_s=timeout_s, progress=progress
    )
    service = f"http://{spec.name}.{spec.namespace}.svc.cluster.local:8000/v1"
    console.print(f"[green]ready[/] {spec.name}: model {spec.served_name!r} at {service}")
    return state


@app.command()
def deploy(
    spec_path: SpecArg,
    *,
    context: ContextOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the manifests; apply nothing.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Wait until the model serves.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 1800.0,
    prices: PricesOption = None,
    target: TargetOption = Target.KUBERNETES,
    address: RayAddressOption = None,
) -> None:
    """Render, validate and apply a model deployment, then show progress until it serves."""
    if target is Target.RAY:
        _deploy_on_ray(spec_path, address, dry_run=dry_run, timeout=timeout)
        return
    _no_address(address)
    spec = load_spec(spec_path)
    objs = _rendered(spec, prices)
    if dry_run:
        typer.echo(dump_manifests(objs), nl=False)
        return
    console = Console(stderr=True)

    async def go() -> None:
        kube = _client(context)
        try:
            await run_deploy(kube, spec, objs, console, SystemClock(), wait=wait, timeout_s=timeout)
        finally:
            await kube.close()

    asyncio.run(go())


def _deploy_on_ray(spec_path: Path, address: str | None, *, dry_run: bool, timeout: float) -> None:
    if dry_run:
        application = ray_application(load_spec(spec_path), data_dir=Path(".corral"))
        typer.echo(yaml.safe_dump({"applications": [application.to_serve_config()]}), nl=False)
        return
    ray_cli.deploy_on_ray(spec_path, address, timeout=timeout)


def _no_address(address: str | None) -> None:
    if address is not None:
        raise ConfigError("--address names a Ray cluster; add --target ray, or drop --address")


@app.command("undeploy")
def undeploy_command(
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    namespace: Annotated[str, typer.Option(help="Its namespace.")] = "corral-models",
    context: ContextOption = None,
    target: TargetOption = Target.KUBERNETES,
    address: RayAddressOption = None,
) -> None:
    """Delete what Corral rendered for a deployment (by its owner labels), nothing else."""
    if target is Target.RAY:
        ray_cli.undeploy_from_ray(name, address or "auto")
        return
    _no_address(address)
    console = Console(stderr=True)

    async def go() -> None:
        kube = _client(context)
        try:
            deleted = await undeploy(kube, name, namespace)
        finally:
            await kube.close()
        for key in deleted:
            console.print(f"[red]deleted[/] {escape(str(key))}")
        if not deleted:
            console.print(f"nothing of {name!r} found in namespace {namespace!r}")

    asyncio.run(go())


@app.command()
def status(
    namespace: Annotated[str | None, typer.Option(help="Only this namespace.")] = None,
    context: ContextOption = None,
    target: TargetOption = Target.KUBERNETES,
    address: RayAddressOption = None,
) -> None:
    """Corral's deployments with their conditions, and the accelerator nodes."""
    if target is Target.RAY:
        ray_cli.print_ray_status(address or "auto")
        return
    _no_address(address)

    async def go() -> None:
        kube = _client(context)
        try:
            deployments, nodes = await cluster_status(kube, namespace)
        finally:
            await kube.close()
        table = Table("deployment", "kind", "ready", "detail")
        for d in deployments:
            ready = "[green]yes[/]" if d.readiness.ready else "[red]no[/]"
            table.add_row(f"{d.namespace}/{d.name}", d.kind, ready, escape(d.readiness.detail))
        nodes_table = Table("node", "accelerator", "ready", "schedulable", "devices", "problem")
        for n in nodes:
            dev = n.devices
            count = f"{dev.allocatable}/{dev.expected} {dev.resource}" if dev else "?"
            problem = f"[red]{escape(dev.problem)}[/]" if dev and dev.problem else ""
            nodes_table.add_row(
                n.name, n.accelerator, str(n.ready), str(n.schedulable), count, problem
            )
        console = Console()
        console.print(table)
        console.print(nodes_table)

    asyncio.run(go())


@app.command("plan")
def plan_command(
    spec_path: SpecArg,
    *,
    prompt_tokens: Annotated[float, typer.Option(help="Mean prompt tokens per request.")] = 1024,
    output_tokens: Annotated[float, typer.Option(help="Mean output tokens per request.")] = 256,
    utilisation: Annotated[
        float, typer.Option(help="Share of replica capacity to plan for.")
    ] = 0.7,
    api_price_in: Annotated[
        float | None, typer.Option(help="Managed API $ per 1M input tokens.")
    ] = None,
    api_price_out: Annotated[
        float | None, typer.Option(help="Managed API $ per 1M output tokens.")
    ] = None,
    trace: Annotated[Path | None, typer.Option(help="Azure LLM trace CSV to replay.")] = None,
    prices: PricesOption = None,
) -> None:
    """Which instances fit the spec's model, their throughput and $ per 1M tokens."""
    spec = load_spec(spec_path)
    workload = Workload(prompt_tokens, output_tokens, utilisation, api_price_in, api_price_out)
    table = load_price_table(prices)
    result = plan(spec, workload, table)
    console = Console()
    print_plan(console, spec, result)
    if trace is not None:
        print_replay(console, spec, result, trace)
    # The same check deploy runs: the spec as written either deploys or is refused with fixes.
    prepared = prepare(spec, table)
    for note in prepared.notes:
        console.print(f"[yellow]note[/] {escape(note)}")
    console.print(escape(prepared.feasibility.summary()))


def print_plan(console: Console, spec: DeploymentSpec, result: Plan) -> None:
    """The memory need and the priced options as a table."""
    need = result.need
    console.print(
        f"{spec.model.source}: weights {need.weights_gb:.1f} GB + "
        f"KV cache {need.kv_cache_gb:.1f} GB "
        f"({spec.engine.max_num_seqs} × {spec.engine.max_model_len} tokens) + overhead "
        f"{need.overhead_gb:.1f} GB = {need.total_gb:.1f} GB"
    )
    table = Table(
        "accelerator",
        "devices",
        "TP",
        "instance",
        "replicas/inst",
        "req/s",
        "$/h od",
        "$/1M od",
        "$/1M spot",
        title=f"prices as of {result.prices_as_of}",
    )
    for o in result.options:
        table.add_row(
            o.option.accelerator,
            str(o.option.devices),
            str(o.option.tensor_parallel),
            o.option.instance.name,
            str(o.option.replicas_per_instance),
            f"{o.requests_per_s:.2f}",
            f"{o.usd_per_hour_on_demand:.2f}",
            f"{o.usd_per_million_on_demand:.3f}",
            f"{o.usd_per_million_spot:.3f}",
        )
    console.print(table)
    managed = result.workload.managed_usd_per_million
    if managed is not None:
        console.print(f"managed API for the same token mix: ${managed:.3f} per 1M tokens")


def print_replay(console: Console, spec: DeploymentSpec, result: Plan, trace: Path) -> None:
    """Replay a trace on the spec's accelerator (or the cheapest option)."""
    from corral.control.planner.trace import read_azure_trace, replay

    chosen = next(
        (o for o in result.options if o.option.accelerator == spec.accelerator.type), None
    )
    chosen = chosen or (result.options[0] if result.options else None)
    if chosen is None:
        raise ConfigError("no accelerator fits the spec; nothing to replay")
    run = replay(
        read_azure_trace(trace),
        chosen.throughput,
        devices_per_replica=chosen.option.devices,
        utilisation=result.workload.utilisation,
        min_replicas=max(1, spec.replicas.min),
        downscale_delay_s=spec.replicas.downscale_delay_s,
    )
    console.print(
        f"trace replay on {chosen.option.accelerator} × {chosen.option.devices} over "
        f"{run.duration_h:.2f} h: peak {run.peak_replicas} replicas; device-hours autoscaled "
        f"{run.autoscaled_device_hours:.2f} vs static peak {run.static_device_hours:.2f}"
    )


@app.command()
def schema(
    what: Annotated[str, typer.Argument(help="Which schema: deployment.")] = "deployment",
) -> None:
    """Print a JSON Schema (for editors and CI)."""
    if what != "deployment":
        raise ConfigError(f"unknown schema {what!r}; allowed: deployment")
    typer.echo(json.dumps(deployment_schema(), indent=2))
