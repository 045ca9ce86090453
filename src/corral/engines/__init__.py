"""Engines: everything that answers OpenAI-style requests (local CPU, vLLM, Ray Serve, providers, fakes)."""
