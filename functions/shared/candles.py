"""Candles: open/high/low/close and tick count per UTC epoch-aligned interval, in exact
decimals, and the pure planner of their maintenance (no AWS here; the storage is
`functions.shared.price_table.candles`).

The contract (issue 13): for each interval size (1m, 5m, 15m, 1h, 4h, 1d) a bucket is
[start, start + size) with `start` a multiple of the size since the epoch (UTC). Its candle
is open = price of its first tick in the stored key order (event ms x 1000 + slot, so ties
within a millisecond keep their key order), close = its last, high, low, and count; empty
buckets have no candle. That is pandas `resample(rule, label="left", closed="left").ohlc()`
(and `.count()`) over the symbol's ticks ordered by key.

Venues (the symbol's ticks carry their venue, the `exchange` attribute): each bucket's
candle is the composite (see `composite_values`: the median of the fresh venues' current
prices at each tick; count and volume of every venue's ticks) with each venue's own candle
in `Candle.venues`. A 1m recompute reads the minutes' ticks once, from STALE_MS before them
(which venues are fresh at the first ticks), and builds every series; coarse candles combine
per series. That is pandas' ohlc/count/sum per venue over that venue's ticks.

Why a watermark and prefixes. Candles are materialized as the stream flows, so that a
request reads in proportion to its answer. Per symbol one registry record holds:

- the watermark W (epoch ms, minute-aligned): every candle of every interval whose end is
  <= W is stored, computed from every tick stored with event time < W;
- for each coarse interval L, the *prefix* of its still-forming bucket: the candle of the
  ticks in [bucket_start(W, L), W) (None when there are none).

A reader then needs three requests whatever the interval: the registry record, the stored
candles before the forming bucket, and the ticks at or after W (the forming bucket is
prefix + those ticks). Without the prefixes the forming 1d candle would need one request
per finer level (4h, 1h, 15m, 5m, 1m) and could not meet the read bound.

Why recompute, never increment. A candle is always recomputed from stored ticks (1m) or
from the candles tiling its range (coarser levels), so a retried or redelivered batch, a
DLQ re-drive or a second writer produces the same value again instead of counting a tick
twice. `combine` is exact and associative: open of the earliest part, close of the latest,
max, min, sum of counts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from functions.shared.composite import EXACT, STALE_MS, median
from functions.shared.price_table.keys import event_ms

MINUTE_MS = 60_000
# Fine to coarse; each size divides the next and a day, so every bucket is epoch- and day-aligned.
INTERVALS: dict[str, int] = {
    "1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS,
    "1h": 60 * MINUTE_MS, "4h": 240 * MINUTE_MS, "1d": 1440 * MINUTE_MS,
}
CHILD: dict[str, str] = {"5m": "1m", "15m": "5m", "1h": "15m", "4h": "1h", "1d": "4h"}
PARENT: dict[str, str] = {child: parent for parent, child in CHILD.items()}
COARSE: tuple[str, ...] = tuple(name for name in INTERVALS if name != "1m")
# A stored tick as candle maintenance reads it: (sort key, price, venue, volume or None,
# expires_at in epoch seconds or None).
Tick = tuple[int, Decimal, str, Decimal | None, int | None]


def bucket_start(ms: int, interval_ms: int) -> int:
    """Start of the bucket holding `ms` (floor to a multiple of the size; epoch-aligned, UTC)."""
    return ms - ms % interval_ms


def bucket_ceil(ms: int, interval_ms: int) -> int:
    """First bucket start >= ms: where candles "whose start is in [ms, ...)" begin."""
    return -(-ms // interval_ms) * interval_ms


@dataclass(frozen=True)
class Candle:
    """One bucket's OHLCV; `start` is the bucket's start in epoch ms.

    `volume`: the exact sum of its ticks' `volume` (traded base quantity since the venue's
    previous tick); `volume_count`: how many of its ticks carried one, so a partial sum shows.

    `expires` (1m candles computed from ticks with a retention): the earliest `expires_at`
    (epoch seconds) of the ticks its values depend on (its own, and for the composite the
    STALE_MS before it). While it is ahead of now, every such tick is still stored, so
    recomputing the minute from the stored ticks cannot lose one
    (`price_table.candles._still_whole`). Not part of a candle's value (not compared).

    `venues` (a stored bucket): the candle is the composite and these are each venue's own
    candle of the bucket, sorted by venue. Compared separately (`venue_candle`), not in
    `==`, so a composite equals its value whoever computed the venues.
    """

    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    count: int
    expires: int | None = field(default=None, compare=False)
    volume: Decimal = Decimal(0)
    volume_count: int = 0
    venues: tuple[tuple[str, Candle], ...] = field(default=(), compare=False, repr=False)

    def venue_candle(self, venue: str | None) -> Candle | None:
        """The composite alone (venue None), or that venue's candle (None if it has no tick here)."""
        if venue is None:
            return replace(self, venues=(), expires=None)
        return dict(self.venues).get(venue)

    def venue_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.venues)


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = EXACT.add(total, value)
    return total


def aggregate(ticks: Sequence[tuple[int, Decimal] | tuple[int, Decimal, Decimal | None]], start: int,
              expires: int | None = None) -> Candle | None:
    """The candle of (sort key, price[, volume]) ticks of one bucket starting at `start`; None
    if empty.

    Sorted by key here (stable), so open/close follow the stored key order even if the
    caller's order is not; the keys of a symbol's ticks are unique. `expires`: see `Candle`.
    """
    if not ticks:
        return None
    ordered = sorted(ticks, key=lambda tick: tick[0])
    prices: list[Decimal] = [tick[1] for tick in ordered]
    volumes: list[Decimal] = []
    for tick in ordered:
        volume = tick[2] if len(tick) > 2 else None
        if isinstance(volume, Decimal):
            volumes.append(volume)
    return Candle(start, prices[0], max(prices), min(prices), prices[-1], len(prices), expires,
                  _sum(volumes), len(volumes))


def combine(children: Sequence[Candle], start: int | None = None) -> Candle:
    """The candle of consecutive, disjoint parts (children, or a prefix and minutes).

    Exact: open of the earliest part, close of the latest, max of highs, min of lows, sums
    of counts and volumes; each venue's candle combines that venue's parts the same way
    (the composite's parts combine as the composite: its path is one series). `start` is
    the bucket's start (default: the earliest part's), since its first minutes may be empty.
    """
    if not children:
        raise ValueError("combine needs at least one candle")
    ordered = sorted(children, key=lambda candle: candle.start)
    first = ordered[0].start if start is None else start
    by_venue: dict[str, list[Candle]] = {}
    for candle in ordered:
        for name, part in candle.venues:
            by_venue.setdefault(name, []).append(part)
    return Candle(
        first, ordered[0].open,
        max(candle.high for candle in ordered), min(candle.low for candle in ordered),
        ordered[-1].close, sum(candle.count for candle in ordered), None,
        _sum(candle.volume for candle in ordered), sum(candle.volume_count for candle in ordered),
        tuple((name, combine(parts, first)) for name, parts in sorted(by_venue.items())),
    )


def composite_values(ticks: Sequence[Tick]) -> list[Decimal]:
    """The composite path at each of `ticks` (sorted by key): each tick sets its venue's
    current price, and the value is the median of the current prices of the venues whose
    last tick is at most STALE_MS older than this tick (the ticking venue always counts);
    an even number of venues gives the mean of the two middle prices, exact.

    Why a median of fresh venues: with three or more venues one bad feed cannot move it
    outside the good venues' prices; staleness judged at tick times keeps the path a pure
    function of the stored ticks (a recompute gives the same value)."""
    current: dict[str, tuple[int, Decimal]] = {}
    values = []
    for key, price, venue, _, _ in ticks:
        moment = event_ms(key)
        current[venue] = (moment, price)
        values.append(median([value for seen, value in current.values() if moment - seen <= STALE_MS]))
    return values


def bucket_candles(ticks: Sequence[Tick], first: int, size: int = MINUTE_MS,
                   with_expiry: bool = False) -> dict[int, Candle]:
    """The candles (composite with every venue's) of the buckets of `size` at or after
    `first` that hold ticks.

    `ticks`: every stored tick of the symbol from `first` - STALE_MS on (the composite's
    carry-in: which venues are fresh at the first ticks), any order. `with_expiry`: each
    candle's `expires` is the earliest expiry of the ticks from its start - STALE_MS to its
    end, everything its values depend on."""
    ordered = sorted(ticks, key=lambda tick: tick[0])
    values = composite_values(ordered)
    groups: dict[int, list[int]] = {}
    for index, tick in enumerate(ordered):
        moment = event_ms(tick[0])
        if moment >= first:
            groups.setdefault(bucket_start(moment, size), []).append(index)
    moments = [event_ms(tick[0]) for tick in ordered]
    candles: dict[int, Candle] = {}
    for start, indexes in groups.items():
        expires = None
        if with_expiry:
            low, high = bisect_left(moments, start - STALE_MS), bisect_left(moments, start + size)
            known = [tick[4] for tick in ordered[low:high] if tick[4] is not None]
            expires = min(known) if known else None
        path = [values[index] for index in indexes]
        members = [ordered[index] for index in indexes]
        by_venue: dict[str, list[tuple[int, Decimal, Decimal | None]]] = {}
        for key, price, venue, volume, _ in members:
            by_venue.setdefault(venue, []).append((key, price, volume))
        volumes = [tick[3] for tick in members if tick[3] is not None]
        venue_candles = tuple((name, candle) for name, group in sorted(by_venue.items())
                              if (candle := aggregate(group, start)) is not None)
        candles[start] = Candle(start, path[0], max(path), min(path), path[-1], len(members), expires,
                                _sum(volumes), len(volumes), venue_candles)
    return candles


def _minute(ms: int) -> int:
    return bucket_start(ms, MINUTE_MS)


def _any_between(sorted_values: Sequence[int], low: int, high: int) -> bool:
    """Whether some value v satisfies low <= v < high."""
    index = bisect_left(sorted_values, low)
    return index < len(sorted_values) and sorted_values[index] < high


@dataclass(frozen=True)
class Plan:
    """What one maintenance step recomputes, decided from the watermark and the batch's keys.

    - `previous_watermark`: W read from the registry (None: a new symbol).
    - `base`: the W this step builds on (the previous one, or for a new symbol the minute
      of its oldest batch tick).
    - `watermark`: W after this step = max(base, minute of the newest batch tick).
    - `late_minutes`: minutes < base holding a batch tick (late ticks, redeliveries, DLQ
      re-drives): their 1m candles are recomputed from ticks.
    - `closing`: [start, end) of the minutes that close in this step, recomputed from ticks.
    - `skipped_minutes`: late minutes older than the retention horizon, not recomputed
      (their other ticks may have expired; their candles are kept as they are), unless the
      store step finds them whole (`recompute_skipped`).

    The minutes that close are never clamped to the horizon: they were forming, so nothing
    of them is stored but their ticks, and skipping them would drop those ticks from every
    candle. A tick expires no sooner than its own minute + the retention, and the candle
    sweep (`price_table.candles.sweep`) closes a quiet symbol's forming minutes within about
    two hours, so their ticks are all still there.
    """

    previous_watermark: int | None
    base: int | None
    watermark: int | None
    late_minutes: tuple[int, ...] = ()
    closing: tuple[int, int] | None = None
    skipped_minutes: tuple[int, ...] = ()

    @property
    def advanced(self) -> bool:
        """Whether W moves (a new symbol's first step counts: its registry record is created)."""
        return self.watermark != self.previous_watermark

    @property
    def has_work(self) -> bool:
        return self.advanced or bool(self.late_minutes)

    def is_recomputed(self, minute: int) -> bool:
        """Whether the 1m candle of `minute` is recomputed from ticks in this step."""
        if self.closing is not None and self.closing[0] <= minute < self.closing[1]:
            return True
        index = bisect_left(self.late_minutes, minute)
        return index < len(self.late_minutes) and self.late_minutes[index] == minute

    def minute_ranges(self) -> tuple[tuple[int, int], ...]:
        """The recomputed minutes as disjoint, sorted [start, end) ranges: one tick Query each."""
        runs: list[list[int]] = []
        for minute in self.late_minutes:
            if runs and runs[-1][1] == minute:
                runs[-1][1] = minute + MINUTE_MS
            else:
                runs.append([minute, minute + MINUTE_MS])
        if self.closing is not None:
            if runs and runs[-1][1] == self.closing[0]:
                runs[-1][1] = self.closing[1]
            else:
                runs.append(list(self.closing))
        return tuple((start, end) for start, end in runs)

    def recompute_ranges(self, interval: str) -> tuple[tuple[int, int], ...]:
        """Closed buckets (end <= watermark) of `interval` that contain a recomputed minute,
        as disjoint [first start, last start + size) ranges. For 1m: `minute_ranges`.

        A bucket that closes in this step contains a closing minute, so "just closed"
        buckets are included; buckets wholly inside `closing` whose minutes turn out empty
        are not written (empty candles are omitted).
        """
        if self.watermark is None:
            return ()
        size = INTERVALS[interval]
        forming = bucket_start(self.watermark, size)
        ranges: list[list[int]] = []
        for start, end in self.minute_ranges():
            low, high = bucket_start(start, size), min(bucket_start(end - 1, size) + size, forming)
            if low >= high:
                continue
            if ranges and ranges[-1][1] >= low:
                ranges[-1][1] = max(ranges[-1][1], high)
            else:
                ranges.append([low, high])
        return tuple((low, high) for low, high in ranges)

    def prefix_intervals(self) -> tuple[str, ...]:
        """Coarse intervals whose forming-bucket prefix changes: all when W moves, else those
        whose forming bucket [bucket_start(W), W) holds a late minute."""
        if self.watermark is None:
            return ()
        if self.advanced:
            return COARSE
        return tuple(name for name in COARSE
                     if _any_between(self.late_minutes, bucket_start(self.watermark, INTERVALS[name]),
                                     self.watermark))

    def old_buckets(self, interval: str) -> tuple[int, ...]:
        """Starts of the closed coarse buckets recomputed here that begin before `base`
        (so they need stored candles or the old prefix): the buckets of late minutes, and
        the bucket that was forming at `base` if it closes now."""
        if self.watermark is None or self.base is None or self.previous_watermark is None:
            return ()
        size = INTERVALS[interval]
        forming = bucket_start(self.watermark, size)
        starts = {bucket_start(minute, size) for minute in self.late_minutes}
        straddling = bucket_start(self.base, size)
        if self.closing is not None and straddling < self.base and self.closing[0] < straddling + size:
            starts.add(straddling)
        return tuple(sorted(start for start in starts if start < forming and start < self.base))

    def keep_late(self, minutes: Iterable[int]) -> Plan:
        """The same step with only some of its late minutes (the rest are known unchanged)."""
        kept = set(minutes)
        return replace(self, late_minutes=tuple(m for m in self.late_minutes if m in kept))

    def recompute_skipped(self, minutes: Iterable[int]) -> Plan:
        """The same step with these skipped minutes recomputed after all: minutes older than the
        horizon that the store step found whole (no candle yet, or every tick its candle counted
        still stored), where a computation from the stored ticks can only add to the candles."""
        chosen = set(minutes) & set(self.skipped_minutes)
        return replace(self, late_minutes=tuple(sorted(set(self.late_minutes) | chosen)),
                       skipped_minutes=tuple(m for m in self.skipped_minutes if m not in chosen))


def plan_maintenance(watermark: int | None, tick_keys: Iterable[int],
                     oldest_recomputable_ms: int | None = None, now_ms: int | None = None,
                     close_until_ms: int | None = None) -> Plan:
    """Plan one symbol's step for a batch of stored ticks (their sort keys; duplicates allowed).

    The stream delivers a symbol's ticks in order, so normally every batch tick is >= W and
    the minutes before the newest tick's minute close: [W, minute(newest)). A tick < W is
    late (or redelivered): its minute is recomputed, and the minutes up to the one STALE_MS
    later (the composite's carry-in), with every closed coarse bucket and forming prefix
    holding them. A new symbol starts at the minute of its oldest batch tick.
    `oldest_recomputable_ms` (the ticks' retention horizon, if they get a TTL) keeps the
    step away from late minutes whose ticks may have expired: a stored candle is never
    recomputed from a partial set of ticks, so such late ticks are left out (reported in
    `skipped_minutes`; the store step recomputes those it finds whole: no candle yet, as in a
    backfill of history, or every tick the candle counted still stored).
    `now_ms` (the caller's clock) keeps W at or before the current minute: the webhook takes
    ticks dated up to a day ahead, and such a tick must not close minutes that have not
    happened (every tick of the real present would then be late, and costly).
    `close_until_ms` (the sweep of quiet symbols) closes every minute before its minute even
    without a tick after them; a symbol without a watermark has nothing to close.
    """
    keys = sorted({int(key) for key in tick_keys})
    if not keys and (close_until_ms is None or watermark is None):
        return Plan(watermark, watermark, watermark)
    horizon = None if oldest_recomputable_ms is None else bucket_ceil(oldest_recomputable_ms, MINUTE_MS)
    if keys:
        oldest, newest = _minute(event_ms(keys[0])), _minute(event_ms(keys[-1]))
    else:
        assert watermark is not None
        oldest = newest = watermark
    if close_until_ms is not None:
        newest = max(newest, _minute(close_until_ms))
    if now_ms is not None:
        oldest, newest = min(oldest, _minute(now_ms)), min(newest, _minute(now_ms))
    base = oldest if watermark is None else watermark
    new_watermark = max(base, newest)
    # A late tick changes its own minute and, through the composite's carry-in, every minute
    # up to the one STALE_MS after it (the closing ones are recomputed anyway).
    late = sorted({minute for key in keys if (moment := event_ms(key)) < base
                   for minute in range(_minute(moment), min(_minute(moment + STALE_MS) + MINUTE_MS, base),
                                       MINUTE_MS)})
    kept = tuple(m for m in late if horizon is None or m >= horizon)
    skipped = tuple(m for m in late if horizon is not None and m < horizon)
    closing = (base, new_watermark) if base < new_watermark else None
    return Plan(watermark, base, new_watermark, kept, closing, skipped)


# A piece of a span: ("prefix", interval, 0) | ("minute", "1m", start) | ("stored", interval, start).
Piece = tuple[str, str, int]


def _tiles(start: int, end: int) -> list[tuple[str, int]]:
    """[start, end) (minute-aligned) as the coarsest aligned buckets, left to right."""
    tiles, position = [], start
    while position < end:
        for name in reversed(INTERVALS):
            size = INTERVALS[name]
            if position % size == 0 and position + size <= end:
                tiles.append((name, position))
                position += size
                break
    return tiles


def _expand(plan: Plan, name: str, start: int, pieces: list[Piece]) -> None:
    size = INTERVALS[name]
    if name == "1m":
        pieces.append(("minute" if start in plan.late_minutes else "stored", "1m", start))
    elif _any_between(plan.late_minutes, start, start + size):
        child = CHILD[name]
        for child_start in range(start, start + size, INTERVALS[child]):
            _expand(plan, child, child_start, pieces)
    else:
        pieces.append(("stored", name, start))


def _old_pieces(plan: Plan, start: int, end: int) -> list[Piece]:
    """[start, end) before `base`, as pieces whose values exist before this step: the old
    prefix when it covers exactly this range and no late minute changed it, else stored
    candles tiling the range, split down to the recomputed late minutes."""
    if plan.previous_watermark is None or plan.base is None or start >= end:
        return []  # a new symbol has nothing stored before its first minute
    if end == plan.base and not _any_between(plan.late_minutes, start, end):
        for name in COARSE:
            if bucket_start(plan.base, INTERVALS[name]) == start:
                return [("prefix", name, 0)]
    pieces: list[Piece] = []
    for name, tile_start in _tiles(start, end):
        _expand(plan, name, tile_start, pieces)
    return pieces


def _spans(plan: Plan) -> list[tuple[str, str, int, int]]:
    """Every span whose value depends on what existed before this step: ("bucket" | "prefix",
    interval, start, end)."""
    spans = []
    for name in COARSE:
        size = INTERVALS[name]
        spans += [("bucket", name, start, start + size) for start in plan.old_buckets(name)]
    if plan.watermark is not None and plan.base is not None:
        for name in plan.prefix_intervals():
            forming = bucket_start(plan.watermark, INTERVALS[name])
            if forming < plan.base:
                spans.append(("prefix", name, forming, plan.watermark))
    return spans


def stored_needed(plan: Plan) -> dict[str, tuple[int, ...]]:
    """Stored candles (interval -> bucket starts) that `materialize` needs: none in the
    stream's normal flow (the old prefix covers the bucket that closes), a few around late
    minutes."""
    needed: dict[str, set[int]] = {}
    for _, _, start, end in _spans(plan):
        assert plan.base is not None
        for kind, name, piece_start in _old_pieces(plan, start, min(end, plan.base)):
            if kind == "stored":
                needed.setdefault(name, set()).add(piece_start)
    return {name: tuple(sorted(starts)) for name, starts in needed.items()}


@dataclass(frozen=True)
class Materialized:
    """The candles a step writes ((interval, candle), fine to coarse) and the new prefixes."""

    candles: tuple[tuple[str, Candle], ...]
    prefixes: Mapping[str, Candle | None]


class _Evaluator:
    def __init__(self, plan: Plan, prefixes: Mapping[str, Candle | None], minutes: Mapping[int, Candle],
                 stored: Mapping[tuple[str, int], Candle]) -> None:
        self.plan, self.prefixes, self.stored = plan, prefixes, stored
        self.minutes = {start: candle for start, candle in minutes.items() if plan.is_recomputed(start)}
        base = plan.base if plan.base is not None else 0
        self.new_starts = sorted(start for start in self.minutes if start >= base)

    def piece(self, kind: str, name: str, start: int) -> Candle | None:
        if kind == "prefix":
            return self.prefixes.get(name)
        if kind == "minute":
            return self.minutes.get(start)
        return self.stored.get((name, start))

    def span(self, start: int, end: int) -> Candle | None:
        """The candle of every tick in [start, end): old pieces before `base`, recomputed
        minutes after it."""
        base = self.plan.base if self.plan.base is not None else start
        parts = [self.piece(*piece) for piece in _old_pieces(self.plan, start, min(end, base))]
        low = bisect_left(self.new_starts, max(start, base))
        high = bisect_left(self.new_starts, end)
        parts += [self.minutes[minute] for minute in self.new_starts[low:high]]
        present = [part for part in parts if part is not None]
        return combine(present, start) if present else None


def materialize(plan: Plan, prefixes: Mapping[str, Candle | None], minutes: Mapping[int, Candle],
                stored: Mapping[tuple[str, int], Candle]) -> Materialized:
    """Every candle the step writes and the new prefixes, from the recomputed 1m candles
    (`minutes`: start -> candle, non-empty ones), the registry's old prefixes, and the
    stored candles `stored_needed` asked for ((interval, start) -> candle; absent = empty).

    Coarse candles are combined straight from 1m candles after `base` (exact, so equal to
    combining their children), and from the old prefix or stored candles before it.
    """
    evaluator = _Evaluator(plan, prefixes, minutes, stored)
    writes: list[tuple[str, Candle]] = [("1m", evaluator.minutes[m]) for m in sorted(evaluator.minutes)]
    new_prefixes: dict[str, Candle | None] = {name: prefixes.get(name) for name in COARSE}
    if plan.watermark is None:
        return Materialized(tuple(writes), new_prefixes)
    for name in COARSE:
        size = INTERVALS[name]
        forming = bucket_start(plan.watermark, size)
        starts = set(plan.old_buckets(name))
        starts |= {bucket_start(minute, size) for minute in evaluator.new_starts}
        for start in sorted(starts):
            if start + size > plan.watermark or start >= forming:
                continue  # still forming: its prefix, not a candle
            candle = evaluator.span(start, start + size)
            if candle is not None:
                writes.append((name, candle))
    for name in plan.prefix_intervals():
        forming = bucket_start(plan.watermark, INTERVALS[name])
        new_prefixes[name] = evaluator.span(forming, plan.watermark) if forming < plan.watermark else None
    return Materialized(tuple(writes), new_prefixes)
