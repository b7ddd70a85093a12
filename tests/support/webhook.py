"""Helpers to build function-URL events (signed, or token-mode) and a moto-backed table for the webhook tests."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from functions.shared.price_table.keys import table_definition
from functions.webhook_processor.signature import signature_header

SOURCE = "test-feed"
SECRET = "test-secret-1"
ROTATED = "test-secret-2"

# A token-mode sender shaped like TradingView: its four published webhook IPs.
TOKEN_SOURCE = "tv-alerts"
TOKEN = "tv-token-0123456789abcdef"
ROTATED_TOKEN = "tv-token-fedcba9876543210"
TRADINGVIEW_IPS = ["52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"]
SENDER_IP = "203.0.113.7"  # documentation range: a sender that is not TradingView


def url_event(body: bytes | str, *, source: str | None = SOURCE, secrets: list[str] | None = None,
              timestamp: int | None = None, query: dict[str, str] | None = None, method: str = "POST",
              base64_body: bool = False, extra_headers: dict[str, str] | None = None,
              source_ip: str = SENDER_IP, content_type: str = "application/json") -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else body
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {"content-type": content_type}
    if source is not None:
        headers["x-source"] = source
    if secrets is None:
        secrets = [SECRET]
    if secrets:
        headers["x-signature"] = signature_header(secrets, stamp, raw)
    headers.update(extra_headers or {})
    return {
        "version": "2.0", "rawPath": "/", "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": headers, "queryStringParameters": query,
        "requestContext": {"http": {"method": method, "path": "/", "sourceIp": source_ip}, "requestId": "req-1"},
        "body": base64.b64encode(raw).decode() if base64_body else raw.decode("utf-8", "surrogateescape"),
        "isBase64Encoded": base64_body,
    }


def token_event(payload: Any, *, source_ip: str = TRADINGVIEW_IPS[0], content_type: str = "application/json",
                base64_body: bool = False, query: dict[str, str] | None = None) -> dict[str, Any]:
    """A request as TradingView sends it: a URL and a body, no custom headers (so no X-Source/X-Signature)."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return url_event(body, source=None, secrets=[], query=query, base64_body=base64_body, source_ip=source_ip,
                     content_type=content_type)


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    return json.loads(response["body"])


def create_table(endpoint: str, table: str, queue: str, client_config: Any) -> tuple[Any, Any, str]:
    """The prices table's key schema and a DLQ on moto's server: (dynamodb client, sqs client, queue URL)."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", config=client_config, endpoint_url=endpoint)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
    dynamodb.create_table(**table_definition(table))
    return dynamodb, sqs, sqs.create_queue(QueueName=f"{table}-dlq")["QueueUrl"]


def scan_items(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    return sorted(dynamodb.scan(TableName=table)["Items"],
                  key=lambda i: (i["symbol"]["S"], int(i["timestamp"]["N"])))


def drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
        if not batch:
            return found
        found += [json.loads(m["Body"]) for m in batch]


def capture_service_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """For a `service_log` fixture: the webhook service logger's records, even after a handler test
    has given it Powertools' handler (which stops propagation to the root logger caplog listens on)."""
    logger = logging.getLogger("webhook_processor")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="webhook_processor")
    yield caplog
    logger.removeHandler(caplog.handler)


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record with its structured extras, as one string to search for leaks."""
    return " ".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)


# Kraken's REST Ticker answer (two pairs), shared by the parsing and the retry tests.
KRAKEN_REST = {"error": [], "result": {
    "XXBTZUSD": {"a": ["37000.10000", "1", "1.000"], "b": ["36999.90000", "2", "2.000"],
                 "c": ["37000.00000", "0.00067643"], "v": ["1000.1", "2000.2"], "p": ["36900.1", "36850.2"],
                 "t": [100, 200], "l": ["36000.0", "35900.0"], "h": ["37500.0", "37600.0"], "o": "36800.0"},
    "XETHZEUR": {"a": ["1900.1", "1", "1.000"], "b": ["1899.9", "1", "1.000"], "c": ["1900.0", "0.5"],
                 "v": ["10", "20"], "p": ["1", "1"], "t": [1, 1], "l": ["1", "1"], "h": ["1", "1"], "o": "1"}}}
