"""Observability: the metrics catalogue and the checks that keep dashboards true to it."""
