"""A Secrets Manager secret, read at cold start and re-read after a short TTL.

Why a TTL rather than once per cold start: a warm function can live for hours, and a
rotation (`invoke secrets`) must reach it without a deploy. Why not on every invocation:
GetSecretValue costs a network round trip and money per call; with a TTL of 60 s a warm
function makes at most one call a minute, and a rotated secret is honoured everywhere
within about a minute.

Why the parsed value is cached too: the document is parsed once per fetch, so an
invocation costs a clock read. When a refresh fails (Secrets Manager unreachable or
throttled, or the new document does not parse), the last good value keeps serving and
the failure is logged at ERROR, so the function's error subscription raises an alert; a
bad rotation therefore never takes the webhook down. Only a cold start without any
good value fails (`SecretUnavailable`).

No message, log line or exception of this module contains the secret's value: errors
name the secret (its ARN or name is not a secret) and the error's type or code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
DEFAULT_TTL_SECONDS = 60.0

logger = logging.getLogger("shared.secret_store")


class SecretUnavailable(Exception):
    """The secret could not be read (or parsed) and there is no earlier value to fall back on."""


def _describe(error: BaseException) -> str:
    """The error's type and AWS error code, never its arguments (a parser might quote input)."""
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    name = type(error).__name__
    return name if not code or code == name else f"{name} ({code})"


class CachedSecret(Generic[T]):
    """The parsed value of one secret's AWSCURRENT version, refreshed at most once per `ttl_seconds`.

    `client` is a boto3 `secretsmanager` client; `parse` turns the SecretString into the
    value handed out (it may raise; its message is not logged). Thread-safe: one refresh at
    a time, and readers never see a half-built value.
    """

    def __init__(self, client: Any, secret_id: str, parse: Callable[[str], T], *,
                 ttl_seconds: float = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        if not secret_id:
            raise SecretUnavailable("no secret to read: the secret's ARN is empty")
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        self.client, self.secret_id, self.parse = client, secret_id, parse
        self.ttl_seconds, self.clock = ttl_seconds, clock
        self._value: T | None = None
        self._version: str | None = None
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    @property
    def version_id(self) -> str | None:
        """The Secrets Manager version the current value came from (for logs and tests)."""
        return self._version

    def get(self) -> T:
        """The current value; fetched when there is none or it is older than the TTL."""
        fetched_at = self._fetched_at
        if fetched_at is not None and self.clock() - fetched_at < self.ttl_seconds:
            return self._value  # type: ignore[return-value]
        with self._lock:
            fetched_at = self._fetched_at
            if fetched_at is None or self.clock() - fetched_at >= self.ttl_seconds:
                self._refresh()
            return self._value  # type: ignore[return-value]

    def _refresh(self) -> None:
        try:
            response = self.client.get_secret_value(SecretId=self.secret_id)
            version = response.get("VersionId")
            text = response.get("SecretString")
            if text is None:
                raise ValueError("the secret has no SecretString")
            value = self.parse(text) if version is None or version != self._version else self._value
        except Exception as error:  # noqa: BLE001 - any failure: keep the last good value, or fail the cold start
            problem = f"reading secret {self.secret_id} failed: {_describe(error)}"
            if self._fetched_at is None:
                raise SecretUnavailable(problem) from None
            # Serve the last good value for another TTL rather than retrying on every invocation.
            self._fetched_at = self.clock()
            logger.error("%s; the previous value (version %s) stays in use", problem, self._version)
            return
        self._value, self._version, self._fetched_at = value, version, self.clock()
