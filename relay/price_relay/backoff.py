"""Exponential backoff with full jitter, bounded.

Hand-written rather than taken from `backoff`/`tenacity`: it is one line of arithmetic,
and both reconnects and webhook retries need it inside their own asyncio loops (with
stop events), which those libraries' decorators do not fit.
"""

from __future__ import annotations

import random


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (0-based): uniform in
    [0, min(cap, base * 2**attempt)], so many clients retrying do not move in step."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0.0, ceiling)
