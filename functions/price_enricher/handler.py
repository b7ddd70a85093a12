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
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.price_enricher.enrichment import HistoryReader, PlannedRecord, RecordError, plan_batch
from functions.price_enricher.indicators import Windows
from functions.shared.observability import pipeline_logger, pipeline_metrics

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
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


def write_indicators(client: Any, table_name: str, plan: PlannedRecord, enriched_at_ms: int) -> None:
    """Idempotent: the same inputs give the same values; enriched_at keeps its first value."""
    names = {"#enriched": "enriched_at", "#symbol": "symbol"}
    values: dict[str, Any] = {":now": {"N": str(enriched_at_ms)}}
    assignments = ["#enriched = if_not_exists(#enriched, :now)"]
    for index, (name, value) in enumerate(sorted(plan.indicators.items())):
        names[f"#f{index}"] = name
        values[f":v{index}"] = {"N": str(value)}
        assignments.append(f"#f{index} = :v{index}")
    client.update_item(
        TableName=table_name,
        Key={"symbol": {"S": plan.symbol}, "timestamp": {"N": str(plan.timestamp)}},
        UpdateExpression="SET " + ", ".join(assignments),
        # Never resurrect an item that was deleted meanwhile.
        ConditionExpression="attribute_exists(#symbol)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def notification(plan: PlannedRecord, enriched_at_ms: int) -> dict[str, Any]:
    image = plan.image
    body = {
        "symbol": plan.symbol, "timestamp": plan.timestamp, "event_time_ms": plan.timestamp // 1000,
        "price": str(image.get("price")), "exchange": image.get("exchange"),
        "indicators": {name: str(value) for name, value in sorted(plan.indicators.items())},
        "enriched_at": enriched_at_ms,
    }
    return {"Message": json.dumps(body),
            "MessageAttributes": {"symbol": {"DataType": "String", "StringValue": plan.symbol}}}


def publish(sns: Any, topic_arn: str, plans: list[PlannedRecord], enriched_at_ms: int) -> list[str]:
    """Announce each enriched update; return the sequence numbers whose message was not accepted."""
    failed: list[str] = []
    for start in range(0, len(plans), SNS_BATCH):
        chunk = plans[start:start + SNS_BATCH]
        entries = [{"Id": str(i), **notification(plan, enriched_at_ms)} for i, plan in enumerate(chunk)]
        try:
            result = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
            failed += [chunk[int(entry["Id"])].sequence_number for entry in result.get("Failed", [])]
        except Exception:  # noqa: BLE001 - reported as failures so the records are retried
            logger.exception("publishing notifications failed", extra={"count": len(chunk)})
            failed += [plan.sequence_number for plan in chunk]
    return failed


def process(event: dict[str, Any], settings: Settings, dynamodb: Any, sns: Any) -> dict[str, Any]:
    records = event.get("Records", [])
    reader = HistoryReader(dynamodb, settings.table_name)
    plans = plan_batch(records, reader, settings.windows)
    enriched_at_ms = int(time.time() * 1000)
    writes = 0  # DynamoDB UpdateItem requests; the history reader counts its own Query requests
    enriched: list[PlannedRecord] = []

    def record_handler(record: Any) -> None:
        plan = plans[record.dynamodb.sequence_number]
        if plan.skip:
            return
        if plan.error:
            raise RecordError(plan.error)
        nonlocal writes
        writes += 1
        try:
            write_indicators(dynamodb, settings.table_name, plan, enriched_at_ms)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            logger.warning("item deleted before enrichment", extra={"symbol": plan.symbol})
            return
        enriched.append(plan)

    # Powertools collects per-record failures; an all-failed batch is reported, not raised,
    # so Lambda can bisect and send exhausted records to the on-failure destination.
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    with processor(records=records, handler=record_handler):
        processor.process()
    response = processor.response()
    failed_to_announce = publish(sns, settings.topic_arn, enriched, enriched_at_ms) if enriched else []
    failures = {item["itemIdentifier"] for item in response["batchItemFailures"]} | set(failed_to_announce)

    metrics.add_metric(name="RecordsEnriched", unit=MetricUnit.Count, value=len(enriched) - len(failed_to_announce))
    metrics.add_metric(name="RecordFailures", unit=MetricUnit.Count, value=len(failures))
    metrics.add_metric(name="DynamoDBRequests", unit=MetricUnit.Count, value=reader.requests + writes)
    if failures:
        reasons = sorted({p.error.split(":")[0] for p in plans.values() if p.error})
        logger.error("records failed enrichment", extra={"failed": len(failures), "reasons": reasons})
    logger.info("batch enriched", extra={"records": len(records), "enriched": len(enriched),
                                         "dynamodb_reads": reader.requests, "dynamodb_writes": writes})
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in sorted(failures, key=_sequence_order)]}


def _sequence_order(sequence: str) -> tuple[int, str]:
    return (int(sequence), sequence) if sequence.isdigit() else (0, sequence)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    dynamodb, sns = _clients()
    return process(event, _settings(), dynamodb, sns)
