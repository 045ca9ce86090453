"""`corral health`: check this machine's GPUs, run the remediation agent, reset the breaker."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from corral.clock import SystemClock
from corral.errors import CorralError, PermanentError
from corral.health.dcgm import DcgmProbe
from corral.health.kernel_log import JournalReader, KernelLogProbe, KmsgReader, pod_uid_of
from corral.health.neuron import NeuronMonitorProbe
from corral.health.nvml import NvmlProbe
from corral.health.observations import DeviceReading, Observation
from corral.health.policy import Action, Decision, History, Verdict, decide, device_name, verdict_of
from corral.health.port import CombinedProbe, GpuProbe

app = typer.Typer(
    help="GPU health: check this machine's accelerators, or run the remediation agent.",
    no_args_is_help=True,
)

_COLOURS = {Verdict.HEALTHY: "green", Verdict.DEGRADED: "yellow", Verdict.FAULTY: "red"}

ExpectedOption = Annotated[
    int | None, typer.Option("--expected", help="Accelerators this machine should have.")
]
KernelLogOption = Annotated[
    str, typer.Option(help="Where to read Xids: auto, journal, kmsg, off, or a saved log file.")
]
AcceleratorOption = Annotated[str, typer.Option(help="nvidia (NVML) or neuron (neuron-monitor).")]


def build_probe(accelerator: str, expected: int | None, kernel_log: str, dcgm: bool) -> GpuProbe:
    """The probes for this machine: NVML + kernel log (+ DCGM), or neuron-monitor."""
    if accelerator == "neuron":
        return NeuronMonitorProbe(expected)
    if accelerator != "nvidia":
        raise PermanentError(f"--accelerator {accelerator!r}: use nvidia or neuron")
    probes: list[GpuProbe] = [NvmlProbe(expected)]
    reader = _kernel_log_reader(kernel_log)
    if reader is not None:
        probes.append(KernelLogProbe(reader, resolve=pod_uid_of))
    if dcgm:
        probes.append(DcgmProbe())
    return CombinedProbe(probes)


def _kernel_log_reader(choice: str) -> Callable[[], list[str]] | None:
    if choice == "off":
        return None
    if choice not in ("auto", "journal", "kmsg"):
        saved = Path(choice)  # a saved log (dmesg, journalctl -k, a support bundle)
        if not saved.is_file():
            raise PermanentError(f"--kernel-log {choice!r}: use auto, journal, kmsg, off or a file")
        return lambda: saved.read_text(encoding="utf-8", errors="replace").splitlines()
    if choice == "journal" or (choice == "auto" and shutil.which("journalctl")):
        return JournalReader()
    return KmsgReader()


@app.command()
def check(
    *,
    expected: ExpectedOption = None,
    kernel_log: KernelLogOption = "auto",
    dcgm: Annotated[
        bool | None, typer.Option(help="Also ask DCGM (default: when dcgmi is installed).")
    ] = None,
    accelerator: AcceleratorOption = "nvidia",
) -> None:
    """Read this machine's accelerators once and print each device with a verdict.

    Exits 0 when healthy or degraded, 1 when a device is faulty, 2 when no device could be read.
    """
    console = Console()
    use_dcgm = dcgm if dcgm is not None else shutil.which("dcgmi") is not None
    try:
        probe = build_probe(accelerator, expected, kernel_log, use_dcgm)
    except PermanentError as exc:
        console.print(f"[red]✗ cannot check GPU health:[/] {escape(exc.message)}")
        raise typer.Exit(2) from exc
    raise typer.Exit(run_check(console, probe))


def run_check(console: Console, probe: GpuProbe) -> int:
    """One probe round printed as a report; the exit status (0 ok, 1 faulty, 2 no device read)."""
    try:
        seen = probe.observe()
    except PermanentError as exc:
        console.print(f"[red]✗ cannot check GPU health:[/] {escape(exc.message)}")
        return 2
    decision, _ = decide(socket.gethostname(), seen, History(), SystemClock().now())
    print_report(console, seen, decision)
    if decision.verdict is Verdict.FAULTY:
        return 1
    if not seen.devices:  # nothing read is no evidence of health: never a success
        console.print(
            f"[red]✗ no {seen.accelerator} device could be read on this machine[/] "
            "(run it where the GPUs and their driver are visible)"
        )
        return 2
    return 0


def print_report(console: Console, seen: Observation, decision: Decision) -> None:
    """The devices table, the findings, and one verdict line."""
    if seen.devices:
        console.print(_device_table(seen.devices, decision))
    if seen.device_count is not None:
        expected = f" of {seen.expected_devices} expected" if seen.expected_devices else ""
        console.print(f"{seen.device_count} {seen.accelerator} device(s) found{expected}")
    if decision.findings:
        findings = Table("device", "signal", "action", "detail", title="Findings")
        for f in decision.findings:
            findings.add_row(f.device, f.rule.value, f.action.value, escape(f.detail))
        console.print(findings)
    for problem in seen.problems:
        console.print(f"[yellow]note:[/] {escape(problem)}")
    colour = _COLOURS[decision.verdict]
    action = "" if decision.action is Action.NONE else f" → {decision.action.value}"
    console.print(f"[{colour}]{decision.verdict.value}[/]{action} ({', '.join(seen.sources)})")


def _device_table(devices: tuple[DeviceReading, ...], decision: Decision) -> Table:
    table = Table(
        "gpu", "name", "bus", "temp °C", "power W", "ECC unc.", "row remap", "throttle", "verdict"
    )
    for d in devices:
        name = device_name(d.index)
        verdict = verdict_of(decision.for_device(name))
        remap = "failed" if d.remap_failed else "pending" if d.remap_pending else "ok"
        table.add_row(
            name,
            "LOST" if d.lost else d.name,
            d.pci_bus_id,
            _num(d.temperature_c, "{:.0f}"),
            _num(d.power_w, "{:.0f}"),
            _num(d.ecc_uncorrected, "{}"),
            remap,
            ", ".join(sorted(d.throttles)) or "-",
            f"[{_COLOURS[verdict]}]{verdict.value}[/]",
        )
    return table


def _num(value: float | None, form: str) -> str:
    return "n/a" if value is None else form.format(value)


@app.command()
def agent(
    *,
    node: Annotated[str, typer.Option(envvar="NODE_NAME", help="This node's name.")],
    namespace: Annotated[
        str, typer.Option(envvar="POD_NAMESPACE", help="Namespace for the breaker ConfigMaps.")
    ] = "corral-system",
    expected: ExpectedOption = None,
    accelerator: AcceleratorOption = "nvidia",
    kernel_log: KernelLogOption = "auto",
    dcgm: Annotated[bool, typer.Option(help="Also ask DCGM each round.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between rounds.")] = 30.0,
    dry_run: Annotated[bool, typer.Option(help="Only report what would be done.")] = False,
    metrics_port: Annotated[int, typer.Option(help="Prometheus /metrics port; 0: none.")] = 9400,
    eks_node_conditions: Annotated[
        bool,
        typer.Option(
            envvar="CORRAL_HEALTH_EKS_NODE_CONDITIONS",
            help="Also read the EKS node monitoring agent's node conditions each round.",
        ),
    ] = False,
    repair_owner: Annotated[
        str,
        typer.Option(
            envvar="CORRAL_HEALTH_REPAIR_OWNER",
            help="Who repairs a faulty node: corral (reset, reboot, replace) or eks (EKS node "
            "auto repair is on; Corral only stops routing and drains).",
        ),
    ] = "corral",
) -> None:
    """Run the health loop for this node (the DaemonSet's command)."""
    from corral.health.wiring import run_agent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if repair_owner not in ("corral", "eks"):
        Console(stderr=True).print(
            f"[red]✗[/] --repair-owner must be corral or eks, not {escape(repair_owner)!r}"
        )
        raise typer.Exit(2)
    try:
        probe = build_probe(accelerator, expected, kernel_log, dcgm)
        asyncio.run(
            run_agent(
                node=node,
                namespace=namespace,
                probe=probe,
                interval_s=interval,
                dry_run=dry_run,
                metrics_port=metrics_port,
                stop_signals=(signal.SIGTERM, signal.SIGINT),
                eks_node_conditions=eks_node_conditions,
                repair_owner="eks" if repair_owner == "eks" else "corral",
            )
        )
    except CorralError as exc:
        Console(stderr=True).print(f"[red]✗ gpu health agent stopped:[/] {escape(exc.message)}")
        raise typer.Exit(1) from exc


@app.command("reset-breaker")
def reset_breaker(
    namespace: Annotated[
        str, typer.Option(envvar="POD_NAMESPACE", help="Namespace of the breaker ConfigMap.")
    ] = "corral-system",
) -> None:
    """Close the remediation circuit breaker after a human has looked at the fleet."""
    from corral.health.wiring import reset_breaker as reset

    try:
        asyncio.run(reset(namespace, actor=os.environ.get("USER", "unknown")))
    except CorralError as exc:
        Console(stderr=True).print(f"[red]✗ could not reset the breaker:[/] {escape(exc.message)}")
        raise typer.Exit(1) from exc
    Console().print("[green]✓[/] circuit breaker closed; remediation resumes on the next round")
