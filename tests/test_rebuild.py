"""The rebuild of blended candles into the venue format, from a table written in today's item
format: every venue's candles and the composite come out equal to their references, no tick
is rewritten, a second run does nothing new, and the estimate is printed before writing."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import boto3
import pytest

from functions.shared.candles import MINUTE_MS
from functions.shared.price_table.candles import read_candles
from functions.shared.price_table.candles import table_definition as candle_table_definition
from functions.shared.price_table.keys import sort_key, table_definition
from ops.rebuild import estimate, rebuild, stored_symbols
from tests.support.candles import pandas_candles
from tests.test_candles_venues import reference_composite

TICKS, CANDLES, SYMBOL = "crypto-prices-rebuild", "price-candles-rebuild", "ETH-USD"
T0 = 1_700_006_400_000
NOW = T0 + 3 * 3_600_000


def today_tick(moment: int, slot: int, price: str, exchange: str) -> dict[str, Any]:
    """A tick item exactly as the webhook and the enricher store it today."""
    return {"symbol": {"S": SYMBOL}, "timestamp": {"N": str(sort_key(moment, slot))}, "price": {"N": price},
            "exchange": {"S": exchange}, "source": {"S": "relay"}, "received_at": {"N": str(moment + 40)},
            "enriched_at": {"N": str(moment + 900)}, "sma_5": {"N": price}, "change_pct": {"N": "0.01"}}


def today_candle(interval: str, start: int, ohlc: str, count: int) -> dict[str, Any]:
    """A blended candle item as `maintain` writes it today (no venues, no volume)."""
    return {"series": {"S": f"{SYMBOL}#{interval}"}, "sk": {"S": f"{start:015d}"}, "ohlc": {"S": ohlc},
            "count": {"N": str(count)}}


@pytest.fixture
def table(moto_endpoint):
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
    dynamodb.create_table(**table_definition(TICKS))
    dynamodb.create_table(**candle_table_definition(CANDLES))
    rng = random.Random(11)
    ticks = []
    for exchange, slot, spacing, basis in (("binance", 17, 20_000, 0), ("coinbase", 523, 45_000, 7)):
        moment = T0 + rng.randrange(spacing)
        while moment < T0 + 95 * MINUTE_MS:
            ticks.append(today_tick(moment, slot, f"{2000 + basis + rng.randint(-30, 30)}.5", exchange))
            moment += spacing + rng.randrange(-5_000, 5_000)
    for item in ticks:
        dynamodb.put_item(TableName=TICKS, Item=item)
    # Blended candles (every exchange's ticks as one series, as `maintain` computes them today)
    # and a registry record, in today's format.
    blended = [(int(item["timestamp"]["N"]), Decimal(item["price"]["N"])) for item in ticks]
    for interval in ("1m", "5m"):
        start, *ohlc, count = pandas_candles(blended, interval)[0]
        dynamodb.put_item(TableName=CANDLES, Item=today_candle(interval, start, " ".join(ohlc), count))
    watermark = T0 + 94 * MINUTE_MS
    dynamodb.put_item(TableName=CANDLES, Item={
        "series": {"S": "#symbols"}, "sk": {"S": SYMBOL}, "materialized_ms": {"N": str(watermark)},
        "version": {"N": "40"}, "batches": {"S": "0123456789abcdef"}, "maintained_ms": {"N": str(watermark)},
        "prefix_1h": {"M": {"o": {"N": "2001.5"}, "h": {"N": "2030.5"}, "l": {"N": "1970.5"}, "c": {"N": "2003.5"},
                            "n": {"N": "150"}}}})
    return dynamodb, ticks


def _read(dynamodb: Any, interval: str, venue: str | None) -> list[tuple[Any, ...]]:
    candles, _ = read_candles(dynamodb, CANDLES, TICKS, SYMBOL, interval, 0, 10**15 - 1, 5000, venue)
    return [(c.start, str(c.open), str(c.high), str(c.low), str(c.close), c.count) for c in candles]


def _scan(dynamodb: Any, name: str) -> list[dict[str, Any]]:
    return sorted(dynamodb.scan(TableName=name)["Items"], key=repr)


def test_rebuild_from_todays_items_gives_venue_candles_and_keeps_every_tick(table, tmp_path, capsys):
    dynamodb, ticks = table
    before = _scan(dynamodb, TICKS)
    symbols = stored_symbols(dynamodb, CANDLES)
    assert symbols == [SYMBOL]
    cost = estimate(dynamodb, TICKS, symbols)
    print(cost.text())
    assert cost.ticks == len(ticks) and cost.write_units > 0 and cost.dollars > 0
    assert "read units" in capsys.readouterr().out

    checkpoint = tmp_path / "rebuild.json"
    done = rebuild(dynamodb, CANDLES, TICKS, symbols, checkpoint, NOW)
    assert done == {SYMBOL: 2}  # two hours of ticks
    assert _scan(dynamodb, TICKS) == before  # no tick rewritten, none lost

    rows = [(int(item["timestamp"]["N"]), Decimal(item["price"]["N"]), item["exchange"]["S"], Decimal(0))
            for item in ticks]
    for venue in ("binance", "coinbase"):
        own = [(key, price) for key, price, name, _ in rows if name == venue]
        for interval in ("1m", "5m", "1h"):
            assert _read(dynamodb, interval, venue) == pandas_candles(own, interval), (venue, interval)
    for interval in ("1m", "5m"):
        assert _read(dynamodb, interval, None) == [row[:6] for row in reference_composite(rows, interval)]
    candles = _scan(dynamodb, CANDLES)

    assert rebuild(dynamodb, CANDLES, TICKS, symbols, checkpoint, NOW) == {SYMBOL: 0}  # resumed: all done
    again = rebuild(dynamodb, CANDLES, TICKS, symbols, tmp_path / "fresh.json", NOW)  # from scratch: idempotent
    assert again == {SYMBOL: 2}
    after = [item for item in _scan(dynamodb, CANDLES) if item["series"]["S"] != "#symbols"]
    assert after == [item for item in candles if item["series"]["S"] != "#symbols"]
