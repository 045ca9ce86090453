"""The Ray Serve engine: model replicas on a Ray cluster, LLM-aware autoscaling, cold starts."""
