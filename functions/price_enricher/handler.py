"""Lambda entry point of the price enricher: Powertools logging and metrics around `service.process`
(stream batches), or `service.sweep_quiet_symbols` (the hourly schedule's `{"action": SWEEP_ACTION}`)."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import boto3

from functions.price_enricher.service import CLIENT_CONFIG, SWEEP_ACTION, Settings, process, sweep_quiet_symbols
from functions.shared.observability import metric_sink, pipeline_logger, pipeline_metrics

logger = pipeline_logger("price-enricher", "price_enricher")
SWEEP_RESERVE_SECONDS = 5.0
metrics = pipeline_metrics("price-enricher")


@functools.cache
def _runtime() -> tuple[Settings, Any, Any]:
    """Settings and clients, once per cold start."""
    return (Settings.from_environment(os.environ), boto3.client("dynamodb", config=CLIENT_CONFIG),
            boto3.client("sns", config=CLIENT_CONFIG))


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, dynamodb, sns = _runtime()
    if event.get("action") == SWEEP_ACTION:
        # Start no symbol in the last 5 s: the rest is reported (and retried) rather than timed out.
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SWEEP_RESERVE_SECONDS
        return sweep_quiet_symbols(settings, dynamodb, time.time(), metric_sink(metrics), deadline)
    return process(event, settings, dynamodb, sns, time.time(), metric_sink(metrics))
