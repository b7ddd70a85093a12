"""`invoke cost`: a monthly AWS estimate for us-east-1 from the measured figures of `invoke bench`.

Every price is in PRICES with its source and the date it was read. Figures that moto cannot
measure for AWS (DynamoDB latency in particular) are named as assumptions in the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


# us-east-1 list prices as published on the pricing pages named in each source, as known on
# 2026-11-22. They were not fetched live (this machine reaches no AWS site): check them there
# before quoting a budget.
PRICES: dict[str, Price] = {
    "lambda_arm_gb_second": Price(0.0000133334, "per GB-second (arm64, first 7.5 billion GB-s)",
                                  "aws.amazon.com/lambda/pricing"),
    "lambda_request": Price(0.20 / 1e6, "per request", "aws.amazon.com/lambda/pricing"),
    "dynamodb_wru": Price(0.625 / 1e6, "per write request unit (on-demand)", "aws.amazon.com/dynamodb/pricing/on-demand"),
    "dynamodb_rru": Price(0.125 / 1e6, "per read request unit (on-demand)", "aws.amazon.com/dynamodb/pricing/on-demand"),
    "dynamodb_storage_gb_month": Price(0.25, "per GB-month", "aws.amazon.com/dynamodb/pricing/on-demand"),
    "dynamodb_pitr_gb_month": Price(0.20, "per GB-month (continuous backups)", "aws.amazon.com/dynamodb/pricing/on-demand"),
    "sns_publish_request": Price(0.50 / 1e6, "per request (PublishBatch: one request per 64 KB)",
                                 "aws.amazon.com/sns/pricing"),
    "sqs_request": Price(0.40 / 1e6, "per request (standard)", "aws.amazon.com/sqs/pricing"),
    "logs_ingest_gb": Price(0.50, "per GB ingested (standard)", "aws.amazon.com/cloudwatch/pricing"),
    "logs_storage_gb_month": Price(0.03, "per GB-month archived", "aws.amazon.com/cloudwatch/pricing"),
    "alarm_month": Price(0.10, "per standard alarm per month", "aws.amazon.com/cloudwatch/pricing"),
    "kms_key_month": Price(1.00, "per customer managed key per month", "aws.amazon.com/kms/pricing"),
    "xray_trace": Price(5.00 / 1e6, "per trace recorded", "aws.amazon.com/xray/pricing"),
}
# Stream reads by a Lambda trigger and SNS deliveries to SQS cost nothing (the pricing pages above).
ALARMS = 6
# Assumptions, not measured: Lambda's own START/END/REPORT lines per invocation, and our log plus
# EMF bytes per invocation (the `log_bytes` defaults below).
PLATFORM_LOG_BYTES = 300
# Assumption: DynamoDB answers a write in ~5 ms in AWS; moto's in-process figure is several times
# slower, so handler durations are scaled from requests per update, not from moto's wall time.
AWS_WRITE_MS = 5.0
AWS_READ_MS = 5.0
AWS_PUBLISH_MS = 20.0
WEBHOOK_THREADS = 16
HANDLER_OVERHEAD_MS = 15.0  # parsing, logging, metrics flush per invocation (measured handler time minus I/O)
XRAY_SAMPLED = 0.05         # default sampling: 1 request/s reservoir plus 5 %


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    quantity: float
    unit_cost: float

    @property
    def monthly(self) -> float:
        return self.quantity * self.unit_cost


def _nearest(rows: list[dict[str, Any]], **wanted: int) -> dict[str, Any]:
    candidates = [r for r in rows if all(k not in r or k == "batch" or r[k] == v for k, v in wanted.items())] or rows
    return min(candidates, key=lambda r: abs(math.log(r["batch"]) - math.log(max(1, wanted.get("batch", 1)))))


def estimate(bench: dict[str, Any], updates_per_day: int, batch_size: int = 100, symbols: int = 20,
             enricher_batch: int | None = None, log_bytes: dict[str, int] | None = None,
             memory_mb: dict[str, int] | None = None) -> list[Line]:
    """Monthly cost lines. batch_size: updates per webhook request; symbols: distinct symbols in a batch."""
    memory = memory_mb or {"webhook": 1024, "enricher": 512}
    logs = log_bytes or {"webhook": 900, "enricher": 900}
    month = updates_per_day * DAYS_PER_MONTH
    webhook_row = _nearest(bench["webhook"], batch=batch_size)
    # The enricher's batches fill up to the mapping's batch size within the 1 s batching window.
    per_second = updates_per_day / 86_400
    records_per_batch = enricher_batch or max(1, min(100, round(per_second)))
    enricher_row = _nearest(bench["enricher"], batch=records_per_batch, symbols=1 if symbols == 1 else 20)

    webhook_invocations = month / batch_size
    write_waves = math.ceil(batch_size / min(symbols, WEBHOOK_THREADS))
    webhook_ms = HANDLER_OVERHEAD_MS + write_waves * AWS_WRITE_MS * webhook_row["dynamodb_requests_per_update"]
    enricher_invocations = month / records_per_batch
    enricher_ms = (HANDLER_OVERHEAD_MS + records_per_batch * AWS_WRITE_MS * enricher_row["writes_per_record"]
                   + records_per_batch * AWS_READ_MS * enricher_row["reads_per_record"]
                   + math.ceil(records_per_batch / 10) * AWS_PUBLISH_MS)
    gb_seconds = (webhook_invocations * webhook_ms / 1000 * memory["webhook"] / 1024
                  + enricher_invocations * enricher_ms / 1000 * memory["enricher"] / 1024)
    wru = month * (webhook_row["write_units_per_update"] + enricher_row["write_units_per_record"])
    rru = month * enricher_row["read_units_per_record"]
    publishes = enricher_invocations * math.ceil(records_per_batch / 10)
    log_gb = (webhook_invocations * (logs["webhook"] + PLATFORM_LOG_BYTES)
              + enricher_invocations * (logs["enricher"] + PLATFORM_LOG_BYTES)) / 1e9
    item_bytes = webhook_row.get("item_bytes", 100) * 2.5  # enriched items carry the indicators too
    stored_gb = updates_per_day * DAYS_PER_MONTH * item_bytes / 1e9  # the first month's growth
    p = PRICES
    return [
        Line("Lambda", "requests", webhook_invocations + enricher_invocations, p["lambda_request"].usd),
        Line("Lambda", f"GB-seconds (webhook {webhook_ms:.0f} ms, enricher {enricher_ms:.0f} ms per call)",
             gb_seconds, p["lambda_arm_gb_second"].usd),
        Line("DynamoDB", "write request units (store + enrich)", wru, p["dynamodb_wru"].usd),
        Line("DynamoDB", "read request units (history queries)", rru, p["dynamodb_rru"].usd),
        Line("DynamoDB", "storage + PITR (first month's data)", stored_gb,
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
    ]


def summary(lines: list[Line], updates_per_day: int) -> dict[str, float]:
    total = sum(line.monthly for line in lines)
    per_million = total / (updates_per_day * DAYS_PER_MONTH) * 1e6
    floor = 2 * PRICES["dynamodb_wru"].usd * 1e6  # one WRU to store, one to enrich, per update
    variable = sum(l.monthly for l in lines if l.service not in ("KMS",) and l.item != "alarms")
    variable_per_million = variable / (updates_per_day * DAYS_PER_MONTH) * 1e6
    return {"monthly_usd": total, "per_million_updates_usd": per_million, "floor_per_million_usd": floor,
            "ratio_to_floor": per_million / floor, "variable_per_million_usd": variable_per_million}
