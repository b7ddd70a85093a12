"""Price enricher service: a batch of the table stream's INSERT records → indicators stored → SNS.

Three steps, each in one place: a pure planner (`planner`) computes every record's
indicators from the batch and the symbols' history; the storage step puts each item once
(`price_table.ticks.put_enriched`); the announcements go out on SNS. Failures of any step
are reported in `batchItemFailures`, built once at the end, for Lambda to retry or send
to the on-failure destination. Stream invocations are synchronous, so Lambda destinations
never fire here: the function publishes its own success notifications.

Importable without the Lambda's Powertools logger and metrics (the drain and the tests call
`process`); `handler.py` adds them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from functions.price_enricher.planner import Failed, Planned, StreamItem, group_records, plan_symbol
from functions.price_enricher.settings import Settings
from functions.shared.observability import MetricSink, no_metrics
from functions.shared.price_table.keys import event_ms
from functions.shared.price_table.ticks import StoredEnrichment, history_pages, put_enriched

__all__ = ["CLIENT_CONFIG", "Settings", "process"]

READ_THREADS = 8
WRITE_THREADS = 16
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=WRITE_THREADS + 4)
SNS_BATCH = 10

logger = logging.getLogger("price_enricher")


@dataclass(frozen=True)
class Enriched:
    """A stored record and what its item holds (the values to announce)."""

    item: StreamItem
    stored: StoredEnrichment


class _CountingHistory:
    """The history source handed to the planner: Query pages, with the requests counted."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client, self.settings = client, settings
        self.requests = 0
        self._lock = threading.Lock()  # symbols are read concurrently

    def __call__(self, symbol: str, newest: int, page_size: int) -> Iterable[tuple[list[dict[str, Any]], bool]]:
        for page in history_pages(self.client, self.settings.table_name, symbol, newest, page_size,
                                  self.settings.windows.ema):
            with self._lock:
                self.requests += 1
            yield page


def plan(records: Sequence[Mapping[str, Any]], history: _CountingHistory, settings: Settings
         ) -> tuple[list[Planned], list[Failed], int]:
    """Every INSERT record planned or failed; symbols' history reads run concurrently."""
    by_symbol, failed, skipped = group_records(records)
    planned: list[Planned] = []
    if by_symbol:
        with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(by_symbol))) as pool:
            for outcomes in pool.map(lambda items: plan_symbol(items, history, settings.windows), by_symbol.values()):
                for outcome in outcomes:
                    (planned if isinstance(outcome, Planned) else failed).append(outcome)  # type: ignore[arg-type]
    return planned, failed, skipped


def store(dynamodb: Any, settings: Settings, planned: Sequence[Planned], enriched_at_ms: int
          ) -> tuple[list[Enriched], list[Failed], int]:
    """Put every planned item once, concurrently: (stored, failed, deleted meanwhile)."""
    def put(entry: Planned) -> Enriched | Failed | None:
        try:
            stored = put_enriched(dynamodb, settings.table_name, entry.item.stored_image, entry.indicators,
                                  enriched_at_ms)
        except Exception as error:  # noqa: BLE001 - reported for Lambda to retry
            return Failed(entry.item.sequence_number, f"write failed: {type(error).__name__}: {error}"[:300])
        return Enriched(entry.item, stored) if stored is not None else None

    enriched: list[Enriched] = []
    failed: list[Failed] = []
    deleted = 0
    if planned:
        with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(planned))) as pool:
            for outcome in pool.map(put, planned):
                if isinstance(outcome, Enriched):
                    enriched.append(outcome)
                elif isinstance(outcome, Failed):
                    failed.append(outcome)
                else:
                    deleted += 1
    return enriched, failed, deleted


def notification(entry: Enriched) -> dict[str, Any]:
    item = entry.item
    body = {
        "symbol": item.symbol, "timestamp": item.timestamp, "event_time_ms": event_ms(item.timestamp),
        "price": str(item.image.get("price")), "exchange": item.image.get("exchange"),
        "indicators": {name: str(value) for name, value in sorted(entry.stored.indicators.items())},
        "enriched_at": entry.stored.enriched_at,
    }
    return {"Message": json.dumps(body),
            "MessageAttributes": {"symbol": {"DataType": "String", "StringValue": item.symbol}}}


def publish(sns: Any, topic_arn: str, enriched: Sequence[Enriched]) -> list[Failed]:
    """Announce each enriched update (PublishBatch, 10 a call); the records whose message was not accepted."""
    failed: list[Failed] = []
    for start in range(0, len(enriched), SNS_BATCH):
        chunk = enriched[start:start + SNS_BATCH]
        entries = [{"Id": str(i), **notification(entry)} for i, entry in enumerate(chunk)]
        try:
            result = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
            failed += [Failed(chunk[int(entry["Id"])].item.sequence_number, "notification not accepted")
                       for entry in result.get("Failed", [])]
        except Exception:  # noqa: BLE001 - reported as failures so the records are retried
            logger.exception("publishing notifications failed", extra={"count": len(chunk)})
            failed += [Failed(entry.item.sequence_number, "notification failed") for entry in chunk]
    return failed


def batch_item_failures(failed: Iterable[Failed]) -> dict[str, Any]:
    """Lambda's partial-batch response: each failed sequence number once, in stream order."""
    sequences = sorted({entry.sequence_number for entry in failed}, key=_sequence_order)
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in sequences]}


def _sequence_order(sequence: str) -> tuple[int, str]:
    return (int(sequence), sequence) if sequence.isdigit() else (0, sequence)


def process(event: Mapping[str, Any], settings: Settings, dynamodb: Any, sns: Any, now: float | None = None,
            metrics: MetricSink = no_metrics) -> dict[str, Any]:
    """One stream batch: plan, store, announce; report what failed."""
    records = event.get("Records", [])
    history = _CountingHistory(dynamodb, settings)
    planned, failed, _ = plan(records, history, settings)
    enriched_at = int((time.time() if now is None else now) * 1000)
    enriched, write_failures, deleted = store(dynamodb, settings, planned, enriched_at)
    if deleted:
        logger.warning("items deleted before enrichment", extra={"count": deleted})
    announce_failures = publish(sns, settings.topic_arn, enriched) if enriched else []
    failures = [*failed, *write_failures, *announce_failures]

    metrics("RecordsEnriched", len(enriched) - len(announce_failures))
    metrics("RecordFailures", len({f.sequence_number for f in failures}))
    metrics("DynamoDBRequests", history.requests + len(planned))
    if failures:
        reasons = sorted({f.reason.split(":")[0] for f in failures})
        logger.error("records failed enrichment", extra={"failed": len(failures), "reasons": reasons})
    logger.info("batch enriched", extra={"records": len(records), "enriched": len(enriched),
                                         "dynamodb_reads": history.requests, "dynamodb_writes": len(planned)})
    return batch_item_failures(failures)
