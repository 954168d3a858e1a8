"""Per-principal rate limits: token buckets, answered with 429 and ``Retry-After``.

One bucket per principal id (and per client address for failed sign-ins, so that a
guesser cannot try keys at full speed). A bucket holds ``burst`` tokens and refills at
``rate`` per second. The table of buckets is bounded: the least recently used are
forgotten first, and a forgotten bucket comes back full. Someone rotating through
many identities gains at most one burst per identity, and only while the server
keeps its buckets.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Final

__all__ = ["RateLimiter"]

MAX_BUCKETS: Final = 100_000


class RateLimiter:
    """Token buckets keyed by a string; thread-safe."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket: 0.0 when allowed, else the seconds
        to wait before the bucket holds enough (what ``Retry-After`` says)."""
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        return wait

    def peek(self, key: str, cost: float = 1.0) -> float:
        """What :meth:`take` would answer, without spending anything."""
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        return 0.0 if tokens >= cost else (cost - tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """``Retry-After`` in whole seconds, at least 1."""
        return str(max(1, math.ceil(wait)))
