"""Powertools logger and metrics with the pipeline's defaults, for the handlers only.

Services log with the standard library (`logging.getLogger(<package>)`) and count through a
`MetricSink`, so that the drain, the benchmarks and the tests can import them without
creating a Lambda logger or a metrics buffer. A handler's Powertools logger copies its
JSON formatter onto the service's logger.

The namespace falls back to the pipeline's own: without one, Powertools raises as soon
as 100 metrics accumulate (its automatic flush), which would turn a busy batch into an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

METRICS_NAMESPACE = "CryptoPricePipeline"

MetricSink = Callable[[str, float], None]
"""Counts one metric (name, count); the handler's sink forwards to Powertools Metrics."""


def no_metrics(name: str, value: float) -> None:
    """The sink of services called outside Lambda (drain, bench, tests)."""


def pipeline_logger(service: str, service_logger: str | None = None) -> Logger:
    """The function's JSON logger; `service_logger` names the service module's stdlib logger to format alike."""
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or service)
    if service_logger:
        copy_config_to_registered_loggers(source_logger=logger, include={service_logger})
    return logger


def pipeline_metrics(service: str) -> Metrics:
    from aws_lambda_powertools import Metrics

    return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE,
                   service=os.environ.get("POWERTOOLS_SERVICE_NAME") or service)


def metric_sink(metrics: Metrics) -> MetricSink:
    from aws_lambda_powertools.metrics import MetricUnit

    def add(name: str, value: float) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    return add
