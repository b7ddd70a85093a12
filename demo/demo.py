"""`invoke demo`: the whole pipeline on this machine, fed with real historical prices.

Starts the embedded stack, deploys it with terraform, replays the feed as signed webhooks
in batches, then reads the results back as trading code does, through the read API with the
Python client (`price_client`, SigV4-signed): the latest price and indicators per symbol,
every tick with its indicators, and candles for a candlestick chart. It also counts the SNS
notifications a subscriber received. Everything it started is stopped before it returns.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from delivery.local import LocalDeployment
from delivery.paths import RESULTS_DIR, ROOT
from demo.price_data import SOURCE_NOTE, load_series
from emulator import session
from emulator.subscriber import TopicSubscriber
from errors import PipelineError
from ops.prices import candlestick_chart
from price_client import Candle, PriceClient, Tick
from senders.webhook import signed_post

FEED = {"BTC-USD": ("BTCUSD", "bitstamp", None), "EUR-USD": ("EURUSD", "fxcm", 300)}
CANDLES = {"BTC-USD": "1d", "EUR-USD": "4h"}  # the chart's interval per symbol (monthly and hourly feeds)
AS_FOUR_TICKS = frozenset({"BTC-USD"})  # bars sent as open, high, low, close ticks (see `feed`)
BATCH_SIZE = 50
INDICATOR_COLUMNS = ("sma_5", "sma_20", "ema_12", "ema_26", "volatility_20", "change_pct")


@dataclass
class DemoResult:
    sent: int
    accepted: int
    items: dict[str, list[Tick]]
    notifications: int
    chart: Path
    timings: dict[str, float]
    candle_charts: dict[str, Path]

    @property
    def complete(self) -> bool:
        """Every update sent was stored, enriched (as read through the API) and announced."""
        ticks = [tick for rows in self.items.values() for tick in rows]
        return len(ticks) == self.sent and self.notifications == self.sent \
            and all(tick.enriched_at_ms is not None for tick in ticks)


class DemoIncomplete(PipelineError):
    """Some updates sent were not stored, enriched and announced."""


class Row(NamedTuple):
    """One tick the demo sends: the symbol it is read as, the spelling sent, its venue, time, price, volume."""

    symbol: str
    sent_as: str
    exchange: str
    event_ms: int
    price: Decimal
    volume: Decimal


def feed() -> list[Row]:
    """The ticks to send, oldest first within each symbol.

    A symbol charted with candles much finer than its bars (BTC-USD: monthly bars, 1d candles)
    sends each bar as its four ticks (open, high, low, close; `Bar.ticks`), a quarter of the bar's
    volume each, so each candle is that bar's OHLC. One close per bar would make every candle flat:
    open = high = low = close, an invisible body on a 13-year axis. A quarter of a finite decimal
    is exact, so the candle's volume is exactly the bar's.
    """
    rows = []
    for symbol, (sent_as, exchange, limit) in FEED.items():
        for bar in load_series(symbol, limit):
            if symbol in AS_FOUR_TICKS:
                rows += [Row(symbol, sent_as, exchange, moment, price, bar.volume / 4) for moment, price in bar.ticks()]
            else:
                rows.append(Row(symbol, sent_as, exchange, bar.event_ms, bar.close, bar.volume))
    return rows


def replay(stack: LocalDeployment, rows: list[Row], console: Console) -> int:
    info = stack.running
    accepted = 0
    batches = [rows[i:i + BATCH_SIZE] for i in range(0, len(rows), BATCH_SIZE)]
    columns = (TextColumn("replaying signed webhooks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("replay", total=len(rows))
        for batch in batches:
            body = json.dumps([{"symbol": row.sent_as, "price": str(row.price), "volume": str(row.volume),
                                "exchange": row.exchange, "timestamp": row.event_ms} for row in batch]).encode()
            status, result = signed_post(info.webhook_url, body, info.secret_source, info.secret)
            if status != 200:
                raise RuntimeError(f"webhook answered {status}: {result}")
            accepted += result["accepted"] + result["duplicates"]
            progress.advance(task, len(batch))
    return accepted


def read_back(client: PriceClient) -> tuple[dict[str, list[Tick]], dict[str, Tick | None], dict[str, list[Candle]]]:
    """What the demo shows, read as trading code reads it: every tick, the latest, the candles.

    The latest is asked of the venue each symbol was sent from: only a venue's own tick carries
    indicators (without a venue, `latest` answers the composite price, which has none).
    """
    items = {symbol: list(client.ticks(symbol)) for symbol in FEED}
    latest = {symbol: client.latest(symbol, venue=exchange)[symbol] for symbol, (_, exchange, _) in FEED.items()}
    candles = {symbol: client.candles(symbol, interval) for symbol, interval in CANDLES.items()}
    return items, latest, candles


def chart(items: dict[str, list[Tick]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    symbols = list(items)
    figure, axes = plt.subplots(2, len(symbols), figsize=(7 * len(symbols), 7), sharex="col",
                                gridspec_kw={"height_ratios": [3, 1]}, squeeze=False)
    for column, symbol in enumerate(symbols):
        rows = sorted(items[symbol], key=lambda tick: tick.key)
        when = [tick.time for tick in rows]
        top, bottom = axes[0][column], axes[1][column]
        top.plot(when, [float(tick.price) for tick in rows], label="price", color="black", linewidth=1)
        for name in ("sma_5", "sma_20", "ema_12", "ema_26"):
            top.plot(when, [_number(tick.indicator(name)) for tick in rows], label=name, linewidth=0.9)
        top.set_title(f"{symbol}: price and moving averages (read through the price API)")
        top.legend(loc="upper left", fontsize=8)
        if symbol == "BTC-USD":
            top.set_yscale("log")
        bottom.plot(when, [_number(tick.volatility_20) for tick in rows], color="tab:red")
        bottom.set_title("volatility_20 (std of log returns)", fontsize=9)
        locator = mdates.AutoDateLocator()
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _number(value: Decimal | None) -> float:
    return float(value) if value is not None else float("nan")


def summary_table(items: dict[str, list[Tick]], latest: dict[str, Tick | None]) -> Table:
    table = Table(title="Latest price per symbol and venue, read through the price API (GET /v1/latest?venue=)")
    for name in ("symbol", "venue", "ticks", "enriched", "latest", "price", *INDICATOR_COLUMNS):
        table.add_column(name, justify="right" if name not in ("symbol", "venue", "latest") else "left")
    for symbol, rows in items.items():
        newest = latest.get(symbol)
        if newest is None:
            table.add_row(symbol, "—", str(len(rows)), "0", "—", "—", *["—"] * len(INDICATOR_COLUMNS))
            continue
        values = [f"{value:.6g}" if (value := newest.indicator(c)) is not None else "—" for c in INDICATOR_COLUMNS]
        enriched = sum(tick.enriched_at_ms is not None for tick in rows)
        table.add_row(symbol, newest.venue or "—", str(len(rows)), str(enriched),
                      newest.time.strftime("%Y-%m-%d %H:%M"), str(newest.price), *values)
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
        phase = time.monotonic()
        client = PriceClient(stack.running.price_api_url or "", session=session.session(stack.running.config.region),
                             region=stack.running.config.region)
        items, latest, candles = read_back(client)
        timings["read back through the API"] = time.monotonic() - phase
        inbox.wait_for(lambda received: len(received) >= len(rows), timeout=30)
        notifications = len(inbox.received())
        inbox.close()
    path = chart(items, chart_path)
    candle_charts = {symbol: candlestick_chart(candles[symbol], symbol, CANDLES[symbol],
                                               chart_path.with_name(f"demo-candles-{symbol}.png"))
                     for symbol in CANDLES}
    timings["total"] = time.monotonic() - started

    console.print(summary_table(items, latest))
    console.print(f"SNS notifications received by the subscriber queue: [bold]{notifications}[/bold] "
                  f"for {sum(len(v) for v in items.values())} stored updates ({len(rows)} sent)")
    console.print(f"Chart of price, moving averages and volatility: [bold]{local_path(path)}[/bold]")
    for symbol, candle_path in candle_charts.items():
        console.print(f"{symbol} {CANDLES[symbol]} candles ({len(candles[symbol])}, GET /v1/candles): "
                      f"[bold]{local_path(candle_path)}[/bold]")
    console.print("Phases: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()))
    result = DemoResult(len(rows), accepted, items, notifications, path, timings, candle_charts)
    if not result.complete:
        raise DemoIncomplete(f"{result.sent} updates sent but not all were stored, enriched and announced")
    return result
