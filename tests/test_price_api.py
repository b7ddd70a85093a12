"""Price API against moto: latest ticks, tick pages and cursors, candles, and every bad input as a 400."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emulator.function_url import url_event
from functions.price_api import service as api
from functions.price_api.routes import MAX_TICK_KEY, MAX_TIME_MS, encode_cursor
from functions.price_api.settings import Settings
from functions.shared.candles import Candle as StoredCandle
from functions.shared.price_table import candles, reads
from functions.shared.price_table.keys import event_ms, sort_key
from functions.shared.price_table.reads import ReadLog, read_ticks
from functions.shared.price_table.ticks import store_update
from functions.shared.price_update import PriceUpdate
from tests.support.api_reads import reads_for

TICKS = "crypto-prices-api-test"
CANDLES = "crypto-candles-api-test"
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
D0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z, a day boundary
MINUTE = 60_000
ROOT = Path(__file__).resolve().parents[1]
SETTINGS = Settings(table_name=TICKS, candle_table_name=CANDLES)


def event(path: str, query: dict[str, str] | None = None, method: str = "GET") -> dict[str, Any]:
    """A function URL's payload format 2.0 event, as AWS sends it."""
    return {"version": "2.0", "routeKey": "$default", "rawPath": path,
            "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
            "headers": {"host": "example.lambda-url.us-east-1.on.aws"}, "queryStringParameters": query,
            "requestContext": {"http": {"method": method, "path": path}, "requestId": "req-1"},
            "isBase64Encoded": False}


def call(dynamodb: Any, path: str, query: dict[str, str] | None = None, method: str = "GET",
         reads: ReadLog | None = None) -> tuple[int, dict[str, Any]]:
    response = api.process(event(path, query, method), SETTINGS, reads_for(dynamodb), time.time(), reads=reads)
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def put_tick(dynamodb: Any, symbol: str, ms: int, price: str, exchange: str = "binance",
             indicators: dict[str, str] | None = None, volume: str | None = None) -> int:
    """Store a tick the way the webhook does, then enrich it the way the enricher does."""
    update = PriceUpdate(symbol=symbol, event_ms=ms, price=Decimal(price), exchange=exchange, source="test-feed",
                         received_at_ms=ms + 5, volume=None if volume is None else Decimal(volume))
    _, key = store_update(dynamodb, TICKS, update)
    if indicators:
        item = dynamodb.get_item(TableName=TICKS, Key={"symbol": {"S": symbol}, "timestamp": {"N": str(key)}})["Item"]
        item.update({name: {"N": value} for name, value in indicators.items()})
        item["enriched_at"] = {"N": str(ms + 50)}
        dynamodb.put_item(TableName=TICKS, Item=item)
    return key


pytestmark = pytest.mark.tables(ticks=TICKS, candles=CANDLES)  # the `dynamodb` fixture (tests/conftest.py)


# (ms offset from D0, price, exchange, traded volume): 4 minutes of one hour, two exchanges in one
# millisecond, then two ticks the next hour and one the next day.
CANDLE_TICKS = [
    (5_000, "100.5", "binance", "0.5"), (20_000, "101", "binance", "1.25"), (59_999, "99.25", "binance", None),
    (MINUTE, "102", "binance", "2"), (MINUTE, "103", "kraken", "0.001"), (MINUTE + 30_000, "98", "binance", "3"),
    (3 * MINUTE + 1, "104.75", "binance", "0.1"),
    (3_600_000 + 10_000, "110", "binance", "7"), (3_600_000 + 5 * MINUTE, "111.5", "binance", None),
    (86_400_000 + 7, "120", "coinbase", "0.3"),
]
# A stored candle tick: (key, price, venue, volume or None).
StoredTick = tuple[int, str, str, str | None]


def numbers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candle rows with their decimal strings as Decimals: "102.50" and "102.5" are the same price."""
    return [{k: Decimal(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]


def _buckets(path: list[tuple[int, Decimal, str | None]], size: int) -> list[dict[str, Any]]:
    buckets: dict[int, list[tuple[int, Decimal, str | None]]] = {}
    for key, value, volume in path:
        buckets.setdefault(event_ms(key) - event_ms(key) % size, []).append((key, value, volume))
    return [{"start": start, "open": rows[0][1], "high": max(v for _, v, _ in rows), "low": min(v for _, v, _ in rows),
             "close": rows[-1][1], "count": len(rows), "volume": sum((Decimal(v) for *_, v in rows if v), Decimal(0)),
             "volume_count": sum(1 for *_, v in rows if v)}
            for start, rows in sorted(buckets.items())]


def expected_candles(ticks: list[StoredTick], size: int) -> list[dict[str, Any]]:
    """One venue's candles, the contract's oracle written independently: bucket by floor(ms / size),
    key order inside a bucket, volume the exact sum of the ticks that carry one."""
    return _buckets([(key, Decimal(price), volume) for key, price, _, volume in sorted(ticks)], size)


def expected_composite(ticks: list[StoredTick], size: int) -> list[dict[str, Any]]:
    """The composite's candles from its definition: walk every venue's ticks in key order; the path's
    value at a tick is the median of the latest prices of the venues that ticked within 60 s of it."""
    latest: dict[str, tuple[int, Decimal]] = {}
    path = []
    for key, price, venue, volume in sorted(ticks):
        latest[venue] = (event_ms(key), Decimal(price))
        fresh = sorted(p for ms, p in latest.values() if event_ms(key) - ms <= 60_000)
        half = len(fresh) // 2
        path.append((key, fresh[half] if len(fresh) % 2 else (fresh[half - 1] + fresh[half]) / 2, volume))
    return _buckets(path, size)


@pytest.fixture
def candle_history(dynamodb):
    """CANDLE_TICKS stored as BTC-USD and maintained in batches as the enricher does; one ETH-USD tick."""
    stored: list[StoredTick] = []
    for batch in (CANDLE_TICKS[:4], CANDLE_TICKS[4:8], CANDLE_TICKS[8:]):
        keys = [put_tick(dynamodb, "BTC-USD", D0 + offset, price, exchange, volume=volume)
                for offset, price, exchange, volume in batch]
        candles.maintain(dynamodb, CANDLES, TICKS, "BTC-USD", keys, venues={venue for _, _, venue, _ in batch})
        stored += [(key, price, venue, volume) for key, (_, price, venue, volume) in zip(keys, batch, strict=True)]
    eth = put_tick(dynamodb, "ETH-USD", D0, "2000")
    candles.maintain(dynamodb, CANDLES, TICKS, "ETH-USD", [eth], venues=["binance"])
    return stored


@pytest.fixture
def history(dynamodb):
    """BTC-USD: 6 ticks, two of them in the same millisecond from two exchanges; ETH-USD: 1 enriched tick."""
    keys = [put_tick(dynamodb, "BTC-USD", T0 + i * 1000, f"5000{i}.5") for i in range(5)]
    keys.append(put_tick(dynamodb, "BTC-USD", T0 + 2000, "50002.25", exchange="kraken"))
    put_tick(dynamodb, "ETH-USD", T0, "2000.123456789012345678901234567890", volume="12.5",
             indicators={"sma_5": "2000.1", "ema_12": "1999.99", "change_pct": "-0.0000001", "volatility_20": "1.5E-7"})
    return sorted(keys)


# -- /v1/latest -------------------------------------------------------------------------------

def test_latest_of_a_venue_is_its_newest_tick_with_exact_decimals_and_null_without_data(dynamodb, history):
    status, body = call(dynamodb, "/v1/latest", {"symbols": "ETH-USD,BTC-USD,XRP-USD", "venue": "binance"})
    assert status == 200
    assert list(body["latest"]) == ["ETH-USD", "BTC-USD", "XRP-USD"]  # request order, one entry each
    assert body["latest"]["XRP-USD"] is None
    btc = body["latest"]["BTC-USD"]
    assert btc["time"] == T0 + 4000 and btc["price"] == "50004.5" and btc["key"] == history[-1]
    assert btc["indicators"] == {} and "enriched_at" not in btc and btc["venue"] == "binance"
    eth = body["latest"]["ETH-USD"]
    assert eth["price"] == "2000.123456789012345678901234567890"  # 34 digits: no float on the way
    assert eth["volume"] == "12.5" and eth["exchange"] == "binance" and eth["received_at"] == T0 + 5
    # Plain decimal strings, never exponents, and only the indicators that were computed.
    assert eth["indicators"] == {"change_pct": "-0.0000001", "ema_12": "1999.99", "sma_5": "2000.1",
                                 "volatility_20": "0.00000015"}
    assert eth["enriched_at"] == T0 + 50


def test_latest_reads_one_query_per_symbol(dynamodb, history):
    reads = ReadLog()
    status, _ = call(dynamodb, "/v1/latest", {"symbols": "BTC-USD,ETH-USD,XRP-USD"}, reads=reads)
    assert status == 200
    assert [page.operation for page in reads.pages] == ["Query"] * 3
    assert sorted(len(page.items) for page in reads.pages) == [0, 1, 6]  # a symbol's newest ticks, up to 50
    assert all(page.consistent for page in reads.pages)


def test_latest_accepts_a_hundred_symbols_and_duplicates_once(dynamodb, history):
    symbols = ["BTC-USD"] * 3 + [f"C{i}-USD" for i in range(99)]
    status, body = call(dynamodb, "/v1/latest", {"symbols": ",".join(symbols)})
    assert status == 200 and len(body["latest"]) == 100
    assert body["latest"]["BTC-USD"]["price"] == "50003.375" and body["latest"]["C98-USD"] is None


# -- /v1/ticks --------------------------------------------------------------------------------

def test_ticks_default_range_is_everything_oldest_first(dynamodb, history):
    status, body = call(dynamodb, "/v1/ticks/BTC-USD")
    assert status == 200 and "next" not in body
    assert [tick["key"] for tick in body["ticks"]] == history
    assert [tick["time"] for tick in body["ticks"]] == [T0, T0 + 1000, T0 + 2000, T0 + 2000, T0 + 3000, T0 + 4000]
    # Two exchanges in one millisecond: both survive, distinct by key.
    assert {t["exchange"] for t in body["ticks"] if t["time"] == T0 + 2000} == {"binance", "kraken"}


def test_from_is_inclusive_and_to_exclusive_in_epoch_ms_or_iso(dynamodb, history):
    expected = [T0 + 1000, T0 + 2000, T0 + 2000, T0 + 3000]
    status, body = call(dynamodb, "/v1/ticks/BTC-USD", {"from": str(T0 + 1000), "to": str(T0 + 4000)})
    assert status == 200 and [t["time"] for t in body["ticks"]] == expected
    iso = {"from": "2023-11-14T22:13:21Z", "to": "2023-11-14T23:13:24+01:00"}  # the same instants
    assert [t["time"] for t in call(dynamodb, "/v1/ticks/BTC-USD", iso)[1]["ticks"]] == expected
    # One millisecond either way moves a boundary tick in or out.
    body = call(dynamodb, "/v1/ticks/BTC-USD", {"from": str(T0 + 1001), "to": str(T0 + 4001)})[1]
    assert [t["time"] for t in body["ticks"]] == [T0 + 2000, T0 + 2000, T0 + 3000, T0 + 4000]
    assert call(dynamodb, "/v1/ticks/BTC-USD", {"from": str(T0), "to": str(T0)})[1] == {"ticks": []}


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursor_pages_cover_the_range_once_and_the_last_page_has_no_next(dynamodb, history, order):
    query = {"from": str(T0 + 1000), "order": order, "limit": "2"}
    keys, pages = [], 0
    while True:
        status, body = call(dynamodb, "/v1/ticks/BTC-USD", query)
        assert status == 200
        pages += 1
        keys += [tick["key"] for tick in body["ticks"]]
        if "next" not in body:
            break
        assert len(body["ticks"]) == 2
        query = {**query, "cursor": body["next"]}
    expected = history[1:] if order == "asc" else history[1:][::-1]
    assert keys == expected
    assert pages == 3  # 5 ticks in pages of 2: 2 + 2 + 1, and no empty page after a full one


def test_a_full_last_page_carries_no_next(dynamodb, history):
    body = call(dynamodb, "/v1/ticks/BTC-USD", {"limit": "6"})[1]
    assert len(body["ticks"]) == 6 and "next" not in body
    body = call(dynamodb, "/v1/ticks/BTC-USD", {"limit": "5"})[1]
    assert len(body["ticks"]) == 5 and "next" in body


def test_the_page_limit_may_change_between_pages(dynamodb, history):
    first = call(dynamodb, "/v1/ticks/BTC-USD", {"limit": "1"})[1]
    rest = call(dynamodb, "/v1/ticks/BTC-USD", {"limit": "1000", "cursor": first["next"]})[1]
    assert [t["key"] for t in first["ticks"] + rest["ticks"]] == history


def test_a_symbol_without_data_is_an_empty_list(dynamodb, history):
    assert call(dynamodb, "/v1/ticks/DOGE-USD") == (200, {"ticks": []})


def test_a_tick_page_reads_its_items_plus_one(dynamodb, history):
    """The read side's cost model: a page of n ticks is one consistent Query of n + 1 items."""
    reads = ReadLog()
    page = read_ticks(dynamodb, TICKS, "BTC-USD", None, None, False, 2, log=reads)
    assert [int(i["timestamp"]["N"]) for i in page.items] == history[:2] and page.last_key == history[1]
    assert [len(p.items) for p in reads.pages] == [3] and reads.pages[0].consistent


def test_process_exposes_every_page_it_read(dynamodb, history):
    reads = ReadLog()
    call(dynamodb, "/v1/ticks/BTC-USD", {"limit": "4"}, reads=reads)
    assert reads.requests == 1 and reads.items == 5


# -- /v1/symbols and /v1/candles ---------------------------------------------------------------

def test_symbols_lists_each_symbols_venues_from_the_candle_registry(dynamodb, candle_history):
    assert call(dynamodb, "/v1/symbols") == (200, {"symbols": {"BTC-USD": ["binance", "coinbase", "kraken"],
                                                               "ETH-USD": ["binance"]}})


def test_symbols_is_empty_before_any_candle(dynamodb):
    assert call(dynamodb, "/v1/symbols") == (200, {"symbols": {}})


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "1h", "4h", "1d"])
def test_a_venues_candles_match_the_contract_for_every_interval(dynamodb, candle_history, interval):
    for venue in ("binance", "kraken", "coinbase"):
        status, body = call(dynamodb, "/v1/candles/BTC-USD", {"interval": interval, "venue": venue})
        assert status == 200 and "next" not in body
        mine = [tick for tick in candle_history if tick[2] == venue]
        assert numbers(body["candles"]) == expected_candles(mine, candles.INTERVALS[interval]), venue


@pytest.mark.parametrize("interval", ["1m", "5m", "1h", "1d"])
def test_candles_without_a_venue_are_the_composites(dynamodb, candle_history, interval):
    status, body = call(dynamodb, "/v1/candles/BTC-USD", {"interval": interval})
    assert status == 200 and "next" not in body
    assert numbers(body["candles"]) == expected_composite(candle_history, candles.INTERVALS[interval])


def test_a_candles_volume_is_an_exact_decimal_string_with_the_count_of_ticks_that_carried_one(dynamodb,
                                                                                              candle_history):
    minute = call(dynamodb, "/v1/candles/BTC-USD", {"interval": "1m", "venue": "binance", "to": str(D0 + MINUTE)})
    assert minute[1]["candles"][0]["count"] == 3 and minute[1]["candles"][0]["volume_count"] == 2
    assert Decimal(minute[1]["candles"][0]["volume"]) == Decimal("1.75")


def test_a_candle_is_in_range_when_its_start_is(dynamodb, candle_history):
    query = {"interval": "1m", "from": str(D0 + 1), "to": str(D0 + 3 * MINUTE)}  # excludes the D0 minute
    starts = [c["start"] for c in call(dynamodb, "/v1/candles/BTC-USD", query)[1]["candles"]]
    assert starts == [D0 + MINUTE]
    query = {"interval": "1h", "from": "2023-11-14T00:00:00Z", "to": "2023-11-14T01:00:00.001Z"}
    assert [c["start"] for c in call(dynamodb, "/v1/candles/BTC-USD", query)[1]["candles"]] == [D0, D0 + 3_600_000]


def test_candle_pages_follow_the_cursor(dynamodb, candle_history):
    whole = call(dynamodb, "/v1/candles/BTC-USD", {"interval": "1m"})[1]["candles"]
    query, paged, pages = {"interval": "1m", "limit": "2"}, [], 0
    while True:
        status, body = call(dynamodb, "/v1/candles/BTC-USD", query)
        assert status == 200 and len(body["candles"]) <= 2
        paged += body["candles"]
        pages += 1
        if "next" not in body:
            break
        query = {**query, "cursor": body["next"]}
    assert paged == whole and len(whole) == 6 and pages in (3, 4)
    cursor = call(dynamodb, "/v1/candles/BTC-USD", {"interval": "1m", "limit": "2"})[1]["next"]
    status, body = call(dynamodb, "/v1/candles/BTC-USD", {"interval": "5m", "limit": "2", "cursor": cursor})
    assert status == 400 and body["error"].startswith("cursor: belongs to another query")


def test_candles_cost_at_most_three_reads(dynamodb, candle_history):
    reads = ReadLog()
    call(dynamodb, "/v1/candles/BTC-USD", {"interval": "1m"}, reads=reads)
    assert 1 <= reads.requests <= 3 and {page.operation for page in reads.pages} <= {"GetItem", "Query"}


def test_candles_of_a_symbol_without_data_are_an_empty_list(dynamodb, candle_history):
    assert call(dynamodb, "/v1/candles/DOGE-USD", {"interval": "1h"}) == (200, {"candles": []})


@pytest.mark.parametrize(("query", "error"), [
    ({}, "interval: required"),
    ({"interval": "2m"}, "interval:"),
    ({"interval": "1M"}, "interval:"),
    ({"interval": "1m", "limit": "5001"}, "limit:"),
    ({"interval": "1m", "limit": "0"}, "limit:"),
    ({"interval": "1m", "order": "desc"}, "order: unknown parameter"),
    ({"interval": "1m", "from": "2", "to": "1"}, "from:"),
    ({"interval": "1m", "cursor": "eyJ2IjoxfQ"}, "cursor:"),
])
def test_bad_candle_input_is_a_400(dynamodb, query, error):
    status, body = call(dynamodb, "/v1/candles/BTC-USD", query)
    assert status == 400 and body["error"].startswith(error), body


def test_five_thousand_candles_is_the_largest_page(dynamodb, candle_history):
    assert call(dynamodb, "/v1/candles/BTC-USD", {"interval": "1m", "limit": "5000"})[0] == 200
    assert api.MAX_CANDLES == 5000


def test_without_a_limit_a_page_is_the_cap_and_next_reads_on(dynamodb, candle_history, monkeypatch):
    """The default page is the cap (5,000; 2 here, so the fixture's minutes span several pages)."""
    monkeypatch.setattr(api, "MAX_CANDLES", 2)
    pages, query = [], {"interval": "1m"}
    while True:
        status, body = call(dynamodb, "/v1/candles/BTC-USD", query)
        assert status == 200 and len(body["candles"]) <= 2
        pages.append(body["candles"])
        if "next" not in body:
            break
        query = {"interval": "1m", "cursor": body["next"]}
    expected = expected_composite(candle_history, candles.INTERVALS["1m"])
    assert len(expected) > 4 and [len(page) for page in pages] == [2] * (len(expected) // 2) + [1] * (len(expected) % 2)
    assert numbers([c for page in pages for c in page]) == expected
    assert call(dynamodb, "/v1/candles/BTC-USD", {"interval": "1m", "limit": "3"})[0] == 400


# -- venues: ticks, latest and the composite ------------------------------------------------------

def test_ticks_without_a_venue_are_every_venues_in_key_order_each_naming_its_venue(dynamodb, history):
    ticks = call(dynamodb, "/v1/ticks/BTC-USD")[1]["ticks"]
    assert [t["key"] for t in ticks] == history
    assert [t["venue"] for t in ticks] == ["binance"] * 2 + sorted(["binance", "kraken"], key=lambda v: next(
        t["key"] for t in ticks if t["time"] == T0 + 2000 and t["exchange"] == v)) + ["binance"] * 2


def test_ticks_of_a_venue_are_that_venues_only(dynamodb, history):
    status, body = call(dynamodb, "/v1/ticks/BTC-USD", {"venue": "kraken"})
    assert status == 200 and "next" not in body
    assert [(t["time"], t["price"], t["venue"]) for t in body["ticks"]] == [(T0 + 2000, "50002.25", "kraken")]
    assert call(dynamodb, "/v1/ticks/BTC-USD", {"venue": "Kraken"})[1] == body  # venues are lower case
    assert call(dynamodb, "/v1/ticks/BTC-USD", {"venue": "bitstamp"}) == (200, {"ticks": []})


class ScanCounter:
    """The handler's reads, counting the items each Query evaluated (what a filtered read pays for)."""

    def __init__(self, dynamodb: Any) -> None:
        self.reads, self.scanned = reads_for(dynamodb), 0

    def query(self, **kwargs: Any) -> dict[str, Any]:
        response = self.reads.query(**kwargs)
        self.scanned += response["ScannedCount"]
        return response

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        return self.reads.get_item(**kwargs)


@pytest.fixture
def rare_venue(dynamodb):
    """40 BTC-USD ticks a second apart: kraken's are the 1st, 22nd and 40th, binance's the rest."""
    rare = {0, 21, 39}
    return [put_tick(dynamodb, "BTC-USD", T0 + i * 1000, f"{100 + i}", "kraken" if i in rare else "binance")
            for i in range(40)], rare


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_rare_venues_pages_are_bounded_may_be_empty_and_still_cover_every_tick_once(dynamodb, rare_venue, order):
    keys, rare = rare_venue
    counter = ScanCounter(dynamodb)
    query = {"venue": "kraken", "limit": "2", "order": order}
    pages: list[list[int]] = []
    while True:
        response = api.process(event("/v1/ticks/BTC-USD", query), SETTINGS, counter, time.time())
        body = json.loads(response["body"])
        assert response["statusCode"] == 200, body
        pages.append([t["key"] for t in body["ticks"]])
        if "next" not in body:
            break
        query = {**query, "cursor": body["next"]}
    expected = [keys[i] for i in sorted(rare)]
    assert [key for page in pages for key in page] == (expected if order == "asc" else expected[::-1])
    assert [] in pages[:-1]  # an empty page that still says more follow
    # Each request evaluated at most 4 x (limit + 1) items, so no page reads the whole partition.
    assert counter.scanned <= len(pages) * reads.VENUE_SCAN_FACTOR * 3


def test_a_venue_cursor_is_bound_to_its_venue(dynamodb, rare_venue):
    first = call(dynamodb, "/v1/ticks/BTC-USD", {"venue": "binance", "limit": "2"})[1]
    status, body = call(dynamodb, "/v1/ticks/BTC-USD", {"venue": "kraken", "limit": "2", "cursor": first["next"]})
    assert status == 400 and body["error"].startswith("cursor: belongs to another query")
    status, body = call(dynamodb, "/v1/ticks/BTC-USD", {"limit": "2", "cursor": first["next"]})
    assert status == 400 and body["error"].startswith("cursor: belongs to another query")


def test_latest_of_a_venue_is_that_venues_last_tick_or_null(dynamodb, history, rare_venue):
    body = call(dynamodb, "/v1/latest", {"symbols": "BTC-USD,ETH-USD", "venue": "kraken"})[1]
    assert body["latest"]["ETH-USD"] is None
    kraken = body["latest"]["BTC-USD"]
    assert (kraken["time"], kraken["price"], kraken["venue"]) == (T0 + 39_000, "139", "kraken")
    binance = call(dynamodb, "/v1/latest", {"symbols": "BTC-USD", "venue": "binance"})[1]["latest"]["BTC-USD"]
    assert (binance["time"], binance["price"], binance["venue"]) == (T0 + 38_000, "138", "binance")


def test_latest_of_a_venue_looks_past_the_other_venues_newest_ticks(dynamodb):
    put_tick(dynamodb, "BTC-USD", T0, "97000", "kraken")
    for i in range(1, 120):
        put_tick(dynamodb, "BTC-USD", T0 + i, "97010", "binance")
    latest = call(dynamodb, "/v1/latest", {"symbols": "BTC-USD", "venue": "kraken"})[1]["latest"]["BTC-USD"]
    assert (latest["time"], latest["price"]) == (T0, "97000")


def test_the_composite_is_the_median_of_the_fresh_venues_so_one_bad_feed_cannot_move_it(dynamodb):
    put_tick(dynamodb, "BTC-USD", T0 - 70_000, "1", "bitstamp")  # 72 s before the newest tick: stale
    put_tick(dynamodb, "BTC-USD", T0 - 1000, "97020", "kraken")
    put_tick(dynamodb, "BTC-USD", T0, "97010.5", "kraken")
    put_tick(dynamodb, "BTC-USD", T0 + 1000, "96990", "coinbase")
    put_tick(dynamodb, "BTC-USD", T0 + 2000, "48500", "mis-set")  # one sender at half the price
    status, body = call(dynamodb, "/v1/latest", {"symbols": "BTC-USD"})
    assert status == 200
    assert body["latest"]["BTC-USD"] == {
        "symbol": "BTC-USD", "time": T0 + 2000, "key": sort_key(T0 + 2000, body["latest"]["BTC-USD"]["key"] % 1000),
        "price": "96990", "composite": True, "venues": 3,
        "venue_prices": {"coinbase": "96990", "kraken": "97010.5", "mis-set": "48500"}, "indicators": {}}


def test_the_composite_of_two_venues_is_their_midpoint_and_of_one_its_price(dynamodb):
    put_tick(dynamodb, "BTC-USD", T0, "97010.5", "kraken")
    put_tick(dynamodb, "BTC-USD", T0 + 60_000, "96990", "coinbase")  # exactly 60 s later: kraken still counts
    put_tick(dynamodb, "ETH-USD", T0, "3000", "kraken")
    put_tick(dynamodb, "ETH-USD", T0 + 60_001, "3100", "coinbase")  # 60.001 s later: kraken is stale
    latest = call(dynamodb, "/v1/latest", {"symbols": "BTC-USD,ETH-USD"})[1]["latest"]
    assert (latest["BTC-USD"]["price"], latest["BTC-USD"]["venues"]) == ("97000.25", 2)
    assert (latest["ETH-USD"]["price"], latest["ETH-USD"]["venues"]) == ("3100", 1)
    assert latest["ETH-USD"]["venue_prices"] == {"coinbase": "3100"}


def test_the_composite_reads_one_query_unless_its_newest_ticks_are_all_fresh(dynamodb):
    put_tick(dynamodb, "BTC-USD", T0 - 30_000, "90", "kraken")  # 30 s before, behind 60 busier ticks
    for i in range(60):
        put_tick(dynamodb, "BTC-USD", T0 + i, "100", "binance")
    for i in range(60):
        put_tick(dynamodb, "ETH-USD", T0 - i * 2000, "100", "binance")  # 50 ticks span 98 s
    log = ReadLog()
    latest = call(dynamodb, "/v1/latest", {"symbols": "BTC-USD"}, reads=log)[1]["latest"]["BTC-USD"]
    assert (latest["price"], latest["venues"]) == ("95", 2) and log.requests == 2
    log = ReadLog()
    assert call(dynamodb, "/v1/latest", {"symbols": "ETH-USD"}, reads=log)[1]["latest"]["ETH-USD"]["venues"] == 1
    assert log.requests == 1 and log.items == reads.LATEST_FIRST


def test_the_composite_counts_only_the_venues_among_the_newest_200_ticks(dynamodb):
    put_tick(dynamodb, "BTC-USD", T0 - 1, "90", "kraken")  # fresh, but the 201st newest tick
    for i in range(200):
        put_tick(dynamodb, "BTC-USD", T0 + i, "100", "binance")
    log = ReadLog()
    latest = call(dynamodb, "/v1/latest", {"symbols": "BTC-USD"}, reads=log)[1]["latest"]["BTC-USD"]
    assert (latest["price"], latest["venues"]) == ("100", 1) and log.items == reads.LATEST_SCAN


def test_repeated_symbols_parameters_read_as_a_comma_list(dynamodb, history):
    request = url_event("GET", "https://example.lambda-url.us-east-1.on.aws/v1/latest?symbols=BTC-USD"
                               "&symbols=ETH-USD&venue=binance", {}, b"", "192.0.2.1")
    response = api.process(request, SETTINGS, reads_for(dynamodb), time.time())
    assert response["statusCode"] == 200
    assert list(json.loads(response["body"])["latest"]) == ["BTC-USD", "ETH-USD"]


@pytest.mark.parametrize(("path", "query"), [
    ("/v1/latest", {"symbols": "BTC-USD"}), ("/v1/ticks/BTC-USD", {}), ("/v1/candles/BTC-USD", {"interval": "1m"}),
])
@pytest.mark.parametrize("venue", ["bin ance", "binance,kraken", "-binance", "b" * 33, "kraken!"])
def test_a_bad_venue_is_a_400_naming_it(dynamodb, path, query, venue):
    status, body = call(dynamodb, path, {**query, "venue": venue})
    assert status == 400 and body["error"].startswith("venue: "), body


def test_candles_pass_the_venue_to_the_candle_store_and_answer_volume_as_a_plain_decimal(dynamodb, monkeypatch):
    asked: list[str | None] = []

    def read_candles(*args: Any, venue: str | None = None) -> tuple[list[Any], int | None]:
        asked.append(venue)
        candle = StoredCandle(D0, Decimal(1), Decimal(2), Decimal("0.5"), Decimal(1), 3, volume=Decimal("1E-8"),
                              volume_count=1)
        return [candle], None

    monkeypatch.setattr(api, "read_candles", read_candles)
    status, body = call(dynamodb, "/v1/candles/BTC-USD", {"interval": "1m", "venue": "Kraken"})
    assert status == 200 and asked == ["kraken"]
    assert body["candles"] == [{"start": D0, "open": "1", "high": "2", "low": "0.5", "close": "1", "count": 3,
                                "volume": "0.00000001", "volume_count": 1}]
    call(dynamodb, "/v1/candles/BTC-USD", {"interval": "1m"})
    assert asked == ["kraken", None]


# -- bad input ----------------------------------------------------------------------------------

def other_query_cursor() -> str:
    return encode_cursor({"r": "ticks", "s": "ETH-USD", "f": None, "t": None, "o": "asc"}, sort_key(T0, 0))


@pytest.mark.parametrize(("path", "query", "method", "status", "error"), [
    ("/v1/latest", None, "POST", 400, "method:"),
    ("/v1/ticks/BTC-USD", None, "DELETE", 400, "method:"),
    ("/v1/nothing", None, "GET", 400, "path:"),
    ("/", None, "GET", 400, "path:"),
    ("/v1/ticks", None, "GET", 400, "path:"),
    ("/v1/ticks/btc-usd", None, "GET", 400, "symbol:"),
    ("/v1/ticks/BTCUSD", None, "GET", 400, "symbol:"),
    ("/v1/ticks/BTC-USD-EUR", None, "GET", 400, "symbol:"),
    ("/v1/candles/BTC_USD", {"interval": "1m"}, "GET", 400, "symbol:"),
    ("/v1/latest", None, "GET", 400, "symbols:"),
    ("/v1/latest", {"symbols": ""}, "GET", 400, "symbols:"),
    ("/v1/latest", {"symbols": "BTC-USD,,ETH-USD"}, "GET", 400, "symbols:"),
    ("/v1/latest", {"symbols": "BTC-USD,eth-usd"}, "GET", 400, "symbols:"),
    ("/v1/latest", {"symbols": ",".join(f"C{i}-USD" for i in range(101))}, "GET", 400, "symbols:"),
    ("/v1/latest", {"symbol": "BTC-USD"}, "GET", 400, "symbol:"),
    ("/v1/ticks/BTC-USD", {"start": "0"}, "GET", 400, "start:"),
    ("/v1/ticks/BTC-USD", {"from": "2"}, "GET", 200, None),
    ("/v1/ticks/BTC-USD", {"from": "yesterday"}, "GET", 400, "from:"),
    ("/v1/ticks/BTC-USD", {"to": "1.5"}, "GET", 400, "to:"),
    ("/v1/ticks/BTC-USD", {"to": "-1"}, "GET", 400, "to:"),
    ("/v1/ticks/BTC-USD", {"to": "99999999999999999999"}, "GET", 400, "to:"),
    ("/v1/ticks/BTC-USD", {"from": str(T0 + 1), "to": str(T0)}, "GET", 400, "from:"),
    ("/v1/ticks/BTC-USD", {"from": "2024-01-02", "to": "2024-01-01"}, "GET", 400, "from:"),
    ("/v1/ticks/BTC-USD", {"limit": "0"}, "GET", 400, "limit:"),
    ("/v1/ticks/BTC-USD", {"limit": "1001"}, "GET", 400, "limit:"),
    ("/v1/ticks/BTC-USD", {"limit": "ten"}, "GET", 400, "limit:"),
    ("/v1/ticks/BTC-USD", {"limit": "1000"}, "GET", 200, None),
    ("/v1/ticks/BTC-USD", {"order": "newest"}, "GET", 400, "order:"),
    ("/v1/ticks/BTC-USD", {"cursor": "!!!"}, "GET", 400, "cursor:"),
    ("/v1/ticks/BTC-USD", {"cursor": "bm90IGpzb24"}, "GET", 400, "cursor:"),  # "not json"
    ("/v1/ticks/BTC-USD", {"cursor": "eyJ2IjoxfQ"}, "GET", 400, "cursor:"),  # {"v":1}
    ("/v1/ticks/BTC-USD", {"cursor": "x" * 2000}, "GET", 400, "cursor:"),
    ("/v1/ticks/BTC-USD", {"cursor": other_query_cursor()}, "GET", 400, "cursor:"),
])
def test_bad_input_is_a_client_error_naming_the_parameter(dynamodb, history, path, query, method, status, error):
    got_status, body = call(dynamodb, path, query, method)
    assert got_status == status, body
    if error is not None:
        assert set(body) == {"error"} and body["error"].startswith(error), body


def test_a_cursor_is_bound_to_its_query(dynamodb, history):
    first = call(dynamodb, "/v1/ticks/BTC-USD", {"limit": "2", "order": "desc"})[1]
    for changed in ({"order": "asc"}, {"from": str(T0)}, {"to": str(T0 + 9000)}):
        status, body = call(dynamodb, "/v1/ticks/BTC-USD", {"limit": "2", "order": "desc", "cursor": first["next"],
                                                            **changed})
        assert status == 400 and body["error"].startswith("cursor: belongs to another query")
    status, body = call(dynamodb, "/v1/ticks/ETH-USD", {"limit": "2", "order": "desc", "cursor": first["next"]})
    assert status == 400 and body["error"].startswith("cursor:")


def test_a_forged_cursor_cannot_leave_the_querys_range(dynamodb, history):
    bound = {"r": "ticks", "s": "BTC-USD", "f": T0 + 3000, "t": None, "o": "asc"}
    status, body = call(dynamodb, "/v1/ticks/BTC-USD", {"from": str(T0 + 3000), "cursor": encode_cursor(bound, 0)})
    assert status == 200 and [t["time"] for t in body["ticks"]] == [T0 + 3000, T0 + 4000]


FORGED = [10**130, -1, MAX_TICK_KEY + 1, True]


@pytest.mark.parametrize("position", FORGED)
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_forged_tick_cursor_position_is_a_400_that_never_reaches_dynamodb(dynamodb, history, caplog, order,
                                                                             position):
    bound = {"r": "ticks", "s": "BTC-USD", "f": None, "t": None, "o": order}
    status, body = call(dynamodb, "/v1/ticks/BTC-USD", {"order": order, "cursor": encode_cursor(bound, position)})
    assert status == 400 and body["error"].startswith("cursor: "), body
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


@pytest.mark.parametrize("position", [10**130, -1, MAX_TIME_MS + 1])
def test_a_forged_candle_cursor_position_is_a_400(dynamodb, position):
    bound = {"r": "candles", "s": "BTC-USD", "i": "1m", "f": None, "t": None}
    status, body = call(dynamodb, "/v1/candles/BTC-USD", {"interval": "1m", "cursor": encode_cursor(bound, position)})
    assert status == 400 and body["error"].startswith("cursor: "), body


def test_the_largest_key_a_tick_can_have_is_a_valid_cursor_position(dynamodb, history):
    bound = {"r": "ticks", "s": "BTC-USD", "f": None, "t": None, "o": "desc"}
    status, body = call(dynamodb, "/v1/ticks/BTC-USD", {"order": "desc", "cursor": encode_cursor(bound, MAX_TICK_KEY)})
    assert status == 200 and [t["key"] for t in body["ticks"]] == history[::-1]
    assert MAX_TICK_KEY == sort_key(MAX_TIME_MS, 999) < 10**18


def test_an_error_message_does_not_echo_a_long_value(dynamodb):
    status, body = call(dynamodb, "/v1/ticks/" + "A" * 5000)
    assert status == 400 and len(body["error"]) < 200


# -- failures of the table ------------------------------------------------------------------

class FailingClient:
    def __init__(self, code: str) -> None:
        self.code = code

    def query(self, **kwargs: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": self.code, "Message": f"secret detail of {kwargs['TableName']}"}},
                          "Query")


def test_throttling_is_a_503_with_retry_after_and_other_failures_a_500_without_internals(caplog):
    response = api.process(event("/v1/latest", {"symbols": "BTC-USD"}), SETTINGS,
                           FailingClient("ProvisionedThroughputExceededException"), time.time())
    assert response["statusCode"] == 503 and response["headers"]["Retry-After"] == "1"
    response = api.process(event("/v1/ticks/BTC-USD"), SETTINGS, FailingClient("ResourceNotFoundException"),
                           time.time())
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {"error": "service: internal error"}
    assert "secret detail" not in response["body"]


def test_a_deadline_with_time_to_spare_changes_no_answer(dynamodb, candle_history):
    bounded = reads_for(dynamodb).until(time.monotonic() + 60)
    for path, query in [("/v1/candles/BTC-USD", {"interval": "1m"}), ("/v1/latest", {"symbols": "BTC-USD,ETH-USD"}),
                        ("/v1/symbols", {})]:
        response = api.process(event(path, query), SETTINGS, bounded, time.time())
        assert response["statusCode"] == 200
        assert json.loads(response["body"]) == call(dynamodb, path, query)[1]


def test_a_request_is_logged_without_its_headers(dynamodb, history, caplog):
    caplog.set_level("INFO", logger="price_api")
    request = event("/v1/latest", {"symbols": "BTC-USD"})
    request["headers"]["authorization"] = "AWS4-HMAC-SHA256 Credential=AKIDSECRETLOOKING/..."
    request["headers"]["x-amz-security-token"] = "TOKEN-THAT-MUST-NOT-BE-LOGGED"
    api.process(request, SETTINGS, reads_for(dynamodb), time.time())
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "request served" in logged
    assert "TOKEN-THAT-MUST-NOT-BE-LOGGED" not in logged and "AKIDSECRETLOOKING" not in logged


# -- settings and cold start ----------------------------------------------------------------

def test_settings_contract_round_trips_through_the_environment():
    environment = SETTINGS.environment()
    assert environment == {"TABLE_NAME": TICKS, "CANDLE_TABLE_NAME": CANDLES}
    assert Settings.from_environment(environment) == SETTINGS
    with pytest.raises(KeyError, match="CANDLE_TABLE_NAME"):
        Settings.from_environment({"TABLE_NAME": TICKS})


def test_the_handler_imports_without_pandas_or_pydantic():
    code = ("import sys, functions.price_api.handler as h; "
            "print(sorted(m for m in ('pandas', 'pydantic', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT), "AWS_DEFAULT_REGION": "us-east-1"})
    assert result.stdout.strip() == "[]"
