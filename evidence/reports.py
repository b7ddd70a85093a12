"""Rich tables for `invoke bench` and `invoke cost`.

Targets are shown next to the figure they judge ("yes"/"MISSED"), never asserted: the
benchmarks report, the reader decides (docs/evidence.md).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from evidence.cost import (
    CANDLE_WRU_TARGET,
    DAYS_PER_MONTH,
    ENRICHER_REQUESTS_BEFORE,
    PRICE_DATE,
    PRICES,
    RATIO_TO_FLOOR_BEFORE,
    SENDERS,
    CostInputError,
    Line,
    api_costs,
    estimate,
    relay_batch,
    storage_table_rows,
    summary,
    venue_figures,
)

COLD_START_TARGET_MS = 40.0  # issue 11: a handler's own import, net of boto3


def spread(value: dict[str, float], digits: int = 1) -> str:
    """median (min–max)"""
    return f"{value['median']:.{digits}f} ({value['low']:.{digits}f}–{value['high']:.{digits}f})"


def verdict(value: float, target: float | None) -> str:
    if target is None:
        return "–"
    return f"yes (≤ {target:g})" if value <= target else f"MISSED (> {target:g})"


def _table(title: str, columns: tuple[str, ...], left: int = 1) -> Table:
    table = Table(title=title)
    for index, name in enumerate(columns):
        table.add_column(name, justify="left" if index < left else "right")
    return table


def bench_table(results: dict[str, Any]) -> list[Table]:
    """One table per section of results/bench.json, in the order `invoke bench` runs them."""
    webhook = _table(f"webhook processor — handler time against moto's server ({results['date']}, "
                     f"{results['machine']})",
                     ("batch", "updates/s median (min–max)", "handler ms", "DynamoDB requests/update", "WRU/update",
                      "item bytes"))
    for row in results["webhook"]:
        webhook.add_row(str(row["batch"]), spread(row["updates_per_second"]), spread(row["handler_ms"]),
                        f"{row['dynamodb_requests_per_update']:.2f}", str(row["write_units_per_update"]),
                        str(row["item_bytes"]))
    enricher = _table("price enricher — handler time against moto's server (requests and units: the tick table's; "
                      "candles: the candle table's, when the row maintains them)",
                      ("batch", "symbols × venues", "ms/record median (min–max)", "requests/record", "reads/record",
                       "writes/record", "RRU/record", "candle requests/record", "candle RRU/record"))
    for row in results["enricher"]:
        candles = row.get("candles", False)
        enricher.add_row(str(row["batch"]), f"{row['symbols']} × {row.get('venues', 1)}", spread(row["ms_per_record"]),
                         f"{row['dynamodb_requests_per_record']:.2f}", f"{row['reads_per_record']:.2f}",
                         f"{row['writes_per_record']:.2f}", f"{row['read_units_per_record']:.2f}",
                         f"{row['candle_requests_per_record']:.2f}" if candles else "–",
                         f"{row['candle_read_units_per_record']:.2f}" if candles else "–")
    tables = [webhook, enricher]
    if results.get("late_record"):
        tables.append(late_record_table(results["late_record"]))
    tables.append(cold_start_table(results["cold_start"]))
    latency = _table("end to end on the embedded stack — webhook accepted → SNS notification received",
                     ("updates", "received", "p50 ms", "p95 ms", "max ms"))
    lat = results.get("latency") or {}
    if lat:
        latency.add_row(str(lat["updates"]), str(lat["received"]), f"{lat['p50_ms']:.0f}", f"{lat['p95_ms']:.0f}",
                        f"{lat['max_ms']:.0f}")
    tables.append(latency)
    if results.get("api"):
        tables.append(api_table(results["api"]))
    if results.get("candles"):
        tables.append(candle_table(results["candles"]))
    if results.get("token"):
        tables.append(token_table(results["token"]))
    if results.get("relay"):
        tables.append(relay_table(results["relay"]))
    return tables


def late_record_table(late: dict[str, Any]) -> Table:
    table = _table(f"a late record (issue 12 item 8) against moto's server — {late['scenario']}",
                   ("writes per late record", "reads per late record", "items corrected", "later items enriched"),
                   left=0)
    table.add_row(f"{late['writes_per_late_record']:.0f}", f"{late['reads_per_late_record']:.0f}",
                  f"{late['items_corrected']:.0f}", f"{late['later_items_enriched']:.0f}")
    table.caption = "writes = its own conditional put + one conditional put per later item whose indicators it changes"
    return table


def cold_start_table(rows: list[dict[str, Any]]) -> Table:
    """Issue 11: each handler's import net of boto3, with the zip's bytecode and without."""
    table = _table("cold start proxy — handler import from its unpacked zip in a fresh interpreter "
                   f"(ms, median (min–max); target: net of boto3 ≤ {COLD_START_TARGET_MS:g} ms)",
                   ("function", "python", "import incl. boto3", "boto3 alone", "net of boto3",
                    "net, no bytecode", "after boto3 (wall)", "after boto3 (CPU)", "target (net)",
                    "zip bytes (arm64)"))
    for row in rows:
        if "net_import_ms" not in row:  # results written before issue 11's figures existed
            table.add_row(row["function"], "", spread(row["import_ms"], 0), "", "", "", "", "", "",
                          f"{row['zip_bytes_arm64']:,}")
            continue
        table.add_row(row["function"], row.get("python", ""), spread(row["import_ms"], 0), spread(row["boto3_ms"], 0),
                      spread(row["net_import_ms"], 0), spread(row["net_import_ms_no_bytecode"], 0),
                      spread(row["net_after_boto3_ms"], 0), spread(row["net_after_boto3_cpu_ms"], 0),
                      verdict(row["net_import_ms"]["median"], COLD_START_TARGET_MS), f"{row['zip_bytes_arm64']:,}")
    table.caption = ("net of boto3: the handler's interpreter minus a boto3-only one, round by round; after boto3: "
                     "the handler's import timed inside one interpreter once boto3 is loaded (wall and CPU)")
    return table


def api_table(api: dict[str, Any]) -> Table:
    """Issue 13: the read API per request kind."""
    table = _table("price API — `service.process` against moto's server, then with moto's answers replayed "
                   "(ms, median (min–max))",
                   ("request", "items", "response bytes", "handler ms (moto)", "p90", "target (median)",
                    "handler ms (replayed)", "CPU ms", "DynamoDB requests", "RCU/request"))
    for row in api["requests"]:
        table.add_row(row["kind"], f"{row['items_returned']:,}", f"{row['response_bytes']:,}",
                      spread(row["handler_ms"]), f"{row['handler_p90_ms']:.1f}",
                      verdict(row["handler_ms"]["median"], row["target_median_ms"]),
                      spread(row["handler_ms_replayed"]), spread(row["cpu_ms_replayed"]),
                      str(row["dynamodb_requests"]), f"{row['read_units']:g}")
    table.caption = (f"data: {api['records_loaded']:,} ticks stored and enriched (candles maintained by the enricher); "
                     f"enriched tick {api['tick_item_bytes']} bytes. Replayed: the same requests answered from a "
                     "recording of moto's answers (evidence/replay_server.py): the handler's own time, botocore "
                     "included; moto spends ~2–5 ms of CPU per returned item serializing its answers.")
    return table


def candle_table(candles: dict[str, Any]) -> Table:
    table = _table(f"candle and composite maintenance per stored update — {candles['updates_per_day']:,} updates/day, "
                   f"{candles['symbols']} symbols ({candles['simulated_minutes']:g} simulated minutes, moto's server, "
                   "units priced by DynamoDB's rules)",
                   ("batch", "venues", "WRU/update", "budget", "requests read/update", "RRU/update", "updates",
                    "candles written", "largest item bytes", "mean candle bytes"), left=0)
    for run in [candles, *candles.get("runs", [])]:
        table.add_row(str(run["batch"]), str(run.get("venues", 1)), f"{run['write_units_per_update']:.4f}",
                      verdict(run["write_units_per_update"], candles["budget_write_units_per_update"]),
                      f"{run['reads_per_update']:.4f}", f"{run['read_units_per_update']:.4f}",
                      f"{run['updates']:,}", f"{run['candles_written']:,}", str(run["largest_item_bytes"]),
                      f"{run.get('mean_candle_bytes', 0):.0f}")
    table.caption = ("the window closes a candle of every interval at a UTC midnight: more coarse closes than an "
                     "average minute")
    return table


def _quantiles(value: dict[str, float]) -> str:
    return f"{value['p50_ms']:.0f} / {value['p99_ms']:.0f} / {value['max_ms']:.0f} (n={value['n']})"


def token_table(token: dict[str, Any]) -> Table:
    """Issue 14 (a): one-update token requests (TradingView's shape)."""
    table = _table(f"token requests (TradingView-shaped, one update each) on the embedded stack — ms p50 / p99 / max; "
                   f"{token['via']}", ("phase", "p50 / p99 / max (n)"))
    names = {"cold_init_ms": "cold: worker init (unpack, Python 3.12 start, handler import)",
             "cold_unpack_ms": "  of which unpacking the zip (timed alone)",
             "cold_first_request_ms": "cold: first request (clients, secrets read, the write)",
             "cold_total_ms": "cold: init + first request",
             "warm_handler_ms": "warm: handler (a warm worker of the local runtime)",
             "warm_url_round_trip_ms": "warm: round trip through the webhook URL"}
    for key, label in names.items():
        if key in token:
            table.add_row(label, _quantiles(token[key]))
    return table


def relay_table(relay: dict[str, Any]) -> Table:
    """Issue 14 (b): ticks forwarded per second and webhook requests per tick."""
    table = _table("exchange relay — Binance tickers from a loopback websocket, batches of up to 100",
                   ("webhook", "ticks", "seconds", "ticks/s", "webhook invocations/tick"))
    loop = relay.get("loopback")
    if loop:
        table.add_row("loopback stand-in (signature check only)", f"{loop['ticks']:,}", f"{loop['seconds']:.1f}",
                      f"{loop['ticks_per_second']:,.0f}", f"{loop['webhook_requests_per_tick']:.4f}")
    stack = relay.get("through_stack")
    if stack:
        table.add_row("embedded stack's webhook URL", f"{stack['ticks']:,}", f"{stack['seconds']:.1f}",
                      f"{stack['ticks_per_second']:,.0f}", f"{stack['webhook_invocations_per_tick']:.4f}")
    return table


# ---- cost ----------------------------------------------------------------------------------------

def _sources() -> str:
    return "; ".join(sorted({p.source for p in PRICES.values()}))


def cost_table(lines: list[Line], totals: dict[str, float], updates_per_day: int, title: str = "") -> Table:
    table = Table(title=title or f"Monthly cost estimate, us-east-1, {updates_per_day:,} updates/day "
                                 f"({DAYS_PER_MONTH} days)")
    for name in ("service", "item", "quantity", "unit price", "USD/month"):
        table.add_column(name, justify="right" if name in ("quantity", "unit price", "USD/month") else "left")
    for line in lines:
        table.add_row(line.service, line.item, f"{line.quantity:,.2f}", f"{line.unit_cost:.10g}",
                      f"{line.monthly:,.2f}")
    table.add_row("", "[bold]total[/bold]", "", "", f"[bold]{totals['monthly_usd']:,.2f}[/bold]")
    table.caption = (f"per million updates: ${totals['per_million_updates_usd']:.2f} "
                     f"(variable part ${totals['variable_per_million_usd']:.2f}); floor set by DynamoDB writes alone "
                     f"(2 WRU per update): ${totals['floor_per_million_usd']:.2f} per million → "
                     f"{totals['ratio_to_floor']:.2f}× the floor ({totals['variable_ratio_to_floor']:.2f}× for the "
                     f"variable part). Prices: {_sources()} (list prices as known on {PRICE_DATE}, not fetched live).")
    return table


def storage_table(bench: dict[str, Any], updates_per_day: int, symbols: int, retention_days: int = 30) -> Table:
    table = _table(f"DynamoDB storage + PITR, {updates_per_day:,} updates/day over {symbols} symbols "
                   "(month's average; items + 100 bytes each)", ("what", "month", "GB", "USD/month"))
    for row in storage_table_rows(bench, updates_per_day, symbols, retention_days):
        table.add_row(row["what"], str(row["month"]), f"{row['gb']:,.2f}", f"{row['usd_month']:,.2f}")
    table.caption = ("without a retention the ticks' storage grows every month (month 12 shown); with one it is "
                     "bounded from the month the retention is reached. Candles are kept in both cases.")
    return table


def venue_table(bench: dict[str, Any], updates_per_day: int, symbols: int, venues: int) -> Table:
    """The figures that keep the cost honest with venues, at batches of 100 and at the batch the
    enricher's 1 s window really forms at this rate (each from the nearest measured row)."""
    table = _table(f"Venues: {symbols} symbols × {venues} venues, {updates_per_day:,} updates/day — per enricher batch",
                   ("enricher batch (measured)", "enricher requests/record", "enricher RRU/record",
                    "candle + composite WRU/update", "candle RRU/update", "ratio to the write floor"))
    for row in venue_figures(bench, updates_per_day, symbols, venues):
        table.add_row(f"{row['batch']} ({row['measured_batch']}, {row['venues']} venue(s))",
                      f"{row['requests_per_record']:.2f} " + verdict(row["requests_per_record"],
                                                                      ENRICHER_REQUESTS_BEFORE),
                      f"{row['read_units_per_record']:.2f}",
                      f"{row['candle_wru_per_update']:.4f} " + verdict(row["candle_wru_per_update"], CANDLE_WRU_TARGET),
                      f"{row['candle_rru_per_update']:.4f}",
                      f"{row['ratio_to_floor']:.2f}× " + verdict(round(row["ratio_to_floor"], 2),
                                                                  RATIO_TO_FLOOR_BEFORE))
    table.caption = (f"targets: requests/record and the ratio must not rise above the single-venue "
                     f"{ENRICHER_REQUESTS_BEFORE:.2f} and {RATIO_TO_FLOOR_BEFORE:.2f}×; upkeep ≤ {CANDLE_WRU_TARGET}")
    return table


def api_cost_table(bench: dict[str, Any]) -> Table:
    rows = api_costs(bench)
    memory = rows[0]["memory_mb"] if rows else 0
    table = _table(f"price API — USD per million requests of each kind ({memory} MB, us-east-1)",
                   ("request", "items", "RCU/request", "Lambda ms (modelled)", "Lambda", "DynamoDB",
                    "data transfer", "CloudWatch + X-Ray", "total per million"))
    for row in rows:
        spent = row["by_service"]
        table.add_row(row["kind"], f"{row['items']:,}", f"{row['read_units']:g}", f"{row['duration_ms']:.0f}",
                      f"{spent['Lambda']:.2f}", f"{spent['DynamoDB']:.2f}", f"{spent['Data transfer']:.2f}",
                      f"{spent['CloudWatch'] + spent['X-Ray']:.2f}", f"{row['per_million_usd']:.2f}")
    table.caption = ("Lambda ms: the handler's CPU on this machine (answers replayed) × 1,769 MB / memory (Lambda's "
                     "CPU share), plus 5 ms per sequential DynamoDB request; function URLs cost nothing extra")
    return table


def _console() -> Console:
    # A wide table even when the output is a pipe (CI logs), where rich would assume 80 columns.
    return Console(width=None if Console().is_terminal else 200)


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


def cost_report(updates_per_day: int, batch_size: int | None = None, symbols: int | None = None,
                sender: str = "default", month: int = 1, tick_retention_days: int | None = None,
                venues: int | None = None) -> None:
    """`invoke cost`: price the measured figures of results/bench.json for one sender."""
    from evidence.bench import load

    if sender not in SENDERS:
        raise CostInputError(f"sender: one of {', '.join(SENDERS)}, got {sender!r}")
    chosen = SENDERS[sender]
    batch = batch_size or chosen.batch_size
    symbol_count = symbols or chosen.symbols
    venue_count = venues or chosen.venues
    if venue_count < 1:
        raise CostInputError(f"venues: at least 1, got {venue_count}")
    bench = load()
    console = _console()
    lines = estimate(bench, updates_per_day, batch, symbol_count, month=month,
                     tick_retention_days=tick_retention_days, sender=sender, venues=venue_count)
    title = (f"Monthly cost estimate, us-east-1, {updates_per_day:,} updates/day — sender {sender}: {chosen.note} "
             f"(batches of {batch}, {symbol_count} symbols × {venue_count} venues)")
    console.print(cost_table(lines, summary(lines, updates_per_day), updates_per_day, title))
    if sender == "relay" and batch_size is None:
        window = relay_batch(updates_per_day, chosen.batch_size)
        if window < chosen.batch_size:
            slower = summary(estimate(bench, updates_per_day, window, symbol_count, month=month,
                                      tick_retention_days=tick_retention_days, sender=sender, venues=venue_count),
                             updates_per_day)
            console.print(f"Note: at {updates_per_day / 86_400:.1f} updates/s the relay's 1 s batch window sends "
                          f"~{window} ticks per request, not {chosen.batch_size}: "
                          f"${slower['per_million_updates_usd']:.2f} per million "
                          f"({slower['ratio_to_floor']:.2f}× the floor).")
    console.print(storage_table(bench, updates_per_day, symbol_count))
    for retention in (None, 30):
        late = summary(estimate(bench, updates_per_day, batch, symbol_count, month=12, tick_retention_days=retention,
                                sender=sender, venues=venue_count), updates_per_day)
        label = "no tick retention" if retention is None else f"tick_retention_days={retention}"
        console.print(f"In month 12 with {label}: ${late['monthly_usd']:,.2f} per month, "
                      f"${late['per_million_updates_usd']:.2f} per million updates "
                      f"({late['ratio_to_floor']:.2f}× the floor).")
    console.print(venue_table(bench, updates_per_day, symbol_count, venue_count))
    if bench.get("api"):
        console.print(api_cost_table(bench))
