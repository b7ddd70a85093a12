"""Venues end to end on the deployed stack: signed webhooks from three venues of one symbol at
different cadences with a basis between them and a traded quantity on every tick; the Python
client then reads each venue's own candles, indicators and latest price (equal to pandas over
that venue's ticks alone), the symbols' venues, every venue's ticks in time order, and a
composite that a venue sending half the price cannot drag down."""

from __future__ import annotations

import json
import math
import random
import time
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from emulator import session
from price_client import PriceClient
from senders.webhook import signed_post
from tests.e2e.conftest import wait_until

SYMBOL = "VENUE-USD"
BAD_SYMBOL = "VBAD-USD"
RULES = {"1m": "1min", "5m": "5min"}
MINUTE_MS = 60_000
# venue -> (seconds between its ticks, its basis to the common price). Every cadence is under a
# minute, so each venue ticks in every 1m bucket and is never stale for the composite (60 s).
CADENCES = {"binance": (7, Decimal("0")), "coinbase": (11, Decimal("0.85")), "kraken": (23, Decimal("-0.40"))}
SPAN_MS = 20 * MINUTE_MS

Sent = list[dict[str, Any]]  # {"symbol", "price", "exchange", "timestamp", "volume"} as sent


def _client(stack) -> PriceClient:
    return PriceClient(stack.running.price_api_url, session=session.session(), region=stack.running.config.region)


def _send(stack, ticks: Sent) -> None:
    info = stack.running
    for start in range(0, len(ticks), 100):
        body = json.dumps(ticks[start:start + 100]).encode()
        status, answer = signed_post(info.webhook_url, body, info.secret_source, info.secret)
        assert status == 200 and answer["rejected"] == [], answer


def _start_ms() -> int:
    """A 5-minute boundary about half an hour ago: recent, so no tick is dated ahead or expired."""
    return (int(time.time() * 1000) - 35 * MINUTE_MS) // (5 * MINUTE_MS) * (5 * MINUTE_MS)


def _venue_ticks(rng: random.Random, start: int) -> Sent:
    """Each venue on its own cadence (with jitter), the common price a random walk, each venue
    offset by its basis; a traded quantity on every tick. No two ticks share a millisecond, so
    key order is time order whatever the venues' slots."""
    walk, price = {}, Decimal("100.00")
    for second in range(SPAN_MS // 1000 + 1):
        price += Decimal(rng.randint(-20, 20)) / 100
        walk[second] = price
    ticks, used = [], set()
    for venue, (every, basis) in CADENCES.items():
        for second in range(0, SPAN_MS // 1000, every):
            moment = start + second * 1000 + rng.randrange(0, 900)
            while moment in used:
                moment += 1
            used.add(moment)
            ticks.append({"symbol": SYMBOL, "price": str(walk[second] + basis), "exchange": venue,
                          "timestamp": moment, "volume": f"{rng.randint(1, 50_000) / 1000:.3f}"})
    return sorted(ticks, key=lambda tick: tick["timestamp"])


def _bad_venue_ticks(rng: random.Random, start: int) -> Sent:
    """Two good venues near 100 and one sending half the price. Both good venues tick before the
    bad one first does, so the composite never starts from the bad price alone or a midpoint."""
    ticks = []
    for venue, every, first, factor in (("goodone", 9, 0, 1), ("goodtwo", 13, 2, 1), ("halfprice", 8, 5, 0.5)):
        for second in range(first, SPAN_MS // 1000, every):
            price = Decimal(f"{(100 + rng.randint(-50, 50) / 100) * factor:.2f}")
            ticks.append({"symbol": BAD_SYMBOL, "price": str(price), "exchange": venue,
                          "timestamp": start + second * 1000 + rng.randrange(0, 900),
                          "volume": "1"})
    return sorted(ticks, key=lambda tick: tick["timestamp"])


def _frame(ticks: Sent) -> pd.DataFrame:
    """The ticks as pandas sees them: prices as floats (OHLC only selects them, so each maps back
    exactly to its decimal string), volumes as integer thousandths (sums stay exact)."""
    return pd.DataFrame({"price": [float(t["price"]) for t in ticks],
                         "milli": [int(Decimal(t["volume"]) * 1000) for t in ticks]},
                        index=pd.to_datetime([t["timestamp"] for t in ticks], unit="ms", utc=True))


def _pandas_candles(ticks: Sent, interval: str) -> list[tuple]:
    frame = _frame(ticks)
    resampler = frame.resample(RULES[interval], label="left", closed="left")
    ohlc = resampler["price"].ohlc()
    ohlc["count"] = resampler["price"].count()
    ohlc["milli"] = resampler["milli"].sum()
    ohlc = ohlc[ohlc["count"] > 0]
    epoch = pd.Timestamp(0, tz="UTC")
    return [((stamp - epoch) // pd.Timedelta(milliseconds=1),
             *(Decimal(f"{row[column]:.2f}") for column in ("open", "high", "low", "close")),
             int(row["count"]), Decimal(int(row["milli"])) / 1000)
            for stamp, row in ohlc.iterrows()]


def _api_candles(client: PriceClient, symbol: str, interval: str, start: int, venue: str | None) -> list[tuple]:
    return [(c.start_ms, c.open, c.high, c.low, c.close, c.count, c.volume)
            for c in client.candles(symbol, interval, start, start + SPAN_MS + MINUTE_MS, venue=venue)]


def _expect_candles(client: PriceClient, interval: str, start: int, venue: str, expected: list[tuple]) -> None:
    """Candle upkeep follows the stream: give it a moment, then compare once more (the failure shows it)."""
    wait_until(lambda: _api_candles(client, SYMBOL, interval, start, venue) == expected, 30)
    assert _api_candles(client, SYMBOL, interval, start, venue) == expected, (venue, interval)


@pytest.fixture(scope="module")
def sent(stack) -> dict[str, Any]:
    rng = random.Random(20)
    start = _start_ms()
    venues, bad = _venue_ticks(rng, start), _bad_venue_ticks(rng, start)
    _send(stack, venues)
    _send(stack, bad)
    stack.settle()
    client = _client(stack)

    def all_enriched(symbol: str, count: int) -> bool:
        ticks = list(client.ticks(symbol, start, start + SPAN_MS + MINUTE_MS))
        return len(ticks) == count and all(t.enriched_at_ms is not None for t in ticks)
    assert wait_until(lambda: all_enriched(SYMBOL, len(venues)) and all_enriched(BAD_SYMBOL, len(bad)), 120)
    return {"start": start, SYMBOL: venues, BAD_SYMBOL: bad}


def _of(ticks: Sent, venue: str) -> Sent:
    return [t for t in ticks if t["exchange"] == venue]


def test_each_venues_1m_and_5m_candles_equal_pandas_over_that_venues_ticks(stack, sent):
    client, start = _client(stack), sent["start"]
    for venue in CADENCES:
        for interval in RULES:
            expected = _pandas_candles(_of(sent[SYMBOL], venue), interval)
            _expect_candles(client, interval, start, venue, expected)
            candles = client.candles(SYMBOL, interval, start, None, venue=venue)
            assert all(c.venue == venue and c.volume_count == c.count for c in candles)


def test_each_venues_newest_tick_has_its_own_moving_averages_and_is_its_latest(stack, sent):
    client = _client(stack)
    for venue in CADENCES:
        ticks = _of(sent[SYMBOL], venue)
        prices = pd.Series([float(t["price"]) for t in ticks])
        latest = client.latest(SYMBOL, venue=venue)[SYMBOL]
        assert latest is not None and latest.venue == venue
        assert (latest.time_ms, latest.price) == (ticks[-1]["timestamp"], Decimal(ticks[-1]["price"]))
        assert latest.volume == Decimal(ticks[-1]["volume"])
        for window in (5, 20):
            expected = prices.rolling(window).mean().iloc[-1]
            got = latest.indicator(f"sma_{window}")
            assert got is not None and math.isclose(float(got), expected, rel_tol=1e-12), (venue, window, got)
        # The mean of the interleaved venues differs by the basis: the venue's own series was used.
        mixed = pd.Series([float(t["price"]) for t in sent[SYMBOL]]).rolling(20).mean().iloc[-1]
        assert not math.isclose(float(latest.indicator("sma_20") or 0), mixed, rel_tol=1e-6)


def test_a_venue_sending_half_the_price_moves_no_composite_low_or_close(stack, sent):
    client, start = _client(stack), sent["start"]
    ticks = sent[BAD_SYMBOL]
    good = [Decimal(t["price"]) for t in ticks if t["exchange"] != "halfprice"]
    floor, ceiling = min(good), max(good)
    for interval in RULES:
        composite = client.candles(BAD_SYMBOL, interval, start, None)
        assert sum(c.count for c in composite) == len(ticks) and all(c.venue is None for c in composite)
        for candle in composite:
            assert floor <= candle.low <= candle.high <= ceiling, candle
            assert floor <= candle.open <= ceiling and floor <= candle.close <= ceiling, candle
        venue_closes = {venue: {c.start_ms: c.close for c in client.candles(BAD_SYMBOL, interval, start, None,
                                                                            venue=venue)}
                        for venue in ("goodone", "goodtwo")}
        for candle in composite:
            closes = [venue_closes[venue][candle.start_ms] for venue in venue_closes]
            assert min(closes) <= candle.close <= max(closes), (candle, closes)
    latest = client.latest(BAD_SYMBOL)[BAD_SYMBOL]
    assert latest is not None and latest.is_composite and latest.venues == 3
    assert floor <= latest.price <= ceiling


def test_each_composite_close_lies_within_the_venues_closes_of_its_bucket(stack, sent):
    client, start = _client(stack), sent["start"]
    ticks = sent[SYMBOL]
    for interval in RULES:
        composite = client.candles(SYMBOL, interval, start, None)
        by_venue = {venue: {c.start_ms: c for c in client.candles(SYMBOL, interval, start, None, venue=venue)}
                    for venue in CADENCES}
        assert [c.start_ms for c in composite] == sorted(by_venue["kraken"])
        for candle in composite:
            closes = [by_venue[venue][candle.start_ms].close for venue in CADENCES]
            assert min(closes) <= candle.close <= max(closes), (candle, closes)
            parts = [by_venue[venue][candle.start_ms] for venue in CADENCES]
            assert candle.count == sum(c.count for c in parts) and candle.volume == sum(c.volume for c in parts)
        assert sum(c.count for c in composite) == len(ticks)


def test_symbols_list_the_venues_and_ticks_without_venue_are_every_venue_in_time_order(stack, sent):
    client, start = _client(stack), sent["start"]
    listed = client.symbols()
    assert listed[SYMBOL] == sorted(CADENCES)
    assert listed[BAD_SYMBOL] == ["goodone", "goodtwo", "halfprice"]
    got = [(t.time_ms, t.venue, t.price, t.volume)
           for t in client.ticks(SYMBOL, start, start + SPAN_MS + MINUTE_MS, page_size=70)]
    assert got == [(t["timestamp"], t["exchange"], Decimal(t["price"]), Decimal(t["volume"])) for t in sent[SYMBOL]]
    one = [(t.time_ms, t.venue) for t in client.ticks(SYMBOL, start, None, venue="coinbase")]
    assert one == [(t["timestamp"], "coinbase") for t in _of(sent[SYMBOL], "coinbase")]
