"""`invoke cost`: a monthly AWS estimate for us-east-1 from the measured figures of `invoke bench`.

Every price is in PRICES with the page it is published on. Every figure that is not a price
and not measured is a named constant below with the reason it has that value; the report
prints them. What `invoke bench` measures and this model uses:

- requests per update and write/read units per update (webhook, enricher; exact counts);
- candle maintenance's write and read units per stored update (`bench["candles"]`);
- the enriched tick's item size and the mean candle's (storage);
- the read API's read units, DynamoDB round trips and CPU time per request kind (`bench["api"]`);
- the relay's webhook requests per tick.

Assumptions (not measured here; moto cannot measure them for AWS):

- DynamoDB answers a request in ~5 ms in AWS (AWS_WRITE_MS, AWS_READ_MS); handler
  durations are derived from request counts, not from moto's wall time;
- the read API's CPU: its CPU time on this machine's core (botocore included), scaled by
  Lambda's CPU share at the API's memory (one vCPU at 1,769 MB, LAMBDA_FULL_VCPU_MB);
- log bytes per invocation and request (LOG_BYTES, PLATFORM_LOG_BYTES); 5 % X-Ray sampling;
- storage: the DynamoDB storage rules' 100 bytes of overhead per item; every candle bucket of
  every interval has a tick (true from one tick a minute per symbol; the default scenario
  has ~35);
- a month is 30 days (720 hours); storage is billed on the month's average size;
- list prices as known on 2026-11-22 (Fargate on-demand, not Spot), not fetched live: this
  machine reaches no AWS site. Check them before quoting a budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from errors import PipelineError

DAYS_PER_MONTH = 30
HOURS_PER_MONTH = DAYS_PER_MONTH * 24
PRICE_DATE = "2026-11-22"


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


# us-east-1 list prices as published on the pages named in each source, as known on
# PRICE_DATE. They were not fetched live (this machine reaches no AWS site): check them there
# before quoting a budget.
DYNAMODB_PAGE = "aws.amazon.com/dynamodb/pricing/on-demand"
PRICES: dict[str, Price] = {
    "lambda_arm_gb_second": Price(0.0000133334, "per GB-second (arm64, first 7.5 billion GB-s)",
                                  "aws.amazon.com/lambda/pricing"),
    "lambda_request": Price(0.20 / 1e6, "per request", "aws.amazon.com/lambda/pricing"),
    "dynamodb_wru": Price(0.625 / 1e6, "per write request unit (on-demand)", DYNAMODB_PAGE),
    "dynamodb_rru": Price(0.125 / 1e6, "per read request unit (on-demand)", DYNAMODB_PAGE),
    "dynamodb_storage_gb_month": Price(0.25, "per GB-month", DYNAMODB_PAGE),
    "dynamodb_pitr_gb_month": Price(0.20, "per GB-month (continuous backups)", DYNAMODB_PAGE),
    "sns_publish_request": Price(0.50 / 1e6, "per request (PublishBatch: one request per 64 KB)",
                                 "aws.amazon.com/sns/pricing"),
    "sqs_request": Price(0.40 / 1e6, "per request (standard)", "aws.amazon.com/sqs/pricing"),
    "logs_ingest_gb": Price(0.50, "per GB ingested (standard)", "aws.amazon.com/cloudwatch/pricing"),
    "logs_storage_gb_month": Price(0.03, "per GB-month archived", "aws.amazon.com/cloudwatch/pricing"),
    "alarm_month": Price(0.10, "per standard alarm per month", "aws.amazon.com/cloudwatch/pricing"),
    "kms_key_month": Price(1.00, "per customer managed key per month", "aws.amazon.com/kms/pricing"),
    "xray_trace": Price(5.00 / 1e6, "per trace recorded", "aws.amazon.com/xray/pricing"),
    "secret_month": Price(0.40, "per secret per month", "aws.amazon.com/secrets-manager/pricing"),
    "secret_api_call": Price(0.05 / 10_000, "per API call ($0.05 per 10,000)",
                             "aws.amazon.com/secrets-manager/pricing"),
    "fargate_arm_vcpu_hour": Price(0.03238, "per vCPU-hour (Linux/ARM, on-demand; Spot is lower and varies)",
                                   "aws.amazon.com/fargate/pricing"),
    "fargate_arm_gb_hour": Price(0.00356, "per GB-hour (Linux/ARM, on-demand)", "aws.amazon.com/fargate/pricing"),
    "public_ipv4_hour": Price(0.005, "per public IPv4 address per hour", "aws.amazon.com/vpc/pricing"),
    "data_transfer_out_gb": Price(0.09, "per GB to the internet (first 10 TB/month; the first 100 GB/month "
                                        "of an account are free, not applied here)",
                                  "aws.amazon.com/ec2/pricing/on-demand"),
}
# Stream reads by a Lambda trigger, SNS deliveries to SQS, function URLs, TTL deletes and the
# REMOVE records they put on the stream (the mapping's INSERT-only filter drops them, and
# filtered events are not billed) cost nothing (the pricing pages above).
ALARMS = 6
# Assumptions, not measured: Lambda's own START/END/REPORT lines per invocation, and our log plus
# EMF bytes per invocation (`LOG_BYTES`).
PLATFORM_LOG_BYTES = 300
LOG_BYTES = {"webhook": 900, "enricher": 900, "price_api": 400}
# Assumption: DynamoDB answers a request in ~5 ms in AWS; moto's figure is several times
# slower, so handler durations are scaled from requests per update, not from moto's wall time.
AWS_WRITE_MS = 5.0
AWS_READ_MS = 5.0
AWS_PUBLISH_MS = 20.0
WEBHOOK_THREADS = 16
HANDLER_OVERHEAD_MS = 15.0  # parsing, logging, metrics flush per invocation (measured handler time minus I/O)
XRAY_SAMPLED = 0.05         # default sampling: 1 request/s reservoir plus 5 %
# Lambda allocates CPU in proportion to memory: one full vCPU at 1,769 MB
# (docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
LAMBDA_FULL_VCPU_MB = 1769
# DynamoDB storage counts 100 bytes of overhead per item (DynamoDB developer guide, "Item sizes").
ITEM_OVERHEAD_BYTES = 100
# The `expires_at` attribute a retention adds to each tick: 10 bytes of name, a 10-digit number (6).
EXPIRY_ATTRIBUTE_BYTES = 16
# The webhook re-reads its secrets document every 60 s per warm container
# (functions/webhook_processor/handler.py SECRETS_TTL_SECONDS); assumed: one warm container.
SECRET_READS_PER_MONTH = HOURS_PER_MONTH * 60
# The relay (stacks/relay.py, environments/config.py RelaySettings defaults): one ARM64 task,
# 0.25 vCPU, 0.5 GB, a public IPv4 address (no NAT), batches of up to 100 ticks or 1 s.
RELAY_VCPU = 0.25
RELAY_MEMORY_GB = 0.5
RELAY_BATCH_SECONDS = 1.0
CANDLE_INTERVAL_MINUTES = (1, 5, 15, 60, 240, 1440)  # functions/shared/candles.py INTERVALS
CANDLES_PER_SYMBOL_DAY = sum(1440 // minutes for minutes in CANDLE_INTERVAL_MINUTES)  # 1,855


class CostInputError(PipelineError):
    """An `invoke cost` option the model cannot price (one line, no traceback)."""


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    quantity: float
    unit_cost: float

    @property
    def monthly(self) -> float:
        return self.quantity * self.unit_cost


@dataclass(frozen=True)
class Sender:
    """Who posts the updates: how many per webhook request, over how many symbols and venues."""

    name: str
    batch_size: int
    symbols: int
    note: str
    venues: int = 3


SENDERS: dict[str, Sender] = {
    "default": Sender("default", 100, 20, "an integrator posting signed batches of 100 updates over 20 symbols"),
    "tradingview": Sender("tradingview", 1, 1, "TradingView alerts: one update per webhook request (a token "
                                               "request), one symbol", venues=1),
    "relay": Sender("relay", 100, 20, "the exchange relay (one Fargate task): batches of 100 over 20 symbols, "
                                      "plus the task and its public IPv4 address"),
}


def _nearest(rows: list[dict[str, Any]], **wanted: int) -> dict[str, Any]:
    candidates = [r for r in rows if all(k not in r or k == "batch" or r[k] == v for k, v in wanted.items())] or rows
    return min(candidates, key=lambda r: abs(math.log(r["batch"]) - math.log(max(1, wanted.get("batch", 1)))))


def function_memory_mb() -> dict[str, int]:
    """Each function's memory as the environment model's defaults set it (environments/config.py)."""
    from environments.config import FunctionsSettings

    defaults = FunctionsSettings()
    return {"webhook": defaults.webhook_processor.memory_mb, "enricher": defaults.price_enricher.memory_mb,
            "price_api": defaults.price_api.memory_mb}


# ---- storage ------------------------------------------------------------------------------------

def stored_days(month: int, retention_days: int | None) -> float:
    """Days of ticks stored, averaged over month `month` (1-based) of a deployment that starts empty."""
    if month < 1:
        raise CostInputError(f"month: starts at 1, got {month}")
    start, end = (month - 1) * DAYS_PER_MONTH, month * DAYS_PER_MONTH
    if retention_days is None or retention_days >= end:
        return (start + end) / 2
    if retention_days <= start:
        return float(retention_days)
    # min(t, R) over [start, end]: the rising part up to R, then R
    return ((retention_days ** 2 - start ** 2) / 2 + retention_days * (end - retention_days)) / DAYS_PER_MONTH


def tick_item_bytes(bench: dict[str, Any], retention_days: int | None) -> float:
    """A stored, enriched tick: measured by the read-API bench (the enricher wrote it), else
    estimated from the webhook's item (indicators make it ~2.5 times larger)."""
    measured = bench.get("api", {}).get("tick_item_bytes")
    base = float(measured) if measured else bench["webhook"][0].get("item_bytes", 100) * 2.5
    return base + (EXPIRY_ATTRIBUTE_BYTES if retention_days is not None else 0)


def candle_item_bytes(bench: dict[str, Any]) -> float:
    return float(bench.get("candles", {}).get("mean_candle_bytes") or 110)


def storage_gb(bench: dict[str, Any], updates_per_day: int, symbols: int, month: int,
               retention_days: int | None) -> dict[str, float]:
    """GB stored (DynamoDB's item sizes plus 100 bytes each), averaged over `month`: ticks
    (bounded by the retention, if any) and candles (kept: every bucket of every interval)."""
    ticks = stored_days(month, retention_days) * updates_per_day
    candles = stored_days(month, None) * CANDLES_PER_SYMBOL_DAY * symbols
    return {"ticks": ticks * (tick_item_bytes(bench, retention_days) + ITEM_OVERHEAD_BYTES) / 1e9,
            "candles": candles * (candle_item_bytes(bench) + ITEM_OVERHEAD_BYTES) / 1e9}


def storage_table_rows(bench: dict[str, Any], updates_per_day: int, symbols: int,
                       retention_days: int = 30) -> list[dict[str, Any]]:
    """Month 1 and month 12, without a tick retention and with `retention_days`; candles kept."""
    per_gb = PRICES["dynamodb_storage_gb_month"].usd + PRICES["dynamodb_pitr_gb_month"].usd
    rows = []
    for label, retention in (("ticks, no retention (grow without bound)", None),
                             (f"ticks, tick_retention_days={retention_days} (bounded)", retention_days)):
        for month in (1, 12):
            gb = storage_gb(bench, updates_per_day, symbols, month, retention)["ticks"]
            rows.append({"what": label, "month": month, "gb": gb, "usd_month": gb * per_gb})
    for month in (1, 12):
        gb = storage_gb(bench, updates_per_day, symbols, month, None)["candles"]
        rows.append({"what": "candles (kept)", "month": month, "gb": gb, "usd_month": gb * per_gb})
    return rows


# ---- the write side ------------------------------------------------------------------------------

def relay_batch(updates_per_day: int, batch_size: int = 100) -> int:
    """Ticks per webhook request the relay sends at this rate: a batch leaves when full or when
    its oldest tick is RELAY_BATCH_SECONDS old (relay/price_relay/relay.py `_send_loop`)."""
    return max(1, min(batch_size, round(updates_per_day / 86_400 * RELAY_BATCH_SECONDS)))


def candle_units_per_update(candles: dict[str, Any], updates_per_day: int, symbols: int,
                            records_per_batch: int) -> tuple[float, float]:
    """Candle maintenance's write and read units per update, from the measured scenario's.

    Measured for one or more scenarios (`candles["symbols"]`, `candles["updates_per_day"]`,
    enricher batches of `candles["batch"]`, and the runs in `candles["runs"]` at other batch
    sizes); the run nearest in batch size is used, and scaled to other scenarios by an
    assumption stated here:
    - writes follow the candles that close, a fixed number per symbol and day while every
      minute of every symbol has a tick (one item per symbol holds its composite and every
      venue, so venues add no item), so per update they scale with symbols / updates
      (capped at 7: a tick can close at most one candle per interval plus the registry);
    - reads are mostly one registry GetItem per symbol and enricher batch, so per update
      they scale with the distinct symbols a batch holds (expected, symbols drawn evenly)
      per record. At 1,000,000 updates a day the mapping's 1 s window forms batches of ~12
      records, not 100: each batch holds fewer records per symbol and maintenance reads more
      per update (measured directly when a run at that batch size exists).
    """
    runs = [candles, *candles.get("runs", [])]
    measured = min(runs, key=lambda run: abs(math.log(run["batch"]) - math.log(max(1, records_per_batch))))
    writes = measured["write_units_per_update"] * (symbols / measured["symbols"]) * (
        measured["updates_per_day"] / updates_per_day)
    measured_share = distinct_symbols(measured["symbols"], measured["batch"]) / measured["batch"]
    share = distinct_symbols(symbols, records_per_batch) / records_per_batch
    reads = measured["read_units_per_update"] * share / measured_share
    return min(7.0, writes), reads


def distinct_symbols(symbols: int, records: int) -> float:
    """Expected distinct symbols among `records` records spread evenly over `symbols` symbols."""
    return symbols * (1 - (1 - 1 / symbols) ** records)


def estimate(bench: dict[str, Any], updates_per_day: int, batch_size: int = 100, symbols: int = 20,
             enricher_batch: int | None = None, log_bytes: dict[str, int] | None = None,
             memory_mb: dict[str, int] | None = None, month: int = 1,
             tick_retention_days: int | None = None, sender: str = "default", venues: int = 1) -> list[Line]:
    """Monthly cost lines. batch_size: updates per webhook request; symbols: distinct symbols in a
    batch; venues: venues per symbol (the enricher row measured with as many, when there is one);
    month: which month's storage (it grows without a retention); sender: adds the relay's task
    when "relay"."""
    memory = memory_mb or function_memory_mb()
    logs = log_bytes or LOG_BYTES
    monthly = updates_per_day * DAYS_PER_MONTH
    webhook_row = _nearest(bench["webhook"], batch=batch_size)
    # The enricher's batches fill up to the mapping's batch size within the 1 s batching window.
    per_second = updates_per_day / 86_400
    records_per_batch = enricher_batch or max(1, min(100, round(per_second)))
    enricher_row = enricher_figures(bench, records_per_batch, symbols, venues)

    webhook_invocations = monthly / batch_size
    write_waves = math.ceil(batch_size / min(symbols, WEBHOOK_THREADS))
    webhook_ms = HANDLER_OVERHEAD_MS + write_waves * AWS_WRITE_MS * webhook_row["dynamodb_requests_per_update"]
    enricher_invocations = monthly / records_per_batch
    enricher_ms = (HANDLER_OVERHEAD_MS + records_per_batch * AWS_WRITE_MS * enricher_row["writes_per_record"]
                   + records_per_batch * AWS_READ_MS * enricher_row["reads_per_record"]
                   + math.ceil(records_per_batch / 10) * AWS_PUBLISH_MS)
    gb_seconds = (webhook_invocations * webhook_ms / 1000 * memory["webhook"] / 1024
                  + enricher_invocations * enricher_ms / 1000 * memory["enricher"] / 1024)
    wru = monthly * (webhook_row["write_units_per_update"] + enricher_row["write_units_per_record"])
    rru = monthly * enricher_row["read_units_per_record"]
    publishes = enricher_invocations * math.ceil(records_per_batch / 10)
    log_gb = (webhook_invocations * (logs["webhook"] + PLATFORM_LOG_BYTES)
              + enricher_invocations * (logs["enricher"] + PLATFORM_LOG_BYTES)) / 1e9
    stored = storage_gb(bench, updates_per_day, symbols, month, tick_retention_days)
    retention = (f"tick_retention_days={tick_retention_days}" if tick_retention_days is not None
                 else "no tick retention")
    p = PRICES
    lines = [
        Line("Lambda", "requests", webhook_invocations + enricher_invocations, p["lambda_request"].usd),
        Line("Lambda", f"GB-seconds (webhook {webhook_ms:.0f} ms, enricher {enricher_ms:.0f} ms per call)",
             gb_seconds, p["lambda_arm_gb_second"].usd),
        Line("DynamoDB", "write request units (store + enrich)", wru, p["dynamodb_wru"].usd),
        Line("DynamoDB", "read request units (history queries)", rru, p["dynamodb_rru"].usd),
    ]
    candles = bench.get("candles")
    if candles:
        writes, reads = candle_units_per_update(candles, updates_per_day, symbols, records_per_batch)
        lines += [
            Line("DynamoDB", f"write request units (candles: {writes:.4f} per update)", monthly * writes,
                 p["dynamodb_wru"].usd),
            Line("DynamoDB", f"read request units (candle maintenance: {reads:.4f} per update)", monthly * reads,
                 p["dynamodb_rru"].usd),
        ]
    lines += [
        Line("DynamoDB", f"storage + PITR, ticks (month {month}, {retention})", stored["ticks"],
             p["dynamodb_storage_gb_month"].usd + p["dynamodb_pitr_gb_month"].usd),
        Line("DynamoDB", f"storage + PITR, candles (month {month}, kept)", stored["candles"],
             p["dynamodb_storage_gb_month"].usd + p["dynamodb_pitr_gb_month"].usd),
        Line("SNS", "PublishBatch requests", publishes, p["sns_publish_request"].usd),
        Line("SQS", "DLQ requests (failures only; ~0 in normal operation)", 0, p["sqs_request"].usd),
        Line("CloudWatch", "log ingestion GB", log_gb, p["logs_ingest_gb"].usd),
        Line("CloudWatch", "log storage GB-month (3 days kept)", log_gb * 3 / DAYS_PER_MONTH,
             p["logs_storage_gb_month"].usd),
        Line("CloudWatch", "alarms", ALARMS, p["alarm_month"].usd),
        Line("X-Ray", "traces (5 % sampled)", (webhook_invocations + enricher_invocations) * XRAY_SAMPLED,
             p["xray_trace"].usd),
        Line("KMS", "customer managed key", 1, p["kms_key_month"].usd),
        Line("Secrets Manager", "webhook secrets document", 1, p["secret_month"].usd),
        Line("Secrets Manager", "GetSecretValue (one warm webhook container, every 60 s)", SECRET_READS_PER_MONTH,
             p["secret_api_call"].usd),
    ]
    if sender == "relay":
        lines += [
            Line("Fargate", f"relay task vCPU-hours ({RELAY_VCPU} vCPU, ARM64, on-demand)",
                 RELAY_VCPU * HOURS_PER_MONTH, p["fargate_arm_vcpu_hour"].usd),
            Line("Fargate", f"relay task GB-hours ({RELAY_MEMORY_GB} GB)", RELAY_MEMORY_GB * HOURS_PER_MONTH,
                 p["fargate_arm_gb_hour"].usd),
            Line("VPC", "relay task's public IPv4 address (no NAT)", HOURS_PER_MONTH, p["public_ipv4_hour"].usd),
        ]
    return lines


FIXED_SERVICES = ("KMS", "Fargate", "VPC")
FIXED_ITEMS = ("alarms", "webhook secrets document")


def summary(lines: list[Line], updates_per_day: int) -> dict[str, float]:
    """Totals per month and per million updates, against the floor set by DynamoDB writes alone
    (one write unit to store and one to enrich each update). `variable` leaves out what does not
    scale with updates (the key, the alarms, the secret, the relay's task) and storage, which
    scales with history rather than with the month's updates."""
    total = sum(line.monthly for line in lines)
    monthly_updates = updates_per_day * DAYS_PER_MONTH
    per_million = total / monthly_updates * 1e6
    floor = 2 * PRICES["dynamodb_wru"].usd * 1e6
    variable = sum(line.monthly for line in lines if line.service not in FIXED_SERVICES
                   and line.item not in FIXED_ITEMS and not line.item.startswith("storage"))
    variable_per_million = variable / monthly_updates * 1e6
    return {"monthly_usd": total, "per_million_updates_usd": per_million, "floor_per_million_usd": floor,
            "ratio_to_floor": per_million / floor, "variable_per_million_usd": variable_per_million,
            "variable_ratio_to_floor": variable_per_million / floor}


# ---- keeping the cost honest: venues and real batch sizes ---------------------------------------

# The figures before per-venue series, at 1,000,000 updates/day over 20 symbols (docs/evidence.md,
# 2026-12-04): the enricher's tick-table requests per record must not rise above them, nor the
# ratio to the write floor; candle and composite upkeep has a budget of its own.
ENRICHER_REQUESTS_BEFORE = 1.20
RATIO_TO_FLOOR_BEFORE = 1.59
CANDLE_WRU_TARGET = 0.15


def enricher_figures(bench: dict[str, Any], batch: int, symbols: int, venues: int) -> dict[str, Any]:
    """The measured enricher row nearest to batches of `batch` over `symbols` symbols x `venues`
    venues (rows without a `venues` field are single-venue measurements of an older bench)."""
    rows = bench["enricher"]
    wanted_symbols = 1 if symbols == 1 else 20
    matching = [r for r in rows if r.get("symbols", wanted_symbols) == wanted_symbols
                and r.get("venues", 1) == venues]
    if not matching:
        matching = [r for r in rows if r.get("symbols", wanted_symbols) == wanted_symbols] or rows
    # At equal distance a metered row (it names its venues) beats an older estimated one.
    return min(matching, key=lambda r: (abs(math.log(r["batch"]) - math.log(max(1, batch))), "venues" not in r))


def venue_figures(bench: dict[str, Any], updates_per_day: int, symbols: int, venues: int,
                  batches: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """Per enricher batch size (100, and the ~12 records the 1 s window forms at this rate): the
    enricher's requests and read units per record, candle upkeep per update and the ratio to
    the write floor, each beside the target it is judged by."""
    window = max(1, min(100, round(updates_per_day / 86_400)))
    rows = []
    for batch in batches or tuple(dict.fromkeys((100, window))):
        row = enricher_figures(bench, batch, symbols, venues)
        writes, reads = candle_units_per_update(bench["candles"], updates_per_day, symbols, batch) \
            if bench.get("candles") else (0.0, 0.0)
        ratio = summary(estimate(bench, updates_per_day, 100, symbols, enricher_batch=batch, venues=venues),
                        updates_per_day)["ratio_to_floor"]
        rows.append({"batch": batch, "measured_batch": row["batch"], "venues": row.get("venues", 1),
                     "requests_per_record": row["dynamodb_requests_per_record"],
                     "read_units_per_record": row["read_units_per_record"],
                     "candle_wru_per_update": writes, "candle_rru_per_update": reads,
                     "ratio_to_floor": ratio,
                     "requests_met": row["dynamodb_requests_per_record"] <= ENRICHER_REQUESTS_BEFORE + 1e-9,
                     "candle_met": writes <= CANDLE_WRU_TARGET,
                     "ratio_met": round(ratio, 2) <= RATIO_TO_FLOOR_BEFORE})
    return rows


# ---- the read API --------------------------------------------------------------------------------

def api_duration_ms(row: dict[str, Any], memory_mb: int) -> float:
    """Modelled Lambda duration of one request: its CPU on this machine (measured against the
    replayed answers) at Lambda's CPU share for `memory_mb`, plus one AWS round trip per
    sequential DynamoDB request."""
    cpu = row.get("cpu_ms_replayed", row["cpu_ms"])["median"]
    return cpu * max(1.0, LAMBDA_FULL_VCPU_MB / memory_mb) + row["sequential_reads"] * AWS_READ_MS


def api_lines(row: dict[str, Any], requests: float = 1e6, memory_mb: int = 256) -> list[Line]:
    """What `requests` requests of one kind cost (the read API's request-driven lines)."""
    p = PRICES
    duration = api_duration_ms(row, memory_mb)
    return [
        Line("Lambda", "requests", requests, p["lambda_request"].usd),
        Line("Lambda", f"GB-seconds ({duration:.0f} ms at {memory_mb} MB)",
             requests * duration / 1000 * memory_mb / 1024, p["lambda_arm_gb_second"].usd),
        Line("DynamoDB", "read request units", requests * row["read_units"], p["dynamodb_rru"].usd),
        Line("Data transfer", "responses to the internet", requests * row["response_bytes"] / 1e9,
             p["data_transfer_out_gb"].usd),
        Line("CloudWatch", "log ingestion GB", requests * (LOG_BYTES["price_api"] + PLATFORM_LOG_BYTES) / 1e9,
             p["logs_ingest_gb"].usd),
        Line("X-Ray", "traces (5 % sampled)", requests * XRAY_SAMPLED, p["xray_trace"].usd),
    ]


def api_costs(bench: dict[str, Any], memory_mb: int | None = None) -> list[dict[str, Any]]:
    """Per request kind: modelled duration, read units and USD per million requests by service."""
    memory = memory_mb or function_memory_mb()["price_api"]
    rows = []
    for row in bench.get("api", {}).get("requests", []):
        lines = api_lines(row, 1e6, memory)
        by_service: dict[str, float] = {}
        for line in lines:
            by_service[line.service] = by_service.get(line.service, 0.0) + line.monthly
        rows.append({"kind": row["kind"], "items": row["items_returned"], "read_units": row["read_units"],
                     "duration_ms": api_duration_ms(row, memory), "memory_mb": memory, "by_service": by_service,
                     "per_million_usd": sum(line.monthly for line in lines)})
    return rows
