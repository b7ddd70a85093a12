"""The cost model: each price has a source; totals add up; the DynamoDB-write floor is a floor;
the senders, the storage over time and the read API's per-request lines follow from their inputs."""

from __future__ import annotations

import pytest

from evidence.cost import (
    CANDLES_PER_SYMBOL_DAY,
    DAYS_PER_MONTH,
    LAMBDA_FULL_VCPU_MB,
    PRICES,
    CostInputError,
    api_costs,
    api_duration_ms,
    api_lines,
    candle_units_per_update,
    distinct_symbols,
    estimate,
    function_memory_mb,
    relay_batch,
    storage_gb,
    storage_table_rows,
    stored_days,
    summary,
    venue_figures,
)

BENCH = {
    "webhook": [{"batch": b, "dynamodb_requests_per_update": 1.0, "write_units_per_update": 1, "item_bytes": 94}
                for b in (1, 10, 100, 1000)],
    "enricher": [{"batch": b, "symbols": s, "reads_per_record": (s if s < b else b) / b, "writes_per_record": 1.0,
                  "read_units_per_record": 0.2, "write_units_per_record": 1} for b in (1, 10, 100) for s in (1, 20)],
}
API_ROW = {"kind": "candles_1m_1_day", "items_returned": 1440, "read_units": 37.0, "response_bytes": 150_000,
           "sequential_reads": 3, "cpu_ms": {"median": 40.0}, "cpu_ms_replayed": {"median": 20.0}}
MEASURED = {**BENCH, "candles": {"write_units_per_update": 0.07, "read_units_per_update": 0.25,
                                 "mean_candle_bytes": 90.0, "symbols": 20, "updates_per_day": 1_000_000,
                                 "batch": 100},
            "api": {"tick_item_bytes": 230, "requests": [API_ROW]}}


def line(lines, prefix):
    return next(entry for entry in lines if entry.item.startswith(prefix))


def test_every_price_names_its_source():
    assert all(price.usd > 0 and price.source.startswith("aws.amazon.com/") for price in PRICES.values())


def test_a_million_updates_a_day_costs_more_than_the_write_floor_and_adds_up():
    lines = estimate(BENCH, 1_000_000, batch_size=100, symbols=20)
    totals = summary(lines, 1_000_000)
    assert {line.service for line in lines} >= {"Lambda", "DynamoDB", "SNS", "SQS", "CloudWatch", "Secrets Manager"}
    assert totals["monthly_usd"] == pytest.approx(sum(line.monthly for line in lines))
    assert totals["floor_per_million_usd"] == pytest.approx(1.25)  # 2 WRU × $0.625 per million
    assert totals["per_million_updates_usd"] > totals["floor_per_million_usd"]
    assert line(lines, "write request units (store").quantity == 30_000_000 * 2


def test_bigger_webhook_batches_cost_less_per_update():
    small = summary(estimate(BENCH, 1_000_000, batch_size=1, symbols=1), 1_000_000)
    large = summary(estimate(BENCH, 1_000_000, batch_size=100, symbols=20), 1_000_000)
    assert large["variable_per_million_usd"] < small["variable_per_million_usd"]


def test_candle_maintenance_is_priced_from_its_measured_units_per_update():
    lines = estimate(MEASURED, 1_000_000, enricher_batch=100)  # the measured scenario: as measured
    assert line(lines, "write request units (candles").quantity == pytest.approx(30_000_000 * 0.07)
    assert line(lines, "read request units (candle").quantity == pytest.approx(30_000_000 * 0.25)
    assert not any("candles:" in entry.item for entry in estimate(BENCH, 1_000_000))  # not measured: no line


def test_candle_units_scale_with_symbols_per_update_and_per_batch():
    candles = MEASURED["candles"]
    assert candle_units_per_update(candles, 1_000_000, 20, 100) == pytest.approx((0.07, 0.25))
    writes, reads = candle_units_per_update(candles, 1_000_000, 1, 12)  # one symbol, batches of 12
    assert writes == pytest.approx(0.07 / 20)
    assert reads == pytest.approx(0.25 * (1 / 12) / (distinct_symbols(20, 100) / 100))
    smaller_batches = candle_units_per_update(candles, 1_000_000, 20, 12)  # more symbols per record
    assert smaller_batches[0] == pytest.approx(0.07) and smaller_batches[1] > 0.25 * 3
    assert candle_units_per_update(candles, 10, 20, 1)[0] == 7.0  # capped: one candle per interval + registry


def test_distinct_symbols_in_a_batch():
    assert distinct_symbols(1, 12) == 1
    assert distinct_symbols(20, 1) == pytest.approx(1)
    assert 19.8 < distinct_symbols(20, 100) < 20 and 9 < distinct_symbols(20, 12) < 9.5


def test_tradingview_pays_one_webhook_invocation_per_update_and_the_relay_pays_for_its_task():
    tradingview = estimate(BENCH, 1_000_000, batch_size=1, symbols=1, sender="tradingview")
    relay = estimate(BENCH, 1_000_000, batch_size=100, symbols=20, sender="relay")
    default = estimate(BENCH, 1_000_000, batch_size=100, symbols=20)
    monthly = 1_000_000 * DAYS_PER_MONTH
    enricher_calls = monthly / 12  # 11.6 updates/s fill batches of 12
    assert line(tradingview, "requests").quantity == pytest.approx(monthly + enricher_calls)
    assert line(relay, "requests").quantity == pytest.approx(monthly / 100 + enricher_calls)
    extra = {entry.item: entry.monthly for entry in relay if entry.service in ("Fargate", "VPC")}
    assert sum(extra.values()) == pytest.approx(0.25 * 720 * 0.03238 + 0.5 * 720 * 0.00356 + 720 * 0.005)
    assert summary(relay, 1_000_000)["monthly_usd"] == pytest.approx(
        summary(default, 1_000_000)["monthly_usd"] + sum(extra.values()))
    assert (summary(tradingview, 1_000_000)["variable_per_million_usd"]
            > summary(relay, 1_000_000)["variable_per_million_usd"])


def test_the_relay_fills_batches_of_100_only_above_100_ticks_a_second():
    assert relay_batch(1_000_000) == 12         # 11.6 ticks/s, 1 s window
    assert relay_batch(86_400 * 250) == 100    # capped at the batch size
    assert relay_batch(10) == 1


@pytest.mark.parametrize(("month", "retention", "days"), [
    (1, None, 15), (12, None, 345), (1, 30, 15), (2, 30, 30), (12, 30, 30), (2, 45, 41.25), (1, 10, 25 / 3),
])
def test_stored_days_average_the_month(month, retention, days):
    assert stored_days(month, retention) == pytest.approx(days)


def test_stored_days_refuse_month_zero():
    with pytest.raises(CostInputError):
        stored_days(0, None)


def test_ticks_grow_without_a_retention_and_are_bounded_with_one_while_candles_are_kept():
    unbounded = [storage_gb(MEASURED, 1_000_000, 20, month, None)["ticks"] for month in (1, 12, 24)]
    bounded = [storage_gb(MEASURED, 1_000_000, 20, month, 30)["ticks"] for month in (1, 12, 24)]
    assert unbounded[0] < unbounded[1] < unbounded[2]
    assert bounded[1] == bounded[2] == pytest.approx(30 * 1_000_000 * (230 + 16 + 100) / 1e9)
    candles = storage_gb(MEASURED, 1_000_000, 20, 12, 30)["candles"]
    assert candles == pytest.approx(345 * CANDLES_PER_SYMBOL_DAY * 20 * (90 + 100) / 1e9)
    rows = storage_table_rows(MEASURED, 1_000_000, 20)
    assert [row["month"] for row in rows] == [1, 12] * 3
    assert all(row["usd_month"] == pytest.approx(row["gb"] * 0.45) for row in rows)


def test_candles_per_symbol_day_follow_the_intervals_in_code():
    from functions.shared.candles import INTERVALS

    assert CANDLES_PER_SYMBOL_DAY == sum(86_400_000 // size for size in INTERVALS.values()) == 1855


def test_read_api_duration_scales_the_measured_cpu_by_lambdas_cpu_share():
    assert api_duration_ms(API_ROW, 256) == pytest.approx(20.0 * LAMBDA_FULL_VCPU_MB / 256 + 3 * 5.0)
    assert api_duration_ms(API_ROW, 3008) == pytest.approx(20.0 + 15.0)  # never faster than this machine's core


def test_read_api_lines_per_million_requests():
    lines = api_lines(API_ROW, 1e6, 256)
    assert line(lines, "read request units").monthly == pytest.approx(37.0 * 0.125)
    assert line(lines, "responses").quantity == pytest.approx(150.0)  # GB out
    assert line(lines, "requests").monthly == pytest.approx(0.20)
    (row,) = api_costs(MEASURED, memory_mb=256)
    assert row["per_million_usd"] == pytest.approx(sum(entry.monthly for entry in lines))
    assert set(row["by_service"]) == {"Lambda", "DynamoDB", "Data transfer", "CloudWatch", "X-Ray"}


def test_function_memory_comes_from_the_environment_model():
    memory = function_memory_mb()
    assert memory["price_api"] == 256 and memory["webhook"] == 1024 and memory["enricher"] == 512


VENUE_ROWS = [{"batch": b, "symbols": 20, "venues": 3, "candles": True, "reads_per_record": 20 / b if b == 100 else 1.0,
               "writes_per_record": 1.0, "dynamodb_requests_per_record": 1.0 + (0.2 if b == 100 else 1.0),
               "read_units_per_record": 0.8 if b == 100 else 3.0, "write_units_per_record": 1}
              for b in (100, 12)]
SINGLE_ROWS = [{**row, "dynamodb_requests_per_record": row["reads_per_record"] + 1} for row in BENCH["enricher"]]
VENUE_BENCH = {**MEASURED, "enricher": [*SINGLE_ROWS, *VENUE_ROWS],
               "candles": {**MEASURED["candles"], "venues": 3,
                           "runs": [{**MEASURED["candles"], "batch": 12, "write_units_per_update": 0.09,
                                     "read_units_per_update": 1.0}]}}


def test_venue_figures_come_from_the_three_venue_rows_at_100_and_at_the_window_batch():
    rows = venue_figures(VENUE_BENCH, 1_000_000, 20, 3)
    assert [(row["batch"], row["measured_batch"], row["venues"]) for row in rows] == [(100, 100, 3), (12, 12, 3)]
    assert [row["requests_per_record"] for row in rows] == [1.2, 2.0]
    assert [row["read_units_per_record"] for row in rows] == [0.8, 3.0]
    assert [row["candle_wru_per_update"] for row in rows] == pytest.approx([0.07, 0.09])
    assert rows[0]["requests_met"] and not rows[1]["requests_met"]


def test_venue_figures_move_with_their_measured_inputs():
    before = venue_figures(VENUE_BENCH, 1_000_000, 20, 3)
    more_reads = {**VENUE_BENCH, "enricher": [{**row, "read_units_per_record": row["read_units_per_record"] * 2,
                                               "dynamodb_requests_per_record": 1.5}
                                              if row.get("venues") == 3 else row for row in VENUE_BENCH["enricher"]]}
    after = venue_figures(more_reads, 1_000_000, 20, 3)
    assert [row["read_units_per_record"] for row in after] == [1.6, 6.0]
    assert [row["requests_per_record"] for row in after] == [1.5, 1.5]
    assert all(a["ratio_to_floor"] > b["ratio_to_floor"] for a, b in zip(after, before, strict=True))
    heavier = {**VENUE_BENCH, "candles": {**VENUE_BENCH["candles"], "write_units_per_update": 0.2}}
    judged = venue_figures(heavier, 1_000_000, 20, 3)[0]
    assert judged["candle_wru_per_update"] == pytest.approx(0.2) and not judged["candle_met"]
    assert judged["ratio_to_floor"] > before[0]["ratio_to_floor"]


def test_venue_figures_follow_the_rate_to_the_window_batch():
    assert [row["batch"] for row in venue_figures(VENUE_BENCH, 500_000, 20, 3)] == [100, 6]
    assert [row["batch"] for row in venue_figures(VENUE_BENCH, 20_000_000, 20, 3)] == [100]


def test_one_venue_prices_the_single_venue_rows():
    rows = venue_figures(VENUE_BENCH, 1_000_000, 20, 1)
    assert all(row["venues"] == 1 for row in rows)
    assert rows[0]["read_units_per_record"] == 0.2


def test_invoke_cost_prints_the_venue_lines(tmp_path, monkeypatch, capsys):
    import json

    from evidence import bench, reports

    (tmp_path / "bench.json").write_text(json.dumps(VENUE_BENCH))
    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(bench.load, "__defaults__", (tmp_path,))
    monkeypatch.setattr(reports, "_console", lambda: __import__("rich.console").console.Console(width=300))
    reports.cost_report(1_000_000)
    text = capsys.readouterr().out
    assert "20 symbols × 3 venues" in text
    assert "MISSED (> 1.2)" in text      # 2.00 requests per record at the window's 12
    assert "3.00" in text and "0.0900" in text


def test_venues_below_one_are_refused_before_anything_is_read(tmp_path, monkeypatch):
    from evidence import bench, reports

    monkeypatch.setattr(bench.load, "__defaults__", (tmp_path,))
    with pytest.raises(CostInputError, match="venues: at least 1"):
        reports.cost_report(1_000_000, venues=-1)
