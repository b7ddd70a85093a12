"""Property: whatever arrives, the handler answers; client errors are 4xx and write nothing;
nothing is written from an unsigned or invalid request.

The suite's thorough mode (`invoke test --thorough`) runs 10,000 examples.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.webhook_processor import service as webhook
from functions.webhook_processor.signature import parse_secrets, signature_header
from tests.webhook_support import SECRET, SOURCE

TABLE = "crypto-prices-props"

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(max_size=20), st.sampled_from(["1e999", "NaN", "-0", "0.0", "BTC", ""]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
near_updates = st.fixed_dictionaries(
    {"symbol": st.one_of(st.sampled_from(["BTC", "ETHUSDT", "XBT/USD", "btc-usd", "A-B-C", ""]), st.text(max_size=8)),
     "price": st.one_of(st.decimals(allow_nan=False, allow_infinity=False).map(str), json_scalars)},
    optional={"exchange": st.one_of(st.sampled_from(["binance", "Kraken", "bad exchange"]), json_scalars),
              "timestamp": st.one_of(st.integers(-10, 10**19), st.sampled_from(["2024-01-01T00:00:00Z", "x"])),
              "volume": json_scalars, "bid": json_scalars, "ask": json_scalars})
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    near_updates.map(lambda v: json.dumps(v).encode()),
    st.lists(near_updates, max_size=5).map(lambda v: json.dumps(v).encode()),
    st.lists(near_updates, max_size=3).map(lambda v: json.dumps({"updates": v}).encode()),
)
signing = st.sampled_from(["valid", "none", "wrong-secret", "expired", "garbage", "unknown-source"])
extra_headers = st.dictionaries(st.sampled_from(["x-source", "x-signature", "content-type", "x-other"]),
                                st.text(max_size=30), max_size=2)


@pytest.fixture
def table(moto_endpoint):
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint,
                            config=webhook.CLIENT_CONFIG)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_endpoint)
    dynamodb.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "symbol", "KeyType": "HASH"}, {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "symbol", "AttributeType": "S"},
                              {"AttributeName": "timestamp", "AttributeType": "N"}])
    queue = sqs.create_queue(QueueName="dlq-props")["QueueUrl"]
    settings = webhook.Settings(table_name=TABLE, dlq_url=queue, secrets=parse_secrets(json.dumps({SOURCE: SECRET})))
    return dynamodb, sqs, settings


def _count(dynamodb) -> int:
    return dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"]


@given(body=bodies, how=signing, headers=extra_headers, base64_body=st.booleans(),
       query=st.one_of(st.none(), st.fixed_dictionaries({"format": st.sampled_from(
           ["generic", "binance", "coinbase", "kraken", "other"])})))
def test_any_request_is_answered_without_5xx_and_unsigned_writes_nothing(table, body, how, headers, base64_body,
                                                                         query):
    dynamodb, sqs, settings = table
    now = time.time()
    stamp = int(now) - (1000 if how == "expired" else 0)
    request_headers = {k: v for k, v in headers.items() if how == "garbage"}
    if how not in ("none", "garbage"):
        request_headers["x-source"] = "stranger" if how == "unknown-source" else SOURCE
        secret = "wrong" if how == "wrong-secret" else SECRET
        request_headers["x-signature"] = signature_header([secret], stamp, body)
    import base64
    event = {"version": "2.0", "headers": request_headers, "queryStringParameters": query,
             "requestContext": {"http": {"method": "POST"}},
             "body": base64.b64encode(body).decode() if base64_body else body.decode("utf-8", "replace"),
             "isBase64Encoded": base64_body}
    if not base64_body and how == "valid":
        # A text body is signed on its UTF-8 bytes, as the function URL delivers them.
        event["headers"]["x-signature"] = signature_header([SECRET], stamp, event["body"].encode())

    before = _count(dynamodb)
    response = webhook.process(event, settings, dynamodb, sqs, now)
    written = _count(dynamodb) - before
    status = response["statusCode"]
    result = json.loads(response["body"])

    assert status < 500
    if how != "valid":
        assert status == 401 and written == 0
    if status >= 400:
        assert written == 0 and "error" in result
    else:
        assert status == 200
        assert written == result["accepted"]
        assert result["accepted"] + result["duplicates"] + result["queued"] >= 1
