"""Validation of rendered manifests: built-in kinds, CRD schemas and cross-object references."""
