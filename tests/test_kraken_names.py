"""Kraken's own asset and pair names become the symbols readers ask for, by Kraken's published
tables (REST Assets/AssetPairs keys, altnames, websocket names); a name in Kraken's legacy
spelling that the tables do not hold is refused with a clear 400, never stored under a guess."""

from __future__ import annotations

import json

import pytest

from functions.webhook_processor.payloads import load_json, parse_updates
from functions.webhook_processor.symbols import exchange_pair, normalize_symbol

NOW_MS = 1_700_000_001_000


@pytest.mark.parametrize(("raw", "expected"), [
    ("XXBTZUSD", "BTC-USD"),          # REST pair key of BTC/USD
    ("XETHZEUR", "ETH-EUR"),          # REST pair key of ETH/EUR
    ("XETHXXBT", "ETH-BTC"),          # REST pair key of ETH/XBT
    ("XXBTZEUR", "BTC-EUR"),
    ("XXDGZUSD", "DOGE-USD"),         # legacy code XXDG
    ("XLTCZUSD", "LTC-USD"),
    ("XXRPZUSD", "XRP-USD"),
    ("KRAKEN:XXBTZUSD", "BTC-USD"),   # TradingView-style exchange prefix
    ("kraken:XETHZEUR", "ETH-EUR"),
    ("XBT/USD", "BTC-USD"),           # websocket v1 / wsname
    ("XDG/USD", "DOGE-USD"),
    ("BTC/USD", "BTC-USD"),           # websocket v2
    ("XBTUSD", "BTC-USD"),            # altname
    ("XDGUSD", "DOGE-USD"),
    ("KRAKEN:XBTUSDT", "BTC-USDT"),
    ("USDTZUSD", "USDT-USD"),
    ("XXBT/ZUSD", "BTC-USD"),         # asset codes with a separator
    ("XXBT-ZEUR", "BTC-EUR"),
])
def test_kraken_names_become_the_common_symbol(raw, expected):
    assert normalize_symbol(raw, "USD") == expected


@pytest.mark.parametrize("raw", ["XXBTZXYZ", "KRAKEN:XQQQZUSD", "XFOOXXBT", "KRAKEN:ZUSDXABC"])
def test_unknown_names_in_krakens_legacy_spelling_are_refused(raw):
    with pytest.raises(ValueError, match="not a Kraken pair this service knows"):
        normalize_symbol(raw, "USD")


def _parse(body: object) -> tuple[list, list]:
    accepted, rejected, _ = parse_updates(load_json(json.dumps(body).encode()), format_hint=None, source="s",
                                          received_at_ms=NOW_MS, default_event_ms=NOW_MS, default_quote="USD")
    return [update for _, update in accepted], rejected


def test_a_generic_update_with_a_kraken_pair_key_is_stored_under_the_common_symbol():
    [update], rejected = _parse({"symbol": "KRAKEN:XXBTZUSD", "price": "97010.5", "exchange": "kraken"})
    assert rejected == [] and update.symbol == "BTC-USD"


def test_a_generic_update_with_an_unknown_kraken_pair_key_is_rejected_with_the_reason():
    updates, [rejected] = _parse({"symbol": "KRAKEN:XQQQZUSD", "price": "1", "exchange": "kraken"})
    assert updates == []
    assert rejected["error"].startswith("symbol: 'XQQQZUSD' is not a Kraken pair this service knows")


def test_the_kraken_rest_ticker_uses_the_same_table():
    ticker = {"a": ["1.1", "1", "1.000"], "b": ["1.0", "1", "1.000"], "c": ["1.05", "0.1"], "v": ["5", "20"]}
    updates, rejected = _parse({"error": [], "result": {"XETHZEUR": ticker, "XQQQZUSD": ticker}})
    assert [u.symbol for u in updates] == ["ETH-EUR"]
    assert updates[0].volume is None and str(updates[0].volume_24h) == "20"
    assert rejected[0]["error"].startswith("result.XQQQZUSD: 'XQQQZUSD' is not a Kraken pair")


@pytest.mark.parametrize(("raw", "expected"), [("BTCUSDT", "BTC-USDT"), ("BTC-USD", "BTC-USD"),
                                               ("XBT/USD", "BTC-USD"), ("ETHBTC", "ETH-BTC")])
def test_an_exchange_pair_names_its_stored_symbol(raw, expected):
    assert exchange_pair(raw) == expected


@pytest.mark.parametrize(("raw", "reason"), [("ADAFDUSD", "ambiguous"), ("BTCPLN", "no quote asset"),
                                             ("XXBTZXYZ", "not a Kraken pair")])
def test_an_exchange_pair_the_webhook_would_refuse_or_invent_is_an_error(raw, reason):
    with pytest.raises(ValueError, match=reason):
        exchange_pair(raw)
