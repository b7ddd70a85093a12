"""Helpers: a moto table plus topic→queue subscription, and stream records built from items;
the late-tick scenario (a late record corrects the items after it) and its cost (`corrections_for_late_tick`, for
`invoke bench`)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import boto3

from evidence.bench import RequestCounter as Counter
from functions.price_enricher import service as enricher
from functions.price_enricher.indicators import Windows
from functions.shared.price_table import candles
from functions.shared.price_table.items import stream_record
from functions.shared.price_table.keys import sort_key, table_definition
from functions.shared.price_table.ticks import plain_item, to_item
from functions.shared.price_update import PriceUpdate

__all__ = ["CANDLE_TABLE", "TABLE", "Counter", "MetricsRecorder", "Pipeline", "corrections_for_late_tick"]

TABLE = "crypto-prices-enrich"
CANDLE_TABLE = "price-candles-enrich"


class MetricsRecorder:
    """A `MetricSink` that sums what `process` counts, by metric name."""

    def __init__(self) -> None:
        self.values: dict[str, float] = defaultdict(float)

    def __call__(self, name: str, value: float) -> None:
        self.values[name] += value


class Pipeline:
    """A prices table, the success topic with a subscriber queue, and (with `candles`) the
    candle table, in moto; `suffix` keeps several pipelines apart on one server (the bench)."""

    def __init__(self, endpoint: str, windows: Windows | None = None, candles: bool = False,
                 suffix: str = "") -> None:
        self.dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        self.sns = boto3.client("sns", region_name="us-east-1", endpoint_url=endpoint)
        self.sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
        self.table = TABLE + suffix
        self.dynamodb.create_table(**table_definition(self.table))
        candle_table = ""
        if candles:
            candle_table = CANDLE_TABLE + suffix
            self.dynamodb.create_table(**_candle_table_definition(candle_table))
        self.topic = self.sns.create_topic(Name=f"price-updates-success-test{suffix}")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName=f"subscriber{suffix}")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=queue_arn)
        with_candles = {"candle_table_name": candle_table} if candles else {}
        self.settings = enricher.Settings(self.table, self.topic, windows or Windows(), **with_candles)
        self.sequence = 1000

    def put(self, symbol: str, event_ms: int, price: str | Decimal | float, exchange: str = "binance",
            slot: int = 0) -> dict:
        """Store a tick; `slot`: its sub-millisecond slot (`keys.first_slot(exchange)` keeps two
        venues' ticks of one millisecond apart, as the webhook's write does)."""
        update = PriceUpdate(symbol, event_ms, Decimal(str(price)), exchange, "test", event_ms)
        item = to_item(update, sort_key(event_ms, slot))
        self.dynamodb.put_item(TableName=self.table, Item=item)
        return item

    def record(self, item: dict, event_name: str = "INSERT") -> dict:
        self.sequence += 1
        arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{self.table}/stream/x"
        return stream_record(item, self.sequence, arn, event_name)

    def enrich(self, records: list[dict], metrics: MetricsRecorder | None = None) -> dict:
        if metrics is None:
            return enricher.process({"Records": records}, self.settings, self.dynamodb, self.sns)
        return enricher.process({"Records": records}, self.settings, self.dynamodb, self.sns, metrics=metrics)

    def items(self, symbol: str) -> list[dict]:
        result = self.dynamodb.query(TableName=self.table, KeyConditionExpression="symbol = :s",
                                     ExpressionAttributeValues={":s": {"S": symbol}})["Items"]
        return [plain_item(item) for item in result]

    def notifications(self) -> list[dict]:
        found = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append({"body": json.loads(envelope["Message"]),
                              "attributes": envelope.get("MessageAttributes", {})})
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])


def _candle_table_definition(name: str) -> dict[str, Any]:
    """The candle table as candles.py defines it (hash `series` S, range `sk` S)."""
    return candles.table_definition(name)


def late_tick_scenario(pipeline: Pipeline, symbol: str, prices: Sequence[Decimal | str | float], late: int,
                       enriched_before: int, batch_size: int = 7) -> dict[str, Any]:
    """The late-tick scenario: ticks 0..len(prices)-1 of `symbol`, one second apart, where
    tick `late` is stored (and enriched) only after ticks 0..late-1 and late+1..enriched_before
    were enriched in batches of `batch_size`; then the rest. Returns the late record, the
    requests its own batch made (by operation) and the metrics it counted."""
    start = 1_700_000_000_000
    records = {}
    for index in [*range(late), *range(late + 1, enriched_before + 1)]:
        records[index] = pipeline.record(pipeline.put(symbol, start + index * 1000, prices[index]))
    early = [records[index] for index in sorted(records)]
    for first in range(0, len(early), batch_size):
        assert pipeline.enrich(early[first:first + batch_size]) == {"batchItemFailures": []}
    late_record = pipeline.record(pipeline.put(symbol, start + late * 1000, prices[late]))
    counter, metrics = Counter(pipeline.dynamodb), MetricsRecorder()
    assert pipeline.enrich([late_record], metrics) == {"batchItemFailures": []}
    late_requests = dict(counter.calls)
    counter.reset()
    rest = [pipeline.record(pipeline.put(symbol, start + index * 1000, prices[index]))
            for index in range(enriched_before + 1, len(prices))]
    for first in range(0, len(rest), batch_size):
        assert pipeline.enrich(rest[first:first + batch_size]) == {"batchItemFailures": []}
    return {"late_record": late_record, "late_requests": late_requests, "late_metrics": dict(metrics.values)}


def corrections_for_late_tick(endpoint: str, total: int = 60, late: int = 10, enriched_before: int = 24,
                              batch_size: int = 7, suffix: str = "-bench-late") -> dict[str, float]:
    """The cost of one late record in the late-tick scenario, on moto at `endpoint`.

    Ticks 0..total-1 of BTC/USD monthly closes (the demo's real series); tick `late` arrives
    after ticks up to `enriched_before` were enriched. Returns the late record's writes (its
    own conditional put plus one per corrected item), its reads and the items corrected. For
    `invoke bench`; `suffix` names the tables so that it can share a server.
    """
    from demo.price_data import load_series

    prices = [bar.close for bar in load_series("BTC-USD")[:total]]
    pipeline = Pipeline(endpoint, suffix=suffix)
    outcome = late_tick_scenario(pipeline, "LATE-USD", prices, late, enriched_before, batch_size)
    requests, metrics = outcome["late_requests"], outcome["late_metrics"]
    return {"writes_per_late_record": float(requests.get("PutItem", 0)),
            "reads_per_late_record": float(requests.get("Query", 0) + requests.get("GetItem", 0)),
            "items_corrected": float(metrics.get("ItemsCorrected", 0)),
            "later_items_enriched": float(enriched_before - late)}
