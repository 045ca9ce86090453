"""`corral ray deploy|undeploy|status`: model deployments as Ray Serve applications."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from corral.control.ray_target import ray_application
from corral.control.spec import load_spec
from corral.engines.ray.deployer import RayServeTarget, start_local_head

app = typer.Typer(help="Model deployments on a Ray cluster (Ray Serve; vLLM on GPUs).")

AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster address (ray://host:10001 or auto)."),
]
PortOption = Annotated[int, typer.Option("--http-port", help="Serve's HTTP port.")]


def _target(address: str | None, http_port: int, console: Console) -> RayServeTarget:
    target = RayServeTarget(http_port=http_port)
    if address is None:
        console.print("[cyan]starting[/] a local Ray head (ray start --head)")
        address = start_local_head()
    target.connect(address)
    return target


def deploy_on_ray(
    spec_path: Path,
    address: str | None,
    *,
    http_port: int = 8000,
    timeout: float = 1800.0,
    data_dir: Path = Path(".corral"),
) -> str:
    """Deploy the spec on Ray, showing progress until it runs; the OpenAI base URL."""
    console = Console(stderr=True)
    spec = load_spec(spec_path)
    application = ray_application(spec, data_dir=data_dir)
    target = _target(address, http_port, console)
    url = target.deploy(application)
    with console.status(f"[cyan]waiting[/] for {escape(spec.name)}") as spinner:

        def progress(line: str) -> None:
            console.print(f"[cyan]waiting[/] {escape(line)}")
            spinner.update(f"[cyan]waiting[/] {escape(line)}")

        target.wait_running(spec.name, timeout, progress)
    console.print(f"[green]ready[/] {spec.name}: model {spec.served_name!r} at {url}")
    return url


def undeploy_from_ray(name: str, address: str) -> bool:
    """Delete the application ``name``; False (and a note) when there was none."""
    console = Console(stderr=True)
    target = RayServeTarget()
    target.connect(address)
    if target.delete(name):
        console.print(f"[red]deleted[/] {escape(name)}")
        return True
    console.print(f"no Ray Serve application {name!r}")
    return False


def print_ray_status(address: str) -> None:
    """Applications, their deployments, replicas and autoscaling state, as a table."""
    target = RayServeTarget()
    target.connect(address)
    table = Table("application", "status", "deployment", "running", "starting", "detail")
    for application in target.applications():
        for d in application.deployments:
            table.add_row(
                application.name,
                application.status.lower(),
                d.name,
                str(d.running),
                str(d.starting),
                escape(d.message or application.message),
            )
    Console().print(table)


@app.command("deploy")
def deploy(
    spec_path: Annotated[Path, typer.Argument(help="Deployment spec (YAML).", exists=True)],
    address: AddressOption = None,
    http_port: PortOption = 8000,
    timeout: Annotated[float, typer.Option(help="Seconds to wait until it runs.")] = 1800.0,
) -> None:
    """Run the spec as a Ray Serve application (starts a local Ray head when no address)."""
    deploy_on_ray(spec_path, address, http_port=http_port, timeout=timeout)


@app.command("undeploy")
def undeploy(
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    address: Annotated[str, typer.Option("--address", help="Ray cluster address.")] = "auto",
) -> None:
    """Delete the application; its replicas finish open requests before they stop."""
    undeploy_from_ray(name, address)


@app.command("status")
def status(
    address: Annotated[str, typer.Option("--address", help="Ray cluster address.")] = "auto",
) -> None:
    """Applications, their deployments, replicas and autoscaling state."""
    print_ray_status(address)
