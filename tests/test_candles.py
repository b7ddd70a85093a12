"""Candles, pure and over an in-memory store: equal to pandas for every interval under late
ticks, duplicates, retries, re-drives, crashes and a concurrent writer; the planner; reads."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from demo.price_data import SOURCE_NOTE, load_series
from functions.shared.candles import (
    CHILD,
    COARSE,
    INTERVALS,
    MINUTE_MS,
    PARENT,
    Candle,
    aggregate,
    bucket_start,
    combine,
    plan_maintenance,
    stored_needed,
)
from functions.shared.price_table.candles import CandleConflict, maintain_store, read_from_store
from functions.shared.price_table.keys import event_ms, sort_key
from tests.support.candles import (
    MIDNIGHT,
    MemoryStore,
    deliveries,
    pandas_candles,
    python_candles,
    rows,
    share,
    tick_sets,
)

SYMBOL = "BTC-USD"
EVERYTHING = (0, 10**15 - 1)


def read_all(store: MemoryStore, interval: str, symbol: str = SYMBOL) -> list[Candle]:
    candles, following = read_from_store(store, symbol, interval, *EVERYTHING, 5000)
    assert following is None
    return candles


def assert_matches_pandas(store: MemoryStore, symbol: str = SYMBOL) -> None:
    ticks = store.stored_ticks(symbol)
    for interval in INTERVALS:
        assert rows(read_all(store, interval, symbol)) == pandas_candles(ticks, interval), interval


def assert_fresh(store: MemoryStore, symbol: str = SYMBOL) -> None:
    """The answer holds every stored tick, by the plain-Python reference: cheap enough for
    every step of a generated stream, and itself equal to pandas (a property test below)."""
    ticks = store.stored_ticks(symbol)
    for interval in INTERVALS:
        assert rows(read_all(store, interval, symbol)) == python_candles(ticks, interval), interval


def key(moment: int, slot: int = 0) -> int:
    return sort_key(moment, slot)


# --- the pure part -------------------------------------------------------------------------

def test_intervals_are_epoch_aligned_and_nested():
    assert list(INTERVALS) == ["1m", "5m", "15m", "1h", "4h", "1d"]
    sizes = list(INTERVALS.values())
    assert sizes == sorted(sizes) and all(86_400_000 % size == 0 for size in sizes)
    for child, parent in PARENT.items():
        assert CHILD[parent] == child and INTERVALS[parent] % INTERVALS[child] == 0
    assert COARSE == ("5m", "15m", "1h", "4h", "1d")
    assert bucket_start(MIDNIGHT + 4 * 3_600_000 - 1, INTERVALS["4h"]) == MIDNIGHT
    assert bucket_start(MIDNIGHT + 59_999, MINUTE_MS) == MIDNIGHT


def test_aggregate_follows_key_order_within_a_millisecond():
    ticks = [(key(MIDNIGHT, 7), Decimal("2")), (key(MIDNIGHT, 3), Decimal("1")), (key(MIDNIGHT + 5, 0), Decimal("3")),
             (key(MIDNIGHT + 5, 9), Decimal("0.5"))]
    assert aggregate(ticks, MIDNIGHT) == Candle(MIDNIGHT, Decimal("1"), Decimal("3"), Decimal("0.5"), Decimal("0.5"), 4)
    assert aggregate([], MIDNIGHT) is None
    with pytest.raises(ValueError):
        combine([])


@share(0.25)
@given(tick_sets(), st.data())
def test_combine_of_consecutive_parts_equals_aggregate_of_all(ticks, data):
    ordered = sorted(ticks.items())
    cuts = sorted(data.draw(st.lists(st.integers(1, max(1, len(ordered) - 1)), max_size=4)))
    parts, previous = [], 0
    for cut in cuts + [len(ordered)]:
        if cut > previous:
            parts.append(aggregate(ordered[previous:cut], event_ms(ordered[previous][0])))
            previous = cut
    assert combine(parts, MIDNIGHT) == aggregate(ordered, MIDNIGHT)


def test_planner_new_symbol_starts_at_its_oldest_minute():
    plan = plan_maintenance(None, [key(MIDNIGHT + 61_000), key(MIDNIGHT + 5_000), key(MIDNIGHT + 185_000)])
    assert (plan.previous_watermark, plan.base, plan.watermark) == (None, MIDNIGHT, MIDNIGHT + 3 * MINUTE_MS)
    assert plan.closing == (MIDNIGHT, MIDNIGHT + 3 * MINUTE_MS) and plan.late_minutes == ()
    assert plan.advanced and plan.has_work and plan.prefix_intervals() == COARSE
    assert plan.recompute_ranges("1m") == ((MIDNIGHT, MIDNIGHT + 3 * MINUTE_MS),)
    assert plan.recompute_ranges("5m") == ()  # nothing of 5m has closed yet
    assert stored_needed(plan) == {}


def test_planner_in_order_batch_closes_minutes_and_the_coarse_buckets_that_end():
    w = MIDNIGHT - 2 * MINUTE_MS  # 23:58
    plan = plan_maintenance(w, [key(MIDNIGHT - 90_000), key(MIDNIGHT + 30_000)])  # 23:58:30, 00:00:30
    assert plan.watermark == MIDNIGHT and plan.closing == (w, MIDNIGHT) and plan.late_minutes == ()
    for interval in COARSE:  # every coarse bucket ending at midnight just closed
        size = INTERVALS[interval]
        assert plan.recompute_ranges(interval) == ((MIDNIGHT - size, MIDNIGHT),), interval
    assert stored_needed(plan) == {}  # the old prefixes cover the closing buckets: no read


def test_planner_in_the_forming_minute_has_nothing_to_do():
    plan = plan_maintenance(MIDNIGHT, [key(MIDNIGHT + 1), key(MIDNIGHT + 59_999)])
    assert not plan.has_work and plan.watermark == MIDNIGHT and plan.minute_ranges() == ()
    assert not plan_maintenance(MIDNIGHT, []).has_work


def test_planner_late_tick_recomputes_its_minute_closed_buckets_and_forming_prefixes():
    w = MIDNIGHT + 17 * MINUTE_MS  # 00:17
    late = MIDNIGHT + 3 * MINUTE_MS + 5  # 00:03
    plan = plan_maintenance(w, [key(late), key(late, 1), key(w + 10)])  # a duplicate minute, and one in the forming
    # Its minute, and the next: the composite there may have carried its venue's price in.
    assert plan.late_minutes == (MIDNIGHT + 3 * MINUTE_MS, MIDNIGHT + 4 * MINUTE_MS)
    assert plan.closing is None and plan.watermark == w
    assert plan.recompute_ranges("5m") == ((MIDNIGHT, MIDNIGHT + 5 * MINUTE_MS),)
    assert plan.recompute_ranges("15m") == ((MIDNIGHT, MIDNIGHT + 15 * MINUTE_MS),)
    assert plan.recompute_ranges("1h") == ()  # 00:00-01:00 is still forming: its prefix changes instead
    assert plan.prefix_intervals() == ("1h", "4h", "1d")
    needed = stored_needed(plan)
    assert needed["1m"] and set(needed) <= {"1m", "5m", "15m"}


def test_planner_retried_batch_is_all_late_and_duplicates_collapse():
    batch = [key(MIDNIGHT + 10), key(MIDNIGHT + 70_000), key(MIDNIGHT + 70_000)]
    first = plan_maintenance(None, batch)
    again = plan_maintenance(first.watermark, batch)
    assert again.late_minutes == (MIDNIGHT,) and not again.advanced


def test_planner_leaves_out_minutes_older_than_the_retention_horizon():
    w = MIDNIGHT + 2 * 86_400_000
    horizon = MIDNIGHT + 86_400_000 + 123
    plan = plan_maintenance(w, [key(MIDNIGHT + 5), key(horizon + 60_000)], oldest_recomputable_ms=horizon)
    assert plan.skipped_minutes == (MIDNIGHT, MIDNIGHT + MINUTE_MS)  # its minute and the next (the composite's)
    assert plan.late_minutes == (bucket_start(horizon + 60_000, MINUTE_MS), bucket_start(horizon + 120_000, MINUTE_MS))
    assert all(start >= horizon for start, _ in plan.minute_ranges())


def test_a_tick_dated_ahead_closes_nothing_before_its_time():
    now = MIDNIGHT + 90_000
    ahead = key(MIDNIGHT + 6 * 3_600_000)  # the webhook takes ticks up to a day ahead
    plan = plan_maintenance(MIDNIGHT, [key(now - 1), ahead], now_ms=now)
    assert plan.watermark == MIDNIGHT + MINUTE_MS and plan.closing == (MIDNIGHT, MIDNIGHT + MINUTE_MS)
    assert plan_maintenance(None, [ahead], now_ms=now).watermark == MIDNIGHT + MINUTE_MS
    store = MemoryStore()
    for tick_key, price in ((key(now - 1), "1.00"), (ahead, "2.00")):
        store.store_tick(SYMBOL, tick_key, Decimal(price))
    maintain_store(store, SYMBOL, [key(now - 1), ahead], now_ms=now)
    assert_fresh(store)  # the tick ahead is read from the ticks, not materialized early
    later = key(now + 60_000)
    store.store_tick(SYMBOL, later, Decimal("3.00"))
    assert maintain_store(store, SYMBOL, [later], now_ms=now + 60_000).late_minutes == 0
    assert_fresh(store)


def test_plan_is_immutable():
    plan = plan_maintenance(None, [key(MIDNIGHT)])
    with pytest.raises(AttributeError):
        plan.watermark = 0  # type: ignore[misc]


@share(0.25)
@given(tick_sets())
def test_the_plain_python_reference_equals_pandas(ticks):
    for interval in INTERVALS:
        assert python_candles(ticks.items(), interval) == pandas_candles(ticks.items(), interval), interval


def test_pandas_reference_can_fail():
    """The reference is not vacuous: a wrong close shows up."""
    ticks = [(key(MIDNIGHT, 1), Decimal("1.00")), (key(MIDNIGHT, 2), Decimal("2.00"))]
    assert pandas_candles(ticks, "1m") == [(MIDNIGHT, "1.00", "2.00", "1.00", "2.00", 2)]
    assert rows([aggregate(ticks, MIDNIGHT)]) == pandas_candles(ticks, "1m")
    assert rows([Candle(MIDNIGHT, Decimal("1.00"), Decimal("2.00"), Decimal("1.00"), Decimal("1.00"), 2)]) != \
        pandas_candles(ticks, "1m")


# --- maintenance over the in-memory store ---------------------------------------------------

@share(0.25)
@given(tick_sets(), st.data())
def test_candles_equal_pandas_under_late_duplicate_retried_and_redriven_batches(ticks, data):
    store = MemoryStore()
    deferred = []
    for batch, retried, fails in data.draw(deliveries(list(ticks))):
        for tick_key in batch:
            store.store_tick(SYMBOL, tick_key, ticks[tick_key])
        if fails:
            deferred.append(batch)  # the enricher's step failed: the records go to the DLQ
            continue
        maintain_store(store, SYMBOL, batch)
        if retried:  # a recorded batch is recognised; one that changed nothing changes nothing again
            writes, again = store.writes, maintain_store(store, SYMBOL, batch)
            assert again.duplicate_batch or store.writes == writes
        if not deferred:  # freshness: every stored tick is in the answer right after its step
            assert_fresh(store)
    for batch in deferred:  # the DLQ re-drive
        maintain_store(store, SYMBOL, batch)
    assert_matches_pandas(store)


@share(0.25)
@given(tick_sets(max_ticks=80), st.integers(1, 30))
def test_in_order_stream_reads_no_stored_candles_and_is_always_fresh(ticks, batch_size):
    """The stream's normal flow: one GetItem per step, a tick Query when minutes close, no
    Query of stored candles (the old prefixes cover the buckets that close) but the closed
    hours' 1m candles for their packs: at most one Query per hour packed."""
    store = MemoryStore()
    ordered = sorted(ticks)
    previous: int | None = None
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start:start + batch_size]
        for tick_key in batch:
            store.store_tick(SYMBOL, tick_key, ticks[tick_key])
        reads, candle_reads = store.reads, len(store.candle_reads)
        writes = maintain_store(store, SYMBOL, batch)
        plan = plan_maintenance(previous, batch)
        assert stored_needed(plan) == {} and plan.late_minutes == ()
        pack_reads = store.candle_reads[candle_reads:]
        assert set(pack_reads) <= {"1m"} and len(pack_reads) <= writes.packs_written
        assert store.reads - reads - len(pack_reads) == 1 + len(plan.minute_ranges()) <= 2
        previous = writes.watermark
        assert_fresh(store)


@share(0.25)
@given(tick_sets(), st.data())
def test_a_step_cut_short_is_repaired_by_its_retry(ticks, data):
    store = MemoryStore()
    for batch, _, _ in data.draw(deliveries(list(ticks))):
        for tick_key in batch:
            store.store_tick(SYMBOL, tick_key, ticks[tick_key])
        store.fail_after_writes = data.draw(st.integers(0, 3))
        try:
            maintain_store(store, SYMBOL, batch)
        except TimeoutError:
            store.fail_after_writes = None
            maintain_store(store, SYMBOL, batch)  # Lambda retries the batch
        store.fail_after_writes = None
    assert_fresh(store)


@share(0.25)
@given(tick_sets(), st.data())
def test_a_concurrent_drain_never_leaves_a_candle_older(ticks, data):
    """The live enricher and a DLQ drain on one symbol. Every other batch fails (its records
    go to the DLQ); its re-drive runs, whole, between the next live step's candle writes and
    its compare-and-set: the worst moment. Without the compare-and-set and the redo, the
    live step would store prefixes computed without the drained ticks."""
    store = MemoryStore()
    batches = [batch for batch, _, _ in data.draw(deliveries(list(ticks)))]
    failed: list[int] | None = None
    for batch in batches:
        for tick_key in batch:
            store.store_tick(SYMBOL, tick_key, ticks[tick_key])
        if failed is None:
            failed = batch
            continue
        store.before_put_state = lambda symbol, keys=failed: maintain_store(store, symbol, keys)
        maintain_store(store, SYMBOL, batch)
        if store.before_put_state is not None:  # the live step wrote nothing: drain now
            store.before_put_state = None
            maintain_store(store, SYMBOL, failed)
        failed = None
    if failed is not None:
        maintain_store(store, SYMBOL, failed)
    assert_fresh(store)


def test_conflict_redoes_the_step_and_gives_up_after_the_limit():
    store = MemoryStore()
    store.store_tick(SYMBOL, key(MIDNIGHT), Decimal("1.00"))
    store.store_tick(SYMBOL, key(MIDNIGHT + 61_000), Decimal("2.00"))
    store.before_put_state = lambda symbol: maintain_store(store, symbol, [key(MIDNIGHT)])
    writes = maintain_store(store, SYMBOL, [key(MIDNIGHT), key(MIDNIGHT + 61_000)])
    assert writes.conflicts == 1 and writes.watermark == MIDNIGHT + MINUTE_MS
    assert_matches_pandas(store)

    class Hostile(MemoryStore):
        def put_state(self, symbol, state, expected_version):
            return False

    with pytest.raises(CandleConflict):
        maintain_store(Hostile(), SYMBOL, [key(MIDNIGHT)], max_attempts=2)


def test_a_redelivered_batch_writes_nothing():
    store = MemoryStore()
    batch = [key(MIDNIGHT + 1_000), key(MIDNIGHT + 61_000)]
    for tick_key in batch:
        store.store_tick(SYMBOL, tick_key, Decimal("3.00"))
    maintain_store(store, SYMBOL, batch)
    writes = store.writes
    again = maintain_store(store, SYMBOL, list(reversed(batch)) + batch[:1])
    assert again.duplicate_batch and store.writes == writes


def test_late_tick_beyond_the_retention_horizon_is_left_out_and_candles_are_kept():
    store, day = MemoryStore(), 86_400_000
    old, new = MIDNIGHT, MIDNIGHT + 2 * day
    for moment, price in ((old + 1_000, "5.00"), (new, "6.00")):  # a one-day retention, received on time
        store.store_tick(SYMBOL, key(moment), Decimal(price), expires=(moment + day) // 1000)
        maintain_store(store, SYMBOL, [key(moment)], now_ms=moment + 1)
    before = read_all(store, "1d")
    assert store.expire(SYMBOL, new) == 1                      # TTL took the old day's tick
    store.store_tick(SYMBOL, key(old + 2_000), Decimal("7.00"), expires=(new + day) // 1000)  # late
    writes = maintain_store(store, SYMBOL, [key(old + 2_000)], oldest_recomputable_ms=new - day, now_ms=new + 1)
    # The late tick's minute is left out; the next one (the composite's carry-in), without a
    # candle, is computed and finds nothing.
    assert writes.skipped_minutes == 1 and writes.late_minutes == 1
    assert read_all(store, "1d")[0] == before[0]


def test_raising_the_retention_does_not_rebuild_a_minute_from_what_ttl_left():
    """Ticks written under a one-day retention; one of them is gone (TTL) when the retention is
    raised to seven days and a late tick arrives in its minute, now well inside the new
    horizon. The minute's candle keeps both ticks it counted (open 100, count 2) instead of
    being rebuilt from what is left (open 90)."""
    store, day, hour = MemoryStore(), 86_400_000, 3_600_000
    minute = MIDNIGHT
    first, second = key(minute + 1_000), key(minute + 2_000)
    store.store_tick(SYMBOL, first, Decimal("100"), expires=(minute + 1_000 + day) // 1000)  # received on time
    store.store_tick(SYMBOL, second, Decimal("90"), expires=(minute + day + hour) // 1000)   # received an hour late
    now = minute + 2 * MINUTE_MS
    maintain_store(store, SYMBOL, [first, second, key(now)], oldest_recomputable_ms=now - day, now_ms=now)
    before = read_all(store, "1m")[0]
    assert (before.open, before.count) == (Decimal("100"), 2)
    now = minute + day + 30 * MINUTE_MS
    assert store.expire(SYMBOL, now) == 1  # the 100 is gone
    late = key(minute + 30_000)
    store.store_tick(SYMBOL, late, Decimal("95"), expires=(now + 7 * day) // 1000)  # under the new retention
    writes = maintain_store(store, SYMBOL, [late], oldest_recomputable_ms=now - 7 * day + hour, now_ms=now)
    after = read_all(store, "1m")[0]
    assert (after.open, after.count) == (Decimal("100"), 2) and writes.skipped_minutes == 1


def test_items_that_are_not_prices_are_left_out():
    store = MemoryStore()
    store.store_tick(SYMBOL, key(MIDNIGHT), Decimal("1.00"))
    store.store_tick(SYMBOL, key(MIDNIGHT + 1), None)  # MemoryStore drops it as the DynamoDB store does
    store.store_tick(SYMBOL, key(MIDNIGHT + 61_000), Decimal("2.00"))
    maintain_store(store, SYMBOL, [key(MIDNIGHT), key(MIDNIGHT + 1), key(MIDNIGHT + 61_000)])
    assert [c.count for c in read_all(store, "5m")] == [2]


# --- reads ---------------------------------------------------------------------------------

@share(0.25)
@given(tick_sets(max_ticks=80), st.sampled_from(list(INTERVALS)), st.integers(1, 7), st.data())
def test_pages_and_sub_ranges_equal_the_whole_answer(ticks, interval, limit, data):
    store = MemoryStore()
    ordered = sorted(ticks)
    cut = data.draw(st.integers(1, len(ordered)))  # part maintained, part only stored (ticks after W)
    for tick_key in ordered[:cut]:
        store.store_tick(SYMBOL, tick_key, ticks[tick_key])
    maintain_store(store, SYMBOL, ordered[:cut])
    for tick_key in ordered[cut:]:
        store.store_tick(SYMBOL, tick_key, ticks[tick_key])
    expected = python_candles(store.stored_ticks(SYMBOL), interval)
    low = data.draw(st.sampled_from([0, MIDNIGHT - 3_600_000, MIDNIGHT + 1, MIDNIGHT + 7 * 60_000]))
    high = data.draw(st.sampled_from([10**15 - 1, MIDNIGHT + 1, MIDNIGHT + 86_400_000 + 5]))
    expected = [row for row in expected if low <= row[0] < high]
    got, position, requests = [], low, 0
    while True:
        page, following = read_from_store(store, SYMBOL, interval, position, high, limit)
        got += rows(page)
        requests += 1
        assert len(page) <= limit and requests <= len(expected) + 2
        if following is None:
            break
        assert following > position and len(page) == limit
        position = following
    assert got == expected


def test_read_validates_and_unknown_symbol_is_empty():
    store = MemoryStore()
    assert read_from_store(store, "NOPE-USD", "1h", *EVERYTHING, 10) == ([], None)
    with pytest.raises(ValueError):
        read_from_store(store, SYMBOL, "2m", *EVERYTHING, 10)
    with pytest.raises(ValueError):
        read_from_store(store, SYMBOL, "1m", *EVERYTHING, 5001)
    assert read_from_store(store, SYMBOL, "1h", 10, 10, 10) == ([], None)


def test_symbol_before_its_first_step_is_computed_from_its_ticks():
    store = MemoryStore()
    store.store_tick(SYMBOL, key(MIDNIGHT + 5), Decimal("1.00"))
    assert rows(read_all(store, "1d")) == [(MIDNIGHT, "1.00", "1.00", "1.00", "1.00", 1)]


# --- the real series ------------------------------------------------------------------------

@pytest.mark.parametrize("symbol", ["BTC-USD", "EUR-USD"])
def test_real_series_in_batches_of_100_equal_pandas(symbol):
    """Real series (`SOURCE_NOTE`: the backtesting wheel's BTCUSD and EURUSD), all of each, in
    time order, in batches of 100: each bar's open, high, low and close as four ticks, so every
    candle of every interval holds several ticks with different roles."""
    assert "backtesting" in SOURCE_NOTE
    store = MemoryStore()
    bars = load_series(symbol)
    ticks = [(sort_key(moment, 0), price) for bar in bars for moment, price in bar.ticks()]
    for start in range(0, len(ticks), 100):
        for tick_key, price in ticks[start:start + 100]:
            store.store_tick(symbol, tick_key, price)
        maintain_store(store, symbol, [tick_key for tick_key, _ in ticks[start:start + 100]])
    assert_matches_pandas(store, symbol)
    days = read_all(store, "1d", symbol)
    assert sum(c.count for c in days) == 4 * len(bars)
    assert all(c.open != c.close or c.high != c.low for c in days[:12])  # not all flat: roles differ


def test_real_series_shuffled_into_late_batches_equal_pandas():
    bars = load_series("EUR-USD", 600)
    store = MemoryStore()
    keys = [sort_key(bar.event_ms, 0) for bar in bars]
    prices = dict(zip(keys, (bar.close for bar in bars), strict=True))
    order = keys[:]
    random.Random(13).shuffle(order)
    for start in range(0, len(order), 100):
        for tick_key in order[start:start + 100]:
            store.store_tick("EUR-USD", tick_key, prices[tick_key])
        maintain_store(store, "EUR-USD", order[start:start + 100])
    assert_matches_pandas(store, "EUR-USD")


@settings(max_examples=25)
@given(st.integers(0, 10**6))
def test_merging_prefix_with_minutes_matches_direct_computation(seed):
    """The prefix path (normal flow) and the stored-children path (late ticks) agree: the same
    ticks maintained in order, or all at once after the fact, give the same candles."""
    rng = random.Random(seed)
    ticks = {key(MIDNIGHT - 3_600_000 + rng.randrange(3 * 3_600_000), rng.randrange(1000)):
             Decimal(rng.randrange(1, 999)).scaleb(-2) for _ in range(120)}
    in_order, at_once = MemoryStore(), MemoryStore()
    ordered = sorted(ticks)
    for start in range(0, len(ordered), 7):
        for tick_key in ordered[start:start + 7]:
            in_order.store_tick(SYMBOL, tick_key, ticks[tick_key])
        maintain_store(in_order, SYMBOL, ordered[start:start + 7])
    for tick_key in ordered:
        at_once.store_tick(SYMBOL, tick_key, ticks[tick_key])
    maintain_store(at_once, SYMBOL, ordered[-1:])
    maintain_store(at_once, SYMBOL, ordered[:-1])
    for interval in INTERVALS:
        assert read_all(in_order, interval) == read_all(at_once, interval)
    assert in_order.candles == at_once.candles
