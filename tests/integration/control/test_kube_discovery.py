"""The Kubernetes model source through the real lightkube adapter, against kmock's emulator."""

from __future__ import annotations

from corral.control.discovery import KubeServiceSource
from corral.control.render.network import render_service
from corral.control.spec import parse_spec
from corral.discovery import DiscoveredModel
from support.kube_api import emulated_api, lightkube_on

RESOURCES = {
    "v1/services": ("Service", True),
    "discovery.k8s.io/v1/endpointslices": ("EndpointSlice", True),
}


async def test_a_deployed_service_becomes_a_model_at_its_in_cluster_url() -> None:
    spec = parse_spec(
        {
            "name": "llama",
            "model": {"source": "meta-llama/Llama-3.1-8B-Instruct", "served_name": "llama-8b"},
            "accelerator": {"type": "l4"},
        }
    )
    async with emulated_api(RESOURCES) as api, lightkube_on(api) as kube:
        source = KubeServiceSource(kube, ["corral-models"])
        assert await source.models() == []
        await kube.apply(render_service(spec))
        await kube.apply(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "llama-1",
                    "namespace": "corral-models",
                    "labels": {"kubernetes.io/service-name": "llama"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": True}}],
            }
        )
        assert await source.models() == [
            DiscoveredModel(
                "llama-8b",
                ("http://llama.corral-models.svc:8000/v1",),
                source="kubernetes",
                min_replicas=1,
                ready_replicas=1,
            )
        ]
