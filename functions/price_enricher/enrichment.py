"""Batch enrichment: group by symbol, one history Query per symbol, compute in timestamp order.

AWS calls go through the injected DynamoDB client; the computation is pure. Records
that arrive late are enriched from the history before them; items after them keep the
values they were enriched with (they are not recomputed).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from functions.price_enricher.indicators import Windows, ema_step, to_decimal, window_indicators

_deserializer = TypeDeserializer()


class RecordError(Exception):
    """A stream record that cannot be enriched (reported in batchItemFailures)."""


@dataclass
class StreamItem:
    """One stream record's new image, reduced to what enrichment needs."""

    sequence_number: str
    symbol: str
    timestamp: int
    price: Decimal
    image: dict[str, Any]
    stored_image: dict[str, Any] = field(default_factory=dict)  # the item as DynamoDB JSON


@dataclass
class PlannedRecord:
    sequence_number: str
    symbol: str | None = None
    timestamp: int | None = None
    indicators: dict[str, Decimal] = field(default_factory=dict)
    image: dict[str, Any] = field(default_factory=dict)
    stored_image: dict[str, Any] = field(default_factory=dict)  # the item as DynamoDB JSON
    enriched_at: int | None = None  # when its indicators were stored
    error: str | None = None
    skip: bool = False  # not an INSERT: nothing to do


def parse_record(record: dict[str, Any]) -> StreamItem:
    sequence = record.get("dynamodb", {}).get("SequenceNumber", "?")
    image = record.get("dynamodb", {}).get("NewImage")
    if not image:
        raise RecordError("record has no NewImage")
    try:
        plain = {k: _deserializer.deserialize(v) for k, v in image.items()}
        price = Decimal(plain["price"])
        if not price.is_finite() or price <= 0:
            raise ValueError("price must be positive")
        return StreamItem(sequence, str(plain["symbol"]), int(plain["timestamp"]), price, plain, image)
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise RecordError(f"unparsable item: {type(error).__name__}: {error}") from None


@dataclass
class _Point:
    timestamp: int
    price: float
    stored_ema: dict[int, float]
    in_batch: bool


class HistoryReader:
    """Reads a symbol's items newest first, page by page, counting requests."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client, self.table_name = client, table_name
        self.requests = 0
        self._count = threading.Lock()  # symbols are read concurrently

    def pages(self, symbol: str, newest: int, page_size: int, ema_windows: tuple[int, ...]):
        names = {"#s": "symbol", "#t": "timestamp", "#p": "price"}
        projection = ["#s", "#t", "#p"]
        for n in ema_windows:
            names[f"#e{n}"] = f"ema_{n}"
            projection.append(f"#e{n}")
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#s = :s AND #t <= :t",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":s": {"S": symbol}, ":t": {"N": str(newest)}},
            "ProjectionExpression": ", ".join(projection),
            "ScanIndexForward": False,
            "ConsistentRead": True,  # the previous tick may have been written a moment ago
            "Limit": page_size,
        }
        while True:
            with self._count:
                self.requests += 1
            page = self.client.query(**arguments)
            last_key = page.get("LastEvaluatedKey")
            yield [{k: _deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]], \
                last_key is None
            if last_key is None:
                return
            arguments["ExclusiveStartKey"] = last_key


def _history_price(row: dict[str, Any]) -> float | None:
    value = row.get("price")
    if isinstance(value, Decimal) and value.is_finite() and value > 0:
        return float(value)
    return None


def _history_sufficient(points: dict[int, _Point], oldest_batch: int, windows: Windows) -> bool:
    older = [p for ts, p in points.items() if ts < oldest_batch]
    if len(older) < windows.history_needed:
        return False
    return all(any(n in p.stored_ema for p in older) for n in windows.ema)


def enrich_symbol(items: list[StreamItem], reader: HistoryReader, windows: Windows) -> dict[int, dict[str, Decimal]]:
    """Indicators for each of a symbol's batch items, keyed by timestamp."""
    batch = {item.timestamp: item for item in items}
    points: dict[int, _Point] = {
        ts: _Point(ts, float(item.price), {}, True) for ts, item in batch.items()
    }
    oldest_batch, newest_batch = min(batch), max(batch)
    exhausted = False
    page_size = windows.history_needed + len(batch) + 1
    for rows, last in reader.pages(items[0].symbol, newest_batch, page_size, windows.ema):
        for row in rows:
            ts = int(row["timestamp"])
            if ts in batch:
                continue  # the stream image is the same item (if already enriched, its stored values stand)
            price = _history_price(row)
            if price is None:
                continue  # an item that is not a price (reported when its own record came through)
            stored = {n: float(row[f"ema_{n}"]) for n in windows.ema if f"ema_{n}" in row}
            points[ts] = _Point(ts, price, stored, False)
        exhausted = last
        if exhausted or _history_sufficient(points, oldest_batch, windows):
            break

    ordered = [points[ts] for ts in sorted(points)]
    ema_state: dict[int, float | None] = {n: None for n in windows.ema}
    results: dict[int, dict[str, Decimal]] = {}
    for index, point in enumerate(ordered):
        is_first_of_symbol = exhausted and index == 0
        for n in windows.ema:
            if not point.in_batch and n in point.stored_ema:
                ema_state[n] = point.stored_ema[n]  # later items keep what they were enriched with
            elif ema_state[n] is not None:
                ema_state[n] = ema_step(ema_state[n], point.price, n)
            elif is_first_of_symbol:
                ema_state[n] = point.price
        if not point.in_batch:
            continue
        prices = [p.price for p in ordered[max(0, index - windows.history_needed): index + 1]]
        values = window_indicators(prices, windows)
        for n in windows.ema:
            if ema_state[n] is not None:
                values[f"ema_{n}"] = ema_state[n]
        results[point.timestamp] = {name: to_decimal(value) for name, value in values.items()}
    return results


def plan_batch(records: list[dict[str, Any]], reader: HistoryReader, windows: Windows,
               threads: int = 8) -> dict[str, PlannedRecord]:
    """Every record's outcome, keyed by sequence number: indicators, a skip, or an error.

    Symbols are independent, so their history reads run concurrently: a batch spanning
    many symbols waits for a few Query round trips, not one per symbol in a row.
    """
    plans: dict[str, PlannedRecord] = {}
    by_symbol: dict[str, list[StreamItem]] = defaultdict(list)
    for record in records:
        sequence = record.get("dynamodb", {}).get("SequenceNumber", "?")
        if record.get("eventName") != "INSERT":
            plans[sequence] = PlannedRecord(sequence, skip=True)
            continue
        try:
            item = parse_record(record)
        except RecordError as error:
            plans[sequence] = PlannedRecord(sequence, error=str(error))
            continue
        by_symbol[item.symbol].append(item)
        plans[sequence] = PlannedRecord(sequence, item.symbol, item.timestamp, image=item.image,
                                        stored_image=item.stored_image)

    def plan_symbol(items: list[StreamItem]) -> None:
        try:
            computed = enrich_symbol(items, reader, windows)
        except Exception as error:  # noqa: BLE001 - the symbol's records are reported and retried
            for item in items:
                plans[item.sequence_number].error = f"history read failed: {type(error).__name__}: {error}"[:300]
            return
        for item in items:
            plans[item.sequence_number].indicators = computed[item.timestamp]

    if by_symbol:
        with ThreadPoolExecutor(max_workers=min(threads, len(by_symbol))) as pool:
            list(pool.map(plan_symbol, by_symbol.values()))
    return plans
