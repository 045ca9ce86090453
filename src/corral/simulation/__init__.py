"""Trace-driven simulation of a model deployment: its engine, autoscaler, nodes and costs."""
