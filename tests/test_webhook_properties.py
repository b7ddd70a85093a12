"""Property: whatever arrives, the handler answers; client errors are 4xx and write nothing;
nothing is written from an unsigned, unauthenticated or invalid request.

Requests are generated across both authentication modes (HMAC headers, body tokens), with
fuzzed signature headers (non-ASCII digits in t, random and duplicated parts, huge headers),
every `?format=` value, exchange-shaped envelopes with wrong types inside, and source IPs.
The suite's thorough mode (`invoke test --thorough`) runs 10,000 examples.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
from hypothesis import event as label
from hypothesis import given
from hypothesis import strategies as st

from functions.webhook_processor import service as webhook
from functions.webhook_processor.signature import parse_secrets, sign, signature_header
from tests.support.webhook import SECRET, SENDER_IP, SOURCE, TOKEN, TOKEN_SOURCE, TRADINGVIEW_IPS, create_table

TABLE = "crypto-prices-props"
SECRETS = {SOURCE: SECRET,
           TOKEN_SOURCE: {"auth": "token", "secrets": [TOKEN], "allowed_ips": TRADINGVIEW_IPS}}

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(max_size=20), st.sampled_from(["1e999", "NaN", "-0", "0.0", "BTC", "", "1_000",
                                                                "1" * 45, "0E-200", "\u0661"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
symbols = st.one_of(
    st.sampled_from(["BTC", "ETHUSDT", "XBT/USD", "btc-usd", "A-B-C", "", "XBTUSD", "DOTUSD", "LPTUSD",
                     "BINANCE:BTCUSDT", "KRAKEN:XBTUSD", "BTC\n/USD", "BTC-USD\n", "\u00dfTC", "XXBTZUSD"]),
    st.text(max_size=8))
near_updates = st.fixed_dictionaries(
    {"symbol": symbols,
     "price": st.one_of(st.decimals(allow_nan=False, allow_infinity=False).map(str), json_scalars)},
    optional={"exchange": st.one_of(st.sampled_from(["binance", "Kraken", "bad exchange", "BINANCE"]), json_scalars),
              "timestamp": st.one_of(st.integers(-10, 10**19), st.sampled_from(
                  ["2024-01-01T00:00:00Z", "x", "2024-05-01T12:00:00.250+02:00", "\u0661\u0667"])),
              "volume": json_scalars, "bid": json_scalars, "ask": json_scalars})
tradingview_alerts = st.fixed_dictionaries({
    "symbol": st.sampled_from(["BTCUSDT", "XBTUSD", "ETHUSD", "BINANCE:BTCUSDT", "SHIBUSDT", "{{ticker}}"]),
    "exchange": st.sampled_from(["BINANCE", "KRAKEN", "COINBASE", "{{exchange}}"]),
    "price": st.one_of(st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False).map(str),
                       st.integers(1, 10**6), st.just("{{close}}")),
}, optional={"timestamp": st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01T12:00:01Z", "{{timenow}}"])})
exchange_envelopes = st.one_of(
    st.fixed_dictionaries({"stream": st.text(max_size=10), "data": json_values}),
    st.fixed_dictionaries({"e": st.just("24hrTicker"), "s": symbols, "c": json_scalars, "E": json_scalars}),
    st.fixed_dictionaries({"symbol": symbols, "lastPrice": json_scalars}),
    st.fixed_dictionaries({"type": st.just("ticker"), "product_id": json_values, "price": json_scalars}),
    st.fixed_dictionaries({"channel": st.just("ticker"), "data": st.one_of(
        json_values, st.lists(st.one_of(json_values, near_updates.map(lambda u: dict(u, last=u["price"]))),
                              max_size=3))}),
    st.fixed_dictionaries({"error": st.one_of(st.just([]), json_values), "result": st.one_of(
        json_values, st.dictionaries(st.sampled_from(["XXBTZUSD", "DOTUSD", "LPTUSD", "X"]), st.one_of(
            json_values, st.fixed_dictionaries({"c": st.lists(json_scalars, max_size=2)})), max_size=3))}),
)
valid_updates = st.fixed_dictionaries({
    "symbol": st.sampled_from(["BTC", "ETHUSDT", "XBT/USD", "btc-usd", "XBTUSD", "BINANCE:BTCUSDT", "SOL-EUR"]),
    "price": st.one_of(st.decimals(min_value="0.00000001", max_value=10**7, places=8).map(str),
                       st.integers(1, 10**7)),
    "exchange": st.sampled_from(["binance", "Kraken", "COINBASE"]),
}, optional={"timestamp": st.one_of(st.integers(1_600_000_000, 1_700_000_000), st.sampled_from(
    ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.250+02:00", "1714564800000"])),
    "volume": st.integers(0, 10**6)})
elements = st.one_of(near_updates, exchange_envelopes, tradingview_alerts, valid_updates, valid_updates)
payloads = st.one_of(
    json_values,
    elements,
    st.lists(elements, max_size=5),
    st.lists(elements, max_size=3).map(lambda v: {"updates": v}),
)
timed_alerts = st.fixed_dictionaries({   # TradingView alerts as docs/webhook-contract.md's template produces them
    "symbol": st.sampled_from(["BTCUSDT", "XBTUSD", "ETHUSD", "BINANCE:BTCUSDT", "KRAKEN:DOTUSD", "LPTUSD"]),
    "exchange": st.sampled_from(["BINANCE", "KRAKEN", "COINBASE"]),
    "price": st.one_of(st.floats(min_value=1e-8, max_value=1e6),  # a bare JSON number, as {{close}} gives
                       st.decimals(min_value="0.00000001", max_value=10**6, places=8).map(str)),
    "timestamp": st.one_of(st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01T12:00:01Z"]),
                           st.integers(1_600_000_000_000, 1_700_000_000_000)),
})
token_payloads = st.one_of(timed_alerts, st.lists(st.one_of(timed_alerts, elements), max_size=4), payloads)
bodies = st.one_of(st.binary(max_size=200), payloads.map(lambda v: json.dumps(v).encode()))

# Signature headers: t in ASCII, Unicode and junk digits, v1 lists, missing parts, duplicates, huge.
t_values = st.one_of(st.just("@stamp"), st.integers(-10**13, 10**13).map(str),
                     st.text(alphabet="0123456789\u00b2\u00b3\u0661\u0662\u0669\uff11\uff12+- ", max_size=14),
                     st.text(max_size=14))
v1_values = st.one_of(st.just("@valid"), st.text(alphabet="0123456789abcdefABCDEF", min_size=60, max_size=66),
                      st.text(max_size=70))
header_parts = st.lists(st.one_of(
    st.tuples(st.just("t"), t_values), st.tuples(st.just("v1"), v1_values),
    st.tuples(st.sampled_from(["v0", "", "T", "v2", " t"]), st.text(max_size=10))), max_size=6)
fuzzed_headers = st.one_of(
    header_parts.map(lambda parts: ",".join(f"{name}={value}" for name, value in parts)),
    st.text(max_size=60),
    st.integers(30, 200).map(lambda n: "t=@stamp," + ",".join(["v1=@valid"] * n)),  # over the size limit
)
HMAC_MODES = ["valid", "none", "wrong-secret", "expired", "garbage", "unknown-source", "fuzzed-header",
              "signed-to-token-source"]
TOKEN_MODES = ["token-valid", "token-wrong", "token-disallowed-ip", "token-to-hmac-source", "token-unknown-source",
               "token-not-a-string", "token-in-array"]
VALID_MODES = {"valid", "token-valid"}
# The valid modes first: Hypothesis draws early entries of sampled_from more often.
MODES = ["valid", "token-valid"] + [m for m in HMAC_MODES + TOKEN_MODES if m not in VALID_MODES]
extra_headers = st.dictionaries(st.sampled_from(["x-source", "x-signature", "content-type", "x-other"]),
                                st.text(max_size=30), max_size=2)
formats = st.one_of(st.none(), st.fixed_dictionaries({"format": st.sampled_from(
    ["generic", "binance", "coinbase", "kraken", "other", "", "BINANCE", "x" * 50])}))


@pytest.fixture
def table(moto_endpoint):
    dynamodb, sqs, queue = create_table(moto_endpoint, TABLE, "dlq-props", webhook.CLIENT_CONFIG)
    settings = webhook.Settings(table_name=TABLE, dlq_url=queue, secrets=parse_secrets(json.dumps(SECRETS)))
    writes, lock = [0], threading.Lock()

    def count_write(http_response, **_) -> None:
        # Every PutItem the table accepted: counted on the wire, independent of what `process` reports
        # (and cheaper than scanning a table that grows over 10,000 examples). Writes run in threads.
        with lock:
            writes[0] += http_response.status_code == 200

    dynamodb.meta.events.register("after-call.dynamodb.PutItem", count_write)
    return dynamodb, sqs, settings, writes


def _token_body(how: str, payload: object, batch: bool) -> bytes:
    source = {"token-to-hmac-source": SOURCE, "token-unknown-source": "stranger"}.get(how, TOKEN_SOURCE)
    token = {"token-wrong": TOKEN[:-1] + "X", "token-to-hmac-source": SECRET}.get(how, TOKEN)
    credentials = {"source": source, "token": [token] if how == "token-not-a-string" else token}
    if batch or not isinstance(payload, dict):
        body: object = dict(credentials, updates=payload if isinstance(payload, list) else [payload])
    else:
        body = dict(payload, **credentials)
    return json.dumps([body] if how == "token-in-array" else body).encode()


@given(body=bodies, payload=token_payloads, batch=st.booleans(), how=st.sampled_from(MODES),
       headers=extra_headers, fuzzed=fuzzed_headers, base64_body=st.booleans(), query=formats,
       source_ip=st.sampled_from(TRADINGVIEW_IPS + [SENDER_IP, "not-an-ip", "::1", None]),
       content_type=st.sampled_from(["application/json", "text/plain; charset=utf-8", "text/plain", None]))
def test_any_request_is_answered_without_5xx_and_unauthenticated_writes_nothing(
        table, body, payload, batch, how, headers, fuzzed, base64_body, query, source_ip, content_type):
    dynamodb, sqs, settings, writes = table
    now = time.time()
    stamp = int(now) - (1000 if how == "expired" else 0)
    if how in TOKEN_MODES:
        body = _token_body(how, payload, batch)
        if how == "token-disallowed-ip":
            source_ip = SENDER_IP if source_ip in TRADINGVIEW_IPS else source_ip  # elsewhere, None or garbage
        elif source_ip not in TRADINGVIEW_IPS:
            source_ip = TRADINGVIEW_IPS[-1]
    request_headers = {k: v for k, v in headers.items() if how == "garbage"}
    if content_type is not None:
        request_headers["content-type"] = content_type
    event = {"version": "2.0", "headers": request_headers, "queryStringParameters": query,
             "requestContext": {"http": {"method": "POST", "sourceIp": source_ip}},
             "body": base64.b64encode(body).decode() if base64_body else body.decode("utf-8", "replace"),
             "isBase64Encoded": base64_body}
    signed = body if base64_body else event["body"].encode()  # a text body is signed on its UTF-8 bytes
    valid_signature = sign(SECRET, stamp, signed)
    if how in HMAC_MODES and how not in ("none", "garbage"):
        request_headers["x-source"] = {"unknown-source": "stranger",
                                       "signed-to-token-source": TOKEN_SOURCE}.get(how, SOURCE)
        secret = {"wrong-secret": "wrong", "signed-to-token-source": TOKEN}.get(how, SECRET)
        request_headers["x-signature"] = signature_header([secret], stamp, signed)
        if how == "fuzzed-header":
            request_headers["x-signature"] = fuzzed.replace("@stamp", str(stamp)).replace("@valid", valid_signature)

    before = writes[0]
    response = webhook.process(event, settings, dynamodb, sqs, now)  # never raises
    written = writes[0] - before
    status = response["statusCode"]
    result = json.loads(response["body"])
    label(f"{how} -> {status}{' with writes' if written else ''}")

    assert status < 500
    fuzzed_may_pass = how == "fuzzed-header" and valid_signature in request_headers["x-signature"]
    if how not in VALID_MODES and not fuzzed_may_pass:
        assert status == 401 and written == 0 and result == {"error": "unauthorized"}
    if status == 401:
        assert result == {"error": "unauthorized"} and written == 0
    if status >= 400:
        assert written == 0 and "error" in result
        assert TOKEN not in response["body"] and SECRET not in response["body"]
    else:
        assert status == 200
        assert written == result["accepted"]
        assert result["accepted"] + result["duplicates"] + result["queued"] >= 1
        assert TOKEN not in response["body"]
