"""`invoke demo`: the whole pipeline on this machine, fed with real historical prices.

Starts the embedded stack, deploys it with terraform, replays the feed as signed webhooks
in batches, then shows the latest price and indicators per symbol, the SNS notifications a
subscriber received, and a PNG chart. Everything it started is stopped before it returns.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from delivery.local import LocalDeployment
from senders.webhook import signed_post
from emulator.subscriber import TopicSubscriber
from delivery.paths import RESULTS_DIR, ROOT
from errors import PipelineError
from demo.price_data import SOURCE_NOTE, Bar, load_series

FEED = {"BTC-USD": ("BTCUSD", "bitstamp", None), "EUR-USD": ("EURUSD", "fxcm", 300)}
BATCH_SIZE = 50
INDICATOR_COLUMNS = ("sma_5", "sma_20", "ema_12", "ema_26", "volatility_20", "change_pct")
_deserializer = TypeDeserializer()


@dataclass
class DemoResult:
    sent: int
    accepted: int
    items: dict[str, list[dict[str, Any]]]
    notifications: int
    chart: Path
    timings: dict[str, float]

    @property
    def complete(self) -> bool:
        """Every update sent was stored, enriched and announced."""
        return sum(len(v) for v in self.items.values()) == self.sent and self.notifications == self.sent


class DemoIncomplete(PipelineError):
    """Some updates sent were not stored, enriched and announced."""


def feed() -> list[tuple[str, str, str, Bar]]:
    """(symbol, sent symbol, exchange, bar), oldest first within each symbol."""
    rows = []
    for symbol, (sent_as, exchange, limit) in FEED.items():
        rows += [(symbol, sent_as, exchange, bar) for bar in load_series(symbol, limit)]
    return rows


def replay(stack: LocalDeployment, rows: list[tuple[str, str, str, Bar]], console: Console) -> int:
    info = stack.running
    accepted = 0
    batches = [rows[i:i + BATCH_SIZE] for i in range(0, len(rows), BATCH_SIZE)]
    columns = (TextColumn("replaying signed webhooks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("replay", total=len(rows))
        for batch in batches:
            body = json.dumps([{"symbol": sent_as, "price": str(bar.close), "volume": str(bar.volume),
                                "exchange": exchange, "timestamp": bar.event_ms}
                               for _, sent_as, exchange, bar in batch]).encode()
            status, result = signed_post(info.webhook_url, body, info.secret_source, info.secret)
            if status != 200:
                raise RuntimeError(f"webhook answered {status}: {result}")
            accepted += result["accepted"] + result["duplicates"]
            progress.advance(task, len(batch))
    return accepted


def stored_items(stack: LocalDeployment, symbol: str) -> list[dict[str, Any]]:
    dynamodb, table = stack.aws["dynamodb"], stack.running.outputs["table_name"]
    items, arguments = [], {"TableName": table, "KeyConditionExpression": "symbol = :s",
                            "ExpressionAttributeValues": {":s": {"S": symbol}}}
    while True:
        page = dynamodb.query(**arguments)
        items += [{k: _deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def chart(items: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    symbols = list(items)
    figure, axes = plt.subplots(2, len(symbols), figsize=(7 * len(symbols), 7), sharex="col",
                                gridspec_kw={"height_ratios": [3, 1]}, squeeze=False)
    for column, symbol in enumerate(symbols):
        rows = sorted(items[symbol], key=lambda i: i["timestamp"])
        when = [datetime.fromtimestamp(int(i["timestamp"]) // 1_000_000, timezone.utc) for i in rows]
        top, bottom = axes[0][column], axes[1][column]
        top.plot(when, [float(i["price"]) for i in rows], label="price", color="black", linewidth=1)
        for name in ("sma_5", "sma_20", "ema_12", "ema_26"):
            top.plot(when, [float(i[name]) if name in i else float("nan") for i in rows], label=name, linewidth=0.9)
        top.set_title(f"{symbol}: price and moving averages (from the pipeline's table)")
        top.legend(loc="upper left", fontsize=8)
        if symbol == "BTC-USD":
            top.set_yscale("log")
        bottom.plot(when, [float(i["volatility_20"]) if "volatility_20" in i else float("nan") for i in rows],
                    color="tab:red")
        bottom.set_title("volatility_20 (std of log returns)", fontsize=9)
        locator = mdates.AutoDateLocator()
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def summary_table(items: dict[str, list[dict[str, Any]]]) -> Table:
    table = Table(title="Latest enriched price per symbol")
    for name in ("symbol", "items", "enriched", "latest", "price", *INDICATOR_COLUMNS):
        table.add_column(name, justify="right" if name not in ("symbol", "latest") else "left")
    for symbol, rows in items.items():
        latest = max(rows, key=lambda i: i["timestamp"])
        when = datetime.fromtimestamp(int(latest["timestamp"]) // 1_000_000, timezone.utc).strftime("%Y-%m-%d %H:%M")
        values = [f"{Decimal(latest[c]):.6g}" if c in latest else "—" for c in INDICATOR_COLUMNS]
        table.add_row(symbol, str(len(rows)), str(sum("enriched_at" in i for i in rows)), when,
                      str(latest["price"]), *values)
    return table


def local_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_demo(console: Console | None = None, chart_path: Path = RESULTS_DIR / "demo-chart.png") -> DemoResult:
    # A wide table even when the output is a pipe (CI logs), where rich would assume 80 columns.
    console = console or Console(width=None if Console().is_terminal else 150)
    started = time.monotonic()
    console.print(f"[bold]Crypto price pipeline demo[/bold] — feed: {SOURCE_NOTE}")
    with LocalDeployment(echo=lambda line: console.print(f"[dim]{line}[/dim]")) as stack:
        outputs = stack.running.outputs
        inbox = TopicSubscriber(stack.aws, outputs["success_topic_arn"], "demo-subscriber").start()
        timings = {name: seconds for name, seconds in stack.timings.items() if name != "total"}

        rows = feed()
        phase = time.monotonic()
        accepted = replay(stack, rows, console)
        timings["replay"] = time.monotonic() - phase
        phase = time.monotonic()
        stack.settle()
        timings["enrichment drained"] = time.monotonic() - phase
        items = {symbol: stored_items(stack, symbol) for symbol in FEED}
        inbox.wait_for(lambda received: len(received) >= sum(len(v) for v in items.values()), timeout=30)
        notifications = len(inbox.received())
        inbox.close()
    path = chart(items, chart_path)
    timings["total"] = time.monotonic() - started

    console.print(summary_table(items))
    console.print(f"SNS notifications received by the subscriber queue: [bold]{notifications}[/bold] "
                  f"for {sum(len(v) for v in items.values())} stored updates ({len(rows)} sent)")
    console.print(f"Chart of price, moving averages and volatility: [bold]{local_path(path)}[/bold]")
    console.print("Phases: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()))
    result = DemoResult(len(rows), accepted, items, notifications, path, timings)
    if not result.complete:
        raise DemoIncomplete(f"{result.sent} updates sent but not all were stored, enriched and announced")
    return result
