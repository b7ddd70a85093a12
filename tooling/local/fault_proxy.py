"""An HTTP proxy in front of the emulator that fails selected AWS calls.

The local functions talk to AWS through it, so a fault reaches them exactly as a real
throttle or outage would: as an HTTP error their botocore retries, then reports.
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class FaultRule:
    """Fail calls to `operation` (e.g. "DynamoDB_20120810.PutItem") whose body contains `body_contains`."""

    operation: str
    error_code: str
    status: int = 400
    body_contains: str | None = None
    probability: float = 1.0
    remaining: int | None = None  # how many more times; None = until removed

    def applies(self, target: str, body: bytes, rng: random.Random) -> bool:
        if target != self.operation or (self.body_contains and self.body_contains.encode() not in body):
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if rng.random() >= self.probability:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


class FaultProxy:
    def __init__(self, upstream: str, seed: int = 7) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[FaultRule] = []
        self.injected: dict[str, int] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes; with Nagle on, the body waits for the
            # client's delayed ACK (~40 ms per request).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._fault_for(self.headers.get("X-Amz-Target", ""), body)
                if fault is not None:
                    payload = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{fault.error_code}",
                                          "message": "injected fault"}).encode()
                    self._reply(fault.status, {"Content-Type": "application/x-amz-json-1.0",
                                               "x-amzn-RequestId": "injected"}, payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                request = urllib.request.Request(proxy.upstream + self.path, data=body if length else None,
                                                 headers=headers, method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        self._reply(response.status, dict(response.headers.items()), response.read())
                except urllib.error.HTTPError as error:
                    self._reply(error.code, dict(error.headers.items()), error.read())

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _fault_for(self, target: str, body: bytes) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.applies(target, body, self._rng):
                    self.injected[rule.error_code] = self.injected.get(rule.error_code, 0) + 1
                    return rule
        return None

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def start(self) -> "FaultProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
