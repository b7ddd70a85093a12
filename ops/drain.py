"""On-call re-drive of the dead-letter queues (`invoke drain-dlq`).

A message is deleted only after its content is safely processed; one that fails again is
made visible again at once and reported. Re-driving twice stores nothing twice: the
webhook queue uses the processor's own conditional write, the enricher's writes are
idempotent.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from errors import PipelineError
from functions.price_enricher.indicators import Windows
from functions.price_enricher.service import Settings as EnricherSettings
from functions.price_enricher.service import process as enrich_batch
from functions.shared.price_table.ticks import StoreOutcome, scan_unenriched, store_update
from functions.shared.price_update import PriceUpdate

QUEUES = {"webhook": "webhook_dlq_url", "enricher": "enricher_dlq_url"}
HOLD_SECONDS = 300          # messages stay invisible to others while we work on them
STREAM_MARGIN_MS = 5_000    # arrival times are approximate


class DrainError(PipelineError):
    """The drain was asked for something it cannot do (an unknown queue)."""


@dataclass
class Survey:
    count: int
    oldest_age_seconds: float | None
    error_types: dict[str, int]


@dataclass
class DrainReport:
    queue: str
    survey: Survey
    processed: int = 0
    stored: int = 0
    duplicates: int = 0
    enriched: int = 0
    left: list[str] = field(default_factory=list)   # why each message stayed
    paths: Counter = field(default_factory=Counter)  # enricher: stream or table scan

    @property
    def ok(self) -> bool:
        return not self.left


def _error_type(queue: str, body: dict[str, Any]) -> str:
    if queue == "webhook":
        return (body.get("error") or "unknown").split(":")[0]
    return body.get("requestContext", {}).get("condition", "unknown")


def receive_all(sqs: Any, url: str, limit: int | None) -> list[dict[str, Any]]:
    """Take up to `limit` messages out of sight for HOLD_SECONDS."""
    messages: list[dict[str, Any]] = []
    while limit is None or len(messages) < limit:
        wanted = 10 if limit is None else min(10, limit - len(messages))
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=wanted, VisibilityTimeout=HOLD_SECONDS,
                                    AttributeNames=["SentTimestamp", "ApproximateReceiveCount"]).get("Messages", [])
        if not batch:
            break
        messages += batch
    return messages


def release(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    """Make messages visible again now (dry run, or a failed re-drive)."""
    for message in messages:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)


def survey(queue: str, messages: list[dict[str, Any]], now: float) -> Survey:
    sent = [int(m["Attributes"]["SentTimestamp"]) / 1000 for m in messages if "SentTimestamp" in m.get("Attributes", {})]
    errors: Counter = Counter()
    for message in messages:
        try:
            errors[_error_type(queue, json.loads(message["Body"]))] += 1
        except ValueError:
            errors["unreadable message"] += 1
    return Survey(len(messages), (now - min(sent)) if sent else None, dict(errors))


# ---- webhook queue ----------------------------------------------------------------------

def redrive_update(dynamodb: Any, table: str, body: dict[str, Any]) -> StoreOutcome:
    if body.get("kind") != "price-update":
        raise ValueError(f"not a webhook DLQ message (kind={body.get('kind')!r})")
    return store_update(dynamodb, table, PriceUpdate.from_message(body["update"]))[0]


# ---- enricher queue ---------------------------------------------------------------------

def _stream_records(streams: Any, info: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The records of the failed range, read from the stream; raises when they are gone."""
    iterator = streams.get_shard_iterator(StreamArn=info["streamArn"], ShardId=info["shardId"],
                                          ShardIteratorType="AT_SEQUENCE_NUMBER",
                                          SequenceNumber=info["startSequenceNumber"])["ShardIterator"]
    end = int(info["endSequenceNumber"])
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=100)
        for record in page.get("Records", []):
            if int(record["dynamodb"]["SequenceNumber"]) > end:
                return
            yield record
        if not page.get("Records"):
            return
        iterator = page.get("NextShardIterator")


def _epoch_ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _unenriched_items(dynamodb: Any, table: str, info: dict[str, Any]) -> list[dict[str, Any]]:
    """Items received in the failed range's time window that still lack enrichment."""
    start = _epoch_ms(info["approximateArrivalOfFirstRecord"]) - STREAM_MARGIN_MS
    end = _epoch_ms(info["approximateArrivalOfLastRecord"]) + STREAM_MARGIN_MS
    return scan_unenriched(dynamodb, table, start, end)


def _as_insert_records(items: list[dict[str, Any]], stream_arn: str) -> list[dict[str, Any]]:
    ordered = sorted(items, key=lambda i: (i["symbol"]["S"], int(i["timestamp"]["N"])))
    return [{"eventName": "INSERT", "eventSource": "aws:dynamodb", "eventSourceARN": stream_arn,
             "dynamodb": {"Keys": {"symbol": i["symbol"], "timestamp": i["timestamp"]}, "NewImage": i,
                          "SequenceNumber": str(n)}} for n, i in enumerate(ordered, start=1)]


def redrive_failed_batch(clients: dict[str, Any], settings: EnricherSettings, body: dict[str, Any],
                         report: DrainReport) -> None:
    info = body.get("DDBStreamBatchInfo")
    if not info:
        raise ValueError("not a stream on-failure record (no DDBStreamBatchInfo)")
    try:
        records = [r for r in _stream_records(clients["dynamodbstreams"], info) if r.get("eventName") == "INSERT"]
        path = "stream"
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in (
                "TrimmedDataAccessException", "ExpiredIteratorException", "ResourceNotFoundException"):
            raise
        records = _as_insert_records(_unenriched_items(clients["dynamodb"], settings.table_name, info),
                                     info["streamArn"])
        path = "table scan"
    report.paths[path] += 1
    if not records:
        return
    result = enrich_batch({"Records": records}, settings, clients["dynamodb"], clients["sns"])
    if result["batchItemFailures"]:
        raise RuntimeError(f"{len(result['batchItemFailures'])} of {len(records)} records failed again "
                           f"(read from the {path})")
    report.enriched += len(records)


# ---- the drain --------------------------------------------------------------------------

def drain(queue: str, outputs: dict[str, Any], windows: Windows, clients: dict[str, Any], *,
          dry_run: bool = False, max_messages: int | None = None,
          show: Callable[[Survey], None] = lambda _: None,
          progress: Callable[[int], Any] | None = None) -> DrainReport:
    if queue not in QUEUES:
        raise DrainError(f"--queue must be one of {', '.join(QUEUES)} (got {queue!r})")
    sqs, url = clients["sqs"], outputs[QUEUES[queue]]
    messages = receive_all(sqs, url, max_messages)
    report = DrainReport(queue, survey(queue, messages, time.time()))
    show(report.survey)
    if dry_run or not messages:
        release(sqs, url, messages)
        return report
    settings = EnricherSettings(outputs["table_name"], outputs["success_topic_arn"], windows)
    advance = progress(len(messages)) if progress else (lambda: None)
    for message in messages:
        try:
            body = json.loads(message["Body"])
            if queue == "webhook":
                outcome = redrive_update(clients["dynamodb"], outputs["table_name"], body)
                report.stored += outcome == StoreOutcome.STORED
                report.duplicates += outcome == StoreOutcome.DUPLICATE
            else:
                redrive_failed_batch(clients, settings, body, report)
        except Exception as error:  # noqa: BLE001 - the message stays, and the report says why
            release(sqs, url, [message])
            report.left.append(f"{message['MessageId']}: {type(error).__name__}: {str(error)[:200]}")
        else:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            report.processed += 1
        advance()
    return report
