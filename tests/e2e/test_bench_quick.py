"""`invoke bench` in its quick mode, only to prove it still runs and reports every section
(numbers that are timings are not judged here; counts that follow from the code are)."""

from __future__ import annotations

from dataclasses import asdict

from evidence.bench import run_benchmarks
from evidence.bench_api import KINDS, QUICK_SIZES
from evidence.reports import bench_table


def test_quick_benchmarks_run_and_report_every_section(stack):
    results = run_benchmarks(quick=True, stack=stack, echo=lambda _: None)
    assert [row["batch"] for row in results.webhook] == [1, 10, 100]
    assert all(row["dynamodb_requests_per_update"] >= 1 for row in results.webhook)
    assert {(row["batch"], row["symbols"], row["venues"]) for row in results.enricher} == {
        (1, 1, 1), (10, 1, 1), (1, 20, 1), (10, 20, 1), (12, 20, 3)}
    venues = next(row for row in results.enricher if row["venues"] == 3)
    # 12 records of 12 series: one history read and one put each; candle upkeep on its own table
    assert venues["dynamodb_requests_per_record"] == venues["reads_per_record"] + venues["writes_per_record"] == 2
    assert venues["candles"] and venues["candle_requests_per_record"] > 0
    assert {row["function"] for row in results.cold_start} == {"webhook_processor", "price_enricher", "log_alerts",
                                                               "price_api"}
    assert all("net_import_ms" in row and "net_import_ms_no_bytecode" in row for row in results.cold_start)
    assert results.latency["received"] == results.latency["updates"] == 50

    # a late record: the late record's own put + one per later item it corrects (11..24)
    assert results.late_record["writes_per_late_record"] == results.late_record["items_corrected"] + 1 == 15

    # the read API: every request kind answered in full, priced from what it read
    requests = {row["kind"]: row for row in results.api["requests"]}
    assert list(requests) == list(KINDS)
    assert requests["latest_20_symbols"]["items_returned"] == 20
    assert requests["latest_20_symbols"]["read_units"] == 20          # one Query of one item per symbol
    assert requests["ticks_1000"]["items_returned"] == QUICK_SIZES.ticks
    assert requests["candles_1m_1_day"]["items_returned"] == QUICK_SIZES.day_minutes
    assert requests["candles_1d_1_year"]["items_returned"] == QUICK_SIZES.year_days
    assert all(row["dynamodb_requests"] <= 3 for kind, row in requests.items() if kind.startswith("candles"))
    assert results.candles["updates"] > 0 and results.candles["write_units_per_update"] > 0
    assert results.candles["venues"] == 3 and [run["batch"] for run in results.candles["runs"]] == [12]

    # token senders and the relay: the token requests were accepted cold and warm; the relay forwarded every tick
    assert results.token["cold_total_ms"]["n"] == 2 and results.token["warm_url_round_trip_ms"]["n"] == 20
    assert 0.01 <= results.relay["loopback"]["webhook_requests_per_tick"] <= 0.02  # batches of up to 100
    assert results.relay["through_stack"]["accepted"] == 200
    assert len(bench_table(asdict(results))) == 9
