"""Webhook authentication: `X-Source` names the sender, `X-Signature: t=<unix>,v1=<hex>[,v1=...]`.

<hex> is HMAC-SHA256 over the bytes of "<t>." followed by the raw body, with one of
the sender's active secrets; several v1 entries allow secret rotation. Signing with
the timestamp bounds replays to the skew window.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence

MAX_SIGNATURE_HEADER = 2048


class AuthError(Exception):
    """Why a request is not authenticated; safe to return (no secret, no body)."""


def parse_secrets(raw: str | None) -> dict[str, list[bytes]]:
    """WEBHOOK_SECRETS: {"source-id": "secret" | ["secret", ...]}; fails loudly when malformed."""
    data = json.loads(raw or "{}")
    if not isinstance(data, dict):
        raise ValueError("WEBHOOK_SECRETS must be a JSON object of source id -> secret(s)")
    secrets: dict[str, list[bytes]] = {}
    for source, value in data.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise ValueError(f"WEBHOOK_SECRETS[{source!r}] must be a non-empty string or list of strings")
        secrets[str(source)] = [v.encode() for v in values]
    return secrets


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """What a sender puts in X-Signature (used by the demo, the tests and integrators' examples)."""
    return ",".join([f"t={timestamp}"] + [f"v1={sign(secret, timestamp, body)}" for secret in secrets])


def _parse_header(header: str) -> tuple[int, list[str]]:
    if len(header) > MAX_SIGNATURE_HEADER:
        raise AuthError("X-Signature header is too long")
    timestamp, candidates = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise AuthError("X-Signature must be 't=<unix seconds>,v1=<hex>'")
    return timestamp, candidates


def verify(headers: Mapping[str, str], body: bytes, secrets: Mapping[str, list[bytes]], now: float,
           max_skew_seconds: int) -> str:
    """Return the authenticated source id, or raise AuthError."""
    source = (headers.get("x-source") or "").strip()
    if not source:
        raise AuthError("missing X-Source header")
    keys = secrets.get(source)
    if not keys:
        raise AuthError("unknown source")
    header = headers.get("x-signature")
    if not header:
        raise AuthError("missing X-Signature header")
    timestamp, candidates = _parse_header(header)
    if abs(now - timestamp) > max_skew_seconds:
        raise AuthError("signature timestamp outside the allowed window")
    expected = [sign(key, timestamp, body) for key in keys]
    # compare_digest for every pair: the time taken does not depend on where a guess differs.
    matched = False
    for candidate in candidates:
        for digest in expected:
            matched |= hmac.compare_digest(candidate.encode(), digest.encode())
    if not matched:
        raise AuthError("bad signature")
    return source
