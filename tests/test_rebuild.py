"""The upgrade to venues, from a table written in the item format stored before venues: ticks
as the webhook's `to_item` and the enricher's put wrote them (indicators computed over the
interleaved venues, the relay's ticker `volume` being the exchange's rolling 24 h figure),
blended candles without `venues` and the old registry.

After `invoke rebuild`: no tick lost, no tick's price, time or any other non-indicator
attribute rewritten (the named sources' `volume` moved to `volume_24h`, nothing else), each
venue's indicators equal pandas over that venue's ticks, its candles equal pandas, the
composite equals its definition, the cost is printed before the first write, a second run
writes nothing, and an interrupted run resumes to the same end."""

from __future__ import annotations

import io
import random
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from environments.config import load_config
from functions.price_enricher.indicators import Windows, to_decimal
from functions.shared.candles import INTERVALS, MINUTE_MS
from functions.shared.price_table.candles import read_candles
from functions.shared.price_table.candles import table_definition as candle_table_definition
from functions.shared.price_table.items import is_indicator
from functions.shared.price_table.keys import event_ms, first_slot, sort_key, table_definition
from ops.rebuild import RebuildError, estimate, rebuild, rebuild_indicators, stored_symbols
from ops.rebuild_cli import run_rebuild
from tests.support.candles import pandas_candles
from tests.test_candles_venues import reference_composite

TICKS, CANDLES, SYMBOL = "crypto-prices-rebuild", "price-candles-rebuild", "ETH-USD"
OUTPUTS = {"table_name": TICKS, "candle_table_name": CANDLES}
T0 = 1_700_006_400_000
NOW = T0 + 3 * 3_600_000
WINDOWS = Windows()
# venue, source, spacing (ms), basis, what `volume` holds: the relay's ticker stored the
# exchange's rolling 24 h figure; a generic sender stored the traded quantity.
VENUES = (("binance", "relay", 30_000, 0, "24h"), ("coinbase", "relay", 60_000, 7, "24h"),
          ("kraken", "desk-feed", 45_000, -4, "traded"))
METADATA = ("corrected_at", "corrected_by")


def pandas_indicators(prices: list[Decimal]) -> list[dict[str, float]]:
    """The indicator contract read as pandas, over one series in key order (NaN: absent)."""
    series = pd.Series([float(price) for price in prices])
    frame = pd.DataFrame(index=series.index)
    for n in WINDOWS.sma:
        frame[f"sma_{n}"] = series.rolling(n).mean()
    for n in WINDOWS.ema:
        frame[f"ema_{n}"] = series.ewm(span=n, adjust=False).mean()
    returns = np.log(series / series.shift(1))
    for n in WINDOWS.volatility:
        frame[f"volatility_{n}"] = returns.rolling(n).std()
    frame["change_pct"] = series.pct_change() * 100
    return [{name: value for name, value in row.items() if not np.isnan(value)} for _, row in frame.iterrows()]


def old_tick(moment: int, exchange: str, source: str, price: str, volume: str | None) -> dict[str, Any]:
    """A tick item exactly as `to_item` wrote it before venues (symbol, timestamp, price,
    exchange, source, received_at, stored_at, expires_at, the optional volume/bid/ask)."""
    item = {"symbol": {"S": SYMBOL}, "timestamp": {"N": str(sort_key(moment, first_slot(exchange)))},
            "price": {"N": price}, "exchange": {"S": exchange}, "source": {"S": source},
            "received_at": {"N": str(moment + 40)}, "stored_at": {"N": str(moment + 55)},
            "expires_at": {"N": str(moment // 1000 + 30 * 86_400)}}
    if volume is not None:
        item["volume"] = {"N": volume}
    if exchange == "binance":
        item["bid"], item["ask"] = {"N": str(Decimal(price) - 1)}, {"N": str(Decimal(price) + 1)}
    return item


def old_candle(interval: str, row: tuple[Any, ...]) -> dict[str, Any]:
    """A blended candle item as `maintain` wrote it before venues (ohlc, count; x on 1m)."""
    start, *ohlc, count = row
    item = {"series": {"S": f"{SYMBOL}#{interval}"}, "sk": {"S": f"{start:015d}"}, "ohlc": {"S": " ".join(ohlc)},
            "count": {"N": str(count)}}
    if interval == "1m":
        item["x"] = {"N": str(start // 1000 + 29 * 86_400)}
    return item


def old_items() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(11)
    ticks = []
    for exchange, source, spacing, basis, meaning in VENUES:
        moment = T0 + rng.randrange(spacing)
        while moment < T0 + 95 * MINUTE_MS:
            volume = f"{rng.randint(10_000, 20_000)}.{rng.randint(0, 9)}" if meaning == "24h" else \
                f"0.{rng.randint(1, 999):03d}"
            ticks.append(old_tick(moment, exchange, source, f"{2000 + basis + rng.randint(-30, 30)}.5", volume))
            moment += spacing + rng.randrange(-5_000, 5_000)
    ticks.sort(key=lambda item: int(item["timestamp"]["N"]))
    # The enricher's put before venues: enriched_at plus indicators over every venue interleaved.
    blended = pandas_indicators([Decimal(item["price"]["N"]) for item in ticks])
    for item, values in zip(ticks[:-1], blended, strict=False):  # the newest is not enriched yet
        item["enriched_at"] = {"N": str(event_ms(int(item["timestamp"]["N"])) + 900)}
        item.update({name: {"N": str(to_decimal(value))} for name, value in values.items()})
    rows = [(int(item["timestamp"]["N"]), Decimal(item["price"]["N"])) for item in ticks]
    candles = [old_candle(interval, row) for interval in ("1m", "5m", "1h") for row in pandas_candles(rows, interval)]
    watermark = T0 + 94 * MINUTE_MS
    candles.append({
        "series": {"S": "#symbols"}, "sk": {"S": SYMBOL}, "materialized_ms": {"N": str(watermark)},
        "version": {"N": "40"}, "batches": {"S": "0123456789abcdef"}, "maintained_ms": {"N": str(watermark)},
        "prefix_1h": {"M": {"o": {"N": "2001.5"}, "h": {"N": "2030.5"}, "l": {"N": "1970.5"}, "c": {"N": "2003.5"},
                            "n": {"N": "150"}}}})
    return ticks, candles


class Writes:
    """A DynamoDB client that counts its writes per table (thread-safe: candle puts run in a
    pool) and can fail the Nth write to one table, as an interrupted run."""

    NAMES = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")

    def __init__(self, client: Any, fail_table: str | None = None, fail_at: int = 0,
                 before_write: Any = None) -> None:
        self.client, self.fail_table, self.fail_at, self.before_write = client, fail_table, fail_at, before_write
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if name not in self.NAMES:
            return method

        def write(**arguments: Any) -> Any:
            table = arguments.get("TableName", "?")
            with self.lock:
                self.counts[table] += 1
                if self.before_write is not None:
                    self.before_write()
                if table == self.fail_table and self.counts[table] == self.fail_at:
                    raise KeyboardInterrupt("interrupted mid-run")
            return method(**arguments)

        return write


@pytest.fixture
def dynamodb(moto_endpoint):
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
    client.create_table(**table_definition(TICKS))
    client.create_table(**candle_table_definition(CANDLES))
    ticks, candles = old_items()
    for item in ticks:
        client.put_item(TableName=TICKS, Item=item)
    for item in candles:
        client.put_item(TableName=CANDLES, Item=item)
    return client


def _scan(dynamodb: Any, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {"TableName": name, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**arguments)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=repr)
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _run(dynamodb: Any, checkpoints: Path, sources: tuple[str, ...] = ("relay",), **options: Any) -> tuple[Any, str]:
    output = io.StringIO()
    report = run_rebuild(load_config("local"), OUTPUTS, [], yes=options.pop("yes", True),
                         volume_24h_sources=sources, console=Console(file=output, width=400), dynamodb=dynamodb,
                         now_ms=NOW, checkpoints=checkpoints, **options)
    return report, output.getvalue()


def _without_indicators(item: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in item.items() if not is_indicator(name) and name not in METADATA}


def _candles(dynamodb: Any, interval: str, venue: str | None) -> list[tuple[Any, ...]]:
    candles, _ = read_candles(dynamodb, CANDLES, TICKS, SYMBOL, interval, 0, 10**15 - 1, 5000, venue)
    return [(c.start, str(c.open), str(c.high), str(c.low), str(c.close), c.count, c.volume, c.volume_count)
            for c in candles]


def _pandas_volumes(rows: list[tuple[int, Decimal | None]], interval: str) -> list[tuple[Decimal, int]]:
    """Each bucket's exact volume sum and how many ticks carried one (pandas groupby)."""
    frame = pd.DataFrame({"start": [event_ms(key) // INTERVALS[interval] * INTERVALS[interval] for key, _ in rows],
                          "volume": [volume for _, volume in rows]})
    grouped = frame.groupby("start")["volume"]
    sums = grouped.agg(lambda values: sum((v for v in values if v is not None), Decimal(0)))
    counts = grouped.agg(lambda values: sum(v is not None for v in values))
    return [(sums[start], int(counts[start])) for start in sorted(sums.index)]


def assert_upgraded(dynamodb: Any, before: list[dict[str, Any]], moved_sources: tuple[str, ...]) -> None:
    after = _scan(dynamodb, TICKS)
    key = lambda item: int(item["timestamp"]["N"])  # noqa: E731
    assert sorted(map(key, after)) == sorted(map(key, before))  # no tick lost, none added
    by_key = {key(item): item for item in after}
    for old in before:
        expected = _without_indicators(old)
        if old["source"]["S"] in moved_sources and "volume" in old and "enriched_at" in old:
            expected["volume_24h"] = expected.pop("volume")
        assert _without_indicators(by_key[key(old)]) == expected  # price, time and the rest as stored
    unenriched = [item for item in before if "enriched_at" not in item]
    assert [by_key[key(item)] for item in unenriched] == unenriched  # left to the enricher

    for venue, *_ in VENUES:
        own = sorted((item for item in after if item["exchange"]["S"] == venue), key=key)
        for item, expected_values in zip(own, pandas_indicators([Decimal(i["price"]["N"]) for i in own]),
                                         strict=True):
            if "enriched_at" not in item:
                continue
            stored = {name: float(value["N"]) for name, value in item.items() if is_indicator(name)}
            assert stored.keys() == expected_values.keys(), (venue, key(item))
            assert stored == pytest.approx(expected_values, rel=1e-9, abs=1e-9), (venue, key(item))
        rows = [(key(item), Decimal(item["price"]["N"])) for item in own]
        volumes = [(key(item), Decimal(item["volume"]["N"]) if "volume" in item else None) for item in own]
        for interval in ("1m", "5m", "1h"):
            expected_candles = [(*row, *volume) for row, volume in
                                zip(pandas_candles(rows, interval), _pandas_volumes(volumes, interval), strict=True)]
            assert _candles(dynamodb, interval, venue) == expected_candles, (venue, interval)

    composite_rows = [(key(item), Decimal(item["price"]["N"]), item["exchange"]["S"], Decimal(0)) for item in after]
    volumes = [(key(item), Decimal(item["volume"]["N"]) if "volume" in item else None) for item in after]
    for interval in ("1m", "5m"):
        expected_composite = [(*row[:6], *volume) for row, volume in
                              zip(reference_composite(composite_rows, interval), _pandas_volumes(volumes, interval),
                                  strict=True)]
        assert _candles(dynamodb, interval, None) == expected_composite, interval


def test_upgrade_gives_each_venue_its_own_indicators_and_candles_and_rewrites_no_price_or_time(dynamodb, tmp_path):
    before = _scan(dynamodb, TICKS)
    output = io.StringIO()
    seen_at_first_write: list[str] = []

    def note() -> None:
        seen_at_first_write or seen_at_first_write.append(output.getvalue())

    counted = Writes(dynamodb, before_write=note)
    report = run_rebuild(load_config("local"), OUTPUTS, [], yes=True, volume_24h_sources=["relay"],
                         console=Console(file=output, width=400), dynamodb=counted, now_ms=NOW,
                         checkpoints=tmp_path / "run")
    assert report is not None and report.ticks_written > 0
    assert "write units" in seen_at_first_write[0] and "$" in seen_at_first_write[0]  # priced before writing
    assert "ticks carrying volume per source: desk-feed" in output.getvalue()
    assert_upgraded(dynamodb, before, ("relay",))
    relay_volumes = sum(item["source"]["S"] == "relay" and "volume" in item and "enriched_at" in item
                        for item in before)
    assert sum(r.moved for r in report.indicators.values()) == relay_volumes  # every relay ticker volume moved


def test_estimate_counts_the_writes_the_run_makes(dynamodb, tmp_path):
    relay = sum(item["source"]["S"] == "relay" and "volume" in item for item in _scan(dynamodb, TICKS))
    cost = estimate(dynamodb, TICKS, [SYMBOL], WINDOWS, ("relay",))
    counted = Writes(dynamodb)
    report, _ = _run(counted, tmp_path / "run")
    assert counted.counts[TICKS] == report.ticks_written == cost.tick_writes
    # every enriched tick but the symbol's first held indicators of the interleaved venues
    assert cost.indicator_writes == cost.ticks - cost.unenriched - 1 and cost.unenriched == 1
    assert dict(cost.volume_by_source)["relay"] == relay
    assert cost.volume_moves == report.indicators[SYMBOL].moved == relay - 1  # all but the unenriched tick's
    assert cost.hours == 2 and cost.write_units >= counted.counts[TICKS] and cost.dollars > 0


def test_a_second_run_writes_nothing(dynamodb, tmp_path):
    _run(dynamodb, tmp_path / "run")
    ticks, candles = _scan(dynamodb, TICKS), _scan(dynamodb, CANDLES)
    counted = Writes(dynamodb)
    report, _ = _run(counted, tmp_path / "run")
    assert counted.counts == Counter() and report.ticks_written == 0
    # from scratch (checkpoints gone): the ticks are as recomputed already, nothing is written to them
    again = Writes(dynamodb)
    for_ticks = rebuild_indicators(again, TICKS, SYMBOL, tmp_path / "fresh.json", NOW, WINDOWS, ("relay",))
    assert for_ticks.written == 0 and again.counts == Counter()
    rebuild(again, CANDLES, TICKS, [SYMBOL], tmp_path / "fresh-candles.json", NOW)
    assert _scan(dynamodb, TICKS) == ticks
    assert [i for i in _scan(dynamodb, CANDLES) if i["series"]["S"] != "#symbols"] == \
        [i for i in candles if i["series"]["S"] != "#symbols"]


@pytest.mark.parametrize("table, at", [(TICKS, 37), (CANDLES, 5)])
def test_an_interrupted_run_resumes_where_it_stopped_and_ends_the_same(dynamodb, tmp_path, table, at):
    before = _scan(dynamodb, TICKS)
    total = estimate(dynamodb, TICKS, [SYMBOL], WINDOWS, ("relay",)).tick_writes
    interrupted = Writes(dynamodb, fail_table=table, fail_at=at)
    with pytest.raises(KeyboardInterrupt):
        _run(interrupted, tmp_path / "run")
    resumed = Writes(dynamodb)
    _run(resumed, tmp_path / "run")
    assert_upgraded(dynamodb, before, ("relay",))
    assert interrupted.counts[TICKS] - (table == TICKS) + resumed.counts[TICKS] == total  # none written twice


def test_without_the_flag_volumes_stay_as_stored_and_the_cost_line_counts_them(dynamodb, tmp_path):
    before = _scan(dynamodb, TICKS)
    _, output = _run(dynamodb, tmp_path / "run", sources=())
    relay = sum(item["source"]["S"] == "relay" and "volume" in item for item in before)
    assert f"relay {relay:,}" in output and "--volume-24h-sources" in output
    after = {item["timestamp"]["N"]: item for item in _scan(dynamodb, TICKS)}
    assert all(after[item["timestamp"]["N"]].get("volume") == item.get("volume") for item in before)
    assert not any("volume_24h" in item for item in after.values())


def test_declining_the_confirmation_writes_nothing(dynamodb, tmp_path):
    counted = Writes(dynamodb)
    report, output = _run(counted, tmp_path / "run", yes=False, confirm=lambda prompt: "n")
    assert report is None and counted.counts == Counter()
    assert "read units" in output and "nothing written" in output


def test_a_correction_written_meanwhile_is_read_again_not_overwritten(dynamodb, tmp_path):
    """The enricher corrects a tick between the rebuild's read and its write: the conditional
    put refuses, the rebuild reads the tick again and writes its venue's values over it."""
    raced: list[str] = []

    def race() -> None:
        if raced:
            return
        item = max((i for i in _scan(dynamodb, TICKS) if i["exchange"]["S"] == "kraken" and "enriched_at" in i),
                   key=lambda i: int(i["timestamp"]["N"]))  # one the rebuild has not reached yet
        raced.append(item["timestamp"]["N"])
        dynamodb.put_item(TableName=TICKS, Item={**item, "corrected_at": {"N": "1"}, "corrected_by": {"N": "7"},
                                                 "sma_5": {"N": "1"}})

    before = _scan(dynamodb, TICKS)
    _run(Writes(dynamodb, before_write=race), tmp_path / "run")
    assert raced
    assert_upgraded(dynamodb, before, ("relay",))


def test_a_tick_the_enricher_stores_during_the_walk_gets_its_venues_indicators_too(dynamodb, tmp_path):
    """On a live table a new tick arrives, enriched from a neighbour the walk had not corrected
    yet (stale values), after the walk read its pages: the walk reads on and corrects it."""
    new = old_tick(T0 + 96 * MINUTE_MS, "kraken", "desk-feed", "1999.5", "0.250")
    new.update({"enriched_at": {"N": str(T0 + 96 * MINUTE_MS + 900)}, "sma_5": {"N": "1"}, "ema_12": {"N": "1"}})
    stored: list[bool] = []

    def arrive() -> None:
        if not stored:
            stored.append(True)
            dynamodb.put_item(TableName=TICKS, Item=new)

    before = _scan(dynamodb, TICKS)
    _run(Writes(dynamodb, before_write=arrive), tmp_path / "run")
    assert_upgraded(dynamodb, sorted([*before, new], key=repr), ("relay",))


def test_bad_names_fail_in_one_line_and_change_nothing(dynamodb, tmp_path):
    counted = Writes(dynamodb)
    with pytest.raises(RebuildError, match="not a source id") as error:
        _run(counted, tmp_path / "run", sources=("hunter2 secret!",))
    assert "hunter2" not in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(RebuildError, match="BASE-QUOTE"):
        run_rebuild(load_config("local"), OUTPUTS, ["eth/usd"], yes=True, dynamodb=counted, now_ms=NOW,
                    checkpoints=tmp_path / "run")
    assert counted.counts == Counter()


def test_the_registry_names_the_symbols_to_rebuild(dynamodb):
    assert stored_symbols(dynamodb, CANDLES) == [SYMBOL]
