"""Indicators per series (symbol, venue): each venue's indicators come from its own stored ticks.

Three venues of one symbol tick at different cadences with a basis between them (coinbase
above binance, kraken below): interleaved, every other tick would count the basis as a return.
Each venue's stored indicators must equal pandas over that venue's ticks alone, through
batches, late records, retries, re-drives and the corrections they cause, and a venue's record
never touches another venue's items.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pandas as pd
import pytest

from functions.price_enricher.indicators import Windows
from functions.shared.price_table.items import is_indicator
from functions.shared.price_table.keys import first_slot, sort_key
from tests.support.enricher_support import Counter, Pipeline
from tests.test_enricher import pandas_indicators
from tests.test_enricher_corrections import MemoryTable

START = 1_700_000_000_000
BASIS = {"binance": 0.0, "coinbase": 15.0, "kraken": -25.0}
CADENCE_MS = {"binance": 1000, "coinbase": 2000, "kraken": 5000}   # and offsets apart, below
OFFSET_MS = {"binance": 0, "coinbase": 300, "kraken": 700}


def venue_ticks(seconds: int, seed: int = 5) -> list[tuple[int, str, Decimal]]:
    """(event ms, venue, price) of the three venues in time order: one random walk, each venue
    at its cadence, its basis added, and a little noise of its own."""
    generator = random.Random(seed)
    base = [97_000.0]
    for _ in range(seconds):
        base.append(base[-1] * math.exp(generator.gauss(0, 0.0005)))
    ticks = []
    for venue, cadence in CADENCE_MS.items():
        for t in range(OFFSET_MS[venue], seconds * 1000, cadence):
            price = base[t // 1000] + BASIS[venue] + generator.uniform(-0.5, 0.5)
            ticks.append((START + t, venue, Decimal(str(round(price, 2)))))
    return sorted(ticks)


def store(pipeline: Pipeline, symbol: str, tick: tuple[int, str, Decimal]) -> dict:
    event_ms, venue, price = tick
    return pipeline.record(pipeline.put(symbol, event_ms, price, venue, first_slot(venue)))


def enrich_in_batches(pipeline: Pipeline, records: list[dict], size: int) -> None:
    for start in range(0, len(records), size):
        assert pipeline.enrich(records[start:start + size]) == {"batchItemFailures": []}


def by_venue(pipeline: Pipeline, symbol: str) -> dict[str, list[dict]]:
    venues: dict[str, list[dict]] = {}
    for item in sorted(pipeline.items(symbol), key=lambda i: i["timestamp"]):
        venues.setdefault(item["exchange"], []).append(item)
    return venues


def assert_each_venue_matches_pandas(items: dict[str, list[dict]], ticks: list[tuple[int, str, Decimal]],
                                     windows: Windows) -> None:
    assert set(items) == {venue for _, venue, _ in ticks}
    for venue, stored in items.items():
        prices = [float(price) for _, v, price in ticks if v == venue]
        expected = pandas_indicators(prices, windows)
        assert [float(item["price"]) for item in stored] == prices
        for index, item in enumerate(stored):
            assert "enriched_at" in item, (venue, index)
            for column in (c for c in expected.columns if c != "price"):
                reference = expected[column].iloc[index]
                if pd.isna(reference):
                    assert column not in item, (venue, index, column)
                else:
                    assert float(item[column]) == pytest.approx(reference, rel=1e-9, abs=1e-12), (venue, index, column)


def indicators_of(items: list[dict]) -> list[dict]:
    return [{k: v for k, v in item.items() if is_indicator(k) or k in ("enriched_at", "corrected_at")}
            for item in items]


def test_each_venues_indicators_equal_pandas_over_its_own_ticks(pipeline):
    ticks = venue_ticks(90)
    enrich_in_batches(pipeline, [store(pipeline, "BTC-USD", tick) for tick in ticks], 12)
    items = by_venue(pipeline, "BTC-USD")
    assert_each_venue_matches_pandas(items, ticks, pipeline.settings.windows)


def test_announcements_carry_the_venue_as_a_message_attribute(pipeline):
    ticks = venue_ticks(12)
    records = [store(pipeline, "ETH-USD", tick) for tick in ticks]
    assert pipeline.enrich(records) == {"batchItemFailures": []}
    messages = pipeline.notifications()
    assert len(messages) == len(ticks)
    assert sorted(m["attributes"]["venue"]["Value"] for m in messages) == sorted(v for _, v, _ in ticks)
    for message in messages:
        assert message["attributes"]["venue"]["Type"] == "String"
        assert message["attributes"]["venue"]["Value"] == message["body"]["venue"] == message["body"]["exchange"]


def test_late_records_retries_redrives_and_corrections_stay_within_their_venue(pipeline):
    ticks = venue_ticks(80)
    late_binance = next(i for i, t in enumerate(ticks) if t[1] == "binance" and t[0] >= START + 30_000)
    late_kraken = next(i for i, t in enumerate(ticks) if t[1] == "kraken" and t[0] >= START + 20_000)
    redriven = next(i for i, t in enumerate(ticks) if t[1] == "coinbase" and t[0] >= START + 10_000)
    held = {late_binance, late_kraken, redriven}
    early = [store(pipeline, "SOL-USD", tick) for i, tick in enumerate(ticks) if i not in held]
    enrich_in_batches(pipeline, early, 12)

    # kraken's late record alone: kraken's later items are corrected, no other venue's item changes
    before = by_venue(pipeline, "SOL-USD")
    kraken_record = store(pipeline, "SOL-USD", ticks[late_kraken])
    assert pipeline.enrich([kraken_record]) == {"batchItemFailures": []}
    after = by_venue(pipeline, "SOL-USD")
    assert after["binance"] == before["binance"] and after["coinbase"] == before["coinbase"]
    kraken_key = sort_key(ticks[late_kraken][0], first_slot("kraken"))
    corrected = [item for item in after["kraken"] if item.get("corrected_by") == kraken_key]
    assert corrected and all(item["timestamp"] > kraken_key for item in corrected)

    # binance's late record with a retry of the same batch, then coinbase's tick re-driven last
    binance_batch = [store(pipeline, "SOL-USD", ticks[late_binance]), *early[-3:]]
    for _ in range(2):
        assert pipeline.enrich(binance_batch) == {"batchItemFailures": []}
    binance_key = sort_key(ticks[late_binance][0], first_slot("binance"))
    stored = by_venue(pipeline, "SOL-USD")
    assert {item["exchange"] for venue in stored.values() for item in venue
            if item.get("corrected_by") == binance_key} == {"binance"}
    assert stored["kraken"] == after["kraken"] and stored["coinbase"] == after["coinbase"]
    redrive = store(pipeline, "SOL-USD", ticks[redriven])
    assert pipeline.enrich([redrive]) == {"batchItemFailures": []}
    enrich_in_batches(pipeline, early[:24], 12)        # an enricher-DLQ re-drive of old batches
    assert_each_venue_matches_pandas(by_venue(pipeline, "SOL-USD"), ticks, pipeline.settings.windows)


def test_one_query_per_symbol_reads_every_venues_window(pipeline):
    """20 symbols x 3 venues, history enriched; a batch of 100 and one of 12 read one page of one
    Query per symbol, and each venue's newest tick has the SMA of its own prices."""
    symbols = [f"V{i}-USD" for i in range(20)]
    venues = tuple(CADENCE_MS)
    history = [pipeline.record(pipeline.put(symbol, START + t * 1000 + v, 100 + 10 * v + t % 7, venue,
                                            first_slot(venue)))
               for t in range(25) for symbol in symbols for v, venue in enumerate(venues)]
    enrich_in_batches(pipeline, history, 100)
    for size, offset in ((100, 100_000), (12, 200_000)):
        batch = [pipeline.record(pipeline.put(symbols[i % 20], START + offset + i * 10, 1000 + 10 * (i // 20 % 3) + i,
                                              venues[i // 20 % 3], first_slot(venues[i // 20 % 3])))
                 for i in range(size)]
        counter = Counter(pipeline.dynamodb)
        assert pipeline.enrich(batch) == {"batchItemFailures": []}
        assert counter.calls == {"Query": len({r["dynamodb"]["NewImage"]["symbol"]["S"] for r in batch}),
                                 "PutItem": size}
        for symbol in symbols[:3]:
            for venue, items in by_venue(pipeline, symbol).items():
                prices = [float(item["price"]) for item in items]
                assert float(items[-1]["sma_5"]) == pytest.approx(sum(prices[-5:]) / 5, rel=1e-12), (symbol, venue)
        pipeline.dynamodb.meta.events.unregister("before-send.dynamodb", counter._count)


# ---- the planner alone: a venue whose window lies far back, the stream behind ------------------

class CountingTable(MemoryTable):
    """A `MemoryTable` that counts its reads, by (direction, filtered venue or None)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[tuple[str, str | None], int] = {}

    def newest_first(self, symbol, newest, page_size, venue=None):
        for page in super().newest_first(symbol, newest, page_size, venue):
            self.reads[("newest", venue)] = self.reads.get(("newest", venue), 0) + 1
            yield page

    def oldest_first(self, symbol, after, page_sizes, max_items, venue=None):
        for page in super().oldest_first(symbol, after, page_sizes, max_items, venue):
            self.reads[("oldest", venue)] = self.reads.get(("oldest", venue), 0) + 1
            yield page


def sparse_series(count: int, every: int, seed: int = 9) -> list[tuple[float, str]]:
    """(price, venue): binance every tick but each `every`-th, which is kraken's, 30 below."""
    generator = random.Random(seed)
    price, ticks = 100.0, []
    for index in range(count):
        price = round(price * math.exp(generator.gauss(0, 0.01)), 6)
        ticks.append((round(price - 30, 6), "kraken") if index % every == 0 else (price, "binance"))
    return ticks


def assert_memory_matches_pandas(table: MemoryTable, ticks: list[tuple[float, str]]) -> None:
    for venue in {v for _, v in ticks}:
        keys = [k for k in table.keys if table.items[k]["exchange"]["S"] == venue]
        expected = pandas_indicators([p for p, v in ticks if v == venue], Windows())
        for index, key in enumerate(keys):
            item = table.items[key]
            for column in (c for c in expected.columns if c != "price"):
                reference = expected[column].iloc[index]
                if pd.isna(reference):
                    assert column not in item, (venue, index, column)
                else:
                    assert float(item[column]["N"]) == pytest.approx(reference, rel=1e-9), (venue, index, column)


def test_a_venue_whose_window_lies_far_back_is_read_alone_filtered():
    every = 60  # kraken's 21-tick window spans 1,260 items: beyond the shared read's bound
    ticks = sparse_series(every * 30 + 1, every)  # the last one is kraken's
    table = CountingTable()
    for index, (price, venue) in enumerate(ticks[:-2]):
        table.enrich([table.put(index, price, venue)])
    table.reads.clear()
    last = len(ticks) - 1
    plans = table.enrich_venues([table.put(last - 1, *ticks[last - 1]), table.put(last, *ticks[last])])
    assert set(plans) == {"binance", "kraken"}
    assert ("newest", "kraken") in table.reads and ("newest", "binance") not in table.reads
    assert_memory_matches_pandas(table, ticks)


def test_a_sparse_venues_late_record_walks_its_own_later_items_only():
    every = 4
    ticks = sparse_series(400, every)
    late = 100  # kraken's (index % every == 0)
    table = MemoryTable()
    for index, (price, venue) in enumerate(ticks):
        if index != late:
            table.enrich([table.put(index, price, venue)])
    before = {k: dict(v) for k, v in table.items.items()}
    plans = table.enrich_venues([table.put(late, *ticks[late])])
    assert set(plans) == {"kraken"} and plans["kraken"].stop in ("agreed", "end")
    changed = {k for k in table.items if k in before and table.items[k] != before[k]}
    assert changed and all(table.items[k]["exchange"]["S"] == "kraken" for k in changed)
    assert_memory_matches_pandas(table, ticks)


def test_with_the_stream_behind_each_venue_stops_at_its_first_item_not_yet_enriched():
    ticks = sparse_series(300, 3)
    table = MemoryTable()
    for index, (price, venue) in enumerate(ticks[:100]):
        table.enrich([table.put(index, price, venue)])
    pending = [table.put(index, price, venue) for index, (price, venue) in enumerate(ticks) if index >= 100]
    plans = table.enrich_venues(pending[:12])
    assert {venue: plan.stop for venue, plan in plans.items()} == {"binance": "unenriched", "kraken": "unenriched"}
    for start in range(12, len(pending), 12):
        table.enrich_venues(pending[start:start + 12])
    assert_memory_matches_pandas(table, ticks)


def test_a_venues_first_tick_lists_it_among_the_symbols_venues(moto_endpoint):
    """/v1/symbols reads the candle registry: a venue is listed from the batch that stores its
    first tick, not only once one of its minutes closes."""
    from functions.shared.price_table.candles import list_symbols

    pipeline = Pipeline(moto_endpoint, candles=True)
    enrich_in_batches(pipeline, [store(pipeline, "SOL-USD", (START, "binance", Decimal("150")))], 10)
    assert list_symbols(pipeline.dynamodb, pipeline.settings.candle_table_name) == {"SOL-USD": ["binance"]}
    enrich_in_batches(pipeline, [store(pipeline, "SOL-USD", (START + 1000, "kraken", Decimal("149.5")))], 10)
    assert list_symbols(pipeline.dynamodb, pipeline.settings.candle_table_name) == {"SOL-USD": ["binance", "kraken"]}
