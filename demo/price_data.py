"""Real historical price series for the tests and the demo feed.

Source: the CSV files shipped inside the `backtesting` wheel on PyPI (backtesting.py 0.6.6,
`backtesting/test/BTCUSD.csv`: monthly BTC/USD OHLCV 2012-01..2024-12; `EURUSD.csv`: hourly
EUR/USD 2017-2018). They are read from the installed package, never copied into this
repository (the package is AGPL-3.0); nothing is downloaded at run time.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

SERIES = {"BTC-USD": "BTCUSD.csv", "EUR-USD": "EURUSD.csv"}
SOURCE_NOTE = "backtesting.py 0.6.6 (PyPI), backtesting/test/{BTCUSD,EURUSD}.csv"


@dataclass(frozen=True)
class Bar:
    event_ms: int
    close: Decimal
    volume: Decimal
    open: Decimal
    high: Decimal
    low: Decimal

    def ticks(self) -> list[tuple[int, Decimal]]:
        """The bar as four ticks a millisecond apart (open, high, low, close; high before low
        when the bar closed up, as a path through the bar would): a candle over them has four
        distinct roles, so a mix-up of open, high, low and close shows."""
        middle = (self.high, self.low) if self.close >= self.open else (self.low, self.high)
        return [(self.event_ms + i, price) for i, price in enumerate((self.open, *middle, self.close))]


def _data_dir() -> Path:
    spec = importlib.util.find_spec("backtesting")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'backtesting' package is not installed (pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "test"


def load_series(symbol: str, limit: int | None = None) -> list[Bar]:
    """Bars oldest first; `limit` keeps the most recent ones."""
    path = _data_dir() / SERIES[symbol]
    bars = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            moment = datetime.fromisoformat(row[""]).replace(tzinfo=UTC)
            bars.append(Bar(int(moment.timestamp()) * 1000, Decimal(row["Close"]), Decimal(row["Volume"] or "0"),
                            Decimal(row["Open"]), Decimal(row["High"]), Decimal(row["Low"])))
    return bars[-limit:] if limit else bars
