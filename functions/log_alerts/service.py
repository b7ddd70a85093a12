"""Log alerts service: the CloudWatch Logs subscription filters' target (a filter cannot target SNS).

Decodes the `awslogs.data` payload and publishes one concise alert per invocation.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from functions.log_alerts.settings import Settings

MAX_LINES = 5
MAX_LINE_CHARS = 300
# Belt and braces: the functions never log secrets or bodies, but an alert leaves the
# account by e-mail, so anything that looks like a credential is masked on the way out.
_SENSITIVE = re.compile(
    r'(?i)("?(?:x-signature|signature|secret|secrets|authorization|password|token|webhook_secrets)"?\s*[:=]\s*)'
    r'("[^"]*"|[^\s,}]+)')
_LONG_HEX = re.compile(r"\b[0-9a-fA-F]{32,}\b")

logger = logging.getLogger("log_alerts")


def decode_payload(event: Mapping[str, Any]) -> dict[str, Any]:
    """awslogs.data: base64 of gzip of JSON."""
    return json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))


def redact(line: str) -> str:
    return _LONG_HEX.sub("[hex]", _SENSITIVE.sub(lambda m: m.group(1) + '"[redacted]"', line))


def _summary(message: str) -> str:
    """The message of a Powertools JSON line, or the raw line."""
    try:
        data = json.loads(message)
        if isinstance(data, dict) and "message" in data:
            extra = {k: data[k] for k in ("level", "location", "errors", "reasons", "lost", "failed") if k in data}
            return f"{data['message']} {json.dumps(extra, default=str)}"
    except (ValueError, TypeError):
        pass
    return message


def build_alert(payload: dict[str, Any]) -> dict[str, str] | None:
    """Subject and message for one batch of log events; None for CloudWatch's control messages."""
    if payload.get("messageType") != "DATA_MESSAGE":
        return None
    events = payload.get("logEvents", [])
    group, stream = payload.get("logGroup", "?"), payload.get("logStream", "?")
    function = group.rsplit("/", 1)[-1]
    lines = []
    for event in events[:MAX_LINES]:
        text = redact(_summary(str(event.get("message", ""))).strip())
        lines.append(text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + "…")
    message = "\n".join([
        f"{len(events)} error line(s) in {group}",
        f"log stream: {stream}",
        f"filters: {', '.join(payload.get('subscriptionFilters', []))}",
        "",
        *[f"- {line}" for line in lines],
        *([f"(+{len(events) - MAX_LINES} more)"] if len(events) > MAX_LINES else []),
    ])
    subject = f"[alert] {len(events)} error line(s) in {function}"[:100]
    return {"Subject": subject, "Message": message}


def process(event: Mapping[str, Any], settings: Settings, sns: Any) -> dict[str, Any]:
    alert = build_alert(decode_payload(event))
    if alert is None:
        return {"published": 0}
    sns.publish(TopicArn=settings.topic_arn, **alert)
    logger.info("alert published", extra={"subject": alert["Subject"]})
    return {"published": 1}
