"""Batch planning, free of I/O: stream records → per-record outcomes (immutable).

Records are grouped by symbol; each symbol's indicators are computed in timestamp order
from the batch's own prices and the symbol's stored history, which the caller supplies as
an iterable of pages read newest first (`price_table.ticks.history_pages`): the planner
stops consuming pages as soon as the history suffices, so the read stays one Query for a
symbol in steady state. Records that arrive late are enriched from the history before
them; items after them keep the values they were enriched with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from functions.price_enricher.indicators import Windows, ema_step, to_decimal, window_indicators

_deserializer = TypeDeserializer()


class RecordError(Exception):
    """A stream record that cannot be enriched (reported in batchItemFailures)."""


@dataclass(frozen=True)
class StreamItem:
    """One INSERT record's new image, reduced to what enrichment needs."""

    sequence_number: str
    symbol: str
    timestamp: int
    price: Decimal
    image: Mapping[str, Any]         # deserialized
    stored_image: Mapping[str, Any]  # the item as DynamoDB JSON


@dataclass(frozen=True)
class Planned:
    """A record to store with its indicators."""

    item: StreamItem
    indicators: Mapping[str, Decimal]


@dataclass(frozen=True)
class Failed:
    """A record that failed: reported for Lambda to retry, then to dead-letter."""

    sequence_number: str
    reason: str


def sequence_of(record: Mapping[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber", "?"))


def parse_record(record: Mapping[str, Any]) -> StreamItem:
    sequence = sequence_of(record)
    image = record.get("dynamodb", {}).get("NewImage")
    if not image:
        raise RecordError("record has no NewImage")
    try:
        plain = {k: _deserializer.deserialize(v) for k, v in image.items()}
        price = Decimal(plain["price"])
        if not price.is_finite() or price <= 0:
            raise ValueError("price must be positive")
        return StreamItem(sequence, str(plain["symbol"]), int(plain["timestamp"]), price,
                          MappingProxyType(plain), MappingProxyType(dict(image)))
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise RecordError(f"unparsable item: {type(error).__name__}: {error}") from None


@dataclass(frozen=True)
class _Point:
    timestamp: int
    price: float
    stored_ema: Mapping[int, float]
    in_batch: bool


def _history_price(row: Mapping[str, Any]) -> float | None:
    value = row.get("price")
    if isinstance(value, Decimal) and value.is_finite() and value > 0:
        return float(value)
    return None


def _history_sufficient(points: Mapping[int, _Point], oldest_batch: int, windows: Windows) -> bool:
    older = [p for ts, p in points.items() if ts < oldest_batch]
    if len(older) < windows.history_needed:
        return False
    return all(any(n in p.stored_ema for p in older) for n in windows.ema)


def history_page_size(batch_items: int, windows: Windows) -> int:
    """Items one history page should hold: the widest window, the batch's own items and one spare."""
    return windows.history_needed + batch_items + 1


def enrich_symbol(items: Sequence[StreamItem], pages: Iterable[tuple[list[dict[str, Any]], bool]],
                  windows: Windows) -> dict[int, dict[str, Decimal]]:
    """Indicators for each of a symbol's batch items, keyed by timestamp.

    `pages` yields (deserialized rows newest first, whether it was the last page).
    """
    batch = {item.timestamp: item for item in items}
    points: dict[int, _Point] = {ts: _Point(ts, float(item.price), {}, True) for ts, item in batch.items()}
    oldest_batch = min(batch)
    exhausted = False
    for rows, last in pages:
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
            previous = ema_state[n]
            if not point.in_batch and n in point.stored_ema:
                ema_state[n] = point.stored_ema[n]  # later items keep what they were enriched with
            elif previous is not None:
                ema_state[n] = ema_step(previous, point.price, n)
            elif is_first_of_symbol:
                ema_state[n] = point.price
        if not point.in_batch:
            continue
        prices = [p.price for p in ordered[max(0, index - windows.history_needed): index + 1]]
        values = window_indicators(prices, windows)
        for n in windows.ema:
            state = ema_state[n]
            if state is not None:
                values[f"ema_{n}"] = state
        results[point.timestamp] = {name: to_decimal(value) for name, value in values.items()}
    return results


HistorySource = Callable[[str, int, int], Iterable[tuple[list[dict[str, Any]], bool]]]
"""(symbol, newest timestamp, page size) → history pages newest first."""


def group_records(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list[StreamItem]], list[Failed], int]:
    """INSERT records by symbol; unparsable records as failures; the count of other records."""
    by_symbol: dict[str, list[StreamItem]] = defaultdict(list)
    failed: list[Failed] = []
    skipped = 0
    for record in records:
        if record.get("eventName") != "INSERT":
            skipped += 1
            continue
        try:
            item = parse_record(record)
        except RecordError as error:
            failed.append(Failed(sequence_of(record), str(error)))
            continue
        by_symbol[item.symbol].append(item)
    return dict(by_symbol), failed, skipped


def plan_symbol(items: Sequence[StreamItem], history: HistorySource, windows: Windows) -> list[Planned | Failed]:
    """One symbol's outcomes; a failed history read fails the symbol's records (they are retried)."""
    newest = max(item.timestamp for item in items)
    try:
        pages = history(items[0].symbol, newest, history_page_size(len(items), windows))
        computed = enrich_symbol(items, pages, windows)
    except Exception as error:  # noqa: BLE001 - the symbol's records are reported and retried
        reason = f"history read failed: {type(error).__name__}: {error}"[:300]
        return [Failed(item.sequence_number, reason) for item in items]
    return [Planned(item, MappingProxyType(computed[item.timestamp])) for item in items]
