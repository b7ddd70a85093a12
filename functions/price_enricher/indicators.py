"""Indicator formulas (the contract in docs/candles-and-indicators.md), free of AWS.

Per symbol, over its items ordered by `timestamp`, the current item included:
  sma_<n>         mean of the last n prices
  ema_<n>         alpha = 2/(n+1), seeded with the symbol's first price
                  (pandas ewm(span=n, adjust=False).mean() over the whole series)
  volatility_<n>  sample standard deviation (ddof=1) of the last n log returns (n+1 prices)
  change_pct      (p_t - p_t-1) / p_t-1 * 100
A field whose history is too short is absent, never 0. So is a value DynamoDB cannot store
(`storable`): an extreme but valid price jump must not make its record fail on every delivery.

Cold start: nothing here imports `statistics` (with `fractions`, ~2.6 ms of every cold start
on Python 3.12) or defines a dataclass (see functions.shared.records). The mean and the
standard deviation are written out below,
bit for bit what `statistics.fmean` and `statistics.stdev` return (tests/test_enricher_statistics.py
compares them), and `Windows` is a `Record` (functions.shared.records).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from decimal import Context, Decimal, Inexact, Rounded

from functions.shared.records import Record


class Windows(Record):
    """The indicator windows (immutable: the settings' default instance is shared)."""

    __slots__ = ("sma", "ema", "volatility")

    sma: tuple[int, ...]
    ema: tuple[int, ...]
    volatility: tuple[int, ...]

    def __init__(self, sma: tuple[int, ...] = (5, 20), ema: tuple[int, ...] = (12, 26),
                 volatility: tuple[int, ...] = (20,)) -> None:
        self._init(sma, ema, volatility)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Sequence[int]]) -> Windows:
        return cls(**{key: tuple(sorted(int(n) for n in data.get(key, ()))) for key in ("sma", "ema", "volatility")})

    def as_mapping(self) -> dict[str, list[int]]:
        return {"sma": list(self.sma), "ema": list(self.ema), "volatility": list(self.volatility)}

    def names(self) -> tuple[str, ...]:
        """Every indicator these windows define (an item's indicator attributes)."""
        return (*(f"sma_{n}" for n in self.sma), *(f"ema_{n}" for n in self.ema),
                *(f"volatility_{n}" for n in self.volatility), "change_pct")

    @property
    def history_needed(self) -> int:
        """Earlier prices the widest window needs besides the current one."""
        return max([n - 1 for n in self.sma] + list(self.volatility) + [1])


def fmean(values: Sequence[float]) -> float:
    """statistics.fmean: the correctly rounded sum (fsum) divided by the count."""
    if not values:
        import statistics  # a rare path: its own StatisticsError

        return statistics.fmean(values)
    return math.fsum(values) / len(values)


def stdev(values: Sequence[float]) -> float:
    """statistics.stdev of floats (sample, ddof=1): the correctly rounded square root of the exact
    sample variance. Exact, as statistics computes it, but over integers rather than Fractions:
    every float is an integer over a power of two, so over the largest denominator all are integers.
    Fewer than two values, or an infinite or NaN one, take statistics' own path (and its error).
    """
    if len(values) < 2 or not all(math.isfinite(value) for value in values):
        import statistics  # a rare path: its own result or error

        return statistics.stdev(values)
    ratios = [value.as_integer_ratio() for value in values]
    scale = max(denominator for _, denominator in ratios)
    scaled = [numerator * (scale // denominator) for numerator, denominator in ratios]
    count, total = len(scaled), sum(scaled)
    # variance = (count * Σx² - (Σx)²) / (count * (count - 1)), with x = scaled / scale
    return _float_sqrt_of_frac(count * sum(x * x for x in scaled) - total * total,
                               count * (count - 1) * scale * scale)


# statistics' own correctly rounded square root of a fraction (CPython 3.11+, Lib/statistics.py):
# round-to-odd integer square root with enough bits, then one correctly rounded int/int division.
_SQRT_BIT_WIDTH = 2 * sys.float_info.mant_dig + 3


def _integer_sqrt_of_frac_rto(n: int, m: int) -> int:
    a = math.isqrt(n // m)
    return a | (a * a * m != n)


def _float_sqrt_of_frac(n: int, m: int) -> float:
    q = (n.bit_length() - m.bit_length() - _SQRT_BIT_WIDTH) // 2
    if q >= 0:
        numerator, denominator = _integer_sqrt_of_frac_rto(n, m << 2 * q) << q, 1
    else:
        numerator, denominator = _integer_sqrt_of_frac_rto(n << -2 * q, m), 1 << -q
    return numerator / denominator


def ema_step(previous: float, price: float, n: int) -> float:
    alpha = 2.0 / (n + 1)
    return alpha * price + (1.0 - alpha) * previous


def window_indicators(prices: Sequence[float], windows: Windows) -> dict[str, float]:
    """SMA, volatility and change from the last prices (oldest first, the current one last)."""
    result: dict[str, float] = {}
    current = prices[-1]
    for n in windows.sma:
        if len(prices) >= n:
            result[f"sma_{n}"] = fmean(prices[-n:])
    for n in windows.volatility:
        if len(prices) >= n + 1:
            tail = prices[-(n + 1):]
            returns = [math.log(b / a) for a, b in zip(tail, tail[1:], strict=False)]
            result[f"volatility_{n}"] = stdev(returns)
    if len(prices) >= 2:
        result["change_pct"] = (current - prices[-2]) / prices[-2] * 100.0
    return result


def to_decimal(value: float) -> Decimal:
    """Exact round-trip of the float (repr), so a stored EMA continues the chain without drift."""
    return Decimal(repr(value))


# DynamoDB's Number: up to 38 significant digits, magnitude 1E-130 to 9.99...E+125, or 0
# (boto3 checks the digits with its DYNAMODB_CONTEXT; its exponent limits are a little wider
# than the service's, so the range is checked here as DynamoDB documents it).
DYNAMODB_DIGITS = 38
DYNAMODB_MIN_EXPONENT = -130
DYNAMODB_MAX_EXPONENT = 125
_EXACT = Context(prec=DYNAMODB_DIGITS, traps=[Inexact, Rounded])


def storable(value: Decimal) -> bool:
    """Whether DynamoDB can store `value` as a Number exactly."""
    if not value.is_finite():
        return False
    if value.is_zero():
        return True
    if not DYNAMODB_MIN_EXPONENT <= value.adjusted() <= DYNAMODB_MAX_EXPONENT:
        return False
    try:
        _EXACT.create_decimal(value)
    except (Inexact, Rounded):
        return False
    return True


def to_stored(values: Mapping[str, float]) -> tuple[dict[str, Decimal], tuple[str, ...]]:
    """The values as Decimals, and the names left out because DynamoDB cannot store them.

    A value out of DynamoDB's range (a change of 1E+132 % after a jump from 1E-10 to 1E+120)
    is absent, like an undefined one: otherwise its put would fail on every delivery and the
    record would end in the dead-letter queue, taking its valid indicators with it.
    """
    stored: dict[str, Decimal] = {}
    left_out: list[str] = []
    for name, value in values.items():
        decimal = to_decimal(value) if math.isfinite(value) else Decimal("NaN")
        if storable(decimal):
            stored[name] = decimal
        else:
            left_out.append(name)
    return stored, tuple(sorted(left_out))
