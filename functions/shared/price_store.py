"""The one conditional, idempotent write of a price update, shared by the webhook processor
and the webhook DLQ re-drive.

Key scheme: `timestamp` = event time in ms × 1000 + a sub-millisecond slot. The slot
starts at crc32(exchange) mod 1000, so two exchanges' ticks in the same millisecond
land on different keys and `timestamp` still sorts chronologically to the millisecond.
If the slot holds a different update (a hash collision, or a second distinct tick of
the same exchange in that millisecond), the write probes the next slot; a redelivery
walks the same probe sequence and meets its identical twin, which counts as a
duplicate. A write never overwrites an item (it may carry enrichment already).
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from enum import Enum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from functions.shared.price_update import OPTIONAL_NUMBERS, PriceUpdate

SLOTS_PER_MS = 1000
MAX_PROBES = 50
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class StoreOutcome(str, Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"


class KeySpaceExhausted(Exception):
    """More distinct updates in one millisecond for one symbol than the probe limit."""


def first_slot(exchange: str) -> int:
    return zlib.crc32(exchange.encode()) % SLOTS_PER_MS


def sort_key(event_ms: int, slot: int) -> int:
    return event_ms * SLOTS_PER_MS + slot


def to_item(update: PriceUpdate, timestamp: int) -> dict[str, Any]:
    """Small by design (well under 1 KB, one write request unit); never the raw body."""
    item: dict[str, Any] = {
        "symbol": update.symbol, "timestamp": timestamp, "price": update.price, "exchange": update.exchange,
        "source": update.source, "received_at": update.received_at_ms,
    }
    for name in OPTIONAL_NUMBERS:
        value = getattr(update, name)
        if value is not None:
            item[name] = value
    return {name: _serializer.serialize(value) for name, value in item.items()}


def update_from_item(item: dict[str, Any]) -> PriceUpdate:
    """Read back an item (typed DynamoDB JSON) as the update it stores."""
    plain = {name: _deserializer.deserialize(value) for name, value in item.items()}
    return PriceUpdate(
        symbol=plain["symbol"], event_ms=int(plain["timestamp"]) // SLOTS_PER_MS, price=Decimal(plain["price"]),
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
                Item=to_item(update, timestamp),
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
