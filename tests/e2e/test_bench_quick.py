"""`invoke bench` in its quick mode, only to prove it still runs (numbers are not judged here)."""

from __future__ import annotations

from dataclasses import asdict

from evidence.bench import run_benchmarks
from evidence.reports import bench_table


def test_quick_benchmarks_run_and_report_every_section(stack):
    results = run_benchmarks(quick=True, stack=stack, echo=lambda _: None)
    assert [row["batch"] for row in results.webhook] == [1, 10, 100]
    assert all(row["dynamodb_requests_per_update"] >= 1 for row in results.webhook)
    assert {(row["batch"], row["symbols"]) for row in results.enricher} == {(1, 1), (10, 1), (1, 20), (10, 20)}
    assert {row["function"] for row in results.cold_start} == {"webhook_processor", "price_enricher", "log_alerts"}
    assert results.latency["received"] == results.latency["updates"] == 50
    assert len(bench_table(asdict(results))) == 4
