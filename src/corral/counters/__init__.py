"""The Counters port: rate-limit and budget counters, in-process or in Redis."""
