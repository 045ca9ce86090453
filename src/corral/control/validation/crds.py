"""CRD kinds checked against their openAPIV3Schema with jsonschema, strictly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from corral.kube.port import Manifest

SCHEMA_FILES = (
    "ray.io_rayservices.json",
    "karpenter.sh_nodepools.aws.json",
    "karpenter.sh_nodepools.core.json",
    "karpenter.k8s.aws_ec2nodeclasses.json",
    "monitoring.coreos.com_servicemonitors.json",
    "monitoring.coreos.com_podmonitors.json",
    "leaderworkerset.x-k8s.io_leaderworkersets.json",
    "eks.amazonaws.com_nodeclasses.json",
)
"""Packaged schemas (descriptions stripped) made from the upstream CRDs by ``compact_crd``; the
last two are encoded by hand where no CRD file was at hand or none is published (each file's
``source`` says from what)."""

AUTO_MODE_SCHEMA = "karpenter.sh_nodepools.core.json"
"""EKS Auto Mode runs its own NodePool CRD without the AWS label rules: check against core."""


def compact_crd(crd: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a CRD validation needs: group, kind and each served version's schema."""
    return {
        "group": crd["spec"]["group"],
        "kind": crd["spec"]["names"]["kind"],
        "versions": {
            v["name"]: _strip_descriptions(v["schema"]["openAPIV3Schema"])
            for v in crd["spec"]["versions"]
            if v.get("served", True)
        },
    }


def _strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_strip_descriptions(v) for v in node]
    return node


def to_jsonschema(node: Any, *, strict: bool, top: bool = True) -> Any:
    """Translate an OpenAPI v3 structural schema into JSON Schema draft 7.

    ``x-kubernetes-int-or-string`` becomes integer-or-string, ``nullable`` also admits null,
    ``metadata`` at the top becomes a plain object, and in strict mode objects with properties
    refuse unknown fields unless they preserve unknown fields.
    """
    if not isinstance(node, dict):
        return node
    out = {
        k: to_jsonschema(v, strict=strict, top=False) for k, v in node.items() if k != "properties"
    }
    if "properties" in node:
        props = {
            k: to_jsonschema(v, strict=strict, top=False) for k, v in node["properties"].items()
        }
        if top and "metadata" in props:
            props["metadata"] = {"type": "object"}
        out["properties"] = props
        preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
        if strict and not preserve and "additionalProperties" not in node:
            out["additionalProperties"] = False
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _compact(filename: str) -> dict[str, Any]:
    text = resources.files("corral.control").joinpath(f"data/crds/{filename}").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(filename: str, version: str) -> jsonschema.Draft7Validator:
    schema = to_jsonschema(_compact(filename)["versions"][version], strict=True)
    return jsonschema.Draft7Validator(schema)


def schema_file_for(obj: Manifest) -> str | None:
    """The packaged schema for the object's kind, or None when it is not a known CRD kind."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    if obj.get("kind") == "NodePool" and _auto_mode(obj):
        return AUTO_MODE_SCHEMA
    for filename in SCHEMA_FILES:
        crd = _compact(filename)
        if (crd["group"], crd["kind"]) == (group, obj.get("kind")) and version in crd["versions"]:
            return filename
    return None


def _auto_mode(obj: Manifest) -> bool:
    ref = obj.get("spec", {}).get("template", {}).get("spec", {}).get("nodeClassRef", {})
    return bool(ref.get("group") == "eks.amazonaws.com")


def known_group(api_version: str) -> bool:
    """True when Corral has schemas for this API group (so an unknown version is an error)."""
    group = api_version.rpartition("/")[0]
    return any(_compact(f)["group"] == group for f in SCHEMA_FILES)


def openapi_schema(obj: Manifest) -> dict[str, Any] | None:
    """The object's CRD schema as packaged (OpenAPI, with its CEL rules), or None if unknown."""
    filename = schema_file_for(obj)
    if filename is None:
        return None
    version = str(obj["apiVersion"]).rpartition("/")[2]
    schema: dict[str, Any] = _compact(filename)["versions"][version]
    return schema


def packaged_schemas() -> list[tuple[str, dict[str, Any]]]:
    """Every packaged schema as ``("<file> <version>", schema)``."""
    return [
        (f"{filename.removesuffix('.json')} {version}", schema)
        for filename in SCHEMA_FILES
        for version, schema in _compact(filename)["versions"].items()
    ]


def validate_custom(obj: Manifest) -> list[str]:
    """Problems with a CRD object, each as ``path: message``; empty when it is valid."""
    filename = schema_file_for(obj)
    if filename is None:
        versions = sorted({v for f in SCHEMA_FILES for v in _compact(f)["versions"]})
        return [
            f"(apiVersion): {obj.get('apiVersion')} {obj.get('kind')} is not a known version "
            f"(known versions of CRD groups: {', '.join(versions)})"
        ]
    version = str(obj["apiVersion"]).rpartition("/")[2]
    errors = sorted(_validator(filename, version).iter_errors(obj), key=lambda e: list(e.path))
    return [f"{_path(e.absolute_path)}: {e.message}" for e in errors]


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(root)"
