"""Shared by the candle tests (no tests here): the pandas reference, an in-memory
`CandleStore`, and the tick sets hypothesis generates.

How pandas is made exact: pandas has no decimal dtype, and `resample().ohlc()` refuses an
object column of Decimals ("No numeric types to aggregate"). Open, high, low and close only
*select* prices, never compute new ones, so each distinct price is replaced by its rank
among the distinct prices (an order-preserving int64), `ohlc()` runs on the ranks exactly,
and the ranks are mapped back to the very Decimal objects. Each price must have a single
representation ("1.5" and "1.50" in one set would be ambiguous), which is asserted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

import pandas as pd
from hypothesis import settings
from hypothesis import strategies as st

from functions.shared.candles import INTERVALS, Candle, Tick
from functions.shared.price_table.candles import SymbolState
from functions.shared.price_table.keys import event_ms, key_range, sort_key

RULES = {"1m": "1min", "5m": "5min", "15m": "15min", "1h": "1h", "4h": "4h", "1d": "1D"}
DAY_MS = 86_400_000
MIDNIGHT = 1_700_006_400_000  # 2023-11-15T00:00:00Z
Row = tuple[int, str, str, str, str, int]


def share(fraction: float, least: int = 10) -> settings:
    """A share of the profile's examples (ci: 400), for tests whose examples run a whole
    stream; the profile still scales them (quick, ci, thorough)."""
    return settings(max_examples=max(least, int(settings.default.max_examples * fraction)))


def pandas_candles(ticks: Iterable[tuple[int, Decimal]], interval: str) -> list[Row]:
    """pandas' resample(rule, label="left", closed="left").ohlc() and .count() over the ticks
    ordered by key, as (start ms, open, high, low, close, count) with exact decimal strings."""
    ordered = sorted(ticks)
    if not ordered:
        return []
    spelling: dict[Decimal, str] = {}
    for _, price in ordered:
        assert spelling.setdefault(price, str(price)) == str(price), f"two spellings of {price}"
    values = sorted(spelling)
    rank = {value: index for index, value in enumerate(values)}
    index = pd.to_datetime([event_ms(key) for key, _ in ordered], unit="ms", utc=True)
    series = pd.Series([rank[price] for _, price in ordered], index=index, dtype="int64")
    resampler = series.resample(RULES[interval], label="left", closed="left")
    frame = resampler.ohlc()
    frame["count"] = resampler.count()
    frame = frame[frame["count"] > 0]
    epoch = pd.Timestamp(0, tz="UTC")
    return [((stamp - epoch) // pd.Timedelta(milliseconds=1),
             *(str(values[int(row[column])]) for column in ("open", "high", "low", "close")), int(row["count"]))
            for stamp, row in frame.iterrows()]


def python_candles(ticks: Iterable[tuple[int, Decimal]], interval: str) -> list[Row]:
    """The same reference in plain Python (checked equal to `pandas_candles` by a property
    test): cheap enough to check the answer after every step of a generated stream."""
    size = INTERVALS[interval]
    buckets: dict[int, list[Decimal]] = {}
    for key, price in sorted(ticks):
        moment = event_ms(key)
        buckets.setdefault(moment - moment % size, []).append(price)
    return [(start, str(prices[0]), str(max(prices)), str(min(prices)), str(prices[-1]), len(prices))
            for start, prices in sorted(buckets.items())]


def rows(candles: Iterable[Candle]) -> list[Row]:
    return [(c.start, str(c.open), str(c.high), str(c.low), str(c.close), c.count) for c in candles]


class MemoryStore:
    """A `CandleStore` in dictionaries with DynamoDB's semantics for what the candle code
    relies on: key order, the count-conditioned candle put and the registry's
    compare-and-set. `before_put_state` lets a test run another writer at the worst moment;
    `fail_after_writes` makes a step crash part-way (a Lambda timeout)."""

    def __init__(self) -> None:
        self.ticks: dict[str, dict[int, Decimal | None]] = {}
        self.expiries: dict[str, dict[int, int]] = {}  # expires_at (epoch s) of ticks stored with one
        self.venues: dict[str, dict[int, tuple[str, Decimal | None]]] = {}  # venue and volume of each tick
        self.candles: dict[tuple[str, str], dict[int, Candle]] = {}
        self.states: dict[str, SymbolState] = {}
        self.packs: dict[str, dict[int, tuple[Candle, ...]]] = {}
        self.candle_reads: list[str] = []  # the interval of every read_candles call
        self.reads = self.writes = 0
        self.before_put_state: Callable[[str], None] | None = None
        self.fail_after_writes: int | None = None
        self._lock = threading.Lock()

    def store_tick(self, symbol: str, key: int, price: Decimal | None, expires: int | None = None,
                   venue: str = "binance", volume: Decimal | None = None) -> None:
        self.ticks.setdefault(symbol, {})[key] = price
        self.venues.setdefault(symbol, {})[key] = (venue, volume)
        if expires is not None:
            self.expiries.setdefault(symbol, {})[key] = expires

    def expire(self, symbol: str, now_ms: int) -> int:
        """Delete the ticks whose `expires_at` has passed, as TTL does; how many went."""
        gone = [key for key, expires in self.expiries.get(symbol, {}).items() if expires * 1000 <= now_ms]
        for key in gone:
            self.ticks[symbol].pop(key, None)
            del self.expiries[symbol][key]
        return len(gone)

    def stored_ticks(self, symbol: str) -> list[tuple[int, Decimal]]:
        return sorted((key, price) for key, price in self.ticks.get(symbol, {}).items() if price is not None)

    def read_state(self, symbol: str, consistent: bool) -> SymbolState | None:
        self.reads += 1
        return self.states.get(symbol)

    def read_ticks(self, symbol: str, start_ms: int, end_ms: int, consistent: bool) -> list[Tick]:
        self.reads += 1
        low, high = key_range(start_ms, end_ms)
        expiries, venues = self.expiries.get(symbol, {}), self.venues.get(symbol, {})
        return [(key, price, *venues.get(key, ("binance", None)), expiries.get(key) if consistent else None)
                for key, price in self.stored_ticks(symbol) if low <= key <= high]

    def has_ticks(self, symbol: str, start_ms: int, end_ms: int) -> bool:
        low, high = key_range(start_ms, end_ms)
        self.reads += 1
        return any(low <= key <= high for key in self.ticks.get(symbol, {}))

    def list_states(self) -> list[tuple[str, SymbolState]]:
        self.reads += 1
        return sorted(self.states.items())

    def read_candles(self, symbol: str, interval: str, first_start: int, last_start: int,
                     limit: int | None = None) -> list[Candle]:
        self.reads += 1
        self.candle_reads.append(interval)
        series = self.candles.get((symbol, interval), {})
        found = [series[start] for start in sorted(series) if first_start <= start <= last_start]
        return found[:limit] if limit is not None else found

    def _write(self) -> None:
        with self._lock:
            self.writes += 1
            if self.fail_after_writes is not None:
                if self.fail_after_writes <= 0:
                    raise TimeoutError("the step was cut short")
                self.fail_after_writes -= 1

    def put_candles(self, symbol: str, candles: Sequence[tuple[str, Candle]]) -> int:
        refused = 0
        for interval, candle in candles:
            self._write()
            series = self.candles.setdefault((symbol, interval), {})
            if candle.start in series and series[candle.start].count > candle.count:
                refused += 1
            else:
                series[candle.start] = candle
        return refused

    def read_packs(self, symbol: str, first_hour: int, last_hour: int,
                   limit: int | None = None) -> list[tuple[int, list[Candle]]]:
        self.reads += 1
        series = self.packs.get(symbol, {})
        found = [(hour, list(series[hour])) for hour in sorted(series) if first_hour <= hour <= last_hour]
        return found[:limit] if limit is not None else found

    def put_packs(self, symbol: str, packs: Sequence[tuple[int, Sequence[Candle]]]) -> int:
        refused = 0
        for hour, minutes in packs:
            self._write()
            series = self.packs.setdefault(symbol, {})
            if hour in series and sum(c.count for c in series[hour]) > sum(c.count for c in minutes):
                refused += 1
            else:
                series[hour] = tuple(minutes)
        return refused

    def put_state(self, symbol: str, state: SymbolState, expected_version: int | None) -> bool:
        if self.before_put_state is not None:
            hook, self.before_put_state = self.before_put_state, None
            hook(symbol)
        self._write()
        current = self.states.get(symbol)
        if (current.version if current else None) != expected_version:
            return False
        self.states[symbol] = state
        return True

    def list_symbols(self) -> dict[str, list[str]]:
        self.reads += 1
        return {symbol: list(state.venues) for symbol, state in sorted(self.states.items())}


def _key(moment: int, slot: int) -> int:
    return sort_key(moment, slot)


@st.composite
def tick_sets(draw: st.DrawFn, max_ticks: int = 60) -> dict[int, Decimal]:
    """{sort key: price}: ticks spread over ~3 days around a midnight, clustered so that
    every interval has buckets with several ticks, with ties in one millisecond (keys
    differing by slot) and prices of one spelling each (two decimals)."""
    scale = st.sampled_from([(0, 1), (5, 60_000), (3, 300_000), (3, 900_000), (5, 3_600_000), (5, 14_400_000),
                             (2, DAY_MS)])
    count = draw(st.integers(1, max_ticks))
    ticks: dict[int, Decimal] = {}
    origin = MIDNIGHT - draw(st.sampled_from([0, 60_000, 3_600_000, 15 * 60_000 + 1]))
    for _ in range(count):
        moment = origin
        for steps, size in draw(st.lists(scale, min_size=1, max_size=3)):
            moment += draw(st.integers(0, steps)) * size
        moment += draw(st.sampled_from([0, 1, 999, 30_000, 59_999]))
        slot = draw(st.integers(0, 999))
        while _key(moment, slot) in ticks:  # a second exchange in the same millisecond: the next slot
            slot = (slot + 1) % 1000
        ticks[_key(moment, slot)] = Decimal(draw(st.integers(1, 500))).scaleb(-2)
    return ticks


@st.composite
def deliveries(draw: st.DrawFn, keys: Sequence[int]) -> list[tuple[list[int], bool, bool]]:
    """The keys in a shuffled storage order, cut into batches; each batch with possible
    duplicate keys, a retried flag and a deferred flag (its step fails; DLQ re-drive later)."""
    order = draw(st.permutations(sorted(keys)))
    batches = []
    position = 0
    while position < len(order):
        size = draw(st.integers(1, 12))
        batch = list(order[position:position + size])
        position += size
        batch += draw(st.lists(st.sampled_from(batch), max_size=2))  # the same key twice in tick_keys
        batches.append((batch, draw(st.booleans()), draw(st.integers(0, 9)) == 0))
    return batches


def all_intervals() -> list[str]:
    return list(INTERVALS)
