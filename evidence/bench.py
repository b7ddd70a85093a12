"""`invoke bench`: how much work each update takes, measured against moto's server and on the
embedded stack. Benchmarks, not tests: they report medians and spread, never pass/fail; a
target is shown next to the figure it judges (evidence/reports.py), not asserted.

Sections of results/bench.json, in the order they run:
- webhook, enricher: handler time and DynamoDB requests per update against moto's server;
- late_record: one late record's writes and reads (issue 12 item 8);
- api, candles: the read API per request kind and candle writes per stored update
  (issue 13; evidence/bench_api.py);
- cold_start: each handler's import net of boto3, with and without bytecode (issue 11);
- relay (loopback), then on the embedded stack: latency, token requests cold and warm, the
  relay through the stack's webhook (issue 14; evidence/bench_senders.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from delivery.build import LAMBDA_ARM64, build_all, host_platform, runtime_python
from delivery.paths import BUILD_DIR, RESULTS_DIR
from emulator.moto_server import EmbeddedEmulator
from emulator.runtime import provided_libraries, unpack
from emulator.session import client as emulator_client
from errors import PipelineError
from evidence.capacity import item_size, read_units, write_units
from functions.shared.price_table.items import stream_record
from functions.shared.price_table.keys import table_definition
from functions.webhook_processor.exchanges import EXCHANGES
from functions.webhook_processor.settings import Settings as WebhookSettings
from stacks.names import FUNCTION_NAMES

HANDLER_MODULES = {name: f"functions.{name}.handler" for name in FUNCTION_NAMES}


class MissingResults(PipelineError):
    """`invoke cost` needs the figures `invoke bench` writes."""


@dataclass
class Spread:
    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass
class BenchResults:
    """What `invoke bench` writes to results/bench.json (one key per section, sorted)."""

    date: str
    machine: str
    quick: bool
    webhook: list[dict[str, Any]] = field(default_factory=list)
    enricher: list[dict[str, Any]] = field(default_factory=list)
    cold_start: list[dict[str, Any]] = field(default_factory=list)
    latency: dict[str, Any] = field(default_factory=dict)
    # Issue 12 item 8: one late record's writes and reads (tests/support/enricher_support.py).
    late_record: dict[str, Any] = field(default_factory=dict)
    # Issue 13: the read API per request kind, and candle maintenance per stored update.
    api: dict[str, Any] = field(default_factory=dict)
    candles: dict[str, Any] = field(default_factory=dict)
    # Issue 14: token (TradingView) requests cold and warm; the relay's throughput.
    token: dict[str, Any] = field(default_factory=dict)
    relay: dict[str, Any] = field(default_factory=dict)


class RequestCounter:
    """Counts a client's DynamoDB requests per operation (retries included)."""

    def __init__(self, client: Any) -> None:
        self.calls: dict[str, int] = {}
        client.meta.events.register("before-send.dynamodb", self._count)

    def _count(self, request: Any, **_: Any) -> None:
        operation = request.headers.get("X-Amz-Target", b"").decode().split(".")[-1]
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def reset(self) -> None:
        self.calls = {}

    def total(self) -> int:
        return sum(self.calls.values())


def _machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _table(dynamodb: Any, name: str) -> None:
    dynamodb.create_table(**table_definition(name))


# ---- webhook --------------------------------------------------------------------------------

def bench_webhook(endpoint: str, batch_sizes: tuple[int, ...], repeats: int, symbols: int = 20) -> list[dict]:
    from emulator.function_url import url_event
    from functions.webhook_processor import service as webhook
    from functions.webhook_processor.signature import parse_secrets, signature_header

    dynamodb = emulator_client("dynamodb", endpoint, config=webhook.CLIENT_CONFIG)
    sqs = emulator_client("sqs", endpoint)
    _table(dynamodb, "bench-webhook")
    settings = WebhookSettings("bench-webhook", sqs.create_queue(QueueName="bench-dlq")["QueueUrl"],
                                parse_secrets(json.dumps({"bench": "bench-secret"})))
    counter = RequestCounter(dynamodb)
    rows, run = [], 0
    for size in batch_sizes:
        seconds, requests, units = [], [], []
        for _ in range(repeats):
            run += 1
            updates = [{"symbol": f"B{run}X{i % symbols}-USD", "price": f"{100 + i}.25", "exchange": "binance",
                        "volume": "1.5", "timestamp": 1_700_000_000_000 + i} for i in range(size)]
            body = json.dumps(updates).encode()
            now = time.time()
            event = url_event("POST", "/", {"X-Source": "bench", "X-Signature": signature_header(
                ["bench-secret"], int(now), body)}, body, "127.0.0.1")
            counter.reset()
            started = time.perf_counter()
            response = webhook.process(event, settings, dynamodb, sqs, now)
            seconds.append(time.perf_counter() - started)
            assert json.loads(response["body"])["accepted"] == size, response
            requests.append(sum(counter.calls.values()) / size)
        stored = dynamodb.query(TableName="bench-webhook", KeyConditionExpression="symbol = :s",
                                ExpressionAttributeValues={":s": {"S": f"B{run}X0-USD"}}, Limit=1)["Items"]
        units.append(write_units(stored[0]))
        rate = Spread.of([size / s for s in seconds])
        rows.append({"batch": size, "updates_per_second": asdict(rate),
                     "handler_ms": asdict(Spread.of([s * 1000 for s in seconds])),
                     "dynamodb_requests_per_update": statistics.median(requests),
                     "write_units_per_update": statistics.median(units),
                     "item_bytes": item_size(stored[0])})
    return rows


# ---- enricher -------------------------------------------------------------------------------

class TableMeter:
    """A DynamoDB client that records, per table, each request's operation and the items it
    read or wrote, so a bench can price the tick table's and the candle table's capacity
    apart. Every other attribute is the client's own (a wrapped client's events still fire)."""

    _READS = ("query", "get_item", "batch_get_item")

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.log: list[tuple[str, str, list[dict[str, Any]], bool]] = []  # table, op, items, consistent

    def _record(self, table: str, operation: str, items: list[dict[str, Any]], consistent: bool) -> None:
        with self._lock:
            self.log.append((table, operation, items, consistent))

    def query(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self._client.query(**kwargs)
        self._record(kwargs["TableName"], "Query", response.get("Items", []), bool(kwargs.get("ConsistentRead")))
        return response

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self._client.get_item(**kwargs)
        item = response.get("Item")
        self._record(kwargs["TableName"], "GetItem", [item] if item else [], bool(kwargs.get("ConsistentRead")))
        return response

    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self._client.batch_get_item(**kwargs)
        for table, items in response.get("Responses", {}).items():
            consistent = bool(kwargs["RequestItems"].get(table, {}).get("ConsistentRead"))
            self._record(table, "BatchGetItem", items, consistent)
        return response

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self._record(kwargs["TableName"], "PutItem", [kwargs["Item"]], True)  # billed even if its condition fails
        response: dict[str, Any] = self._client.put_item(**kwargs)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def figures(self, first: int, table: str, records: int) -> dict[str, float]:
        """Requests, reads, writes, read units and write units per record of `table` since entry `first`."""
        entries = [entry for entry in self.log[first:] if entry[0] == table]
        reads = [entry for entry in entries if entry[1] != "PutItem"]
        writes = [entry for entry in entries if entry[1] == "PutItem"]
        # A Query is billed on its page's bytes; GetItem and BatchGetItem round each item up alone.
        read_units_total = sum(read_units(sum(item_size(item) for item in items), consistent) if operation == "Query"
                               else sum(read_units(item_size(item), consistent) for item in items) or
                               read_units(0, consistent)
                               for _, operation, items, consistent in reads)
        write_units_total = sum(write_units(items[0]) for _, _, items, _ in writes)
        return {"requests": len(entries) / records, "reads": len(reads) / records, "writes": len(writes) / records,
                "read_units": read_units_total / records, "write_units": write_units_total / records}


BENCH_VENUES = EXCHANGES  # the venues a bench tick comes from: every exchange the pipeline reads
# 1,000,000 updates a day arrive 86.4 ms apart: the bench's stream has that spacing, so its
# batches span the event time (and close the minutes) that real batches do.
UPDATE_SPACING_MS = 86


@dataclass(frozen=True)
class EnricherScenario:
    """One row of the enricher bench: `symbols` x `venues` series, batches of `batch` records;
    `candles`: the enricher also maintains candles (as deployed), on a table of their own."""

    batch: int
    symbols: int
    venues: int = 1
    candles: bool = False
    repeats: int | None = None  # None: the plan's; the counts are exact, so fewer runs suffice


def _single_venue(batches: tuple[int, ...]) -> tuple[EnricherScenario, ...]:
    return tuple(EnricherScenario(batch, symbols) for symbols in (1, 20) for batch in batches)


def bench_enricher(endpoint: str, scenarios: tuple[EnricherScenario, ...], repeats: int,
                   history: int = 25) -> list[dict]:
    """Handler time, DynamoDB requests and capacity units per record of one enricher batch.

    A time-ordered stream (one update every 86 ms; the series take turns, symbol first, then
    venue; each venue's ticks keyed at `keys.first_slot(venue)`, its `exchange` the venue) is
    enriched in batches of 100 until every series holds `history` ticks, then one batch of the
    scenario's size is measured. Requests and units are counted per table: the tick table's
    (the enricher's own reads and puts: `dynamodb_requests_per_record`, the figure that must
    not rise with venues) and the candle table's (`candle_*`). Units are priced by
    `evidence.capacity` from the items each request read or wrote: moto bills no capacity by
    DynamoDB's rules.
    """
    from decimal import Decimal

    from functions.price_enricher import service as enricher
    from functions.price_enricher.indicators import Windows
    from functions.shared.price_table.candles import table_definition as candle_table_definition
    from functions.shared.price_table.keys import first_slot, sort_key
    from functions.shared.price_table.ticks import to_item
    from functions.shared.price_update import PriceUpdate

    raw = emulator_client("dynamodb", endpoint)
    sns = emulator_client("sns", endpoint)
    _table(raw, "bench-enricher")
    raw.create_table(**candle_table_definition("bench-enricher-candles"))
    topic = sns.create_topic(Name="bench-success")["TopicArn"]
    dynamodb = TableMeter(raw)
    sequence, rows, run = 0, [], 0
    base = 1_700_000_000_000

    def put(symbol: str, venue: str, moment: int) -> dict:
        nonlocal sequence
        sequence += 1
        item = to_item(PriceUpdate(symbol, base + moment, Decimal(100 + moment % 7), venue, "bench", 0),
                       sort_key(base + moment, first_slot(venue)))
        raw.put_item(TableName="bench-enricher", Item=item)
        return stream_record(item, sequence)

    for scenario in scenarios:
        settings = enricher.Settings("bench-enricher", topic, Windows(),
                                     candle_table_name="bench-enricher-candles" if scenario.candles else "")
        venues = BENCH_VENUES[:scenario.venues]
        per_record, samples = [], []
        for _ in range(scenario.repeats or repeats):
            run += 1
            series = [(f"E{run}X{s}-USD", venue) for venue in venues for s in range(scenario.symbols)]
            count = history * len(series)
            warm = [put(*series[k % len(series)], k * UPDATE_SPACING_MS) for k in range(count)]
            for first in range(0, len(warm), 100):
                enricher.process({"Records": warm[first:first + 100]}, settings, dynamodb, sns)
            batch = [put(*series[k % len(series)], k * UPDATE_SPACING_MS) for k in range(count, count + scenario.batch)]
            mark = len(dynamodb.log)
            started = time.perf_counter()
            result = enricher.process({"Records": batch}, settings, dynamodb, sns)
            elapsed = time.perf_counter() - started
            assert result == {"batchItemFailures": []}, result
            per_record.append(elapsed / scenario.batch * 1000)
            ticks = dynamodb.figures(mark, "bench-enricher", scenario.batch)
            candle = dynamodb.figures(mark, "bench-enricher-candles", scenario.batch)
            samples.append({"dynamodb_requests_per_record": ticks["requests"],
                            "reads_per_record": ticks["reads"], "writes_per_record": ticks["writes"],
                            "read_units_per_record": ticks["read_units"],
                            "write_units_per_record": ticks["write_units"],
                            "candle_requests_per_record": candle["requests"],
                            "candle_read_units_per_record": candle["read_units"],
                            "candle_write_units_per_record": candle["write_units"]})
        row: dict[str, Any] = {"batch": scenario.batch, "symbols": scenario.symbols, "venues": scenario.venues,
                               "candles": scenario.candles, "ms_per_record": asdict(Spread.of(per_record))}
        row.update({name: statistics.median(sample[name] for sample in samples) for name in samples[0]})
        rows.append(row)
    return rows


# ---- a late record (issue 12 item 8) -----------------------------------------------------------

@contextmanager
def _emulator_credentials() -> Iterator[None]:
    """The emulator's dummy credentials in the environment for code that builds plain boto3
    clients (the enricher's test support), and the shell's own settings back afterwards."""
    from emulator.session import environment

    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION",
             "AWS_REGION", "AWS_ACCOUNT_ID_ENDPOINT_MODE")
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            os.environ.pop(name, None)
        os.environ.update({name: value for name, value in environment("http://unused").items()
                           if name in names})
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bench_late_record(endpoint: str) -> dict[str, Any]:
    """Writes and reads of one late record in issue 12 item 8's scenario (ticks 0-59 of BTC/USD;
    tick 10 arrives after 11-24 were enriched), run by the enricher helper's
    `corrections_for_late_tick` against moto's server: the request counts, not timings."""
    import importlib

    # Imported by name: the scenario lives with the enricher's tests, which mypy leaves out
    # (pyproject's exclude), and a static import would make it check them through here.
    support = importlib.import_module("tests.support.enricher_support")
    with _emulator_credentials():
        figures: dict[str, float] = support.corrections_for_late_tick(endpoint)
    return {"scenario": "ticks 0-59 (BTC/USD monthly closes); tick 10 arrives after 11-24 were enriched",
            **figures}


# ---- cold start proxy -----------------------------------------------------------------------

# Fresh interpreters per figure for `invoke bench`: a median of fewer cannot resolve the
# 40 ms target on a shared 2-core machine. `runs` below is what the caller asks for.
COLD_START_RUNS = 15
_BOTO3 = "boto3"
# One fresh interpreter: `import boto3`, then `import module` (nothing more when it is boto3),
# each timed on the wall clock and in CPU time (on a loaded machine the wall clock also
# counts waiting for a core). Prints: boto3 wall, boto3 cpu, module wall, module cpu (ms).
_IMPORT_PROBE = """\
import sys, time
sys.path[:0] = {paths!r}
def timed(name):
    wall, cpu = time.perf_counter(), time.process_time()
    __import__(name)
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
print(*timed("boto3"), *timed({module!r}))
"""


def _without_bytecode(folder: Path) -> Path:
    """The zip as it was before it carried bytecode: every module compiles from source."""
    import shutil

    for cache in sorted(folder.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    return folder


def _import_ms(python: Path, paths: list[str], module: str) -> list[float]:
    """[boto3 wall, boto3 cpu, module wall, module cpu] in a fresh `-I -S` interpreter that writes no bytecode.

    -B, because -I ignores PYTHONDONTWRITEBYTECODE: without it the first run would write
    bytecode into the unpacked folder and every later "without bytecode" run would use it.
    """
    env = {"PATH": os.environ.get("PATH", ""), "AWS_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1"}
    script = _IMPORT_PROBE.format(paths=paths, module=module)
    output = subprocess.run([str(python), "-I", "-S", "-B", "-c", script], capture_output=True, text=True, env=env,
                            check=True).stdout
    return [float(value) for value in output.split()]


def _spread(values: list[float]) -> dict[str, Any]:
    return asdict(Spread.of(values))


def _cold_start_figures(samples: dict[tuple[str, str], list[list[float]]], handler: str,
                        layout: str) -> dict[str, dict[str, Any]]:
    """One layout's figures; keys without bytecode get the suffix `_no_bytecode`."""
    suffix = "" if layout == "bytecode" else "_no_bytecode"
    boto3_only, with_handler = samples[layout, _BOTO3], samples[layout, handler]
    raw = [sample[0] + sample[2] for sample in with_handler]
    return {
        f"import_ms{suffix}": _spread(raw),
        f"boto3_ms{suffix}": _spread([sample[0] for sample in boto3_only]),
        # The handler's interpreter minus the boto3-only one next to it, round by round.
        f"net_import_ms{suffix}": _spread([total - alone[0] for total, alone in zip(raw, boto3_only, strict=True)]),
        # The same difference inside one interpreter: the handler's import once boto3 is loaded.
        f"net_after_boto3_ms{suffix}": _spread([sample[2] for sample in with_handler]),
        f"net_after_boto3_cpu_ms{suffix}": _spread([sample[3] for sample in with_handler]),
    }


def bench_cold_start(runs: int) -> list[dict[str, Any]]:
    """Each handler's import time on the runtime's Python (3.12), with and without the zip's bytecode.

    Every function's cold start imports boto3 alike, so the figure a handler controls is its
    import minus `import boto3` ("net"). Interpreters that import boto3 only and ones that
    import the handler alternate (the order reversed every other round), so a machine growing
    busier slows both; the net is the median of the round-by-round differences. Each
    handler interpreter also times its handler import after boto3's, which needs no
    subtraction across processes and is steadier on a busy machine (and in CPU time, more so).
    sys.path is the unpacked host zip and the runtime libraries, as the local workers have it.
    """
    host = build_all(host_platform())
    arm = build_all(LAMBDA_ARM64)
    python = runtime_python()
    runtime = provided_libraries(BUILD_DIR / "local" / "runtime", python.executable)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for name in FUNCTION_NAMES:
            layouts = {"bytecode": unpack(host[name].path, Path(folder) / name / "bytecode"),
                       "source": _without_bytecode(unpack(host[name].path, Path(folder) / name / "source"))}
            order = [(layout, module) for layout in layouts for module in (_BOTO3, HANDLER_MODULES[name])]
            samples: dict[tuple[str, str], list[list[float]]] = {key: [] for key in order}
            for round_number in range(runs):
                for layout, module in (order if round_number % 2 == 0 else order[::-1]):
                    samples[layout, module].append(
                        _import_ms(python.executable, [str(layouts[layout]), str(runtime)], module))
            rows.append({"function": name, "python": python.version,
                         **_cold_start_figures(samples, HANDLER_MODULES[name], "bytecode"),
                         **_cold_start_figures(samples, HANDLER_MODULES[name], "source"),
                         "zip_bytes_arm64": arm[name].size})
    return rows


# ---- end-to-end latency on the embedded stack -------------------------------------------------

def bench_latency(stack: Any, updates: int, per_request: int = 10) -> dict[str, Any]:
    from emulator.subscriber import TopicSubscriber
    from senders.webhook import signed_post

    info = stack.info
    accepted: dict[tuple[str, int], float] = {}
    base = int(time.time() * 1000) - 10_000_000
    with TopicSubscriber(stack.aws, info.outputs["success_topic_arn"], f"bench-latency-{int(time.time())}") as inbox:
        for start in range(0, updates, per_request):
            chunk = [(f"LAT{i % 5}-USD", base + i) for i in range(start, min(updates, start + per_request))]
            body = json.dumps([{"symbol": s, "price": "100.5", "exchange": "bench", "timestamp": t}
                               for s, t in chunk]).encode()
            status, _ = signed_post(info.webhook_url, body, info.secret_source, info.secret)
            now = time.monotonic()
            if status == 200:
                accepted.update(dict.fromkeys(chunk, now))

        def arrivals(received: list) -> dict[tuple[str, int], float]:
            return {(body["symbol"], body["event_time_ms"]): m.received_at
                    for m in received if (body := m.json())["symbol"].startswith("LAT")}
        inbox.wait_for(lambda received: len(arrivals(received).keys() & accepted.keys()) >= len(accepted), 120)
        received = arrivals(inbox.received())
    latencies = sorted((received[k] - accepted[k]) * 1000 for k in accepted if k in received)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"updates": updates, "received": len(latencies), "p50_ms": statistics.median(latencies),
            "p95_ms": quantiles[94], "max_ms": latencies[-1]}


# ---- all of it ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchPlan:
    """The sizes of one `invoke bench` run: `full` for docs/evidence.md, `quick` proves it still runs."""

    webhook_batches: tuple[int, ...]
    enricher: tuple[EnricherScenario, ...]
    enricher_history: int
    repeats: int
    cold_start_runs: int
    latency_updates: int
    candle_minutes: float
    token_cold_runs: int
    token_warm_requests: int
    token_warm_per_worker: int
    relay_loopback_ticks: int
    relay_stack_ticks: int


# The venue rows: 20 symbols x 3 venues with candle maintenance, at batches of 100 and of the
# ~12 records the stream's 1 s window forms at 1,000,000 updates/day; and the same stream on
# one venue, to show what the venues change.
VENUE_ROWS = tuple(EnricherScenario(batch, 20, venues, candles=True, repeats=2) for venues in (1, 3)
                   for batch in (100, 12))
FULL = BenchPlan((1, 10, 100, 1000), _single_venue((1, 10, 100)) + VENUE_ROWS, 25, 5, COLD_START_RUNS, 1000, 62, 10,
                 200, 20, 10_000, 2000)
QUICK = BenchPlan((1, 10, 100), _single_venue((1, 10)) + (EnricherScenario(12, 20, 3, candles=True),), 2, 1, 1, 50,
                  2, 2, 20, 5, 1000, 200)


def _on_stack(stack: Any, results: BenchResults, plan: BenchPlan, echo: Callable[[str], None]) -> None:
    """The figures that need the embedded stack, in an order where each leaves the next a quiet stack:
    latency first (its own stream traffic), then the token requests, the relay's burst last."""
    from evidence.bench_senders import bench_relay_through_stack, bench_token_requests

    results.latency = bench_latency(stack, plan.latency_updates)
    stack.settle(120)
    echo("token (TradingView) requests on the embedded stack: warm through the URL, cold in fresh workers …")
    results.token = bench_token_requests(stack, plan.token_cold_runs, plan.token_warm_requests,
                                         plan.token_warm_per_worker)
    stack.settle(120)
    echo(f"relay through the embedded stack's webhook ({plan.relay_stack_ticks:,} ticks) …")
    results.relay["through_stack"] = bench_relay_through_stack(stack, plan.relay_stack_ticks)


def run_benchmarks(quick: bool = False, stack: Any | None = None,
                   echo: Callable[[str], None] = print) -> BenchResults:
    """Every section of `invoke bench`; `stack` (a started LocalDeployment) is reused when given."""
    from evidence.bench_api import FULL_SIZES, QUICK_SIZES, bench_api, bench_candle_writes
    from evidence.bench_senders import bench_relay_loopback

    plan = QUICK if quick else FULL
    results = BenchResults(datetime.now(UTC).strftime("%Y-%m-%d"), _machine(), quick)
    with EmbeddedEmulator() as emulator:
        echo("webhook processor (moto server) …")
        results.webhook = bench_webhook(emulator.endpoint, plan.webhook_batches, plan.repeats)
        echo("price enricher (moto server) …")
        results.enricher = bench_enricher(emulator.endpoint, plan.enricher, plan.repeats,
                                          plan.enricher_history)
        echo("a late record's corrections (moto server) …")
        results.late_record = bench_late_record(emulator.endpoint)
        echo("price API per request kind (moto server, then its answers replayed) …")
        results.api = bench_api(emulator.endpoint, QUICK_SIZES if quick else FULL_SIZES, echo)
        echo(f"candle maintenance per stored update ({plan.candle_minutes:g} simulated minutes, moto server) …")
        results.candles = bench_candle_writes(emulator.endpoint, plan.candle_minutes)
    echo("cold start proxy (imports in a fresh interpreter) …")
    results.cold_start = bench_cold_start(plan.cold_start_runs)
    echo(f"relay on loopback ({plan.relay_loopback_ticks:,} ticks) …")
    results.relay = {"loopback": bench_relay_loopback(plan.relay_loopback_ticks)}
    echo("end-to-end latency on the embedded stack …")
    if stack is not None:
        _on_stack(stack, results, plan, echo)
    else:
        from delivery.local import LocalDeployment

        with LocalDeployment(echo=lambda line: None) as running:
            _on_stack(running, results, plan, echo)
    return results


def save(results: BenchResults, folder: Path = RESULTS_DIR) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = "bench-quick.json" if results.quick else "bench.json"
    path = folder / name
    path.write_text(json.dumps(asdict(results), indent=2, sort_keys=True) + "\n")
    return path


def load(folder: Path = RESULTS_DIR) -> dict[str, Any]:
    path = folder / "bench.json"
    if not path.is_file():
        raise MissingResults("no results/bench.json: run `invoke bench` first")
    return json.loads(path.read_text())
