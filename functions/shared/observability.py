"""Powertools logger and metrics with the pipeline's defaults.

The namespace falls back to the pipeline's own: without one, Powertools raises as soon
as 100 metrics accumulate (its automatic flush), which would turn a busy batch into an error.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

METRICS_NAMESPACE = "CryptoPricePipeline"


def pipeline_logger(service: str) -> Logger:
    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or service)


def pipeline_metrics(service: str) -> Metrics:
    return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE,
                   service=os.environ.get("POWERTOOLS_SERVICE_NAME") or service)
