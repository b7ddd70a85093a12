"""`invoke drain-dlq` against the deployed embedded stack: nothing lost, nothing stored twice."""

from __future__ import annotations

import json

from rich.console import Console

from tests.e2e.conftest import wait_until
from ops.drain_cli import aws_clients, run_drain
from emulator.fault_proxy import FaultRule
from senders.webhook import signed_post


def _count(stack, symbol):
    return stack.aws["dynamodb"].query(TableName=stack.info.outputs["table_name"], Select="COUNT",
                                       KeyConditionExpression="symbol = :s",
                                       ExpressionAttributeValues={":s": {"S": symbol}}, ConsistentRead=True)["Count"]


def _visible(stack, output):
    attributes = stack.aws["sqs"].get_queue_attributes(QueueUrl=stack.info.outputs[output],
                                                       AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _drain(stack, queue, **kwargs):
    return run_drain(stack.info.config, stack.info.outputs, queue, console=Console(width=150),
                     clients=kwargs.pop("clients", None) or aws_clients(stack.info.config, stack.info.endpoint), **kwargs)


def test_webhook_dlq_redrive_restores_every_update_once(stack):
    info = stack.info
    stack.proxy.add(FaultRule("DynamoDB_20120810.PutItem", "InternalServerError", 500, body_contains="DRAIN-USD"))
    updates = [{"symbol": "DRAIN-USD", "price": f"{10 + i}.5", "exchange": "x", "timestamp": 1_700_000_000_000 + i}
               for i in range(5)]
    status, result = signed_post(info.webhook_url, json.dumps(updates).encode(), info.secret_source, info.secret)
    stack.proxy.clear()
    assert status == 202 and result["queued"] == 5
    waiting = _visible(stack, "webhook_dlq_url")
    assert waiting >= 5

    dry = _drain(stack, "webhook", dry_run=True)
    assert dry.survey.count == waiting and sum(dry.survey.error_types.values()) == waiting
    assert dry.survey.error_types.get("InternalServerError", 0) >= 5 and dry.survey.oldest_age_seconds >= 0
    assert _count(stack, "DRAIN-USD") == 0 and _visible(stack, "webhook_dlq_url") == waiting  # changed nothing

    messages = []  # keep copies to re-drive a second time
    for message in stack.aws["sqs"].receive_message(QueueUrl=info.outputs["webhook_dlq_url"],
                                                    MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]:
        messages.append(message["Body"])
    report = _drain(stack, "webhook")
    assert report.ok and report.processed == waiting and report.stored == waiting
    assert _count(stack, "DRAIN-USD") == 5 and _visible(stack, "webhook_dlq_url") == 0

    for body in messages:
        stack.aws["sqs"].send_message(QueueUrl=info.outputs["webhook_dlq_url"], MessageBody=body)
    again = _drain(stack, "webhook")
    assert again.ok and again.stored == 0 and again.duplicates == len(messages)
    assert _count(stack, "DRAIN-USD") == 5
    stack.settle()
    assert wait_until(lambda: all("enriched_at" in i for i in _items(stack, "DRAIN-USD")))


def _items(stack, symbol):
    return stack.aws["dynamodb"].query(TableName=stack.info.outputs["table_name"], ConsistentRead=True,
                                       KeyConditionExpression="symbol = :s",
                                       ExpressionAttributeValues={":s": {"S": symbol}})["Items"]


def _fail_enrichment_of(stack, symbol: str, count: int) -> None:
    info = stack.info
    rule = stack.proxy.add(FaultRule("DynamoDB_20120810.Query", "AccessDeniedException", body_contains=symbol))
    updates = [{"symbol": symbol, "price": 100 + i, "exchange": "x", "timestamp": 1_700_000_000_000 + i * 1000}
               for i in range(count)]
    assert signed_post(info.webhook_url, json.dumps(updates).encode(), info.secret_source, info.secret)[0] == 200
    stack.settle()
    stack.proxy.rules.remove(rule)
    assert not any("enriched_at" in i for i in _items(stack, symbol))


def test_enricher_dlq_redrive_from_the_stream_and_from_the_table(stack):
    _fail_enrichment_of(stack, "STUCK-USD", 3)
    waiting = _visible(stack, "enricher_dlq_url")
    assert waiting >= 1
    dry = _drain(stack, "enricher", dry_run=True)
    assert dry.survey.error_types.get("RetryAttemptsExhausted") == waiting
    assert _visible(stack, "enricher_dlq_url") == waiting

    report = _drain(stack, "enricher")
    assert report.paths["stream"] >= 1
    assert all("enriched_at" in i for i in _items(stack, "STUCK-USD"))
    # The poison record of the earlier scenario fails again: it stays, is reported, and the exit would be 1.
    assert len(report.left) == _visible(stack, "enricher_dlq_url")

    # When the stream no longer holds the range, the items of that time window that lack enrichment are found.
    _fail_enrichment_of(stack, "TRIMMED-USD", 2)
    clients = aws_clients(stack.info.config, stack.proxy.endpoint)
    stack.proxy.add(FaultRule("DynamoDBStreams_20120810.GetShardIterator", "TrimmedDataAccessException"))
    try:
        report = _drain(stack, "enricher", clients=clients)
    finally:
        stack.proxy.clear()
    assert report.paths["table scan"] >= 1
    assert all("enriched_at" in i for i in _items(stack, "TRIMMED-USD"))
