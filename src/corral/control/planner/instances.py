"""The AWS instance-type table (accelerators, sizes, dated list prices) read from a data file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from corral.control.accelerators import ACCELERATORS
from corral.errors import ConfigError


class InstanceType(BaseModel):
    """One EC2 instance type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="EC2 instance type, e.g. g5.xlarge.")
    accelerator: str = Field(description="Accelerator name (see corral.control.accelerators).")
    count: int = Field(ge=0, description="Accelerator devices on one instance.")
    vcpu: int = Field(gt=0, description="vCPUs.")
    memory_gib: float = Field(gt=0, description="Host memory in GiB.")
    on_demand_usd_per_hour: float = Field(gt=0, description="On-demand list price per hour.")
    spot_usd_per_hour: float | None = Field(None, gt=0, description="Typical spot price per hour.")
    instance_store_gb: int = Field(0, ge=0, description="Local NVMe instance storage, GB.")
    efa: int = Field(0, ge=0, description="EFA network interfaces (vpc.amazonaws.com/efa).")

    @field_validator("accelerator")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ACCELERATORS:
            raise ValueError(f"unknown accelerator {value!r}; allowed: {', '.join(ACCELERATORS)}")
        return value

    @property
    def family(self) -> str:
        """The instance family, e.g. ``g5`` for ``g5.xlarge``."""
        return self.name.split(".", 1)[0]


DAEMONSET_CPU = 0.5
"""CPU the node's DaemonSets request (VPC CNI, kube-proxy, CSI, device plugin, DCGM, health)."""
DAEMONSET_MEMORY_GIB = 1.0
MAX_PODS = 110
"""Kubelet max pods used for the memory reservation (the EKS upper bound; smaller is less)."""


def allocatable_cpu_memory(instance: InstanceType) -> tuple[float, float]:
    """CPU cores and memory GiB pods get on ``instance`` after EKS's reservations and DaemonSets.

    kube-reserved as the EKS AMIs compute it (amazon-eks-ami ``get_cpu_millicores_to_reserve``
    and ``get_memory_mebibytes_to_reserve``: 6% of the first core, 1% of the second, 0.5% of the
    next two, 0.25% of the rest; 11 MiB per pod + 255 MiB) plus the 100Mi eviction threshold.
    """
    cores = instance.vcpu
    reserved_m: float = 60 + (10 if cores > 1 else 0) + 5 * min(2, max(0, cores - 2))
    reserved_m += 2.5 * max(0, cores - 4)
    memory_mib = instance.memory_gib * 1024 - (11 * MAX_PODS + 255) - 100
    return cores - reserved_m / 1000 - DAEMONSET_CPU, memory_mib / 1024 - DAEMONSET_MEMORY_GIB


class PriceTable(BaseModel):
    """The instance table with the date its prices were taken."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: str = Field(description="Date the prices were taken (YYYY-MM-DD).")
    region: str = Field(description="AWS region the prices are for.")
    default_spot_discount: float = Field(
        ge=0, lt=1, description="Fraction saved on spot where an instance has no spot price."
    )
    instances: list[InstanceType] = Field(min_length=1)

    def spot_price(self, instance: InstanceType) -> float:
        """The spot price per hour, measured or estimated from the default discount."""
        if instance.spot_usd_per_hour is not None:
            return instance.spot_usd_per_hour
        return instance.on_demand_usd_per_hour * (1 - self.default_spot_discount)

    def for_accelerator(self, name: str, min_count: int = 1) -> list[InstanceType]:
        """Instance types carrying ``name`` with at least ``min_count`` devices, cheapest first."""
        found = [i for i in self.instances if i.accelerator == name and i.count >= min_count]
        return sorted(found, key=lambda i: (i.on_demand_usd_per_hour, i.name))


def load_price_table(path: Path | None = None) -> PriceTable:
    """The packaged table, or the one at ``path``; ConfigError says what is wrong with it."""
    if path is None:
        text = resources.files("corral.control").joinpath("data/instances.yaml").read_text()
        where = "packaged instances.yaml"
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read price table {path}: {exc.strerror}") from exc
        where = str(path)
    try:
        return PriceTable.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where} is not a valid instance table: {exc}") from exc
