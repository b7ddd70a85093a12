"""The client's one exception type, so a trading loop needs a single `except`."""

from __future__ import annotations


class PriceApiError(Exception):
    """The API refused or failed a request.

    `status` is the HTTP status (400 bad parameter or unknown route, 403 not signed or not
    allowed, 429/503 busy, 5xx failure), or None when no response arrived at all (DNS,
    connection, timeout). `message` is the API's own error text, e.g.
    "limit: must be an integer from 1 to 1000, got \"0\"".
    """

    def __init__(self, status: int | None, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.status = status
        self.message = message
        self.retry_after = retry_after  # seconds, from a busy answer's Retry-After header
