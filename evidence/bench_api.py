"""Issue 13's figures for `invoke bench`: the price API's handler time and read units per
request, and candle maintenance's write units per stored update.

The read side is measured by calling `functions.price_api.service.process` directly against
moto's server (its own process), the way `bench_webhook` measures the webhook: the figure is
the handler's own time, not the function URL's or the network's. The data is loaded the way
the pipeline loads it (ticks as the webhook stores them, `to_item`; then the enricher's
`process` over stream records in batches of 100 with the candle table configured, so the
ticks carry their indicators, which sets their size and so the read units, and the candles
are the ones `maintain` writes), not written by hand.

Read units are priced from the `ReadLog` the service fills (every page it read, typed items
and consistency) with `evidence.capacity`: moto does not bill capacity by DynamoDB's rules.

Besides wall time, each request's CPU time in this process is recorded (moto runs in its own
process, so it is the handler's and botocore's CPU alone). `invoke cost` needs it: Lambda
gives a function CPU in proportion to its memory, and at the API's 256 MB a request's CPU
takes several times longer than on this machine's core, while moto's HTTP round trips take
longer than DynamoDB's.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from evidence.capacity import item_size, read_units

API_TABLE = "bench-api-prices"
API_CANDLE_TABLE = "bench-api-candles"
DAY_MS = 86_400_000
MINUTE_MS = 60_000
ENRICH_BATCH = 100  # the stream mapping's batch size (environments/config.py StreamSettings)

# The four request kinds of issue 13, and the targets on this machine's embedded stack
# (median handler ms; None: no target was set).
KINDS = ("latest_20_symbols", "ticks_1000", "candles_1m_1_day", "candles_1d_1_year")
TARGET_MEDIAN_MS: dict[str, float | None] = {
    "latest_20_symbols": 50.0, "ticks_1000": None, "candles_1m_1_day": 50.0, "candles_1d_1_year": 150.0,
}


@dataclass(frozen=True)
class ApiSizes:
    """How much data to load and how many timed calls per kind (`quick` proves it runs)."""

    latest_symbols: int = 20
    ticks_per_latest_symbol: int = 25
    ticks: int = 1000
    day_minutes: int = 1440
    ticks_per_minute: int = 2
    year_days: int = 365
    ticks_per_day: int = 2
    runs: int = 10


FULL_SIZES = ApiSizes()
# Quick: the same four kinds over less data (2 hours of 1m candles, 30 days of 1d candles,
# 200 ticks); the rows say how many items each answer held.
QUICK_SIZES = ApiSizes(ticks_per_latest_symbol=3, ticks=200, day_minutes=120, year_days=30, runs=3)


def _tick_times(start_ms: int, end_ms: int, spacing_ms: float, rng: random.Random) -> list[int]:
    """Tick times from start to end, `spacing_ms` apart with ±20 % jitter, distinct and ordered."""
    times, moment = [], start_ms + rng.random() * spacing_ms
    while moment < end_ms:
        times.append(int(moment))
        moment += spacing_ms * rng.uniform(0.8, 1.2)
    return sorted(set(times))


def load_through_enricher(dynamodb: Any, sns: Any, ticks: dict[str, list[int]], seed: int = 13) -> int:
    """Store every symbol's ticks as the webhook does, then enrich them (and maintain their
    candles) as the stream would deliver them: in time order, batches of 100. Returns the
    number of records enriched."""
    from functions.price_enricher import service as enricher
    from functions.price_enricher.indicators import Windows
    from functions.shared.price_table.candles import table_definition as candle_table
    from functions.shared.price_table.items import stream_record
    from functions.shared.price_table.keys import sort_key, table_definition
    from functions.shared.price_table.ticks import to_item
    from functions.shared.price_update import PriceUpdate

    rng = random.Random(seed)
    dynamodb.create_table(**table_definition(API_TABLE))
    dynamodb.create_table(**candle_table(API_CANDLE_TABLE))
    topic = sns.create_topic(Name="bench-api-success")["TopicArn"]
    settings = enricher.Settings(API_TABLE, topic, Windows(), candle_table_name=API_CANDLE_TABLE)
    items = []
    for symbol, times in ticks.items():
        price = Decimal(rng.randint(1_000, 90_000))
        for moment in times:
            price = max(Decimal("0.01"), price + Decimal(rng.randint(-500, 500)).scaleb(-2))
            update = PriceUpdate(symbol, moment, price, "binance", "bench", moment + 40, volume=Decimal("1.25"))
            items.append(to_item(update, sort_key(moment, 0), moment + 45))
    items.sort(key=lambda item: (int(item["timestamp"]["N"]), item["symbol"]["S"]))
    for start in range(0, len(items), 25):
        pending: dict[str, Any] = {API_TABLE: [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    for first in range(0, len(items), ENRICH_BATCH):
        records = [stream_record(item, first + n + 1) for n, item in enumerate(items[first:first + ENRICH_BATCH])]
        result = enricher.process({"Records": records}, settings, dynamodb, sns)
        if result != {"batchItemFailures": []}:
            raise RuntimeError(f"enriching the read-API data failed: {result}")
    return len(items)


def _scenario(sizes: ApiSizes, now_ms: int) -> tuple[dict[str, list[int]], dict[str, str]]:
    """The symbols' tick times and the four requests' paths (with their query strings).

    - latest: `latest_symbols` symbols with a few recent ticks each;
    - ticks and a day of 1m candles: DAY-USD, `ticks_per_minute` ticks a minute over the last
      `day_minutes` minutes, so every minute has a candle and the newest one is forming;
    - a year of 1d candles: YEAR-USD, `ticks_per_day` ticks a day over `year_days` days up to
      now, so every day has a candle (stored, except today's, which is forming).
    """
    rng = random.Random(11)
    ticks: dict[str, list[int]] = {}
    latest = [f"LAT{index:02d}-USD" for index in range(sizes.latest_symbols)]
    for symbol in latest:
        ticks[symbol] = _tick_times(now_ms - 60_000, now_ms - 1_000, 60_000 / sizes.ticks_per_latest_symbol, rng)
    # The newest tick of DAY-USD and YEAR-USD is in the current minute (and day): the forming
    # candle is part of every answer, as it is for a reader of live data.
    minute_now = now_ms // MINUTE_MS * MINUTE_MS
    newest = max(minute_now, now_ms - 500)
    day_start = minute_now - (sizes.day_minutes - 1) * MINUTE_MS
    day = _tick_times(day_start, minute_now, MINUTE_MS / sizes.ticks_per_minute, rng)
    ticks["DAY-USD"] = sorted({*day, newest})
    today = now_ms // DAY_MS * DAY_MS
    year_start = today - (sizes.year_days - 1) * DAY_MS
    year = _tick_times(year_start, minute_now, DAY_MS / sizes.ticks_per_day, rng)
    ticks["YEAR-USD"] = sorted({*year, newest})
    paths = {
        "latest_20_symbols": "/v1/latest?symbols=" + ",".join(latest),
        "ticks_1000": f"/v1/ticks/DAY-USD?from={day_start}&limit={sizes.ticks}",
        "candles_1m_1_day": f"/v1/candles/DAY-USD?interval=1m&from={day_start}",
        "candles_1d_1_year": f"/v1/candles/YEAR-USD?interval=1d&from={year_start}",
    }
    return ticks, paths


def _answer_items(kind: str, body: dict[str, Any]) -> int:
    """How many ticks or candles an answer holds (non-null latest entries)."""
    if kind.startswith("latest"):
        return sum(1 for tick in body["latest"].values() if tick is not None)
    return len(body["ticks"] if kind.startswith("ticks") else body["candles"])


def priced_reads(pages: Sequence[Any]) -> dict[str, float]:
    """Requests, items, bytes and read units of a request's pages (DynamoDB's rounding per page)."""
    sizes = [sum(item_size(item) for item in page.items) for page in pages]
    return {"dynamodb_requests": len(pages), "items_read": sum(len(page.items) for page in pages),
            "bytes_read": sum(sizes),
            "read_units": sum(read_units(size, page.consistent) for size, page in zip(sizes, pages, strict=True))}


def sequential_reads(kind: str, requests: int) -> int:
    """DynamoDB round trips one after another: `latest` runs its Queries `LATEST_THREADS`
    (8) at a time; every other route reads page after page."""
    from functions.price_api.service import LATEST_THREADS

    return math.ceil(requests / LATEST_THREADS) if kind.startswith("latest") else requests


def _timed(process: Callable[..., dict[str, Any]], event: dict[str, Any], settings: Any, dynamodb: Any, now: float,
           runs: int) -> tuple[list[float], list[float], Any, str]:
    """Wall and CPU ms of `runs` calls after one untimed call (it opens the connections and
    starts the threads); the last call's ReadLog and body. The same `now` every time, so
    every call sends the same requests (the replay server answers them from its recordings)."""
    from functions.shared.price_table.reads import ReadLog

    walls, cpus, log, body = [], [], ReadLog(), ""
    for run in range(runs + 1):
        log = ReadLog()
        wall, cpu = time.perf_counter(), time.process_time()
        response = process(event, settings, dynamodb, now, reads=log)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if response["statusCode"] != 200:
            raise RuntimeError(f"{event['rawPath']}: {response['statusCode']} {response['body'][:200]}")
        body = response["body"]
        if run:
            walls.append(wall * 1000)
            cpus.append(cpu * 1000)
    return walls, cpus, log, body


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "low": min(values), "high": max(values), "runs": len(values)}


def bench_api(endpoint: str, sizes: ApiSizes = FULL_SIZES,
              echo: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Load the data, then time each request kind `sizes.runs` times against moto's server and
    as many times against the replay of moto's answers (`evidence.replay_server`)."""
    from emulator.function_url import url_event
    from emulator.session import DEFAULT_REGION, credentials
    from emulator.session import client as emulator_client
    from evidence.replay_server import ReplayServer
    from functions.price_api import service as api
    from functions.price_api.dynamodb import DynamoReads
    from functions.price_api.settings import Settings

    dynamodb = emulator_client("dynamodb", endpoint)
    api_reads = DynamoReads(endpoint, DEFAULT_REGION, credentials(), api.READ_CONNECTIONS)  # as the handler reads
    sns = emulator_client("sns", endpoint)
    now_ms = int(time.time() * 1000)
    ticks, paths = _scenario(sizes, now_ms)
    started = time.perf_counter()
    records = load_through_enricher(dynamodb, sns, ticks)
    echo(f"  read API data: {records} ticks enriched, candles maintained, in {time.perf_counter() - started:.0f} s")
    settings = Settings(API_TABLE, API_CANDLE_TABLE)
    sample = dynamodb.query(TableName=API_TABLE, KeyConditionExpression="symbol = :s", Limit=1,
                            ExpressionAttributeValues={":s": {"S": "DAY-USD"}}, ScanIndexForward=False)["Items"][0]
    now = time.time()
    rows = []
    with ReplayServer(endpoint) as replay:
        replayed = DynamoReads(replay.endpoint, DEFAULT_REGION, credentials(), api.READ_CONNECTIONS)
        for kind in KINDS:
            event = url_event("GET", paths[kind], {}, b"", "127.0.0.1")
            walls, cpus, log, body = _timed(api.process, event, settings, api_reads, now, sizes.runs)
            api.process(event, settings, replayed, now)  # records moto's answers
            fast_walls, fast_cpus, _, fast_body = _timed(api.process, event, settings, replayed, now, sizes.runs)
            if fast_body != body:
                raise RuntimeError(f"{kind}: the replayed answer differs from moto's")
            reads = priced_reads(log.pages)
            tenths = statistics.quantiles(walls, n=10, method="inclusive") if len(walls) > 1 else walls * 9
            rows.append({
                "kind": kind, "path": paths[kind].split("?")[0],
                "items_returned": _answer_items(kind, json.loads(body)),
                "response_bytes": len(body.encode()),
                "handler_ms": _spread(walls), "handler_p90_ms": tenths[8], "cpu_ms": _spread(cpus),
                "handler_ms_replayed": _spread(fast_walls), "cpu_ms_replayed": _spread(fast_cpus),
                **reads, "sequential_reads": sequential_reads(kind, int(reads["dynamodb_requests"])),
                "target_median_ms": TARGET_MEDIAN_MS[kind],
            })
    return {"records_loaded": records, "tick_item_bytes": item_size(sample), "requests": rows,
            "sizes": asdict(sizes)}


# ---- candle maintenance per stored update ---------------------------------------------------------

def bench_candle_writes(endpoint: str, minutes: float, venues: int = 3,
                        window_batch: int = 12) -> dict[str, Any]:
    """Write and read units of candle and composite maintenance per stored update in the cost
    model's default scenario (1,000,000 updates/day over 20 symbols x `venues` venues, enricher
    batches of 100), and again at batches of `window_batch` (the ~12 records the stream's 1 s
    window forms at that rate: `runs`), each measured with
    `evidence.candle_overhead.measure_overhead` on a fresh pair of tables.

    The window starts 61 minutes before a UTC midnight (the module's default): with 62
    minutes it packs one full hour per symbol and closes a candle of every interval at
    midnight, more 4h and 1d closes than an average hour, so the figure errs high.
    """
    from emulator.session import client as emulator_client
    from evidence.candle_overhead import measure_overhead

    dynamodb = emulator_client("dynamodb", endpoint)
    reports = []
    for batch in (100, window_batch):
        report, _ = measure_overhead(dynamodb, minutes=minutes, candle_table=f"bench-candle-overhead-{batch}",
                                     tick_table=f"bench-candle-overhead-ticks-{batch}", venues=venues, batch=batch)
        reports.append(report.summary())
    # Each write priced by its own item (evidence.capacity: ceil(bytes / 1 KB)).
    return {**reports[0], "runs": reports[1:], "budget_write_units_per_update": 0.15}
