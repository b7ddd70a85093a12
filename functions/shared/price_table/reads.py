"""The read side's tick queries: a symbol's newest tick per venue, its composite latest price,
and pages of its ticks (every venue, or one).

Every read is a strongly consistent Query on the table's key (never a Scan, never an
index): a trading algorithm that polls "everything after the last tick I saw" must not
get a page that misses a tick already written, which an eventually consistent read can.

Each function can record what it read into a `ReadLog`: the typed items of every Query
page. That is what DynamoDB bills (read units = ceil(page bytes / 4096) per page, strongly
consistent), so a benchmark prices a request from the log with `evidence.capacity`
(`read_units(sum(item_size(i) for i in page.items))` per page) without this module
duplicating the item-size rules or the Lambda zip carrying tooling code. Two reads are billed
for more than they return, which the log does not see: a venue's reads (a FilterExpression
pays for every item it evaluates) and the composite's (projected to four attributes; billed
for whole items).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from functions.shared.composite import LATEST_SCAN, STALE_MS, median
from functions.shared.price_table.items import ENRICHED_AT, OPTIONAL_NUMBERS, VENUE, is_indicator
from functions.shared.price_table.keys import PARTITION_KEY, SORT_KEY, event_ms, key_range

# The composite's latest price (functions.shared.composite): the venues seen among the symbol's
# newest LATEST_SCAN ticks whose own last tick is at most STALE_MS older than the symbol's newest.
# The composite's first Query reads this many ticks, newest first: 60 s of a symbol at the design
# load (1,000,000 updates a day over 20 symbols: ~0.6 ticks/s, ~35 a minute, whatever the venues),
# so the common case stays one request of a few read units; a busier symbol pages on to LATEST_SCAN.
LATEST_FIRST = 50
# A venue's latest tick is looked for among the symbol's newest VENUE_SCAN ticks at most (a
# FilterExpression pays for the other venues' items it reads): a venue silent that long reads as
# null instead of a read of the whole partition.
VENUE_SCAN = 2_000
# A venue's tick page evaluates at most this many items per item it can return (limit + 1), so a
# rare venue's page is bounded and may come back short, or empty, with a cursor to read on.
VENUE_SCAN_FACTOR = 4


@dataclass(frozen=True)
class ReadPage:
    """One request to DynamoDB and the typed items it returned (what it is billed for)."""

    operation: str
    items: tuple[dict[str, Any], ...]
    consistent: bool


@dataclass
class ReadLog:
    """Every page a request read, in completion order; safe to share between threads."""

    pages: list[ReadPage] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, operation: str, items: Iterable[dict[str, Any]], consistent: bool) -> None:
        page = ReadPage(operation, tuple(items), consistent)
        with self._lock:
            self.pages.append(page)

    @property
    def requests(self) -> int:
        return len(self.pages)

    @property
    def items(self) -> int:
        return sum(len(page.items) for page in self.pages)


class MeteredClient:
    """A DynamoDB client that records each Query/GetItem response into a `ReadLog` (and, given
    a list as `writes`, every item it puts).

    Lets a benchmark price reads and writes made by code that takes a plain client (the
    candle reads and maintenance), without that code knowing about metering. Every other
    attribute is the client's own.
    """

    def __init__(self, client: Any, log: ReadLog, writes: list[dict[str, Any]] | None = None) -> None:
        self._client = client
        self._log = log
        self._writes = writes

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        if self._writes is not None:
            self._writes.append(kwargs["Item"])  # billed whether or not its condition holds
        response: dict[str, Any] = self._client.put_item(**kwargs)
        return response

    def query(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self._client.query(**kwargs)
        self._log.record("Query", response.get("Items", []), bool(kwargs.get("ConsistentRead")))
        return response

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self._client.get_item(**kwargs)
        item = response.get("Item")
        self._log.record("GetItem", [item] if item else [], bool(kwargs.get("ConsistentRead")))
        return response

    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self._client.batch_get_item(**kwargs)
        items = [item for table in response.get("Responses", {}).values() for item in table]
        self._log.record("BatchGetItem", items, True)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _query(client: Any, log: ReadLog | None, **kwargs: Any) -> dict[str, Any]:
    response: dict[str, Any] = client.query(ConsistentRead=True, **kwargs)
    if log is not None:
        log.record("Query", response.get("Items", []), True)
    return response


def decimal_text(value: Decimal | str) -> str:
    """A number as a plain decimal string for JSON: exact, never a float, never an exponent ("1E-7").

    DynamoDB answers Numbers in plain notation already, so those pass through untouched:
    a 1,000-tick page has ~10,000 of them, and parsing each into a Decimal costs CPU that a
    small Lambda feels as latency.
    """
    if isinstance(value, str) and "e" not in value and "E" not in value:
        return value
    return format(Decimal(value), "f")


def tick_from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item (typed DynamoDB JSON) as the API's JSON tick: exact decimal strings, epoch ms.

    `time` is the tick's millisecond; `key` is the packed sort key (the table's and the SNS
    notification's `timestamp`), unique per symbol, so consumers can de-duplicate on it.
    Indicators too short of history are absent, as in the table; never 0.
    """
    key = int(item[SORT_KEY]["N"])
    tick: dict[str, Any] = {
        "symbol": item[PARTITION_KEY]["S"], "time": event_ms(key), "key": key,
        "price": decimal_text(item["price"]["N"]),
        "exchange": item.get(VENUE, {}).get("S", ""),
    }
    tick["venue"] = tick["exchange"]
    if "source" in item:
        tick["source"] = item["source"]["S"]
    if "received_at" in item:
        tick["received_at"] = int(item["received_at"]["N"])
    for name in OPTIONAL_NUMBERS:
        if name in item and "N" in item[name]:
            tick[name] = decimal_text(item[name]["N"])
    indicators = {name: decimal_text(value["N"]) for name, value in sorted(item.items())
                  if is_indicator(name) and "N" in value}
    tick["indicators"] = indicators
    if ENRICHED_AT in item:
        tick["enriched_at"] = int(item[ENRICHED_AT]["N"])
    return tick


def _venue_filter(venue: str | None) -> dict[str, Any]:
    """A Query's FilterExpression keeping one venue's ticks; nothing for every venue."""
    if venue is None:
        return {}
    return {"FilterExpression": "#v = :v", "ExpressionAttributeNames": {"#v": VENUE},
            "ExpressionAttributeValues": {":v": {"S": venue}}}


def _merge(condition: dict[str, Any], venue: str | None) -> dict[str, Any]:
    """Query arguments: the key condition's, with the venue filter's names and values added."""
    extra = _venue_filter(venue)
    if not extra:
        return condition
    return {**condition, "FilterExpression": extra["FilterExpression"],
            "ExpressionAttributeNames": {**condition["ExpressionAttributeNames"], **extra["ExpressionAttributeNames"]},
            "ExpressionAttributeValues": {**condition["ExpressionAttributeValues"],
                                          **extra["ExpressionAttributeValues"]}}


# What the composite needs of a tick: its answer holds nothing else. A projection does not lower the
# read units (DynamoDB bills the whole item) but cuts the JSON the API parses per enriched tick from
# ~590 bytes to ~125.
_COMPOSITE_PROJECTION = {"ProjectionExpression": "#s, #k, #p, #v"}
_COMPOSITE_NAMES = {"#k": SORT_KEY, "#p": "price", "#v": VENUE}


def _newest_first(client: Any, table_name: str, symbol: str, log: ReadLog | None, limit: int,
                  start: dict[str, Any] | None, venue: str | None = None, projected: bool = False) -> dict[str, Any]:
    condition: dict[str, Any] = {"KeyConditionExpression": "#s = :s",
                                 "ExpressionAttributeNames": {"#s": PARTITION_KEY},
                                 "ExpressionAttributeValues": {":s": {"S": symbol}}}
    if projected:
        condition = {**condition, **_COMPOSITE_PROJECTION,
                     "ExpressionAttributeNames": {**condition["ExpressionAttributeNames"], **_COMPOSITE_NAMES}}
    extra = {"ExclusiveStartKey": start} if start else {}
    return _query(client, log, TableName=table_name, ScanIndexForward=False, Limit=limit,
                  **_merge(condition, venue), **extra)


def latest_item(client: Any, table_name: str, symbol: str, log: ReadLog | None = None,
                venue: str | None = None) -> dict[str, Any] | None:
    """The symbol's newest tick (typed item), of one venue when given, or None.

    Every venue: one Query, newest first, Limit 1 (1 read unit). One venue: newest first with a
    filter on the venue, the first Query reading LATEST_FIRST items and each further one four
    times more, until the venue's tick is found or VENUE_SCAN items were read (then None).
    """
    if venue is None:
        items = _newest_first(client, table_name, symbol, log, 1, None).get("Items", [])
        return items[0] if items else None
    read, start, size = 0, None, LATEST_FIRST
    while read < VENUE_SCAN:
        response = _newest_first(client, table_name, symbol, log, min(size, VENUE_SCAN - read), start, venue)
        found: list[dict[str, Any]] = response.get("Items", [])
        if found:
            return found[0]
        start = response.get("LastEvaluatedKey")
        if not start:
            return None
        read += int(response.get("ScannedCount", size))
        size *= 4
    return None


def latest_items(client: Any, table_name: str, symbol: str, log: ReadLog | None = None) -> list[dict[str, Any]]:
    """The symbol's newest ticks that decide its composite latest price, newest first.

    Stops as soon as the answer cannot change: at LATEST_SCAN ticks, at the partition's end, or
    at a tick more than STALE_MS older than the newest (a venue first met beyond it is stale).
    One Query of LATEST_FIRST ticks in the common case, a second for the rest when needed.
    """
    items: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while len(items) < LATEST_SCAN:
        response = _newest_first(client, table_name, symbol, log,
                                 LATEST_FIRST if not items else LATEST_SCAN - len(items), start, projected=True)
        items += response.get("Items", [])
        start = response.get("LastEvaluatedKey")
        if not start or not items or \
                event_ms(int(items[0][SORT_KEY]["N"])) - event_ms(int(items[-1][SORT_KEY]["N"])) > STALE_MS:
            break
    return items[:LATEST_SCAN]


def composite_from_items(items: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The composite latest price of a symbol from its newest ticks (newest first), as the API answers it.

    Each venue's latest price is its first tick in `items`; the venues whose latest tick is at
    most STALE_MS older than the newest tick count, and the price is their median. `venues`
    is how many counted (2: the midpoint, which one bad feed moves half way), `venue_prices`
    which ones at what price; `time` and `key` are the newest tick's.
    """
    if not items:
        return None
    newest = int(items[0][SORT_KEY]["N"])
    prices: dict[str, Decimal] = {}
    seen: set[str] = set()
    for item in items:
        venue = item.get(VENUE, {}).get("S", "")
        if venue in seen:
            continue
        seen.add(venue)
        if event_ms(newest) - event_ms(int(item[SORT_KEY]["N"])) <= STALE_MS:
            prices[venue] = Decimal(item["price"]["N"])
    return {"symbol": items[0][PARTITION_KEY]["S"], "time": event_ms(newest), "key": newest,
            "price": decimal_text(median(list(prices.values()))), "composite": True, "venues": len(prices),
            "venue_prices": {venue: decimal_text(prices[venue]) for venue in sorted(prices)}, "indicators": {}}


@dataclass(frozen=True)
class TickPage:
    """Up to `limit` items in the requested order; `last_key` is set when more items follow it."""

    items: list[dict[str, Any]]
    last_key: int | None


def key_bounds(start_ms: int | None, end_ms: int | None) -> tuple[int | None, int | None]:
    """Inclusive sort-key bounds of start_ms <= event time < end_ms; None is unbounded."""
    low = key_range(start_ms, start_ms + 1)[0] if start_ms is not None else None
    high = key_range(end_ms - 1, end_ms)[1] if end_ms is not None else None  # (end - 1) ms, last slot
    return low, high


def read_ticks(client: Any, table_name: str, symbol: str, low_key: int | None, high_key: int | None,
               descending: bool, limit: int, log: ReadLog | None = None, venue: str | None = None) -> TickPage:
    """The first `limit` ticks with low_key <= key <= high_key (None: unbounded), oldest or newest
    first, of one venue when given.

    Reads limit + 1 items so that `last_key` is set only when another tick really follows:
    a client never fetches an empty final page, for the price of one extra item (well under
    a read unit). Follows DynamoDB's own pages (1 MB each) until enough items are read.
    A caller continues with `low_key = last_key + 1` (ascending) or `high_key = last_key - 1`.

    One venue's ticks are the key range's items filtered on `exchange`: DynamoDB's Limit counts
    the items it evaluates, not the ones the filter keeps, so a page evaluates at most
    VENUE_SCAN_FACTOR x (limit + 1) items and, if that runs out first, ends at the last item
    evaluated: `last_key` is then that item's key, and the page may hold fewer than `limit`
    ticks (none, for a rare venue) although more follow.
    """
    names = {"#s": PARTITION_KEY, "#k": SORT_KEY}
    values: dict[str, Any] = {":s": {"S": symbol}}
    condition = "#s = :s"
    if low_key is not None and high_key is not None:
        condition += " AND #k BETWEEN :lo AND :hi"
        values[":lo"], values[":hi"] = {"N": str(low_key)}, {"N": str(high_key)}
    elif low_key is not None:
        condition += " AND #k >= :lo"
        values[":lo"] = {"N": str(low_key)}
    elif high_key is not None:
        condition += " AND #k <= :hi"
        values[":hi"] = {"N": str(high_key)}
    if low_key is None and high_key is None:
        del names["#k"]  # DynamoDB refuses an unused attribute name
    elif low_key is not None and high_key is not None and low_key > high_key:
        return TickPage([], None)
    arguments = _merge({"KeyConditionExpression": condition, "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values}, venue)
    wanted = limit + 1
    budget = VENUE_SCAN_FACTOR * wanted if venue is not None else None
    evaluated = 0
    items: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while len(items) < wanted:
        ask = wanted - len(items)
        if budget is not None:
            if evaluated >= budget:
                return TickPage(items, int(start[SORT_KEY]["N"])) if start else TickPage(items, None)
            if items:  # enough to find the missing ticks at the share of this venue seen so far
                ask = min(budget - evaluated, -(-ask * evaluated // len(items)) + 1)
            elif evaluated:  # none of this venue yet: the rest of the budget
                ask = budget - evaluated
        extra = {"ExclusiveStartKey": start} if start else {}
        response = _query(client, log, TableName=table_name, ScanIndexForward=not descending, Limit=ask,
                          **arguments, **extra)
        items += response.get("Items", [])
        evaluated += int(response.get("ScannedCount", ask))
        start = response.get("LastEvaluatedKey")
        if not start:
            break
    if len(items) > limit:
        items = items[:limit]
        return TickPage(items, int(items[-1][SORT_KEY]["N"]))
    return TickPage(items, None)
