"""Token senders (TradingView alerts: a URL and a body, no custom headers).

A token source names itself in the body's `source` and proves it with `token`; both are removed
before anything else sees the update. Every test here failed on the code before the change.
"""

from __future__ import annotations

import json

import pytest

from functions.shared.price_table.ticks import update_from_item
from functions.webhook_processor import service as webhook
from functions.webhook_processor.signature import parse_secrets
from tests.support.faults import FaultInjector
from tests.support.webhook import (
    ROTATED,
    ROTATED_TOKEN,
    SECRET,
    SENDER_IP,
    SOURCE,
    TOKEN,
    TOKEN_SOURCE,
    TRADINGVIEW_IPS,
    body_of,
    drain_queue,
    logged_text,
    scan_items,
    token_event,
    url_event,
)

TABLE = "crypto-prices-tokens"
OPEN_SOURCE, OPEN_TOKEN = "tv-anywhere", "open-token-00112233445566778899"
ALERT_TIME = "2024-05-01T12:00:00Z"
ALERT_MS = 1_714_564_800_000
NOW = ALERT_MS / 1000 + 1.5  # TradingView posts the alert a moment after it fires
SECRETS = {
    SOURCE: [SECRET, ROTATED],                                   # today's form: HMAC
    TOKEN_SOURCE: {"auth": "token", "secrets": [TOKEN, ROTATED_TOKEN], "allowed_ips": TRADINGVIEW_IPS},
    OPEN_SOURCE: {"auth": "token", "secrets": [OPEN_TOKEN]},    # no IP restriction
    "relay": {"auth": "hmac", "secrets": ["relay-secret"], "allowed_ips": ["10.0.0.0/8"]},
}
UNAUTHORIZED = {"error": "unauthorized"}


pytestmark = pytest.mark.webhook(TABLE, secrets=SECRETS)  # the `aws` fixture (tests/conftest.py)


def call(aws, event, now: float = NOW):
    dynamodb, sqs, settings = aws
    return webhook.process(event, settings, dynamodb, sqs, now)


def raw_items(aws) -> list[dict]:
    return scan_items(aws[0], TABLE)


def alert(ticker: str = "BTCUSDT", exchange: str = "BINANCE", close: object = 64012.5, *, token: str = TOKEN,
          source: str = TOKEN_SOURCE, timestamp: str | None = ALERT_TIME) -> dict:
    """The body TradingView sends for the recommended message template, placeholders filled in."""
    body = {"source": source, "token": token, "symbol": ticker, "exchange": exchange, "price": close}
    if timestamp is not None:
        body["timestamp"] = timestamp
    return body


def raw_alert(close_literal: str, **kwargs) -> str:
    """The template's text with {{close}} substituted as TradingView does: a bare number in the JSON."""
    body = alert(close="@@CLOSE@@", **kwargs)
    return json.dumps(body).replace('"@@CLOSE@@"', close_literal)


# ---- accepted alerts ---------------------------------------------------------------------------

@pytest.mark.parametrize("ticker, exchange, close, symbol, price", [
    ("BTCUSDT", "BINANCE", "64012.5", "BTC-USDT", "64012.5"),
    ("BTCUSDT", "BINANCE", "64012.50000000", "BTC-USDT", "64012.50000000"),
    ("XBTUSD", "KRAKEN", "64010.1", "BTC-USD", "64010.1"),
    ("ETHUSD", "COINBASE", "3001.27", "ETH-USD", "3001.27"),
    ("BINANCE:BTCUSDT", "BINANCE", "64012.5", "BTC-USDT", "64012.5"),
    ("KRAKEN:DOTUSD", "KRAKEN", "7.0412", "DOT-USD", "7.0412"),
    ("KRAKEN:XBTUSD", "KRAKEN", "64010.1", "BTC-USD", "64010.1"),
    ("COINBASE:ETHUSD", "COINBASE", "3001.27", "ETH-USD", "3001.27"),
    ("SHIBUSDT", "BINANCE", "0.00002512", "SHIB-USDT", "0.00002512"),
])
@pytest.mark.parametrize("as_string", [False, True])
def test_tradingview_alerts_are_stored(aws, ticker, exchange, close, symbol, price, as_string):
    text = json.dumps(alert(ticker, exchange, close)) if as_string else raw_alert(close, ticker=ticker,
                                                                                 exchange=exchange)
    response = call(aws, token_event(text))
    assert response["statusCode"] == 200, body_of(response)
    assert body_of(response) == {"accepted": 1, "duplicates": 0, "queued": 0, "rejected": []}
    [item] = raw_items(aws)
    update = update_from_item(item)
    assert (update.symbol, update.event_ms, str(update.price), update.exchange, update.source) == (
        symbol, ALERT_MS, price, exchange.lower(), TOKEN_SOURCE)
    assert "token" not in item and item["source"] == {"S": TOKEN_SOURCE}  # the body's fields are not stored
    assert TOKEN not in json.dumps(item)


@pytest.mark.parametrize("stamp, event_ms", [
    ("2024-05-01T12:00:00Z", ALERT_MS), ("2024-05-01T12:00:00.250Z", ALERT_MS + 250),
    ("2024-05-01T14:00:00+02:00", ALERT_MS), (str(ALERT_MS), ALERT_MS), ("1714564800", ALERT_MS),
])
def test_iso_and_epoch_alert_times(aws, stamp, event_ms):
    assert body_of(call(aws, token_event(alert(timestamp=stamp))))["accepted"] == 1
    assert update_from_item(raw_items(aws)[0]).event_ms == event_ms


def test_a_batch_names_source_and_token_once(aws):
    batch = {"source": TOKEN_SOURCE, "token": TOKEN, "updates": [
        {"symbol": "BTCUSDT", "exchange": "BINANCE", "price": 64012.5, "timestamp": ALERT_TIME},
        {"symbol": "ETHUSDT", "exchange": "BINANCE", "price": "3001.1", "timestamp": ALERT_TIME},
        {"symbol": "ETHUSDT", "exchange": "BINANCE", "price": -1, "timestamp": ALERT_TIME}]}
    result = body_of(call(aws, token_event(batch)))
    assert result == {"accepted": 2, "duplicates": 0, "queued": 0,
                      "rejected": [{"index": 2, "error": "price: must be greater than 0"}]}


def test_both_tokens_are_valid_during_rotation(aws):
    assert body_of(call(aws, token_event(alert(close=1))))["accepted"] == 1
    assert body_of(call(aws, token_event(alert(close=2, token=ROTATED_TOKEN))))["accepted"] == 1


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", "text/plain", "application/json", ""])
@pytest.mark.parametrize("base64_body", [False, True])
def test_text_plain_bodies_holding_json_are_accepted(aws, content_type, base64_body):
    event = token_event(raw_alert("64012.5"), content_type=content_type, base64_body=base64_body)
    assert call(aws, event)["statusCode"] == 200
    assert len(raw_items(aws)) == 1


def test_a_replayed_or_retried_alert_is_a_duplicate(aws):
    event = token_event(raw_alert("64012.5"))
    assert body_of(call(aws, event))["accepted"] == 1
    assert body_of(call(aws, event, now=NOW + 3600)) == {"accepted": 0, "duplicates": 1, "queued": 0, "rejected": []}
    assert len(raw_items(aws)) == 1


def test_an_alert_without_a_timestamp_is_rejected_with_a_clear_error(aws):
    response = call(aws, token_event(alert(timestamp=None)))
    assert response["statusCode"] == 400
    assert body_of(response)["error"].startswith("timestamp: is required")
    assert "{{timenow}}" in body_of(response)["error"]
    assert raw_items(aws) == []


def test_a_token_source_without_ip_restriction_accepts_any_ip(aws):
    assert call(aws, token_event(alert(source=OPEN_SOURCE, token=OPEN_TOKEN), source_ip=SENDER_IP))[
        "statusCode"] == 200


# ---- rejected requests: one generic 401 -------------------------------------------------------

def _signed_to_token_source() -> dict:
    body = json.dumps({"symbol": "BTCUSDT", "exchange": "BINANCE", "price": 1, "timestamp": ALERT_TIME})
    return url_event(body, source=TOKEN_SOURCE, secrets=[TOKEN], timestamp=int(NOW), source_ip=TRADINGVIEW_IPS[0])


UNAUTHENTICATED = {
    "wrong token": lambda: token_event(alert(token="tv-token-0123456789abcdeX")),
    "empty token": lambda: token_event(alert(token="")),
    "token of another token source": lambda: token_event(alert(token=OPEN_TOKEN)),
    "disallowed ip": lambda: token_event(alert(), source_ip=SENDER_IP),
    "garbage ip": lambda: token_event(alert(), source_ip="not-an-ip"),
    "token to an hmac source": lambda: token_event(alert(source=SOURCE, token=SECRET)),
    "signature to a token source": _signed_to_token_source,
    "unknown source": lambda: token_event(alert(source="tv-other")),
    "no source": lambda: token_event({k: v for k, v in alert().items() if k != "source"}),
    "no token": lambda: token_event({k: v for k, v in alert().items() if k != "token"}),
    "token not a string": lambda: token_event(dict(alert(), token=[TOKEN])),
    "source not a string": lambda: token_event(dict(alert(), source={"id": TOKEN_SOURCE})),
    "credentials inside an array": lambda: token_event([alert()]),
    "credentials inside an update": lambda: token_event({"updates": [alert()]}),
    "not json (text/plain)": lambda: token_event(f"source={TOKEN_SOURCE} token={TOKEN} BTCUSDT 64012.5",
                                                 content_type="text/plain"),
    "hmac source from outside its allowed ips": lambda: url_event(
        json.dumps(alert(timestamp=ALERT_TIME)), source="relay", secrets=["relay-secret"], timestamp=int(NOW)),
}


@pytest.mark.parametrize("case", UNAUTHENTICATED, ids=list(UNAUTHENTICATED))
def test_unauthenticated_token_requests_get_the_generic_401(aws, case, service_log):
    response = call(aws, UNAUTHENTICATED[case]())
    assert response["statusCode"] == 401
    assert body_of(response) == UNAUTHORIZED
    assert raw_items(aws) == [] and drain_queue(aws[1], aws[2].dlq_url) == []
    logged = logged_text(service_log)
    assert TOKEN not in logged and OPEN_TOKEN not in logged and SECRET not in logged
    assert any(getattr(r, "reason", None) for r in service_log.records)


def test_the_hmac_source_with_an_allowed_ip_passes(aws):
    body = json.dumps({"symbol": "BTC-USD", "exchange": "kraken", "price": 1, "timestamp": ALERT_TIME})
    event = url_event(body, source="relay", secrets=["relay-secret"], timestamp=int(NOW), source_ip="10.1.2.3")
    assert call(aws, event)["statusCode"] == 200


def test_the_token_is_never_stored_logged_echoed_or_queued(aws, service_log):
    dynamodb = aws[0]
    FaultInjector(lambda n, _: ("AccessDeniedException", 400) if n == 1 else None).attach(dynamodb, "PutItem")
    batch = {"source": TOKEN_SOURCE, "token": TOKEN, "updates": [
        {"symbol": "BTCUSDT", "exchange": "BINANCE", "price": 1, "timestamp": ALERT_TIME},
        {"symbol": "ETHUSDT", "exchange": "BINANCE", "price": 2, "timestamp": ALERT_TIME},
        {"symbol": TOKEN, "exchange": "BINANCE", "price": 2, "timestamp": ALERT_TIME, "token": TOKEN},
        {"symbol": "ETHUSDT", "exchange": "BINANCE", "price": TOKEN, "timestamp": TOKEN}]}
    response = call(aws, token_event(batch))
    assert response["statusCode"] == 202
    everything = response["body"] + json.dumps(raw_items(aws)) + json.dumps(drain_queue(aws[1], aws[2].dlq_url))
    everything += logged_text(service_log)
    assert TOKEN not in everything


# ---- the secrets document ---------------------------------------------------------------------

@pytest.mark.parametrize("document, message", [
    ('{"tv": {"auth": "bearer", "secrets": ["0123456789abcdef"]}}', "WEBHOOK_SECRETS.tv.auth: "),
    ('{"tv": {"auth": "token", "secrets": ["0123456789abcdef"], "ips": []}}', "WEBHOOK_SECRETS.tv.ips: "),
    ('{"tv": {"auth": "token", "secrets": []}}', "WEBHOOK_SECRETS.tv.secrets: "),
    ('{"tv": {"auth": "token"}}', "WEBHOOK_SECRETS.tv.secrets: "),
    ('{"tv": {"auth": "token", "secrets": "0123456789abcdef"}}', "WEBHOOK_SECRETS.tv.secrets: "),
    ('{"tv": {"auth": "token", "secrets": ["short-s3cret"]}}', "at least 16 characters"),
    ('{"tv": {"auth": "token", "secrets": ["0123456789abcdef"], "allowed_ips": ["52.89.214.300"]}}',
     "WEBHOOK_SECRETS.tv.allowed_ips.0: "),
    ('{"tv": {"auth": "token", "secrets": ["0123456789abcdef"], "allowed_ips": []}}',
     "WEBHOOK_SECRETS.tv.allowed_ips: "),
    ('{"tv": {"auth": "token", "secrets": ["0123456789abcdef"], "allowed_ips": "52.89.214.238"}}',
     "WEBHOOK_SECRETS.tv.allowed_ips: "),
    ('{"tv": ["s3cret-one", ""]}', "WEBHOOK_SECRETS.tv"),
    ('{"tv": []}', "WEBHOOK_SECRETS.tv"),
    ('{"tv": 5}', "WEBHOOK_SECRETS.tv"),
    ('{"tv": "s3cret-one", "tv": "s3cret-two"}', "WEBHOOK_SECRETS: key 'tv' appears twice"),
    ('{"bad id!": "s3cret-one"}', "WEBHOOK_SECRETS: source ids must"),
    ('["s3cret-one"]', "WEBHOOK_SECRETS must be a JSON object"),
    ('{"tv": "s3cret-one"', "WEBHOOK_SECRETS is not valid JSON"),
])
def test_the_secrets_document_is_validated_strictly_without_echoing_secrets(document, message):
    with pytest.raises(ValueError) as raised:
        parse_secrets(document)
    text = str(raised.value)
    assert text.startswith(message) or message in text, text
    assert "\n" not in text and len(text) < 200
    for secret in ("0123456789abcdef", "short-s3cret", "s3cret-one", "s3cret-two"):
        assert secret not in text


def test_the_secrets_document_accepts_every_form(aws):
    parsed = parse_secrets(json.dumps(SECRETS))
    assert set(parsed) == set(SECRETS)
    for form in ('{"a": "s"}', '{"a": ["s", "t"]}', '{"a": {"secrets": ["s"]}}', '{"a": {"auth": "hmac", '
                 '"secrets": ["s", "t"], "allowed_ips": ["2001:db8::/32", "10.0.0.1"]}}', "{}", ""):
        parse_secrets(form)
    assert TOKEN not in repr(parsed) and SECRET not in repr(parsed)
