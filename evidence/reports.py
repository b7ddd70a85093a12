"""Rich tables for `invoke bench` and `invoke cost`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from evidence.cost import PRICES, Line, estimate, summary


def bench_table(results: dict[str, Any]) -> list[Table]:
    def spread(value: dict[str, float], digits: int = 1) -> str:
        return f"{value['median']:.{digits}f} ({value['low']:.{digits}f}–{value['high']:.{digits}f})"

    webhook = Table(title=f"webhook processor — handler time against moto's server ({results['date']}, {results['machine']})")
    for name in ("batch", "updates/s median (min–max)", "handler ms", "DynamoDB requests/update", "WRU/update",
                 "item bytes"):
        webhook.add_column(name, justify="right")
    for row in results["webhook"]:
        webhook.add_row(str(row["batch"]), spread(row["updates_per_second"]), spread(row["handler_ms"]),
                        f"{row['dynamodb_requests_per_update']:.2f}", str(row["write_units_per_update"]),
                        str(row["item_bytes"]))
    enricher = Table(title="price enricher — handler time against moto's server")
    for name in ("batch", "symbols", "ms/record median (min–max)", "requests/record", "reads/record",
                 "writes/record", "RRU/record"):
        enricher.add_column(name, justify="right")
    for row in results["enricher"]:
        enricher.add_row(str(row["batch"]), str(row["symbols"]), spread(row["ms_per_record"]),
                         f"{row['dynamodb_requests_per_record']:.2f}", f"{row['reads_per_record']:.2f}",
                         f"{row['writes_per_record']:.2f}", f"{row['read_units_per_record']:.2f}")
    cold = Table(title="cold start proxy — import of the handler from its unpacked zip, fresh interpreter")
    for name in ("function", "import ms median (min–max)", "zip bytes (arm64)"):
        cold.add_column(name, justify="right")
    for row in results["cold_start"]:
        cold.add_row(row["function"], spread(row["import_ms"], 0), f"{row['zip_bytes_arm64']:,}")
    latency = Table(title="end to end on the embedded stack — webhook accepted → SNS notification received")
    for name in ("updates", "received", "p50 ms", "p95 ms", "max ms"):
        latency.add_column(name, justify="right")
    lat = results.get("latency") or {}
    if lat:
        latency.add_row(str(lat["updates"]), str(lat["received"]), f"{lat['p50_ms']:.0f}", f"{lat['p95_ms']:.0f}",
                        f"{lat['max_ms']:.0f}")
    return [webhook, enricher, cold, latency]


def cost_table(lines: list[Line], totals: dict[str, float], updates_per_day: int) -> Table:
    table = Table(title=f"Monthly cost estimate, us-east-1, {updates_per_day:,} updates/day (30 days)")
    for name in ("service", "item", "quantity", "unit price", "USD/month"):
        table.add_column(name, justify="right" if name in ("quantity", "unit price", "USD/month") else "left")
    for line in lines:
        table.add_row(line.service, line.item, f"{line.quantity:,.2f}", f"{line.unit_cost:.10g}",
                      f"{line.monthly:,.2f}")
    table.add_row("", "[bold]total[/bold]", "", "", f"[bold]{totals['monthly_usd']:,.2f}[/bold]")
    table.caption = (f"per million updates: ${totals['per_million_updates_usd']:.2f} "
                     f"(variable part ${totals['variable_per_million_usd']:.2f}); floor set by DynamoDB writes alone "
                     f"(2 WRU per update): ${totals['floor_per_million_usd']:.2f} per million → "
                     f"{totals['ratio_to_floor']:.2f}× the floor. Prices: "
                     + "; ".join(sorted({p.source for p in PRICES.values()})) + " (list prices as known on 2026-11-22, not "
                     "fetched live).")
    return table


def _console() -> Console:
    # A wide table even when the output is a pipe (CI logs), where rich would assume 80 columns.
    return Console(width=None if Console().is_terminal else 160)


def bench_report(quick: bool = False) -> None:
    """`invoke bench`: run the benchmarks, save them, print the tables."""
    from dataclasses import asdict

    from evidence.bench import run_benchmarks, save

    console = _console()
    results = run_benchmarks(quick=quick, echo=lambda line: console.print(f"[dim]{line}[/dim]"))
    path = save(results)
    for table in bench_table(asdict(results)):
        console.print(table)
    console.print(f"written to {path}")


def cost_report(updates_per_day: int, batch_size: int, symbols: int) -> None:
    """`invoke cost`: price the measured figures of results/bench.json."""
    from evidence.bench import load

    lines = estimate(load(), updates_per_day, batch_size, symbols)
    _console().print(cost_table(lines, summary(lines, updates_per_day), updates_per_day))
