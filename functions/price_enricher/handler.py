"""Price enricher: the table stream's INSERT records → indicators written back → SNS.

Stream invocations are synchronous, so Lambda destinations never fire here: the
function publishes its own success notifications, and reports failed records in
batchItemFailures (Powertools BatchProcessor) for Lambda to retry or send to the DLQ.
"""

from __future__ import annotations

import functools
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.price_enricher.enrichment import HistoryReader, PlannedRecord, RecordError, plan_batch
from functions.price_enricher.indicators import Windows
from functions.shared.observability import pipeline_logger, pipeline_metrics

WRITE_THREADS = 16
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=WRITE_THREADS + 4)
SNS_BATCH = 10

logger = pipeline_logger("price-enricher")
metrics = pipeline_metrics("price-enricher")


@dataclass(frozen=True)
class Settings:
    table_name: str
    topic_arn: str
    windows: Windows

    @classmethod
    def from_environment(cls) -> "Settings":
        windows = json.loads(os.environ.get("INDICATOR_WINDOWS") or "{}") or \
            {"sma": [5, 20], "ema": [12, 26], "volatility": [20]}
        return cls(os.environ["TABLE_NAME"], os.environ["SUCCESS_TOPIC_ARN"], Windows.from_mapping(windows))


@functools.cache
def _settings() -> Settings:
    return Settings.from_environment()


@functools.cache
def _clients() -> tuple[Any, Any]:
    return boto3.client("dynamodb", config=CLIENT_CONFIG), boto3.client("sns", config=CLIENT_CONFIG)


def write_indicators(client: Any, table_name: str, plan: PlannedRecord, enriched_at_ms: int) -> bool:
    """Store the item with its indicators, once; False when the item was deleted meanwhile.

    A conditional PutItem of the stream's full image plus the indicators, rather than an
    UpdateItem: the webhook never changes an item after inserting it, so the image is the
    item, and the write costs the same write units. The condition makes it happen once
    (a retried record finds its item enriched and keeps the first values, which the plan
    then takes for its notification) and never resurrects a deleted item.
    """
    item = {**plan.stored_image, "enriched_at": {"N": str(enriched_at_ms)},
            **{name: {"N": str(value)} for name, value in plan.indicators.items()}}
    try:
        client.put_item(
            TableName=table_name, Item=item,
            ConditionExpression="attribute_exists(#symbol) AND attribute_not_exists(#enriched)",
            ExpressionAttributeNames={"#symbol": "symbol", "#enriched": "enriched_at"},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        stored = error.response.get("Item")
        if not stored:
            return False
        plan.indicators = {name: Decimal(value["N"]) for name, value in stored.items()
                           if name in plan.indicators and "N" in value}
        plan.enriched_at = int(stored["enriched_at"]["N"])
        return True
    plan.enriched_at = enriched_at_ms
    return True


def notification(plan: PlannedRecord) -> dict[str, Any]:
    image = plan.image
    body = {
        "symbol": plan.symbol, "timestamp": plan.timestamp, "event_time_ms": plan.timestamp // 1000,
        "price": str(image.get("price")), "exchange": image.get("exchange"),
        "indicators": {name: str(value) for name, value in sorted(plan.indicators.items())},
        "enriched_at": plan.enriched_at,
    }
    return {"Message": json.dumps(body),
            "MessageAttributes": {"symbol": {"DataType": "String", "StringValue": plan.symbol}}}


def publish(sns: Any, topic_arn: str, plans: list[PlannedRecord]) -> list[str]:
    """Announce each enriched update; return the sequence numbers whose message was not accepted."""
    failed: list[str] = []
    for start in range(0, len(plans), SNS_BATCH):
        chunk = plans[start:start + SNS_BATCH]
        entries = [{"Id": str(i), **notification(plan)} for i, plan in enumerate(chunk)]
        try:
            result = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
            failed += [chunk[int(entry["Id"])].sequence_number for entry in result.get("Failed", [])]
        except Exception:  # noqa: BLE001 - reported as failures so the records are retried
            logger.exception("publishing notifications failed", extra={"count": len(chunk)})
            failed += [plan.sequence_number for plan in chunk]
    return failed


def write_all(dynamodb: Any, table_name: str, plans: list[PlannedRecord], enriched_at_ms: int,
              threads: int = WRITE_THREADS) -> dict[str, Exception | bool]:
    """Write every plan's item concurrently; per sequence number, whether it was stored or the error.

    The items are distinct and each write stands alone, so order does not matter, and a
    batch of 100 costs the time of a few round trips instead of 100 in a row.
    """
    def write(plan: PlannedRecord) -> Exception | bool:
        try:
            return write_indicators(dynamodb, table_name, plan, enriched_at_ms)
        except Exception as error:  # noqa: BLE001 - handed back to the record's handler to report
            return error

    if not plans:
        return {}
    with ThreadPoolExecutor(max_workers=min(threads, len(plans))) as pool:
        return dict(zip((plan.sequence_number for plan in plans), pool.map(write, plans)))


def process(event: dict[str, Any], settings: Settings, dynamodb: Any, sns: Any) -> dict[str, Any]:
    records = event.get("Records", [])
    reader = HistoryReader(dynamodb, settings.table_name)
    plans = plan_batch(records, reader, settings.windows)
    writes = write_all(dynamodb, settings.table_name,
                       [plan for plan in plans.values() if not plan.skip and not plan.error],
                       int(time.time() * 1000))
    enriched: list[PlannedRecord] = []

    def record_handler(record: Any) -> None:
        plan = plans[record.dynamodb.sequence_number]
        if plan.skip:
            return
        if plan.error:
            raise RecordError(plan.error)
        outcome = writes[plan.sequence_number]
        if isinstance(outcome, Exception):
            raise outcome
        if not outcome:
            logger.warning("item deleted before enrichment", extra={"symbol": plan.symbol})
            return
        enriched.append(plan)

    # Powertools collects per-record failures; an all-failed batch is reported, not raised,
    # so Lambda can bisect and send exhausted records to the on-failure destination.
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    with processor(records=records, handler=record_handler):
        processor.process()
    response = processor.response()
    failed_to_announce = publish(sns, settings.topic_arn, enriched) if enriched else []
    failures = {item["itemIdentifier"] for item in response["batchItemFailures"]} | set(failed_to_announce)

    metrics.add_metric(name="RecordsEnriched", unit=MetricUnit.Count, value=len(enriched) - len(failed_to_announce))
    metrics.add_metric(name="RecordFailures", unit=MetricUnit.Count, value=len(failures))
    metrics.add_metric(name="DynamoDBRequests", unit=MetricUnit.Count, value=reader.requests + len(writes))
    if failures:
        reasons = sorted({p.error.split(":")[0] for p in plans.values() if p.error})
        logger.error("records failed enrichment", extra={"failed": len(failures), "reasons": reasons})
    logger.info("batch enriched", extra={"records": len(records), "enriched": len(enriched),
                                         "dynamodb_reads": reader.requests, "dynamodb_writes": len(writes)})
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in sorted(failures, key=_sequence_order)]}


def _sequence_order(sequence: str) -> tuple[int, str]:
    return (int(sequence), sequence) if sequence.isdigit() else (0, sequence)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    dynamodb, sns = _clients()
    return process(event, _settings(), dynamodb, sns)
