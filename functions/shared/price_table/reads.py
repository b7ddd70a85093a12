"""The read side's tick queries: the newest tick of a symbol, and pages of a symbol's ticks.

Every read is a strongly consistent Query on the table's key (never a Scan, never an
index): a trading algorithm that polls "everything after the last tick I saw" must not
get a page that misses a tick already written, which an eventually consistent read can.

Each function can record what it read into a `ReadLog`: the typed items of every Query
page. That is what DynamoDB bills (read units = ceil(page bytes / 4096) per page, strongly
consistent), so a benchmark prices a request from the log with `evidence.capacity`
(`read_units(sum(item_size(i) for i in page.items))` per page) without this module
duplicating the item-size rules or the Lambda zip carrying tooling code.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from functions.shared.price_table.keys import PARTITION_KEY, SORT_KEY, event_ms, key_range

INDICATOR_PREFIXES = ("sma_", "ema_", "volatility_")
INDICATOR_NAMES = ("change_pct",)
OPTIONAL_NUMBERS = ("volume", "bid", "ask")


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


def is_indicator(name: str) -> bool:
    """Indicator attributes by name: the windows are configurable per environment."""
    return name in INDICATOR_NAMES or (name.startswith(INDICATOR_PREFIXES) and name.rsplit("_", 1)[1].isdigit())


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
        "exchange": item.get("exchange", {}).get("S", ""),
    }
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
    if "enriched_at" in item:
        tick["enriched_at"] = int(item["enriched_at"]["N"])
    return tick


def latest_item(client: Any, table_name: str, symbol: str, log: ReadLog | None = None) -> dict[str, Any] | None:
    """The symbol's newest tick (typed item), or None: one Query, newest first, Limit 1 (1 read unit)."""
    response = _query(client, log, TableName=table_name, KeyConditionExpression="#s = :s",
                      ExpressionAttributeNames={"#s": PARTITION_KEY}, ExpressionAttributeValues={":s": {"S": symbol}},
                      ScanIndexForward=False, Limit=1)
    items = response.get("Items", [])
    return items[0] if items else None


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
               descending: bool, limit: int, log: ReadLog | None = None) -> TickPage:
    """The first `limit` ticks with low_key <= key <= high_key (None: unbounded), oldest or newest first.

    Reads limit + 1 items so that `last_key` is set only when another tick really follows:
    a client never fetches an empty final page, for the price of one extra item (well under
    a read unit). Follows DynamoDB's own pages (1 MB each) until enough items are read.
    A caller continues with `low_key = last_key + 1` (ascending) or `high_key = last_key - 1`.
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
    wanted = limit + 1
    items: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while len(items) < wanted:
        extra = {"ExclusiveStartKey": start} if start else {}
        response = _query(client, log, TableName=table_name, KeyConditionExpression=condition,
                          ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                          ScanIndexForward=not descending, Limit=wanted - len(items), **extra)
        items += response.get("Items", [])
        start = response.get("LastEvaluatedKey")
        if not start:
            break
    if len(items) > limit:
        items = items[:limit]
        return TickPage(items, int(items[-1][SORT_KEY]["N"]))
    return TickPage(items, None)
