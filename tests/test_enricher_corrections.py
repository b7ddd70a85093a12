"""A late record corrects the later items it changes, so no EMA stays skewed.

The moto tests run the service end to end (conditional writes, announcements, retries); the
planner tests run the pure planner over an in-memory table, so that long series (where the
EMA difference takes hundreds of items to vanish) stay fast.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import boto3
import pandas as pd
import pytest

from demo.price_data import load_series
from functions.price_enricher import planner
from functions.price_enricher.indicators import Windows
from functions.shared.price_table.items import stream_record
from functions.shared.price_table.keys import sort_key
from functions.shared.price_table.ticks import to_item
from functions.shared.price_update import PriceUpdate
from tests.support.enricher_support import Counter, MetricsRecorder, late_tick_scenario
from tests.test_enricher import pandas_indicators

START = 1_700_000_000_000


def btc(count: int) -> list[Decimal]:
    return [bar.close for bar in load_series("BTC-USD")[:count]]


def assert_matches_pandas(items: list[dict], prices: Sequence[Decimal], windows: Windows) -> None:
    expected = pandas_indicators([float(p) for p in prices], windows)
    assert len(items) == len(prices)
    for index, item in enumerate(sorted(items, key=lambda i: i["timestamp"])):
        assert "enriched_at" in item
        for column in (c for c in expected.columns if c != "price"):
            reference = expected[column].iloc[index]
            if pd.isna(reference):
                assert column not in item, (index, column)
            else:
                assert float(item[column]) == pytest.approx(reference, rel=1e-9, abs=1e-12), (index, column)


def test_every_item_equals_pandas_after_a_late_tick(pipeline):
    """Ticks 0-59; tick 10 is stored after 11-24 were enriched, then 25-59 follow."""
    prices = btc(60)
    outcome = late_tick_scenario(pipeline, "BTC-USD", prices, late=10, enriched_before=24)
    assert_matches_pandas(pipeline.items("BTC-USD"), prices, pipeline.settings.windows)
    assert outcome["late_metrics"]["ItemsCorrected"] == 14                # 11..24
    assert outcome["late_requests"].get("PutItem") == 15                   # its own put + 14 corrections


def test_corrections_are_announced_with_the_marker(pipeline):
    prices = btc(25)
    late_tick_scenario(pipeline, "BTC-USD", prices, late=10, enriched_before=24)
    messages = pipeline.notifications()
    late_ts = sort_key(START + 10_000, 0)
    corrections = [m for m in messages if m["body"]["correction"]]
    firsts = [m for m in messages if not m["body"]["correction"]]
    assert len(firsts) == 25 and len(corrections) == 14  # every first announcement, and 11..24 again
    assert [m["body"]["timestamp"] for m in firsts if m["body"]["timestamp"] == late_ts] == [late_ts]
    stored = {item["timestamp"]: item for item in pipeline.items("BTC-USD")}
    first_of = {m["body"]["timestamp"]: m["body"] for m in firsts}
    for message in corrections:
        body, item = message["body"], stored[message["body"]["timestamp"]]
        assert body["timestamp"] > late_ts and message["attributes"]["correction"]["Value"] == "true"
        assert message["attributes"]["symbol"]["Value"] == "BTC-USD"
        assert body["corrected_at"] == item["corrected_at"] and body["enriched_at"] == item["enriched_at"]
        assert item["corrected_by"] == late_ts                   # which late record caused it
        assert body["enriched_at"] == first_of[body["timestamp"]]["enriched_at"]  # first enrichment kept
        assert body["indicators"] == {k: str(v) for k, v in sorted(item.items())
                                      if k.startswith(("sma_", "ema_", "volatility_", "change_pct"))}
        assert body["indicators"] != first_of[body["timestamp"]]["indicators"]
    assert all(m["attributes"]["correction"]["Value"] == "false" and "corrected_at" not in m["body"] for m in firsts)


def test_a_retried_late_record_does_not_correct_twice(pipeline):
    prices = btc(40)
    outcome = late_tick_scenario(pipeline, "BTC-USD", prices, late=10, enriched_before=39)
    before = {item["timestamp"]: item for item in pipeline.items("BTC-USD")}
    pipeline.notifications()
    counter, metrics = Counter(pipeline.dynamodb), MetricsRecorder()
    assert pipeline.enrich([outcome["late_record"]], metrics) == {"batchItemFailures": []}
    assert counter.calls.get("PutItem") == 1          # its own conditional put, refused: nothing corrected again
    assert metrics.values["ItemsCorrected"] == 0
    assert {item["timestamp"]: item for item in pipeline.items("BTC-USD")} == before
    again = [m["body"] for m in pipeline.notifications() if m["body"]["correction"]]
    assert len(again) == 29  # at least once: the retry announces its corrections again, unchanged
    assert all(body["corrected_at"] == before[body["timestamp"]]["corrected_at"] for body in again)


def test_a_late_tick_far_behind_reads_the_items_after_it_oldest_first(pipeline):
    """69 enriched items follow the late tick: more than the history page, so they are read
    oldest first, page by page, rather than through the history."""
    prices = btc(80)
    outcome = late_tick_scenario(pipeline, "BTC-USD", prices, late=10, enriched_before=79)
    assert_matches_pandas(pipeline.items("BTC-USD"), prices, pipeline.settings.windows)
    assert outcome["late_metrics"]["ItemsCorrected"] == 69
    assert outcome["late_requests"]["Query"] <= 6  # top page, history, items after (8, 64)


def test_a_correction_never_overwrites_a_newer_one(pipeline, moto_endpoint):
    """Another writer corrects item 11 between this batch's read and its write: the older
    computation is refused, the late record is retried, and the retry converges."""
    prices = btc(30)
    start = START
    records = {i: pipeline.record(pipeline.put("BTC-USD", start + i * 1000, prices[i])) for i in range(30) if i != 10}
    assert pipeline.enrich([records[i] for i in sorted(records)]) == {"batchItemFailures": []}
    late = pipeline.record(pipeline.put("BTC-USD", start + 10_000, prices[10]))
    other = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
    target = str(sort_key(start + 11_000, 0))

    def concurrent_correction(request: Any, **_: Any) -> None:
        body = json.loads(request.body)
        if "corrected_at" in body.get("Item", {}) and body["Item"]["timestamp"]["N"] == target:
            newer = {**body["Item"], "ema_12": {"N": "1"}, "corrected_at": {"N": "9999999999999"}}
            other.put_item(TableName=pipeline.table, Item=newer)

    pipeline.dynamodb.meta.events.register("before-send.dynamodb.PutItem", concurrent_correction)
    result = pipeline.enrich([late])
    pipeline.dynamodb.meta.events.unregister("before-send.dynamodb.PutItem", concurrent_correction)
    assert result == {"batchItemFailures": [{"itemIdentifier": late["dynamodb"]["SequenceNumber"]}]}
    held = {item["timestamp"]: item for item in pipeline.items("BTC-USD")}[int(target)]
    assert held["ema_12"] == 1 and held["corrected_at"] == 9999999999999  # the newer write stands
    assert pipeline.enrich([late]) == {"batchItemFailures": []}          # Lambda's retry
    assert_matches_pandas(pipeline.items("BTC-USD"), prices, pipeline.settings.windows)


# ---- the planner alone, over an in-memory table ------------------------------------------------

class MemoryTable:
    """One symbol's items (typed, as DynamoDB returns them), read the way the planner's
    `TickReader` reads the prices table, and written the way the service writes them."""

    def __init__(self, symbol: str = "MEM-USD") -> None:
        self.symbol = symbol
        self.items: dict[int, dict[str, Any]] = {}
        self.keys: list[int] = []
        self.sequence = 0

    def put(self, index: int, price: float | Decimal, venue: str = "binance") -> dict[str, Any]:
        """Store tick `index` (one second apart) of `venue` and return its stream record."""
        event_ms = START + index * 1000
        item = to_item(PriceUpdate(self.symbol, event_ms, Decimal(str(price)), venue, "test", event_ms),
                       sort_key(event_ms, 0))
        key = int(item["timestamp"]["N"])
        self.items[key] = item
        bisect.insort(self.keys, key)
        self.sequence += 1
        return stream_record(item, self.sequence)

    def _kept(self, keys: list[int], venue: str | None) -> list[int]:
        return keys if venue is None else [k for k in keys if self.items[k]["exchange"]["S"] == venue]

    def newest_first(self, symbol: str, newest: int | None, page_size: int, venue: str | None = None
                     ) -> Iterator[tuple[list[dict], bool]]:
        keys = self.keys if newest is None else self.keys[:bisect.bisect_right(self.keys, newest)]
        ordered = keys[::-1]
        for start in range(0, max(len(ordered), 1), page_size):
            page = self._kept(ordered[start:start + page_size], venue)
            yield [dict(self.items[k]) for k in page], start + page_size >= len(ordered)

    def oldest_first(self, symbol: str, after: int, page_sizes: Sequence[int], max_items: int,
                     venue: str | None = None) -> Iterator[tuple[list[dict], bool]]:
        keys = self._kept(self.keys[bisect.bisect_right(self.keys, after):], venue)[:max_items]
        position, sizes = 0, [*page_sizes]
        while True:
            size = sizes.pop(0) if len(sizes) > 1 else sizes[0]
            page = keys[position:position + size]
            position += size
            yield [dict(self.items[k]) for k in page], position >= len(keys)
            if position >= len(keys):
                return

    def enrich(self, records: list[dict], max_after: int | None = None) -> planner.SymbolPlan:
        """What the service stores for one symbol's batch (first puts, then corrections)."""
        plans = self.enrich_venues(records, max_after)
        assert len(plans) == 1, plans
        return next(iter(plans.values()))

    def enrich_venues(self, records: list[dict], max_after: int | None = None) -> dict[str, planner.SymbolPlan]:
        """`enrich` for a batch of several venues: each venue's plan."""
        plans = planner.plan_symbol([planner.parse_record(r) for r in records], self, Windows(),
                                    max_after or planner.MAX_CORRECTED_ITEMS)
        for plan in plans.values():
            assert not plan.failed, plan.failed
            self._apply(plan)
        return plans

    def _apply(self, plan: planner.SymbolPlan) -> None:
        for entry in plan.planned:
            key = entry.item.timestamp
            if "enriched_at" not in self.items[key]:
                self.items[key] = {**self.items[key], "enriched_at": {"N": "1"},
                                   **{k: {"N": str(v)} for k, v in entry.indicators.items()}}
        for correction in plan.corrections:
            if correction.write:
                kept = {k: v for k, v in correction.image.items()
                        if not k.startswith(("sma_", "ema_", "volatility_", "change_pct"))}
                self.items[correction.timestamp] = {
                    **kept, **{k: {"N": str(v)} for k, v in correction.indicators.items()},
                    "corrected_at": {"N": "2"}, "corrected_by": {"N": str(correction.trigger.timestamp)}}

    def indicators(self) -> list[dict[str, Decimal]]:
        return [{k: Decimal(v["N"]) for k, v in self.items[key].items()
                 if k.startswith(("sma_", "ema_", "volatility_", "change_pct"))} for key in self.keys]


def random_walk(count: int, seed: int, volatility: float = 0.02) -> list[float]:
    generator = random.Random(seed)
    prices = [100.0]
    for _ in range(count - 1):
        prices.append(round(prices[-1] * math.exp(generator.gauss(0, volatility)), 6))
    return prices


def in_order(prices: Sequence[float]) -> MemoryTable:
    """The reference: every tick enriched in order, none late."""
    table = MemoryTable()
    for index, price in enumerate(prices):
        table.enrich([table.put(index, price)])
    return table


def with_late(prices: Sequence[float], late: Sequence[int], max_after: int | None = None
              ) -> tuple[MemoryTable, planner.SymbolPlan]:
    """Every tick but `late` enriched in order, then the late ones in one batch."""
    table = MemoryTable()
    for index, price in enumerate(prices):
        if index not in late:
            table.enrich([table.put(index, price)])
    return table, table.enrich([table.put(index, prices[index]) for index in late], max_after)


def test_the_walk_stops_where_the_stored_values_agree_and_the_rest_is_exact():
    prices = random_walk(1200, seed=7)
    table, plan = with_late(prices, [100])
    assert plan.stop == "agreed"
    assert Windows().history_needed < plan.compared < planner.MAX_CORRECTED_ITEMS
    assert len([c for c in plan.corrections if c.write]) >= plan.compared - 1  # every EMA differs until then
    assert table.indicators() == in_order(prices).indicators()  # bit for bit, all 1,200 items


def test_late_ticks_between_enriched_items_correct_the_items_between_them():
    prices = random_walk(120, seed=3)
    table, plan = with_late(prices, [10, 20])
    assert {c.timestamp for c in plan.corrections} >= {sort_key(START + i * 1000, 0) for i in range(11, 20)}
    assert table.indicators() == in_order(prices).indicators()


def test_the_walk_stops_at_an_item_not_yet_enriched():
    """That item's own record, still to come, enriches it from the corrected history and walks on."""
    prices = random_walk(40, seed=5)
    table = MemoryTable()
    for index in range(16):
        if index != 10:
            table.enrich([table.put(index, prices[index])])
    pending = [table.put(index, prices[index]) for index in range(16, 40)]  # stored, records still to come
    plan = table.enrich([table.put(10, prices[10])])
    assert plan.stop == "unenriched" and plan.compared == 5 and len(plan.corrections) == 5  # 11..15
    for start in range(0, len(pending), 7):
        assert not table.enrich(pending[start:start + 7]).corrections
    assert table.indicators() == in_order(prices).indicators()


def test_the_walk_is_bounded_and_the_residual_obeys_the_geometric_bound():
    """With the limit reached, what remains of an EMA difference d is at most d·(1-alpha)^k."""
    prices = random_walk(400, seed=11)
    reference = in_order(prices).indicators()
    table = MemoryTable()
    for index, price in enumerate(prices):
        if index != 50:
            table.enrich([table.put(index, price)])
    before = table.indicators()
    limit = 60
    plan = table.enrich([table.put(50, prices[50])], max_after=limit)
    assert plan.stop == "limit" and plan.compared == limit
    after = table.indicators()
    first, beyond = 51, 51 + limit  # the first item after the late tick, the first left uncorrected
    for n in Windows().ema:
        name, decay = f"ema_{n}", 1 - 2 / (n + 1)
        d = abs(float(reference[first][name]) - float(before[first - 1][name]))  # before: without tick 50
        residual = abs(float(reference[beyond][name]) - float(after[beyond][name]))
        assert residual <= d * decay ** limit * 1.000001 + 1e-12 * float(reference[beyond][name])
        assert after[beyond - 1][name] == reference[beyond - 1][name]  # the corrected ones are exact


def test_the_read_after_a_batch_stops_at_its_bound(pipeline):
    for index in range(10):
        pipeline.put("READ-USD", START + index * 1000, 100 + index)
    from functions.shared.price_table.ticks import pages_after

    pages = list(pages_after(pipeline.dynamodb, pipeline.table, "READ-USD", sort_key(START, 0), (2, 3), 6))
    assert [len(rows) for rows, _ in pages] == [2, 3, 1]  # growing pages, never past the bound
    assert [int(row["timestamp"]["N"]) for rows, _ in pages for row in rows] == [
        sort_key(START + i * 1000, 0) for i in range(1, 7)]


def test_a_correction_never_resurrects_a_deleted_item(pipeline):
    from functions.shared.price_table.ticks import CorrectionOutcome, put_correction

    record = pipeline.record(pipeline.put("GONE-USD", START, "5"))
    assert pipeline.enrich([record]) == {"batchItemFailures": []}
    [item] = pipeline.dynamodb.scan(TableName=pipeline.table)["Items"]
    pipeline.dynamodb.delete_item(TableName=pipeline.table, Key=record["dynamodb"]["Keys"])
    outcome = put_correction(pipeline.dynamodb, pipeline.table, item, {"ema_12": Decimal("6")}, 2, 1)
    assert outcome is CorrectionOutcome.DELETED and pipeline.items("GONE-USD") == []
