"""Tick items: their format, the webhook's conditional write (shared with the webhook DLQ
re-drive), the enricher's history read, its conditional put and its corrections of later items.

Every stored item carries `stored_at`, the epoch milliseconds of the write that stored it (the
webhook's, or the webhook-DLQ re-drive's, not the sender's receive time): the table stream's
arrival times are close to it, so the enricher-DLQ drain finds the items of a failed range the
stream no longer holds by it (`scan_stored`).

If a slot (see `keys`) holds a different update (a hash collision, or a second distinct
tick of the same exchange in that millisecond), the write probes the next slot; a
redelivery walks the same probe sequence and meets its identical twin, which counts as
a duplicate. A write never overwrites an item (it may carry enrichment already).

With a retention (an environment's `tick_retention_days`), every stored item carries
`expires_at` (EXPIRES_AT, the table's TTL attribute, enabled by the storage stack): epoch
seconds, that many days after the latest of the tick's receipt, its write and its own time
(`tick_expiry`). The enricher's put and corrections rewrite whole items, so it stays; candle
maintenance keeps away from minutes whose ticks may have expired (`oldest_recomputable_ms`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from functions.shared.price_table.items import (
    CORRECTED_AT,
    CORRECTED_BY,
    ENRICHED_AT,
    OPTIONAL_NUMBERS,
    VENUE,
    is_indicator,
)
from functions.shared.price_table.keys import PARTITION_KEY, SLOTS_PER_MS, SORT_KEY, event_ms, first_slot, sort_key
from functions.shared.price_update import PriceUpdate

MAX_PROBES = 50
STORED_AT = "stored_at"
# The TTL attribute: the storage stack enables DynamoDB TTL on this name (stacks import it from here).
EXPIRES_AT = "expires_at"
# The environment variable that tells the webhook and the enricher the retention in days.
TICK_RETENTION_VARIABLE = "TICK_RETENTION_DAYS"
DAY_SECONDS = 86_400
# The candle horizon's safety margin (`oldest_recomputable_ms`): TTL may delete an item at any
# moment after its expiry, judged by AWS's clock, and a maintenance step reads its ticks a little
# after it planned. One hour covers the clocks' skew (NTP: under a second) and the step's own
# retries (seconds) many times over; it costs only late ticks in the last hour of retention
# their candle correction.
EXPIRY_MARGIN_MS = 3_600_000
BATCH_GET_KEYS = 100          # BatchGetItem's maximum
MAX_UNPROCESSED_ROUNDS = 8
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class StoreOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"


class KeySpaceExhausted(Exception):
    """More distinct updates in one millisecond for one symbol than the probe limit."""


def tick_expiry(update: PriceUpdate, retention_days: int, stored_at_ms: int = 0) -> int:
    """The tick's `expires_at`: epoch SECONDS (DynamoDB TTL ignores milliseconds), `retention_days`
    after the latest of its receipt, its own time (the webhook takes ticks dated up to a day
    ahead) and its write. So every tick of a minute M lives at least until M + retention, which
    is what `oldest_recomputable_ms` relies on, and no tick is ever stored already expired: one
    re-driven from the webhook DLQ days later gets its full retention from the re-drive (else
    TTL would remove it as soon as it was stored, and its candle could not take it)."""
    return max(update.received_at_ms, update.event_ms, stored_at_ms) // 1000 + retention_days * DAY_SECONDS


def oldest_recomputable_ms(now_ms: int, retention_days: int) -> int:
    """The oldest tick time whose minute may still be recomputed from stored ticks at `now_ms`:
    every tick of a minute at or after it is kept until `now_ms` + EXPIRY_MARGIN_MS at least
    (`tick_expiry`: a tick of minute M expires no earlier than M + retention)."""
    return now_ms - retention_days * DAY_SECONDS * 1000 + EXPIRY_MARGIN_MS


def to_item(update: PriceUpdate, timestamp: int, stored_at_ms: int | None = None,
            retention_days: int | None = None) -> dict[str, Any]:
    """Small by design (well under 1 KB, one write request unit); never the raw body.

    `stored_at_ms`: when this write happens (store_update passes it; see the module docstring).
    `retention_days`: with a value, the item carries `expires_at` (`tick_expiry`); None, none.
    """
    item: dict[str, Any] = {
        "symbol": update.symbol, "timestamp": timestamp, "price": update.price, VENUE: update.exchange,
        "source": update.source, "received_at": update.received_at_ms,
    }
    if stored_at_ms is not None:
        item[STORED_AT] = stored_at_ms
    if retention_days is not None:
        item[EXPIRES_AT] = tick_expiry(update, retention_days, stored_at_ms or 0)
    for name in OPTIONAL_NUMBERS:
        value = getattr(update, name)
        if value is not None:
            item[name] = value
    return {name: _serializer.serialize(value) for name, value in item.items()}


def plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item (typed DynamoDB JSON) as plain values: numbers as Decimals, strings as str."""
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def update_from_item(item: dict[str, Any]) -> PriceUpdate:
    """Read back an item (typed DynamoDB JSON) as the update it stores."""
    plain = plain_item(item)
    return PriceUpdate(
        symbol=plain["symbol"], event_ms=event_ms(int(plain["timestamp"])), price=Decimal(plain["price"]),
        exchange=plain[VENUE], source=plain.get("source", ""), received_at_ms=int(plain.get("received_at", 0)),
        **{name: Decimal(plain[name]) for name in OPTIONAL_NUMBERS if name in plain},
    )


def _read_item(client: Any, table_name: str, symbol: str, timestamp: int) -> dict[str, Any] | None:
    """Fallback for endpoints that do not return the item with a failed condition."""
    key = {"symbol": {"S": symbol}, "timestamp": {"N": str(timestamp)}}
    item: dict[str, Any] | None = client.get_item(TableName=table_name, Key=key, ConsistentRead=True).get("Item")
    return item


def store_update(client: Any, table_name: str, update: PriceUpdate, retention_days: int | None = None
                 ) -> tuple[StoreOutcome, int]:
    """Write once; a redelivered identical update is a duplicate, never an overwrite.

    `retention_days`: the environment's `tick_retention_days` (the item then carries
    `expires_at`); None keeps the tick forever. Throttling and transient errors are retried
    by the client's botocore retry mode; whatever still fails propagates to the caller,
    which queues the update.
    """
    start = first_slot(update.exchange)
    for probe in range(MAX_PROBES):
        timestamp = sort_key(update.event_ms, (start + probe) % SLOTS_PER_MS)
        try:
            client.put_item(
                TableName=table_name,
                Item=to_item(update, timestamp, int(time.time() * 1000), retention_days),
                ConditionExpression="attribute_not_exists(#ts)",
                ExpressionAttributeNames={"#ts": "timestamp"},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return StoreOutcome.STORED, timestamp
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            returned: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
            existing = returned or _read_item(client, table_name, update.symbol, timestamp)
            if existing and update_from_item(existing).identity() == update.identity():
                return StoreOutcome.DUPLICATE, timestamp
    raise KeySpaceExhausted(f"{MAX_PROBES} distinct updates for {update.symbol} in one millisecond")


# ---- the enricher's reads, its conditional put and its corrections ------------------------------

def _query_pages(client: Any, arguments: dict[str, Any], limits: Iterator[int]
                 ) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    while True:
        limit = next(limits, None)
        if limit is None:
            return  # as many items as the caller allowed
        arguments["Limit"] = limit
        page = client.query(**arguments)
        last_key = page.get("LastEvaluatedKey")
        yield page["Items"], last_key is None
        if last_key is None:
            return
        arguments["ExclusiveStartKey"] = last_key


def _venue_filter(arguments: dict[str, Any], venue: str | None) -> None:
    """Keep only `venue`'s items (FilterExpression): DynamoDB still reads, and bills, every item
    the key condition and Limit cover; the filter only keeps the others out of the response."""
    if venue is None:
        return
    arguments["FilterExpression"] = "#v = :v"
    arguments["ExpressionAttributeNames"]["#v"] = VENUE
    arguments["ExpressionAttributeValues"][":v"] = {"S": venue}


def history_pages(client: Any, table_name: str, symbol: str, newest: int | None, page_size: int,
                  venue: str | None = None) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """A symbol's items newest first, page by page: (typed items, last page?).

    From the top of the partition when `newest` is None, else at or before `newest`. The
    enricher reads from the top so that the same Query that finds the history also shows
    whether items newer than its batch are already enriched (a late record): in the stream's
    normal flow there are none, and the read costs what it did. Consistent reads: the
    previous tick may have been written a moment ago. Whole items: a correction rewrites the
    item it read, and a projection would not lower the read units (DynamoDB bills the item).
    `venue`: only that venue's items (a filter: each page still reads `page_size` items of
    every venue, so a page may hold fewer, or none, and is not the last).
    """
    condition = "#s = :s" if newest is None else "#s = :s AND #t <= :t"
    values: dict[str, Any] = {":s": {"S": symbol}}
    names = {"#s": PARTITION_KEY}
    if newest is not None:
        values[":t"] = {"N": str(newest)}
        names["#t"] = SORT_KEY
    arguments: dict[str, Any] = {
        "TableName": table_name, "KeyConditionExpression": condition, "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values, "ScanIndexForward": False, "ConsistentRead": True,
    }
    _venue_filter(arguments, venue)
    return _query_pages(client, arguments, itertools.repeat(page_size))


def pages_after(client: Any, table_name: str, symbol: str, after: int, page_sizes: Sequence[int], max_items: int,
                venue: str | None = None) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """A symbol's items after `after`, oldest first, page by page (typed items, last page?).

    One Query, continued only while the caller consumes it: the pages grow (`page_sizes`,
    the last size repeating) because the first item usually settles it (not yet enriched:
    the stream is only behind), and at most `max_items` items are read in all. `venue`: only
    that venue's items (a filter); `max_items` then bounds the items returned, and the page
    sizes count the items read (DynamoDB's Limit applies before the filter).
    """
    def limits() -> Iterator[int]:
        remaining = max_items
        for size in itertools.chain(page_sizes, itertools.repeat(page_sizes[-1])):
            if remaining <= 0:
                return
            yield size if venue is not None else min(size, remaining)
            if venue is None:
                remaining -= size

    arguments: dict[str, Any] = {
        "TableName": table_name, "KeyConditionExpression": "#s = :s AND #t > :t",
        "ExpressionAttributeNames": {"#s": PARTITION_KEY, "#t": SORT_KEY},
        "ExpressionAttributeValues": {":s": {"S": symbol}, ":t": {"N": str(after)}},
        "ScanIndexForward": True, "ConsistentRead": True,
    }
    _venue_filter(arguments, venue)
    pages = _query_pages(client, arguments, limits())
    if venue is None:
        return pages
    return _returned_at_most(pages, max_items)


def _returned_at_most(pages: Iterator[tuple[list[dict[str, Any]], bool]], max_items: int
                      ) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    returned = 0
    for items, last in pages:
        items = items[:max_items - returned]
        returned += len(items)
        yield items, last
        if returned >= max_items:
            return


def _stored_indicators(item: Mapping[str, Any]) -> dict[str, Decimal]:
    return {name: Decimal(value["N"]) for name, value in item.items() if is_indicator(name) and "N" in value}


def _number_of(item: Mapping[str, Any], name: str) -> int | None:
    value = item.get(name)
    return int(value["N"]) if isinstance(value, Mapping) and "N" in value else None


@dataclass(frozen=True)
class StoredEnrichment:
    """What the item holds after the put: this call's values, or those of an earlier enrichment
    (possibly corrected since: then `corrected_at` is set)."""

    indicators: Mapping[str, Decimal]
    enriched_at: int
    corrected_at: int | None = None


def put_enriched(client: Any, table_name: str, stored_image: Mapping[str, Any], indicators: Mapping[str, Decimal],
                 enriched_at_ms: int) -> StoredEnrichment | None:
    """Store the item with its indicators, once; None when the item was deleted meanwhile.

    A conditional PutItem of the stream's full image plus the indicators, rather than an
    UpdateItem: the webhook never changes an item after inserting it, so the image is the
    item, and the write costs the same write units. The condition makes it happen once
    (a retried record finds its item enriched and keeps what is stored, which is returned
    for its notification) and never resurrects a deleted item.
    """
    item = {**stored_image, ENRICHED_AT: {"N": str(enriched_at_ms)},
            **{name: {"N": str(value)} for name, value in indicators.items()}}
    try:
        client.put_item(
            TableName=table_name, Item=item,
            ConditionExpression="attribute_exists(#symbol) AND attribute_not_exists(#enriched)",
            ExpressionAttributeNames={"#symbol": PARTITION_KEY, "#enriched": ENRICHED_AT},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        stored = error.response.get("Item")
        if not isinstance(stored, Mapping) or not stored:
            return None
        return StoredEnrichment(_stored_indicators(stored), int(stored[ENRICHED_AT]["N"]),
                                _number_of(stored, CORRECTED_AT))
    return StoredEnrichment(dict(indicators), enriched_at_ms)


class CorrectionOutcome(StrEnum):
    WRITTEN = "written"
    CHANGED = "changed"   # the item's enrichment changed since it was read: nothing written
    DELETED = "deleted"   # the item is gone: nothing written, nothing resurrected


def put_correction(client: Any, table_name: str, image: Mapping[str, Any], indicators: Mapping[str, Decimal],
                   corrected_at_ms: int, corrected_by: int) -> CorrectionOutcome:
    """Replace an enriched item's indicators with recomputed ones, only if its enrichment is
    still exactly what was read.

    `image` is the whole item as read (typed). The new item is that image with its indicator
    attributes replaced by `indicators` (an indicator no longer defined is removed), `enriched_at`
    kept, `corrected_at` set to this correction's time and `corrected_by` to the sort key of the
    batch record whose arrival caused it. The condition compares `enriched_at`, `corrected_at`
    and every indicator attribute with the image, so a concurrent first enrichment, a newer
    correction or any other enrichment written since the read is never overwritten by this
    older computation: the caller retries from a new read instead. A PutItem rather than an
    UpdateItem: the rest of the item never changes after the webhook's insert, and the
    function's role needs no new action.
    """
    names = {"#symbol": PARTITION_KEY, "#enriched": ENRICHED_AT, "#corrected": CORRECTED_AT}
    values: dict[str, Any] = {":enriched": image[ENRICHED_AT]}
    clauses = ["attribute_exists(#symbol)", "#enriched = :enriched"]
    if CORRECTED_AT in image:
        values[":corrected"] = image[CORRECTED_AT]
        clauses.append("#corrected = :corrected")
    else:
        clauses.append("attribute_not_exists(#corrected)")
    read = sorted(name for name in image if is_indicator(name))
    for index, name in enumerate(sorted(set(read) | set(indicators))):
        names[f"#i{index}"] = name
        if name in image:
            values[f":i{index}"] = image[name]
            clauses.append(f"#i{index} = :i{index}")
        else:
            clauses.append(f"attribute_not_exists(#i{index})")
    item = {name: value for name, value in image.items()
            if not is_indicator(name) and name not in (CORRECTED_AT, CORRECTED_BY)}
    item.update({name: {"N": str(value)} for name, value in indicators.items()})
    item[CORRECTED_AT] = {"N": str(corrected_at_ms)}
    item[CORRECTED_BY] = {"N": str(corrected_by)}
    try:
        client.put_item(TableName=table_name, Item=item, ConditionExpression=" AND ".join(clauses),
                        ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                        ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return CorrectionOutcome.CHANGED if error.response.get("Item") else CorrectionOutcome.DELETED
    return CorrectionOutcome.WRITTEN


# ---- the enricher-DLQ drain: find a failed range's items, verify them ----------------------------

def scan_stored(client: Any, table_name: str, stored_from_ms: int, stored_to_ms: int) -> list[dict[str, Any]]:
    """Every item whose `stored_at` lies in [from, to], enriched or not (typed DynamoDB JSON).

    Consistent reads: the drain decides from this whether a failed range is safely enriched.
    A whole-table Scan, paged; the drain calls it only when the stream no longer holds a range.
    """
    arguments: dict[str, Any] = {
        "TableName": table_name, "ConsistentRead": True,
        "FilterExpression": "#stored BETWEEN :a AND :b",
        "ExpressionAttributeNames": {"#stored": STORED_AT},
        "ExpressionAttributeValues": {":a": {"N": str(stored_from_ms)}, ":b": {"N": str(stored_to_ms)}},
    }
    items: list[dict[str, Any]] = []
    while True:
        page = client.scan(**arguments)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def enrichment_of(client: Any, table_name: str, keys: Iterable[tuple[str, int]]
                  ) -> dict[tuple[str, int], bool | None]:
    """For each (symbol, timestamp): True when its item is enriched, False when not yet, None when
    there is no such item. Consistent BatchGetItem of the keys and `enriched_at` only, 100 keys a
    call; unprocessed keys are asked again after a growing pause, and raise after
    MAX_UNPROCESSED_ROUNDS (the drain then keeps its message)."""
    wanted = list(dict.fromkeys(keys))
    found: dict[tuple[str, int], bool | None] = dict.fromkeys(wanted)
    names = {"#k": PARTITION_KEY, "#t": SORT_KEY, "#e": "enriched_at"}
    for start in range(0, len(wanted), BATCH_GET_KEYS):
        chunk = wanted[start:start + BATCH_GET_KEYS]
        request: dict[str, Any] = {table_name: {
            "Keys": [{PARTITION_KEY: {"S": symbol}, SORT_KEY: {"N": str(timestamp)}} for symbol, timestamp in chunk],
            "ConsistentRead": True, "ProjectionExpression": "#k, #t, #e", "ExpressionAttributeNames": names}}
        for attempt in range(MAX_UNPROCESSED_ROUNDS):
            response = client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table_name, []):
                found[(item[PARTITION_KEY]["S"], int(item[SORT_KEY]["N"]))] = "enriched_at" in item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(min(0.05 * 2 ** attempt, 2.0))
        else:
            raise RuntimeError(f"BatchGetItem left keys unprocessed {MAX_UNPROCESSED_ROUNDS} times")
    return found


def event_ms_of_item(item: Mapping[str, Any]) -> int:
    """The tick's millisecond from a stored item (typed DynamoDB JSON)."""
    return event_ms(int(item["timestamp"]["N"]))
