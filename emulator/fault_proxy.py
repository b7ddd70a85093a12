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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emulator.loopback import HOP_HEADERS, LoopbackHandler, LoopbackServer

if TYPE_CHECKING:
    from emulator.iam_gate import IamGate


@dataclass
class FaultRule:
    """Fail calls to `operation` (e.g. "DynamoDB_20120810.PutItem") whose body contains `body_contains`
    (a string, or several that must all appear).

    With `answer`, the call is answered 200 with `answer(request JSON)` instead of an error: an
    answer a service may legitimately give that the emulator never does (`empty_page`). When
    `answer` returns None, the call goes through (and is not counted as injected).
    """

    operation: str
    error_code: str
    status: int = 400
    body_contains: str | tuple[str, ...] | None = None
    probability: float = 1.0
    remaining: int | None = None  # how many more times; None = until removed
    answer: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None

    def applies(self, target: str, body: bytes, rng: random.Random) -> bool:
        wanted = (self.body_contains,) if isinstance(self.body_contains, str) else self.body_contains or ()
        if target != self.operation or any(part.encode() not in body for part in wanted):
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if rng.random() >= self.probability:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


def empty_page(request: dict[str, Any]) -> dict[str, Any]:
    """A GetRecords answer DynamoDB Streams may give before it reaches the records (the iterator
    is still set): no records, and the same iterator to ask again."""
    return {"Records": [], "NextShardIterator": request["ShardIterator"]}


class FaultProxy:
    """With `gate`, every call is first evaluated against its signer's role (emulator/iam_gate.py):
    a refused call is answered as the service refuses it and never reaches moto or the fault rules."""

    def __init__(self, upstream: str, seed: int = 7, gate: IamGate | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.gate = gate
        self.rules: list[FaultRule] = []
        self.injected: dict[str, int] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        proxy = self

        class Handler(LoopbackHandler):
            def _forward(self) -> None:
                body = self.read_body()
                if proxy.gate is not None:
                    refused = proxy.gate.refusal(self.command, self.path, dict(self.headers.items()), body)
                    if refused is not None:
                        self.reply(*refused)
                        return
                found = proxy._fault_for(self.headers.get("X-Amz-Target", ""), body)
                if found is not None:
                    fault, answer = found
                    if answer is not None:
                        self.reply(200, {"Content-Type": "application/x-amz-json-1.0",
                                         "x-amzn-RequestId": "injected"}, json.dumps(answer).encode())
                        return
                    payload = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{fault.error_code}",
                                          "message": "injected fault"}).encode()
                    self.reply(fault.status, {"Content-Type": "application/x-amz-json-1.0",
                                              "x-amzn-RequestId": "injected"}, payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                request = urllib.request.Request(proxy.upstream + self.path, data=body or None,
                                                 headers=headers, method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        self.reply(response.status, dict(response.headers.items()), response.read())
                except urllib.error.HTTPError as error:
                    self.reply(error.code, dict(error.headers.items()), error.read())

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self._server = LoopbackServer(Handler)
        self.endpoint = self._server.base_url

    def _fault_for(self, target: str, body: bytes) -> tuple[FaultRule, dict[str, Any] | None] | None:
        """The rule that applies to this call, with its answer (None: answer with the rule's error)."""
        with self._lock:
            for rule in self.rules:
                if rule.applies(target, body, self._rng):
                    answer = rule.answer(json.loads(body or b"{}")) if rule.answer is not None else None
                    if rule.answer is not None and answer is None:
                        continue  # the answering rule lets this call through
                    self.injected[rule.error_code] = self.injected.get(rule.error_code, 0) + 1
                    return rule, answer
        return None

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def start(self) -> FaultProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
