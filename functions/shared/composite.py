"""The composite price's definition, in one place for the candles (`functions.shared.candles`)
and the read API's latest price (`price_table.reads`); docs/market-data.md states it for users.

The composite of a symbol at a tick is the median of the current prices of the venues whose
last tick is at most STALE_MS older than that tick; an even number of venues gives the exact
mean of the two middle prices. Why a median: with three or more fresh venues one bad feed
cannot move it outside the good venues' prices, it needs no weights or volume, and it is
exact on decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Context, Decimal

# A venue whose last tick is older than this at a tick's time is left out of the median there.
STALE_MS = 60_000
# The latest composite looks for venues among the symbol's newest LATEST_SCAN ticks.
LATEST_SCAN = 200
# Wide enough for any two stored numbers (38 digits each, exponents within DynamoDB's range):
# the sum and the half of two prices never round.
EXACT = Context(prec=400, Emin=-999_999, Emax=999_999)


def median(prices: Sequence[Decimal]) -> Decimal:
    """The middle price, or the exact mean of the two middle ones."""
    ordered = sorted(prices)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return EXACT.divide(EXACT.add(ordered[middle - 1], ordered[middle]), Decimal(2))
