"""TradingView through the front door of the deployed stack: a token sender's alert bodies,
as TradingView sends them (text/plain when the message is not strict JSON to its editor,
application/json otherwise), are stored once and enriched; a re-fired alert is a duplicate;
a wrong token or a signature sent to a token source is the generic 401."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from senders.webhook import signed_post
from tests.e2e.conftest import wait_until


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _alert(source: str, token: str, ticker: str, exchange: str, close: str, timenow: str) -> bytes:
    # The message template of docs/webhook-contract.md with TradingView's placeholders filled in; {{close}} unquoted.
    return (f'{{"source": "{source}", "token": "{token}", "symbol": "{ticker}", "exchange": "{exchange}", '
            f'"price": {close}, "timestamp": "{timenow}"}}').encode()


def _items(stack, symbol: str) -> list[dict]:
    return stack.aws["dynamodb"].query(TableName=stack.running.outputs["table_name"], ConsistentRead=True,
                                       KeyConditionExpression="symbol = :s",
                                       ExpressionAttributeValues={":s": {"S": symbol}})["Items"]


@pytest.mark.parametrize("ticker, exchange, close, content_type, symbol", [
    ("BINANCE:TVBTCUSDT", "BINANCE", "64123.5", "text/plain; charset=utf-8", "TVBTC-USDT"),
    ("TVETH-USD", "COINBASE", "3120.25", "application/json", "TVETH-USD"),
])
def test_a_tradingview_alert_is_stored_once_enriched_and_a_refire_is_a_duplicate(stack, ticker, exchange, close,
                                                                                  content_type, symbol):
    info = stack.running
    source, token = info.token_source
    body = _alert(source, token, ticker, exchange, close, "2026-11-25T10:00:00Z")
    assert _post(info.webhook_url, body, content_type) == (200, {"accepted": 1, "duplicates": 0, "queued": 0,
                                                                  "rejected": []})
    assert _post(info.webhook_url, body, content_type)[1]["duplicates"] == 1  # TradingView fired it twice
    stack.settle()
    assert wait_until(lambda: len(_items(stack, symbol)) == 1 and "enriched_at" in _items(stack, symbol)[0], 30)
    [item] = _items(stack, symbol)
    assert item["price"]["N"] == close and "token" not in item and token not in json.dumps(item)


def test_a_wrong_token_and_a_signature_to_a_token_source_get_the_generic_401(stack):
    info = stack.running
    source, token = info.token_source
    wrong = _alert(source, "not-the-token-0000000", "TVBAD-USD", "KRAKEN", "1.5", "2026-11-25T10:00:00Z")
    assert _post(info.webhook_url, wrong, "text/plain") == (401, {"error": "unauthorized"})
    signed = json.dumps({"symbol": "TVBAD-USD", "price": "1.5", "exchange": "x"}).encode()
    assert signed_post(info.webhook_url, signed, source, token) == (401, {"error": "unauthorized"})
    stack.settle()
    assert _items(stack, "TVBAD-USD") == []


def test_an_alert_without_a_timestamp_is_rejected_with_a_clear_error(stack):
    info = stack.running
    source, token = info.token_source
    body = f'{{"source": "{source}", "token": "{token}", "symbol": "TVNOTS-USD", "exchange": "X", "price": 2}}'
    status, answer = _post(info.webhook_url, body.encode(), "text/plain")
    assert status == 400 and "timestamp" in answer["error"]
