"""The prices table's key scheme: partition `symbol` (BASE-QUOTE), sort key `timestamp`.

`timestamp` = event time in epoch milliseconds x 1000 + a sub-millisecond slot (0..999).
The slot starts at crc32(exchange) mod 1000, so two exchanges' ticks in the same
millisecond land on different keys, and `timestamp // 1000` is still the tick's
millisecond: the key sorts chronologically to the millisecond.
"""

from __future__ import annotations

import zlib

PARTITION_KEY = "symbol"
SORT_KEY = "timestamp"
SLOTS_PER_MS = 1000


def table_definition(name: str) -> dict[str, object]:
    """CreateTable arguments of an on-demand table with this key scheme (benchmarks and tests;
    the storage stack declares the same keys from PARTITION_KEY and SORT_KEY)."""
    return {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
                      {"AttributeName": SORT_KEY, "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": PARTITION_KEY, "AttributeType": "S"},
                                 {"AttributeName": SORT_KEY, "AttributeType": "N"}],
    }


def first_slot(exchange: str) -> int:
    """Where an exchange's tick starts probing within its millisecond."""
    return zlib.crc32(exchange.encode()) % SLOTS_PER_MS


def sort_key(event_ms: int, slot: int) -> int:
    return event_ms * SLOTS_PER_MS + slot


def event_ms(key: int) -> int:
    """The tick's millisecond from its packed sort key."""
    return key // SLOTS_PER_MS


def key_range(start_ms: int, end_ms: int) -> tuple[int, int]:
    """Sort keys of every tick with start_ms <= event time < end_ms, as an inclusive range."""
    return start_ms * SLOTS_PER_MS, end_ms * SLOTS_PER_MS - 1
