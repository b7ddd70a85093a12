"""`invoke prices` output: exact decimals and volume in CSV and JSON, a table, a chart file, and --venue."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from invoke import Context
from rich.table import Table

import delivery.local_session
import ops.prices
import tasks
from ops.prices import PricesError, candlestick_chart, render
from price_client import Candle

CANDLES = [Candle("BTC-USD", "1h", 1_700_000_000_000 + i * 3_600_000, Decimal("100.10") + i, Decimal("101.5") + i,
                  Decimal("99.000000001") + i, Decimal("100.75") + i, 3 + i, Decimal("0.25") * i, i)
           for i in range(3)]


def test_csv_and_json_keep_every_digit_and_epoch_ms():
    rows = list(csv.DictReader(io.StringIO(render(CANDLES, "BTC-USD", "1h", "csv"))))
    assert [r["low"] for r in rows] == ["99.000000001", "100.000000001", "101.000000001"]
    assert [int(r["start"]) for r in rows] == [c.start_ms for c in CANDLES]
    document = json.loads(render(CANDLES, "BTC-USD", "1h", "json"))
    assert document["candles"][0] == {"start": 1_700_000_000_000, "open": "100.10", "high": "101.5",
                                      "low": "99.000000001", "close": "100.75", "volume": "0.00", "count": 3,
                                      "volume_count": 0}
    assert [(r["volume"], r["volume_count"]) for r in rows] == [("0.00", "0"), ("0.25", "1"), ("0.50", "2")]


def test_table_has_a_row_per_candle_and_an_unknown_format_is_one_line_error():
    table = render(CANDLES, "BTC-USD", "1h", "table")
    assert isinstance(table, Table) and table.row_count == 3
    with pytest.raises(PricesError, match="--format must be one of table, csv, json"):
        render(CANDLES, "BTC-USD", "1h", "xml")


def test_the_chart_is_a_png(tmp_path):
    path = candlestick_chart(CANDLES, "BTC-USD", "1h", tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prices_with_a_venue_reads_that_venues_candles_and_says_so(monkeypatch, capsys):
    asked: list[tuple[Any, ...]] = []

    class Client:
        def candles(self, *args: Any, venue: str | None = None) -> list[Candle]:
            asked.append((*args, venue))
            return CANDLES

    monkeypatch.setattr(ops.prices, "client_for", lambda *args: Client())
    monkeypatch.setattr(delivery.local_session, "read_running_local", lambda: {})
    tasks.prices(Context(), symbol="BTC-USD", venue="kraken", format="json")
    assert asked == [("BTC-USD", "1h", None, None, "kraken")]
    assert json.loads(capsys.readouterr().out)["venue"] == "kraken"
    tasks.prices(Context(), symbol="BTC-USD", interval="1m")
    assert asked[-1] == ("BTC-USD", "1m", None, None, None)
    assert "BTC-USD composite 1m candles" in capsys.readouterr().out
