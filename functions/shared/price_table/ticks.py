"""Tick items: their format, the webhook's conditional write (shared with the webhook DLQ
re-drive), the enricher's history read and its conditional put.

Every stored item carries `stored_at`, the epoch milliseconds of the write that stored it (the
webhook's, or the webhook-DLQ re-drive's, not the sender's receive time): the table stream's
arrival times are close to it, so the enricher-DLQ drain finds the items of a failed range the
stream no longer holds by it (`scan_stored`).

If a slot (see `keys`) holds a different update (a hash collision, or a second distinct
tick of the same exchange in that millisecond), the write probes the next slot; a
redelivery walks the same probe sequence and meets its identical twin, which counts as
a duplicate. A write never overwrites an item (it may carry enrichment already).
"""

from __future__ import annotations

import time
from decimal import Decimal
from enum import Enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from functions.shared.price_table.keys import PARTITION_KEY, SLOTS_PER_MS, SORT_KEY, event_ms, first_slot, sort_key
from functions.shared.price_update import OPTIONAL_NUMBERS, PriceUpdate

MAX_PROBES = 50
STORED_AT = "stored_at"
BATCH_GET_KEYS = 100          # BatchGetItem's maximum
MAX_UNPROCESSED_ROUNDS = 8
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class StoreOutcome(str, Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"


class KeySpaceExhausted(Exception):
    """More distinct updates in one millisecond for one symbol than the probe limit."""


def to_item(update: PriceUpdate, timestamp: int, stored_at_ms: int | None = None) -> dict[str, Any]:
    """Small by design (well under 1 KB, one write request unit); never the raw body.

    `stored_at_ms`: when this write happens (store_update passes it; see the module docstring).
    """
    item: dict[str, Any] = {
        "symbol": update.symbol, "timestamp": timestamp, "price": update.price, "exchange": update.exchange,
        "source": update.source, "received_at": update.received_at_ms,
    }
    if stored_at_ms is not None:
        item[STORED_AT] = stored_at_ms
    for name in OPTIONAL_NUMBERS:
        value = getattr(update, name)
        if value is not None:
            item[name] = value
    return {name: _serializer.serialize(value) for name, value in item.items()}


def update_from_item(item: dict[str, Any]) -> PriceUpdate:
    """Read back an item (typed DynamoDB JSON) as the update it stores."""
    plain = {name: _deserializer.deserialize(value) for name, value in item.items()}
    return PriceUpdate(
        symbol=plain["symbol"], event_ms=event_ms(int(plain["timestamp"])), price=Decimal(plain["price"]),
        exchange=plain["exchange"], source=plain.get("source", ""), received_at_ms=int(plain.get("received_at", 0)),
        **{name: Decimal(plain[name]) for name in OPTIONAL_NUMBERS if name in plain},
    )


def _read_item(client: Any, table_name: str, symbol: str, timestamp: int) -> dict[str, Any] | None:
    """Fallback for endpoints that do not return the item with a failed condition."""
    key = {"symbol": {"S": symbol}, "timestamp": {"N": str(timestamp)}}
    return client.get_item(TableName=table_name, Key=key, ConsistentRead=True).get("Item")


def store_update(client: Any, table_name: str, update: PriceUpdate) -> tuple[StoreOutcome, int]:
    """Write once; a redelivered identical update is a duplicate, never an overwrite.

    Throttling and transient errors are retried by the client's botocore retry mode;
    whatever still fails propagates to the caller, which queues the update.
    """
    start = first_slot(update.exchange)
    for probe in range(MAX_PROBES):
        timestamp = sort_key(update.event_ms, (start + probe) % SLOTS_PER_MS)
        try:
            client.put_item(
                TableName=table_name,
                Item=to_item(update, timestamp, int(time.time() * 1000)),
                ConditionExpression="attribute_not_exists(#ts)",
                ExpressionAttributeNames={"#ts": "timestamp"},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return StoreOutcome.STORED, timestamp
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            existing = error.response.get("Item") or _read_item(client, table_name, update.symbol, timestamp)
            if existing and update_from_item(existing).identity() == update.identity():
                return StoreOutcome.DUPLICATE, timestamp
    raise KeySpaceExhausted(f"{MAX_PROBES} distinct updates for {update.symbol} in one millisecond")


# ---- the enricher's history read and conditional put -------------------------------------------

def history_pages(client: Any, table_name: str, symbol: str, newest: int, page_size: int,
                  ema_windows: tuple[int, ...]) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """A symbol's items at or before `newest`, newest first, page by page: (rows, last page?).

    Consistent reads: the previous tick may have been written a moment ago. Only the key,
    the price and the stored EMAs are projected, which the indicators continue from.
    """
    names = {"#s": "symbol", "#t": "timestamp", "#p": "price"}
    projection = ["#s", "#t", "#p"]
    for n in ema_windows:
        names[f"#e{n}"] = f"ema_{n}"
        projection.append(f"#e{n}")
    arguments: dict[str, Any] = {
        "TableName": table_name,
        "KeyConditionExpression": "#s = :s AND #t <= :t",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {":s": {"S": symbol}, ":t": {"N": str(newest)}},
        "ProjectionExpression": ", ".join(projection),
        "ScanIndexForward": False,
        "ConsistentRead": True,
        "Limit": page_size,
    }
    while True:
        page = client.query(**arguments)
        last_key = page.get("LastEvaluatedKey")
        yield [{k: _deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]], \
            last_key is None
        if last_key is None:
            return
        arguments["ExclusiveStartKey"] = last_key


@dataclass(frozen=True)
class StoredEnrichment:
    """What the item holds after the put: this call's values, or those of an earlier enrichment."""

    indicators: Mapping[str, Decimal]
    enriched_at: int


def put_enriched(client: Any, table_name: str, stored_image: Mapping[str, Any], indicators: Mapping[str, Decimal],
                 enriched_at_ms: int) -> StoredEnrichment | None:
    """Store the item with its indicators, once; None when the item was deleted meanwhile.

    A conditional PutItem of the stream's full image plus the indicators, rather than an
    UpdateItem: the webhook never changes an item after inserting it, so the image is the
    item, and the write costs the same write units. The condition makes it happen once
    (a retried record finds its item enriched and keeps the first values, which are
    returned for its notification) and never resurrects a deleted item.
    """
    item = {**stored_image, "enriched_at": {"N": str(enriched_at_ms)},
            **{name: {"N": str(value)} for name, value in indicators.items()}}
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
            return None
        first = {name: Decimal(value["N"]) for name, value in stored.items() if name in indicators and "N" in value}
        return StoredEnrichment(first, int(stored["enriched_at"]["N"]))
    return StoredEnrichment(dict(indicators), enriched_at_ms)


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
