"""The evidence code's own arithmetic and structure (no timings judged): item sizes and read
units, how the read-API bench prices a request, the scenario it loads, the token body, the
replay server, the report tables and the results file."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.request import Request, urlopen

import pytest

from evidence.bench import BenchResults, MissingResults, load, save
from evidence.bench_api import FULL_SIZES, KINDS, _scenario, priced_reads, sequential_reads
from evidence.bench_senders import quantile_summary, tradingview_body
from evidence.capacity import item_size, read_units, write_units
from evidence.replay_server import ReplayServer
from evidence.reports import bench_table, cold_start_table, verdict
from functions.shared.price_table.reads import ReadPage

MINUTE_MS, DAY_MS = 60_000, 86_400_000


def test_item_size_follows_dynamodbs_rules():
    item = {"symbol": {"S": "BTC-USD"}, "price": {"N": "64012.50"}, "ok": {"BOOL": True}}
    # names 6 + 5 + 2; "BTC-USD" 7; 64012.50 -> 6 significant digits -> 3 + 1; BOOL 1
    assert item_size(item) == 6 + 7 + 5 + 4 + 2 + 1
    assert write_units(item) == 1
    assert write_units({"blob": {"S": "x" * 1100}}) == 2


@pytest.mark.parametrize(("size", "consistent", "units"), [(0, True, 1), (4096, True, 1), (4097, True, 2),
                                                            (4097, False, 1), (100, False, 0.5)])
def test_read_units_round_up_per_4_kb(size, consistent, units):
    assert read_units(size, consistent) == units


def test_a_request_is_priced_page_by_page():
    small = {"k": {"S": "x" * 96}}             # 97 bytes
    large = {"k": {"S": "x" * 4999}}           # 5,000 bytes
    pages = [ReadPage("Query", (large,), True), ReadPage("GetItem", (small,), False), ReadPage("Query", (), True)]
    assert priced_reads(pages) == {"dynamodb_requests": 3, "items_read": 2, "bytes_read": 5097,
                                   "read_units": 2 + 0.5 + 1}


def test_latest_reads_8_at_a_time_and_other_routes_page_by_page():
    assert sequential_reads("latest_20_symbols", 20) == 3
    assert sequential_reads("latest_20_symbols", 8) == 1
    assert sequential_reads("candles_1m_1_day", 3) == 3


@pytest.mark.parametrize("now", [1_764_000_123_456, 1_764_000_120_100, 1_764_028_800_000 + 59_999])
def test_the_read_api_scenario_has_a_tick_in_every_bucket_it_asks_for(now):
    ticks, paths = _scenario(FULL_SIZES, now)
    assert set(paths) == set(KINDS)
    assert len([s for s in ticks if s.startswith("LAT")]) == 20 and paths["latest_20_symbols"].count(",") == 19
    day = ticks["DAY-USD"]
    day_start = int(paths["candles_1m_1_day"].split("from=")[1])
    assert {t // MINUTE_MS * MINUTE_MS for t in day} == {day_start + i * MINUTE_MS for i in range(1440)}
    assert len(day) >= FULL_SIZES.ticks + 1  # enough for a full page of 1,000 and a cursor
    year_start = int(paths["candles_1d_1_year"].split("from=")[1])
    assert {t // DAY_MS * DAY_MS for t in ticks["YEAR-USD"]} == {year_start + i * DAY_MS for i in range(365)}
    assert all(t <= now for times in ticks.values() for t in times)
    assert all(times == sorted(set(times)) for times in ticks.values())


def test_quantile_summary():
    values = [float(v) for v in range(1, 101)]
    summary = quantile_summary(values)
    assert summary["n"] == 100 and summary["p50_ms"] == 50.5 and summary["max_ms"] == 100
    assert 99 <= summary["p99_ms"] <= 100
    assert quantile_summary([]) == {"n": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}


def test_the_token_body_is_tradingviews_shape():
    first, second = (json.loads(tradingview_body("tv", "token-0123456789abcdef", i, 1_764_000_000_000)) for i in (1, 2))
    assert set(first) == {"source", "token", "symbol", "exchange", "price", "timestamp"}
    assert first["timestamp"] != second["timestamp"]
    assert datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00")).tzinfo is not None


class _Target(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.hits.append(body)
        answer = json.dumps({"echo": body.decode(), "n": len(self.hits)}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("x-amz-crc32", "123")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def test_the_replay_server_forwards_once_then_answers_from_its_recording():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Target.hits = []
    try:
        with ReplayServer(f"http://127.0.0.1:{server.server_address[1]}") as replay:
            def post(body: bytes, target: str = "DynamoDB_20120810.Query") -> tuple[bytes, str | None]:
                request = Request(replay.endpoint, data=body, method="POST", headers={"X-Amz-Target": target})
                with urlopen(request, timeout=10) as response:
                    return response.read(), response.headers.get("x-amz-crc32")
            first = post(b"a")
            assert post(b"a") == first == (json.dumps({"echo": "a", "n": 1}).encode(), "123")
            assert json.loads(post(b"b")[0])["n"] == 2
            assert json.loads(post(b"a", "DynamoDB_20120810.GetItem")[0])["n"] == 3  # the target is in the key
        assert _Target.hits == [b"a", b"b", b"a"]
    finally:
        server.shutdown()
        server.server_close()


def test_verdicts():
    assert verdict(40, 40) == "yes (≤ 40)"
    assert verdict(40.1, 40).startswith("MISSED")
    assert verdict(1, None) == "–"


def _spread(value: float) -> dict[str, float]:
    return {"median": value, "low": value, "high": value, "runs": 1}


def _quantiles(value: float) -> dict[str, float]:
    return {"n": 3, "p50_ms": value, "p99_ms": value, "max_ms": value}


def sample_results() -> dict:
    api_row = {"kind": "latest_20_symbols", "path": "/v1/latest", "items_returned": 20, "response_bytes": 6000,
               "handler_ms": _spread(60.0), "handler_p90_ms": 70.0, "cpu_ms": _spread(50.0),
               "handler_ms_replayed": _spread(40.0), "cpu_ms_replayed": _spread(35.0), "dynamodb_requests": 20,
               "items_read": 20, "bytes_read": 4000, "read_units": 20, "sequential_reads": 2,
               "target_median_ms": 50.0}
    cold = {"function": "price_api", "python": "3.12.1", "zip_bytes_arm64": 1000, "import_ms": _spread(300),
            "boto3_ms": _spread(260), **{f"{name}{suffix}": _spread(30)
                                         for name in ("net_import_ms", "net_after_boto3_ms", "net_after_boto3_cpu_ms")
                                         for suffix in ("", "_no_bytecode")}}
    return {
        "date": "2026-11-25", "machine": "x86_64, 2 cores", "quick": True,
        "webhook": [{"batch": 1, "updates_per_second": _spread(100), "handler_ms": _spread(10),
                     "dynamodb_requests_per_update": 1.0, "write_units_per_update": 1, "item_bytes": 111}],
        "enricher": [{"batch": 1, "symbols": 1, "ms_per_record": _spread(20), "dynamodb_requests_per_record": 2.0,
                      "reads_per_record": 1.0, "writes_per_record": 1.0, "read_units_per_record": 1.0}],
        "late_record": {"scenario": "s", "writes_per_late_record": 15.0, "reads_per_late_record": 2.0,
                        "items_corrected": 14.0, "later_items_enriched": 14.0},
        "cold_start": [cold],
        "latency": {"updates": 50, "received": 50, "p50_ms": 3000, "p95_ms": 3500, "max_ms": 4000},
        "api": {"records_loaded": 400, "tick_item_bytes": 232, "requests": [api_row]},
        "candles": {"updates_per_day": 1_000_000, "symbols": 20, "batch": 100, "simulated_minutes": 2,
                    "write_units_per_update": 0.05, "budget_write_units_per_update": 0.1, "reads_per_update": 0.2,
                    "read_units_per_update": 0.3, "updates": 1000, "candles_written": 30, "largest_item_bytes": 330,
                    "mean_candle_bytes": 86.0},
        "token": {"via": "local token source", **{key: _quantiles(10.0) for key in (
            "cold_init_ms", "cold_first_request_ms", "cold_total_ms", "warm_handler_ms", "warm_url_round_trip_ms")}},
        "relay": {"loopback": {"ticks": 1000, "seconds": 0.2, "ticks_per_second": 5000.0,
                               "webhook_requests_per_tick": 0.01},
                  "through_stack": {"ticks": 200, "seconds": 2.0, "ticks_per_second": 100.0,
                                    "webhook_invocations_per_tick": 0.01}},
    }


def _text(table) -> str:
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(table)
    return console.export_text()


def test_every_section_has_a_table_and_targets_are_judged():
    tables = bench_table(sample_results())
    assert len(tables) == 9
    text = "\n".join(_text(table) for table in tables)
    assert "MISSED (> 50)" in text       # latest: 60 ms median against 50
    assert "yes (≤ 40)" in text          # the cold start's net import: 30 ms
    assert "yes (≤ 0.1)" in text         # candle writes per update
    assert "0.0100" in text and "15" in text


def test_results_written_before_these_sections_still_print():
    old = {key: value for key, value in sample_results().items()
           if key not in ("late_record", "api", "candles", "token", "relay")}
    old["cold_start"] = [{"function": "webhook_processor", "import_ms": _spread(200), "zip_bytes_arm64": 1}]
    assert len(bench_table(old)) == 4
    assert "webhook_processor" in _text(cold_start_table(old["cold_start"]))


def test_results_round_trip_through_the_results_folder(tmp_path):
    with pytest.raises(MissingResults):
        load(tmp_path)
    results = BenchResults("2026-11-25", "machine", quick=False, api={"requests": []})
    path = save(results, tmp_path)
    assert path.name == "bench.json"
    assert load(tmp_path)["api"] == {"requests": []}
    assert save(BenchResults("2026-11-25", "machine", quick=True), tmp_path).name == "bench-quick.json"


class _FakeDynamo:
    """Answers as DynamoDB would, with fixed items: enough to price what a bench meters."""

    def __init__(self, items):
        self.items = items

    def query(self, **kwargs):
        return {"Items": self.items}

    def get_item(self, **kwargs):
        return {"Item": self.items[0]} if self.items else {}

    def put_item(self, **kwargs):
        return {}


def test_the_table_meter_prices_each_table_apart_by_dynamodb_rules():
    from evidence.bench import TableMeter

    big = {"symbol": {"S": "X"}, "blob": {"S": "x" * 3000}}  # ~3 KB
    meter = TableMeter(_FakeDynamo([big, big]))
    meter.query(TableName="ticks", ConsistentRead=True)            # 6 KB in one page: 2 units
    meter.get_item(TableName="candles", ConsistentRead=True)       # 3 KB: 1 unit
    meter.put_item(TableName="candles", Item=big)                  # 3 KB: 3 write units
    ticks, candles = meter.figures(0, "ticks", 2), meter.figures(0, "candles", 2)
    assert ticks == {"requests": 0.5, "reads": 0.5, "writes": 0.0, "read_units": 1.0, "write_units": 0.0}
    assert candles == {"requests": 1.0, "reads": 0.5, "writes": 0.5, "read_units": 0.5, "write_units": 1.5}
    assert meter.figures(3, "candles", 1)["requests"] == 0   # only what came after the mark
