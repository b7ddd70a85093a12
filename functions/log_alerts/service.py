"""Log alerts service: the CloudWatch Logs subscription filters' target (a filter cannot target SNS).

Decodes the `awslogs.data` payload and publishes one concise alert per invocation, each line
summarized and masked by `redaction` (the functions never log secrets; this is belt and braces).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
from collections.abc import Mapping
from typing import Any

from functions.log_alerts.redaction import summarize
from functions.log_alerts.settings import Settings

MAX_LINES = 5
MAX_LINE_CHARS = 300
__all__ = ["Settings", "build_alert", "decode_payload", "process"]

logger = logging.getLogger("log_alerts")


def decode_payload(event: Mapping[str, Any]) -> dict[str, Any]:
    """awslogs.data: base64 of gzip of JSON."""
    payload: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    return payload


def build_alert(payload: dict[str, Any]) -> dict[str, str] | None:
    """Subject and message for one batch of log events; None for CloudWatch's control messages."""
    if payload.get("messageType") != "DATA_MESSAGE":
        return None
    events = payload.get("logEvents", [])
    group, stream = payload.get("logGroup", "?"), payload.get("logStream", "?")
    function = group.rsplit("/", 1)[-1]
    lines = []
    for event in events[:MAX_LINES]:
        # An alert leaves the account by e-mail: every line is summarized and masked on the way out.
        text = summarize(str(event.get("message", "")))
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
