"""pandas DataFrames of rows (the optional `pandas` extra), indexed by a UTC DatetimeIndex.

`decimals=False` (the default) gives float64 price columns, which is what numpy/pandas
analysis expects; `decimals=True` keeps the exact `Decimal` objects (object dtype) for
code that must not round.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from price_client.models import Candle, Tick

if TYPE_CHECKING:
    import pandas

TICK_NUMBERS = ("price", "volume", "bid", "ask")
CANDLE_NUMBERS = ("open", "high", "low", "close", "volume")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("as_frame=True needs pandas: pip install 'price-client[pandas]'") from None
    return pandas


def _number(value: Decimal | None, decimals: bool) -> Any:
    if value is None:
        return None if decimals else float("nan")
    return value if decimals else float(value)


def ticks_frame(ticks: Iterable[Tick], decimals: bool = False) -> pandas.DataFrame:
    """One row per tick, index `time` (UTC); its `venue`; indicators as columns named as stored (sma_5, ...).

    Composite prices (`latest` without a venue) have no venue and add a `venues` column: how many
    venues each median used.
    """
    pd = _pandas()
    rows = list(ticks)
    names = sorted({name for tick in rows for name in tick.indicators})
    data: dict[str, list[Any]] = {
        "symbol": [t.symbol for t in rows], "key": [t.key for t in rows], "venue": [t.venue for t in rows],
        "exchange": [t.exchange for t in rows],
    }
    if any(t.is_composite for t in rows):
        data["venues"] = [t.venues for t in rows]
    for column in TICK_NUMBERS:
        data[column] = [_number(getattr(t, column), decimals) for t in rows]
    for name in names:
        data[name] = [_number(t.indicators.get(name), decimals) for t in rows]
    index = pd.to_datetime([t.time_ms for t in rows], unit="ms", utc=True).rename("time")
    frame = pd.DataFrame(data, index=index)
    if decimals:
        for column in (*TICK_NUMBERS, *names):
            frame[column] = frame[column].astype(object)
    return frame


def candles_frame(candles: Iterable[Candle], decimals: bool = False) -> pandas.DataFrame:
    """One row per candle, index `start` (UTC); columns open, high, low, close, volume, count, volume_count."""
    pd = _pandas()
    rows = list(candles)
    data: dict[str, list[Any]] = {column: [_number(getattr(c, column), decimals) for c in rows]
                                  for column in CANDLE_NUMBERS}
    data["count"] = [c.count for c in rows]
    data["volume_count"] = [c.volume_count for c in rows]
    index = pd.to_datetime([c.start_ms for c in rows], unit="ms", utc=True).rename("start")
    frame = pd.DataFrame(data, index=index)
    frame["count"] = frame["count"].astype("int64")
    frame["volume_count"] = frame["volume_count"].astype("int64")
    if decimals:
        for column in CANDLE_NUMBERS:
            frame[column] = frame[column].astype(object)
    return frame
