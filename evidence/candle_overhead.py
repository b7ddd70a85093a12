"""What candle maintenance costs per stored update, measured against moto.

A day-shaped stream: `symbols` symbols sharing `updates_per_day` (20 and 1,000,000: one
tick per symbol every 1.728 s, each with its own phase and +-20 % jitter), delivered in
time order in enricher batches of `batch` (100) records. For each batch the ticks are
stored first (as the webhook does; not counted), then `maintain` runs for each symbol of
the batch, as the enricher will. Every request `maintain` makes is counted; read units are
priced from the items each Query/GetItem returned (`reads.MeteredClient`, `evidence.capacity`:
moto does not bill capacity by DynamoDB's rules).

One liberty, which changes no request `maintain` makes: every 5 batches, ticks older
than their symbol's watermark minus STALE_MS are deleted. moto's Query walks every item of
a table, so without it the run would slow down as the table grows; `maintain` never reads
a tick older than that (the composite's carry-in) unless a tick is late, and this stream
has none. The first
`warmup_minutes` are maintained but not counted (each symbol's registry record is created
once, not per update).

`python -m evidence.candle_overhead [minutes [start_ms [venues [batch]]]]` prints a report (for docs/evidence.md and the
cost model); `tests/test_candles_store.py` runs a short one and checks the budget.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from evidence.capacity import item_size, read_units, write_units
from functions.shared.candles import INTERVALS, MINUTE_MS
from functions.shared.composite import STALE_MS
from functions.shared.price_table.candles import PACK_SUFFIX, SERIES, maintain
from functions.shared.price_table.candles import table_definition as candle_table_definition
from functions.shared.price_table.keys import SORT_KEY, event_ms, first_slot, sort_key, table_definition
from functions.shared.price_table.reads import MeteredClient, ReadLog
from functions.webhook_processor.exchanges import EXCHANGES

DAY_MS = 86_400_000
# 2023-11-15T00:00:00Z minus 61 minutes (1 of warm-up): a run of 61+ minutes fills the hour
# 23:00-24:00 (so its pack is a full hour's, ~3 write units) and closes a candle of every
# interval at midnight.
DEFAULT_START_MS = 1_700_006_400_000 - 61 * MINUTE_MS
CANDLE_TABLE = "price-candles-overhead"
TICK_TABLE = "crypto-prices-overhead"


VENUES = EXCHANGES


@dataclass(frozen=True)
class Tick:
    symbol: str
    key: int
    price: Decimal
    venue: str = "binance"


@dataclass
class OverheadReport:
    symbols: int
    updates_per_day: int
    batch: int
    simulated_minutes: float
    venues: int = 1
    updates: int = 0
    batches: int = 0
    maintain_calls: int = 0
    write_requests: int = 0         # PutItems of candles, hour packs and registry records
    write_units: int = 0            # their write units: ceil(item bytes / 1 KB) each (a pack is ~3)
    packs_written: int = 0
    read_requests: int = 0
    read_units: float = 0.0
    candles_written: int = 0
    candles_stored: dict[str, int] = field(default_factory=dict)
    maintain_cpu_seconds: float = 0.0  # this process's CPU in `maintain` (boto3 + the candle code; moto runs apart)
    maintain_wall_seconds: float = 0.0
    largest_item_bytes: int = 0     # over the candle table after the run (a full hour pack: ~2.5 KB)
    mean_candle_bytes: float = 0.0  # candle items only (not the registry): what storage grows by

    @property
    def writes_per_update(self) -> float:
        return self.write_requests / self.updates

    @property
    def write_units_per_update(self) -> float:
        return self.write_units / self.updates

    @property
    def reads_per_update(self) -> float:
        return self.read_requests / self.updates

    @property
    def read_units_per_update(self) -> float:
        return self.read_units / self.updates

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "writes_per_update": round(self.writes_per_update, 4),
                "write_units_per_update": round(self.write_units_per_update, 4),
                "reads_per_update": round(self.reads_per_update, 4),
                "read_units_per_update": round(self.read_units_per_update, 4),
                "maintain_cpu_ms_per_update": round(self.maintain_cpu_seconds * 1000 / max(1, self.updates), 4),
                "maintain_wall_ms_per_update": round(self.maintain_wall_seconds * 1000 / max(1, self.updates), 4)}


def synthetic_stream(symbols: int = 20, updates_per_day: int = 1_000_000, minutes: float = 20,
                     start_ms: int = DEFAULT_START_MS, seed: int = 7, venues: int = 1) -> list[Tick]:
    """Every series' ticks for `minutes`, merged in event-time order (the stream's order).

    `venues` venues per symbol (binance, coinbase, kraken) share the updates evenly; each
    venue's ticks are keyed at its first slot (`keys.first_slot`), as the webhook stores them,
    and its price carries a basis of its own.
    """
    rng = random.Random(seed)
    series = symbols * venues
    spacing = DAY_MS * series / updates_per_day
    end = start_ms + minutes * MINUTE_MS
    ticks = []
    for index in range(symbols):
        symbol, base = f"S{index:02d}-USD", Decimal(rng.randint(1_000, 100_000))
        for venue in VENUES[:venues]:
            price = base + Decimal(rng.randint(-100, 100)).scaleb(-2)
            moment = start_ms + rng.random() * spacing
            while moment < end:
                price = max(Decimal("0.01"), price + Decimal(rng.randint(-500, 500)).scaleb(-2))
                ticks.append(Tick(symbol, sort_key(int(moment), first_slot(venue)), price, venue))
                moment += spacing * rng.uniform(0.8, 1.2)
    return sorted(ticks, key=lambda tick: (event_ms(tick.key), tick.symbol, tick.venue))


def tick_item(tick: Tick) -> dict[str, Any]:
    """A stored, enriched tick of realistic size (~260 bytes; read units depend on it)."""
    number = {"N": str(tick.price)}
    item = {"symbol": {"S": tick.symbol}, SORT_KEY: {"N": str(tick.key)}, "price": number,
            "exchange": {"S": tick.venue}, "source": {"S": "feed-1"},
            "received_at": {"N": str(event_ms(tick.key) + 40)},
            "volume": {"N": "12.34567"}, "enriched_at": {"N": str(event_ms(tick.key) + 900)},
            "change_pct": {"N": "0.01234567890123456789"}}
    for name in ("sma_5", "sma_20", "ema_12", "ema_26", "volatility_20"):
        item[name] = {"N": "12345.678901234567890123456789"}
    return item


def _write(dynamodb: Any, table: str, requests: list[dict[str, Any]]) -> None:
    for start in range(0, len(requests), 25):
        pending = {table: requests[start:start + 25]}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def measure_overhead(dynamodb: Any, symbols: int = 20, updates_per_day: int = 1_000_000, minutes: float = 20,
                     batch: int = 100, start_ms: int = DEFAULT_START_MS, warmup_minutes: float = 1, seed: int = 7,
                     candle_table: str = CANDLE_TABLE, tick_table: str = TICK_TABLE,
                     threads: int = 8, venues: int = 1) -> tuple[OverheadReport, list[Tick]]:
    """Run the stream through `maintain` against `dynamodb` (moto); the report and the ticks.

    The first `warmup_minutes` are maintained but not counted: they create each symbol's
    registry record, a cost once per symbol, not per update. Creates both tables.
    """
    stream = synthetic_stream(symbols, updates_per_day, minutes + warmup_minutes, start_ms, seed, venues)
    counted_from = start_ms + int(warmup_minutes * MINUTE_MS)
    report = OverheadReport(symbols, updates_per_day, batch, minutes, venues)
    dynamodb.create_table(**candle_table_definition(candle_table))
    dynamodb.create_table(**table_definition(tick_table))
    log, written = ReadLog(), list[dict[str, Any]]()
    metered = MeteredClient(dynamodb, log, written)
    stored: dict[str, list[int]] = {}
    watermarks: dict[str, int] = {}
    for number, first in enumerate(range(0, len(stream), batch)):
        records = stream[first:first + batch]
        counted = event_ms(records[0].key) >= counted_from
        _write(dynamodb, tick_table, [{"PutRequest": {"Item": tick_item(tick)}} for tick in records])
        by_symbol: dict[str, list[int]] = {}
        batch_venues: dict[str, set[str]] = {}
        for tick in records:
            by_symbol.setdefault(tick.symbol, []).append(tick.key)
            batch_venues.setdefault(tick.symbol, set()).add(tick.venue)
            stored.setdefault(tick.symbol, []).append(tick.key)
        pages_before, writes_before = len(log.pages), len(written)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:  # the enricher, too, works on a batch's symbols concurrently
            results = list(pool.map(lambda pair: maintain(metered, candle_table, tick_table, pair[0], pair[1][0],
                                                          venues=pair[1][1]),
                                    ((symbol, (keys, batch_venues[symbol])) for symbol, keys in by_symbol.items())))
        if counted:
            report.maintain_cpu_seconds += time.process_time() - cpu_before
            report.maintain_wall_seconds += time.perf_counter() - wall_before
        for symbol, writes in zip(by_symbol, results, strict=True):
            if writes.watermark is not None:
                watermarks[symbol] = writes.watermark
            if counted:
                report.maintain_calls += 1
                report.write_requests += writes.write_requests
                report.read_requests += writes.read_requests
                report.candles_written += writes.candles_written
                report.packs_written += writes.packs_written
        if counted:
            report.write_units += sum(write_units(item) for item in written[writes_before:])
            report.updates += len(records)
            report.batches += 1
            report.read_units += sum(read_units(sum(item_size(item) for item in page.items), page.consistent)
                                     for page in log.pages[pages_before:])
        if number % 5 == 4:  # drop ticks already materialized (see the module's note)
            doomed = []
            for symbol, keys in stored.items():
                # Kept from STALE_MS before W: the composite's carry-in, which every closing step reads.
                horizon = watermarks.get(symbol, 0) - STALE_MS
                keep = [key for key in keys if event_ms(key) >= horizon]
                doomed += [{"DeleteRequest": {"Key": {"symbol": {"S": symbol}, SORT_KEY: {"N": str(key)}}}}
                           for key in keys if event_ms(key) < horizon]
                stored[symbol] = keep
            _write(dynamodb, tick_table, doomed)
    counts: Counter[str] = Counter()
    largest = candle_bytes = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=candle_table):
        for item in page["Items"]:
            size = item_size(item)
            largest = max(largest, size)
            series = item[SERIES]["S"]
            if not series.startswith("#") and not series.endswith(PACK_SUFFIX):
                counts[series.rsplit("#", 1)[1]] += 1
                candle_bytes += size
    report.candles_stored = {name: counts[name] for name in INTERVALS}
    report.largest_item_bytes = largest
    report.mean_candle_bytes = round(candle_bytes / max(1, sum(counts.values())), 1)
    return report, stream


def main(argv: list[str]) -> None:
    from emulator.moto_server import EmbeddedEmulator
    from emulator.session import client as emulator_client

    minutes = float(argv[0]) if argv else 60
    start = int(argv[1]) if len(argv) > 1 else DEFAULT_START_MS
    venues = int(argv[2]) if len(argv) > 2 else 1
    batch = int(argv[3]) if len(argv) > 3 else 100
    with EmbeddedEmulator() as emulator:
        client = emulator_client("dynamodb", emulator.endpoint)
        report, _ = measure_overhead(client, minutes=minutes, start_ms=start, venues=venues, batch=batch)
    print(json.dumps(report.summary(), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])


# ---- Lambda's CPU share on this machine -----------------------------------------------------------

LAMBDA_FULL_VCPU_MB = 1769  # one vCPU at 1,769 MB (docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html)
CGROUP_CPU = "/sys/fs/cgroup/cpu"


def lambda_cgroup(name: str, memory_mb: int, period_us: int = 20_000) -> str:
    """A cgroup v1 CPU group capped at Lambda's share for `memory_mb` (root only); its path.
    Put a process in it by writing its PID to `<path>/cgroup.procs`."""
    import os

    path = os.path.join(CGROUP_CPU, name)
    os.makedirs(path, exist_ok=True)
    quota = min(period_us, round(period_us * memory_mb / LAMBDA_FULL_VCPU_MB))
    with open(os.path.join(path, "cpu.cfs_period_us"), "w") as period_file:
        period_file.write(str(period_us))
    with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as quota_file:
        quota_file.write(str(quota if quota < period_us else -1))
    return path


def _spin(count: int) -> tuple[float, float]:
    """Wall and CPU seconds of a CPU-bound loop."""
    started, cpu, total = time.perf_counter(), time.process_time(), 0
    for index in range(count):
        total += index * index % 7
    return time.perf_counter() - started, time.process_time() - cpu


def share_scaling(memory_mb: int, count: int = 20_000_000) -> dict[str, float]:
    """A CPU-bound loop's wall time per CPU second inside the group against outside it: under
    Lambda's model it should be 1 / share = 1,769 / memory_mb times slower (this checks the
    machine's cgroup does it). Wall per CPU second, not wall alone: on a busy machine the free
    loop also waits for a core, and that wait is not the cap's."""
    import multiprocessing
    import os

    path = lambda_cgroup(f"lambda-{memory_mb}", memory_mb)
    free = _spin(count)

    def capped(queue: Any) -> None:
        with open(os.path.join(path, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))
        queue.put(_spin(count))

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=capped, args=(queue,))
    child.start()
    slow = queue.get()
    child.join()
    return {"memory_mb": memory_mb, "free_wall_s": free[0], "free_cpu_s": free[1], "capped_wall_s": slow[0],
            "capped_cpu_s": slow[1], "measured_ratio": (slow[0] / slow[1]) / (free[0] / free[1]),
            "expected_ratio": LAMBDA_FULL_VCPU_MB / memory_mb}
