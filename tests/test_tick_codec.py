"""The tick item's codec agrees with itself: what the webhook stores (`ticks.to_item`), the
enricher parses from a stream record (`items.stream_record`, `planner.parse_record`), and the
read API answers (`reads.tick_from_item`) are the same tick, every optional number included."""

from __future__ import annotations

from decimal import Decimal

import pytest

from functions.price_enricher.planner import parse_record
from functions.shared.price_table.items import OPTIONAL_NUMBERS, stream_record
from functions.shared.price_table.keys import sort_key
from functions.shared.price_table.reads import tick_from_item
from functions.shared.price_table.ticks import plain_item, to_item, update_from_item
from functions.shared.price_update import PriceUpdate

T0 = 1_700_000_000_000
NUMBERS = {"volume": Decimal("0.25"), "bid": Decimal("97000.5"), "ask": Decimal("97001"),
           "volume_24h": Decimal("12345.678"), "trades": Decimal(7)}


def full_update() -> PriceUpdate:
    return PriceUpdate("BTC-USD", T0, Decimal("97000.75"), "kraken", "relay", T0 + 5, **NUMBERS)


def test_the_example_covers_every_optional_number():
    assert set(NUMBERS) == set(OPTIONAL_NUMBERS)


@pytest.mark.parametrize("name", OPTIONAL_NUMBERS)
def test_the_read_api_answers_every_optional_number_the_webhook_stores(name):
    tick = tick_from_item(to_item(full_update(), sort_key(T0, 3)))
    assert Decimal(tick[name]) == NUMBERS[name]


def test_the_read_api_leaves_out_the_optional_numbers_a_tick_lacks():
    tick = tick_from_item(to_item(PriceUpdate("BTC-USD", T0, Decimal(1), "kraken", "relay", T0), sort_key(T0, 0)))
    assert not set(OPTIONAL_NUMBERS) & set(tick)


def test_a_stored_item_reads_back_as_its_update_and_its_plain_values():
    update = full_update()
    item = to_item(update, sort_key(T0, 3), stored_at_ms=T0 + 9)
    assert update_from_item(item) == update
    assert plain_item(item) == {"symbol": "BTC-USD", "timestamp": Decimal(sort_key(T0, 3)), "price": update.price,
                                "exchange": "kraken", "source": "relay", "received_at": Decimal(T0 + 5),
                                "stored_at": Decimal(T0 + 9), **NUMBERS}


def test_a_stream_record_is_what_the_enricher_parses():
    item = to_item(full_update(), sort_key(T0, 3))
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/crypto-prices/stream/x"
    record = stream_record(item, 42, arn)
    parsed = parse_record(record)
    assert (parsed.sequence_number, parsed.symbol, parsed.timestamp, parsed.price, parsed.venue) == (
        "42", "BTC-USD", sort_key(T0, 3), Decimal("97000.75"), "kraken")
    assert record["dynamodb"]["Keys"] == {"symbol": item["symbol"], "timestamp": item["timestamp"]}
    assert (record["eventName"], record["eventSourceARN"], record["awsRegion"]) == ("INSERT", arn, "eu-west-1")


def test_a_remove_record_carries_the_keys_only():
    item = to_item(full_update(), sort_key(T0, 3))
    body = stream_record(item, 1, event_name="REMOVE")["dynamodb"]
    assert "NewImage" not in body and body["Keys"]["timestamp"] == item["timestamp"]
