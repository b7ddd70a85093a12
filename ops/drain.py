"""On-call re-drive of the dead-letter queues (`invoke drain-dlq`).

A message is deleted only after its content is safely processed; one that fails again, or
that cannot be verified, is made visible again at once and reported, and the command exits 1.
Re-driving twice stores nothing twice: the webhook queue uses the processor's own conditional
write; an enricher message is deleted only once every item of its stream range is read back
enriched, and items already enriched are not re-driven.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from errors import PipelineError
from functions.price_enricher.indicators import Windows
from functions.price_enricher.service import SWEEP_ACTION, sweep_quiet_symbols
from functions.price_enricher.service import Settings as EnricherSettings
from functions.price_enricher.service import process as enrich_batch
from functions.shared.price_table import ticks
from functions.shared.price_table.ticks import StoreOutcome, store_update
from functions.shared.price_update import PriceUpdate

QUEUES = {"webhook": "webhook_dlq_url", "enricher": "enricher_dlq_url"}
HOLD_SECONDS = 300          # messages stay invisible to others while we work on them


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
    enriched: int = 0         # enricher: records re-driven through the enricher
    verified: int = 0         # enricher: items read back enriched (consistent reads) before a delete
    left: list[str] = field(default_factory=list)   # why each message stayed
    done: list[str] = field(default_factory=list)   # enricher: what was verified for each deleted message
    paths: Counter[str] = field(default_factory=Counter)  # enricher: stream or table scan

    @property
    def ok(self) -> bool:
        return not self.left


def _error_type(queue: str, body: dict[str, Any]) -> str:
    if queue == "webhook":
        return (body.get("error") or "unknown").split(":")[0]
    return str(body.get("requestContext", {}).get("condition", "unknown"))


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
    sent = [int(m["Attributes"]["SentTimestamp"]) / 1000 for m in messages
            if "SentTimestamp" in m.get("Attributes", {})]
    errors: Counter[str] = Counter()
    for message in messages:
        try:
            errors[_error_type(queue, json.loads(message["Body"]))] += 1
        except ValueError:
            errors["unreadable message"] += 1
    return Survey(len(messages), (now - min(sent)) if sent else None, dict(errors))


# ---- webhook queue ----------------------------------------------------------------------

def redrive_update(dynamodb: Any, table: str, body: dict[str, Any], retention_days: int | None = None
                   ) -> StoreOutcome:
    """Store a queued update with the webhook's own write; `retention_days` is the environment's
    `tick_retention_days`: the item expires that many days after this write (`tick_expiry`)."""
    if body.get("kind") != "price-update":
        raise ValueError(f"not a webhook DLQ message (kind={body.get('kind')!r})")
    return store_update(dynamodb, table, PriceUpdate.from_message(body["update"]), retention_days)[0]


# ---- enricher queue ---------------------------------------------------------------------
# Lambda's on-failure record names a shard and a sequence range, not the data. The message may
# only go once every record of that range has been read and its item is verified enriched in
# the table (consistent reads); anything less leaves it in the queue and the drain exits 1.

PAGE_LIMIT = 1000               # GetRecords' maximum
MAX_EMPTY_PAGES = 25            # in a row: DynamoDB Streams may answer empty pages before the records
MAX_ITERATOR_RENEWALS = 3       # an iterator expires after 15 minutes
MAX_THROTTLED = 8               # the shard is read by Lambda too (LimitExceededException; botocore's
                                # legacy retry mode does not retry it)
STREAM_GONE = ("TrimmedDataAccessException", "ResourceNotFoundException")  # older than 24 h, or shard deleted
# The table fallback finds a range's items by `stored_at`, the writer's clock just before the PutItem
# that created the item; the INSERT record is created when that write commits. So an item's stored_at
# lies between (its record's arrival - the PutItem call's duration, retries included) and (arrival +
# clock skew). A call cannot outlast its caller: Lambda's longest timeout is 15 minutes, the drain's
# own retries take far less. Arrival times are rounded down to the second.
STORED_BEFORE_ARRIVAL_MS = 15 * 60 * 1000
STORED_AFTER_ARRIVAL_MS = 60 * 1000    # clock skew (NTP keeps it under a second), generously
ARRIVAL_PRECISION_MS = 1000


class NotVerified(DrainError):
    """The failed range could not be read whole or verified enriched: the message stays."""


@dataclass(frozen=True)
class RangeRead:
    """The INSERT records of a failed range, read from the stream, and how the read ended."""

    inserts: list[dict[str, Any]]
    others: int          # MODIFY/REMOVE records inside the range (e.g. the enricher's own writes)
    pages: int
    ended: str           # "end of range" or "end of shard"


def _batch_info(body: dict[str, Any]) -> dict[str, Any]:
    """The on-failure record's range, checked: a malformed one must stay, not be deleted as done."""
    info = body.get("DDBStreamBatchInfo")
    if not isinstance(info, dict) or not info:
        raise ValueError("not a stream on-failure record (no DDBStreamBatchInfo)")
    missing = [name for name in ("shardId", "startSequenceNumber", "endSequenceNumber", "batchSize", "streamArn",
                                 "approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord")
               if info.get(name) in (None, "")]
    if missing:
        raise ValueError(f"on-failure record lacks {', '.join(missing)}")
    if int(info["batchSize"]) < 1:
        raise ValueError(f"on-failure record has batchSize {info['batchSize']!r}")
    return info


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def read_range(streams: Any, info: dict[str, Any]) -> RangeRead:
    """Every record from startSequenceNumber to endSequenceNumber, page by page.

    Reading goes on while NextShardIterator is set, through empty pages (DynamoDB Streams may
    return some before it reaches the records), until a record at or past the end sequence
    number or the end of the shard. More than MAX_EMPTY_PAGES empty pages in a row raise
    NotVerified: reading stopped short of the range's end, so nothing can be deleted. A trimmed
    range raises the ClientError (TrimmedDataAccessException), for the table fallback. An expired
    iterator is renewed after the last record read; a throttled read is asked again, a bounded
    number of times.
    """
    start, end = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
    place = {"StreamArn": info["streamArn"], "ShardId": info["shardId"]}
    iterator = streams.get_shard_iterator(**place, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                          SequenceNumber=info["startSequenceNumber"])["ShardIterator"]
    inserts: list[dict[str, Any]] = []
    others = pages = empty = renewals = throttled = 0
    last: str | None = None
    while iterator:
        try:
            page = streams.get_records(ShardIterator=iterator, Limit=PAGE_LIMIT)
        except ClientError as error:
            if _error_code(error) == "LimitExceededException" and throttled < MAX_THROTTLED:
                throttled += 1
                time.sleep(min(0.1 * 2 ** throttled, 5.0))
                continue
            if _error_code(error) != "ExpiredIteratorException" or renewals >= MAX_ITERATOR_RENEWALS:
                raise
            renewals += 1
            after = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last} if last else \
                {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": info["startSequenceNumber"]}
            iterator = streams.get_shard_iterator(**place, **after)["ShardIterator"]
            continue
        pages += 1
        records = page.get("Records", [])
        empty = 0 if records else empty + 1
        if empty > MAX_EMPTY_PAGES:
            raise NotVerified(f"stream: {MAX_EMPTY_PAGES} empty pages in a row before the range's end "
                              f"({len(inserts)} of {info['batchSize']} records read)")
        for record in records:
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence < start:
                continue
            if sequence > end:
                return RangeRead(inserts, others, pages, "end of range")
            last = record["dynamodb"]["SequenceNumber"]
            if record.get("eventName") == "INSERT":
                inserts.append(record)
            else:
                others += 1
            if sequence == end:
                return RangeRead(inserts, others, pages, "end of range")
        iterator = page.get("NextShardIterator")
    return RangeRead(inserts, others, pages, "end of shard")


def _epoch_ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def stored_window(info: dict[str, Any]) -> tuple[int, int]:
    """The `stored_at` interval that holds every item of the range (see STORED_BEFORE_ARRIVAL_MS)."""
    first = _epoch_ms(info["approximateArrivalOfFirstRecord"]) // ARRIVAL_PRECISION_MS * ARRIVAL_PRECISION_MS
    last = _epoch_ms(info["approximateArrivalOfLastRecord"]) // ARRIVAL_PRECISION_MS * ARRIVAL_PRECISION_MS
    return first - STORED_BEFORE_ARRIVAL_MS, last + ARRIVAL_PRECISION_MS + STORED_AFTER_ARRIVAL_MS


def _as_insert_records(items: list[dict[str, Any]], stream_arn: str) -> list[dict[str, Any]]:
    ordered = sorted(items, key=lambda i: (i["symbol"]["S"], int(i["timestamp"]["N"])))
    return [{"eventName": "INSERT", "eventSource": "aws:dynamodb", "eventSourceARN": stream_arn,
             "dynamodb": {"Keys": {"symbol": i["symbol"], "timestamp": i["timestamp"]}, "NewImage": i,
                          "SequenceNumber": str(n)}} for n, i in enumerate(ordered, start=1)]


def _key(image: dict[str, Any]) -> tuple[str, int]:
    return image["symbol"]["S"], int(image["timestamp"]["N"])


def _enrich_and_verify(clients: dict[str, Any], settings: EnricherSettings, images: list[dict[str, Any]],
                       stream_arn: str, path: str) -> int:
    """Re-drive the items not yet enriched, then verify every one is (consistent reads); how many re-driven.

    Items already enriched (an earlier drain, or Lambda's last retry after all) are not re-driven:
    that would announce them twice. An item missing from the table cannot be verified, so it fails.
    """
    dynamodb = clients["dynamodb"]
    keys = [_key(image) for image in images]
    state = ticks.enrichment_of(dynamodb, settings.table_name, keys)
    pending = [image for image in images if state[_key(image)] is False]
    if pending:
        records = _as_insert_records(pending, stream_arn)
        result = enrich_batch({"Records": records}, settings, dynamodb, clients["sns"])
        if result["batchItemFailures"]:
            raise NotVerified(f"{path}: {len(result['batchItemFailures'])} of {len(records)} records "
                              f"failed enrichment again")
    state = ticks.enrichment_of(dynamodb, settings.table_name, keys)
    unverified = [key for key in keys if state[key] is not True]
    if unverified:
        gone = sum(state[key] is None for key in unverified)
        shown = ", ".join(f"{symbol}/{timestamp}" for symbol, timestamp in unverified[:3])
        raise NotVerified(f"{path}: {len(unverified)} of {len(keys)} items not enriched after the re-drive "
                          f"({gone} no longer in the table): {shown}")
    return len(pending)


def redrive_failed_batch(clients: dict[str, Any], settings: EnricherSettings, body: dict[str, Any],
                         report: DrainReport) -> str:
    """Re-drive one on-failure record and verify its range; a line for the report, or NotVerified.

    Path 1, the stream (it holds 24 h): every record of the range is read; the INSERT records
    must number batchSize (the mapping's filter passes only INSERTs, so the MODIFY records of the
    enricher's own writes that fall inside the range were never in the batch and are not counted).
    Path 2, when the stream no longer holds the range: the items stored in the range's time
    window (`stored_at`, see STORED_BEFORE_ARRIVAL_MS), at least batchSize of them. Other items
    of that window that lack enrichment are re-driven too (they failed as well: the window is
    older than the stream's 24 h); one that fails again keeps this message in the queue.
    """
    info = _batch_info(body)
    batch_size = int(info["batchSize"])
    try:
        read = read_range(clients["dynamodbstreams"], info)
    except ClientError as error:
        if _error_code(error) not in STREAM_GONE:
            raise
        read = None
    if read is not None:
        path = "stream"
        if len(read.inserts) != batch_size:
            raise NotVerified(f"stream: {len(read.inserts)} INSERT records in the range (read to the {read.ended}), "
                              f"batchSize says {batch_size}")
        images = [record["dynamodb"]["NewImage"] for record in read.inserts]
        detail = f"{len(images)} records read ({read.others} others in the range skipped, {read.pages} pages)"
    else:
        path = "table scan"
        low, high = stored_window(info)
        images = ticks.scan_stored(clients["dynamodb"], settings.table_name, low, high)
        if len(images) < batch_size:
            raise NotVerified(f"table scan: {len(images)} items stored between {low} and {high} (epoch ms), "
                              f"fewer than batchSize {batch_size}")
        detail = f"{len(images)} items stored in the window"
    report.paths[path] += 1
    redriven = _enrich_and_verify(clients, settings, images, info["streamArn"], path)
    report.enriched += redriven
    report.verified += len(images)
    return f"{path}: {detail}, {redriven} re-enriched, {len(images)} verified enriched"


def rerun_sweep(clients: dict[str, Any], settings: EnricherSettings) -> str:
    """The on-failure record of an hourly candle sweep (an asynchronous invocation that failed
    three times): run the sweep now. It closes what is quiet as of now, which covers what the
    failed run would have closed; a symbol that fails again keeps the message (SweepFailed)."""
    summary = sweep_quiet_symbols(settings, clients["dynamodb"])
    return f"candle sweep run again: {summary['checked']} symbols checked, {summary['closed']} closed"


# ---- the drain --------------------------------------------------------------------------

def require_queue(queue: str | None) -> str:
    """The queue on-call named, or a one-line error before anything is read."""
    if queue not in QUEUES:
        raise DrainError(f"--queue must be one of {', '.join(QUEUES)} (got {queue!r})")
    return queue


def drain(queue: str, outputs: dict[str, Any], windows: Windows, clients: dict[str, Any], *,
          dry_run: bool = False, max_messages: int | None = None,
          show: Callable[[Survey], None] = lambda _: None,
          progress: Callable[[int], Any] | None = None, tick_retention_days: int | None = None) -> DrainReport:
    """Re-drive a queue. `windows` and `tick_retention_days` are the environment's (its
    `indicator_windows` and `tick_retention_days`): a re-driven tick gets the webhook's
    `expires_at`, and a re-driven batch the enricher's candle horizon."""
    require_queue(queue)
    sqs, url = clients["sqs"], outputs[QUEUES[queue]]
    messages = receive_all(sqs, url, max_messages)
    report = DrainReport(queue, survey(queue, messages, time.time()))
    show(report.survey)
    if dry_run or not messages:
        release(sqs, url, messages)
        return report
    # The re-drive goes through the enricher's own process, candle maintenance included.
    settings = EnricherSettings(table_name=outputs["table_name"], topic_arn=outputs["success_topic_arn"],
                                windows=windows, candle_table_name=outputs.get("candle_table_name", ""),
                                tick_retention_days=tick_retention_days)
    advance = progress(len(messages)) if progress else (lambda: None)
    for message in messages:
        try:
            body = json.loads(message["Body"])
            if queue == "webhook":
                outcome = redrive_update(clients["dynamodb"], outputs["table_name"], body, tick_retention_days)
                report.stored += outcome == StoreOutcome.STORED
                report.duplicates += outcome == StoreOutcome.DUPLICATE
            elif (body.get("requestPayload") or {}).get("action") == SWEEP_ACTION:
                report.done.append(f"{message['MessageId']}: {rerun_sweep(clients, settings)}")
            else:
                report.done.append(f"{message['MessageId']}: {redrive_failed_batch(clients, settings, body, report)}")
        except Exception as error:  # noqa: BLE001 - the message stays, and the report says why
            release(sqs, url, [message])
            report.left.append(f"{message['MessageId']}: {type(error).__name__}: {str(error)[:300]}")
        else:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            report.processed += 1
        advance()
    return report
