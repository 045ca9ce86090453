"""Feasibility: whether rendered manifests can run on the cluster their NodePools would make."""
