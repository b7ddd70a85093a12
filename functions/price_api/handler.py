"""Lambda entry point of the price API: Powertools logging and metrics around `service.process`.

Imports only boto3, Powertools and the service (no pandas, no pydantic): a cold start
is the runtime's boto3 import plus a few milliseconds.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import boto3
from aws_lambda_powertools.logging import correlation_paths

from functions.price_api.dynamodb import DynamoReads
from functions.price_api.service import READ_CONNECTIONS, process
from functions.price_api.settings import Settings
from functions.shared.observability import metric_sink, pipeline_logger, pipeline_metrics

logger = pipeline_logger("price-api", "price_api")
metrics = pipeline_metrics("price-api")


@functools.cache
def _runtime() -> tuple[Settings, Any]:
    """Settings and the DynamoDB reads (Query, GetItem), once per cold start."""
    return Settings.from_environment(os.environ), DynamoReads.for_session(boto3.Session(),
                                                                         max_connections=READ_CONNECTIONS)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, dynamodb = _runtime()
    # Every read of this request ends before the function's timeout (less a reserve to answer),
    # so a slow DynamoDB gets the API's 503 rather than the function URL's bare 502.
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000
    return process(event, settings, dynamodb.until(deadline), time.time(), metric_sink(metrics))
