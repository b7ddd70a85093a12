"""Fault injection at botocore's send step: the client's own retry logic still runs,
so a throttled call is retried exactly as it would be against AWS."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any):
        yield self._body


def error_response(code: str, status: int = 400, message: str = "injected fault") -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()
    headers = {"x-amzn-RequestId": "injected", "Content-Type": "application/x-amz-json-1.0",
               "Content-Length": str(len(body))}
    return AWSResponse("https://injected.invalid", status, headers, _Raw(body))


class FaultInjector:
    """Answer selected calls with an error instead of sending them.

    `decide(call_number, request)` returns an error code (and optional status) to inject,
    or None to let the call through. Thread-safe: batches write from a thread pool.
    """

    def __init__(self, decide: Callable[[int, Any], tuple[str, int] | None]) -> None:
        self._decide = decide
        self._lock = threading.Lock()
        self.calls = 0
        self.injected = 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        with self._lock:
            self.calls += 1
            number = self.calls
        decision = self._decide(number, request)
        if decision is None:
            return None
        with self._lock:
            self.injected += 1
        code, status = decision
        return error_response(code, status)

    def attach(self, client: Any, operation: str) -> FaultInjector:
        # Use a client of moto's HTTP server, not the in-process mock_aws: botocore calls every
        # before-send handler, so mock_aws would still perform the call whose answer is replaced.
        client.meta.events.register(f"before-send.{client.meta.service_model.endpoint_prefix}.{operation}", self)
        return self
