"""The candle table: its items, the stream's maintenance step (`maintain`, called by the
enricher) and the API's reads (`read_candles`, `list_symbols`).

Table `price-candles-<suffix>`: hash key `series` (S), range key `sk` (S), on demand, no
stream. A table of its own, so its writes never trigger the enricher and never show in
the enricher's history Query of the prices table.

- Candle: ONE item per symbol, interval and bucket holds the composite and every venue:
  series = "<SYMBOL>#<interval>", sk = start (epoch ms) as 15 zero-padded digits
  (string order = time order), `ohlc` (S: the composite's open, high, low and close, exact
  decimal text, space-separated), `count` (N: every venue's ticks; a number because writes
  are conditioned on it), `vol` (S) and `nv` (N): the composite's volume and how many ticks
  carried one (absent: none did), `venues` (S): "venue o h l c count[ vol nv]" entries
  joined by ";" in venue order, a venue equal to the composite to the digit written as its
  name alone (always so with one venue). Why one item: per-venue items would multiply the
  writes by venues + 1; a 3-venue 1m item is ~270 bytes, one write unit (measured in
  `tests/test_candles_venues.py`). Items without `venues` (written before venues) read as
  the composite alone. Four attributes rather than eight (a
  Number each for start/open/high/low/close): a day of 1m candles is 1,440 items, and every
  attribute value costs a reader's SDK a parse step (botocore walks each one through the
  model), so the read API's handler time follows the attribute count. A 1m candle of ticks
  stored with a retention also has `x` (N): the earliest `expires_at` of its ticks, which
  tells a late tick beyond the retention horizon whether its minute is still whole.
- Hour pack of 1m candles, one per symbol and closed hour with ticks: series =
  "<SYMBOL>#1m/1h", sk = the hour's start (15 digits), `m` (S: each non-empty minute as
  "<minute of the hour> <open> <high> <low> <close> <count>", ";"-separated, in time order),
  `count` (N: the hour's ticks, the same guard as a candle's). Written, besides the 1m
  candles themselves, whenever the hour's 1h candle is (when the hour closes, and again
  after a late tick in it), from the hour's stored 1m candles. Why: a day of 1m candles is
  1,440 items, and a reader's time follows the item count (moto's and botocore's per-item
  work; DynamoDB bills by bytes), so `read_candles` takes the 1m candles of a long range
  of dense closed hours from their packs: 24 items a day instead of 1,440. Up to 60 x ~45
  bytes: ~3 write units, once per symbol and hour (0.0014 per update at the default
  scenario).
- Registry, one per symbol: series = "#symbols", sk = "<SYMBOL>", `materialized_ms` (N,
  the watermark W: every candle whose end <= W is stored; minute-aligned), `version` (N,
  for compare-and-set), `prefix_<interval>` (S: the composite's "o h l c count[ vol nv]",
  then "|" and the venues' entries as in a candle; the Map of the format before venues
  still reads) for each coarse interval whose forming bucket [bucket_start(W), W) has ticks
  (see `functions.shared.candles`),
  `batches` (S, digests of the last batches applied), `venues` (S: the symbol's venues,
  sorted, comma-separated; what `list_symbols` answers), `dense_hours` (N: how many of the
  newest closed hours, in a row, have a pack of at least DENSE_MINUTES candles; what lets
  a reader use packs and still keep the read bound, see `_stored_minutes`), `maintained_ms`
  (N: the wall clock of the last step, so the sweep of quiet symbols leaves busy ones alone).
  With three venues and all five prefixes ~1.3 KB: two write units, once per symbol and
  minute (the step that moves W).

Maintenance, per symbol of a stream batch, after its ticks are stored: read the registry
(consistent GetItem), plan (pure), recompute the planned 1m candles from the ticks (one
consistent Query per run of minutes), the coarse candles and prefixes from those, the old
prefix, or (around late ticks only) stored candles, write every candle, then advance the
registry with a compare-and-set on `version`. In the stream's normal flow that is one
GetItem per symbol and batch, and when a minute closes one tick Query, one PutItem per
closed candle (1m, and 5m..1d when they close) and one registry PutItem; when an hour
closes, also one Query of its 1m candles and its pack's PutItem.

Concurrency (the live enricher and a DLQ drain, or a retried batch, on one symbol). Both
compute from stored ticks, so neither counts a tick twice; what can go wrong is an older
computation overwriting a newer one. Two guards:
- Every candle write is conditioned on `count` not decreasing. The ticks of a bucket only
  grow (no TTL inside the recomputable horizon), so a computation from fewer ticks never
  replaces one from more.
- Every step that writes ends with a compare-and-set of the registry on `version`, and a
  step whose compare-and-set fails starts over (new read of the registry, the ticks and
  the stored candles). All of a step's candle writes precede its compare-and-set, so the
  redo sees everything the winner wrote, and its own writes are the last. What remains:
  a step that crashes between its candle writes and its compare-and-set (Lambda timeout)
  may have written a bucket computed from a view that missed a concurrent step's tick
  with the same count; the stream retries that batch (or the DLQ re-drive repeats it),
  and that redo rewrites the bucket from the current ticks.
- A batch whose exact key set was applied recently (its digest is in `batches`) is
  skipped: a retried or redelivered batch then costs one GetItem and writes nothing.

Reads: the registry (eventually consistent: an older W only moves work from candles to
ticks, never loses any), the stored candles before the forming bucket (1m: the packs of
the closed hours, then the 1m items of the hour in progress; strongly
consistent: they must include what the W just read promises), and the ticks at or after W
(eventually consistent: the contract's 5 s freshness allows it). Read units per request <
returned bytes / 4 KB + forming ticks' bytes / 8 KB + 2 (0.5 + ceil + 0.5 x ceil).

Queries return whole items: a ProjectionExpression would not lower the read units
(DynamoDB bills the full item), and whole items let `reads.MeteredClient` price a call
exactly (`evidence.capacity`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from botocore.exceptions import ClientError

from functions.shared.candles import (
    COARSE,
    INTERVALS,
    MINUTE_MS,
    Candle,
    Tick,
    bucket_candles,
    bucket_ceil,
    bucket_start,
    combine,
    materialize,
    plan_maintenance,
    stored_needed,
)
from functions.shared.composite import STALE_MS
from functions.shared.price_table.keys import PARTITION_KEY, SORT_KEY, key_range

__all__ = [
    "INTERVALS", "MAX_CANDLES", "MIN_RETENTION_DAYS", "SWEEP_IDLE_MS", "SWEEP_QUIET_MS", "UNKNOWN_VENUE",
    "Candle", "CandleConflict", "CandleStore",
    "CandleWrites", "DynamoCandleStore", "SweepResult", "SymbolState", "candle_item", "list_symbols", "maintain",
    "maintain_store", "pack_from_item", "pack_item", "read_candles", "read_from_store", "registry_item",
    "series_name", "sweep", "sweep_store", "table_definition", "tick_venue", "tick_volume", "wholeness_horizon",
]

SERIES = "series"
SK = "sk"
REGISTRY_SERIES = "#symbols"
PACK_SUFFIX = "#1m/1h"
HOUR_MS = INTERVALS["1h"]
DENSE_MINUTES = 40     # candles an hour's pack needs to count as dense (see _stored_minutes)
PACK_MIN_HOURS = 4     # whole dense hours a range needs before packs replace its 1m items
MAX_DENSE_HOURS = 100_000
MAX_CANDLES = 5000
MAX_ATTEMPTS = 5
RECENT_BATCHES = 4
WRITE_THREADS = 4  # per symbol; the enricher already works on several symbols at once
_PREFIX_FIELDS = (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close"))


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments (tests and benchmarks; the storage stack declares the same
    keys): on demand, no stream."""
    return {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": SERIES, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": SERIES, "AttributeType": "S"},
                                 {"AttributeName": SK, "AttributeType": "S"}],
    }


def series_name(symbol: str, interval: str) -> str:
    return f"{symbol}#{interval}"


def sort_text(start: int) -> str:
    """15 digits hold every epoch ms to year 9999, so string order is time order."""
    if not 0 <= start < 10**15:
        raise ValueError(f"candle start {start} is outside 0..10^15")
    return f"{start:015d}"


def _number(value: Decimal | int) -> dict[str, str]:
    return {"N": str(value)}


def _entry(candle: Candle) -> str:
    """"open high low close count[ volume volume_count]": one series' value in a bucket (the
    volume only when a tick carried one: most bytes of a stored candle are read back)."""
    text = f"{candle.open} {candle.high} {candle.low} {candle.close} {candle.count}"
    return f"{text} {candle.volume} {candle.volume_count}" if candle.volume_count else text


def _from_entry(start: int, fields: Sequence[str]) -> Candle:
    open_, high, low, close, count = fields[:5]
    volume, counted = (Decimal(fields[5]), int(fields[6])) if len(fields) >= 7 else (Decimal(0), 0)
    return Candle(start, Decimal(open_), Decimal(high), Decimal(low), Decimal(close), int(count), None,
                  volume, counted)


def _same(part: Candle, composite: Candle) -> bool:
    return _entry(part) == _entry(composite)


def venues_text(candle: Candle) -> str:
    """Every venue's candle as "venue o h l c count vol nv" entries joined by ";"; a venue
    whose candle is the composite's, to the digit (always so for a symbol with one venue),
    is its name alone: a one-venue bucket then costs its name, not a second copy."""
    return ";".join(name if _same(part, candle) else f"{name} {_entry(part)}" for name, part in candle.venues)


def venues_from_text(start: int, text: str, composite: Candle) -> tuple[tuple[str, Candle], ...]:
    venues = []
    for entry in text.split(";") if text else ():
        name, *fields = entry.split(" ")
        venues.append((name, _from_entry(start, fields) if fields else replace(composite, venues=(), expires=None)))
    return tuple(venues)


def candle_item(symbol: str, interval: str, candle: Candle) -> dict[str, Any]:
    """A bucket as a typed item: `ohlc`/`count`/`vol`/`nv` the composite, `venues` every
    venue's candle; the prices are the ticks' own numbers, never floats. A 1m candle of ticks
    with a retention also keeps `x`, the earliest expiry of its ticks (see `Candle.expires`)."""
    item = {
        SERIES: {"S": series_name(symbol, interval)}, SK: {"S": sort_text(candle.start)},
        "ohlc": {"S": f"{candle.open} {candle.high} {candle.low} {candle.close}"}, "count": _number(candle.count),
    }
    if candle.volume_count:  # absent: no tick carried a volume (volume 0 of 0)
        item["vol"], item["nv"] = {"S": str(candle.volume)}, _number(candle.volume_count)
    if candle.venues:
        item["venues"] = {"S": venues_text(candle)}
    if candle.expires is not None:
        item["x"] = _number(candle.expires)
    return item


def candle_from_item(item: Mapping[str, Any]) -> Candle:
    """A stored candle; items written in the first format (a Number each for start, open,
    high, low and close) still read, so a table written before the change needs no migration,
    and items without `venues` (the blended format) read as a composite without venues."""
    if "ohlc" not in item:
        return Candle(int(item["start"]["N"]), Decimal(item["open"]["N"]), Decimal(item["high"]["N"]),
                      Decimal(item["low"]["N"]), Decimal(item["close"]["N"]), int(item["count"]["N"]))
    start = int(item[SK]["S"])
    open_, high, low, close = item["ohlc"]["S"].split(" ")
    composite = Candle(start, Decimal(open_), Decimal(high), Decimal(low), Decimal(close),
                       int(item["count"]["N"]), int(item["x"]["N"]) if "x" in item else None,
                       Decimal(item["vol"]["S"]) if "vol" in item else Decimal(0),
                       int(item["nv"]["N"]) if "nv" in item else 0)
    if "venues" not in item:
        return composite
    return replace(composite, venues=venues_from_text(start, item["venues"]["S"], composite))


def pack_series(symbol: str) -> str:
    return symbol + PACK_SUFFIX


def pack_item(symbol: str, hour: int, minutes: Sequence[Candle]) -> dict[str, Any]:
    """An hour's composite 1m candles (non-empty, all inside the hour) as one item: the
    composite only (a venue's 1m reads take the 1m items)."""
    text = ";".join(f"{(c.start - hour) // MINUTE_MS} {_entry(c)}"
                    for c in sorted(minutes, key=lambda candle: candle.start))
    return {SERIES: {"S": pack_series(symbol)}, SK: {"S": sort_text(hour)}, "m": {"S": text},
            "count": _number(sum(candle.count for candle in minutes))}


def pack_from_item(item: Mapping[str, Any]) -> list[Candle]:
    """A pack's 1m candles, oldest first."""
    hour, text = int(item[SK]["S"]), item["m"]["S"]
    candles = []
    for entry in text.split(";") if text else ():
        minute, *fields = entry.split(" ")
        candles.append(_from_entry(hour + int(minute) * MINUTE_MS, fields))
    return candles


@dataclass(frozen=True)
class SymbolState:
    """A symbol's registry record: the watermark W, the forming buckets' prefixes, the
    compare-and-set version, the digests of the last batches applied, and how many of the
    newest closed hours in a row are dense (packs of >= DENSE_MINUTES candles)."""

    watermark: int
    version: int
    prefixes: Mapping[str, Candle | None]
    batches: tuple[str, ...] = ()
    dense_hours: int = 0
    maintained_at: int = 0  # wall clock (epoch ms) of the last step: the sweep leaves busy symbols alone
    venues: tuple[str, ...] = ()  # every venue the symbol's candles hold, sorted


def registry_item(symbol: str, state: SymbolState) -> dict[str, Any]:
    item: dict[str, Any] = {
        SERIES: {"S": REGISTRY_SERIES}, SK: {"S": symbol},
        "materialized_ms": _number(state.watermark), "version": _number(state.version),
    }
    if state.batches:
        item["batches"] = {"S": ",".join(state.batches)}
    if state.dense_hours:
        item["dense_hours"] = _number(state.dense_hours)
    if state.maintained_at:
        item["maintained_ms"] = _number(state.maintained_at)
    if state.venues:
        item["venues"] = {"S": ",".join(state.venues)}
    for name, prefix in state.prefixes.items():
        if prefix is not None:
            # One string (composite entry, then "|" and the venues' entries): a Map of Numbers per
            # series would cost the reader a parse step per value and its names' bytes.
            text = _entry(prefix) + (f"|{venues_text(prefix)}" if prefix.venues else "")
            item[f"prefix_{name}"] = {"S": text}
    return item


def _prefix_from_value(start: int, value: Mapping[str, Any]) -> Candle | None:
    if "M" in value:  # the format before venues: a Map of the composite's numbers
        fields = value["M"]
        if not fields:
            return None
        open_, high, low, close = (Decimal(fields[short]["N"]) for short, _ in _PREFIX_FIELDS)
        return Candle(start, open_, high, low, close, int(fields["n"]["N"]))
    text, _, venues = value["S"].partition("|")
    composite = _from_entry(start, text.split(" "))
    return replace(composite, venues=venues_from_text(start, venues, composite))


def state_from_item(item: Mapping[str, Any]) -> SymbolState:
    watermark = int(item["materialized_ms"]["N"])
    prefixes: dict[str, Candle | None] = {}
    for name in COARSE:
        value = item.get(f"prefix_{name}")
        prefixes[name] = None if not value else _prefix_from_value(bucket_start(watermark, INTERVALS[name]), value)
    batches = tuple(item["batches"]["S"].split(",")) if "batches" in item else ()
    # A registry written before packs existed has none: its hours are read from 1m items.
    dense = int(item["dense_hours"]["N"]) if "dense_hours" in item else 0
    maintained = int(item["maintained_ms"]["N"]) if "maintained_ms" in item else 0
    venues = tuple(item["venues"]["S"].split(",")) if item.get("venues", {}).get("S") else ()
    return SymbolState(watermark, int(item["version"]["N"]), prefixes, batches, dense, maintained, venues)


def tick_price(item: Mapping[str, Any]) -> Decimal | None:
    """A stored item's price, or None for an item that is not a price (skipped, as the
    enricher skips it): not a Number, not finite, or not positive."""
    value = item.get("price")
    if not isinstance(value, Mapping) or "N" not in value:
        return None
    try:
        price = Decimal(value["N"])
    except (InvalidOperation, TypeError, ValueError):
        return None
    return price if price.is_finite() and price > 0 else None


UNKNOWN_VENUE = "unknown"


def tick_venue(item: Mapping[str, Any]) -> str:
    """A tick's venue: its `exchange` (stored normalized, lowercase); an item without one
    (none is written so), or one holding a separator of the stored texts (" ", ";", "|",
    ","), counts under UNKNOWN_VENUE rather than being dropped or corrupting an item."""
    value = item.get("exchange", {}).get("S", "")
    return value if value and not any(mark in value for mark in " ;|,") else UNKNOWN_VENUE


def tick_volume(item: Mapping[str, Any]) -> Decimal | None:
    """A tick's traded quantity since its venue's previous tick, when the sender knew it."""
    value = item.get("volume")
    if not isinstance(value, Mapping) or "N" not in value:
        return None
    try:
        volume = Decimal(value["N"])
    except (InvalidOperation, TypeError, ValueError):
        return None
    return volume if volume.is_finite() and volume >= 0 else None


class CandleStore(Protocol):
    """The reads and writes `maintain_store` and `read_from_store` make; DynamoDB in
    production (`DynamoCandleStore`), a dictionary in the property tests."""

    def read_state(self, symbol: str, consistent: bool) -> SymbolState | None: ...

    def read_ticks(self, symbol: str, start_ms: int, end_ms: int, consistent: bool) -> list[Tick]:
        """The price ticks in [start, end) in key order; strongly consistent ones (maintenance)
        carry their `expires_at`, the others None."""
        ...

    def has_ticks(self, symbol: str, start_ms: int, end_ms: int) -> bool: ...

    def list_states(self) -> list[tuple[str, SymbolState]]: ...

    def read_candles(self, symbol: str, interval: str, first_start: int, last_start: int,
                     limit: int | None = None) -> list[Candle]: ...

    def put_candles(self, symbol: str, candles: Sequence[tuple[str, Candle]]) -> int: ...

    def read_packs(self, symbol: str, first_hour: int, last_hour: int,
                   limit: int | None = None) -> list[tuple[int, list[Candle]]]: ...

    def put_packs(self, symbol: str, packs: Sequence[tuple[int, Sequence[Candle]]]) -> int: ...

    def put_state(self, symbol: str, state: SymbolState, expected_version: int | None) -> bool: ...

    def list_symbols(self) -> dict[str, list[str]]: ...


class CandleConflict(Exception):
    """The registry kept changing under a step (another writer of the symbol): retry the batch."""


@dataclass
class DynamoCandleStore:
    """`CandleStore` on the candle table and the prices table, counting its requests."""

    client: Any
    candle_table: str
    tick_table: str
    read_requests: int = 0
    write_requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _count(self, reads: int = 0, writes: int = 0) -> None:
        with self._lock:
            self.read_requests += reads
            self.write_requests += writes

    def read_state(self, symbol: str, consistent: bool) -> SymbolState | None:
        self._count(reads=1)
        item = self.client.get_item(TableName=self.candle_table, ConsistentRead=consistent,
                                    Key={SERIES: {"S": REGISTRY_SERIES}, SK: {"S": symbol}}).get("Item")
        return state_from_item(item) if item else None

    def _query(self, **arguments: Any) -> Iterable[dict[str, Any]]:
        """Every item of a Query, page by page (pages stop at 1 MB or `Limit`)."""
        while True:
            self._count(reads=1)
            page = self.client.query(**arguments)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _tick_items(self, symbol: str, start_ms: int, end_ms: int, consistent: bool,
                    limit: int | None = None) -> Iterable[dict[str, Any]]:
        low, high = key_range(start_ms, end_ms)
        arguments: dict[str, Any] = {
            "TableName": self.tick_table, "ConsistentRead": consistent,
            "KeyConditionExpression": "#s = :s AND #t BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#s": PARTITION_KEY, "#t": SORT_KEY},
            "ExpressionAttributeValues": {":s": {"S": symbol}, ":lo": {"N": str(low)}, ":hi": {"N": str(high)}}}
        if limit is not None:
            arguments["Limit"] = limit
            self._count(reads=1)
            items: list[dict[str, Any]] = self.client.query(**arguments).get("Items", [])
            return items
        return self._query(**arguments)

    def _priced(self, symbol: str, start_ms: int, end_ms: int,
                consistent: bool) -> Iterable[tuple[Mapping[str, Any], int, Decimal]]:
        """(item, sort key, price) of the price items in [start, end)."""
        for item in self._tick_items(symbol, start_ms, end_ms, consistent):
            price = tick_price(item)
            if price is not None:
                yield item, int(item[SORT_KEY]["N"]), price

    def read_ticks(self, symbol: str, start_ms: int, end_ms: int, consistent: bool) -> list[Tick]:
        expiry: str | None = None
        if consistent:  # maintenance only: the read API's path does not import the tick item module
            from functions.shared.price_table.ticks import EXPIRES_AT

            expiry = EXPIRES_AT
        return [(key, price, tick_venue(item), tick_volume(item),
                 int(item[expiry]["N"]) if expiry is not None and expiry in item else None)
                for item, key, price in self._priced(symbol, start_ms, end_ms, consistent)]

    def has_ticks(self, symbol: str, start_ms: int, end_ms: int) -> bool:
        """Whether any item is stored in [start, end): one Query of Limit 1 (0.5 read units)."""
        return bool(list(self._tick_items(symbol, start_ms, end_ms, consistent=False, limit=1)))

    def read_candles(self, symbol: str, interval: str, first_start: int, last_start: int,
                     limit: int | None = None) -> list[Candle]:
        """Stored candles with first_start <= start <= last_start, oldest first, at most `limit`."""
        if first_start > last_start:
            return []
        arguments: dict[str, Any] = {
            "TableName": self.candle_table, "ConsistentRead": True,
            "KeyConditionExpression": "#p = :p AND #k BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#p": SERIES, "#k": SK},
            "ExpressionAttributeValues": {":p": {"S": series_name(symbol, interval)},
                                          ":lo": {"S": sort_text(first_start)}, ":hi": {"S": sort_text(last_start)}},
        }
        candles: list[Candle] = []
        while True:
            if limit is not None:
                arguments["Limit"] = limit - len(candles)
            self._count(reads=1)
            page = self.client.query(**arguments)
            candles += [candle_from_item(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page or (limit is not None and len(candles) >= limit):
                return candles
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _put_counted(self, item: dict[str, Any]) -> bool:
        """PutItem unless a stored item of the key counts more ticks (candles and packs)."""
        self._count(writes=1)
        try:
            self.client.put_item(TableName=self.candle_table, Item=item,
                                 ConditionExpression="attribute_not_exists(#n) OR #n <= :n",
                                 ExpressionAttributeNames={"#n": "count"},
                                 ExpressionAttributeValues={":n": item["count"]})
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False  # a computation from more ticks is already stored

    def _put_all(self, items: Sequence[dict[str, Any]]) -> int:
        if len(items) <= 2:
            results = [self._put_counted(item) for item in items]
        else:
            with ThreadPoolExecutor(min(WRITE_THREADS, len(items))) as pool:
                results = list(pool.map(self._put_counted, items))
        return results.count(False)

    def put_candles(self, symbol: str, candles: Sequence[tuple[str, Candle]]) -> int:
        """Write each candle (conditional on count); returns how many were refused as older."""
        return self._put_all([candle_item(symbol, name, candle) for name, candle in candles])

    def read_packs(self, symbol: str, first_hour: int, last_hour: int,
                   limit: int | None = None) -> list[tuple[int, list[Candle]]]:
        """Stored packs with first_hour <= hour <= last_hour, oldest first, at most `limit`."""
        if first_hour > last_hour:
            return []
        arguments: dict[str, Any] = {
            "TableName": self.candle_table, "ConsistentRead": True,
            "KeyConditionExpression": "#p = :p AND #k BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#p": SERIES, "#k": SK},
            "ExpressionAttributeValues": {":p": {"S": pack_series(symbol)},
                                          ":lo": {"S": sort_text(first_hour)}, ":hi": {"S": sort_text(last_hour)}},
        }
        packs: list[tuple[int, list[Candle]]] = []
        while True:
            if limit is not None:
                arguments["Limit"] = limit - len(packs)
            self._count(reads=1)
            page = self.client.query(**arguments)
            packs += [(int(item[SK]["S"]), pack_from_item(item)) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page or (limit is not None and len(packs) >= limit):
                return packs
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put_packs(self, symbol: str, packs: Sequence[tuple[int, Sequence[Candle]]]) -> int:
        """Write each hour's pack (conditional on its tick count); returns how many were refused."""
        return self._put_all([pack_item(symbol, hour, minutes) for hour, minutes in packs])

    def put_state(self, symbol: str, state: SymbolState, expected_version: int | None) -> bool:
        self._count(writes=1)
        if expected_version is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(#k)",
                                         "ExpressionAttributeNames": {"#k": SK}}
        else:
            condition = {"ConditionExpression": "#v = :v", "ExpressionAttributeNames": {"#v": "version"},
                         "ExpressionAttributeValues": {":v": _number(expected_version)}}
        try:
            self.client.put_item(TableName=self.candle_table, Item=registry_item(symbol, state), **condition)
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False

    def _registry(self) -> Iterable[dict[str, Any]]:
        return self._query(TableName=self.candle_table, KeyConditionExpression="#p = :p",
                           ExpressionAttributeNames={"#p": SERIES},
                           ExpressionAttributeValues={":p": {"S": REGISTRY_SERIES}})

    def list_symbols(self) -> dict[str, list[str]]:
        return {symbol: list(state.venues) for symbol, state in self.list_states()}

    def list_states(self) -> list[tuple[str, SymbolState]]:
        """Every symbol's registry record, from the one Query (eventually consistent)."""
        return sorted(((item[SK]["S"], state_from_item(item)) for item in self._registry()), key=lambda pair: pair[0])


@dataclass(frozen=True)
class CandleWrites:
    """What one `maintain` call did and cost (requests to DynamoDB; each item < 1 KB, so
    write requests = write units)."""

    symbol: str
    read_requests: int = 0
    write_requests: int = 0
    candles_written: int = 0        # candle PutItems (the registry write is not one)
    packs_written: int = 0          # hour pack PutItems (~3 write units each)
    stale_refused: int = 0          # candle writes refused: a computation from more ticks was stored
    conflicts: int = 0              # registry compare-and-set failures, each followed by a redo
    watermark: int | None = None    # W after the call
    late_minutes: int = 0           # minutes < W recomputed from ticks
    skipped_minutes: int = 0        # late minutes older than the retention horizon, left out
    duplicate_batch: bool = False   # this exact batch was applied before: nothing done


def batch_digest(keys: Sequence[int]) -> str:
    """Identifies a batch's key set (16 hex digits), so a retried or redelivered batch is
    recognised without recomputing anything."""
    return hashlib.blake2b(",".join(map(str, keys)).encode(), digest_size=8).hexdigest()


def _stored_candles(store: CandleStore, symbol: str,
                    needed: Mapping[str, Sequence[int]]) -> dict[tuple[str, int], Candle]:
    """The needed stored candles, one Query per level and cluster of nearby starts."""
    found: dict[tuple[str, int], Candle] = {}
    for name, starts in needed.items():
        size = INTERVALS[name]
        wanted = set(starts)
        clusters: list[list[int]] = []
        for start in starts:
            if clusters and start - clusters[-1][-1] <= 8 * size:
                clusters[-1].append(start)
            else:
                clusters.append([start])
        for cluster in clusters:
            for candle in store.read_candles(symbol, name, cluster[0], cluster[-1]):
                if candle.start in wanted:
                    found[(name, candle.start)] = candle
    return found


def _write_packs(store: CandleStore, symbol: str, candles: Sequence[tuple[str, Candle]]) -> dict[int, int]:
    """Re-pack every hour whose 1h candle this step wrote, from its stored 1m candles (read
    after this step's own 1m writes, strongly consistent); returns {hour: candles} of the
    packs written.

    Built from what is stored rather than from this step's values: in the normal flow the
    step knows only the minutes that closed now, and a 1m write refused as older means the
    stored minute is the better one. The pack's count guard keeps a pack from fewer ticks
    from replacing one from more, as for candles.
    """
    hours = sorted({candle.start for name, candle in candles if name == "1h"})
    clusters: list[list[int]] = []  # nearby hours share one Query (a re-drive can close many)
    for hour in hours:
        if clusters and hour - clusters[-1][-1] <= 8 * HOUR_MS:
            clusters[-1].append(hour)
        else:
            clusters.append([hour])
    by_hour: dict[int, list[Candle]] = {}
    for cluster in clusters:
        for minute in store.read_candles(symbol, "1m", cluster[0], cluster[-1] + HOUR_MS - MINUTE_MS):
            by_hour.setdefault(bucket_start(minute.start, HOUR_MS), []).append(minute)
    packs = [(hour, by_hour[hour]) for hour in hours if hour in by_hour]
    store.put_packs(symbol, packs)
    return {hour: len(minutes) for hour, minutes in packs}


def dense_run(previous: int, old_watermark: int | None, new_watermark: int, packed: Mapping[int, int]) -> int:
    """The registry's `dense_hours` after a step: each hour that closes in it (old W's hour up
    to new W's) extends the run if its pack holds >= DENSE_MINUTES candles, and ends it
    otherwise (an empty hour has no pack). Late ticks only add candles, so a counted hour
    stays dense; a step that closes no hour keeps the run."""
    if old_watermark is None:
        return 0  # a new symbol's first hour may be partial: the run starts at the next one
    run = previous
    for hour in range(bucket_start(old_watermark, HOUR_MS), bucket_start(new_watermark, HOUR_MS), HOUR_MS):
        run = run + 1 if packed.get(hour, 0) >= DENSE_MINUTES else 0
    return min(run, MAX_DENSE_HOURS)


def _still_whole(store: CandleStore, symbol: str, minutes: Sequence[int], now_ms: int | None) -> list[int]:
    """Of late minutes beyond the retention horizon, those a recomputation from the stored
    ticks cannot make smaller: no candle stored yet (a backfill, in any order), or a candle
    whose ticks all expire more than the margin after now (`Candle.expires`: TTL deletes
    only expired items, so every tick it counted is still there, and stays for the step).
    A candle without `expires` counted ticks without a retention, which never expire (the
    webhook's `expires_at` and the candle's `x` were introduced together).
    One candle Query per cluster of such minutes: the path is rare (a late tick more than
    the retention old)."""
    from functions.shared.price_table.ticks import EXPIRY_MARGIN_MS  # not on the API's import path

    held = _stored_candles(store, symbol, {"1m": minutes})
    whole = []
    for minute in minutes:
        candle = held.get(("1m", minute))
        if (candle is None or candle.expires is None
                or (now_ms is not None and candle.expires * 1000 > now_ms + EXPIRY_MARGIN_MS)):
            whole.append(minute)
    return whole


# The shortest retention a tick can have been written with (the environment file's lower bound
# for `tick_retention_days`; a test holds the two equal).
MIN_RETENTION_DAYS = 1


def wholeness_horizon(oldest_recomputable_ms: int | None, now_ms: int | None) -> int | None:
    """Late minutes before this are recomputed only if `_still_whole` finds every tick they
    depend on still stored (their 1m candle's expiry witness is ahead of now).

    Not the current retention's horizon alone: the ticks may have been written under a
    shorter one (a raised `tick_retention_days`, or one set after a period with a short one),
    and TTL may have deleted some that the current horizon would call kept. Whatever the
    retention was, no tick expires before its minute + MIN_RETENTION_DAYS, so minutes newer
    than that need no check (the normal late tick costs nothing more); older ones are judged
    by the witness, which records what the ticks themselves say."""
    if now_ms is None:
        return oldest_recomputable_ms
    from functions.shared.price_table.ticks import oldest_recomputable_ms as horizon_at  # not on the API's path

    shortest = horizon_at(now_ms, MIN_RETENTION_DAYS)
    return shortest if oldest_recomputable_ms is None else max(shortest, oldest_recomputable_ms)


def maintain_store(store: CandleStore, symbol: str, tick_keys: Sequence[int],
                   oldest_recomputable_ms: int | None = None, now_ms: int | None = None,
                   max_attempts: int = MAX_ATTEMPTS, close_until_ms: int | None = None,
                   idle_since_ms: int | None = None, venues: Iterable[str] = ()) -> CandleWrites:
    """One symbol's maintenance step over any `CandleStore` (see `maintain`). A sweep passes
    `close_until_ms` and `idle_since_ms`: it does nothing if a step ran after `idle_since_ms`
    (seen in the consistent read, so a step racing the sweep's registry Query wins).
    `venues`: the batch's venues; one the registry does not list yet is recorded by this step
    even when no minute closes, so `/v1/symbols` lists a venue from its first stored tick."""
    keys = sorted({int(key) for key in tick_keys})
    batch_venues = frozenset(venues)
    digest = batch_digest(keys) if keys else None  # a sweep (no keys) is not a batch to recognise
    conflicts = refused = written = packed = 0
    whole: dict[int, bool] = {}  # decided once per call: a redo must not undo half of a step's writes
    horizon = wholeness_horizon(oldest_recomputable_ms, now_ms)
    for _ in range(max_attempts):
        state = store.read_state(symbol, consistent=True)
        if state is not None and digest is not None and digest in state.batches:
            return CandleWrites(symbol, conflicts=conflicts, watermark=state.watermark, duplicate_batch=True,
                                candles_written=written, packs_written=packed, stale_refused=refused)
        if state is not None and idle_since_ms is not None and state.maintained_at > idle_since_ms:
            return CandleWrites(symbol, conflicts=conflicts, watermark=state.watermark)
        plan = plan_maintenance(state.watermark if state else None, keys, horizon, now_ms, close_until_ms)
        if plan.skipped_minutes:
            unknown = [m for m in plan.skipped_minutes if m not in whole]
            if unknown:
                found = set(_still_whole(store, symbol, unknown, now_ms))
                whole.update({m: m in found for m in unknown})
            plan = plan.recompute_skipped(m for m in plan.skipped_minutes if whole[m])
        if not plan.has_work:
            if state is None or batch_venues <= set(state.venues):
                return CandleWrites(symbol, conflicts=conflicts, watermark=plan.watermark, candles_written=written,
                                    packs_written=packed, stale_refused=refused,
                                    skipped_minutes=len(plan.skipped_minutes))
            # A venue new to the symbol: recorded at once (compare-and-set like any step), rarely.
            listed = replace(state, version=state.version + 1, venues=tuple(sorted(batch_venues | set(state.venues))))
            if store.put_state(symbol, listed, state.version):
                return CandleWrites(symbol, conflicts=conflicts, watermark=plan.watermark, candles_written=written,
                                    packs_written=packed, stale_refused=refused,
                                    skipped_minutes=len(plan.skipped_minutes))
            conflicts += 1
            continue
        minutes: dict[int, Candle] = {}
        for start, end in plan.minute_ranges():
            # One Query per run of minutes, from STALE_MS before it: the composite's carry-in.
            ticks = store.read_ticks(symbol, start - STALE_MS, end, consistent=True)
            minutes.update(bucket_candles(ticks, start, with_expiry=True))
        known = tuple(sorted({name for candle in minutes.values() for name in candle.venue_names()}
                             | set(state.venues if state else ()) | batch_venues))
        stored = _stored_candles(store, symbol, stored_needed(plan))
        result = materialize(plan, state.prefixes if state else {}, minutes, stored)
        refused += store.put_candles(symbol, result.candles)
        written += len(result.candles)
        hour_packs = _write_packs(store, symbol, result.candles)
        packed += len(hour_packs)
        assert plan.watermark is not None
        dense = dense_run(state.dense_hours if state else 0, state.watermark if state else None, plan.watermark,
                          hour_packs)
        recent = ((digest,) if digest is not None else ()) + (state.batches if state else ())
        # The step's wall clock, only when W moves: a stream of late ticks alone (a backfill into a
        # delisted symbol) must not keep the sweep from closing what is forming.
        maintained = int(time.time() * 1000) if now_ms is None else now_ms
        if state is not None and plan.watermark == state.watermark:
            maintained = state.maintained_at
        new_state = SymbolState(plan.watermark, (state.version if state else 0) + 1, result.prefixes,
                                recent[:RECENT_BATCHES], dense, maintained, known)
        if store.put_state(symbol, new_state, state.version if state else None):
            return CandleWrites(symbol, conflicts=conflicts, watermark=plan.watermark, candles_written=written,
                                packs_written=packed, stale_refused=refused, late_minutes=len(plan.late_minutes),
                                skipped_minutes=len(plan.skipped_minutes))
        conflicts += 1
    raise CandleConflict(f"{symbol}: the registry changed under {max_attempts} attempts")


def maintain(dynamodb: Any, candle_table: str, tick_table: str, symbol: str, tick_keys: Sequence[int],
             oldest_recomputable_ms: int | None = None, now_ms: int | None = None,
             venues: Iterable[str] = ()) -> CandleWrites:
    """Bring a symbol's candles up to date with a batch of its ticks (their sort keys).

    Call it for each symbol of a stream batch AFTER the batch's ticks are stored (the
    enricher), and with the same keys from a DLQ re-drive. Idempotent: everything is
    recomputed from stored ticks, so a retry, a redelivery or a re-drive never counts a
    tick twice. `oldest_recomputable_ms`: the ticks' retention horizon if they get a TTL
    (candles are kept); `now_ms`: the caller's clock, so a tick dated ahead closes nothing
    early (the enricher passes it; see `plan_maintenance`). Raises `CandleConflict` if
    another writer kept winning (retry the batch); DynamoDB errors propagate.
    """
    store = DynamoCandleStore(dynamodb, candle_table, tick_table)
    writes = maintain_store(store, symbol, tick_keys, oldest_recomputable_ms, now_ms, venues=venues)
    return replace(writes, read_requests=store.read_requests, write_requests=store.write_requests)


SWEEP_QUIET_MS = 15 * MINUTE_MS     # minutes this far back close: on-time ticks have long arrived
SWEEP_IDLE_MS = 60 * MINUTE_MS      # only symbols with no maintenance step for this long (wall clock)
SWEEP_WORKERS = 4  # x the step's own write threads: within the enricher client's 20 connections


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did: how many symbols the registry holds, the steps that closed minutes,
    the symbols whose step failed (with the error), and those not reached before the deadline."""

    checked: int
    closed: tuple[CandleWrites, ...]
    failed: tuple[tuple[str, str], ...]
    unreached: tuple[str, ...] = ()
    read_requests: int = 0
    write_requests: int = 0


def sweep_store(store: CandleStore, now_ms: int, oldest_recomputable_ms: int | None = None,
                deadline: float | None = None, workers: int = 1) -> SweepResult:
    """Close the forming minutes of every idle symbol (see `sweep`). `deadline` (time.monotonic())
    stops starting new symbols in time for the caller to report the rest, stalest first."""
    cutoff = bucket_start(now_ms - SWEEP_QUIET_MS, MINUTE_MS)
    idle_since = now_ms - SWEEP_IDLE_MS
    states = store.list_states()
    idle = sorted(((symbol, state) for symbol, state in states
                   if state.watermark < cutoff and state.maintained_at <= idle_since),
                  key=lambda pair: pair[1].watermark)

    def close(pair: tuple[str, SymbolState]) -> CandleWrites | Exception | None:
        symbol, state = pair
        if deadline is not None and time.monotonic() >= deadline:
            return None
        try:
            if not store.has_ticks(symbol, state.watermark, cutoff):
                return CandleWrites(symbol, watermark=state.watermark)  # nothing forming: nothing to write
            return maintain_store(store, symbol, (), oldest_recomputable_ms, now_ms, close_until_ms=cutoff,
                                  idle_since_ms=idle_since)
        except Exception as error:  # noqa: BLE001 - one symbol's failure must not keep the others open
            return error

    closed: list[CandleWrites] = []
    failed: list[tuple[str, str]] = []
    unreached: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(idle) or 1))) as pool:
        for (symbol, state), outcome in zip(idle, pool.map(close, idle), strict=True):
            if outcome is None:
                unreached.append(symbol)
            elif isinstance(outcome, Exception):
                failed.append((symbol, f"{type(outcome).__name__}: {outcome}"[:300]))
            elif outcome.watermark == cutoff != state.watermark:  # a live step that won keeps its own W
                closed.append(outcome)
    return SweepResult(len(states), tuple(closed), tuple(failed), tuple(unreached))


def sweep(dynamodb: Any, candle_table: str, tick_table: str, now_ms: int,
          oldest_recomputable_ms: int | None = None, deadline: float | None = None) -> SweepResult:
    """Close the forming minutes of every symbol that no step has touched for `SWEEP_IDLE_MS`
    and that holds ticks before the minute `SWEEP_QUIET_MS` ago: its watermark moves there, as
    a tick then would move it.

    Why: a symbol's newest minute stays forming until a later tick of it arrives, and only its
    ticks hold it. With a tick retention (TTL), a symbol quiet for longer than the retention
    (a daily alert with `tick_retention_days: 1`, a delisted pair) would have those ticks
    deleted before any candle held them. The enricher runs this hourly (a schedule the
    pipeline stack adds with a retention), so a forming minute closes within about two hours
    of its symbol's last step, long before its ticks can expire. Busy symbols, a backfill in
    progress and a lagging stream are left to their own steps (their registry's
    `maintained_at` is recent), so their ticks are not made late. A tick of a swept minute
    that arrives later is a late tick, corrected as any other. Cost: one registry Query, one
    Limit-1 tick Query per idle symbol, and the closing writes of the symbols with something
    forming (an idle symbol costs its Query once it is swept). `SWEEP_WORKERS` at a time.
    """
    store = DynamoCandleStore(dynamodb, candle_table, tick_table)
    result = sweep_store(store, now_ms, oldest_recomputable_ms, deadline, SWEEP_WORKERS)
    return replace(result, read_requests=store.read_requests, write_requests=store.write_requests)


def _stored_minutes(store: CandleStore, symbol: str, state: SymbolState, first: int, last: int,
                    limit: int) -> list[Candle]:
    """Stored 1m candles with first <= start <= last (all closed: last < W), oldest first, at
    most `limit`: one Query of 1m items, or, for a range over PACK_MIN_HOURS or more whole
    hours that are all dense, the 1m items of its partial first hour, the packs of its
    whole hours, and the 1m items after them.

    Why the rule keeps the read bound (units <= (answer bytes + forming ticks' bytes) / 4 KB
    + 2). One Query of 1m items is the plan the bound was made for: registry 0.5, candles,
    ticks 0.5. DynamoDB rounds each Query up to the next 4 KB, so every Query the pack plan
    adds costs at most one unit more. A packed candle takes ~15 bytes plus its prices
    (~60 bytes less than the answer's JSON for it: the prices are in both), a 1m item about
    as many bytes as its JSON. So a Query of packs pays for itself when its packs hold at
    least 4 KB / 60 B = 69 candles, and for the head's and tail's Queries too when they
    hold 137: PACK_MIN_HOURS (4) packs of >= 40 candles hold 160. Two things keep that
    true: density is known before reading, from the registry's `dense_hours` (late ticks
    only add candles); and no pack is read that the limit would cut (an hour holds at most
    60 candles, so a Query asks for room // 60 packs), as a cut pack is paid for in full,
    prices included, and not returned: the room left under PACK_MIN_HOURS * 60 is read
    as 1m items. (`tests/test_candles_store.py` measures the bound over dense and sparse
    symbols, ranges, limits and 38-digit prices.)
    """
    closed_end = bucket_start(state.watermark, HOUR_MS)  # hours before it are closed: H + 1h <= W
    whole_low = bucket_ceil(first, HOUR_MS)
    whole_high = min(bucket_start(last + MINUTE_MS, HOUR_MS), closed_end)  # exclusive
    dense_low = closed_end - state.dense_hours * HOUR_MS
    head_minutes = (whole_low - first) // MINUTE_MS  # the most 1m candles before the whole hours
    if ((whole_high - whole_low) // HOUR_MS < PACK_MIN_HOURS or whole_low < dense_low
            or limit - head_minutes < PACK_MIN_HOURS * 60):
        return store.read_candles(symbol, "1m", first, last, limit=limit)
    rows: list[Candle] = []
    if first < whole_low:
        rows = store.read_candles(symbol, "1m", first, whole_low - MINUTE_MS, limit=limit)
    position = whole_low
    while position < whole_high and (limit - len(rows)) // 60 >= PACK_MIN_HOURS:
        wanted = (limit - len(rows)) // 60  # packs the room holds whole, however full they are
        packs = store.read_packs(symbol, position, whole_high - HOUR_MS, limit=wanted)
        for _, minutes in packs:
            rows += minutes
        position = packs[-1][0] + HOUR_MS if len(packs) == wanted else whole_high
    if len(rows) < limit and position <= last:
        rows += store.read_candles(symbol, "1m", position, last, limit=limit - len(rows))
    return rows[:limit]


def _stored_venue(store: CandleStore, symbol: str, interval: str, venue: str, first: int, last: int,
                  limit: int) -> list[Candle]:
    """A venue's stored candles with first <= start <= last, oldest first, at most `limit`:
    the bucket items' entries for it (buckets where it has no tick, and blended items written
    before venues, have none), page after page until `limit` are found or the range ends."""
    size = INTERVALS[interval]
    rows: list[Candle] = []
    position = first
    while position <= last and len(rows) < limit:
        wanted = limit - len(rows)
        page = store.read_candles(symbol, interval, position, last, limit=wanted)
        rows += [part for candle in page if (part := candle.venue_candle(venue)) is not None]
        if len(page) < wanted:
            break
        position = page[-1].start + size
    return rows[:limit]


def read_from_store(store: CandleStore, symbol: str, interval: str, start_ms: int, end_ms: int,
                    limit: int, venue: str | None = None) -> tuple[list[Candle], int | None]:
    """`read_candles` over any `CandleStore`."""
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r} is not one of {', '.join(INTERVALS)}")
    if not 1 <= limit <= MAX_CANDLES:
        raise ValueError(f"limit must be 1..{MAX_CANDLES}")
    size = INTERVALS[interval]
    first = bucket_ceil(max(start_ms, 0), size)
    if first >= end_ms:
        return [], None
    state = store.read_state(symbol, consistent=False)
    forming = bucket_start(state.watermark, size) if state else first
    rows: list[Candle] = []
    if state is not None and first < forming:
        last = min(bucket_start(end_ms - 1, size), forming - size)
        if venue is not None:
            rows = _stored_venue(store, symbol, interval, venue, first, last, limit)
        elif interval == "1m":
            rows = _stored_minutes(store, symbol, state, first, last, limit)
        else:
            rows = store.read_candles(symbol, interval, first, last, limit=limit)
        if venue is None:
            rows = [candle.venue_candle(None) or candle for candle in rows]
        if len(rows) >= limit:
            rows = rows[:limit]
            following = rows[-1].start + size
            return rows, following if following < end_ms else None
    low = max(first, forming)
    if low >= end_ms:
        return rows, None
    tick_start = max(low, state.watermark) if state else low
    # From STALE_MS earlier: which venues are fresh at the first ticks (the composite's carry-in).
    ticks = store.read_ticks(symbol, tick_start - STALE_MS, bucket_start(end_ms - 1, size) + size, consistent=False)
    computed = bucket_candles(ticks, tick_start, size)
    prefix = state.prefixes.get(interval) if state is not None and low == forming else None
    if prefix is not None:
        computed[forming] = combine([prefix] + ([computed[forming]] if forming in computed else []), forming)
    ordered = [part for start in sorted(computed) if low <= start < end_ms
               and (part := computed[start].venue_candle(venue)) is not None]
    room = limit - len(rows)
    rows += ordered[:room]
    if len(ordered) > room:
        return rows, rows[-1].start + size
    return rows, None


def read_candles(dynamodb: Any, candle_table: str, tick_table: str, symbol: str, interval: str, start_ms: int,
                 end_ms: int, limit: int, venue: str | None = None) -> tuple[list[Candle], int | None]:
    """Candles of `interval` whose start is in [start_ms, end_ms), oldest first, at most
    `limit` (<= 5,000), and the start to continue from when more may follow (else None).

    Stored candles come from the interval's series; the forming bucket (and any later one,
    if the stream lags) is its registry prefix plus the ticks at or after W. So the answer
    includes every tick stored more than a moment before the call (eventually consistent
    tick read; the contract allows 5 s), and costs three requests: registry GetItem,
    candle Query (strongly consistent) and tick Query, each only when needed. A symbol
    without a registry record (none, or its first batch not yet maintained) is computed
    from its ticks in the range.

    `venue`: None gives the composite (the median path of the venues, see
    `functions.shared.candles.composite_values`), a venue name that venue's own candles (none
    for a venue the symbol does not have); either way one item per bucket is read.
    """
    return read_from_store(DynamoCandleStore(dynamodb, candle_table, tick_table), symbol, interval, start_ms, end_ms,
                           limit, venue)


def list_symbols(dynamodb: Any, candle_table: str) -> dict[str, list[str]]:
    """Every symbol with candles and its venues, both sorted: one Query of the registry
    partition (not a Scan). A registry written before venues lists none."""
    return DynamoCandleStore(dynamodb, candle_table, "").list_symbols()


