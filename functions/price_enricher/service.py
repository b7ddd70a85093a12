"""Price enricher service: a batch of the table stream's INSERT records → indicators stored → SNS.

Each step in one place: a pure planner (`planner`) computes every record's indicators, and
the corrections a late record makes to later items, from the batch and the symbols' stored
items; the storage step puts each item once (`price_table.ticks.put_enriched`), then writes
the corrections (`put_correction`, conditional on what was read); the candle step brings
each symbol's candles up to date (`price_table.candles.maintain`); the announcements go out
on SNS. Failures of any step are reported in `batchItemFailures`, built once at the end, for
Lambda to retry or send to the on-failure destination. Stream invocations are synchronous,
so Lambda destinations never fire here: the function publishes its own notifications.

Importable without the Lambda's Powertools logger and metrics (the drain and the tests call
`process`); `handler.py` adds them. Its records are `Record`s and a plain class, not dataclasses
(cold start: see functions.shared.records).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from botocore.config import Config

from functions.price_enricher.planner import (
    Correction,
    Failed,
    Pages,
    Planned,
    ReadHints,
    StreamItem,
    SymbolPlan,
    group_records,
    parse_row,
    plan_symbol,
    stored_values,
)
from functions.price_enricher.settings import SWEEP_ACTION, Settings
from functions.shared.observability import MetricSink, no_metrics
from functions.shared.price_table import candles
from functions.shared.price_table.keys import event_ms
from functions.shared.price_table.ticks import (
    CorrectionOutcome,
    StoredEnrichment,
    history_pages,
    oldest_recomputable_ms,
    pages_after,
    put_correction,
    put_enriched,
)
from functions.shared.records import Record

__all__ = ["CLIENT_CONFIG", "SWEEP_ACTION", "Settings", "process", "sweep_quiet_symbols"]

READ_THREADS = 8
WRITE_THREADS = 16
CANDLE_THREADS = 4
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5},
                       max_pool_connections=max(WRITE_THREADS, CANDLE_THREADS * candles.WRITE_THREADS) + 4)
SNS_BATCH = 10

logger = logging.getLogger("price_enricher")


class _CountingReader:
    """The planner's `TickReader`: Query pages of the prices table, with the requests counted."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client, self.settings = client, settings
        self.requests = 0
        self._lock = threading.Lock()  # symbols are read concurrently

    def _counted(self, pages: Pages) -> Pages:
        for page in pages:
            with self._lock:
                self.requests += 1
            yield page

    def newest_first(self, symbol: str, newest: int | None, page_size: int, venue: str | None = None) -> Pages:
        return self._counted(history_pages(self.client, self.settings.table_name, symbol, newest, page_size, venue))

    def oldest_first(self, symbol: str, after: int, page_sizes: Sequence[int], max_items: int,
                     venue: str | None = None) -> Pages:
        return self._counted(pages_after(self.client, self.settings.table_name, symbol, after, page_sizes,
                                         max_items, venue))


# The warm process's memory of each symbol's venue shares: it sizes history pages only (a stale
# hint costs a page, never a value), so one Query per symbol still suffices with three venues.
READ_HINTS = ReadHints()

Series = tuple[str, str]
"""(symbol, venue): what indicators, late records and corrections are per."""


def plan(by_symbol: Mapping[str, Sequence[StreamItem]], reader: _CountingReader, settings: Settings
         ) -> dict[Series, SymbolPlan]:
    """Every series' plan; the symbols' reads (one per symbol, all its venues) run concurrently."""
    if not by_symbol:
        return {}
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(by_symbol))) as pool:
        plans = pool.map(lambda items: plan_symbol(items, reader, settings.windows, hints=READ_HINTS,
                                                   scope=settings.table_name), by_symbol.values())
        return {(symbol, venue): series_plan for symbol, by_venue in zip(by_symbol, plans, strict=True)
                for venue, series_plan in by_venue.items()}


class Announcement(Record):
    """One SNS message: an item's stored values, first announced (`corrected_at` None) or
    corrected; `sequence_number` is the record failed if the message is not accepted."""

    __slots__ = ("sequence_number", "symbol", "timestamp", "price", "exchange", "indicators", "enriched_at",
                 "corrected_at")

    sequence_number: str
    symbol: str
    timestamp: int
    price: str
    exchange: Any
    indicators: Mapping[str, Decimal]
    enriched_at: int
    corrected_at: int | None

    def __init__(self, sequence_number: str, symbol: str, timestamp: int, price: str, exchange: Any,
                 indicators: Mapping[str, Decimal], enriched_at: int, corrected_at: int | None = None) -> None:
        self._init(sequence_number, symbol, timestamp, price, exchange, indicators, enriched_at, corrected_at)


class _Stored:
    """What the storage steps did (mutable while the batch runs, read once at the end)."""

    __slots__ = ("announcements", "failed", "deleted", "puts", "corrections_written", "correction_requests",
                 "out_of_range")

    def __init__(self) -> None:
        self.announcements: list[Announcement] = []
        self.failed: list[Failed] = []
        self.deleted = 0
        self.puts = 0
        self.corrections_written = 0
        self.correction_requests = 0
        self.out_of_range = 0


def _first_announcement(item: StreamItem, stored: StoredEnrichment) -> Announcement:
    return Announcement(item.sequence_number, item.symbol, item.timestamp, str(item.image.get("price")),
                        item.image.get("exchange"), stored.indicators, stored.enriched_at, stored.corrected_at)


def store(dynamodb: Any, settings: Settings, planned: Sequence[Planned], enriched_at_ms: int, result: _Stored
          ) -> dict[str, StoredEnrichment | None]:
    """Put every planned item once, concurrently; what each record's item holds afterwards
    (None: deleted meanwhile; absent: the put failed)."""
    def put(entry: Planned) -> StoredEnrichment | Failed | None:
        try:
            return put_enriched(dynamodb, settings.table_name, entry.item.stored_image, entry.indicators,
                                enriched_at_ms)
        except Exception as error:  # noqa: BLE001 - reported for Lambda to retry
            return Failed(entry.item.sequence_number, f"write failed: {type(error).__name__}: {error}"[:300])

    held: dict[str, StoredEnrichment | None] = {}
    if not planned:
        return held
    result.puts += len(planned)
    with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(planned))) as pool:
        for entry, outcome in zip(planned, pool.map(put, planned), strict=True):
            if isinstance(outcome, Failed):
                result.failed.append(outcome)
                continue
            held[entry.item.sequence_number] = outcome
            if outcome is None:
                result.deleted += 1
                continue
            if outcome.enriched_at == enriched_at_ms and outcome.corrected_at is None:
                result.out_of_range += len(entry.out_of_range)
            result.announcements.append(_first_announcement(entry.item, outcome))
    return held


def confirmed_corrections(plans: Mapping[Series, SymbolPlan], held: Mapping[str, StoredEnrichment | None],
                          settings: Settings, result: _Stored) -> list[Correction]:
    """The corrections whose basis is stored: each was computed from its series' batch records
    before it, so it is written only if every one of them now holds the values the walk continued
    from. A record whose item turned out otherwise (enriched concurrently between the read and
    the put, or its put failed) withholds the corrections after it, and is failed so that its
    retry recomputes them from what is stored."""
    names = set(settings.windows.names())
    confirmed: list[Correction] = []
    for symbol_plan in plans.values():
        if not symbol_plan.corrections:
            continue
        cutoff: int | None = None
        for entry in symbol_plan.planned:
            sequence = entry.item.sequence_number
            if sequence not in held:
                mismatch = True  # its put failed: already reported
            else:
                outcome = held[sequence]
                mismatch = outcome is not None and {k: v for k, v in outcome.indicators.items() if k in names} != \
                    dict(entry.basis)
                if mismatch:
                    result.failed.append(Failed(sequence, "enriched concurrently: later items recomputed on retry"))
            if mismatch and (cutoff is None or entry.item.timestamp < cutoff):
                cutoff = entry.item.timestamp
        confirmed += [c for c in symbol_plan.corrections if cutoff is None or c.timestamp < cutoff]
    return confirmed


def correct(dynamodb: Any, settings: Settings, corrections: Sequence[Correction], corrected_at_ms: int,
            result: _Stored) -> None:
    """Write the corrections (conditional on the enrichment read), concurrently; announce each
    written one, and those a previous delivery wrote (`write` False) again."""
    def write(entry: Correction) -> CorrectionOutcome | Failed:
        try:
            return put_correction(dynamodb, settings.table_name, entry.image, entry.indicators, corrected_at_ms,
                                  entry.trigger.timestamp)
        except Exception as error:  # noqa: BLE001 - the trigger record is reported for Lambda to retry
            return Failed(entry.trigger.sequence_number, f"correction failed: {type(error).__name__}: {error}"[:300])

    to_write = [entry for entry in corrections if entry.write]
    outcomes: dict[int, CorrectionOutcome | Failed] = {}
    if to_write:
        result.correction_requests += len(to_write)
        with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(to_write))) as pool:
            outcomes = dict(zip((id(entry) for entry in to_write), pool.map(write, to_write), strict=True))
    for entry in corrections:
        outcome = outcomes.get(id(entry))
        if isinstance(outcome, Failed):
            result.failed.append(outcome)
            continue
        if outcome is CorrectionOutcome.CHANGED:
            result.failed.append(Failed(entry.trigger.sequence_number,
                                        "correction refused: the item changed since it was read"))
            continue
        if outcome is CorrectionOutcome.DELETED:
            continue
        row = parse_row(entry.image)
        plain = stored_values(row)
        if outcome is CorrectionOutcome.WRITTEN:
            result.corrections_written += 1
            result.out_of_range += len(entry.out_of_range)
            corrected_at = corrected_at_ms
        else:
            corrected_at = int(plain["corrected_at"]) if "corrected_at" in plain else corrected_at_ms
        result.announcements.append(Announcement(
            entry.trigger.sequence_number, entry.symbol, entry.timestamp, str(plain.get("price")),
            plain.get("exchange"), entry.indicators, int(plain["enriched_at"]), corrected_at))


class CandleResult(Record):
    __slots__ = ("failed", "read_requests", "write_requests")

    failed: tuple[Failed, ...]
    read_requests: int
    write_requests: int

    def __init__(self, failed: tuple[Failed, ...] = (), read_requests: int = 0, write_requests: int = 0) -> None:
        self._init(failed, read_requests, write_requests)


def candle_horizon(settings: Settings, now_ms: int) -> int | None:
    """The oldest tick time whose minute candle maintenance may recompute from stored ticks:
    None without a retention (ticks are kept), else the retention horizon (`price_table.ticks`)."""
    if settings.tick_retention_days is None:
        return None
    return oldest_recomputable_ms(now_ms, settings.tick_retention_days)


def maintain_candles(dynamodb: Any, settings: Settings, by_symbol: Mapping[str, Sequence[StreamItem]],
                     now_ms: int) -> CandleResult:
    """Bring each symbol's candles up to date with the batch's ticks, after they are stored.

    Every INSERT record that parsed counts, including one whose item was enriched before (a
    retry): maintenance recomputes candles from stored ticks and skips a batch it has applied,
    so it never counts a tick twice. A symbol whose maintenance fails has its records failed:
    the retry maintains again. No candle table configured: nothing to do.

    `now_ms` keeps the candle watermark at or before the present (a tick dated ahead closes
    nothing early, so the ticks of the real present are not all late); with a tick retention,
    minutes older than `oldest_recomputable_ms` (the retention plus a margin: see
    `price_table.ticks`) are not recomputed, as TTL may have deleted some of their ticks.
    """
    if not settings.candle_table_name or not by_symbol:
        return CandleResult()
    horizon = candle_horizon(settings, now_ms)

    def run(symbol: str) -> candles.CandleWrites | Exception:
        try:
            return candles.maintain(dynamodb, settings.candle_table_name, settings.table_name, symbol,
                                    [item.timestamp for item in by_symbol[symbol]],
                                    oldest_recomputable_ms=horizon, now_ms=now_ms,
                                    venues={item.venue for item in by_symbol[symbol] if item.venue})
        except Exception as error:  # noqa: BLE001 - the symbol's records are reported and retried
            return error

    failed: list[Failed] = []
    reads = writes = 0
    with ThreadPoolExecutor(max_workers=min(CANDLE_THREADS, len(by_symbol))) as pool:
        for symbol, outcome in zip(by_symbol, pool.map(run, by_symbol), strict=True):
            if isinstance(outcome, Exception):
                reason = f"candles failed: {type(outcome).__name__}: {outcome}"[:300]
                failed += [Failed(item.sequence_number, reason) for item in by_symbol[symbol]]
            else:
                reads += outcome.read_requests
                writes += outcome.write_requests
    return CandleResult(tuple(failed), reads, writes)


class SweepFailed(Exception):
    """Some symbols' forming minutes could not be closed; the next hourly run tries again. Raised
    after every other symbol was done, so the invocation counts as an error (the alarm sees it)."""


def sweep_quiet_symbols(settings: Settings, dynamodb: Any, now: float | None = None,
                        metrics: MetricSink = no_metrics, deadline: float | None = None) -> dict[str, Any]:
    """The hourly schedule's run: close every quiet symbol's forming minutes (see
    `price_table.candles.sweep`), so no tick the retention deletes was only in a forming minute.
    `deadline` (time.monotonic()): start no symbol after it; the ones left make the run fail, so
    it is retried (stalest first, so each run gets further)."""
    if not settings.candle_table_name:
        raise SweepFailed("no candle table configured (CANDLE_TABLE_NAME): nothing can be swept")
    now_ms = int((time.time() if now is None else now) * 1000)
    result = candles.sweep(dynamodb, settings.candle_table_name, settings.table_name, now_ms,
                           candle_horizon(settings, now_ms), deadline)
    metrics("QuietSymbolsClosed", len(result.closed))
    metrics("CandleWriteRequests", result.write_requests)
    summary = {"checked": result.checked, "closed": len(result.closed),
               "candles_written": sum(w.candles_written for w in result.closed),
               "read_requests": result.read_requests, "write_requests": result.write_requests}
    logger.info("quiet symbols swept", extra=summary)
    if result.failed or result.unreached:
        raise SweepFailed(f"{len(result.failed)} failed and {len(result.unreached)} not reached of "
                          f"{result.checked} symbols: "
                          + "; ".join(f"{symbol}: {reason}" for symbol, reason in result.failed)[:1000])
    return summary


def notification(entry: Announcement) -> dict[str, Any]:
    """The SNS message: a correction carries `correction: true` and `corrected_at` (body and
    message attribute), so subscribers can tell it from a first announcement and filter on it.
    `venue` (body and message attribute: the item's `exchange`) names the series the indicators
    are computed over, so a subscriber can filter on a venue (a filter policy on `venue`); an
    item without an exchange has no venue attribute (SNS refuses an empty String value)."""
    venue = str(entry.exchange) if entry.exchange else ""
    body: dict[str, Any] = {
        "symbol": entry.symbol, "venue": venue, "timestamp": entry.timestamp,
        "event_time_ms": event_ms(entry.timestamp), "price": entry.price, "exchange": entry.exchange,
        "indicators": {name: str(value) for name, value in sorted(entry.indicators.items())},
        "enriched_at": entry.enriched_at, "correction": entry.corrected_at is not None,
    }
    if entry.corrected_at is not None:
        body["corrected_at"] = entry.corrected_at
    attributes = {"symbol": {"DataType": "String", "StringValue": entry.symbol},
                  "correction": {"DataType": "String", "StringValue": "true" if entry.corrected_at else "false"}}
    if venue:
        attributes["venue"] = {"DataType": "String", "StringValue": venue}
    return {"Message": json.dumps(body), "MessageAttributes": attributes}


def publish(sns: Any, topic_arn: str, announcements: Sequence[Announcement]) -> list[Failed]:
    """Announce each update (PublishBatch, 10 a call); the records whose message was not accepted."""
    failed: list[Failed] = []
    for start in range(0, len(announcements), SNS_BATCH):
        chunk = announcements[start:start + SNS_BATCH]
        entries = [{"Id": str(i), **notification(entry)} for i, entry in enumerate(chunk)]
        try:
            result = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
            failed += [Failed(chunk[int(entry["Id"])].sequence_number, "notification not accepted")
                       for entry in result.get("Failed", [])]
        except Exception:
            logger.exception("publishing notifications failed", extra={"count": len(chunk)})
            failed += [Failed(entry.sequence_number, "notification failed") for entry in chunk]
    return failed


def batch_item_failures(failed: Iterable[Failed]) -> dict[str, Any]:
    """Lambda's partial-batch response: each failed sequence number once, in stream order."""
    sequences = sorted({entry.sequence_number for entry in failed}, key=_sequence_order)
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in sequences]}


def _sequence_order(sequence: str) -> tuple[int, str]:
    return (int(sequence), sequence) if sequence.isdigit() else (0, sequence)


def process(event: Mapping[str, Any], settings: Settings, dynamodb: Any, sns: Any, now: float | None = None,
            metrics: MetricSink = no_metrics) -> dict[str, Any]:
    """One stream batch: plan, store, correct, maintain candles, announce; report what failed."""
    records = event.get("Records", [])
    now_ms = int((time.time() if now is None else now) * 1000)
    reader = _CountingReader(dynamodb, settings)
    by_symbol, failed, _ = group_records(records)
    plans = plan(by_symbol, reader, settings)
    failed += [entry for symbol_plan in plans.values() for entry in symbol_plan.failed]
    planned = [entry for symbol_plan in plans.values() for entry in symbol_plan.planned]
    result = _Stored()
    held = store(dynamodb, settings, planned, now_ms, result)
    first_announced = len(result.announcements)
    correct(dynamodb, settings, confirmed_corrections(plans, held, settings, result), now_ms, result)
    candle = maintain_candles(dynamodb, settings, by_symbol, now_ms)
    if result.deleted:
        logger.warning("items deleted before enrichment", extra={"count": result.deleted})
    announce_failures = publish(sns, settings.topic_arn, result.announcements) if result.announcements else []
    failures = [*failed, *result.failed, *candle.failed, *announce_failures]

    first_sequences = {a.sequence_number for a in result.announcements[:first_announced]}
    first_failed = {f.sequence_number for f in announce_failures} & first_sequences
    reads = reader.requests + candle.read_requests
    writes = result.puts + result.correction_requests + candle.write_requests
    metrics("RecordsEnriched", first_announced - len(first_failed))
    metrics("ItemsCorrected", result.corrections_written)
    metrics("IndicatorsOutOfRange", result.out_of_range)
    metrics("RecordFailures", len({f.sequence_number for f in failures}))
    metrics("DynamoDBRequests", reads + writes)
    for (symbol, venue), symbol_plan in plans.items():
        if symbol_plan.corrections:
            logger.info("late records corrected later items", extra={
                "symbol": symbol, "venue": venue, "corrections": sum(c.write for c in symbol_plan.corrections),
                "announced_again": sum(not c.write for c in symbol_plan.corrections),
                "compared_after_batch": symbol_plan.compared, "stop": symbol_plan.stop})
    if failures:
        reasons = sorted({f.reason.split(":")[0] for f in failures})
        logger.error("records failed enrichment", extra={"failed": len(failures), "reasons": reasons})
    logger.info("batch enriched", extra={
        "records": len(records), "enriched": first_announced, "corrected": result.corrections_written,
        "dynamodb_reads": reads, "dynamodb_writes": writes,
        "candle_reads": candle.read_requests, "candle_writes": candle.write_requests})
    return batch_item_failures(failures)
