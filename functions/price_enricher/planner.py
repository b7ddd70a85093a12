"""Batch planning, free of I/O: stream records → per-symbol outcomes (immutable).

Records are grouped by symbol; each symbol's indicators are computed in timestamp order
from the batch's own prices and the symbol's stored items, which the caller supplies as
iterables of pages (`TickReader`): the planner stops consuming pages as soon as it knows
enough, so the read stays one Query for a symbol in the stream's normal flow.

Late records. A record is late when items newer than it were enriched before it was stored
(a webhook-DLQ re-drive always is; so is a tick that an exchange delivers after a newer one
of another exchange). Those items hold indicators computed without it, and every EMA after
them continues from their stored values, so the error would never decay away. The planner
therefore recomputes the symbol's series from the batch's oldest record onwards and plans
a `Correction` for every enriched item whose stored indicators differ from the recomputed
ones:

- between the batch's records, every such item (they are read anyway as history);
- after the batch's newest record, item by item until one agrees exactly (to the stored
  decimal) once the windows no longer reach back to a batch record, or until an item not
  yet enriched (its own record, still to come, enriches it from the corrected history and
  walks on from there), or until `MAX_CORRECTED_ITEMS` items.

Why that stop is exact. SMA, volatility and change are functions of the last
`Windows.history_needed` + 1 prices, so `history_needed` items after the newest record they
equal what was stored. An EMA difference d at one item becomes d·(1-alpha)^k k items later
(alpha = 2/(n+1)); the floats become bit-identical after a few hundred items (measured: 330
to 550 for n = 26 on random walks), and from an item whose stored EMAs equal the recomputed
ones onwards, every later stored value equals its recomputation. If the limit stops the walk
first, what remains is below d·(1-2/27)^1000 ≈ d·3.8e-34 for the default windows.

The outcomes are `Record`s (functions.shared.records), immutable like the frozen dataclasses
they replace, whose exec()-generated methods cost the enricher's cold start ~8 ms for these six.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer

from functions.price_enricher.indicators import Windows, ema_step, to_stored, window_indicators
from functions.shared.price_table.ticks import CORRECTED_AT, CORRECTED_BY, ENRICHED_AT, is_indicator
from functions.shared.records import Record

_deserializer = TypeDeserializer()

MAX_CORRECTED_ITEMS = 1000
"""Items after a batch's newest record of a symbol that one walk compares (and may correct)."""
AFTER_PAGE_SIZES = (8, 64, 256)
"""Page sizes of the read of items after the batch, when the history read did not already
return them: the first item usually settles it (not yet enriched: the stream is only behind)."""

Pages = Iterable[tuple[list[dict[str, Any]], bool]]


class RecordError(Exception):
    """A stream record that cannot be enriched (reported in batchItemFailures)."""


class TickReader(Protocol):
    """The symbol's stored items (typed DynamoDB JSON), page by page: (items, last page?)."""

    def newest_first(self, symbol: str, newest: int | None, page_size: int) -> Pages:
        """Items at or before `newest` (None: from the newest item), newest first."""
        ...

    def oldest_first(self, symbol: str, after: int, page_sizes: Sequence[int], max_items: int) -> Pages:
        """Items after `after`, oldest first, at most `max_items`."""
        ...


class StreamItem(Record):
    """One INSERT record's new image, reduced to what enrichment needs."""

    __slots__ = ("sequence_number", "symbol", "timestamp", "price", "image", "stored_image")

    sequence_number: str
    symbol: str
    timestamp: int
    price: Decimal
    image: Mapping[str, Any]         # deserialized
    stored_image: Mapping[str, Any]  # the item as DynamoDB JSON

    def __init__(self, sequence_number: str, symbol: str, timestamp: int, price: Decimal, image: Mapping[str, Any],
                 stored_image: Mapping[str, Any]) -> None:
        self._init(sequence_number, symbol, timestamp, price, image, stored_image)


class Planned(Record):
    """A record to store with its indicators (its first enrichment).

    `basis`: the values the symbol's later items were computed from: `indicators`, or what
    the item already holds when it was enriched before (a retry keeps its first values).
    `out_of_range`: indicators left out because DynamoDB cannot store them.
    """

    __slots__ = ("item", "indicators", "basis", "out_of_range")

    item: StreamItem
    indicators: Mapping[str, Decimal]
    basis: Mapping[str, Decimal]
    out_of_range: tuple[str, ...]

    def __init__(self, item: StreamItem, indicators: Mapping[str, Decimal], basis: Mapping[str, Decimal],
                 out_of_range: tuple[str, ...] = ()) -> None:
        self._init(item, indicators, basis, out_of_range)


class Correction(Record):
    """An enriched item whose indicators a late record changed.

    `image`: the item as read (typed), the state the conditional write expects. `trigger`: the
    batch record just before it, whose late arrival made the difference; it is failed (and so
    retried) if this correction cannot be written or announced, and its key is stored as
    `corrected_by`. `write` is False when the item already holds these values from an earlier
    delivery of the same trigger (a retry): it is announced again, not written again.
    """

    __slots__ = ("trigger", "timestamp", "image", "indicators", "write", "out_of_range")

    trigger: StreamItem
    timestamp: int
    image: Mapping[str, Any]
    indicators: Mapping[str, Decimal]
    write: bool
    out_of_range: tuple[str, ...]

    def __init__(self, trigger: StreamItem, timestamp: int, image: Mapping[str, Any], indicators: Mapping[str, Decimal],
                 write: bool = True, out_of_range: tuple[str, ...] = ()) -> None:
        self._init(trigger, timestamp, image, indicators, write, out_of_range)

    @property
    def symbol(self) -> str:
        return self.trigger.symbol


class Failed(Record):
    """A record that failed: reported for Lambda to retry, then to dead-letter."""

    __slots__ = ("sequence_number", "reason")

    sequence_number: str
    reason: str

    def __init__(self, sequence_number: str, reason: str) -> None:
        self._init(sequence_number, reason)


class SymbolPlan(Record):
    """One symbol's outcomes. `stop` says why the walk after the batch ended: "none" (nothing
    newer is enriched), "agreed", "unenriched", "limit" (MAX_CORRECTED_ITEMS) or "end"."""

    __slots__ = ("planned", "corrections", "failed", "stop", "compared")

    planned: tuple[Planned, ...]
    corrections: tuple[Correction, ...]
    failed: tuple[Failed, ...]
    stop: str
    compared: int

    def __init__(self, planned: tuple[Planned, ...] = (), corrections: tuple[Correction, ...] = (),
                 failed: tuple[Failed, ...] = (), stop: str = "none", compared: int = 0) -> None:
        self._init(planned, corrections, failed, stop, compared)


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


class StoredRow(Record):
    """A stored item as the planner needs it; `price` None for an item that is not a price
    (reported when its own record came through, skipped here)."""

    __slots__ = ("timestamp", "price", "image", "indicators", "enriched_at", "corrected_by")

    timestamp: int
    price: float | None
    image: Mapping[str, Any]
    indicators: Mapping[str, Decimal]
    enriched_at: int | None
    corrected_by: int | None

    def __init__(self, timestamp: int, price: float | None, image: Mapping[str, Any], indicators: Mapping[str, Decimal],
                 enriched_at: int | None, corrected_by: int | None) -> None:
        self._init(timestamp, price, image, indicators, enriched_at, corrected_by)

    @property
    def enriched(self) -> bool:
        return self.enriched_at is not None


def _number(item: Mapping[str, Any], name: str) -> Decimal | None:
    value = item.get(name)
    if not isinstance(value, Mapping) or "N" not in value:
        return None
    try:
        number = Decimal(value["N"])
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def parse_row(item: Mapping[str, Any]) -> StoredRow:
    price = _number(item, "price")
    indicators = {name: value for name in item if is_indicator(name) and (value := _number(item, name)) is not None}
    enriched_at, corrected_by = _number(item, ENRICHED_AT), _number(item, CORRECTED_BY)
    return StoredRow(int(item["timestamp"]["N"]), float(price) if price is not None and price > 0 else None,
                     MappingProxyType(dict(item)), MappingProxyType(indicators),
                     None if enriched_at is None else int(enriched_at),
                     None if corrected_by is None else int(corrected_by))


def stored_values(row: StoredRow) -> dict[str, Any]:
    """What a stored row announces: its price, exchange and enrichment marks (plain values)."""
    return {name: _deserializer.deserialize(row.image[name])
            for name in ("price", "exchange", ENRICHED_AT, CORRECTED_AT) if name in row.image}


def _history_sufficient(rows: Mapping[int, StoredRow], oldest_batch: int, windows: Windows) -> bool:
    older = [row for ts, row in rows.items() if ts < oldest_batch and row.price is not None]
    if len(older) < windows.history_needed:
        return False
    return all(any(f"ema_{n}" in row.indicators for row in older) for n in windows.ema)


def history_page_size(batch_items: int, windows: Windows) -> int:
    """Items one history page should hold: the widest window, the batch's own items and one spare."""
    return windows.history_needed + batch_items + 1


class _Series:
    """The symbol's prices in order and the EMA state: the recomputation, one item at a time."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self.prices: list[float] = []
        self.ema: dict[int, float | None] = dict.fromkeys(windows.ema)

    def follow(self, price: float, stored: Mapping[str, Decimal], seed: bool) -> None:
        """An item before the batch: its stored EMAs are what later items continue from."""
        self.prices.append(price)
        for n in self.windows.ema:
            previous = self.ema[n]
            if f"ema_{n}" in stored:
                self.ema[n] = float(stored[f"ema_{n}"])
            elif previous is not None:
                self.ema[n] = ema_step(previous, price, n)
            elif seed:
                self.ema[n] = price

    def compute(self, price: float, seed: bool) -> tuple[dict[str, Decimal], tuple[str, ...]]:
        """The next item's indicators (storable Decimals) and the names left out of range."""
        self.prices.append(price)
        for n in self.windows.ema:
            previous = self.ema[n]
            if previous is not None:
                self.ema[n] = ema_step(previous, price, n)
            elif seed:
                self.ema[n] = price
        values = window_indicators(self.prices[-(self.windows.history_needed + 1):], self.windows)
        values.update({f"ema_{n}": state for n, state in self.ema.items() if state is not None})
        return to_stored(values)

    def adopt(self, stored: Mapping[str, Decimal]) -> None:
        """Continue from what an item holds rather than from its recomputation."""
        for n in self.windows.ema:
            if f"ema_{n}" in stored:
                self.ema[n] = float(stored[f"ema_{n}"])


def _configured(row: StoredRow, windows: Windows) -> dict[str, Decimal]:
    names = set(windows.names())
    return {name: value for name, value in row.indicators.items() if name in names}


def _frozen(values: Mapping[str, Decimal]) -> Mapping[str, Decimal]:
    return MappingProxyType(dict(values))


def plan_symbol(items: Sequence[StreamItem], reader: TickReader, windows: Windows,
                max_after: int = MAX_CORRECTED_ITEMS) -> SymbolPlan:
    """One symbol's outcomes; a failed read fails the symbol's records (they are retried)."""
    try:
        return _plan_symbol(items, reader, windows, max_after)
    except Exception as error:  # noqa: BLE001 - the symbol's records are reported and retried
        reason = f"history read failed: {type(error).__name__}: {error}"[:300]
        return SymbolPlan(failed=tuple(Failed(item.sequence_number, reason) for item in items))


def _read(items: Sequence[StreamItem], reader: TickReader, windows: Windows, max_after: int
          ) -> tuple[dict[int, StoredRow], bool, Iterator[StoredRow] | None]:
    """The rows the walk needs: (rows read newest first, whether they reach the symbol's first
    item, the rows after the batch still to read oldest first or None when already in the rows).

    From the top of the partition, so that in the normal flow one Query returns the history
    and shows that nothing newer exists. If its first page holds only items newer than the
    batch, the stream is behind (or many items follow a late record): the history is read
    at or before the batch's newest record instead, and the items after it oldest first,
    page by page, only as far as the walk goes.
    """
    symbol = items[0].symbol
    oldest = min(item.timestamp for item in items)
    newest = max(item.timestamp for item in items)
    page_size = history_page_size(len({item.timestamp for item in items}), windows)
    top = iter(reader.newest_first(symbol, None, page_size))
    first = next(top, ([], True))
    first_rows = [parse_row(raw) for raw in first[0]]
    after: Iterator[StoredRow] | None = None
    pages: Iterator[tuple[list[StoredRow], bool]]
    if first_rows and not first[1] and min(row.timestamp for row in first_rows) > newest:
        below = reader.newest_first(symbol, newest, page_size)
        pages = (([parse_row(raw) for raw in rows], last) for rows, last in below)
        after = (parse_row(raw) for rows, _ in reader.oldest_first(symbol, newest, AFTER_PAGE_SIZES, max_after)
                 for raw in rows)
    else:
        pages = itertools.chain([(first_rows, first[1])],
                                (([parse_row(raw) for raw in rows], last) for rows, last in top))
    rows: dict[int, StoredRow] = {}
    exhausted = False
    for page, last in pages:
        rows.update((row.timestamp, row) for row in page)
        exhausted = last
        if exhausted or _history_sufficient(rows, oldest, windows):
            break
    return rows, exhausted, after


def _plan_symbol(items: Sequence[StreamItem], reader: TickReader, windows: Windows, max_after: int) -> SymbolPlan:
    batch = {item.timestamp: item for item in items}
    oldest, newest = min(batch), max(batch)
    rows, exhausted, after = _read(items, reader, windows, max_after)

    series = _Series(windows)
    computed: dict[int, tuple[dict[str, Decimal], dict[str, Decimal], tuple[str, ...]]] = {}
    corrections: list[Correction] = []
    trigger: StreamItem | None = None
    timestamps = sorted({ts for ts, row in rows.items() if ts <= newest and row.price is not None} | set(batch))
    for index, ts in enumerate(timestamps):
        seed = exhausted and index == 0
        row, item = rows.get(ts), batch.get(ts)
        price = float(item.price) if item is not None else row.price if row is not None else None
        assert price is not None  # the timestamps hold batch items and priced rows only
        if ts < oldest:
            series.follow(price, row.indicators if row is not None else {}, seed)
            continue
        values, left_out = series.compute(price, seed)
        if item is not None:
            trigger = item
            basis = values
            if row is not None and row.enriched:  # enriched before (a retry): what it holds stands
                basis = _configured(row, windows)
                series.adopt(basis)
            computed[ts] = (values, basis, left_out)
        elif row is not None and row.enriched and trigger is not None:
            corrections += _compare(row, values, left_out, trigger, batch, windows)

    stop, compared = "none", 0
    later = after if after is not None else iter(rows[ts] for ts in sorted(rows) if ts > newest)
    assert trigger is not None
    for row in later:
        if row.price is None:
            continue
        if not row.enriched:
            stop = "unenriched"
            break
        compared += 1
        values, left_out = series.compute(row.price, False)
        found = _compare(row, values, left_out, trigger, batch, windows)
        corrections += found
        if not found and compared > windows.history_needed:
            stop = "agreed"
            break
        if compared >= max_after:
            stop = "limit"
            break
    else:
        stop = "end" if compared else "none"
    planned = tuple(Planned(item, _frozen(computed[item.timestamp][0]), _frozen(computed[item.timestamp][1]),
                            computed[item.timestamp][2]) for item in items)
    return SymbolPlan(planned, tuple(corrections), (), stop, compared)


def _compare(row: StoredRow, values: dict[str, Decimal], left_out: tuple[str, ...], trigger: StreamItem,
             batch: Mapping[int, StreamItem], windows: Windows) -> list[Correction]:
    """The correction an enriched row needs: none when it agrees, unless a previous delivery of
    this batch's record wrote it (then it is announced again)."""
    if values != _configured(row, windows):
        return [Correction(trigger, row.timestamp, row.image, _frozen(values), True, left_out)]
    if row.corrected_by is not None and row.corrected_by in batch:
        return [Correction(batch[row.corrected_by], row.timestamp, row.image, _frozen(values), False, left_out)]
    return []


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
