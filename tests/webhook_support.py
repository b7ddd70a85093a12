"""Helpers to build signed function-URL events for the webhook tests."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from functions.webhook_processor.signature import signature_header

SOURCE = "test-feed"
SECRET = "test-secret-1"
ROTATED = "test-secret-2"


def url_event(body: bytes | str, *, source: str | None = SOURCE, secrets: list[str] | None = None,
              timestamp: int | None = None, query: dict[str, str] | None = None, method: str = "POST",
              base64_body: bool = False, extra_headers: dict[str, str] | None = None) -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else body
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {"content-type": "application/json"}
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
        "requestContext": {"http": {"method": method, "path": "/"}, "requestId": "req-1"},
        "body": base64.b64encode(raw).decode() if base64_body else raw.decode("utf-8", "surrogateescape"),
        "isBase64Encoded": base64_body,
    }


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    return json.loads(response["body"])
