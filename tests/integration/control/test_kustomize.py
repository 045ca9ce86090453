"""The platform's Kustomize overlays build with kubectl and every object validates."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.control.accelerators import ACCELERATORS
from corral.control.planner.instances import load_price_table
from corral.control.validation.manifests import find_problems

KUSTOMIZE = Path(__file__).parents[3] / "deploy" / "kustomize"
KUBECTL = shutil.which("kubectl")
EXTERNAL = ["Secret/corral/corral-database"]

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def build(overlay: str) -> list[dict[str, object]]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def names(objs: list[dict[str, object]]) -> set[str]:
    return {f"{o['kind']}/{o['metadata']['name']}" for o in objs}  # type: ignore[index]


@pytest.mark.parametrize("overlay", ["dev", "eks"])
def test_overlay_builds_and_validates(overlay: str) -> None:
    objs = build(overlay)
    assert find_problems(objs, external=EXTERNAL) == []
    assert {
        "Deployment/corral-gateway",
        "Service/corral-gateway",
        "PriorityClass/corral-normal",
    } <= names(objs)


def test_eks_overlay_runs_gpu_agent_monitors_and_autoscaling() -> None:
    objs = build("eks")
    assert {
        "DaemonSet/corral-gpu-health",
        "DaemonSet/dcgm-exporter",
        "ServiceMonitor/dcgm-exporter",
        "ServiceMonitor/corral-gateway",
        "PodMonitor/corral-gpu-health",
        "HorizontalPodAutoscaler/corral-gateway",
    } <= names(objs)
    gateway = next(o for o in objs if o["kind"] == "Deployment")
    assert gateway["spec"]["replicas"] == 3  # type: ignore[index]


def test_dev_overlay_is_small() -> None:
    found = names(build("dev"))
    assert "DaemonSet/corral-gpu-health" not in found
    assert "HorizontalPodAutoscaler/corral-gateway" not in found
    assert "Secret/corral-database" in found


def test_gpu_health_podmonitor_scrapes_the_agent_metrics_port() -> None:
    import copy
    import inspect

    from corral.cli.health import agent

    objs = build("eks")
    monitor = next(o for o in objs if o["kind"] == "PodMonitor")
    agent_ds = next(o for o in objs if o["kind"] == "DaemonSet" and "gpu-health" in str(o))
    [container] = agent_ds["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    [port] = [p for p in container["ports"] if p["name"] == "metrics"]
    default = inspect.signature(agent).parameters["metrics_port"].default
    assert port["containerPort"] == default == 9400
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]  # type: ignore[index]
    assert endpoint["port"] == "metrics"
    assert monitor["metadata"]["namespace"] == agent_ds["metadata"]["namespace"] == "corral"  # type: ignore[index]
    relabel = endpoint["relabelings"][0]
    assert relabel == {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}

    broken = copy.deepcopy(objs)
    wrong = next(o for o in broken if o["kind"] == "PodMonitor")
    wrong["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "gpu-health"}  # type: ignore[index]
    assert find_problems(broken, external=EXTERNAL) == [
        "PodMonitor/corral/corral-gpu-health: selector "
        "{'matchLabels': {'app.kubernetes.io/name': 'gpu-health'}} matches no pod template"
    ]


# Issue 17: the platform on the cluster works.
ROOT = Path(__file__).parents[3]


def _of(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def _node_matches(pod_spec: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes required node affinity: terms ORed, expressions ANDed
    (k8s.io/component-helpers/scheduling/corev1/nodeaffinity: NotIn and DoesNotExist match a
    node without the label)."""
    terms = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return any(
        all(_expression_matches(e, labels) for e in term["matchExpressions"])
        for term in terms["nodeSelectorTerms"]
    )


def _expression_matches(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    value = labels.get(expr["key"])
    return {
        "In": value is not None and value in expr.get("values", []),
        "NotIn": value is None or value not in expr.get("values", []),
        "Exists": value is not None,
        "DoesNotExist": value is None,
    }[expr["operator"]]


def _node_labels(instance: Any, provisioner: str) -> dict[str, str]:
    """Labels each provisioner sets: Karpenter's and Auto Mode's well-known labels; a managed
    node group only the kubelet's node.kubernetes.io/instance-type (and its nodegroup)."""
    vendor = ACCELERATORS[instance.accelerator].vendor
    labels = {"node.kubernetes.io/instance-type": instance.name}
    prefix = {"karpenter": "karpenter.k8s.aws", "auto-mode": "eks.amazonaws.com"}.get(provisioner)
    if prefix is not None:
        labels["karpenter.sh/nodepool"] = "gpu"  # Auto Mode's NodePools are Karpenter's
        labels[f"{prefix}/instance-family"] = instance.family
        if vendor == "nvidia":
            labels[f"{prefix}/instance-gpu-manufacturer"] = "nvidia"
    else:
        labels["eks.amazonaws.com/nodegroup"] = "gpu"
    if provisioner == "auto-mode":
        labels["eks.amazonaws.com/compute-type"] = "auto"
    return labels


@pytest.mark.parametrize("provisioner", ["karpenter", "auto-mode", "managed-node-group"])
def test_agents_and_dcgm_select_accelerator_nodes_on_every_provisioner(provisioner: str) -> None:
    objs = build("eks")
    nvidia = _of(objs, "DaemonSet", "corral-gpu-health")["spec"]["template"]["spec"]
    neuron = _of(objs, "DaemonSet", "corral-neuron-health")["spec"]["template"]["spec"]
    dcgm = _of(objs, "DaemonSet", "dcgm-exporter")["spec"]["template"]["spec"]
    for instance in load_price_table().instances:
        labels = _node_labels(instance, provisioner)
        vendor = ACCELERATORS[instance.accelerator].vendor
        assert _node_matches(nvidia, labels) == (vendor == "nvidia"), instance.name
        assert _node_matches(dcgm, labels) == (vendor == "nvidia"), instance.name
        assert _node_matches(neuron, labels) == (vendor == "neuron"), instance.name


def test_one_health_agent_per_accelerator_kind_with_what_remediation_needs() -> None:
    objs = build("eks")
    for name, kind in (("corral-gpu-health", "nvidia"), ("corral-neuron-health", "neuron")):
        ds = _of(objs, "DaemonSet", name)
        pod = ds["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["args"][-2:] == ["--accelerator", kind]
        env = {e["name"]: e for e in container["env"]}
        # corral health agent reads POD_NAMESPACE (default corral-system, not where it runs).
        assert env["POD_NAMESPACE"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.namespace"}
        }
        assert ("NVIDIA_VISIBLE_DEVICES" in env) == (kind == "nvidia")
        assert pod["hostPID"] is True  # nsenter --target 1 for the reboot (health/reset.py)
        assert container["securityContext"]["runAsUser"] == 0
    selectors = [
        _of(objs, "DaemonSet", n)["spec"]["selector"]["matchLabels"]
        for n in ("corral-gpu-health", "corral-neuron-health")
    ]
    assert selectors[0] != selectors[1]  # DaemonSets must not adopt each other's pods


def test_health_agent_may_keep_its_records_in_its_namespace() -> None:
    objs = build("eks")
    ds = _of(objs, "DaemonSet", "corral-gpu-health")
    namespace = ds["metadata"]["namespace"]
    account = ds["spec"]["template"]["spec"]["serviceAccountName"]
    role = _of(objs, "Role", "corral-gpu-health")
    binding = _of(objs, "RoleBinding", "corral-gpu-health")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    assert {"kind": "ServiceAccount", "name": account, "namespace": namespace} in binding[
        "subjects"
    ]
    [rule] = role["rules"]
    assert rule["resources"] == ["configmaps"]
    assert {"get", "create", "update", "patch", "delete"} <= set(rule["verbs"])


@pytest.mark.parametrize("overlay", ["dev", "eks"])
def test_gateway_discovers_deployed_models_and_may_read_them(overlay: str) -> None:
    from corral.control.spec import DeploymentSpec
    from corral.settings import CorralSettings

    objs = build(overlay)
    config = next(
        o for o in objs if o["kind"] == "ConfigMap" and "corral-config" in o["metadata"]["name"]
    )
    env = {k: v for k, v in config["data"].items() if k.startswith("CORRAL_DISCOVERY")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        discovery = CorralSettings().discovery.kubernetes
    models_ns = DeploymentSpec.model_fields["namespace"].default
    assert discovery is not None
    assert discovery.namespaces == [models_ns]
    role = _of(objs, "Role", "corral-gateway-discovery")
    binding = _of(objs, "RoleBinding", "corral-gateway-discovery")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == models_ns
    granted = {
        (g, r)
        for rule in role["rules"]
        if "list" in rule["verbs"] and "watch" in rule["verbs"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert {("", "services"), ("discovery.k8s.io", "endpointslices")} <= granted
    gateway = _of(objs, "Deployment", "corral-gateway")
    account = gateway["spec"]["template"]["spec"]["serviceAccountName"]
    assert {"kind": "ServiceAccount", "name": account, "namespace": "corral"} in binding["subjects"]


def test_the_corral_image_is_defined_multi_stage_non_root_from_the_hash_pinned_lock() -> None:
    text = (ROOT / "Containerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 2
    final = text[text.rindex("\nFROM ") :]
    [user] = [line for line in final.splitlines() if line.startswith("USER ")]
    assert not user.removeprefix("USER ").startswith(("0", "root"))
    assert "--require-hashes" in text
    assert "-r requirements/lock.txt" in text
    images = {
        c["image"]
        for o in build("eks")
        if o["kind"] in ("Deployment", "DaemonSet")
        for c in o["spec"]["template"]["spec"]["containers"]
        if "corral" in c["image"]
    }
    assert images == {"ghcr.io/corral-dev/corral:0.1.0"}
    assert "ghcr.io/corral-dev/corral" in text


# Issue 18: accelerator add-ons run where the node does not bring its own.
@pytest.mark.parametrize("provisioner", ["karpenter", "auto-mode", "managed-node-group"])
def test_device_plugins_run_where_nodes_lack_them(provisioner: str) -> None:
    objs = build("eks")
    plugins = {
        name: _of(objs, "DaemonSet", name)["spec"]["template"]["spec"]
        for name in ("nvidia-device-plugin", "neuron-device-plugin", "aws-efa-k8s-device-plugin")
    }
    monitor = _of(objs, "DaemonSet", "neuron-monitor")["spec"]["template"]["spec"]
    own = provisioner != "auto-mode"  # Auto Mode installs device plugins itself
    for instance in load_price_table().instances:
        labels = _node_labels(instance, provisioner)
        vendor = ACCELERATORS[instance.accelerator].vendor
        assert _node_matches(plugins["nvidia-device-plugin"], labels) == (
            own and vendor == "nvidia"
        ), instance.name
        assert _node_matches(plugins["neuron-device-plugin"], labels) == (
            own and vendor == "neuron"
        ), instance.name
        assert _node_matches(plugins["aws-efa-k8s-device-plugin"], labels) == (
            own and instance.efa > 0
        ), instance.name
        assert _node_matches(monitor, labels) == (vendor == "neuron"), instance.name


@pytest.mark.parametrize("provisioner", ["karpenter", "managed-node-group"])
def test_bottlerocket_nodes_keep_their_built_in_nvidia_plugin(provisioner: str) -> None:
    objs = build("eks")
    plugin = _of(objs, "DaemonSet", "nvidia-device-plugin")["spec"]["template"]["spec"]
    p5 = next(i for i in load_price_table().instances if i.name == "p5.48xlarge")
    labels = {**_node_labels(p5, provisioner), "corral.dev/ami-family": "bottlerocket"}
    assert not _node_matches(plugin, labels)


def test_add_on_images_are_pinned_and_neuron_monitor_is_scraped() -> None:
    objs = build("eks")
    for obj in objs:
        if obj["kind"] not in ("DaemonSet", "Deployment"):
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            tag = container["image"].rsplit(":", 1)[-1]
            assert tag != "latest", obj["metadata"]["name"]
            assert "/" not in tag, obj["metadata"]["name"]  # a tag, not a bare repository
    monitor = _of(objs, "ServiceMonitor", "neuron-monitor")
    service = _of(objs, "Service", "neuron-monitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_the_neuron_scheduler_is_the_one_neuron_pods_name() -> None:
    from corral.control.render.common import NEURON_SCHEDULER

    objs = build("eks")
    config = yaml.safe_load(
        _of(objs, "ConfigMap", "neuron-scheduler-config")["data"]["config.yaml"]
    )
    assert [p["schedulerName"] for p in config["profiles"]] == [NEURON_SCHEDULER]
    (extender,) = config["extenders"]
    service = _of(objs, "Service", "k8s-neuron-scheduler")
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert extender["urlPrefix"] == f"http://{host}:{service['spec']['ports'][0]['port']}"
