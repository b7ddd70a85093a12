"""The demo's feed and read-back: its charts show their data and its table shows indicators."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from demo.demo import CANDLES, FEED, feed, read_back
from demo.price_data import load_series
from price_client import Tick


def test_monthly_btc_bars_make_daily_candles_with_the_bars_ohlc_and_volume() -> None:
    """One close per monthly bar made every 1d candle flat (open = high = low = close): the chart showed nothing."""
    day = 86_400_000
    candles: dict[int, list[Any]] = {}
    for row in feed():
        if row.symbol == "BTC-USD":
            candles.setdefault(row.event_ms // day, []).append(row)
    bars = load_series("BTC-USD")
    assert CANDLES["BTC-USD"] == "1d" and len(candles) == len(bars)
    for bar, rows in zip(bars, (candles[key] for key in sorted(candles)), strict=True):
        prices = [row.price for row in rows]
        assert (prices[0], max(prices), min(prices), prices[-1]) == (bar.open, bar.high, bar.low, bar.close)
        assert sum(row.volume for row in rows) == bar.volume


class _Client:
    """Answers as the price API does: a composite (no indicators) without a venue, the venue's tick with one."""

    def ticks(self, symbol: str) -> list[Tick]:
        return []

    def candles(self, symbol: str, interval: str) -> list[Any]:
        return []

    def latest(self, symbols: Any, *, venue: str | None = None) -> dict[str, Tick | None]:
        names = [symbols] if isinstance(symbols, str) else list(symbols)
        indicators = {"sma_5": Decimal("1.5")} if venue else {}
        return {name: Tick(name, 1, 1000, Decimal(2), venue or "", indicators=indicators, venue=venue,
                           venues=None if venue else 1) for name in names}


def test_the_latest_shown_is_each_symbols_venue_with_its_indicators() -> None:
    _, latest, _ = read_back(_Client())  # type: ignore[arg-type]
    for symbol, (_, exchange, _) in FEED.items():
        tick = latest[symbol]
        assert tick is not None and tick.venue == exchange and tick.sma_5 == Decimal("1.5")
