"""Corral: a self-hosted, developer-centric generative-AI platform."""

__version__ = "0.1.0"
