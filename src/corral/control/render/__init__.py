"""Renderers: pure functions from a deployment spec to the Kubernetes manifests that run it."""
