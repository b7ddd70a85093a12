"""Batch planning, free of I/O: stream records → per-series outcomes (immutable).

A series is (symbol, venue), the venue being the item's `exchange` (`items.VENUE`): each
venue's indicators are computed over that venue's own stored ticks only, since a venue's price
interleaved with another's is a number nobody traded and the basis between them would count
as a return. Records are grouped by symbol, then by venue; each series' indicators are
computed in timestamp order from the batch's own prices and the series' stored items, which
the caller supplies as iterables of pages (`TickReader`).

The read stays one Query per symbol in the stream's normal flow, all venues together (the
symbol's partition holds every venue in key order): its pages are split by venue, and read
on (bounded, `SHARED_HISTORY_ITEMS`) until every venue of the batch has its window. A venue
whose window lies further back (a venue much slower than the others) is then read alone, a
Query filtered on its venue below what was read; it pays for the other venues' items it
passes, as reading on would, but the response carries only its own. `ReadHints` remembers
each symbol's venue shares so that the first page usually suffices: with three venues a
series' window needs about three times the items of a single venue's.

Late records. A record is late when items of the SAME venue newer than it were enriched
before it was stored (a webhook-DLQ re-drive always is; so is a tick that a venue delivers
after a newer one of its own). Those items hold indicators computed without it, and every
EMA after them continues from their stored values, so the error would never decay away. The
planner therefore recomputes the series from the batch's oldest record of that venue onwards
and plans a `Correction` for every enriched item of that venue whose stored indicators differ
from the recomputed ones (another venue's items are never read as history, nor corrected):

- between the batch's records of the venue, every such item (read anyway as history);
- after the batch's newest record of the venue, item by item (of that venue) until one agrees exactly (to the stored
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
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol

from functions.price_enricher.indicators import Windows, ema_step, to_stored, window_indicators
from functions.shared.price_table.items import CORRECTED_AT, CORRECTED_BY, ENRICHED_AT, VENUE, is_indicator
from functions.shared.price_table.ticks import plain_item
from functions.shared.records import Record

MAX_CORRECTED_ITEMS = 1000
"""Items after a batch's newest record of a series that one walk compares (and may correct)."""
AFTER_PAGE_SIZES = (8, 64, 256)
"""Page sizes of the read of items after the batch, when the history read did not already
return them: the first item usually settles it (not yet enriched: the stream is only behind)."""

SHARED_HISTORY_ITEMS = 1024
"""Items (all venues) the symbol's shared history read takes at most; a venue whose window lies
further back is read alone, filtered (`TickReader.newest_first` with its venue)."""
SHARED_AFTER_ITEMS = 2 * MAX_CORRECTED_ITEMS
"""Items (all venues) the shared read after the batch takes at most, when the history read did
not return them; a venue whose walk goes on past it continues alone, filtered."""
VENUE_PAGE_SIZE = 1024
"""Items one filtered per-venue page reads (DynamoDB's Limit counts items read, not kept)."""
MAX_PAGE_SIZE = 1024

Pages = Iterable[tuple[list[dict[str, Any]], bool]]


class RecordError(Exception):
    """A stream record that cannot be enriched (reported in batchItemFailures)."""


class TickReader(Protocol):
    """The symbol's stored items (typed DynamoDB JSON), page by page: (items, last page?).
    `venue` None: every venue's items; else only that venue's (a filter: pages read
    `page_size` items of every venue and may return fewer)."""

    def newest_first(self, symbol: str, newest: int | None, page_size: int, venue: str | None = None) -> Pages:
        """Items at or before `newest` (None: from the newest item), newest first."""
        ...

    def oldest_first(self, symbol: str, after: int, page_sizes: Sequence[int], max_items: int,
                     venue: str | None = None) -> Pages:
        """Items after `after`, oldest first, at most `max_items` (returned)."""
        ...


class StreamItem(Record):
    """One INSERT record's new image, reduced to what enrichment needs."""

    __slots__ = ("sequence_number", "symbol", "timestamp", "price", "image", "stored_image", "venue")

    sequence_number: str
    symbol: str
    timestamp: int
    price: Decimal
    image: Mapping[str, Any]         # deserialized
    stored_image: Mapping[str, Any]  # the item as DynamoDB JSON
    venue: str                       # the item's `exchange` ("" when it has none)

    def __init__(self, sequence_number: str, symbol: str, timestamp: int, price: Decimal, image: Mapping[str, Any],
                 stored_image: Mapping[str, Any], venue: str = "") -> None:
        self._init(sequence_number, symbol, timestamp, price, image, stored_image, venue)


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

    @property
    def venue(self) -> str:
        return self.trigger.venue


class Failed(Record):
    """A record that failed: reported for Lambda to retry, then to dead-letter."""

    __slots__ = ("sequence_number", "reason")

    sequence_number: str
    reason: str

    def __init__(self, sequence_number: str, reason: str) -> None:
        self._init(sequence_number, reason)


class SymbolPlan(Record):
    """One series' outcomes (a symbol's, for one venue). `stop` says why the walk after the batch ended: "none" (nothing
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
        plain = plain_item(image)
        price = Decimal(plain["price"])
        if not price.is_finite() or price <= 0:
            raise ValueError("price must be positive")
        return StreamItem(sequence, str(plain["symbol"]), int(plain["timestamp"]), price,
                          MappingProxyType(plain), MappingProxyType(dict(image)), str(plain.get(VENUE, "")))
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise RecordError(f"unparsable item: {type(error).__name__}: {error}") from None


class StoredRow(Record):
    """A stored item as the planner needs it; `price` None for an item that is not a price
    (reported when its own record came through, skipped here)."""

    __slots__ = ("timestamp", "price", "image", "indicators", "enriched_at", "corrected_by", "venue")

    timestamp: int
    price: float | None
    image: Mapping[str, Any]
    indicators: Mapping[str, Decimal]
    enriched_at: int | None
    corrected_by: int | None
    venue: str

    def __init__(self, timestamp: int, price: float | None, image: Mapping[str, Any], indicators: Mapping[str, Decimal],
                 enriched_at: int | None, corrected_by: int | None, venue: str = "") -> None:
        self._init(timestamp, price, image, indicators, enriched_at, corrected_by, venue)

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
    venue = item.get(VENUE)
    return StoredRow(int(item["timestamp"]["N"]), float(price) if price is not None and price > 0 else None,
                     MappingProxyType(dict(item)), MappingProxyType(indicators),
                     None if enriched_at is None else int(enriched_at),
                     None if corrected_by is None else int(corrected_by),
                     venue["S"] if isinstance(venue, Mapping) and "S" in venue else "")


def stored_values(row: StoredRow) -> dict[str, Any]:
    """What a stored row announces: its price, exchange and enrichment marks (plain values)."""
    return plain_item({name: row.image[name] for name in ("price", VENUE, ENRICHED_AT, CORRECTED_AT)
                       if name in row.image})


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


class ReadHints:
    """What a warm enricher remembers of each symbol: its venues' shares of the items its last
    history read took. They size the next read's first page so that it holds every venue's
    window (a series' window spans its venue's share of the symbol's items): a wrong hint costs
    a page more or a few items, never a value. Without one, a symbol is assumed to have
    COLD_VENUES venues (the relay's exchanges), so that its first batch also reads one page."""

    COLD_VENUES = 3
    MARGIN = 1.2          # the venues' cadences vary from one window to the next
    MAX_SYMBOLS = 10_000  # a bound on the warm process's memory: forgotten all at once

    def __init__(self) -> None:
        self._shares: dict[tuple[str, str], dict[str, float]] = {}

    def page_size(self, scope: str, symbol: str, batch: Mapping[str, int], windows: Windows) -> int:
        """The first page for `batch` (venue → its records in the batch): enough items of all
        venues that each batch venue's share holds its records and its window."""
        shares = self._shares.get((scope, symbol))
        known = set(shares or ()) | set(batch)
        default = 1 / (len(known) if shares else max(len(known), self.COLD_VENUES))
        total = sum(batch.values())
        wanted = 0.0
        for venue, count in batch.items():
            share = max((shares or {}).get(venue, default), default / 4)
            # a venue alone needs no margin: its window is exactly its items
            wanted = max(wanted, (windows.history_needed + 1 + count) / share * (self.MARGIN if share < 1 else 1))
        size = math.ceil(wanted) + 1
        return max(history_page_size(total, windows), min(size, MAX_PAGE_SIZE))

    def learn(self, scope: str, symbol: str, counts: Mapping[str, int]) -> None:
        total = sum(counts.values())
        if not total:
            return
        if len(self._shares) >= self.MAX_SYMBOLS:
            self._shares.clear()
        self._shares[(scope, symbol)] = {venue: count / total for venue, count in counts.items()}


def plan_symbol(items: Sequence[StreamItem], reader: TickReader, windows: Windows,
                max_after: int = MAX_CORRECTED_ITEMS, hints: ReadHints | None = None, scope: str = ""
                ) -> dict[str, SymbolPlan]:
    """One symbol's outcomes, by venue (each venue is a series); a failed read fails the
    symbol's records (they are retried). `hints` (and its `scope`, the table) size the read."""
    by_venue: dict[str, list[StreamItem]] = defaultdict(list)
    for item in items:
        by_venue[item.venue].append(item)
    try:
        histories = _read_symbol(by_venue, reader, windows, max_after, hints or ReadHints(), scope)
        return {venue: _plan_series(by_venue[venue], *histories[venue], windows, max_after) for venue in by_venue}
    except Exception as error:  # noqa: BLE001 - the symbol's records are reported and retried
        reason = f"history read failed: {type(error).__name__}: {error}"[:300]
        return {venue: SymbolPlan(failed=tuple(Failed(item.sequence_number, reason) for item in venue_items))
                for venue, venue_items in by_venue.items()}


class _SharedAfter:
    """The symbol's items after the batch, oldest first, one shared Query split by venue: each
    venue's walk takes its own rows, and the pages are read only as far as some walk goes. Past
    SHARED_AFTER_ITEMS, a venue whose walk goes on continues alone (filtered on its venue)."""

    def __init__(self, reader: TickReader, symbol: str, after: int, max_after: int) -> None:
        self.reader, self.symbol, self.max_after = reader, symbol, max_after
        self.pages = iter(reader.oldest_first(symbol, after, AFTER_PAGE_SIZES, SHARED_AFTER_ITEMS))
        self.buffers: dict[str, deque[StoredRow]] = defaultdict(deque)
        self.last_key, self.ended, self.complete = after, False, False

    def _pull(self) -> None:
        page = next(self.pages, None)
        if page is None:
            self.ended = True
            return
        for raw in page[0]:
            row = parse_row(raw)
            self.buffers[row.venue].append(row)
            self.last_key = row.timestamp
        if page[1]:
            self.ended = self.complete = True

    def rows(self, venue: str) -> Iterator[StoredRow]:
        buffer = self.buffers[venue]
        while True:
            while buffer:
                yield buffer.popleft()
            if self.ended:
                break
            self._pull()
        if not self.complete:
            for page, _ in self.reader.oldest_first(self.symbol, self.last_key, (VENUE_PAGE_SIZE,), self.max_after,
                                                    venue):
                yield from (parse_row(raw) for raw in page)


History = tuple[dict[int, StoredRow], bool, Iterator[StoredRow]]


def _read_symbol(by_venue: Mapping[str, Sequence[StreamItem]], reader: TickReader, windows: Windows,
                 max_after: int, hints: ReadHints, scope: str) -> dict[str, History]:
    """Each batch venue's rows: (its rows read, newest first; whether they reach its first item;
    its rows after its batch records, oldest first, read lazily as its walk goes).

    From the top of the partition, all venues, so that in the normal flow one Query returns
    every venue's history and shows that nothing newer exists. If its first page holds only
    items newer than the batch, the stream is behind (or many items follow a late record): the
    history is read at or before the batch's newest record instead, and the items after it
    oldest first (`_SharedAfter`), page by page, only as far as the walks go. The shared read
    stops once every batch venue has its window, at SHARED_HISTORY_ITEMS, or at the partition's
    first item; a venue still short of its window is then read alone, filtered, below it.
    """
    symbol = next(iter(by_venue.values()))[0].symbol
    oldest = {venue: min(item.timestamp for item in items) for venue, items in by_venue.items()}
    newest_of = {venue: max(item.timestamp for item in items) for venue, items in by_venue.items()}
    newest = max(newest_of.values())
    page_size = hints.page_size(scope, symbol, {venue: len({item.timestamp for item in items})
                                                for venue, items in by_venue.items()}, windows)
    top = iter(reader.newest_first(symbol, None, page_size))
    first_items, first_last = next(top, ([], True))
    first_rows = [parse_row(raw) for raw in first_items]
    shared_after: _SharedAfter | None = None
    pages: Iterator[tuple[list[StoredRow], bool]]
    if first_rows and not first_last and min(row.timestamp for row in first_rows) > newest:
        below = reader.newest_first(symbol, newest, page_size)
        pages = (([parse_row(raw) for raw in rows], last) for rows, last in below)
        shared_after = _SharedAfter(reader, symbol, newest, max_after)
    else:
        pages = itertools.chain([(first_rows, first_last)],
                                (([parse_row(raw) for raw in rows], last) for rows, last in top))
    rows: dict[str, dict[int, StoredRow]] = {venue: {} for venue in by_venue}
    counts: dict[str, int] = defaultdict(int)
    read, exhausted, lowest = 0, False, newest

    def short() -> list[str]:
        return [venue for venue in by_venue if not _history_sufficient(rows[venue], oldest[venue], windows)]

    for page, last in pages:
        for row in page:
            counts[row.venue] += 1
            lowest = min(lowest, row.timestamp)
            if row.venue in rows:
                rows[row.venue][row.timestamp] = row
        read += len(page)
        exhausted = last
        if exhausted or not short() or read >= SHARED_HISTORY_ITEMS:
            break
    hints.learn(scope, symbol, counts)
    histories: dict[str, History] = {}
    missing = set() if exhausted else set(short())
    for venue in by_venue:
        venue_exhausted = exhausted
        if venue in missing:
            for page_items, last in reader.newest_first(symbol, lowest - 1, VENUE_PAGE_SIZE, venue):
                rows[venue].update((row.timestamp, row) for row in map(parse_row, page_items))
                venue_exhausted = last
                if last or _history_sufficient(rows[venue], oldest[venue], windows):
                    break
        later = [rows[venue][ts] for ts in sorted(rows[venue]) if ts > newest_of[venue]]
        tail = shared_after.rows(venue) if shared_after is not None else iter(())
        histories[venue] = (rows[venue], venue_exhausted, itertools.chain(later, tail))
    return histories


def _plan_series(items: Sequence[StreamItem], rows: Mapping[int, StoredRow], exhausted: bool,
                 later: Iterator[StoredRow], windows: Windows, max_after: int) -> SymbolPlan:
    """One series' outcomes from its rows (`_read_symbol`): the batch's records in key order,
    from the history before them, then the walk over its later rows."""
    batch = {item.timestamp: item for item in items}
    oldest, newest = min(batch), max(batch)

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
            basis = values
            if row is not None and row.enriched:  # enriched before (a retry): what it holds stands ...
                basis = _configured(row, windows)
                found = _compare(row, values, left_out, trigger, batch, windows) if trigger is not None else []
                corrections += found
                if not any(entry.write for entry in found):
                    series.adopt(basis)
                # ... unless an earlier record of this batch came late: then it is corrected like a
                # later item (its put keeps its first values; the correction replaces them)
            trigger = item
            computed[ts] = (values, basis, left_out)
        elif row is not None and row.enriched and trigger is not None:
            corrections += _compare(row, values, left_out, trigger, batch, windows)

    stop, compared = "none", 0
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
