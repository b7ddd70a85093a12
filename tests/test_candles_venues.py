"""Candles per venue and the composite: each venue's 1m and 5m OHLCV equal pandas over that
venue's ticks, the composite equals a plain reading of its definition, one bad feed of three
moves no composite low or close, and late ticks and retries change nothing. On the in-memory
`CandleStore` (the DynamoDB store shares every line of maintenance but the requests)."""

from __future__ import annotations

import random
import statistics
import zlib
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from evidence.capacity import item_size
from functions.shared.candles import INTERVALS, Candle, bucket_start, combine
from functions.shared.composite import STALE_MS
from functions.shared.price_table.candles import (
    SymbolState,
    candle_from_item,
    candle_item,
    maintain_store,
    read_from_store,
    registry_item,
    state_from_item,
)
from functions.shared.price_table.keys import event_ms, sort_key
from tests.support.candles import RULES, MemoryStore, pandas_candles

SYMBOL = "BTC-USD"
T0 = 1_700_006_400_000  # 2023-11-15T00:00:00Z
EVERYTHING = (0, 10**15 - 1)
# venue: (mean spacing in ms, basis added to the common price)
VENUES = {"binance": (1_000, Decimal("0")), "coinbase": (3_000, Decimal("5.25")), "kraken": (7_000, Decimal("-3.5"))}
TickRow = tuple[int, Decimal, str, Decimal]  # key, price, venue, volume


def generated(seed: int, minutes: int = 12, half: str | None = None) -> list[TickRow]:
    """Three venues at their cadences around one random walk, each with its basis and a traded
    quantity on every tick; `half`: that venue sends half the price (a mis-set feed), starting
    10 s after the others so that the good venues are there first."""
    rng = random.Random(seed)
    walk, level = {}, Decimal("97000")
    for second in range(minutes * 60 + 1):
        level += Decimal(rng.randint(-300, 300)).scaleb(-2)
        walk[second] = level
    ticks: list[TickRow] = []
    for venue, (spacing, basis) in VENUES.items():
        moment = T0 + rng.randrange(spacing) + (10_000 if venue == half else 0)
        slot = zlib.crc32(venue.encode()) % 1000
        while moment < T0 + minutes * 60_000:
            price = walk[(moment - T0) // 1000] + basis
            if venue == half:
                price = (price / 2).quantize(Decimal("0.01"))
            ticks.append((sort_key(moment, slot), price, venue, Decimal(rng.randint(1, 5000)).scaleb(-4)))
            moment += int(spacing * rng.uniform(0.3, 1.7)) + 1
    return sorted(ticks)


def deliver(ticks: list[TickRow], seed: int | None) -> MemoryStore:
    """Store and maintain the ticks in batches of 12 as the stream would; with a seed, kraken
    lags (its ticks arrive up to 90 s late: late ticks), and some batches are applied twice."""
    rng = random.Random(seed)
    order = list(ticks)
    if seed is not None:
        order.sort(key=lambda tick: event_ms(tick[0]) + (rng.randrange(90_000) if tick[2] == "kraken" else 0))
    store = MemoryStore()
    for first in range(0, len(order), 12):
        batch = order[first:first + 12]
        for key, price, venue, volume in batch:
            store.store_tick(SYMBOL, key, price, venue=venue, volume=volume)
        keys = [tick[0] for tick in batch]
        maintain_store(store, SYMBOL, keys)
        if seed is not None and rng.random() < 0.2:
            maintain_store(store, SYMBOL, keys)  # a retried batch
    return store


def read(store: MemoryStore, interval: str, venue: str | None = None) -> list[Candle]:
    candles, following = read_from_store(store, SYMBOL, interval, *EVERYTHING, 5000, venue)
    assert following is None
    return candles


def full_rows(candles: list[Candle]) -> list[tuple[Any, ...]]:
    return [(c.start, str(c.open), str(c.high), str(c.low), str(c.close), c.count, c.volume, c.volume_count)
            for c in candles]


def pandas_volumes(ticks: list[TickRow], interval: str) -> dict[int, tuple[Decimal, int]]:
    """pandas resample(...).sum() and .count() of the ticks' volumes (object dtype: exact Decimals)."""
    index = pd.to_datetime([event_ms(key) for key, *_ in ticks], unit="ms", utc=True)
    volumes = pd.Series([volume for *_, volume in ticks], index=index, dtype=object)
    resampler = volumes.resample(RULES[interval], label="left", closed="left")
    sums, counts = resampler.sum(), resampler.count()
    epoch = pd.Timestamp(0, tz="UTC")
    return {(stamp - epoch) // pd.Timedelta(milliseconds=1): (Decimal(sums[stamp]), int(counts[stamp]))
            for stamp in sums.index if counts[stamp] > 0}


def reference_composite(ticks: list[TickRow], interval: str) -> list[tuple[Any, ...]]:
    """The composite's definition read plainly: walk every venue's ticks in key order, keep each
    venue's last (time, price); the value at a tick is the median of the prices of the venues
    last seen at most STALE_MS before it; a bucket's candle takes its ticks' values."""
    size = INTERVALS[interval]
    last: dict[str, tuple[int, Decimal]] = {}
    buckets: dict[int, list[tuple[Decimal, Decimal]]] = {}
    for key, price, venue, volume in sorted(ticks):
        moment = event_ms(key)
        last[venue] = (moment, price)
        value = statistics.median([seen_price for seen, seen_price in last.values() if moment - seen <= STALE_MS])
        buckets.setdefault(moment - moment % size, []).append((value, volume))
    return [(start, str(values[0][0]), str(max(v for v, _ in values)), str(min(v for v, _ in values)),
             str(values[-1][0]), len(values), sum((volume for _, volume in values), Decimal(0)), len(values))
            for start, values in sorted(buckets.items())]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_venues_1m_and_5m_candles_equal_pandas_over_that_venues_ticks(seed):
    ticks = generated(seed)
    store = deliver(ticks, seed)
    for venue in VENUES:
        own = [tick for tick in ticks if tick[2] == venue]
        for interval in ("1m", "5m"):
            volumes = pandas_volumes(own, interval)
            expected = [(*row, *volumes[row[0]]) for row in pandas_candles([(k, p) for k, p, *_ in own], interval)]
            assert full_rows(read(store, interval, venue)) == expected, (venue, interval)
    assert read(store, "1m", "bitstamp") == []  # a venue the symbol does not have
    assert store.list_symbols() == {SYMBOL: sorted(VENUES)}


@pytest.mark.parametrize("seed", [4, 5])
def test_the_composite_equals_its_definition_read_plainly(seed):
    ticks = generated(seed)
    store = deliver(ticks, seed)
    for interval in ("1m", "5m", "15m"):
        assert full_rows(read(store, interval)) == reference_composite(ticks, interval), interval


def test_one_venue_sending_half_the_price_moves_no_composite_low_or_close():
    ticks = generated(6, half="kraken")
    store = deliver(ticks, 6)
    good = [price for _, price, venue, _ in ticks if venue != "kraken"]
    floor = min(good)
    for interval in ("1m", "5m"):
        for candle in read(store, interval):
            assert candle.low >= floor and candle.close >= floor and candle.open >= floor, (interval, candle)
        kraken = read(store, interval, "kraken")
        assert kraken and max(candle.high for candle in kraken) < floor / Decimal("1.5")  # the bad feed is kept as sent


def test_a_composite_close_lies_within_the_venues_closes():
    ticks = generated(7)
    store = deliver(ticks, 7)
    per_venue = {venue: {candle.start: candle for candle in read(store, "1m", venue)} for venue in VENUES}
    composite = read(store, "1m")
    assert composite
    for candle in composite:
        closes = [per_venue[venue][candle.start].close for venue in VENUES if candle.start in per_venue[venue]]
        assert min(closes) <= candle.close <= max(closes), candle


def test_late_ticks_and_retries_give_the_same_candles_as_an_orderly_stream():
    ticks = generated(8)
    orderly, disorderly = deliver(ticks, None), deliver(ticks, 8)
    for interval in INTERVALS:
        for venue in (None, *VENUES):
            assert full_rows(read(disorderly, interval, venue)) == full_rows(read(orderly, interval, venue))


def test_a_late_tick_changes_the_next_minutes_composite_through_its_carry_in():
    """kraken's tick at 00:00:50 arrives after 00:01 closed: it was a fresh venue at 00:01:10."""
    store = MemoryStore()
    stream = [(sort_key(T0 + 40_000, 1), Decimal("100"), "binance"),
              (sort_key(T0 + 45_000, 2), Decimal("104"), "coinbase"),
              (sort_key(T0 + 70_000, 1), Decimal("101"), "binance"),
              (sort_key(T0 + 130_000, 1), Decimal("101"), "binance")]
    for key, price, venue in stream:
        store.store_tick(SYMBOL, key, price, venue=venue)
    maintain_store(store, SYMBOL, [key for key, *_ in stream])
    assert read(store, "1m")[1].open == Decimal("102.5")  # binance 101, coinbase 104
    late = sort_key(T0 + 50_000, 3)
    store.store_tick(SYMBOL, late, Decimal("90"), venue="kraken")
    assert maintain_store(store, SYMBOL, [late]).late_minutes == 2
    assert read(store, "1m")[1].open == Decimal("101")  # the median of 101, 104 and kraken's 90 (20 s old)
    everything = [(key, price, venue, Decimal(0)) for key, price, venue in stream] + [(late, Decimal("90"), "kraken",
                                                                                       Decimal(0))]
    expected = [row[:6] for row in reference_composite(everything, "1m")]
    assert [row[:6] for row in full_rows(read(store, "1m"))] == expected


def test_two_venues_give_the_midpoint_and_a_stale_venue_drops_out():
    store = MemoryStore()
    stream = [(sort_key(T0 + 1_000, 1), Decimal("100.10"), "binance"),
              (sort_key(T0 + 2_000, 2), Decimal("100.15"), "coinbase"),
              (sort_key(T0 + 70_000, 1), Decimal("100.20"), "binance")]  # coinbase is 68 s old by then
    for key, price, venue in stream:
        store.store_tick(SYMBOL, key, price, venue=venue)
    maintain_store(store, SYMBOL, [key for key, *_ in stream])
    first, second = read(store, "1m")
    assert (first.open, first.close) == (Decimal("100.10"), Decimal("100.125"))  # one venue, then the exact midpoint
    assert (second.open, second.count) == (Decimal("100.20"), 1)


def _three_venue_minute() -> Candle:
    ticks = generated(9, minutes=2)
    store = deliver(ticks, None)
    [candle] = [c for c in store.candles[(SYMBOL, "1m")].values() if c.start == T0]
    return candle


def test_a_three_venue_bucket_item_and_registry_fit_one_write_unit_and_round_trip():
    """Sizes (DynamoDB: attribute names + values; one write unit is 1 KB)."""
    candle = _three_venue_minute()
    item = candle_item(SYMBOL, "1m", replace(candle, expires=1_800_000_000))
    size = item_size(item)
    back = candle_from_item(item)
    assert back == candle and back.venues == candle.venues and len(back.venues) == 3
    prefixes = {name: combine([candle], bucket_start(T0, INTERVALS[name])) for name in ("5m", "15m", "1h", "4h", "1d")}
    state = SymbolState(T0 + 60_000, 3, prefixes, ("0123456789abcdef",) * 4, 2, T0, tuple(VENUES))
    registry = registry_item(SYMBOL, state)
    registry_size = item_size(registry)
    print(f"\n3-venue 1m item: {size} B; registry with 5 prefixes of 3 venues: {registry_size} B")
    assert size < 1024
    restored = state_from_item(registry)
    assert restored.venues == tuple(VENUES) and restored.prefixes["1d"] is not None
    assert restored.prefixes["1d"].venues == prefixes["1d"].venues
    assert registry_size < 2048


def test_old_blended_items_read_as_composite_only():
    old = {"series": {"S": "BTC-USD#1m"}, "sk": {"S": f"{T0:015d}"}, "ohlc": {"S": "1 2 0.5 1.5"}, "count": {"N": "4"}}
    candle = candle_from_item(old)
    assert candle.venues == () and candle.venue_candle(None) == candle and candle.venue_candle("binance") is None
    old_registry = {"series": {"S": "#symbols"}, "sk": {"S": "BTC-USD"}, "materialized_ms": {"N": str(T0)},
                    "version": {"N": "1"}, "prefix_1h": {"M": {"o": {"N": "1"}, "h": {"N": "2"}, "l": {"N": "1"},
                                                              "c": {"N": "2"}, "n": {"N": "3"}}}}
    state = state_from_item(old_registry)
    assert state.venues == () and state.prefixes["1h"] == Candle(T0, Decimal(1), Decimal(2), Decimal(1), Decimal(2), 3)
