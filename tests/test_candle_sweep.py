"""Quiet symbols and a tick retention: a symbol's newest minute stays forming until a later tick
of it arrives, and only its ticks hold it. These tests check that (1) a step after a long
silence closes that minute from its ticks, even when the silence nears the retention, and
(2) the hourly sweep closes a quiet symbol's forming minutes, so that TTL deleting the ticks
later changes no candle."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from functions.price_enricher import handler as enricher_handler
from functions.price_enricher import service as enricher
from functions.price_enricher.settings import SWEEP_ACTION
from functions.price_enricher.settings import Settings as EnricherSettings
from functions.shared.candles import MINUTE_MS, plan_maintenance
from functions.shared.price_table.candles import (
    SWEEP_IDLE_MS,
    SWEEP_QUIET_MS,
    DynamoCandleStore,
    maintain_store,
    read_from_store,
    sweep_store,
)
from functions.shared.price_table.keys import event_ms, sort_key
from functions.shared.price_table.ticks import oldest_recomputable_ms
from ops import drain as drain_ops
from tests.support.candles import INTERVALS, MemoryStore, pandas_candles, rows
from tests.support.enricher_support import CANDLE_TABLE, Pipeline

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
T0 = 1_767_261_600_000          # 2026-01-01T10:00:00Z
EVERYTHING = (0, 10**15 - 1)


def _all(store: MemoryStore, symbol: str, interval: str) -> list[Any]:
    candles, following = read_from_store(store, symbol, interval, *EVERYTHING, 5000)
    assert following is None
    return rows(candles)


def _assert_equal_pandas(store: MemoryStore, symbol: str, ticks: list[tuple[int, Decimal]]) -> None:
    for interval in INTERVALS:
        assert _all(store, symbol, interval) == pandas_candles(ticks, interval), interval


def _step(store: MemoryStore, symbol: str, ticks: list[tuple[int, Decimal]], now_ms: int, days: int = 7,
          batch: list[int] | None = None) -> Any:
    """Store `ticks` as the webhook does with a retention of `days` (received now: `expires_at` is
    the later of now and the tick's own time, plus the days), then one maintenance step over
    `batch` (default: their keys) at `now_ms`."""
    for key, price in ticks:
        store.store_tick(symbol, key, price, (max(now_ms, event_ms(key)) // 1000) + days * 86_400)
    keys = [key for key, _ in ticks] if batch is None else batch
    return maintain_store(store, symbol, keys, oldest_recomputable_ms(now_ms, days), now_ms)


# ---- a step after a long silence ---------------------------------------------------------------

@pytest.mark.parametrize("silence_ms", [DAY_MS, 7 * DAY_MS - 30 * MINUTE_MS, 7 * DAY_MS - 2 * HOUR_MS])
def test_a_step_after_a_silence_near_the_retention_closes_the_forming_minutes(silence_ms):
    """Half an hour of ticks (10:00-10:30, the last minute forming), then silence, then a tick. The
    forming minute's ticks are still stored (they expire at their minute + 7 days), so every candle
    holds them. Before the fix the minutes between the watermark and the retention horizon were
    never closed: the 10:30 tick, the 10:00 hour and the day were missing from the candles."""
    store, symbol = MemoryStore(), "QUIET-USD"
    first = [(sort_key(T0 + m * MINUTE_MS + 5_000, 0), Decimal(100 + m)) for m in range(31)]
    _step(store, symbol, first, T0 + 30 * MINUTE_MS + 6_000)
    later_ms = T0 + 30 * MINUTE_MS + silence_ms
    later = [(sort_key(later_ms, 0), Decimal("150"))]
    writes = _step(store, symbol, later, later_ms + 500)
    assert writes.skipped_minutes == 0
    _assert_equal_pandas(store, symbol, first + later)


def test_closing_minutes_is_never_clamped_to_the_horizon():
    watermark = T0
    plan = plan_maintenance(watermark, [sort_key(T0 + 8 * DAY_MS, 0)], T0 + DAY_MS, T0 + 8 * DAY_MS + 1)
    assert plan.closing == (T0, T0 + 8 * DAY_MS)


# ---- the sweep ---------------------------------------------------------------------------------

def test_the_sweep_closes_idle_symbols_so_that_expired_ticks_change_no_candle():
    store = MemoryStore()
    quiet = [(sort_key(T0 + 5_000 + i * 7_000, 0), Decimal(f"10.{i}")) for i in range(5)]  # all in 10:00
    _step(store, "QUIET-USD", quiet, T0 + 40_000, days=1)
    now = T0 + 2 * HOUR_MS
    active = [(sort_key(now - 10 * MINUTE_MS, 0), Decimal("7"))]
    _step(store, "BUSY-USD", active, now - 10 * MINUTE_MS + 500, days=1)
    # A backfill in progress: its newest tick is old, but its last step was a minute ago.
    backfill = [(sort_key(T0 - DAY_MS + 5_000, 0), Decimal("3"))]
    _step(store, "FILL-USD", backfill, now - MINUTE_MS, days=1)
    assert store.states["QUIET-USD"].watermark == T0           # 10:00 is still forming

    result = sweep_store(store, now, oldest_recomputable_ms(now, 1))
    cutoff = now - SWEEP_QUIET_MS
    assert [w.symbol for w in result.closed] == ["QUIET-USD"] and result.failed == ()
    assert store.states["QUIET-USD"].watermark == cutoff
    assert store.states["BUSY-USD"].watermark == now - 10 * MINUTE_MS   # left to its own ticks
    assert store.states["FILL-USD"].watermark == T0 - DAY_MS             # not made late
    later = now + 2 * SWEEP_IDLE_MS                            # idle now too: the other two close
    assert sorted(w.symbol for w in sweep_store(store, later, oldest_recomputable_ms(later, 1)).closed) == [
        "BUSY-USD", "FILL-USD"]
    writes, latest = store.writes, later + 2 * SWEEP_IDLE_MS
    assert sweep_store(store, latest, oldest_recomputable_ms(latest, 1)).closed == ()  # nothing forming
    assert store.writes == writes                              # ... so nothing written

    assert store.expire("QUIET-USD", T0 + 2 * DAY_MS) == len(quiet)  # the retention's TTL
    _assert_equal_pandas(store, "QUIET-USD", quiet)            # ... and the candles keep them
    _assert_equal_pandas(store, "BUSY-USD", active)


def test_after_a_sweep_a_straggler_is_a_late_tick_and_a_new_tick_flows_on():
    store, symbol = MemoryStore(), "QUIET-USD"
    ticks = [(sort_key(T0 + 5_000, 0), Decimal("10"))]
    _step(store, symbol, ticks, T0 + 6_000)
    now = T0 + 2 * HOUR_MS
    assert len(sweep_store(store, now).closed) == 1
    straggler = [(sort_key(T0 + 50_000, 0), Decimal("9"))]    # arrives after its minute was closed
    assert _step(store, symbol, straggler, now + 1_000).late_minutes == 2  # its minute and the next (composite)
    fresh = [(sort_key(now + 2_000, 0), Decimal("11")), (sort_key(now + 70_000, 0), Decimal("12"))]
    assert _step(store, symbol, fresh, now + 71_000).late_minutes == 0
    _assert_equal_pandas(store, symbol, ticks + straggler + fresh)


def test_one_failing_symbol_does_not_keep_the_others_open():
    store = MemoryStore()
    for symbol in ("AAA-USD", "BAD-USD", "ZZZ-USD"):
        _step(store, symbol, [(sort_key(T0 + 5_000, 0), Decimal("1"))], T0 + 6_000)

    def fail(symbol: str) -> None:
        if symbol == "BAD-USD":
            raise TimeoutError("cut short")
        store.before_put_state = fail                          # the hook is taken once per call

    store.before_put_state = fail
    result = sweep_store(store, T0 + 2 * HOUR_MS)
    assert sorted(w.symbol for w in result.closed) == ["AAA-USD", "ZZZ-USD"]
    assert result.failed == (("BAD-USD", "TimeoutError: cut short"),)
    assert store.states["BAD-USD"].watermark == T0


def test_past_the_deadline_no_symbol_is_started_and_the_rest_are_reported():
    store = MemoryStore()
    for symbol in ("AAA-USD", "BBB-USD"):
        _step(store, symbol, [(sort_key(T0 + 5_000, 0), Decimal("1"))], T0 + 6_000)
    result = sweep_store(store, T0 + 2 * HOUR_MS, deadline=0.0)
    assert result.closed == () and sorted(result.unreached) == ["AAA-USD", "BBB-USD"]
    assert {state.watermark for state in store.states.values()} == {T0}


def test_late_ticks_alone_do_not_keep_a_symbol_from_being_swept():
    """Only a step that moves W counts as activity: a backfill of late ticks into a quiet symbol
    (W stays) must not keep its forming minute open while TTL runs."""
    store, symbol = MemoryStore(), "DELISTED-USD"
    forming = [(sort_key(T0 + 5_000, 0), Decimal("2"))]
    _step(store, symbol, [(sort_key(T0 - 10 * MINUTE_MS, 0), Decimal("1"))] + forming, T0 + 6_000, days=1)
    now = T0 + 3 * HOUR_MS
    late = [(sort_key(T0 - 9 * MINUTE_MS, 0), Decimal("3"))]
    assert _step(store, symbol, late, now - MINUTE_MS, days=1).late_minutes == 2  # its minute and the next
    assert [w.symbol for w in sweep_store(store, now).closed] == [symbol]
    assert store.states[symbol].watermark == now - SWEEP_QUIET_MS


def test_a_step_after_the_sweeps_registry_read_wins():
    store, symbol = MemoryStore(), "RACE-USD"
    _step(store, symbol, [(sort_key(T0 + 5_000, 0), Decimal("2"))], T0 + 6_000)
    now = T0 + 3 * HOUR_MS
    listed = store.list_states

    def step_in_between() -> list:
        states = listed()
        _step(store, symbol, [(sort_key(now - 30_000, 0), Decimal("3"))], now - 29_000)  # a live step
        return states

    store.list_states = step_in_between  # type: ignore[method-assign]
    assert sweep_store(store, now).closed == ()
    assert store.states[symbol].watermark == now - MINUTE_MS  # as the live step left it


# ---- late ticks beyond the horizon: recomputed only when nothing counted can be gone -----------

def test_a_late_tick_where_ttl_took_a_counted_tick_leaves_the_candle_as_it_was():
    store, symbol = MemoryStore(), "OLD-USD"
    old = [(sort_key(T0 + 1_000, 0), Decimal("5")), (sort_key(T0 + 2_000, 0), Decimal("6"))]
    _step(store, symbol, old + [(sort_key(T0 + 70_000, 0), Decimal("7"))], T0 + 71_000, days=1)
    before = _all(store, symbol, "1m")[0]
    assert before[-1] == 2
    later = T0 + 2 * DAY_MS
    assert store.expire(symbol, later) == 3                    # TTL took the minute's ticks
    # A backfill brings other ticks of that minute, in two batches: the first must not be taken for
    # the whole minute (the count of what is stored would match the candle's, but a, b are gone).
    backfill = [(sort_key(T0 + 3_000 + i, 0), Decimal("1")) for i in range(3)]
    assert _step(store, symbol, backfill[:2], later, days=1).skipped_minutes == 1
    assert _step(store, symbol, backfill[2:], later, days=1).skipped_minutes == 1
    assert _all(store, symbol, "1m")[0] == before              # not recomputed from what is left


def test_a_redelivered_tick_beside_a_new_late_tick_beyond_the_horizon_both_count_once():
    """The candle's ticks expire after now (received recently, dated long ago): the minute is
    whole, so a batch re-delivering a counted key with a new one recomputes it exactly."""
    store, symbol, now = MemoryStore(), "HIST-USD", T0
    minute = T0 - 30 * DAY_MS
    first = [(sort_key(minute + 1_000, 0), Decimal("5")), (sort_key(minute + 2_000, 0), Decimal("6"))]
    later = [(sort_key(minute + 90_000, 0), Decimal("8"))]
    _step(store, symbol, first + later, now, days=1)
    new = [(sort_key(minute + 3_000, 0), Decimal("4"))]
    writes = _step(store, symbol, new, now + 1_000, days=1, batch=[first[0][0], new[0][0]])
    assert (writes.late_minutes, writes.skipped_minutes) == (1, 0)
    _assert_equal_pandas(store, symbol, first + later + new)


# ---- the enricher's hourly run, the handler and the drain --------------------------------------

NOW_MS = T0 + 2 * HOUR_MS
pytestmark = pytest.mark.pipeline(candles=True)  # the `pipeline` fixture (tests/conftest.py) with candle table


@pytest.fixture
def one_enriched_minute(pipeline: Pipeline) -> Pipeline:
    """ETH-USD's minute T0 with two ticks enriched, on a one-day retention: not closed yet."""
    pipeline.settings = EnricherSettings(pipeline.table, pipeline.topic, pipeline.settings.windows,
                                         CANDLE_TABLE, tick_retention_days=1)
    records = [pipeline.record(pipeline.put("ETH-USD", T0 + 5_000, "3000")),
               pipeline.record(pipeline.put("ETH-USD", T0 + 9_000, "3001.5"))]
    result = enricher.process({"Records": records}, pipeline.settings, pipeline.dynamodb, pipeline.sns,
                              (T0 + 10_000) / 1000)
    assert result == {"batchItemFailures": []}
    return pipeline


def _one_minute(pipeline: Pipeline) -> list[Any]:
    store = DynamoCandleStore(pipeline.dynamodb, CANDLE_TABLE, pipeline.table)
    return rows(store.read_candles("ETH-USD", "1m", T0, T0))


@pytest.mark.usefixtures("one_enriched_minute")
def test_the_enricher_closes_quiet_symbols_on_its_hourly_run(pipeline):
    assert _one_minute(pipeline) == []                         # forming: only the ticks hold it
    summary = enricher.sweep_quiet_symbols(pipeline.settings, pipeline.dynamodb, NOW_MS / 1000)
    assert (summary["checked"], summary["closed"]) == (1, 1)
    assert _one_minute(pipeline) == [(T0, "3000", "3001.5", "3000", "3001.5", 2)]


class LambdaContext:
    function_name = "price-enricher-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:price-enricher-test"
    aws_request_id = "req-sweep"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


@pytest.mark.usefixtures("one_enriched_minute")
def test_the_handler_runs_the_sweep_for_the_schedules_input(pipeline, monkeypatch):
    monkeypatch.setattr(enricher_handler, "_runtime", lambda: (pipeline.settings, pipeline.dynamodb, pipeline.sns))
    monkeypatch.setattr(enricher_handler.time, "time", lambda: NOW_MS / 1000)
    summary = enricher_handler.handler({"action": SWEEP_ACTION}, LambdaContext())
    assert summary["closed"] == 1 and _one_minute(pipeline) != []


@pytest.mark.usefixtures("one_enriched_minute")
def test_a_failed_sweep_in_the_enricher_dlq_is_run_again_by_the_drain(pipeline, monkeypatch):
    """An asynchronous invocation's on-failure record carries its input (`requestPayload`)."""
    monkeypatch.setattr(drain_ops.time, "time", lambda: NOW_MS / 1000)
    monkeypatch.setattr(enricher.time, "time", lambda: NOW_MS / 1000)
    queue = pipeline.sqs.create_queue(QueueName="enricher-dlq-sweep")["QueueUrl"]
    pipeline.sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({
        "version": "1.0", "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {"action": SWEEP_ACTION}, "responseContext": {"statusCode": 200}}))
    outputs = {"enricher_dlq_url": queue, "table_name": pipeline.table, "success_topic_arn": pipeline.topic,
               "candle_table_name": CANDLE_TABLE}
    clients = {"sqs": pipeline.sqs, "dynamodb": pipeline.dynamodb}
    report = drain_ops.drain("enricher", outputs, pipeline.settings.windows, clients, tick_retention_days=1)
    assert report.ok and report.processed == 1, report.left
    assert "candle sweep run again: 1 symbols checked, 1 closed" in report.done[0]
    assert _one_minute(pipeline) != []
    assert pipeline.sqs.receive_message(QueueUrl=queue).get("Messages") is None


# ---- a backfill with a retention ------------------------------------------------------------------

def test_a_backfill_of_history_with_a_retention_builds_every_candle():
    """Ticks dated years ago (the BTC/USD monthly series, 2012-2024, as open/high/low/close
    ticks), sent in batches of 100 to an environment with a one-day retention: each is received
    now, so its minute's ticks are all stored, and the minutes have no candle yet. Before, a new
    symbol started at the retention horizon and every tick before it was skipped: no candle."""
    from demo.price_data import load_series

    store, symbol, now = MemoryStore(), "BTC-USD", T0
    ticks = [(sort_key(moment, 0), price) for bar in load_series("BTC-USD") for moment, price in bar.ticks()]
    for start in range(0, len(ticks), 100):
        writes = _step(store, symbol, ticks[start:start + 100], now, days=1)
        assert writes.skipped_minutes == 0
    _assert_equal_pandas(store, symbol, ticks)


def test_a_backfill_out_of_order_with_a_retention_builds_every_candle():
    """The same history shuffled: a later batch brings ticks of minutes an earlier batch closed,
    all beyond the horizon. Nothing expired (all received now), so each is recomputed whole."""
    import random

    from demo.price_data import load_series

    store, symbol, now = MemoryStore(), "BTC-USD", T0
    ticks = [(sort_key(moment, 0), price) for bar in load_series("BTC-USD") for moment, price in bar.ticks()]
    shuffled = ticks[:]
    random.Random(5).shuffle(shuffled)
    for start in range(0, len(shuffled), 100):
        assert _step(store, symbol, shuffled[start:start + 100], now, days=1).skipped_minutes == 0
    _assert_equal_pandas(store, symbol, ticks)
