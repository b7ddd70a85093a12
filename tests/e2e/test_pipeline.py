"""End to end on the deployed local environment: webhook → table → stream → enricher → SNS."""

from __future__ import annotations

import json
import math
from decimal import Decimal

from demo.price_data import load_series
from emulator.fault_proxy import FaultRule
from functions.shared.price_table.ticks import plain_item
from senders.webhook import signed_post
from tests.e2e.conftest import wait_until


def _items(stack, symbol: str) -> list[dict]:
    response = stack.aws["dynamodb"].query(
        TableName=stack.info.outputs["table_name"], KeyConditionExpression="symbol = :s",
        ExpressionAttributeValues={":s": {"S": symbol}}, ConsistentRead=True)
    return [plain_item(item) for item in response["Items"]]


def _queue_messages(stack, url_output: str) -> list[dict]:
    sqs, url = stack.aws["sqs"], stack.info.outputs[url_output]
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        new = [m for m in batch if m["MessageId"] not in {f["MessageId"] for f in found}]
        if not new:
            return found
        found += new


def test_signed_batch_is_stored_enriched_and_announced(stack, inboxes):
    info = stack.info
    bars = load_series("BTC-USD")[:40]
    body = json.dumps([{"symbol": "BTCUSD", "price": str(bar.close), "exchange": "bitstamp",
                        "timestamp": bar.event_ms} for bar in bars]).encode()
    status, result = signed_post(info.webhook_url, body, info.secret_source, info.secret)
    assert (status, result["accepted"], result["rejected"]) == (200, 40, [])

    stack.settle()
    items = wait_until(lambda: [i for i in _items(stack, "BTC-USD") if "enriched_at" in i]
                       if sum("enriched_at" in i for i in _items(stack, "BTC-USD")) == 40 else None)
    assert items and len(items) == 40
    items.sort(key=lambda i: i["timestamp"])
    prices = [float(bar.close) for bar in bars]
    last = items[-1]
    assert float(last["sma_5"]) == sum(prices[-5:]) / 5
    assert float(last["change_pct"]) == (prices[-1] - prices[-2]) / prices[-2] * 100
    assert "volatility_20" not in items[19] and "volatility_20" in items[20]
    returns = [math.log(b / a) for a, b in zip(prices[-21:-1], prices[-20:], strict=True)]
    mean = sum(returns) / 20
    assert math.isclose(float(last["volatility_20"]), math.sqrt(sum((r - mean) ** 2 for r in returns) / 19),
                        rel_tol=1e-9)

    inbox = inboxes["success"]
    def about_btc(received: list) -> list:
        return [m for m in received if m.json()["symbol"] == "BTC-USD"]
    assert inbox.wait_for(lambda received: len(about_btc(received)) >= 40)
    notifications = about_btc(inbox.received())
    assert len(notifications) == 40
    assert sorted(m.json()["timestamp"] for m in notifications) == [i["timestamp"] for i in items]
    assert all(m.attributes["symbol"]["Value"] == "BTC-USD" for m in notifications)


def test_unsigned_request_is_rejected_and_nothing_stored(stack):
    info = stack.info
    body = json.dumps({"symbol": "DOGE", "price": 1, "exchange": "x"}).encode()
    status, result = signed_post(info.webhook_url, body, info.secret_source, "not-the-secret")
    assert status == 401 and "unauthorized" in result["error"]
    stack.settle()
    assert _items(stack, "DOGE-USD") == []


def test_forced_storage_failure_lands_in_the_webhook_dlq(stack):
    info = stack.info
    stack.proxy.add(FaultRule("DynamoDB_20120810.PutItem", "AccessDeniedException", body_contains="FAIL-USD"))
    body = json.dumps([{"symbol": "FAIL-USD", "price": "1.25", "exchange": "x", "timestamp": 1_700_000_000_000},
                       {"symbol": "OK-USD", "price": "2.5", "exchange": "x", "timestamp": 1_700_000_000_000}]).encode()
    status, result = signed_post(info.webhook_url, body, info.secret_source, info.secret)
    stack.proxy.clear()
    assert status == 202 and result == {"accepted": 1, "duplicates": 0, "queued": 1, "rejected": []}
    messages = [json.loads(m["Body"]) for m in _queue_messages(stack, "webhook_dlq_url")]
    [queued] = [m for m in messages if m["update"]["symbol"] == "FAIL-USD"]
    assert queued["update"]["price"] == "1.25" and "AccessDenied" in queued["error"]
    assert _items(stack, "FAIL-USD") == [] and len(_items(stack, "OK-USD")) == 1


def test_poison_record_goes_to_the_enricher_dlq_the_rest_is_enriched_and_alerted(stack, inboxes):
    info = stack.info
    table = info.outputs["table_name"]
    for index, price in enumerate([{"N": "10"}, {"S": "not-a-price"}, {"N": "11"}]):
        stack.aws["dynamodb"].put_item(TableName=table, Item={
            "symbol": {"S": "POISON-USD"}, "timestamp": {"N": str(1_700_000_000_000_000 + index * 1000)},
            "price": price, "exchange": {"S": "x"}, "source": {"S": "e2e"}, "received_at": {"N": "1"}})
    stack.settle()

    failure_records = wait_until(lambda: [json.loads(m["Body"]) for m in _queue_messages(stack, "enricher_dlq_url")])
    assert failure_records, "no on-failure record reached the enricher DLQ"
    info_block = failure_records[-1]["DDBStreamBatchInfo"]
    assert info_block["streamArn"] == info.outputs["stream_arn"] and info_block["batchSize"] >= 1
    assert failure_records[-1]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    items = {i["timestamp"]: i for i in _items(stack, "POISON-USD")}
    assert "enriched_at" in items[1_700_000_000_000_000] and "enriched_at" in items[1_700_000_000_002_000]
    assert "enriched_at" not in items[1_700_000_000_001_000]

    def enricher_alerts(received: list) -> list:
        return [m for m in received if "price-enricher" in (m.subject or "")]
    assert inboxes["alerts"].wait_for(enricher_alerts), "no alert reached the alerts topic"
    assert "records failed enrichment" in enricher_alerts(inboxes["alerts"].received())[-1].body


def test_enriched_prices_keep_their_exact_decimal(stack):
    info = stack.info
    body = json.dumps({"symbol": "PEPE-USDT", "price": "0.00000123456789012345", "exchange": "x"}).encode()
    assert signed_post(info.webhook_url, body, info.secret_source, info.secret)[0] == 200
    stack.settle()
    [item] = _items(stack, "PEPE-USDT")
    assert item["price"] == Decimal("0.00000123456789012345")


def test_no_secret_in_state_plan_or_function_configuration(stack):
    """Issue 12 item 7: the dev-only secret reached the webhook through Secrets Manager only."""
    from delivery.paths import ROOT
    from stacks.names import function_name

    info = stack.info
    assert info.token_source is not None
    secrets = (info.secret.encode(), info.token_source[1].encode())
    states = sorted((ROOT / info.config.backend.directory).glob("*.tfstate*"))
    assert len(states) >= 2, states
    assert all(secret not in path.read_bytes() for path in states for secret in secrets)
    for synthesized in stack.app.stacks:
        assert not (synthesized.directory / "tfplan").exists()
        for path in synthesized.directory.rglob("*"):
            if path.is_file() and ".terraform" not in path.parts and path.suffix != ".zip":
                assert all(secret not in path.read_bytes() for secret in secrets), path
    configuration = stack.aws["lambda"].get_function_configuration(
        FunctionName=function_name(info.config, "webhook_processor"))
    variables = configuration["Environment"]["Variables"]
    assert "WEBHOOK_SECRETS" not in variables
    assert variables["WEBHOOK_SECRETS_ARN"] == info.outputs["webhook_secrets_arn"]
    assert info.secret not in json.dumps(configuration, default=str)
    body = json.dumps({"symbol": "SECRETCHECK", "price": "1.5", "exchange": "e2e"}).encode()
    assert signed_post(info.webhook_url, body, info.secret_source, info.secret)[0] == 200  # seeded, and it signs
