"""The local CPU engine: an OpenAI-compatible server process for a chat or an embedding model."""
