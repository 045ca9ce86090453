"""The KubeClient port: apply, get, watch, cordon and evict, against a real API or a fake."""

from corral.kube.fake import FakeKube
from corral.kube.port import FIELD_MANAGER, KubeClient, Manifest, ObjectKey, WatchEvent

__all__ = ["FIELD_MANAGER", "FakeKube", "KubeClient", "Manifest", "ObjectKey", "WatchEvent"]
