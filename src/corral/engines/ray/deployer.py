"""Runs Corral's Serve applications on a Ray cluster: connect, deploy, follow, delete, status."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from corral.engines.ray.application import RayApplication
from corral.errors import ConfigError, ModelLoadError

INSTALL_HINT = "the Ray target needs the ray extra: pip install 'corral[ray]'"

# Pushed every 10 s by default, which delays both scaling and waking from zero.
METRICS_ENV = {
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "2",
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "2",
}

Progress = Callable[[str], None]


def import_ray() -> ModuleType:
    """The ``ray`` module, or ConfigError saying how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc


def start_local_head(num_cpus: int | None = None) -> str:
    """Start a detached local Ray head (``ray start --head``) and return its address."""
    import_ray()
    ray_cli = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    command = [ray_cli, "start", "--head", "--disable-usage-stats"]
    if num_cpus is not None:
        command.append(f"--num-cpus={num_cpus}")
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        command, env={**os.environ, **METRICS_ENV}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ConfigError(f"`ray start --head` failed:\n{done.stderr.strip()[-2000:]}")
    return "auto"


@dataclass(frozen=True)
class DeploymentState:
    """One Serve deployment's replicas and status."""

    name: str
    status: str
    running: int
    starting: int
    message: str


@dataclass(frozen=True)
class ApplicationState:
    """One Serve application (one Corral model deployment)."""

    name: str
    status: str
    route_prefix: str | None
    message: str
    deployments: tuple[DeploymentState, ...]

    @property
    def running_replicas(self) -> int:
        return sum(d.running for d in self.deployments)


class RayServeTarget:
    """A connection to a Ray cluster's Serve instance."""

    def __init__(self, *, http_host: str = "127.0.0.1", http_port: int = 8000) -> None:
        self._ray = import_ray()
        self._serve: Any = importlib.import_module("ray.serve")
        self._http = (http_host, http_port)

    @property
    def http_url(self) -> str:
        """Where Serve's HTTP proxy listens."""
        return f"http://{self._http[0]}:{self._http[1]}"

    def attach(self, address: str | None) -> None:
        """Join the cluster at ``address`` to read Serve's state; starts nothing there."""
        if not self._ray.is_initialized():
            self._ray.init(address=address, logging_level="WARNING", log_to_driver=False)

    def connect(self, address: str | None) -> None:
        """Join the cluster at ``address`` and make sure Serve runs there."""
        self.attach(address)
        host, port = self._http
        self._serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly")

    def deploy(self, app: RayApplication) -> str:
        """Start or update ``app`` (returns at once); its OpenAI base URL."""
        module_name, _, attr = app.import_path.partition(":")
        builder = getattr(importlib.import_module(module_name), attr)
        target = self._serve.RunTarget(
            target=builder(app.args), name=app.name, route_prefix=app.route_prefix
        )
        # Returns once the controller has the config; wait_running follows the replicas.
        self._serve.run_many(
            [target],
            wait_for_ingress_deployment_creation=False,
            wait_for_applications_running=False,
        )
        return app.base_url(self.http_url)

    def wait_running(self, name: str, timeout_s: float, progress: Progress) -> ApplicationState:
        """Follow ``name`` until it runs; ModelLoadError if it fails or takes too long."""
        end = time.monotonic() + timeout_s
        last = ""
        while True:
            state = self.application(name)
            line = _describe(state) if state else "waiting for the application to appear"
            if line != last:
                progress(line)
                last = line
            if state is not None and state.status == "RUNNING":
                return state
            if state is not None and state.status in {"DEPLOY_FAILED", "UNHEALTHY"}:
                raise ModelLoadError(f"Ray Serve application {name!r} failed: {state.message}")
            if time.monotonic() > end:
                raise ModelLoadError(f"{name!r} was not running after {timeout_s:.0f} s: {line}")
            time.sleep(0.5)

    def delete(self, name: str) -> bool:
        """Delete ``name``; False when there was none (replicas drain before they stop)."""
        if self.application(name) is None:
            return False
        self._serve.delete(name)
        return True

    def application(self, name: str) -> ApplicationState | None:
        return next((a for a in self.applications() if a.name == name), None)

    def applications(self) -> list[ApplicationState]:
        """Every Serve application with its deployments' replicas."""
        status = self._serve.status()
        return [_application(name, app) for name, app in status.applications.items()]


def _application(name: str, app: Any) -> ApplicationState:
    deployments = tuple(
        DeploymentState(
            name=dep_name,
            status=str(dep.status.value if hasattr(dep.status, "value") else dep.status),
            running=int(_count(dep.replica_states, "RUNNING")),
            starting=int(_count(dep.replica_states, "STARTING")),
            message=dep.message or "",
        )
        for dep_name, dep in app.deployments.items()
    )
    status = app.status.value if hasattr(app.status, "value") else app.status
    route = getattr(app, "route_prefix", None)
    return ApplicationState(name, str(status), route, app.message or "", deployments)


def _count(states: dict[Any, int], wanted: str) -> int:
    return sum(n for key, n in states.items() if str(getattr(key, "value", key)) == wanted)


def _describe(state: ApplicationState) -> str:
    replicas = ", ".join(
        f"{d.name}: {d.running} running, {d.starting} starting" for d in state.deployments
    )
    return f"{state.name}: {state.status.lower()}" + (f" ({replicas})" if replicas else "")
