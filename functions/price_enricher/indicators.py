"""Indicator formulas (the data contract in the README), free of AWS.

Per symbol, over its items ordered by `timestamp`, the current item included:
  sma_<n>         mean of the last n prices
  ema_<n>         alpha = 2/(n+1), seeded with the symbol's first price
                  (pandas ewm(span=n, adjust=False).mean() over the whole series)
  volatility_<n>  sample standard deviation (ddof=1) of the last n log returns (n+1 prices)
  change_pct      (p_t - p_t-1) / p_t-1 * 100
A field whose history is too short is absent, never 0. So is a value DynamoDB cannot store
(`storable`): an extreme but valid price jump must not make its record fail on every delivery.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, Rounded


@dataclass(frozen=True)
class Windows:
    sma: tuple[int, ...] = (5, 20)
    ema: tuple[int, ...] = (12, 26)
    volatility: tuple[int, ...] = (20,)

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


def ema_step(previous: float, price: float, n: int) -> float:
    alpha = 2.0 / (n + 1)
    return alpha * price + (1.0 - alpha) * previous


def window_indicators(prices: Sequence[float], windows: Windows) -> dict[str, float]:
    """SMA, volatility and change from the last prices (oldest first, the current one last)."""
    result: dict[str, float] = {}
    current = prices[-1]
    for n in windows.sma:
        if len(prices) >= n:
            result[f"sma_{n}"] = statistics.fmean(prices[-n:])
    for n in windows.volatility:
        if len(prices) >= n + 1:
            tail = prices[-(n + 1):]
            returns = [math.log(b / a) for a, b in zip(tail, tail[1:], strict=False)]
            result[f"volatility_{n}"] = statistics.stdev(returns)
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
