"""Webhook processor service: one function-URL request (payload format 2.0) → one response.

Importable without the Lambda's Powertools logger and metrics (the drain, the benchmarks
and the tests call `process` directly); `handler.py` adds them at the edge. Authentication,
parsing and normalization are pure functions in sibling modules; the conditional write
lives with the table (`functions.shared.price_table`).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.config import Config

from functions.shared.observability import MetricSink, no_metrics
from functions.shared.price_table.ticks import StoreOutcome, store_update
from functions.shared.price_update import PriceUpdate, dead_letter_body
from functions.webhook_processor.payloads import EnvelopeError, load_json, parse_updates
from functions.webhook_processor.settings import Settings
from functions.webhook_processor.signature import Authenticated, AuthError, verify, verify_token

MAX_BODY_BYTES = 1024 * 1024
WRITE_THREADS = 16
# Throttling and transient errors are retried by botocore's standard mode (exponential
# backoff with jitter) rather than a hand-written loop.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6}, max_pool_connections=WRITE_THREADS + 4)

logger = logging.getLogger("webhook_processor")
# One body for every authentication failure: the specific reason goes to the log line only, so an
# outsider learns neither which source ids exist nor which check failed.
UNAUTHORIZED = {"error": "unauthorized"}


def respond(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _queue(sqs: Any, dlq_url: str, failures: list[tuple[PriceUpdate, str]]) -> list[PriceUpdate]:
    """Send unstored updates to the DLQ; return those that could not be queued either."""
    lost = []
    now_ms = int(time.time() * 1000)
    for start in range(0, len(failures), 10):
        chunk = failures[start:start + 10]
        entries = [{"Id": str(i), "MessageBody": json.dumps(dead_letter_body(update, error, now_ms))}
                   for i, (update, error) in enumerate(chunk)]
        try:
            result = sqs.send_message_batch(QueueUrl=dlq_url, Entries=entries)
            lost += [chunk[int(item["Id"])][0] for item in result.get("Failed", [])]
        except Exception:  # any failure here means the updates are not safe yet (logged with its traceback)
            logger.exception("could not queue updates to the webhook DLQ", extra={"count": len(chunk)})
            lost += [update for update, _ in chunk]
    return lost


def store_all(updates: list[PriceUpdate], dynamodb: Any, sqs: Any, settings: Settings) -> dict[str, Any]:
    """Write concurrently across symbols, in time order within a symbol; queue what cannot be stored.

    Within a symbol the writes are sequential and oldest first: the table stream then
    carries a request's ticks in chronological order, so the enricher never computes a
    newer tick before the older ones of the same request exist.
    """

    def attempt(update: PriceUpdate) -> tuple[StoreOutcome | None, str | None]:
        try:
            outcome, _ = store_update(dynamodb, settings.table_name, update, settings.tick_retention_days)
            return outcome, None
        except Exception as error:  # noqa: BLE001 - reported and queued, never dropped
            return None, f"{type(error).__name__}: {error}"[:300]

    by_symbol: dict[str, list[int]] = {}
    for index, update in enumerate(updates):
        by_symbol.setdefault(update.symbol, []).append(index)
    results: list[tuple[StoreOutcome | None, str | None]] = [(None, None)] * len(updates)

    def write_symbol(indexes: list[int]) -> None:
        for index in sorted(indexes, key=lambda i: updates[i].event_ms):
            results[index] = attempt(updates[index])

    with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(by_symbol))) as pool:
        list(pool.map(write_symbol, by_symbol.values()))
    failures = [(update, error or "unknown error") for update, (outcome, error) in zip(updates, results, strict=True)
                if outcome is None]
    lost = _queue(sqs, settings.dlq_url, failures) if failures else []
    return {
        "stored": sum(outcome == StoreOutcome.STORED for outcome, _ in results),
        "duplicates": sum(outcome == StoreOutcome.DUPLICATE for outcome, _ in results),
        "queued": len(failures) - len(lost),
        "lost": len(lost),
        "errors": sorted({error.split(":")[0] for _, error in failures if error}),
    }


def _request_parts(event: dict[str, Any]) -> tuple[str, dict[str, str], bytes, dict[str, str], str | None]:
    """Method, lower-cased headers, body bytes, query and source IP of a function-URL event.

    The body arrives as text (JSON and text/* content types, e.g. TradingView's text/plain) or,
    for other content types, base64 with isBase64Encoded; the content type itself is not
    trusted or required: the bytes are what was signed, and what is parsed.
    """
    http = event.get("requestContext", {}).get("http", {})
    method = http.get("method", "POST")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except ValueError:
            body = b"\xff"  # undecodable: fails signature checks like any forged body
    else:
        body = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else b""
    query = event.get("queryStringParameters") or {}
    source_ip = http.get("sourceIp")
    return method, headers, body, query, source_ip if isinstance(source_ip, str) else None


def authenticate(headers: dict[str, str], body: bytes, source_ip: str | None, settings: Settings,
                 now: float) -> tuple[Authenticated, Any | None]:
    """Signed requests (X-Source/X-Signature headers) are verified on their raw bytes before the body
    is parsed; a request without those headers must be a token request, whose credentials are in
    the parsed body and are removed from what is returned. Raises AuthError.

    Returns the authentication and, for a token request, the body without its credentials.
    """
    if "x-source" in headers or "x-signature" in headers:
        return verify(headers, body, settings.secrets, now, settings.max_skew_seconds, source_ip=source_ip), None
    try:
        data = load_json(body)
    except EnvelopeError:
        raise AuthError("no credentials: no X-Source/X-Signature headers and the body is not JSON") from None
    return verify_token(data, settings.secrets, source_ip=source_ip)


def process(event: dict[str, Any], settings: Settings, dynamodb: Any, sqs: Any, now: float,
            metrics: MetricSink = no_metrics) -> dict[str, Any]:
    """One webhook request → one HTTP response. Nothing is written unless the request is authenticated
    (signed, or a token source's valid token); every authentication failure is the same 401."""
    method, headers, body, query, source_ip = _request_parts(event)
    if method != "POST":
        return respond(405, {"error": "use POST"})
    if len(body) > MAX_BODY_BYTES:
        metrics("RejectedRequests", 1)
        return respond(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
    try:
        auth, data = authenticate(headers, body, source_ip, settings, now)
    except AuthError as error:
        metrics("UnauthorizedRequests", 1)
        logger.warning("request not authenticated", extra={"reason": str(error), "source_ip": source_ip})
        return respond(401, UNAUTHORIZED)
    received_at_ms = int(now * 1000)
    try:
        if data is None:
            data = load_json(body)
        # An update without a timestamp takes the signed time: the same signed request always
        # yields the same event time, so a retry or a replay is a duplicate, never a new tick.
        accepted, rejected, batch = parse_updates(
            data, format_hint=query.get("format"), source=auth.source, received_at_ms=received_at_ms,
            default_event_ms=None if auth.signed_at is None else auth.signed_at * 1000,
            default_quote=settings.default_quote)
    except EnvelopeError as error:
        metrics("RejectedRequests", 1)
        return respond(413 if error.too_large else 400, {"error": str(error)})
    if not accepted:
        # Nothing usable at all is a malformed request; say what is wrong with each element.
        metrics("RejectedUpdates", len(rejected))
        first = rejected[0]["error"] if rejected else "no updates"
        return respond(400, {"error": first if not batch else "no valid update in the batch",
                             "accepted": 0, "duplicates": 0, "queued": 0, "rejected": rejected})

    outcome = store_all([update for _, update in accepted], dynamodb, sqs, settings)
    for name, value in (("AcceptedUpdates", outcome["stored"]), ("DuplicateUpdates", outcome["duplicates"]),
                        ("QueuedUpdates", outcome["queued"]), ("RejectedUpdates", len(rejected)),
                        ("LostUpdates", outcome["lost"])):
        metrics(name, value)
    body_out = {"accepted": outcome["stored"], "duplicates": outcome["duplicates"], "queued": outcome["queued"],
                "rejected": rejected}
    logger.info("webhook processed", extra={"source": auth.source, **{k: v for k, v in body_out.items()
                                                                   if k != "rejected"},
                                            "rejected_count": len(rejected)})
    if outcome["lost"]:
        logger.error("updates could be neither stored nor queued",
                     extra={"lost": outcome["lost"], "errors": outcome["errors"]})
        return respond(500, {**body_out, "error": "some updates could not be stored or queued; retry the request"})
    if outcome["queued"]:
        logger.error("updates queued to the webhook DLQ", extra={"queued": outcome["queued"],
                                                                 "errors": outcome["errors"]})
        return respond(202, body_out)
    return respond(200, body_out)
