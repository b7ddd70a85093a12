"""Plays CloudWatch Logs for the embedded stack: applies each deployed subscription filter's
pattern to the functions' log lines and invokes the filter's target (log-alerts) with a
real `awslogs` payload (gzip, base64)."""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from emulator.runtime import FunctionError, LocalFunction


class TermPattern:
    """CloudWatch Logs term patterns: `ERROR`, `"Task timed out"`, `?A ?B` (any of), `A B` (all of).

    Hand-written because moto's matcher (moto.logs.utils.EventMessageFilter) has no `?`
    alternation and treats such a pattern as matching everything. JSON and space-delimited
    patterns are refused rather than guessed.
    """

    _TOKEN = re.compile(r'\??"[^"]*"|\S+')

    def __init__(self, pattern: str) -> None:
        text = pattern.strip()
        if text.startswith(("{", "[")):
            raise ValueError(f"unsupported filter pattern for the local router: {pattern!r}")
        tokens = self._TOKEN.findall(text)
        optional = [t.startswith("?") for t in tokens]
        if any(optional) and not all(optional):
            raise ValueError(f"mixed ? and plain terms are not supported locally: {pattern!r}")
        self.any_of = bool(tokens) and all(optional)
        self.terms = [t.lstrip("?").strip('"') for t in tokens]

    def matches(self, line: str) -> bool:
        if not self.terms:
            return True
        found = [term in line for term in self.terms]
        return any(found) if self.any_of else all(found)


@dataclass(frozen=True)
class Subscription:
    name: str
    log_group: str
    pattern: TermPattern
    destination_arn: str


def deployed_subscriptions(logs: Any, function_names: list[str]) -> list[Subscription]:
    found = []
    for name in function_names:
        group = f"/aws/lambda/{name}"
        for item in logs.describe_subscription_filters(logGroupName=group).get("subscriptionFilters", []):
            found.append(Subscription(item["filterName"], group, TermPattern(item.get("filterPattern", "")),
                                      item["destinationArn"]))
    return found


def awslogs_event(subscription: Subscription, stream: str, lines: list[tuple[int, str]]) -> dict[str, Any]:
    payload = {
        "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": subscription.log_group,
        "logStream": stream, "subscriptionFilters": [subscription.name],
        "logEvents": [{"id": str(index), "timestamp": stamp, "message": line}
                      for index, (stamp, line) in enumerate(lines)],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}


class LogRouter:
    """Collects every function's log lines; delivers matching ones in batches to the targets."""

    def __init__(self, echo: bool = False) -> None:
        self.lines: dict[str, list[str]] = defaultdict(list)
        self._pending: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self._subscriptions: list[Subscription] = []
        self._targets: dict[str, LocalFunction] = {}
        self._lock = threading.Lock()
        self.delivered = 0
        self.echo = echo

    def connect(self, subscriptions: list[Subscription], targets: dict[str, LocalFunction]) -> None:
        self._subscriptions, self._targets = subscriptions, targets

    def __call__(self, function: str, line: str) -> None:
        """The log sink of every local function."""
        with self._lock:
            self.lines[function].append(line)
            group = f"/aws/lambda/{function}"
            for subscription in self._subscriptions:
                if subscription.log_group == group and subscription.pattern.matches(line):
                    self._pending[subscription.name].append((int(time.time() * 1000), line))
        if self.echo:
            print(f"[{function}] {line}", flush=True)

    def flush(self) -> int:
        """Deliver what is pending (CloudWatch batches per few seconds; here on demand)."""
        with self._lock:
            pending, self._pending = self._pending, defaultdict(list)
        sent = 0
        for subscription in self._subscriptions:
            lines = pending.get(subscription.name)
            target = self._targets.get(subscription.destination_arn)
            if not lines or target is None:
                continue
            try:
                target.invoke(awslogs_event(subscription, "local", lines))
                sent += 1
            except FunctionError as error:
                with self._lock:
                    self.lines["log-router"].append(f"delivery to {subscription.destination_arn} failed: {error}")
        self.delivered += sent
        return sent
