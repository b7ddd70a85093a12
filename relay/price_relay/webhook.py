"""The webhook client: sign a batch body exactly as the webhook contract says and POST it.

Signing (docs/webhook-contract.md, "Authentication"): `X-Signature: t=<unix seconds>,v1=<hex>`,
hex = HMAC-SHA256(secret, b"<t>." + body). A re-sent batch keeps its body bytes and gets
a fresh `t` (the webhook refuses a `t` more than 300 s off).

stdlib urllib in a worker thread: one request at a time per exchange, so a connection
pool or an async HTTP client would buy nothing worth a dependency.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from price_relay.config import Secret

USER_AGENT = "price-relay/0.1"


class Outcome(enum.Enum):
    """What to do with a batch after the webhook's answer."""

    DELIVERED = "delivered"    # 200/202: remove from the spool
    RETRY = "retry"            # 5xx, 429, 408, 401, network errors: keep and retry
    SET_ASIDE = "set_aside"    # other 4xx: the batch itself is refused


@dataclass(frozen=True)
class WebhookAnswer:
    """One POST's result. `status` is 0 when no HTTP answer came (network error)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def outcome(self) -> Outcome:
        if self.status in (200, 202):
            return Outcome.DELIVERED
        # 401 is retried, not set aside: it says the secret or the clock is wrong, not
        # the batch; setting every batch aside while the secret is rotated would empty
        # the spool into a dead table. Retrying keeps order and loses nothing.
        if self.status == 0 or self.status >= 500 or self.status in (401, 408, 429):
            return Outcome.RETRY
        return Outcome.SET_ASIDE


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of b"<t>." + body."""
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: Secret, timestamp: int, body: bytes) -> str:
    """The X-Signature header value."""
    return f"t={timestamp},v1={sign(secret.reveal(), timestamp, body)}"


def endpoint(webhook_url: str, exchange: str | None) -> str:
    """`<webhook_url>?format=<exchange>` (no `format` for None), keeping any other query."""
    parts = urlsplit(webhook_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "format"]
    if exchange is not None:
        query.append(("format", exchange))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _answer(status: int, raw: bytes) -> WebhookAnswer:
    try:
        body = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, ValueError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    error = body.get("error")
    text = str(error)[:300] if error else (raw[:200].decode("utf-8", "replace") if not body else "")
    return WebhookAnswer(status=status, body=body, error=text)


def post_batch(url: str, source: str, secret: Secret, body: bytes, timeout: float,
               now: float | None = None) -> WebhookAnswer:
    """POST one batch (blocking; run it in a thread). Never raises for HTTP or network
    failures: they come back as an answer (status 0 for no answer)."""
    timestamp = int(time.time() if now is None else now)
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "X-Source": source,
        "X-Signature": signature_header(secret, timestamp, body),
        "User-Agent": USER_AGENT,
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _answer(response.status, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return _answer(error.code, error.read())
    except urllib.error.URLError as error:
        return WebhookAnswer(status=0, error=f"{type(error.reason).__name__}: {error.reason}"[:300])
    except (OSError, http.client.HTTPException, ValueError) as error:
        return WebhookAnswer(status=0, error=f"{type(error).__name__}: {error}"[:300])
