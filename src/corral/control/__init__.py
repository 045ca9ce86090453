"""The control plane: deployment specs rendered to Kubernetes manifests, applied and watched."""
