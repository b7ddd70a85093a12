"""Candles on DynamoDB (moto's server): equal to pandas on the real series and on generated
streams, item formats, reads and their read-unit bound, concurrency guards, and the write
overhead measured on a day-shaped stream."""

from __future__ import annotations

import itertools
import json
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from demo.price_data import SOURCE_NOTE, load_series
from evidence.bench import RequestCounter
from evidence.candle_overhead import Tick, measure_overhead, tick_item
from evidence.capacity import item_size, read_units
from functions.price_api.service import candle_json
from functions.shared.candles import INTERVALS, MINUTE_MS, Candle, bucket_start
from functions.shared.price_table.candles import (
    MAX_DENSE_HOURS,
    DynamoCandleStore,
    SymbolState,
    candle_from_item,
    candle_item,
    dense_run,
    list_symbols,
    maintain,
    maintain_store,
    read_candles,
    registry_item,
    table_definition,
)
from functions.shared.price_table.keys import event_ms, sort_key
from functions.shared.price_table.keys import table_definition as tick_table_definition
from functions.shared.price_table.reads import MeteredClient, ReadLog
from tests.support.candles import MIDNIGHT, deliveries, pandas_candles, rows, share, tick_sets

CANDLES = "price-candles-test"
TICKS = "crypto-prices-candles-test"
EVERYTHING = (0, 10**15 - 1)
_tables = itertools.count()


class Tables:
    """A candle table and a prices table in moto, and the tick writes the webhook would make."""

    def __init__(self, client: Any, suffix: str = "") -> None:
        self.client, self.candles, self.ticks = client, CANDLES + suffix, TICKS + suffix
        client.create_table(**table_definition(self.candles))
        client.create_table(**tick_table_definition(self.ticks))

    def store(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), 25):
            pending = {self.ticks: [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]}
            while pending:
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    def store_prices(self, symbol: str, prices: dict[int, Decimal]) -> None:
        self.store([{"symbol": {"S": symbol}, "timestamp": {"N": str(key)}, "price": {"N": str(price)},
                     "exchange": {"S": "binance"}} for key, price in prices.items()])

    def stored_ticks(self, symbol: str) -> list[tuple[int, Decimal]]:
        """The symbol's ticks as stored (read back), prices only: the reference's input."""
        pages = self.client.get_paginator("query").paginate(
            TableName=self.ticks, KeyConditionExpression="symbol = :s", ExpressionAttributeValues={":s": {"S": symbol}})
        return [(int(item["timestamp"]["N"]), Decimal(item["price"]["N"])) for page in pages for item in page["Items"]
                if "N" in item.get("price", {}) and Decimal(item["price"]["N"]) > 0]

    def maintain(self, symbol: str, keys: list[int]) -> Any:
        return maintain(self.client, self.candles, self.ticks, symbol, keys)

    def read(self, symbol: str, interval: str, start: int = EVERYTHING[0], end: int = EVERYTHING[1],
             limit: int = 5000) -> tuple[list[Candle], int | None]:
        return read_candles(self.client, self.candles, self.ticks, symbol, interval, start, end, limit)

    def assert_matches_pandas(self, symbol: str) -> None:
        ticks = self.stored_ticks(symbol)
        for interval in INTERVALS:
            candles, following = self.read(symbol, interval)
            assert following is None
            assert rows(candles) == pandas_candles(ticks, interval), interval

    def drop(self) -> None:
        self.client.delete_table(TableName=self.candles)
        self.client.delete_table(TableName=self.ticks)


@pytest.fixture
def tables(dynamodb):
    return Tables(dynamodb)


@pytest.mark.parametrize("symbol, limit", [("BTC-USD", None), ("EUR-USD", 300)])
def test_real_series_in_batches_of_100_equal_pandas(tables, symbol, limit):
    """Real series (`SOURCE_NOTE`: the backtesting wheel's BTCUSD and EURUSD), in time order, in
    batches of 100; EUR/USD's last 300 hours here, all of it in test_candles.py (moto is slow)."""
    assert "backtesting" in SOURCE_NOTE
    bars = load_series(symbol, limit)
    keys = [sort_key(bar.event_ms, 0) for bar in bars]
    for start in range(0, len(bars), 100):
        batch = zip(keys[start:start + 100], bars[start:start + 100], strict=True)
        tables.store_prices(symbol, {key: bar.close for key, bar in batch})
        tables.maintain(symbol, keys[start:start + 100])
    tables.assert_matches_pandas(symbol)
    day_counts = [candle.count for candle in tables.read(symbol, "1d")[0]]
    assert sum(day_counts) == len(bars)


@share(0.0125, least=4)  # ~100 requests per example over HTTP; the in-memory twin runs 100 examples
@given(tick_sets(max_ticks=40), st.data())
def test_generated_streams_equal_pandas_on_dynamodb(dynamodb, ticks, data):
    """Shuffled storage order (late ticks), duplicate keys, retried and DLQ-deferred batches."""
    tables = Tables(dynamodb, f"-{next(_tables)}")  # moto's Query walks a whole table: keep them small
    prices = dict(ticks)
    deferred = []
    for batch, retried, fails in data.draw(deliveries(list(prices))):
        tables.store_prices("ETH-USD", {key: prices[key] for key in set(batch)})
        if fails:
            deferred.append(batch)
            continue
        tables.maintain("ETH-USD", batch)
        if retried:
            tables.maintain("ETH-USD", batch)
    for batch in deferred:
        tables.maintain("ETH-USD", batch)
    tables.assert_matches_pandas("ETH-USD")
    tables.drop()


def test_item_formats_key_schema_and_sizes():
    candle = Candle(MIDNIGHT, Decimal("37000.123456789"), Decimal("37100"), Decimal("36900.5"),
                    Decimal("1E-7"), 1234)
    item = candle_item("BTC-USD", "4h", candle)
    assert item["series"] == {"S": "BTC-USD#4h"} and item["sk"] == {"S": "001700006400000"}
    assert item["ohlc"] == {"S": "37000.123456789 37100 36900.5 1E-7"} and item["count"] == {"N": "1234"}
    assert set(item) == {"series", "sk", "ohlc", "count"} and candle_from_item(item) == candle  # exact round trip
    widest = Candle(MIDNIGHT, Decimal("1" * 38), Decimal("9" * 38), Decimal("0." + "1" * 37), Decimal("-1E-130"), 10**9)
    assert candle_from_item(candle_item("BTC-USDT", "15m", widest)) == widest
    assert item_size(candle_item("BTC-USDT", "15m", widest)) < 1024  # one write unit
    first_format = {"series": item["series"], "sk": item["sk"], "start": {"N": str(MIDNIGHT)},
                    "open": {"N": "37000.123456789"}, "high": {"N": "37100"}, "low": {"N": "36900.5"},
                    "close": {"N": "1E-7"}, "count": {"N": "1234"}}
    assert candle_from_item(first_format) == candle  # items written before the format change still read
    full = {name: Candle(MIDNIGHT, Decimal("1" * 38), Decimal("9" * 38), Decimal("0." + "1" * 37),
                         Decimal("123456789.123456789"), 10**9) for name in ("5m", "15m", "1h", "4h", "1d")}
    registry = registry_item("BTC-USDT", SymbolState(MIDNIGHT, 7, full, ("0123456789abcdef",) * 4))
    assert registry["series"] == {"S": "#symbols"} and registry["sk"] == {"S": "BTC-USDT"}
    assert registry["materialized_ms"] == {"N": str(MIDNIGHT)} and item_size(registry) < 1024  # one write unit
    assert table_definition("price-candles-dev")["KeySchema"] == [
        {"AttributeName": "series", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert "StreamSpecification" not in table_definition("x")


def test_string_order_of_sort_keys_is_time_order():
    starts = [0, 59_999, 60_000, MIDNIGHT, 253_402_300_740_000]
    assert sorted(starts, key=lambda start: candle_item("A-B", "1m", Candle(start, *(Decimal(1),) * 4, 1))["sk"]["S"]) \
        == starts


def test_reads_page_include_the_forming_interval_and_list_symbols(tables):
    base = MIDNIGHT + 30 * MINUTE_MS
    prices = {sort_key(base + i * 20_000, i % 3): Decimal(100 + i).scaleb(-1) for i in range(30)}  # 10 minutes
    keys = sorted(prices)
    tables.store_prices("SOL-USD", prices)
    tables.maintain("SOL-USD", keys[:20])  # W = 00:36; the later ticks are stored but not yet maintained
    expected = pandas_candles(tables.stored_ticks("SOL-USD"), "1m")
    assert len(expected) == 10
    got, position, calls = [], 0, 0
    while True:
        page, following = tables.read("SOL-USD", "1m", position, EVERYTHING[1], limit=3)
        got += rows(page)
        calls += 1
        if following is None:
            break
        position = following
    assert got == expected and calls == 4
    forming, following = tables.read("SOL-USD", "1h", MIDNIGHT, MIDNIGHT + 1)  # only the forming hour: W inside it
    assert following is None and rows(forming) == pandas_candles(tables.stored_ticks("SOL-USD"), "1h")
    assert tables.read("NONE-USD", "1d") == ([], None)
    tables.maintain("ADA-USD", [])  # an empty batch registers nothing
    tables.store_prices("ADA-USD", {sort_key(MIDNIGHT, 0): Decimal("0.25")})
    tables.maintain("ADA-USD", [sort_key(MIDNIGHT, 0)])
    assert list(list_symbols(tables.client, tables.candles)) == ["ADA-USD", "SOL-USD"]


def test_items_that_are_not_prices_are_left_out(tables):
    good = {sort_key(MIDNIGHT + i * 1000, 0): Decimal(f"{i + 1}.5") for i in range(3)}
    tables.store_prices("DOT-USD", good)
    bad = [{"symbol": {"S": "DOT-USD"}, "timestamp": {"N": str(sort_key(MIDNIGHT + 500, 1))}, "price": {"S": "n/a"}},
           {"symbol": {"S": "DOT-USD"}, "timestamp": {"N": str(sort_key(MIDNIGHT + 600, 1))}, "price": {"N": "-1"}},
           {"symbol": {"S": "DOT-USD"}, "timestamp": {"N": str(sort_key(MIDNIGHT + 700, 1))}}]
    tables.store(bad)
    late = sort_key(MIDNIGHT + 61_000, 0)
    tables.store_prices("DOT-USD", {late: Decimal("9")})
    tables.maintain("DOT-USD", sorted(good) + [int(item["timestamp"]["N"]) for item in bad] + [late])
    assert rows(tables.read("DOT-USD", "1m")[0])[0] == (MIDNIGHT, "1.5", "3.5", "1.5", "3.5", 3)


def test_counts_are_the_requests_really_sent_and_a_redelivery_writes_nothing(tables):
    counter = RequestCounter(tables.client)
    keys = [sort_key(MIDNIGHT - 30_000, 0), sort_key(MIDNIGHT + 1_000, 0)]
    tables.store_prices("XRP-USD", {key: Decimal("0.5") for key in keys})
    counter.calls.clear()
    first = tables.maintain("XRP-USD", keys)
    assert first.read_requests == counter.calls.get("GetItem", 0) + counter.calls.get("Query", 0)
    assert first.write_requests == counter.calls.get("PutItem", 0) == first.candles_written + first.packs_written + 1
    assert first.candles_written == 6  # the minute 23:59, and 5m..1d all close at midnight
    assert first.packs_written == 1  # and the hour 23:00-24:00 is packed
    again = tables.maintain("XRP-USD", keys[::-1])
    assert again.duplicate_batch and (again.read_requests, again.write_requests) == (1, 0)


def test_a_candle_from_fewer_ticks_never_replaces_one_from_more(tables):
    store = DynamoCandleStore(tables.client, tables.candles, tables.ticks)
    newer = Candle(MIDNIGHT, Decimal("1"), Decimal("3"), Decimal("1"), Decimal("2"), 3)
    older = Candle(MIDNIGHT, Decimal("1"), Decimal("1"), Decimal("1"), Decimal("1"), 1)
    assert store.put_candles("LTC-USD", [("1m", newer)]) == 0
    assert store.put_candles("LTC-USD", [("1m", older)]) == 1
    assert store.read_candles("LTC-USD", "1m", MIDNIGHT, MIDNIGHT) == [newer]


def test_a_drain_between_the_live_steps_writes_and_its_registry_update(tables):
    """The compare-and-set fails for the live step, which redoes its work on the new state."""
    live = [sort_key(MIDNIGHT + 65_000, 0), sort_key(MIDNIGHT + 125_000, 0)]
    drained = [sort_key(MIDNIGHT + 10_000, 0)]
    tables.store_prices("BNB-USD", {drained[0]: Decimal("7"), live[0]: Decimal("8"), live[1]: Decimal("9")})

    class Interleaved(DynamoCandleStore):
        armed = True

        def put_state(self, symbol, state, expected_version):
            if self.armed:
                self.armed = False
                maintain(self.client, self.candle_table, self.tick_table, symbol, drained)
            return super().put_state(symbol, state, expected_version)

    tables.store_prices("BNB-USD", {sort_key(MIDNIGHT + 61_000, 1): Decimal("6")})
    tables.maintain("BNB-USD", [sort_key(MIDNIGHT + 61_000, 1)])  # registers W = 00:01; 00:00:10 comes late
    writes = maintain_store(Interleaved(tables.client, tables.candles, tables.ticks), "BNB-USD", live)
    assert writes.conflicts == 1
    tables.assert_matches_pandas("BNB-USD")


def realistic(symbol: str, key: int, price: Decimal, expires: str | None = None) -> dict[str, Any]:
    """A tick as the webhook stores it; with `expires` (a retention), its `expires_at`, which the
    1m candles then keep as `x`: the read bound must hold with those bytes too."""
    item = tick_item(Tick(symbol, key, price))
    return item if expires is None else {**item, "expires_at": {"N": expires}}


@pytest.mark.parametrize("expires", [None, "1800000000"])
def test_read_units_stay_within_the_bound(tables, expires):
    """units <= (bytes returned + bytes of the forming interval's ticks) / 4 KB + 2, for every
    interval, priced from the items each request returned (moto does not bill capacity).
    "Forming": every bucket at or after the one holding W, which the read computes from ticks."""
    rng = random.Random(5)
    start = MIDNIGHT - 2 * 86_400_000
    moments = sorted(start + rng.randrange(2 * 86_400_000 + 30 * MINUTE_MS) for _ in range(400))
    keys = [sort_key(moment, 0) for moment in moments]
    items = [realistic("BTC-USD", key, Decimal(rng.randrange(10_000, 20_000)), expires) for key in keys]
    for first in range(0, len(keys), 100):
        tables.store(items[first:first + 100])
        tables.maintain("BTC-USD", keys[first:first + 100])
    later = [realistic("BTC-USD", keys[-1] + 60_000_000 + i, Decimal("15000")) for i in range(3)]
    tables.store(later)  # stored, not yet maintained: after W
    registry = tables.client.get_item(TableName=tables.candles, Key={"series": {"S": "#symbols"},
                                                                     "sk": {"S": "BTC-USD"}})["Item"]
    watermark = int(registry["materialized_ms"]["N"])
    log = ReadLog()
    metered = MeteredClient(tables.client, log)
    margins = {}
    for interval, size in INTERVALS.items():
        forming = bucket_start(watermark, size)
        for low, high in [EVERYTHING, (MIDNIGHT, MIDNIGHT + 86_400_000), (forming, EVERYTHING[1]), (start, forming)]:
            log.pages.clear()
            candles, _ = read_candles(metered, tables.candles, tables.ticks, "BTC-USD", interval, low, high, 5000)
            assert candles
            # What the API answers for them (JSON, as `candles_route` renders each candle).
            returned = len(json.dumps([candle_json(candle) for candle in candles], separators=(",", ":")))
            forming_ticks = sum(item_size(item) for item in items + later
                                if low <= bucket_start(event_ms(int(item["timestamp"]["N"])), size) < high
                                and event_ms(int(item["timestamp"]["N"])) >= forming)
            units = sum(read_units(sum(item_size(item) for item in page.items), page.consistent)
                        for page in log.pages)
            bound = (returned + forming_ticks) / 4096 + 2
            # registry, stored candles (1m over 3+ hours: packs, then the hour in progress), ticks
            assert len(log.pages) <= (4 if interval == "1m" else 3) and units <= bound, (interval, low, high, units,
                                                                                         bound)
            margins[interval, low, high] = round(bound - units, 2)
    assert min(margins.values()) >= 0


@pytest.mark.parametrize("expires", [None, "1800000000"])
def test_1m_reads_keep_the_bound_for_dense_and_sparse_symbols_and_use_packs_when_dense(tables, expires):
    """The pack plan's rule (`_stored_minutes`): ranges, limits and densities from a tick
    every 15 s to one every 25 minutes, over 7 hours; each answer equal to the stored ticks'
    candles, each request within the bound, and the dense symbol's long ranges from packs."""
    rng = random.Random(3)
    start, end = MIDNIGHT - 6 * 3_600_000, MIDNIGHT + 1_800_000
    items: dict[str, list[dict[str, Any]]] = {}
    for symbol, spacing in (("DENSE-USD", 15_000), ("SOME-USD", 90_000), ("RARE-USD", 1_500_000)):
        moment, items[symbol] = start, []
        while moment < end:
            price = Decimal(rng.randrange(10_000, 99_999)).scaleb(-2)
            items[symbol].append(realistic(symbol, sort_key(int(moment), 0), price, expires))
            moment += spacing * rng.uniform(0.5, 1.5)
    # As the stream delivers them: all symbols in time order, batches of 100, a step per symbol.
    stream = sorted((item for stored in items.values() for item in stored),
                    key=lambda item: int(item["timestamp"]["N"]))
    watermarks: dict[str, int] = {}
    for first in range(0, len(stream), 100):
        batch = stream[first:first + 100]
        tables.store(batch)
        for symbol in {item["symbol"]["S"] for item in batch}:
            keys = [int(item["timestamp"]["N"]) for item in batch if item["symbol"]["S"] == symbol]
            watermarks[symbol] = tables.maintain(symbol, keys).watermark
    log = ReadLog()
    metered = MeteredClient(tables.client, log)
    packed = []
    for symbol, stored in items.items():
        ticks = [(int(item["timestamp"]["N"]), Decimal(item["price"]["N"])) for item in stored]
        for _ in range(40):
            low = start + rng.randrange(end - start)
            high = low + rng.choice([60_000, 3_600_000, 5 * 3_600_000, 8 * 3_600_000])
            limit = rng.choice([1, 10, 240, 300, 5000])
            log.pages.clear()
            candles, _ = read_candles(metered, tables.candles, tables.ticks, symbol, "1m", low, high, limit)
            expected = [row for row in pandas_candles(ticks, "1m") if low <= row[0] < high][:limit]
            assert rows(candles) == expected
            returned = len(json.dumps([candle_json(candle) for candle in candles], separators=(",", ":")))
            forming_ticks = sum(item_size(item) for item in stored if event_ms(int(item["timestamp"]["N"])) >=
                                max(low, watermarks[symbol]) and event_ms(int(item["timestamp"]["N"])) < high)
            units = sum(read_units(sum(item_size(item) for item in page.items), page.consistent) for page in log.pages)
            # A bucket item names its venues (one item holds every series): those bytes are the
            # price of reading one series out of several, not part of the answer.
            names = sum(len("venues") + len(item["venues"]["S"]) for page in log.pages for item in page.items
                        if "venues" in item)
            assert units <= (returned + forming_ticks + names) / 4096 + 2, (symbol, low, high, limit, units)
            if any(item.get("series", {}).get("S", "").endswith("#1m/1h") for page in log.pages for item in page.items):
                packed.append(symbol)
    assert "DENSE-USD" in packed and "RARE-USD" not in packed


def test_1m_reads_of_long_prices_keep_the_bound_when_the_limit_cuts_into_packs(tables):
    """38 significant digits (the most the webhook accepts) on a dense symbol, ranges that open
    up to 59 minutes before a whole hour, limits that end inside the packed hours: a pack
    read but cut by the limit would be paid for in full, prices included, and not returned."""
    symbol, start = "LONG-USD", MIDNIGHT - 8 * 3_600_000
    base = Decimal("1234567890123456789.012345678901234567")
    stored = [realistic(symbol, sort_key(start + n * 30_000, 0), base + n) for n in range(8 * 120)]
    for first in range(0, len(stored), 100):
        batch = stored[first:first + 100]
        tables.store(batch)
        watermark = tables.maintain(symbol, [int(item["timestamp"]["N"]) for item in batch]).watermark
    ticks = [(int(item["timestamp"]["N"]), Decimal(item["price"]["N"])) for item in stored]
    log = ReadLog()
    metered = MeteredClient(tables.client, log)
    packed = 0
    for head in (0, 1, 30, 59):
        low = start + 3_600_000 - head * MINUTE_MS
        for limit in (240, 241, 250, 299, 300, 301, 359, 360, 361, 419, 5000):
            log.pages.clear()
            candles, _ = read_candles(metered, tables.candles, tables.ticks, symbol, "1m", low, watermark, limit)
            assert rows(candles) == [row for row in pandas_candles(ticks, "1m") if low <= row[0] < watermark][:limit]
            returned = len(json.dumps([candle_json(candle) for candle in candles], separators=(",", ":")))
            units = sum(read_units(sum(item_size(item) for item in page.items), page.consistent) for page in log.pages)
            assert units <= returned / 4096 + 2, (head, limit, units, returned / 4096 + 2)
            packed += any(item.get("series", {}).get("S", "").endswith("#1m/1h")
                          for page in log.pages for item in page.items)
    assert packed >= 20  # the pack plan was taken, not avoided


def test_write_overhead_of_a_day_shaped_stream_is_within_budget(dynamodb, capsys):
    """20 symbols, 1,000,000 updates/day (a tick per symbol every ~1.7 s), batches of 100,
    measured over 00:11-00:15:30 UTC (a 5m and a 15m candle close; after a minute of warm-up)."""
    report, stream = measure_overhead(dynamodb, minutes=4.5, start_ms=MIDNIGHT + 10 * MINUTE_MS)
    with capsys.disabled():
        print("\ncandle overhead:", json.dumps(report.summary()))
    assert report.updates >= 3000 * 4.5 / 5 and report.maintain_calls >= 20 * report.batches * 0.95
    assert report.writes_per_update <= report.write_units_per_update <= 0.1
    assert report.candles_stored["5m"] >= 20 and report.candles_stored["15m"] >= 20
    assert report.largest_item_bytes < 1024  # so write requests = write units
    symbol = stream[0].symbol  # and the candles are right (materialized ticks were pruned: compare what is stored)
    ticks = [(tick.key, tick.price) for tick in stream if tick.symbol == symbol]
    for interval in ("1m", "5m", "15m"):
        candles, _ = read_candles(dynamodb, "price-candles-overhead", "crypto-prices-overhead", symbol, interval,
                                  *EVERYTHING, 5000)
        assert rows(candles) == pandas_candles(ticks, interval), interval


def test_dense_hours_counts_the_newest_closed_hours_with_full_packs_in_a_row():
    hour = 3_600_000
    assert dense_run(5, None, MIDNIGHT, {}) == 0  # a new symbol's first hour may be partial
    assert dense_run(2, MIDNIGHT + 10 * MINUTE_MS, MIDNIGHT + 40 * MINUTE_MS, {}) == 2  # no hour closed
    assert dense_run(2, MIDNIGHT + 10 * MINUTE_MS, MIDNIGHT + hour, {MIDNIGHT: 40}) == 3
    assert dense_run(2, MIDNIGHT + 10 * MINUTE_MS, MIDNIGHT + hour, {MIDNIGHT: 39}) == 0
    # Three hours close at once; the middle one has no ticks (no pack): the run restarts after it.
    assert dense_run(7, MIDNIGHT, MIDNIGHT + 3 * hour + 5, {MIDNIGHT: 60, MIDNIGHT + 2 * hour: 55}) == 1
    assert dense_run(MAX_DENSE_HOURS, MIDNIGHT, MIDNIGHT + hour, {MIDNIGHT: 60}) == MAX_DENSE_HOURS
