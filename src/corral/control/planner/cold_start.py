"""How long a new replica takes to get its weights, for each way Corral can load them from S3.

An estimate from published rates (one table, each with its source), not a measurement: weights
bytes over the slowest stage of each path, capped by the instance's network bandwidth. It ranks
the three S3 modes for a model and instance; the absolute seconds are rough.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from corral.control.accelerators import ACCELERATORS
from corral.control.planner.disk import GIB, allowed_instances, disk_need, nvme_holds, weights_gib
from corral.control.planner.instances import InstanceType, PriceTable

if TYPE_CHECKING:
    from corral.control.spec import DeploymentSpec

S3Mode = Literal["stream", "mountpoint", "init-container"]

S3_GB_PER_S_PER_CONNECTION = 0.0875
"""One S3 GET stream: 85-90 MB/s ("Best practices design patterns: optimizing Amazon S3
performance", AWS whitepaper: one concurrent request per 85-90 MB/s of wanted throughput)."""
STREAMER_CONNECTIONS = 16
"""vLLM's Run:ai streamer reads with RUNAI_STREAMER_CONCURRENCY (16, as rendered) into memory,
then to the device, with no local disk stage (vLLM docs, "Loading models with Run:ai Model
Streamer")."""
AWS_CLI_CONNECTIONS = 10
"""``aws s3 sync`` runs ``max_concurrent_requests`` = 10 by default (AWS CLI S3 configuration)."""
MOUNTPOINT_CONNECTIONS = 8
"""Mountpoint prefetches sequential reads with parallel ranged GETs, but vLLM's safetensors
loader memory-maps files and reads them out of order, which defeats most of the prefetch
(Mountpoint docs, "Optimizing for sequential reads"). An assumption: half the streamer's reads."""
NVME_GB_PER_S = 2.0
"""Local NVMe (RAID0 instance store) read, conservatively (EC2 instance store specs)."""
EBS_GP3_GB_PER_S = 0.131
"""A gp3 volume's baseline throughput, 125 MiB/s, which Corral's node classes keep (EBS docs)."""
NETWORK_GBPS = {
    "g4dn.xlarge": 25, "g4dn.12xlarge": 50, "g5.xlarge": 10, "g5.2xlarge": 10,
    "g5.12xlarge": 40, "g5.48xlarge": 100, "g6.xlarge": 10, "g6.12xlarge": 40,
    "g6.48xlarge": 100, "g6e.xlarge": 20, "g6e.12xlarge": 100, "g6e.48xlarge": 400,
    "p4d.24xlarge": 400, "p5.48xlarge": 3200, "p5e.48xlarge": 3200, "inf2.xlarge": 15,
    "inf2.8xlarge": 25, "inf2.24xlarge": 50, "inf2.48xlarge": 100, "trn1.2xlarge": 12.5,
    "trn1.32xlarge": 800,
}  # fmt: skip
"""Network bandwidth in Gbit/s (EC2 instance type pages, "Network bandwidth"; "up to" values
taken at their burst). Unknown types count as 10."""


@dataclass(frozen=True, slots=True)
class LoadEstimate:
    """One way to get the weights onto a new node."""

    mode: S3Mode
    seconds: float
    bottleneck: str


def _network_gb_per_s(instance: InstanceType) -> float:
    return NETWORK_GBPS.get(instance.name, 10) / 8


def _s3(connections: int, instance: InstanceType) -> tuple[float, str]:
    wanted = connections * S3_GB_PER_S_PER_CONNECTION
    network = _network_gb_per_s(instance)
    if network < wanted:
        return network, f"{instance.name} network {NETWORK_GBPS.get(instance.name, 10)} Gbit/s"
    return wanted, f"{connections} S3 connections × {S3_GB_PER_S_PER_CONNECTION * 1000:.0f} MB/s"


def s3_load_estimates(
    weights_gb: float, instance: InstanceType, *, nvme: bool
) -> list[LoadEstimate]:
    """Seconds to load ``weights_gb`` on ``instance`` per S3 mode, fastest first. ``nvme``: the
    node's data filesystem is local NVMe (else a gp3 EBS volume at its baseline throughput)."""
    stream_rate, stream_why = _s3(STREAMER_CONNECTIONS, instance)
    mount_rate, mount_why = _s3(MOUNTPOINT_CONNECTIONS, instance)
    copy_rate, copy_why = _s3(AWS_CLI_CONNECTIONS, instance)
    disk_rate = NVME_GB_PER_S if nvme else EBS_GP3_GB_PER_S
    disk_why = "local NVMe" if nvme else "gp3 EBS at 125 MiB/s"
    # The copy writes to disk, then vLLM reads it back: both stages run at the slower rate.
    copy_stage = min(copy_rate, disk_rate)
    copy_seconds = weights_gb / copy_stage + weights_gb / disk_rate
    estimates = [
        LoadEstimate("stream", weights_gb / stream_rate, stream_why),
        LoadEstimate("mountpoint", weights_gb / mount_rate, mount_why),
        LoadEstimate(
            "init-container", copy_seconds, copy_why if copy_rate <= disk_rate else disk_why
        ),
    ]
    return sorted(estimates, key=lambda e: e.seconds)


def spec_load_estimates(
    spec: DeploymentSpec, table: PriceTable
) -> tuple[InstanceType, list[LoadEstimate]] | None:
    """The estimates for the spec's S3 weights on the cheapest instance its pool may launch;
    None for other sources or an unknown model size."""
    if spec.model.kind != "s3":
        return None
    hosts = allowed_instances(spec, table)
    weights_gb = weights_gib(spec) * GIB / 1e9
    if not hosts or weights_gb == 0:
        return None
    instance = hosts[0]
    streams = ACCELERATORS[instance.accelerator].vendor != "neuron"  # no streamer in neuronx
    node_class = spec.capacity.node_class
    nvme = (
        spec.capacity.provisioner == "karpenter"
        and node_class is not None
        and not node_class.ami_alias.startswith("bottlerocket@")
        and nvme_holds(instance, disk_need(spec, instance).total_gib)
    )
    estimates = s3_load_estimates(weights_gb, instance, nvme=nvme)
    return instance, [e for e in estimates if streams or e.mode != "stream"]


def cold_start_note(spec: DeploymentSpec, table: PriceTable) -> str | None:
    """One line for ``corral plan`` and ``deploy``: each S3 mode's load time, and whether the
    spec's mode is the fastest."""
    found = spec_load_estimates(spec, table)
    if found is None:
        return None
    instance, estimates = found
    times = ", ".join(f"{e.mode} ~{e.seconds:.0f} s ({e.bottleneck})" for e in estimates)
    fastest = estimates[0].mode
    chosen = spec.model.s3_mode
    verdict = (
        f"s3_mode {chosen} is the fastest"
        if chosen == fastest
        else f"s3_mode {fastest} would load faster than {chosen}"
    )
    size = f"{weights_gib(spec)} GiB of weights on {instance.name}"
    return f"cold-start estimate for {size}: {times}; {verdict}"
