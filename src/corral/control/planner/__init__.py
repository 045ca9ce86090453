"""The capacity and cost planner: memory fit, instance choice, $ per 1M tokens, trace replay."""
