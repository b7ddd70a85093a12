"""Rows of the price API as typed, immutable values: Decimal prices, int epoch ms, datetime helpers.

Prices arrive as decimal strings and become `Decimal`, never float, so a price compares
and sums exactly as the exchange sent it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from price_client.times import from_epoch_ms


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass(frozen=True)
class Tick:
    """One stored price update with the indicators the enricher computed for it, or a composite price.

    `key` is the table's sort key (time_ms x 1000 + a slot), unique per symbol: two ticks of
    the same millisecond from different exchanges differ in it, and SNS notifications carry
    it as `timestamp`, so de-duplicate on (symbol, key). `indicators` holds only what has
    been computed: a short history leaves a field absent, never 0, and a tick not enriched
    yet has none (`enriched_at_ms` is None). `venue` is the exchange it came from (lower case).

    `latest` without a venue answers a composite instead: `price` is the median of the latest
    prices of the venues that ticked within 60 s of the symbol's newest tick (`time_ms`, `key`);
    `venue` is None, `venues` says how many venues it used and `venue_prices` which, at what price.
    """

    symbol: str
    time_ms: int
    key: int
    price: Decimal
    exchange: str
    source: str | None = None
    received_at_ms: int | None = None
    volume: Decimal | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    indicators: dict[str, Decimal] = field(default_factory=dict, hash=False)
    enriched_at_ms: int | None = None
    venue: str | None = None
    venues: int | None = None
    venue_prices: dict[str, Decimal] = field(default_factory=dict, hash=False)

    @property
    def is_composite(self) -> bool:
        """True for `latest`'s composite price (several venues' median), False for a stored tick."""
        return self.venues is not None

    @property
    def time(self) -> datetime:
        """The tick's time as an aware UTC datetime."""
        return from_epoch_ms(self.time_ms)

    def indicator(self, name: str) -> Decimal | None:
        """An indicator by its stored name ("sma_5", "ema_26", "volatility_20", "change_pct"), or None."""
        return self.indicators.get(name)

    @property
    def sma_5(self) -> Decimal | None:
        return self.indicators.get("sma_5")

    @property
    def sma_20(self) -> Decimal | None:
        return self.indicators.get("sma_20")

    @property
    def ema_12(self) -> Decimal | None:
        return self.indicators.get("ema_12")

    @property
    def ema_26(self) -> Decimal | None:
        return self.indicators.get("ema_26")

    @property
    def volatility_20(self) -> Decimal | None:
        return self.indicators.get("volatility_20")

    @property
    def change_pct(self) -> Decimal | None:
        return self.indicators.get("change_pct")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tick:
        return cls(
            symbol=data["symbol"], time_ms=int(data["time"]), key=int(data["key"]), price=Decimal(data["price"]),
            exchange=data.get("exchange", ""), source=data.get("source"),
            received_at_ms=None if data.get("received_at") is None else int(data["received_at"]),
            volume=_decimal(data.get("volume")), bid=_decimal(data.get("bid")), ask=_decimal(data.get("ask")),
            indicators={name: Decimal(value) for name, value in (data.get("indicators") or {}).items()},
            enriched_at_ms=None if data.get("enriched_at") is None else int(data["enriched_at"]),
            venue=data.get("venue"), venues=None if data.get("venues") is None else int(data["venues"]),
            venue_prices={name: Decimal(value) for name, value in (data.get("venue_prices") or {}).items()},
        )


@dataclass(frozen=True)
class Candle:
    """OHLCV of one interval; `start_ms` is the interval's start, `count` its number of ticks.

    `venue`: the venue's own candle, or None for the composite's (OHLC of the median path of
    the fresh venues' prices; count and volume over every venue). `volume` is the exact sum of
    the ticks' traded quantities; `volume_count` how many ticks carried one (fewer than `count`:
    the sum is partial).
    """

    symbol: str
    interval: str
    start_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    count: int
    volume: Decimal = Decimal(0)
    volume_count: int = 0
    venue: str | None = None

    @property
    def start(self) -> datetime:
        """The interval's start as an aware UTC datetime."""
        return from_epoch_ms(self.start_ms)

    @classmethod
    def from_json(cls, symbol: str, interval: str, data: dict[str, Any], venue: str | None = None) -> Candle:
        return cls(symbol=symbol, interval=interval, start_ms=int(data["start"]), open=Decimal(data["open"]),
                   high=Decimal(data["high"]), low=Decimal(data["low"]), close=Decimal(data["close"]),
                   count=int(data["count"]), volume=Decimal(data.get("volume", 0)),
                   volume_count=int(data.get("volume_count", 0)), venue=venue)
