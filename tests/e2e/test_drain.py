"""`invoke drain-dlq` against the deployed embedded stack: nothing lost, nothing stored twice."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from typing import Any

from rich.console import Console

from emulator.fault_proxy import FaultRule, empty_page
from functions.shared.price_update import PriceUpdate, dead_letter_body
from ops.drain_cli import aws_clients, exit_code, run_drain
from senders.webhook import signed_post
from tests.e2e.conftest import wait_until


def _count(stack, symbol):
    return stack.aws["dynamodb"].query(TableName=stack.info.outputs["table_name"], Select="COUNT",
                                       KeyConditionExpression="symbol = :s",
                                       ExpressionAttributeValues={":s": {"S": symbol}}, ConsistentRead=True)["Count"]


def _visible(stack, output):
    attributes = stack.aws["sqs"].get_queue_attributes(QueueUrl=stack.info.outputs[output],
                                                       AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _drain(stack, queue, **kwargs):
    clients = kwargs.pop("clients", None) or aws_clients(stack.info.config, stack.info.endpoint)
    return run_drain(stack.info.config, stack.info.outputs, queue, console=Console(width=150), clients=clients,
                     **kwargs)


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


class EmptyPagesFirst:
    """A fault-proxy answer for GetRecords: `count` empty pages for each new iterator before the
    real page (DynamoDB Streams may answer so while NextShardIterator is set; moto never does)."""

    def __init__(self, count: int) -> None:
        self.count, self.served, self._lock = count, {}, threading.Lock()

    def __call__(self, request: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            served = self.served.get(request["ShardIterator"], 0)
            if served >= self.count:
                return None
            self.served[request["ShardIterator"]] = served + 1
        return empty_page(request)


def _message_ids(stack, output: str = "enricher_dlq_url") -> set[str]:
    """The ids of the messages in a queue, without taking them (visibility 0)."""
    sqs, url, found, quiet = stack.aws["sqs"], stack.info.outputs[output], set(), 0
    while quiet < 3:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        new = {m["MessageId"] for m in batch} - found
        quiet = 0 if new else quiet + 1
        found |= new
    return found


def _lines_about(ids: set[str], lines: list[str]) -> list[str]:
    return [line for line in lines if line.split(":", 1)[0] in ids]


def _break_enrichment(stack, symbol: str) -> FaultRule:
    """The enricher's history read fails for `symbol`: its records end in the enricher DLQ."""
    return stack.proxy.add(FaultRule("DynamoDB_20120810.Query", "AccessDeniedException", body_contains=symbol))


def _fail_enrichment_of(stack, symbol: str, count: int) -> set[str]:
    """Send `count` updates whose enrichment fails; the ids of the on-failure records it left."""
    info = stack.info
    before = _message_ids(stack)
    rule = _break_enrichment(stack, symbol)
    updates = [{"symbol": symbol, "price": 100 + i, "exchange": "x", "timestamp": 1_700_000_000_000 + i * 1000}
               for i in range(count)]
    assert signed_post(info.webhook_url, json.dumps(updates).encode(), info.secret_source, info.secret)[0] == 200
    stack.settle()
    stack.proxy.rules.remove(rule)
    assert not any("enriched_at" in i for i in _items(stack, symbol))
    ours = _message_ids(stack) - before
    assert ours, f"no on-failure record for {symbol}"
    return ours


def test_enricher_dlq_redrive_reads_the_stream_past_empty_pages_and_verifies(stack):
    ours = _fail_enrichment_of(stack, "STUCK-USD", 3)
    waiting = _visible(stack, "enricher_dlq_url")
    dry = _drain(stack, "enricher", dry_run=True)
    assert dry.survey.error_types.get("RetryAttemptsExhausted") == waiting
    assert _visible(stack, "enricher_dlq_url") == waiting
    clients = aws_clients(stack.info.config, stack.proxy.endpoint)  # the drain's calls pass the fault proxy

    # The stream answers nothing but empty pages: no range can be read, so nothing is deleted.
    stack.proxy.add(FaultRule("DynamoDBStreams_20120810.GetRecords", "EmptyPage", answer=empty_page))
    try:
        blocked = _drain(stack, "enricher", clients=clients)
    finally:
        stack.proxy.clear()
    assert not blocked.ok and exit_code(blocked, dry_run=False) == 1 and blocked.processed == 0
    assert len(_lines_about(ours, blocked.left)) == len(ours)
    assert all("empty pages" in line for line in _lines_about(ours, blocked.left))
    assert _visible(stack, "enricher_dlq_url") == waiting
    assert not any("enriched_at" in i for i in _items(stack, "STUCK-USD"))

    # Empty pages before every real page (the documented behaviour): the range is read to its end.
    injected = stack.proxy.injected.get("EmptyPage", 0)
    stack.proxy.add(FaultRule("DynamoDBStreams_20120810.GetRecords", "EmptyPage", answer=EmptyPagesFirst(3)))
    try:
        report = _drain(stack, "enricher", clients=clients)
    finally:
        stack.proxy.clear()
    assert stack.proxy.injected.get("EmptyPage", 0) - injected >= 3 * len(ours)
    assert len(_lines_about(ours, report.done)) == len(ours) and not _lines_about(ours, report.left)
    assert all(line.split(": ", 1)[1].startswith("stream:") for line in _lines_about(ours, report.done))
    assert all("enriched_at" in i for i in _items(stack, "STUCK-USD"))
    assert not ours & _message_ids(stack)
    # Any other message (a poison record of another scenario) fails again: it stays and is listed.
    assert len(report.left) == _visible(stack, "enricher_dlq_url")


def test_enricher_dlq_redrive_from_the_table_when_the_stream_is_trimmed(stack):
    """Updates received hours ago, stored now by the webhook-DLQ re-drive (`received_at` old,
    `stored_at` now); their enrichment fails, and the stream no longer holds the range: on-call
    names the symbol, and the drain reads its partition only."""
    info, symbol = stack.info, "LATE-USD"
    received = int(time.time() * 1000) - 5 * 3_600_000
    for i in range(3):
        update = PriceUpdate(symbol, 1_700_000_000_000 + i * 1000, Decimal(50 + i), "x", "e2e", received)
        body = dead_letter_body(update, "ThrottlingException: rate exceeded", received + 1)
        stack.aws["sqs"].send_message(QueueUrl=info.outputs["webhook_dlq_url"], MessageBody=json.dumps(body))
    before = _message_ids(stack)
    rule = _break_enrichment(stack, symbol)
    try:
        _drain(stack, "webhook")
        assert _count(stack, symbol) == 3
        stack.settle()
    finally:
        stack.proxy.rules.remove(rule)
    assert not any("enriched_at" in i for i in _items(stack, symbol))
    assert all(int(i["received_at"]["N"]) == received and int(i["stored_at"]["N"]) > received + 4 * 3_600_000
               for i in _items(stack, symbol))
    ours = _message_ids(stack) - before
    assert ours

    clients = aws_clients(info.config, stack.proxy.endpoint)
    stack.proxy.add(FaultRule("DynamoDBStreams_20120810.GetShardIterator", "TrimmedDataAccessException"))
    try:
        report = _drain(stack, "enricher", clients=clients, symbols=[symbol])
    finally:
        stack.proxy.clear()
    assert report.paths["table"] >= len(ours)
    assert 0 < report.items_read <= 3 * report.survey.count, report.items_read   # its partition, not the table
    assert len(_lines_about(ours, report.done)) == len(ours) and not _lines_about(ours, report.left)
    assert not ours & _message_ids(stack)
    # The table ends fully enriched: every item these scenarios stored.
    for name in ("DRAIN-USD", "STUCK-USD", symbol):
        assert all("enriched_at" in i for i in _items(stack, name)), name
