"""Webhook processor against moto: authentication, formats, lossless idempotent storage."""

from __future__ import annotations

import importlib
import json
import time
from decimal import Decimal

import boto3
import pytest

from functions.shared.price_table.keys import first_slot
from functions.shared.price_table.ticks import update_from_item
from functions.shared.price_update import PriceUpdate
from functions.webhook_processor import service as webhook
from tests.support.faults import FaultInjector
from tests.support.webhook import KRAKEN_REST, ROTATED, SECRET, SOURCE, body_of, drain_queue, url_event


class LambdaContext:
    function_name = "webhook-processor-test"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:webhook-processor-test"
    aws_request_id = "req-1"

TABLE = "crypto-prices-test"


pytestmark = pytest.mark.webhook(TABLE)  # the `aws` fixture (tests/conftest.py): table, DLQ, settings


def call(aws, event, now=None):
    dynamodb, sqs, settings = aws
    return webhook.process(event, settings, dynamodb, sqs, time.time() if now is None else now)


def items(aws):
    dynamodb = aws[0]
    return sorted(dynamodb.scan(TableName=TABLE)["Items"], key=lambda i: (i["symbol"]["S"], int(i["timestamp"]["N"])))


def dlq_messages(aws):
    return drain_queue(aws[1], aws[2].dlq_url)


SEED = '{"symbol": "BTC", "price": 50000.0, "exchange": "binance"}'


def test_seed_example_is_stored_exactly(aws):
    response = call(aws, url_event(SEED))
    assert response["statusCode"] == 200
    assert body_of(response) == {"accepted": 1, "duplicates": 0, "queued": 0, "rejected": []}
    [item] = items(aws)
    assert item["symbol"] == {"S": "BTC-USD"} and item["exchange"] == {"S": "binance"}
    assert Decimal(item["price"]["N"]) == Decimal("50000.0")
    assert item["source"] == {"S": SOURCE}
    assert int(item["timestamp"]["N"]) % 1000 == first_slot("binance")
    assert abs(int(item["timestamp"]["N"]) // 1000 - time.time() * 1000) < 10_000
    assert len(json.dumps(item)) < 1024


# ---- authentication -------------------------------------------------------------------------

@pytest.mark.parametrize("event_kwargs, reason", [
    ({"source": None}, "missing X-Source"),
    ({"source": "someone-else"}, "unknown source"),
    ({"secrets": []}, "missing X-Signature"),
    ({"secrets": ["wrong-secret"]}, "bad signature"),
    ({"timestamp": -400}, "outside the allowed window"),
    ({"timestamp": +400}, "outside the allowed window"),
    ({"extra_headers": {"x-signature": "v1=abc"}}, "X-Signature must be"),
])
def test_unauthenticated_requests_get_401_and_write_nothing(aws, event_kwargs, reason, service_log):
    if "timestamp" in event_kwargs:  # an offset from now, taken when the test runs
        event_kwargs = {"timestamp": int(time.time()) + event_kwargs["timestamp"]}
    response = call(aws, url_event(SEED, **event_kwargs))
    assert response["statusCode"] == 401
    # One generic body for every reason; the reason is in the log line only.
    assert body_of(response) == {"error": "unauthorized"}
    assert any(reason in getattr(record, "reason", "") for record in service_log.records)
    assert items(aws) == [] and dlq_messages(aws) == []


def test_signature_over_another_body_is_rejected(aws):
    event = url_event(SEED)
    event["body"] = SEED.replace("50000.0", "5.0")
    assert call(aws, event)["statusCode"] == 401
    assert items(aws) == []


def test_rotated_secret_and_several_signatures_pass(aws):
    assert call(aws, url_event(SEED, secrets=[ROTATED]))["statusCode"] == 200
    assert call(aws, url_event(SEED.replace("50000.0", "50001"), secrets=["old-revoked", SECRET]))["statusCode"] == 200
    assert len(items(aws)) == 2


def test_base64_bodies_are_verified_on_their_bytes(aws):
    assert call(aws, url_event(SEED, base64_body=True))["statusCode"] == 200


def test_neither_secret_nor_body_reaches_the_logs(aws, capsys):
    call(aws, url_event(SEED, secrets=["wrong-secret"]))
    call(aws, url_event(SEED))
    output = capsys.readouterr()
    logged = output.out + output.err
    assert SECRET not in logged and "wrong-secret" not in logged and "50000" not in logged


# ---- payload formats ------------------------------------------------------------------------

def test_array_and_wrapped_batches(aws):
    batch = [{"symbol": "ETHUSDT", "price": "3000.5", "exchange": "Binance", "timestamp": 1700000000},
             {"symbol": "XBT/USD", "price": 37000, "exchange": "kraken", "timestamp": 1700000000123},
             {"symbol": "sol", "price": 55.1, "exchange": "coinbase", "timestamp": "2023-11-14T22:13:20.5Z"}]
    assert body_of(call(aws, url_event(json.dumps(batch))))["accepted"] == 3
    wrapped = {"updates": [{"symbol": "ADA-EUR", "price": "0.35", "exchange": "kraken", "volume": 10}]}
    assert body_of(call(aws, url_event(json.dumps(wrapped))))["accepted"] == 1
    stored = {(i["symbol"]["S"], int(i["timestamp"]["N"]) // 1000) for i in items(aws)}
    assert ("ETH-USDT", 1700000000000) in stored          # USDT is not USD
    assert ("BTC-USD", 1700000000123) in stored           # XBT is Kraken's BTC
    assert ("SOL-USD", 1700000000500) in stored           # default quote, ISO-8601 with fraction
    assert any(s == "ADA-EUR" for s, _ in stored)


BINANCE_STREAM = {"e": "24hrTicker", "E": 1700000000456, "s": "BNBBTC", "p": "0.0015", "P": "250.00",
                  "w": "0.0018", "x": "0.0009", "c": "0.0025", "Q": "10", "b": "0.0024", "B": "10", "a": "0.0026",
                  "A": "100", "o": "0.0010", "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18", "O": 0,
                  "C": 86400000, "F": 0, "L": 18150, "n": 18151}
BINANCE_REST = {"symbol": "BTCUSDT", "priceChange": "-94.99999800", "priceChangePercent": "-95.960",
                "weightedAvgPrice": "0.29628482", "prevClosePrice": "0.10002000", "lastPrice": "37012.34000000",
                "lastQty": "200.00000000", "bidPrice": "37012.33000000", "bidQty": "100.00000000",
                "askPrice": "37012.35000000", "askQty": "100.00000000", "openPrice": "99.00000000",
                "highPrice": "100.00000000", "lowPrice": "0.10000000", "volume": "8913.30000000",
                "quoteVolume": "15.30000000", "openTime": 1699913600000, "closeTime": 1700000000000,
                "firstId": 28385, "lastId": 28460, "count": 76}
COINBASE = {"type": "ticker", "sequence": 37475248783, "product_id": "ETH-USD", "price": "1285.22",
            "open_24h": "1310.79", "volume_24h": "245532.79269678", "low_24h": "1280.52", "high_24h": "1313.8",
            "volume_30d": "9788783.60117027", "best_bid": "1285.04", "best_bid_size": "0.46688654",
            "best_ask": "1285.27", "best_ask_size": "1.56637040", "side": "buy",
            "time": "2022-10-19T23:28:22.061769Z", "trade_id": 370843401, "last_size": "11.4396987"}
KRAKEN_WS = {"channel": "ticker", "type": "update", "data": [
    {"symbol": "BTC/USD", "bid": 36999.9, "bid_qty": 0.5, "ask": 37000.1, "ask_qty": 1.2, "last": 37000.0,
     "volume": 1234.56789, "vwap": 36800.2, "low": 36000.0, "high": 37500.0, "change": 120.5, "change_pct": 0.33,
     "timestamp": "2023-11-14T22:13:20.789Z"}]}


@pytest.mark.parametrize("payload, expected", [
    (BINANCE_STREAM, [("BNB-BTC", 1700000000456, "0.0025", "binance", "0.0024", "0.0026", "10000")]),
    ({"stream": "bnbbtc@ticker", "data": BINANCE_STREAM},
     [("BNB-BTC", 1700000000456, "0.0025", "binance", "0.0024", "0.0026", "10000")]),
    (BINANCE_REST, [("BTC-USDT", 1700000000000, "37012.34", "binance", "37012.33", "37012.35", "8913.3")]),
    (COINBASE, [("ETH-USD", 1666222102061, "1285.22", "coinbase", "1285.04", "1285.27", "245532.79269678")]),
    (KRAKEN_WS, [("BTC-USD", 1700000000789, "37000.0", "kraken", "36999.9", "37000.1", "1234.56789")]),
    (KRAKEN_REST, [("BTC-USD", None, "37000.0", "kraken", "36999.9", "37000.1", "2000.2"),
                   ("ETH-EUR", None, "1900.0", "kraken", "1899.9", "1900.1", "20")]),
])
@pytest.mark.parametrize("forced", [False, True])
def test_exchange_native_payloads(aws, payload, expected, forced):
    exchange = expected[0][3]
    query = {"format": exchange} if forced else None
    response = call(aws, url_event(json.dumps(payload), query=query, timestamp=1700000001), now=1700000001.0)
    assert body_of(response)["accepted"] == len(expected), body_of(response)
    stored = [update_from_item(item) for item in items(aws)]
    for symbol, event_ms, price, exch, bid, ask, volume in expected:
        [update] = [u for u in stored if u.symbol == symbol]
        assert update.event_ms == (event_ms or 1700000001000)
        # the exchange's rolling 24 h figure is the venue's volume_24h, never the tick's volume
        assert (update.price, update.exchange, update.bid, update.ask, update.volume, update.volume_24h) == (
            Decimal(price), exch, Decimal(bid), Decimal(ask), None, Decimal(volume))


def test_binance_array_of_stream_events(aws):
    events = [dict(BINANCE_STREAM, s=s, E=1700000000000 + i) for i, s in enumerate(["BTCUSDT", "ETHUSDT"])]
    assert body_of(call(aws, url_event(json.dumps(events), timestamp=1700000001), now=1700000001.0))["accepted"] == 2


# ---- lossless, idempotent storage -----------------------------------------------------------

def test_same_millisecond_from_two_exchanges_are_both_kept_in_order(aws):
    batch = [{"symbol": "BTC-USD", "price": "37000.1", "exchange": "binance", "timestamp": 1700000000123},
             {"symbol": "BTC-USD", "price": "37000.2", "exchange": "coinbase", "timestamp": 1700000000123},
             {"symbol": "BTC-USD", "price": "37000.3", "exchange": "kraken", "timestamp": 1700000000124}]
    assert body_of(call(aws, url_event(json.dumps(batch), timestamp=1700000001), now=1700000001))["accepted"] == 3
    stored = items(aws)
    assert len(stored) == 3
    assert [int(i["timestamp"]["N"]) // 1000 for i in stored] == [1700000000123, 1700000000123, 1700000000124]


def test_two_distinct_ticks_of_one_exchange_in_one_millisecond_are_both_kept(aws):
    batch = [{"symbol": "BTC-USD", "price": p, "exchange": "binance", "timestamp": 1700000000123}
             for p in ("1.5", "1.6")]
    assert body_of(call(aws, url_event(json.dumps(batch), timestamp=1700000001), now=1700000001))["accepted"] == 2
    again = call(aws, url_event(json.dumps(batch), timestamp=1700000002), now=1700000002)
    assert body_of(again) == {"accepted": 0, "duplicates": 2, "queued": 0, "rejected": []}
    assert len(items(aws)) == 2


def test_identical_redelivery_is_stored_once_and_never_overwrites(aws):
    body = json.dumps({"symbol": "BTC-USD", "price": "37000.1", "exchange": "binance", "timestamp": 1700000000123})
    assert body_of(call(aws, url_event(body, timestamp=1700000001), now=1700000001))["accepted"] == 1
    dynamodb = aws[0]
    [item] = items(aws)
    dynamodb.update_item(TableName=TABLE, Key={"symbol": item["symbol"], "timestamp": item["timestamp"]},
                         UpdateExpression="SET sma_5 = :v", ExpressionAttributeValues={":v": {"N": "1"}})
    response = call(aws, url_event(body, timestamp=1700000009), now=1700000009)
    assert body_of(response) == {"accepted": 0, "duplicates": 1, "queued": 0, "rejected": []}
    [after] = items(aws)
    assert after["sma_5"] == {"N": "1"} and after["received_at"] == item["received_at"]


def test_prices_keep_every_digit(aws):
    body = json.dumps({"symbol": "SHIB-USD", "price": "0.000012345678901234567890123", "exchange": "x"})
    call(aws, url_event(body))
    [item] = items(aws)
    assert Decimal(item["price"]["N"]) == Decimal("0.000012345678901234567890123")


def test_throttled_writes_are_retried(aws):
    dynamodb = aws[0]
    injector = FaultInjector(lambda n, _: ("ProvisionedThroughputExceededException", 400) if n <= 2 else None)
    injector.attach(dynamodb, "PutItem")
    response = call(aws, url_event(SEED))
    assert response["statusCode"] == 200 and body_of(response)["accepted"] == 1
    assert injector.injected == 2 and len(items(aws)) == 1


def test_a_storage_failure_is_queued_with_a_replayable_message(aws):
    dynamodb = aws[0]
    FaultInjector(lambda n, _: ("AccessDeniedException", 400) if n == 1 else None).attach(dynamodb, "PutItem")
    batch = [{"symbol": "BTC-USD", "price": "37000.1", "exchange": "binance", "timestamp": 1700000000123},
             {"symbol": "ETH-USD", "price": "2000", "exchange": "binance", "timestamp": 1700000000123}]
    response = call(aws, url_event(json.dumps(batch), timestamp=1700000001), now=1700000001)
    assert response["statusCode"] == 202
    assert body_of(response) == {"accepted": 1, "duplicates": 0, "queued": 1, "rejected": []}
    [message] = dlq_messages(aws)
    assert message["kind"] == "price-update" and "AccessDenied" in message["error"]
    replay = PriceUpdate.from_message(message["update"])
    assert replay.source == SOURCE and replay.event_ms == 1700000000123
    assert replay.symbol in ("BTC-USD", "ETH-USD") and replay.price in (Decimal("37000.1"), Decimal("2000"))
    assert SECRET not in json.dumps(message) and "x-signature" not in json.dumps(message).lower()


def test_dlq_failure_gives_500_so_the_sender_retries(aws):
    dynamodb, sqs, settings = aws
    FaultInjector(lambda n, _: ("AccessDeniedException", 400)).attach(dynamodb, "PutItem")
    broken = webhook.Settings(table_name=TABLE, dlq_url=settings.dlq_url + "-missing", secrets=settings.secrets)
    response = webhook.process(url_event(SEED), broken, dynamodb, sqs, time.time())
    assert response["statusCode"] == 500
    assert "retry" in body_of(response)["error"]


# ---- malformed input ------------------------------------------------------------------------

@pytest.mark.parametrize("body, status, error", [
    ("not json", 400, "not valid JSON"),
    ("42", 400, "body must be an update object"),
    ("[]", 400, "no updates"),
    ('{"updates": 5}', 400, "updates: must be an array"),
    ('{"symbol": "BTC", "exchange": "x"}', 400, "price: is required"),
    ('{"symbol": "BTC", "price": -1, "exchange": "x"}', 400, "price: must be greater than 0"),
    ('{"symbol": "BTC", "price": true, "exchange": "x"}', 400, "price: must be a number"),
    ('{"symbol": "BTC", "price": NaN, "exchange": "x"}', 400, "not valid JSON"),
    ('{"symbol": "BTC", "price": "1e999999", "exchange": "x"}', 400, "price: is out of range"),
    ('{"symbol": "BTC", "price": 1, "exchange": "x", "timestamp": "yesterday"}', 400, "timestamp: must be"),
    ('{"symbol": "BTC", "price": 1, "exchange": "x", "timestamp": 5}', 400, "timestamp: is outside"),
    ('{"symbol": "BTC-USD-EUR", "price": 1, "exchange": "x"}', 400, "symbol: must be"),
    ('{"symbol": "BTC", "price": 1, "exchange": "bad exchange!"}', 400, "exchange: String should match"),
    ('{"symbol": "BTC", "price": 1}', 400, "exchange: is required"),
    ('[1, 2]', 400, "no valid update in the batch"),
    (json.dumps([{"symbol": "BTC", "price": 1, "exchange": "x"}] * 1001), 413, "at most 1000 updates"),
    ('{"symbol": "' + "A" * (1024 * 1024) + '"}', 413, "body larger than"),
])
def test_malformed_input_gets_a_clear_4xx_and_writes_nothing(aws, body, status, error):
    response = call(aws, url_event(body))
    assert response["statusCode"] == status
    assert error in body_of(response)["error"], body_of(response)
    assert items(aws) == [] and dlq_messages(aws) == []


def test_unknown_format_and_wrong_method(aws):
    assert call(aws, url_event(SEED, query={"format": "ftx"}))["statusCode"] == 400
    assert call(aws, url_event(SEED, method="GET"))["statusCode"] == 405
    assert items(aws) == []


def test_invalid_items_in_a_batch_are_rejected_by_index_the_rest_stored(aws):
    batch = [{"symbol": "BTC", "price": 1, "exchange": "x"}, {"symbol": "BTC", "price": 0, "exchange": "x"},
             "nonsense", {"symbol": "ETH", "price": 2, "exchange": "x"}]
    response = call(aws, url_event(json.dumps(batch)))
    assert response["statusCode"] == 200
    result = body_of(response)
    assert result["accepted"] == 2
    assert result["rejected"] == [{"index": 1, "error": "price: must be greater than 0"},
                                  {"index": 2, "error": "update: must be an object"}]


def test_handler_wiring_reads_its_environment(aws, monkeypatch, moto_endpoint):
    _, _, settings = aws
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("DLQ_URL", settings.dlq_url)
    # The handler reads the secrets document from Secrets Manager (WEBHOOK_SECRETS_ARN), not the environment.
    secretsmanager = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_endpoint)
    document = json.dumps({SOURCE: SECRET})
    arn = secretsmanager.create_secret(Name="webhook-secrets-test", SecretString=document)["ARN"]
    monkeypatch.setenv("WEBHOOK_SECRETS_ARN", arn)
    monkeypatch.setenv("MAX_SKEW_SECONDS", "300")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")
    from functions.webhook_processor import handler as webhook_handler

    module = importlib.reload(webhook_handler)
    response = module.handler(url_event(SEED), LambdaContext())
    assert response["statusCode"] == 200 and len(items(aws)) == 1


def test_a_symbols_writes_go_oldest_first_so_the_stream_is_chronological(aws):
    dynamodb = aws[0]
    order: list[tuple[str, int]] = []

    def record(params, **_):
        order.append((params["Item"]["symbol"]["S"], int(params["Item"]["timestamp"]["N"])))

    dynamodb.meta.events.register("provide-client-params.dynamodb.PutItem", record)
    batch = [{"symbol": s, "price": 1 + t, "exchange": "x", "timestamp": 1_700_000_000_000 + t * 1000}
             for t in (5, 1, 4, 2, 3, 0) for s in ("BTC", "ETH")]
    response = call(aws, url_event(json.dumps(batch), timestamp=1_700_000_010), now=1_700_000_010)
    assert body_of(response)["accepted"] == 12
    for symbol in ("BTC-USD", "ETH-USD"):
        stamps = [ts for s, ts in order if s == symbol]
        assert stamps == sorted(stamps) and len(stamps) == 6
