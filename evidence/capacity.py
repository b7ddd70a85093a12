"""DynamoDB item sizes and request units, by the rules in the DynamoDB developer guide
("Item sizes and formats"; 1 WRU per 1 KB written, 1 RRU per 4 KB read strongly consistent).

Hand-written: boto3 has no item-size calculator, and moto does not report consumed capacity
by these rules.
"""

from __future__ import annotations

import math
from typing import Any


def _value_size(value: dict[str, Any]) -> int:
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").split("e")[0].split("E")[0].strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "BOOL" or kind == "NULL":
        return 1
    if kind == "B":
        return len(data)
    if kind in ("M", "L"):
        inner = data.items() if kind == "M" else enumerate(data)
        return 3 + sum((len(str(k).encode()) if kind == "M" else 0) + 1 + _value_size(v) for k, v in inner)
    return len(str(data).encode())


def item_size(item: dict[str, Any]) -> int:
    """Bytes of a typed DynamoDB item: attribute names plus values."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def write_units(item: dict[str, Any]) -> int:
    return max(1, math.ceil(item_size(item) / 1024))


def read_units(total_bytes: int, consistent: bool = True) -> float:
    units = max(1, math.ceil(total_bytes / 4096))
    return units if consistent else units / 2
