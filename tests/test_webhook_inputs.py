"""Webhook inputs that once broke it: each test reproduces a reported bug through `process` against moto.

Every test here failed on the code before its fix (see the report of the change).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from functions.shared.price_table.ticks import update_from_item
from functions.webhook_processor import service as webhook
from functions.webhook_processor.signature import sign
from tests.support.webhook import (
    KRAKEN_REST,
    SECRET,
    body_of,
    drain_queue,
    logged_text,
    scan_items,
    url_event,
)

TABLE = "crypto-prices-inputs"
NOW = 1_700_000_100


pytestmark = pytest.mark.webhook(TABLE)  # the `aws` fixture (tests/conftest.py): table, DLQ, settings


def call(aws, event, now: float = NOW):
    dynamodb, sqs, settings = aws
    return webhook.process(event, settings, dynamodb, sqs, now)


def stored(aws) -> list:
    return [update_from_item(item) for item in scan_items(aws[0], TABLE)]


def queued(aws) -> list:
    return drain_queue(aws[1], aws[2].dlq_url)


# ---- a retried or replayed request without timestamps is stored again ----------------

NO_TIMESTAMP = json.dumps({"symbol": "BTC-USD", "price": "37000.5", "exchange": "binance"})


def test_same_signed_request_without_timestamp_twice_is_stored_once(aws):
    event = url_event(NO_TIMESTAMP, timestamp=NOW)
    first = call(aws, event, now=NOW + 0.2)
    # The sender retries the very same signed request 40 s later (after a 500, or an attacker replays it).
    second = call(aws, event, now=NOW + 40.7)
    assert body_of(first) == {"accepted": 1, "duplicates": 0, "queued": 0, "rejected": []}
    assert body_of(second) == {"accepted": 0, "duplicates": 1, "queued": 0, "rejected": []}
    [update] = stored(aws)
    assert update.event_ms == NOW * 1000  # the signed t, not the receive time


def test_kraken_rest_replayed_stores_each_pair_once(aws):
    event = url_event(json.dumps(KRAKEN_REST), timestamp=NOW)
    assert body_of(call(aws, event, now=NOW + 1))["accepted"] == 2
    assert body_of(call(aws, event, now=NOW + 3)) == {"accepted": 0, "duplicates": 2, "queued": 0, "rejected": []}
    assert sorted((u.symbol, u.event_ms) for u in stored(aws)) == [("BTC-USD", NOW * 1000), ("ETH-EUR", NOW * 1000)]


def test_a_resigned_request_is_a_new_tick_at_its_new_signed_time(aws):
    """Pins the documented contract: only the same signed request is recognized as a retry."""
    call(aws, url_event(NO_TIMESTAMP, timestamp=NOW), now=NOW)
    assert body_of(call(aws, url_event(NO_TIMESTAMP, timestamp=NOW + 5), now=NOW + 5))["accepted"] == 1
    assert [u.event_ms for u in stored(aws)] == [NOW * 1000, (NOW + 5) * 1000]


# ---- compact symbols split at the wrong place ----------------------------------------

def _generic(symbol: str, exchange: str) -> dict:
    return {"symbol": symbol, "price": "1.5", "exchange": exchange, "timestamp": 1_700_000_000_000}


def _binance_rest(symbol: str) -> dict:
    return {"symbol": symbol, "lastPrice": "1.5", "bidPrice": "1.4", "askPrice": "1.6", "volume": "10",
            "closeTime": 1_700_000_000_000}


def _coinbase(product_id: str) -> dict:
    return {"type": "ticker", "product_id": product_id, "price": "1.5", "best_bid": "1.4", "best_ask": "1.6",
            "volume_24h": "10", "time": "2023-11-14T22:13:20.000Z"}


def _kraken_ws(symbol: str) -> dict:
    return {"channel": "ticker", "type": "update", "data": [
        {"symbol": symbol, "bid": 1.4, "ask": 1.6, "last": 1.5, "volume": 10, "timestamp": "2023-11-14T22:13:20Z"}]}


def _kraken_rest(pair: str) -> dict:
    return {"error": [], "result": {pair: {"a": ["1.6", "1", "1"], "b": ["1.4", "1", "1"], "c": ["1.5", "1"],
                                           "v": ["5", "10"]}}}


AMBIGUOUS = "ambiguous"
# (how it is sent, symbol as the exchange spells it, expected pair or AMBIGUOUS / an error fragment)
REAL_SYMBOLS = [
    # Binance spot (REST /api/v3/ticker/24hr and @ticker streams)
    ("binance", "BTCUSDT", "BTC-USDT"),
    ("binance", "ETHBTC", "ETH-BTC"),
    ("binance", "BNBUSDT", "BNB-USDT"),
    ("binance", "BNBBTC", "BNB-BTC"),
    ("binance", "SOLUSDC", "SOL-USDC"),
    ("binance", "ETHEUR", "ETH-EUR"),
    ("binance", "BTCTRY", "BTC-TRY"),
    ("binance", "SHIBUSDT", "SHIB-USDT"),
    ("binance", "1INCHUSDT", "1INCH-USDT"),
    ("binance", "FDUSDUSDT", "FDUSD-USDT"),
    ("binance", "LINKETH", "LINK-ETH"),
    ("binance", "BTCFDUSD", "BTC-FDUSD"),
    ("binance", "ETHFDUSD", "ETH-FDUSD"),
    ("binance", "SOLFDUSD", "SOL-FDUSD"),
    ("binance", "BTCTUSD", "BTC-TUSD"),
    ("binance", "ETHBUSD", "ETH-BUSD"),
    ("binance", "LPTBUSD", AMBIGUOUS),  # LPT-BUSD or LPTB-USD: not in the table, so a separator is asked for
    # Coinbase Exchange product ids
    ("coinbase", "BTC-USD", "BTC-USD"),
    ("coinbase", "ETH-EUR", "ETH-EUR"),
    ("coinbase", "DOT-USD", "DOT-USD"),
    ("coinbase", "SHIB-USD", "SHIB-USD"),
    ("coinbase", "USDT-USD", "USDT-USD"),
    # Kraken websocket v2 and REST pair keys
    ("kraken_ws", "XBT/USD", "BTC-USD"),
    ("kraken_ws", "DOT/USD", "DOT-USD"),
    ("kraken_ws", "XDG/USD", "DOGE-USD"),
    ("kraken_ws", "BTC/EUR", "BTC-EUR"),
    ("kraken_rest", "XXBTZUSD", "BTC-USD"),
    ("kraken_rest", "XETHZEUR", "ETH-EUR"),
    ("kraken_rest", "XETHXXBT", "ETH-BTC"),
    ("kraken_rest", "XBTUSDT", "BTC-USDT"),
    ("kraken_rest", "DOTUSD", "DOT-USD"),
    ("kraken_rest", "USDTZUSD", "USDT-USD"),
    ("kraken_rest", "XDGUSD", "DOGE-USD"),
    ("kraken_rest", "XTZUSD", "XTZ-USD"),
    ("kraken_rest", "LPTUSD", AMBIGUOUS),  # LPT-USD or LP-TUSD
    # Generic senders with Kraken's compact names
    ("generic", "XBTUSD", "BTC-USD"),
    ("generic", "XBTEUR", "BTC-EUR"),
    ("generic", "ETHXBT", "ETH-BTC"),
    # TradingView {{exchange}}:{{ticker}}
    ("generic", "BINANCE:BTCUSDT", "BTC-USDT"),
    ("generic", "KRAKEN:XBTUSD", "BTC-USD"),
    ("generic", "COINBASE:ETHUSD", "ETH-USD"),
    ("generic", "BITSTAMP:BTCUSD", "BTC-USD"),
    ("generic", "KRAKEN:DOTUSD", "DOT-USD"),
    ("generic", "KRAKEN:USDTUSD", "USDT-USD"),
    ("generic", "BINANCEUS:BNBUSD", "BNB-USD"),
    ("generic", "COINBASE:SHIBUSD", "SHIB-USD"),
    ("generic", "COINBASE:ARBUSD", "ARB-USD"),
    ("generic", "COINBASE:GRTUSD", "GRT-USD"),
    ("generic", "BINANCE:BTCUSDT.P", "symbol: must be"),  # a perpetual is not the spot market
    # Bare assets take the default quote
    ("generic", "btc", "BTC-USD"),
    ("generic", "XBT", "BTC-USD"),
]


def _send(kind: str, symbol: str) -> dict:
    if kind == "binance":
        return _binance_rest(symbol)
    if kind == "coinbase":
        return _coinbase(symbol)
    if kind == "kraken_ws":
        return _kraken_ws(symbol)
    if kind == "kraken_rest":
        return _kraken_rest(symbol)
    return _generic(symbol, "tradingview")


@pytest.mark.parametrize("kind, symbol, expected", REAL_SYMBOLS, ids=[f"{k}-{s}" for k, s, _ in REAL_SYMBOLS])
def test_real_exchange_symbols(aws, kind, symbol, expected):
    response = call(aws, url_event(json.dumps(_send(kind, symbol)), timestamp=NOW))
    result = body_of(response)
    if "-" in expected and expected.isupper() and ":" not in expected:
        assert response["statusCode"] == 200, result
        assert [u.symbol for u in stored(aws)] == [expected]
    else:
        assert response["statusCode"] == 400, result
        assert stored(aws) == []
        error = result["rejected"][0]["error"]
        assert expected in error, error
        if expected == AMBIGUOUS:
            assert "separator" in error and symbol.split(":")[-1] in error


def test_the_reported_symbols_are_split_at_the_right_place(aws):
    batch = [_generic(s, "kraken") for s in ("XBTUSD", "DOTUSD", "BNBUSD", "SHIBUSD", "ARBUSD", "KRAKEN:XBTUSD")]
    assert body_of(call(aws, url_event(json.dumps(batch), timestamp=NOW)))["accepted"] == 5  # XBTUSD twice
    assert sorted(u.symbol for u in stored(aws)) == ["ARB-USD", "BNB-USD", "BTC-USD", "DOT-USD", "SHIB-USD"]


@pytest.mark.parametrize("symbol", ["BTC\n/USD", "BTC/USD\nX", "BTC\x00-USD", "BTC-\tUSD", "BTC -USD",
                                    "BTC\u2028USD", "BTC\u00a0USD", "\u00dfTC-USD", "BTC-US\u0110"])
def test_whitespace_control_and_non_ascii_inside_a_symbol_are_rejected(aws, symbol):
    response = call(aws, url_event(json.dumps(_generic(symbol, "x")), timestamp=NOW))
    assert response["statusCode"] == 400, body_of(response)
    assert body_of(response)["rejected"][0]["error"].startswith("symbol: ")
    assert stored(aws) == []


def test_an_ambiguous_symbol_asks_for_a_separator(aws):
    response = call(aws, url_event(json.dumps(_generic("LPTUSD", "kraken")), timestamp=NOW))
    error = body_of(response)["rejected"][0]["error"]
    assert response["statusCode"] == 400
    assert "LPT-USD" in error and "LP-TUSD" in error and "separator" in error
    assert body_of(call(aws, url_event(json.dumps(_generic("LPT-USD", "kraken")), timestamp=NOW)))["accepted"] == 1


def test_exchange_names_cannot_smuggle_a_newline(aws):
    response = call(aws, url_event(json.dumps(_generic("BTC-USD", "bin\nance")), timestamp=NOW))
    assert response["statusCode"] == 400 and stored(aws) == []


# ---- numbers DynamoDB cannot store are queued "safe" forever --------------------------

@pytest.mark.parametrize("field, value, error", [
    ("price", "1." + "1" * 59, "price: must have at most 38 significant digits"),
    ("price", "1" * 60, "price: must have at most 38 significant digits"),
    ("volume", 10 ** 39 + 1, "volume: must have at most 38 significant digits"),
    ("bid", "1." + "0" * 42, "bid: must have at most 38 significant digits"),  # boto3 traps Rounded too
    ("price", "1E+126", "price: is out of range"),
    ("ask", "1E-131", "ask: is out of range"),
    ("volume", "0E-200", "volume: is out of range"),
])
def test_numbers_dynamodb_cannot_store_are_rejected_not_queued(aws, field, value, error):
    update = {"symbol": "BTC-USD", "price": "37000", "exchange": "binance", "timestamp": 1_700_000_000_000,
              field: value}
    single = call(aws, url_event(json.dumps(update), timestamp=NOW))
    assert single["statusCode"] == 400, body_of(single)
    assert body_of(single)["error"].startswith(error), body_of(single)
    good = {"symbol": "ETH-USD", "price": "2000", "exchange": "binance", "timestamp": 1_700_000_000_000}
    batch = call(aws, url_event(json.dumps([good, update]), timestamp=NOW))
    assert batch["statusCode"] == 200
    assert body_of(batch)["rejected"] == [{"index": 1, "error": body_of(single)["error"]}]
    assert [u.symbol for u in stored(aws)] == ["ETH-USD"] and queued(aws) == []


def test_numbers_at_dynamodb_limits_are_stored_exactly(aws):
    update = {"symbol": "BTC-USD", "price": "1." + "2" * 37, "exchange": "binance", "timestamp": 1_700_000_000_000,
              "volume": 10 ** 37 + 1, "bid": "1E-130", "ask": "9.9999999999999999999999999999999999999E+125"}
    assert body_of(call(aws, url_event(json.dumps(update), timestamp=NOW)))["accepted"] == 1
    [row] = stored(aws)
    assert (row.price, row.volume, row.bid, row.ask) == (
        Decimal("1." + "2" * 37), Decimal(10 ** 37 + 1), Decimal("1E-130"),
        Decimal("9.9999999999999999999999999999999999999E+125"))


@pytest.mark.parametrize("value", ["1_000", "\u0661\u0660\u0660", "\uff11\uff10\uff10", "0x10", "1e", ".", "+"])
def test_number_strings_must_be_plain_ascii_decimals(aws, value):
    """Python's Decimal reads "1_000" and non-ASCII digits; a price is what the sender wrote, in ASCII."""
    update = {"symbol": "BTC-USD", "price": value, "exchange": "binance", "timestamp": 1_700_000_000_000}
    response = call(aws, url_event(json.dumps(update), timestamp=NOW))
    assert response["statusCode"] == 400 and body_of(response)["error"] == "price: must be a number"
    assert stored(aws) == []


# ---- a malformed signature header raises out of the handler ---------------------------

VALID_V1 = "0" * 64
MALFORMED_HEADERS = [
    "t=\u00b2,v1=00",                                   # the report: '²'.isdigit() is true, int('²') fails
    f"t=\u00b2,v1={VALID_V1}",
    f"t=\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0661\u0660\u0660,v1={VALID_V1}",  # Arabic-Indic digits
    f"t=\uff11\uff17\uff10\uff10,v1={VALID_V1}",       # fullwidth digits
    f"t=+{NOW},v1={VALID_V1}", f"t=-{NOW},v1={VALID_V1}", f"t= {NOW} x,v1={VALID_V1}",
    f"t={NOW},t={NOW},v1={VALID_V1}",                  # duplicate t
    f"t={NOW}", f"t={NOW},v1=", "v1=" + VALID_V1, "", ",", "=", ",,=,=,", "t", "t=,v1=",
    f"t={NOW},v1=\u00e9" + "0" * 63, f"t={NOW},v1=\ud800", f"t={NOW},v1=zz",
    f"t={NOW}," + ",".join(["v1=" + VALID_V1] * 40),  # over the header limit
    f"t={'9' * 40},v1={VALID_V1}",
]


@pytest.mark.parametrize("header", MALFORMED_HEADERS, ids=range(len(MALFORMED_HEADERS)))
def test_malformed_signature_headers_are_401_never_an_exception(aws, header):
    event = url_event(NO_TIMESTAMP, timestamp=NOW, extra_headers={"x-signature": header})
    response = call(aws, event)
    assert response["statusCode"] == 401
    assert body_of(response) == {"error": "unauthorized"}
    assert stored(aws) == []


def test_unknown_source_and_bad_signature_get_the_same_401_body(aws, service_log):
    caplog = service_log
    unknown = call(aws, url_event(NO_TIMESTAMP, source="no-such-source", timestamp=NOW))
    bad = call(aws, url_event(NO_TIMESTAMP, secrets=["wrong-secret"], timestamp=NOW))
    malformed = call(aws, url_event(NO_TIMESTAMP, timestamp=NOW, extra_headers={"x-signature": "t=\u00b2,v1=00"}))
    assert unknown["statusCode"] == bad["statusCode"] == malformed["statusCode"] == 401
    assert unknown["body"] == bad["body"] == malformed["body"] == json.dumps({"error": "unauthorized"})
    reasons = [getattr(record, "reason", "") for record in caplog.records]
    assert any("unknown source" in r for r in reasons) and any("bad signature" in r for r in reasons)
    assert any("X-Signature must be" in r for r in reasons)
    logged = logged_text(caplog)
    assert "no-such-source" not in logged and "wrong-secret" not in logged and SECRET not in logged
    assert sign("wrong-secret", NOW, NO_TIMESTAMP.encode()) not in logged


# ---- an exchange envelope of the wrong type raises ------------------------------------

@pytest.mark.parametrize("query, element, error", [
    ({"format": "binance"}, {"stream": "btcusdt@ticker", "data": ["x"]}, "data: must be an object"),
    ({"format": "binance"}, {"stream": "btcusdt@ticker", "data": "x"}, "data: must be an object"),
    ({"format": "binance"}, {"stream": "btcusdt@ticker", "data": 5}, "data: must be an object"),
    ({"format": "binance"}, {"stream": "btcusdt@ticker", "data": None}, "data: must be an object"),
    ({"format": "kraken"}, {"channel": "ticker", "data": "x"}, "data: must be a non-empty list"),
    ({"format": "kraken"}, {"channel": "ticker", "data": ["x"]}, "data[0]: must be an object"),
    ({"format": "kraken"}, {"error": [], "result": ["x"]}, "result: must be an object"),
    ({"format": "kraken"}, {"error": [], "result": {"XXBTZUSD": "x"}}, "result.XXBTZUSD: must be an object"),
    ({"format": "kraken"}, {"error": [], "result": {"XXBTZUSD": {"c": "37000"}}}, "result.XXBTZUSD.c[0]"),
    ({"format": "kraken"}, {"error": "x" * 5000, "result": {}}, "error: Kraken reported"),
    ({"format": "coinbase"}, {"type": "ticker", "product_id": ["BTC-USD"], "price": "1"}, "product_id: "),
    ({"format": "binance"}, {"e": "24hrTicker", "s": "BTCUSDT", "c": {"x": 1}, "E": 1}, "c: must be a number"),
    (None, {"stream": "btcusdt@ticker", "data": ["x"]}, "symbol: is required"),  # not Binance-shaped: generic
])
def test_an_envelope_of_the_wrong_type_is_a_400_naming_the_field(aws, query, element, error):
    single = call(aws, url_event(json.dumps(element), query=query, timestamp=NOW))
    assert single["statusCode"] == 400, body_of(single)
    assert body_of(single)["error"].startswith(error), body_of(single)
    assert len(body_of(single)["error"]) < 300
    good = {"symbol": "ETH-USD", "price": "2000", "exchange": "binance", "timestamp": 1_700_000_000_000}
    if query is None:
        batch = call(aws, url_event(json.dumps([element, good]), timestamp=NOW))
        assert body_of(batch)["accepted"] == 1 and body_of(batch)["rejected"][0]["index"] == 0


def test_a_bad_row_of_a_multi_row_envelope_is_rejected_and_the_rest_kept(aws):
    rows = [{"symbol": s, "last": p, "timestamp": "2023-11-14T22:13:20Z"}
            for s, p in (("BTC/USD", 37000), ("ETH/USD", -1), ("SOL/USD", 55))]
    response = call(aws, url_event(json.dumps({"channel": "ticker", "type": "update", "data": rows}), timestamp=NOW))
    result = body_of(response)
    assert result["accepted"] == 2, result
    assert result["rejected"] == [{"index": 0, "error": "data[1].last: must be greater than 0"}]
    assert sorted(u.symbol for u in stored(aws)) == ["BTC-USD", "SOL-USD"]
