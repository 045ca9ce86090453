"""Cross-object checks: every selector selects something, every reference resolves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.kube.port import Manifest

RUNTIME_POD_LABELS = {
    "RayService": {"ray.io/serve": "true", "ray.io/node-type": "*"},
    "LeaderWorkerSet": {
        "leaderworkerset.sigs.k8s.io/name": "*",
        "leaderworkerset.sigs.k8s.io/worker-index": "*",
    },
}
"""Labels controllers add to pods at run time (KubeRay marks serving pods), by owner kind."""

BUILT_IN_OBJECTS = frozenset(
    {"PriorityClass/system-node-critical", "PriorityClass/system-cluster-critical"}
)
"""Objects every Kubernetes cluster has (the API server creates both PriorityClasses)."""

WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}


@dataclass
class PodTemplate:
    """A pod template (or pod) and where it came from."""

    owner: str
    namespace: str
    labels: dict[str, str]
    spec: dict[str, Any]
    runtime_labels: dict[str, str] = field(default_factory=dict)

    def ports(self) -> set[str]:
        containers = self.spec.get("containers", []) + self.spec.get("initContainers", [])
        return {p["name"] for c in containers for p in c.get("ports", []) if "name" in p}


def selector_matches(
    selector: Mapping[str, Any], labels: Mapping[str, str], runtime: Mapping[str, str] | None = None
) -> bool:
    """Label-selector semantics (matchLabels and matchExpressions; a bare map is matchLabels)."""
    runtime = runtime or {}
    match_labels = selector.get("matchLabels", {}) if _is_full(selector) else selector
    for key, value in match_labels.items():
        if labels.get(key) != value and runtime.get(key) not in (value, "*"):
            return False
    for expr in selector.get("matchExpressions", []) if _is_full(selector) else []:
        present = expr["key"] in labels or expr["key"] in runtime
        value = labels.get(expr["key"])
        op = expr["operator"]
        if (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
        if (op == "In" and value not in expr.get("values", [])) or (
            op == "NotIn" and value in expr.get("values", [])
        ):
            return False
    return True


def _is_full(selector: Mapping[str, Any]) -> bool:
    return "matchLabels" in selector or "matchExpressions" in selector


def _name(obj: Manifest) -> str:
    meta = obj.get("metadata", {})
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')}/{ns}{meta.get('name')}"


def pod_templates(objs: Iterable[Manifest]) -> list[PodTemplate]:
    """Every pod template in the objects: workloads, pods and RayService head/worker groups."""
    found: list[PodTemplate] = []
    for obj in objs:
        kind, ns = obj.get("kind", ""), obj.get("metadata", {}).get("namespace", "default")
        templates: list[dict[str, Any]] = []
        if kind in WORKLOAD_KINDS:
            templates = [obj.get("spec", {}).get("template", {})]
        elif kind == "Pod":
            templates = [obj]
        elif kind == "LeaderWorkerSet":
            lws = obj.get("spec", {}).get("leaderWorkerTemplate", {})
            templates = [lws[k] for k in ("leaderTemplate", "workerTemplate") if k in lws]
        elif kind == "RayService":
            cluster = obj.get("spec", {}).get("rayClusterConfig", {})
            groups = [cluster.get("headGroupSpec", {}), *cluster.get("workerGroupSpecs", [])]
            templates = [g.get("template", {}) for g in groups]
        for tpl in templates:
            labels = tpl.get("metadata", {}).get("labels", {})
            runtime = RUNTIME_POD_LABELS.get(kind, {})
            found.append(PodTemplate(_name(obj), ns, labels, tpl.get("spec", {}), runtime))
    return found


def check_references(objs: list[Manifest], external: Iterable[str] = ()) -> list[str]:
    """Problems, each naming the object; ``external`` lists objects that exist outside the set,
    as ``Kind/namespace/name`` or ``Kind/name`` for cluster-scoped ones."""
    known = {_name(o) for o in objs} | set(external) | BUILT_IN_OBJECTS
    pods = pod_templates(objs)
    problems: list[str] = []
    for obj in objs:
        problems += _check_selectors(obj, objs, pods)
        if obj.get("kind") == "HorizontalPodAutoscaler":
            problems += _check_scale_target(obj, objs)
    for pod in pods:
        problems += _check_pod_refs(pod, known)
    problems += _check_nodes(objs, pods, known)
    return problems


def _pods_in(
    pods: list[PodTemplate], namespaces: Iterable[str], selector: Mapping[str, Any]
) -> list[PodTemplate]:
    spaces = set(namespaces)
    return [
        p
        for p in pods
        if p.namespace in spaces and selector_matches(selector, p.labels, p.runtime_labels)
    ]


def _monitor_namespaces(obj: Manifest) -> list[str]:
    ns_sel = obj.get("spec", {}).get("namespaceSelector", {})
    return list(ns_sel.get("matchNames") or [obj["metadata"].get("namespace", "default")])


def _check_selectors(obj: Manifest, objs: list[Manifest], pods: list[PodTemplate]) -> list[str]:
    kind = obj.get("kind")
    if kind == "Service":
        return _check_service(obj, pods)
    if kind in WORKLOAD_KINDS:
        spec = obj.get("spec", {})
        labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
        if "selector" in spec and not selector_matches(spec["selector"], labels):
            return [f"{_name(obj)}: selector does not match its own pod template labels"]
    if kind in ("PodDisruptionBudget", "NetworkPolicy"):
        return _check_pod_selector(obj, pods)
    if kind == "PodMonitor":
        return _check_podmonitor(obj, pods)
    if kind == "ServiceMonitor":
        return _check_servicemonitor(obj, objs)
    return []


def _check_scale_target(obj: Manifest, objs: list[Manifest]) -> list[str]:
    ref = obj.get("spec", {}).get("scaleTargetRef", {})
    ns = obj["metadata"].get("namespace", "default")
    wanted = f"{ref.get('kind')}/{ns}/{ref.get('name')}"
    targets = [o for o in objs if _name(o) == wanted]
    if not targets:
        return [f"{_name(obj)}: scaleTargetRef {wanted} is not rendered"]
    if targets[0].get("apiVersion") != ref.get("apiVersion"):
        return [
            f"{_name(obj)}: scaleTargetRef apiVersion {ref.get('apiVersion')} does not match "
            f"{wanted} ({targets[0].get('apiVersion')})"
        ]
    return []


def _check_service(obj: Manifest, pods: list[PodTemplate]) -> list[str]:
    spec, ns = obj.get("spec", {}), obj["metadata"].get("namespace", "default")
    if not spec.get("selector"):
        return []
    chosen = _pods_in(pods, [ns], spec["selector"])
    if not chosen:
        return [f"{_name(obj)}: selector {spec['selector']} matches no pod template in {ns}"]
    names = set().union(*(p.ports() for p in chosen))
    return [
        f"{_name(obj)}: targetPort {p['targetPort']!r} is not a container port of the selected pods"
        for p in spec.get("ports", [])
        if isinstance(p.get("targetPort"), str) and p["targetPort"] not in names
    ]


def _check_pod_selector(obj: Manifest, pods: list[PodTemplate]) -> list[str]:
    spec, ns = obj.get("spec", {}), obj["metadata"].get("namespace", "default")
    selector = spec.get("selector" if obj["kind"] == "PodDisruptionBudget" else "podSelector", {})
    if _pods_in(pods, [ns], selector):
        return []
    return [f"{_name(obj)}: selector {selector} matches no pod template in {ns}"]


def _check_podmonitor(obj: Manifest, pods: list[PodTemplate]) -> list[str]:
    spec = obj["spec"]
    chosen = _pods_in(pods, _monitor_namespaces(obj), spec.get("selector", {}))
    if not chosen:
        return [f"{_name(obj)}: selector {spec.get('selector')} matches no pod template"]
    names = set().union(*(p.ports() for p in chosen))
    wanted = [e.get("port") for e in spec.get("podMetricsEndpoints", []) if e.get("port")]
    return [
        f"{_name(obj)}: port {w!r} is not a container port of the selected pods"
        for w in wanted
        if w not in names
    ]


def _check_servicemonitor(obj: Manifest, objs: list[Manifest]) -> list[str]:
    spec = obj["spec"]
    spaces = set(_monitor_namespaces(obj))
    services = [
        o
        for o in objs
        if o.get("kind") == "Service"
        and o["metadata"].get("namespace", "default") in spaces
        and selector_matches(spec.get("selector", {}), o["metadata"].get("labels", {}))
    ]
    if not services:
        return [
            f"{_name(obj)}: selector {spec.get('selector')} matches no Service in {sorted(spaces)}"
        ]
    names = {p.get("name") for s in services for p in s["spec"].get("ports", [])}
    wanted = [e.get("port") for e in spec.get("endpoints", []) if e.get("port")]
    return [
        f"{_name(obj)}: port {w!r} is not a port of the selected Services"
        for w in wanted
        if w not in names
    ]


def _check_pod_refs(pod: PodTemplate, known: set[str]) -> list[str]:
    refs: list[str] = []
    spec = pod.spec
    if spec.get("serviceAccountName"):
        refs.append(f"ServiceAccount/{pod.namespace}/{spec['serviceAccountName']}")
    if spec.get("priorityClassName"):
        refs.append(f"PriorityClass/{spec['priorityClassName']}")
    for vol in spec.get("volumes", []):
        if "configMap" in vol:
            refs.append(f"ConfigMap/{pod.namespace}/{vol['configMap']['name']}")
        if "secret" in vol:
            refs.append(f"Secret/{pod.namespace}/{vol['secret']['secretName']}")
        if "persistentVolumeClaim" in vol:
            refs.append(
                f"PersistentVolumeClaim/{pod.namespace}/{vol['persistentVolumeClaim']['claimName']}"
            )
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        refs += _env_refs(container, pod.namespace)
    return [
        f"{pod.owner}: references {r}, which is neither rendered nor listed as external"
        for r in refs
        if r not in known
    ]


def _env_refs(container: Mapping[str, Any], ns: str) -> list[str]:
    refs = []
    for item in container.get("env", []):
        source = item.get("valueFrom", {})
        for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            if key in source and not source[key].get("optional"):
                refs.append(f"{kind}/{ns}/{source[key]['name']}")
    for item in container.get("envFrom", []):
        for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            if key in item and not item[key].get("optional"):
                refs.append(f"{kind}/{ns}/{item[key]['name']}")
    return refs


def _check_nodes(objs: list[Manifest], pods: list[PodTemplate], known: set[str]) -> list[str]:
    pools = {o["metadata"]["name"]: o for o in objs if o.get("kind") == "NodePool"}
    problems = []
    for pool in pools.values():
        ref = pool["spec"]["template"]["spec"].get("nodeClassRef", {})
        if f"{ref.get('kind')}/{ref.get('name')}" not in known:
            problems.append(
                f"{_name(pool)}: nodeClassRef {ref.get('kind')}/{ref.get('name')} is not rendered"
            )
    for pod in pods:
        wanted = pod.spec.get("nodeSelector", {}).get("karpenter.sh/nodepool")
        if wanted is None:
            continue
        if wanted not in pools:
            if f"NodePool/{wanted}" not in known:
                problems.append(
                    f"{pod.owner}: nodeSelector names NodePool {wanted}, which is not rendered"
                )
            continue
        taints = pools[wanted]["spec"]["template"]["spec"].get("taints", [])
        problems += [
            f"{pod.owner}: no toleration for taint {t['key']} of NodePool {wanted}"
            for t in taints
            if not _tolerated(t, pod.spec.get("tolerations", []))
        ]
    return problems


def _tolerated(taint: Mapping[str, Any], tolerations: list[Mapping[str, Any]]) -> bool:
    for tol in tolerations:
        key_ok = (
            tol.get("key") in (None, taint["key"])
            if tol.get("operator") == "Exists"
            else tol.get("key") == taint["key"] and tol.get("value") == taint.get("value")
        )
        if key_ok and tol.get("effect") in (None, "", taint["effect"]):
            return True
    return False
