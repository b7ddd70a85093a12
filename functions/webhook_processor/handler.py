"""Lambda entry point of the webhook processor: Powertools logging and metrics around `service.process`.

The signing secrets come from Secrets Manager (`WEBHOOK_SECRETS_ARN`), read at cold start
and re-read after `SECRETS_TTL_SECONDS`, so a rotation with `invoke secrets` reaches warm
functions within a minute and needs no deploy. Each invocation gets the cold-start
settings with the current secrets document (`Settings.with_secrets`).
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import boto3
from aws_lambda_powertools.logging import correlation_paths
from botocore.config import Config

from functions.shared.observability import metric_sink, pipeline_logger, pipeline_metrics
from functions.shared.records import Record
from functions.shared.secret_store import CachedSecret
from functions.webhook_processor.service import CLIENT_CONFIG, process
from functions.webhook_processor.settings import Settings
from functions.webhook_processor.signature import parse_secrets

# How stale a warm function's secrets may be: a rotation's new secret is accepted, and a
# retired one refused, at most this long after `invoke secrets` ran.
SECRETS_TTL_SECONDS = 60.0
# A cold start must not hang on Secrets Manager: short timeouts, standard retries.
SECRETS_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=3)

logger = pipeline_logger("webhook-processor", "webhook_processor")
metrics = pipeline_metrics("webhook-processor")


class Runtime(Record):
    """What a cold start builds once: settings, clients and the secrets cache (a `Record`, not a
    frozen dataclass: see functions.shared.records)."""

    __slots__ = ("settings", "secrets", "dynamodb", "sqs")

    settings: Settings
    secrets: CachedSecret[Any]
    dynamodb: Any
    sqs: Any

    def __init__(self, settings: Settings, secrets: CachedSecret[Any], dynamodb: Any, sqs: Any) -> None:
        self._init(settings, secrets, dynamodb, sqs)

    def current_settings(self) -> Settings:
        """The settings with the secrets document as of now (cached for SECRETS_TTL_SECONDS)."""
        return self.settings.with_secrets(self.secrets.get())


@functools.cache
def _runtime() -> Runtime:
    """Settings, clients and the first read of the secrets, once per cold start."""
    settings = Settings.from_environment(os.environ)
    if not settings.secrets_arn:
        raise KeyError("environment variable WEBHOOK_SECRETS_ARN is not set")
    secrets = CachedSecret(boto3.client("secretsmanager", config=SECRETS_CLIENT_CONFIG), settings.secrets_arn,
                           parse_secrets, ttl_seconds=SECRETS_TTL_SECONDS)
    secrets.get()  # at cold start, where a failure is one clear error rather than a 401 per request
    return Runtime(settings, secrets, boto3.client("dynamodb", config=CLIENT_CONFIG),
                   boto3.client("sqs", config=CLIENT_CONFIG))


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runtime = _runtime()
    return process(event, runtime.current_settings(), runtime.dynamodb, runtime.sqs, time.time(),
                   metric_sink(metrics))
