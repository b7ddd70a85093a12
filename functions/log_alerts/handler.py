"""Lambda entry point of log alerts: Powertools logging around `service.process`."""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3

from functions.log_alerts.service import Settings, process
from functions.shared.observability import pipeline_logger

logger = pipeline_logger("log-alerts", "log_alerts")


@functools.cache
def _runtime() -> tuple[Settings, Any]:
    return Settings.from_environment(os.environ), boto3.client("sns")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, sns = _runtime()
    return process(event, settings, sns)
