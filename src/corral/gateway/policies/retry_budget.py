"""Retry budget: retries may add at most a share of recent traffic (Finagle/Envoy style)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Bucket:
    second: int = -1
    requests: int = 0
    retries: int = 0


@dataclass(slots=True)
class RetryBudget:
    """Allows a retry while retries in the window stay under ``ratio`` × requests + a floor.

    Over the last ``window_s`` seconds: retries < ``min_per_second`` × ``window_s`` +
    ``ratio`` × first attempts. The floor lets a quiet model retry at all; the ratio caps the
    extra load a failing replica set can cause at ``ratio`` (0.2 = 20 %). Counts live in one
    bucket per second, so memory is fixed. Time is passed in (``clock.monotonic()``).
    """

    ratio: float = 0.2
    min_per_second: float = 1.0
    window_s: int = 10
    _buckets: list[_Bucket] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.ratio < 0 or self.min_per_second < 0:
            raise ValueError("ratio and min_per_second must be zero or more")
        if self.window_s < 1:
            raise ValueError("window_s must be at least 1")
        self._buckets = [_Bucket() for _ in range(self.window_s)]

    def record_request(self, now: float) -> None:
        """A first attempt (not a retry) was sent."""
        self._bucket(now).requests += 1

    def try_retry(self, now: float) -> bool:
        """True, and the retry is counted, when the budget allows one more retry now."""
        if not self.can_retry(now):
            return False
        self._bucket(now).retries += 1
        return True

    def can_retry(self, now: float) -> bool:
        """True when one more retry would stay within the budget (nothing is counted)."""
        requests, retries = self.totals(now)
        allowance = self.min_per_second * self.window_s + self.ratio * requests
        return retries + 1 <= math.floor(allowance + 1e-9)

    def totals(self, now: float) -> tuple[int, int]:
        """(first attempts, retries) in the window ending at ``now``."""
        current = math.floor(now)
        live = [b for b in self._buckets if 0 <= current - b.second < self.window_s]
        return sum(b.requests for b in live), sum(b.retries for b in live)

    def _bucket(self, now: float) -> _Bucket:
        second = math.floor(now)
        bucket = self._buckets[second % self.window_s]
        if bucket.second != second:
            bucket.second, bucket.requests, bucket.retries = second, 0, 0
        return bucket
