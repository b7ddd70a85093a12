"""Lambda entry point of the webhook processor: Powertools logging and metrics around `service.process`."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import boto3
from aws_lambda_powertools.logging import correlation_paths

from functions.shared.observability import metric_sink, pipeline_logger, pipeline_metrics
from functions.webhook_processor.service import CLIENT_CONFIG, Settings, process

logger = pipeline_logger("webhook-processor", "webhook_processor")
metrics = pipeline_metrics("webhook-processor")


@functools.cache
def _runtime() -> tuple[Settings, Any, Any]:
    """Settings and clients, once per cold start."""
    return (Settings.from_environment(os.environ), boto3.client("dynamodb", config=CLIENT_CONFIG),
            boto3.client("sqs", config=CLIENT_CONFIG))


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, dynamodb, sqs = _runtime()
    return process(event, settings, dynamodb, sqs, time.time(), metric_sink(metrics))
