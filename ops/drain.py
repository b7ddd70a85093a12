"""On-call re-drive of the dead-letter queues (`invoke drain-dlq`).

A message is deleted only after its content is safely processed; one that fails again, or
that cannot be verified, is made visible again at once and reported (each item it could not
restore by symbol, key and reason), and the command exits 1. Re-driving twice stores nothing
twice: the webhook queue uses the processor's own conditional write; an enricher message is
deleted only once the enricher's own retry of its whole range succeeded (indicators, candles,
announcements) and every item is read back enriched. Announcements are at least once: a range
whose announcements went out before a later step failed announces them again.

A poison item on-call names (`set_aside`) is recorded, with its message, in a local JSON-lines
file and its message deleted, so the rest of the queue drains; the tick itself stays in the table.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from errors import PipelineError
from functions.price_enricher.indicators import Windows
from functions.price_enricher.service import SWEEP_ACTION, sweep_quiet_symbols
from functions.price_enricher.service import Settings as EnricherSettings
from functions.price_enricher.service import process as enrich_batch
from functions.shared.price_table import ticks
from functions.shared.price_table.items import stream_record
from functions.shared.price_table.keys import PARTITION_KEY, SLOTS_PER_MS, SORT_KEY, sort_key
from functions.shared.price_table.ticks import STORED_AT, StoreOutcome, store_update
from functions.shared.price_update import PriceUpdate
from functions.webhook_processor.normalize import MAX_FUTURE_MS

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
    paths: Counter[str] = field(default_factory=Counter)  # enricher: stream, symbols' partitions or table scan
    set_aside: list[str] = field(default_factory=list)   # poison items recorded and taken out of the queue
    unrestored: list[str] = field(default_factory=list)  # enricher: every item not restored, with its reason
    items_read: int = 0       # enricher: tick items read to find trimmed ranges (Query/Scan, before filters)

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
    return [stream_record(item, n, stream_arn) for n, item in enumerate(ordered, start=1)]


def _key(image: dict[str, Any]) -> tuple[str, int]:
    return image["symbol"]["S"], int(image["timestamp"]["N"])


def item_name(symbol: str, key: int) -> str:
    """How the drain names a tick item, in its report and in `set_aside`: SYMBOL/sort key."""
    return f"{symbol}/{key}"


class _Tap:
    """A client whose failed calls are noted (operation, table or topic, error code): the enricher
    reports only which records failed, and on-call needs to know why."""

    def __init__(self, client: Any, seen: list[str]) -> None:
        self._client, self._seen = client, seen

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except ClientError as error:
                if _error_code(error) == "ConditionalCheckFailedException":
                    raise       # the enricher's idempotent writes meeting their earlier run: not a fault
                where = kwargs.get("TableName") or str(kwargs.get("TopicArn", "")).rsplit(":", 1)[-1]
                self._seen.append(f"{name} {where}: {_error_code(error)}".replace(" :", ":"))
                raise
            except Exception as error:
                self._seen.append(f"{name}: {type(error).__name__}")
                raise
        return call


class _Reasons(logging.Handler):
    """The enricher's own summary of a failed batch (its ERROR line's `reasons`)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.reasons += [str(reason) for reason in getattr(record, "reasons", ()) or ()]


@contextmanager
def _enricher_reasons() -> Iterator[_Reasons]:
    logger = logging.getLogger("price_enricher")
    handler = _Reasons()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@dataclass(frozen=True)
class Unrestored:
    """An item of a failed range the re-drive could not restore, and why."""

    symbol: str
    key: int
    reason: str

    def __str__(self) -> str:
        return f"{item_name(self.symbol, self.key)}: {self.reason}"


class NotRestored(NotVerified):
    """Items of the range failed again: the message stays, each item named."""

    def __init__(self, path: str, items: list[Unrestored], total: int) -> None:
        self.items = items
        shown = "; ".join(str(item) for item in items[:10]) + ("; ..." if len(items) > 10 else "")
        super().__init__(f"{path}: {len(items)} of {total} items not restored: {shown}")


def _rerun(clients: dict[str, Any], settings: EnricherSettings, images: list[dict[str, Any]], stream_arn: str
           ) -> list[Unrestored]:
    """The enricher's own retry of every item, symbol by symbol; the items that failed again.

    Every item, enriched or not: a range whose indicator writes succeeded but whose candle step
    or announcements failed is enriched already, and only a new run of `process` brings its
    candles up to date (maintenance recomputes from stored ticks: idempotent) and announces its
    updates (at least once: those announced before the failure are announced again, an
    enriched item keeping its first values). Symbol by symbol, so a failure's reason (the
    enricher's summary and the failing calls) belongs to that symbol's items.
    """
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for image in images:
        by_symbol.setdefault(image["symbol"]["S"], []).append(image)
    unrestored: list[Unrestored] = []
    for symbol, group in by_symbol.items():
        records = _as_insert_records(group, stream_arn)
        seen: list[str] = []
        tapped = {name: _Tap(client, seen) for name, client in clients.items()}
        with _enricher_reasons() as summary:
            result = enrich_batch({"Records": records}, settings, tapped["dynamodb"], tapped["sns"])
        failed = {entry["itemIdentifier"] for entry in result["batchItemFailures"]}
        if not failed:
            continue
        reason = ", ".join(dict.fromkeys(summary.reasons)) or "failed enrichment again"
        if seen:
            reason += f" ({'; '.join(dict.fromkeys(seen))})"
        unrestored += [Unrestored(symbol, _key(record["dynamodb"]["NewImage"])[1], reason[:300])
                       for record in records if record["dynamodb"]["SequenceNumber"] in failed]
    return unrestored


def _enrich_and_verify(clients: dict[str, Any], settings: EnricherSettings, images: list[dict[str, Any]],
                       stream_arn: str, path: str, set_aside: Collection[str] = ()
                       ) -> tuple[int, list[Unrestored]]:
    """Re-run the enricher over every item, then verify each is enriched (consistent reads).

    Returns how many items were not enriched before, and the items set aside (named in
    `set_aside` and not restored). Any other item not restored raises NotRestored.
    """
    dynamodb = clients["dynamodb"]
    keys = [_key(image) for image in images]
    before = ticks.enrichment_of(dynamodb, settings.table_name, keys)
    failed = {(item.symbol, item.key): item for item in _rerun(clients, settings, images, stream_arn)}
    state = ticks.enrichment_of(dynamodb, settings.table_name, keys)
    for key in keys:
        if state[key] is not True and key not in failed:
            failed[key] = Unrestored(*key, "no longer in the table" if state[key] is None else
                                     "not enriched after the re-drive")
    aside = [item for item in failed.values() if item_name(item.symbol, item.key) in set_aside]
    left = [item for item in failed.values() if item_name(item.symbol, item.key) not in set_aside]
    if left:
        raise NotRestored(path, left, len(keys))
    return sum(before[key] is False for key in keys), aside


def query_stored(dynamodb: Any, table: str, symbols: Sequence[str], low: int, high: int
                 ) -> tuple[list[dict[str, Any]], int]:
    """The items of `symbols` whose `stored_at` lies in [low, high], and how many items were read.

    One Query per symbol partition (consistent), never a Scan. The key bound: a tick is stored
    after it was received, and the webhook takes event times up to MAX_FUTURE_MS after receipt,
    so no item of the window has an event time after `high` + MAX_FUTURE_MS. There is no lower
    bound to infer: a tick re-driven from the webhook DLQ hours later, or a backfill of history,
    is stored long after its event time, and the sort key is event time. So below that key the
    filter on `stored_at` is the bound, and the read costs the symbol's partition up to it
    (newest first); it stays bounded by the symbols named, never the whole table.
    """
    top = sort_key(high + MAX_FUTURE_MS, SLOTS_PER_MS - 1)
    found: list[dict[str, Any]] = []
    read = 0
    for symbol in dict.fromkeys(symbols):
        arguments: dict[str, Any] = {
            "TableName": table, "ConsistentRead": True, "ScanIndexForward": False,
            "KeyConditionExpression": "#k = :s AND #t <= :top",
            "FilterExpression": "#stored BETWEEN :a AND :b",
            "ExpressionAttributeNames": {"#k": PARTITION_KEY, "#t": SORT_KEY, "#stored": STORED_AT},
            "ExpressionAttributeValues": {":s": {"S": symbol}, ":top": {"N": str(top)},
                                          ":a": {"N": str(low)}, ":b": {"N": str(high)}}}
        while True:
            page = dynamodb.query(**arguments)
            read += int(page.get("ScannedCount", len(page["Items"])))
            found += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found, read


def scan_cost(dynamodb: Any, table: str) -> str:
    """What a consistent Scan of the whole table costs, from DescribeTable (refreshed about
    every six hours): items and read units (4 KB a unit)."""
    description = dynamodb.describe_table(TableName=table)["Table"]
    items, size = int(description.get("ItemCount", 0)), int(description.get("TableSizeBytes", 0))
    return f"~{items:,} items, ~{max(1, -(-size // 4096)):,} read units (strongly consistent)"


@dataclass(frozen=True)
class Lookup:
    """How the drain finds a trimmed range's items: the symbols named (their partitions, the
    bound), or, only when on-call asks for it, the whole table (its cost printed first)."""

    symbols: tuple[str, ...] = ()
    scan_table: bool = False
    say: Callable[[str], None] = lambda _: None


def _stored_items(clients: dict[str, Any], settings: EnricherSettings, info: dict[str, Any], lookup: Lookup,
                  report: DrainReport) -> tuple[str, list[dict[str, Any]]]:
    low, high = stored_window(info)
    dynamodb = clients["dynamodb"]
    if lookup.symbols:
        found, read = query_stored(dynamodb, settings.table_name, lookup.symbols, low, high)
        report.items_read += read
        return f"table ({', '.join(lookup.symbols)})", found
    if not lookup.scan_table:
        raise NotVerified(f"the stream no longer holds this range and its symbols are unknown: name them "
                          f"with --symbols (reads only their partitions), or pass --scan-table to read the "
                          f"whole table ({scan_cost(dynamodb, settings.table_name)} per message)")
    lookup.say(f"reading the whole table {settings.table_name} for a trimmed range: "
               f"{scan_cost(dynamodb, settings.table_name)}")
    arguments: dict[str, Any] = {
        "TableName": settings.table_name, "ConsistentRead": True,
        "FilterExpression": "#stored BETWEEN :a AND :b", "ExpressionAttributeNames": {"#stored": STORED_AT},
        "ExpressionAttributeValues": {":a": {"N": str(low)}, ":b": {"N": str(high)}}}
    images: list[dict[str, Any]] = []
    while True:
        page = dynamodb.scan(**arguments)
        report.items_read += int(page.get("ScannedCount", len(page["Items"])))
        images += page["Items"]
        if "LastEvaluatedKey" not in page:
            return "table scan", images
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def redrive_failed_batch(clients: dict[str, Any], settings: EnricherSettings, body: dict[str, Any],
                         report: DrainReport, lookup: Lookup = Lookup(), set_aside: Collection[str] = ()
                         ) -> tuple[str, list[Unrestored]]:
    """Re-drive one on-failure record and verify its range: a line for the report and the items
    set aside, or NotVerified.

    Path 1, the stream (it holds 24 h): every record of the range is read; the INSERT records
    must number batchSize (the mapping's filter passes only INSERTs, so the MODIFY records of the
    enricher's own writes that fall inside the range were never in the batch and are not counted).
    Path 2, when the stream no longer holds the range: the items stored in the range's time
    window (`stored_at`, see STORED_BEFORE_ARRIVAL_MS), at least batchSize of them, found in the
    partitions of the symbols on-call names (`query_stored`), or in the whole table when asked
    (`Lookup.scan_table`, its cost printed first). The other items of that window are re-run too
    (the enricher's retry is idempotent; their announcements go out again).
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
        path, images = _stored_items(clients, settings, info, lookup, report)
        if len(images) < batch_size:
            low, high = stored_window(info)
            raise NotVerified(f"{path}: {len(images)} items stored between {low} and {high} (epoch ms), "
                              f"fewer than batchSize {batch_size}")
        detail = f"{len(images)} items stored in the window"
    report.paths[path.split(" (")[0]] += 1
    redriven, aside = _enrich_and_verify(clients, settings, images, info["streamArn"], path, set_aside)
    report.enriched += redriven
    report.verified += len(images) - len(aside)
    return (f"{path}: {detail}, all re-run (candles recomputed, updates announced again), {redriven} newly "
            f"enriched, {len(images) - len(aside)} verified enriched"
            + (f", {len(aside)} set aside" if aside else "")), aside


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


class Unreachable(DrainError):
    """AWS (or the local emulator) did not answer, or refused the credentials: one line, no traceback."""


_REFUSED = {"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
            "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "AccessDeniedException",
            "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def _unreachable(error: Exception, url: str) -> Unreachable | None:
    """The one line for a failure to reach the queue at all (None: some other error)."""
    if isinstance(error, ClientError) and _error_code(error) not in _REFUSED:
        return None
    if not isinstance(error, BotoCoreError | ClientError):
        return None
    detail = str(error).splitlines()[0][:200] if str(error) else ""
    return Unreachable(f"cannot reach AWS for {url}: {type(error).__name__}: {detail} (check the credentials "
                       "and region; for --env local, a running `invoke local`)")


def webhook_item(body: dict[str, Any]) -> str:
    """How the drain names a webhook DLQ message's update: SYMBOL/event ms."""
    update = body.get("update") if isinstance(body, dict) else None
    if isinstance(update, dict) and update.get("symbol"):
        return f"{update['symbol']}/{update.get('event_ms', update.get('timestamp', '?'))}"
    return "?"


def record_set_aside(path: Path, queue: str, message: dict[str, Any], items: list[str], reason: str) -> None:
    """Append one JSON line: when, which queue, the items, why, and the message's whole body (to
    re-send it once its cause is fixed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"set_aside_at": datetime.now(UTC).isoformat(timespec="seconds"), "queue": queue,
             "message_id": message["MessageId"], "items": items, "reason": reason, "body": message["Body"]}
    with path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def drain(queue: str, outputs: dict[str, Any], windows: Windows, clients: dict[str, Any], *,
          dry_run: bool = False, max_messages: int | None = None,
          show: Callable[[Survey], None] = lambda _: None,
          progress: Callable[[int], Any] | None = None, tick_retention_days: int | None = None,
          lookup: Lookup = Lookup(), set_aside: Collection[str] = (),
          set_aside_log: Path | None = None) -> DrainReport:
    """Re-drive a queue. `windows` and `tick_retention_days` are the environment's (its
    `indicator_windows` and `tick_retention_days`): a re-driven tick gets the webhook's
    `expires_at`, and a re-driven batch the enricher's candle horizon. `lookup`: how a range the
    stream no longer holds is found. `set_aside`: items (SYMBOL/key, as the report names them)
    or message ids that may be recorded in `set_aside_log` and taken out of the queue when they
    fail again. Unreachable: AWS did not answer the first call."""
    require_queue(queue)
    if set_aside and set_aside_log is None:
        raise DrainError("set_aside needs a file to record the items in")
    sqs, url = clients["sqs"], outputs[QUEUES[queue]]
    try:
        messages = receive_all(sqs, url, max_messages)
    except Exception as error:
        one_line = _unreachable(error, url)
        if one_line is None:
            raise
        raise one_line from None
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
    try:
        for message in messages:
            body: Any = None
            try:
                body = json.loads(message["Body"])
                if queue == "webhook":
                    outcome = redrive_update(clients["dynamodb"], outputs["table_name"], body, tick_retention_days)
                    report.stored += outcome == StoreOutcome.STORED
                    report.duplicates += outcome == StoreOutcome.DUPLICATE
                elif (body.get("requestPayload") or {}).get("action") == SWEEP_ACTION:
                    report.done.append(f"{message['MessageId']}: {rerun_sweep(clients, settings)}")
                else:
                    line, aside = redrive_failed_batch(clients, settings, body, report, lookup, set_aside)
                    if aside:
                        assert set_aside_log is not None
                        record_set_aside(set_aside_log, queue, message, [item_name(a.symbol, a.key) for a in aside],
                                         "; ".join(str(a) for a in aside))
                        report.set_aside += [f"{message['MessageId']}: {a}" for a in aside]
                    report.done.append(f"{message['MessageId']}: {line}")
            except Exception as error:  # noqa: BLE001 - the message stays, and the report says why
                reason = f"{type(error).__name__}: {str(error)[:1000]}"
                name = webhook_item(body) if queue == "webhook" else None
                if message["MessageId"] in set_aside or (name is not None and name in set_aside):
                    assert set_aside_log is not None
                    record_set_aside(set_aside_log, queue, message, [name or message["MessageId"]], reason)
                    report.set_aside.append(f"{message['MessageId']}: {name or 'message'}: {reason}")
                else:
                    release(sqs, url, [message])
                    if isinstance(error, NotRestored):
                        report.unrestored += [f"{message['MessageId']}: {item}" for item in error.items]
                    shown = f"{name}: " if name else ""
                    report.left.append(f"{message['MessageId']}: {shown}{reason}")
                    advance()
                    continue
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            report.processed += 1
            advance()
    except Exception as error:
        one_line = _unreachable(error, url)   # the queue itself stopped answering mid-drain
        if one_line is None:
            raise
        raise one_line from None
    return report
