"""`invoke prices`: read an environment's prices through its read API, as trading code does.

The same client trading code imports (`price_client`), signed with the caller's credentials:
for the local environment, the emulator's (a running `invoke local` says where its price API
listens); elsewhere, botocore's usual chain. Output: a rich table for people, CSV or JSON
for scripts, a candlestick chart (PNG) on request.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from emulator import session as emulator_session
from environments.config import EnvironmentConfig
from errors import PipelineError
from price_client import Candle, PriceApiError, PriceClient

FORMATS = ("table", "csv", "json")
COLUMNS = ("start", "open", "high", "low", "close", "volume", "count", "volume_count")


class PricesError(PipelineError):
    """The read could not be made (no API URL, a bad option, or the API's own 4xx message)."""


def client_for(config: EnvironmentConfig, outputs: dict[str, Any] | None,
               running: dict[str, Any] | None) -> PriceClient:
    """The environment's read API, signed as the environment needs."""
    if config.is_emulated:
        url = (running or {}).get("price_api_url")
        if not url:
            raise PricesError("no price API in the running local stack: start `invoke local` first")
        return PriceClient(url, session=emulator_session.session(config.region), region=config.region)
    url = (outputs or {}).get("price_api_url")
    if not url:
        raise PricesError(f"no price_api_url in the outputs of {config.name}: run `invoke outputs --env {config.name}`")
    return PriceClient(url, region=config.region)


def read_candles(client: PriceClient, symbol: str, interval: str, start: str | None, end: str | None,
                 venue: str | None = None) -> list[Candle]:
    """One venue's candles, or without a venue the composite's; the API's 4xx as one line."""
    try:
        return client.candles(symbol, interval, start, end, venue=venue)
    except PriceApiError as error:
        raise PricesError(f"price API answered {error.status}: {error.message}") from None
    except ValueError as error:
        raise PricesError(str(error)) from None


def _row(candle: Candle) -> list[str]:
    return [candle.start.strftime("%Y-%m-%d %H:%M"), str(candle.open), str(candle.high), str(candle.low),
            str(candle.close), str(candle.volume), str(candle.count), str(candle.volume_count)]


def _series(symbol: str, venue: str | None) -> str:
    return f"{symbol} on {venue}" if venue else f"{symbol} composite"


def render(candles: Sequence[Candle], symbol: str, interval: str, output_format: str,
           venue: str | None = None) -> str | Table:
    """The candles as a rich table, CSV or JSON (exact decimal strings; times as epoch ms in CSV/JSON).

    `volume_count` is how many of a candle's ticks carried a volume: below `count`, `volume` is partial.
    """
    if output_format not in FORMATS:
        raise PricesError(f"--format must be one of {', '.join(FORMATS)} (got {output_format!r})")
    if output_format == "table":
        table = Table(title=f"{_series(symbol, venue)} {interval} candles ({len(candles)})")
        for name in COLUMNS:
            table.add_column(name, justify="left" if name == "start" else "right")
        for candle in candles:
            table.add_row(*_row(candle))
        return table
    records = [{"start": c.start_ms, "open": str(c.open), "high": str(c.high), "low": str(c.low),
                "close": str(c.close), "volume": str(c.volume), "count": c.count, "volume_count": c.volume_count}
               for c in candles]
    if output_format == "json":
        return json.dumps({"symbol": symbol, "venue": venue, "interval": interval, "candles": records}, indent=2)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return text.getvalue()


def candlestick_chart(candles: Sequence[Candle], symbol: str, interval: str, path: Path,
                      venue: str | None = None) -> Path:
    """A candlestick PNG.

    Drawn with matplotlib's bar and vlines rather than mplfinance: mplfinance's last release
    is a 2023 beta, and a candle is two primitives (a wick and a body).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(11, 5))
    if candles:
        width = (candles[1].start - candles[0].start).total_seconds() / 86400 * 0.7 if len(candles) > 1 else 0.0005
        for candle in candles:
            rising = candle.close >= candle.open
            colour = "tab:green" if rising else "tab:red"
            day = mdates.date2num(candle.start)
            axis.vlines(day, float(candle.low), float(candle.high), color=colour, linewidth=0.8)
            bottom, top = sorted((float(candle.open), float(candle.close)))
            axis.bar(day, max(top - bottom, float(candle.close) * 1e-6), width, bottom=bottom, color=colour)
        locator = mdates.AutoDateLocator()
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axis.set_title(f"{_series(symbol, venue)} {interval} candles, read through the price API")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def show(candles: Sequence[Candle], symbol: str, interval: str, output_format: str, chart: str | None,
         console: Console | None = None, venue: str | None = None) -> None:
    console = console or Console()
    rendered = render(candles, symbol, interval, output_format, venue)
    if isinstance(rendered, Table):
        console.print(rendered)
    else:
        print(rendered, end="" if rendered.endswith("\n") else "\n")
    if chart:
        path = candlestick_chart(candles, symbol, interval, Path(chart), venue)
        console.print(f"chart: {path}")

