"""Load and faults on the deployed embedded stack, with exact totals (bounded in count and time)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from emulator.fault_proxy import FaultRule
from emulator.subscriber import TopicSubscriber
from functions.shared.price_table.keys import first_slot
from ops.drain_cli import aws_clients, run_drain
from senders.webhook import signed_post

# The count, run in CI: about 6 minutes on a 2-core machine, bound by moto's CPU (its
# own process; see emulator/moto_server.py and moto_patches.py). LOAD_UPDATES=N for a shorter run.
LOAD_UPDATES = int(os.environ.get("LOAD_UPDATES", "20000"))
SENDERS = 8
LOAD_DEADLINE_SECONDS = 1800


def _scan_keys(stack, prefix: str) -> dict[tuple[str, int], dict]:
    dynamodb, table = stack.aws["dynamodb"], stack.info.outputs["table_name"]
    found, arguments = {}, {"TableName": table, "ConsistentRead": True,
                            "FilterExpression": "begins_with(symbol, :p)",
                            "ExpressionAttributeValues": {":p": {"S": prefix}}}
    while True:
        page = dynamodb.scan(**arguments)
        for item in page["Items"]:
            found[(item["symbol"]["S"], int(item["timestamp"]["N"]) // 1000, item["exchange"]["S"])] = item
        if "LastEvaluatedKey" not in page:
            return found
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _load_plan(seed: int = 11) -> tuple[list[list[dict]], set[tuple[str, int, str]]]:
    """Per sender, its requests in order; and the set of distinct updates expected in the table.

    Each sender owns a group of symbols and sends their ticks oldest first, as a feed does.
    Every fifth millisecond a second exchange ticks in the same millisecond, and a share of
    earlier updates is sent again (redeliveries).
    """
    rng = random.Random(seed)
    expected: set[tuple[str, int, str]] = set()
    per_sender: list[list[dict]] = [[] for _ in range(SENDERS)]
    symbols = [f"LOAD{n}-USD" for n in range(40)]
    base = 1_600_000_000_000
    unique_target = LOAD_UPDATES * 4 // 5
    t = 0
    updates: list[tuple[int, dict]] = []
    while len(updates) < unique_target:
        for index, symbol in enumerate(symbols):
            sender = index % SENDERS
            exchanges = ("binance", "kraken") if t % 5 == 0 else ("binance",)
            for exchange in exchanges:
                update = {"symbol": symbol, "exchange": exchange, "timestamp": base + t,
                          "price": f"{100 + (t % 97) + (0.5 if exchange == 'kraken' else 0)}"}
                updates.append((sender, update))
                expected.add((symbol, base + t, exchange))
        t += 1
    for sender, update in updates:
        per_sender[sender].append(update)
    # Redeliveries: resend earlier updates until the total sent is LOAD_UPDATES.
    resend = LOAD_UPDATES - len(updates)
    for _ in range(resend):
        sender = rng.randrange(SENDERS)
        per_sender[sender].append(dict(rng.choice(per_sender[sender][: len(per_sender[sender]) // 2])))
    requests = [[stream[i:i + 100] for i in range(0, len(stream), 100)] for stream in per_sender]
    return requests, expected


def test_load_from_concurrent_senders_loses_nothing_and_stores_nothing_twice(stack):
    info = stack.info
    requests, expected = _load_plan()
    assert sum(len(batch) for sender in requests for batch in sender) == LOAD_UPDATES
    totals = {"accepted": 0, "duplicates": 0, "queued": 0}
    lock = threading.Lock()

    def send(batches: list[list[dict]]) -> None:
        for batch in batches:
            status, result = signed_post(info.webhook_url, json.dumps(batch).encode(), info.secret_source, info.secret)
            assert status == 200, result
            with lock:
                for key in totals:
                    totals[key] += result[key]

    started = time.monotonic()
    with TopicSubscriber(stack.aws, info.outputs["success_topic_arn"], "load-subscriber", raw=True) as inbox:
        with ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(send, requests))
        assert totals == {"accepted": len(expected), "duplicates": LOAD_UPDATES - len(expected), "queued": 0}

        deadline = started + LOAD_DEADLINE_SECONDS
        assert stack.settle(timeout=max(1, deadline - time.monotonic())), "the stream was not drained in time"
        stored = _scan_keys(stack, "LOAD")
        assert set(stored) == expected  # exactly the distinct updates, nothing lost, nothing twice
        assert [key for key, item in stored.items() if "enriched_at" not in item] == []
        assert inbox.wait_for(lambda received: len(received) >= len(expected),
                              timeout=max(1, deadline - time.monotonic()))
        time.sleep(1)  # a late extra notification would show in the exact count below
        notifications = inbox.received()
    announced = [(body["symbol"], body["timestamp"]) for body in (m.json() for m in notifications)]
    assert len(announced) == len(expected)  # each enriched update announced exactly once
    assert set(announced) == {(s, int(item["timestamp"]["N"])) for (s, _, _), item in stored.items()}


def test_throttling_and_failures_during_ingestion_end_stored_or_queued_then_drained(stack):
    info = stack.info
    stack.proxy.add(FaultRule("DynamoDB_20120810.PutItem", "ThrottlingException", 400, body_contains="FLAKY",
                              probability=0.2))
    stack.proxy.add(FaultRule("DynamoDB_20120810.PutItem", "AccessDeniedException", 400, body_contains="FLAKY",
                              probability=0.05))
    expected = {(f"FLAKY{n}-USD", 1_650_000_000_000 + t, "binance") for n in range(20) for t in range(50)}
    updates = [{"symbol": s, "exchange": e, "price": "42.5", "timestamp": t}
               for s, t, e in sorted(expected, key=lambda key: (key[1], key[0]))]  # 20 symbols per request
    totals = {"accepted": 0, "duplicates": 0, "queued": 0}

    def send(batch: list[dict]) -> dict:
        status, result = signed_post(info.webhook_url, json.dumps(batch).encode(), info.secret_source, info.secret)
        assert status in (200, 202), result
        return result

    try:
        # Concurrent senders: botocore's backoff on the throttled writes overlaps instead of adding up.
        with ThreadPoolExecutor(5) as pool:
            for result in pool.map(send, [updates[start:start + 200] for start in range(0, len(updates), 200)]):
                for key in totals:
                    totals[key] += result[key]
    finally:
        injected = dict(stack.proxy.injected)
        stack.proxy.clear()
    assert injected.get("ThrottlingException", 0) > 100 and injected.get("AccessDeniedException", 0) > 10, injected
    assert totals["accepted"] + totals["queued"] == len(expected) and totals["queued"] > 0
    assert len(_scan_keys(stack, "FLAKY")) == totals["accepted"]  # stored or queued, nothing in between

    report = run_drain(info.config, info.outputs, "webhook", clients=aws_clients(info.config, info.endpoint))
    assert report.ok and report.stored >= totals["queued"]
    assert set(_scan_keys(stack, "FLAKY")) == expected
    # The faults also hit the enricher's puts of these items (they carry the symbol): its batches are
    # retried, bisected and some dead-lettered while the rules were on. Leave nothing in flight.
    assert stack.settle(), "the stream was not drained"


def test_enricher_failures_mid_batch_are_retried_or_dead_lettered_the_rest_enriched_once(stack):
    info = stack.info
    slot = first_slot("binance")
    ticks = [1_660_000_000_000 + t * 1000 for t in range(30)]
    prices = [100 + i * 3 + (i % 4) for i in range(30)]
    transient, permanent = ticks[10], ticks[20]
    # Not retried by botocore, so the record fails its invocation: once for one item, always for another.
    # The enricher's writes carry enriched_at; the webhook's writes of the same items do not.
    stack.proxy.add(FaultRule("DynamoDB_20120810.PutItem", "AccessDeniedException", 400,
                              body_contains=(str(transient * 1000 + slot), "enriched_at"), remaining=1))
    stack.proxy.add(FaultRule("DynamoDB_20120810.PutItem", "AccessDeniedException", 400,
                              body_contains=(str(permanent * 1000 + slot), "enriched_at")))
    # Counted once nothing else is in flight: an earlier scenario's failing batch still being retried
    # would add its own on-failure record after this count (the throttling scenario used to end without waiting).
    assert stack.settle(), "an earlier scenario's records were still being processed"
    dlq_before = _dlq_count(stack)
    body = json.dumps([{"symbol": "MID-USD", "exchange": "binance", "price": str(p), "timestamp": t}
                       for p, t in zip(prices, ticks, strict=True)]).encode()
    assert signed_post(info.webhook_url, body, info.secret_source, info.secret)[1]["accepted"] == 30
    try:
        stack.settle()
    finally:
        stack.proxy.clear()
    items = {k[1]: v for k, v in _scan_keys(stack, "MID-USD").items()}
    assert "enriched_at" not in items[permanent]                       # reached the DLQ instead
    assert "enriched_at" in items[transient]                           # retried, then enriched
    assert _dlq_count(stack) == dlq_before + 1
    for index, tick in enumerate(ticks):                               # the rest: enriched, and right
        if tick == permanent:
            continue
        item = items[tick]
        assert "enriched_at" in item
        if index >= 4:
            assert float(item["sma_5"]["N"]) == sum(prices[index - 4:index + 1]) / 5
        ema = prices[0]
        for price in prices[1:index + 1]:
            ema = 2 / 13 * price + (1 - 2 / 13) * ema
        assert abs(float(item["ema_12"]["N"]) - ema) <= 1e-9 * ema


def _dlq_count(stack) -> int:
    sqs, url = stack.aws["sqs"], stack.info.outputs["enricher_dlq_url"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                          "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())
