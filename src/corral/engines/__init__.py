"""Engines: what answers OpenAI-style requests (local CPU, vLLM, Ray Serve, providers, fakes)."""
