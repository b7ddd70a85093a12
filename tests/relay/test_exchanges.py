"""Exchange descriptions, exact JSON re-writing, backoff and signing: the relay's pure parts."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from decimal import Decimal

import pytest

from price_relay import jsontext
from price_relay.backoff import full_jitter
from price_relay.config import Secret
from price_relay.exchanges import EXCHANGES, FrameKind, get_exchange
from price_relay.webhook import Outcome, WebhookAnswer, endpoint, signature_header
from tests.relay import frames


@pytest.mark.parametrize(("exchange", "raw", "expected"), [
    ("binance", "btcusdt", "BTCUSDT"), ("binance", " ETHUSDT ", "ETHUSDT"),
    ("coinbase", "btc-usd", "BTC-USD"), ("kraken", "btc/usd", "BTC/USD"), ("kraken", "XBT/EUR", "XBT/EUR"),
])
def test_symbols_are_written_the_exchange_way(exchange: str, raw: str, expected: str) -> None:
    assert get_exchange(exchange).normalize_symbol(raw) == expected


@pytest.mark.parametrize(("exchange", "raw"), [
    ("binance", "BTC-USDT"), ("binance", "BTC/USDT"), ("binance", "BTC"), ("coinbase", "BTCUSD"),
    ("coinbase", "BTC/USD"), ("kraken", "BTC-USD"), ("kraken", "BTCUSD"), ("kraken", "BTC/US$"),
])
def test_a_symbol_in_another_style_is_refused_with_an_example(exchange: str, raw: str) -> None:
    spec = get_exchange(exchange)
    with pytest.raises(ValueError, match=f"written like {spec.symbol_example}"):
        spec.normalize_symbol(raw)


def test_unknown_exchange_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="use one of binance, coinbase, kraken"):
        get_exchange("bitstamp")


def test_binance_url_names_the_ticker_streams() -> None:
    binance = get_exchange("binance")
    assert binance.ws_url(("BTCUSDT", "ETHUSDT"), None) == \
        "wss://stream.binance.com:9443/stream?streams=btcusdt@ticker/ethusdt@ticker"
    assert binance.ws_url(("BTCUSDT",), "ws://127.0.0.1:9/stream") == "ws://127.0.0.1:9/stream?streams=btcusdt@ticker"
    assert binance.ws_url(("BTCUSDT",), "ws://gw/stream?streams=x@ticker") == "ws://gw/stream?streams=x@ticker"
    assert binance.subscribe_messages(("BTCUSDT",)) == []
    assert binance.default_max_connection_seconds == 23 * 3600 + 50 * 60


def test_coinbase_and_kraken_subscribe_as_documented() -> None:
    assert json.loads(get_exchange("coinbase").subscribe_messages(("BTC-USD", "ETH-USD"))[0]) == {
        "type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channels": ["ticker", "heartbeat"]}
    kraken = get_exchange("kraken")
    assert json.loads(kraken.subscribe_messages(("BTC/USD",))[0]) == {
        "method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}}
    assert json.loads(kraken.app_ping() or "") == {"method": "ping"}
    assert get_exchange("coinbase").ws_url(("BTC-USD",), None) == "wss://ws-feed.exchange.coinbase.com"
    assert kraken.ws_url(("BTC/USD",), None) == "wss://ws.kraken.com/v2"


@pytest.mark.parametrize(("exchange", "frame", "kind"), [
    ("binance", frames.BINANCE_COMBINED_TICKER, FrameKind.TICKER),
    ("binance", json.dumps(frames.BINANCE_TICKER_EVENT), FrameKind.TICKER),
    ("binance", frames.BINANCE_SUBSCRIBE_RESULT, FrameKind.ACK),
    ("binance", frames.BINANCE_ERROR, FrameKind.ERROR),
    ("coinbase", frames.coinbase_ticker(1), FrameKind.TICKER),
    ("coinbase", frames.COINBASE_SUBSCRIPTIONS, FrameKind.ACK),
    ("coinbase", frames.COINBASE_HEARTBEAT, FrameKind.HEARTBEAT),
    ("coinbase", frames.COINBASE_ERROR, FrameKind.ERROR),
    ("coinbase", '{"type":"status","products":[]}', FrameKind.OTHER),
    ("kraken", frames.KRAKEN_TICKER_SNAPSHOT, FrameKind.TICKER),
    ("kraken", frames.kraken_ticker(1), FrameKind.TICKER),
    ("kraken", frames.KRAKEN_SUBSCRIBE_ACK, FrameKind.ACK),
    ("kraken", frames.KRAKEN_HEARTBEAT, FrameKind.HEARTBEAT),
    ("kraken", frames.KRAKEN_PONG, FrameKind.HEARTBEAT),
    ("kraken", frames.KRAKEN_ERROR, FrameKind.ERROR),
    ("kraken", frames.KRAKEN_STATUS, FrameKind.OTHER),
    ("kraken", "[1, 2]", FrameKind.OTHER),
])
def test_recorded_frames_are_classified(exchange: str, frame: str, kind: FrameKind) -> None:
    assert EXCHANGES[exchange].classify(jsontext.loads(frame)) is kind


def test_event_time_is_added_only_where_missing() -> None:
    kraken = EXCHANGES["kraken"]
    message = jsontext.loads(frames.KRAKEN_TICKER_SNAPSHOT)
    assert kraken.stamp_event_time(message, 1_700_000_000_123) is True
    assert message["data"][0]["timestamp"] == 1_700_000_000_123
    already = {"channel": "ticker", "type": "update",
               "data": [{"symbol": "BTC/USD", "timestamp": "2025-01-01T00:00:00Z"}]}
    assert kraken.stamp_event_time(already, 1) is False and already["data"][0]["timestamp"] == "2025-01-01T00:00:00Z"

    binance = jsontext.loads(frames.BINANCE_COMBINED_TICKER)
    assert EXCHANGES["binance"].stamp_event_time(binance, 5) is False and binance["data"]["E"] == 1672515782136
    no_time = {"type": "ticker", "product_id": "BTC-USD", "price": "1"}
    assert EXCHANGES["coinbase"].stamp_event_time(no_time, 7) is True and no_time["time"] == 7


def test_rewritten_json_keeps_every_number_as_sent() -> None:
    message = jsontext.loads(frames.KRAKEN_TICKER_SNAPSHOT)
    assert jsontext.dumps(message) == frames.KRAKEN_TICKER_SNAPSHOT
    tricky = '{"a":1E-7,"b":740.0,"c":12393906104898154338,"d":123456789.123456789123,"e":"x\\u00e9","f":null}'
    assert jsontext.dumps(jsontext.loads(tricky)) == '{"a":1E-7,"b":740.0,"c":12393906104898154338,' \
        '"d":123456789.123456789123,"e":"x\\u00e9","f":null}'
    assert jsontext.loads(jsontext.dumps(jsontext.loads(tricky)))["d"] == Decimal("123456789.123456789123")
    with pytest.raises(ValueError):
        jsontext.dumps({"x": Decimal("NaN")})


def test_full_jitter_stays_within_its_bounds() -> None:
    rng = random.Random(7)
    for attempt in range(60):
        ceiling = min(2.0, 0.1 * 2 ** attempt)
        samples = [full_jitter(attempt, 0.1, 2.0, rng) for _ in range(50)]
        assert all(0.0 <= s <= ceiling for s in samples)
    assert max(full_jitter(20, 0.1, 2.0, rng) for _ in range(200)) > 1.0  # jitter spans the range


def test_signature_is_hmac_of_timestamp_dot_body() -> None:
    body = b'[{"symbol":"BTC"}]'
    header = signature_header(Secret("s3cret-key"), 1_700_000_000, body)
    expected = hmac.new(b"s3cret-key", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert "s3cret" not in repr(Secret("s3cret-key")) and "s3cret" not in str(Secret("s3cret-key"))


def test_endpoint_adds_the_format() -> None:
    assert endpoint("https://abc.lambda-url.us-east-1.on.aws/", "kraken") == \
        "https://abc.lambda-url.us-east-1.on.aws/?format=kraken"
    assert endpoint("http://127.0.0.1:8080/hook?x=1&format=generic", "binance") == \
        "http://127.0.0.1:8080/hook?x=1&format=binance"


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.DELIVERED), (202, Outcome.DELIVERED), (500, Outcome.RETRY), (503, Outcome.RETRY),
    (429, Outcome.RETRY), (0, Outcome.RETRY), (401, Outcome.RETRY), (400, Outcome.SET_ASIDE),
    (413, Outcome.SET_ASIDE), (404, Outcome.SET_ASIDE),
])
def test_webhook_statuses_map_to_outcomes(status: int, outcome: Outcome) -> None:
    assert WebhookAnswer(status=status).outcome is outcome
