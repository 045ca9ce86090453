"""The KubeClient port: apply, get, watch, cordon and evict, against a real API or a fake."""
