"""The cost model: each price has a source; totals add up; the DynamoDB-write floor is a floor."""

from __future__ import annotations

import pytest

from evidence.cost import PRICES, estimate, summary

BENCH = {
    "webhook": [{"batch": b, "dynamodb_requests_per_update": 1.0, "write_units_per_update": 1, "item_bytes": 94}
                for b in (1, 10, 100, 1000)],
    "enricher": [{"batch": b, "symbols": s, "reads_per_record": (s if s < b else b) / b, "writes_per_record": 1.0,
                  "read_units_per_record": 0.2, "write_units_per_record": 1} for b in (1, 10, 100) for s in (1, 20)],
}


def test_every_price_names_its_source():
    assert all(price.usd > 0 and price.source.startswith("aws.amazon.com/") for price in PRICES.values())


def test_a_million_updates_a_day_costs_more_than_the_write_floor_and_adds_up():
    lines = estimate(BENCH, 1_000_000, batch_size=100, symbols=20)
    totals = summary(lines, 1_000_000)
    assert {line.service for line in lines} >= {"Lambda", "DynamoDB", "SNS", "SQS", "CloudWatch"}
    assert totals["monthly_usd"] == pytest.approx(sum(line.monthly for line in lines))
    assert totals["floor_per_million_usd"] == pytest.approx(1.25)  # 2 WRU × $0.625 per million
    assert totals["per_million_updates_usd"] > totals["floor_per_million_usd"]
    writes = next(line for line in lines if line.item.startswith("write request units"))
    assert writes.quantity == 30_000_000 * 2


def test_bigger_webhook_batches_cost_less_per_update():
    small = summary(estimate(BENCH, 1_000_000, batch_size=1, symbols=1), 1_000_000)
    large = summary(estimate(BENCH, 1_000_000, batch_size=100, symbols=20), 1_000_000)
    assert large["variable_per_million_usd"] < small["variable_per_million_usd"]
