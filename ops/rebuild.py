"""Rebuild a table's candles in the venue format (one item per bucket: the composite and each
venue) from its stored ticks: the upgrade of a deployment whose candles are blended.

How: for each symbol, its ticks are walked an hour at a time in key order and each hour's
keys go through the stream's own maintenance step (`maintain_store`) as late ticks. So the
rebuild computes nothing of its own: every 1m candle of the hour is recomputed from the
ticks (every venue and the composite), every coarse candle and forming prefix holding it is
recombined, and the count guard lets a computation from as many ticks replace the blended
item. No tick is written: prices and times stay as stored. A minute whose ticks TTL may have
partly deleted is left as it is (the step's wholeness check), never rebuilt from a part.

Idempotent (a recomputation from stored ticks gives the same items again) and resumable: a
checkpoint file records, per symbol, the hour up to which it is rebuilt, written after each
hour; a second run skips what is done. `estimate` prices the run before any write.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.shared.candles import INTERVALS, MINUTE_MS, bucket_start
from functions.shared.price_table.candles import DynamoCandleStore, maintain_store
from functions.shared.price_table.keys import PARTITION_KEY, SORT_KEY, event_ms

HOUR_MS = INTERVALS["1h"]
# DynamoDB on-demand prices (us-east-1, per million request units), for the estimate only.
WRITE_PRICE = 0.625
READ_PRICE = 0.125


@dataclass(frozen=True)
class Estimate:
    """What a rebuild of `symbols` will cost: the tick bytes it reads (twice: the walk and
    the step's strongly consistent recompute), the candle writes (one per bucket of every
    interval with ticks, plus a registry write per hour), in units and dollars."""

    symbols: int
    ticks: int
    tick_bytes: int
    read_units: float
    write_units: int

    @property
    def dollars(self) -> float:
        return self.read_units * READ_PRICE / 1e6 + self.write_units * WRITE_PRICE / 1e6

    def text(self) -> str:
        return (f"rebuild of {self.symbols} symbols, {self.ticks:,} ticks ({self.tick_bytes / 1e6:,.1f} MB): "
                f"~{self.read_units:,.0f} read units, ~{self.write_units:,} write units, ~${self.dollars:,.2f}")


def _tick_pages(dynamodb: Any, tick_table: str, symbol: str, after_ms: int) -> Iterable[dict[str, Any]]:
    arguments: dict[str, Any] = {
        "TableName": tick_table, "KeyConditionExpression": "#s = :s AND #t >= :t",
        "ExpressionAttributeNames": {"#s": PARTITION_KEY, "#t": SORT_KEY},
        "ExpressionAttributeValues": {":s": {"S": symbol}, ":t": {"N": str(max(after_ms, 0) * 1000)}}}
    while True:
        page = dynamodb.query(**arguments)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _size(item: dict[str, Any]) -> int:
    """An item's bytes as DynamoDB counts them, near enough for an estimate: names plus the
    text of the values (a number's text is within a byte or two of its stored size)."""
    return sum(len(name) + sum(len(str(value)) for value in typed.values()) for name, typed in item.items())


def estimate(dynamodb: Any, tick_table: str, symbols: Iterable[str]) -> Estimate:
    """Walk the symbols' ticks (keys and sizes only, eventually consistent: half a read unit
    per 4 KB) and price the rebuild before it writes anything."""
    count = size = 0
    writes = 0
    names = list(symbols)
    for symbol in names:
        buckets: dict[str, set[int]] = {name: set() for name in INTERVALS}
        hours: set[int] = set()
        for item in _tick_pages(dynamodb, tick_table, symbol, 0):
            count += 1
            size += _size(item)
            moment = event_ms(int(item[SORT_KEY]["N"]))
            hours.add(bucket_start(moment, HOUR_MS))
            for name, length in INTERVALS.items():
                buckets[name].add(bucket_start(moment, length))
        # each hour's step rewrites the coarse buckets holding it (a 4h and a 1d bucket once per hour)
        writes += sum(len(starts) for starts in buckets.values()) + 3 * len(hours) + 2 * len(hours)
    units = size / 4096 * (0.5 + 1.0)  # the walk (eventually consistent), then the step's consistent recompute
    return Estimate(len(names), count, size, math.ceil(units * 100) / 100, writes)


def load_checkpoint(path: Path) -> dict[str, int]:
    return json.loads(path.read_text()) if path.exists() else {}


def rebuild_symbol(dynamodb: Any, candle_table: str, tick_table: str, symbol: str, checkpoint: Path,
                   now_ms: int, progress: Callable[[int], None] | None = None) -> int:
    """Rebuild one symbol's candles, resuming after its checkpointed hour; the hours done."""
    done = load_checkpoint(checkpoint)
    resume = done.get(symbol, -1)
    store = DynamoCandleStore(dynamodb, candle_table, tick_table)
    hours = 0
    current: int | None = None
    keys: list[int] = []

    def flush() -> None:
        nonlocal hours
        if current is None or not keys:
            return
        maintain_store(store, symbol, keys, now_ms=now_ms)
        state = load_checkpoint(checkpoint)
        state[symbol] = current
        checkpoint.write_text(json.dumps(state, sort_keys=True))
        hours += 1
        if progress is not None:
            progress(1)

    for item in _tick_pages(dynamodb, tick_table, symbol, resume + HOUR_MS if resume >= 0 else 0):
        key = int(item[SORT_KEY]["N"])
        hour = bucket_start(event_ms(key), HOUR_MS)
        if hour != current:
            flush()
            current, keys = hour, []
        keys.append(key)
    flush()
    return hours


def rebuild(dynamodb: Any, candle_table: str, tick_table: str, symbols: Iterable[str], checkpoint: Path,
            now_ms: int, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Rebuild every symbol (see the module docstring); {symbol: hours rebuilt in this run}."""
    return {symbol: rebuild_symbol(dynamodb, candle_table, tick_table, symbol, checkpoint, now_ms, progress)
            for symbol in symbols}


def stored_symbols(dynamodb: Any, candle_table: str) -> list[str]:
    """The symbols the candle registry holds (the ones a rebuild has to redo)."""
    store = DynamoCandleStore(dynamodb, candle_table, "")
    return [symbol for symbol, _ in store.list_states()]


__all__ = ["MINUTE_MS", "Estimate", "estimate", "load_checkpoint", "rebuild", "rebuild_symbol", "stored_symbols"]
