"""Counters, structured JSON log lines, and the live status line.

Logs are stdlib `logging` records under the `price_relay` logger with their fields in
`extra`; `configure_logging` writes them as one JSON object per line on stderr. Nothing
secret is ever put in a record, and a filter masks the secret's text anyway, in case an
exception message from below (urllib, sqlite) ever carried it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

LOGGER_NAME = "price_relay"

# LogRecord attributes that are not user fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def get_logger(name: str) -> logging.Logger:
    """A child of the package logger (so one configuration covers all modules)."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")


@dataclass
class Counters:
    """What the relay has done since it started (process-local, reset on restart).

    received: ticks committed to the spool. sent: ticks in batches the webhook answered
    200/202. accepted, duplicates, queued: sums of the webhook's own counts. set_aside:
    ticks refused by the webhook (4xx batch or `rejected` element). dropped: ticks
    refused because the spool was full. set_aside_pruned: set-aside rows removed by the
    bound or the age limit. retried: failed POSTs that will be retried.
    requests: POSTs made. reconnects: websocket connections opened after the first.
    """

    received: int = 0
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    queued: int = 0
    set_aside: int = 0
    set_aside_pruned: int = 0
    dropped: int = 0
    retried: int = 0
    requests: int = 0
    reconnects: int = 0

    def snapshot(self, spooled: int) -> dict[str, int]:
        """All counters plus the spool's current depth."""
        return {**asdict(self), "spooled": spooled}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"[:500]
        return json.dumps(line, default=str)


class SecretMask(logging.Filter):
    """Defense in depth: replaces the secret's text wherever it would appear in a record."""

    def __init__(self, secret: bytes) -> None:
        super().__init__()
        self._secret = secret.decode("utf-8", "replace")

    def _mask(self, value: Any) -> Any:
        return value.replace(self._secret, "***") if isinstance(value, str) and self._secret in value else value

    def filter(self, record: logging.LogRecord) -> bool:
        if len(self._secret) < 4:
            return True  # masking a tiny string would garble every line; config refuses nothing here
        record.msg = self._mask(str(record.msg))
        if record.args:
            record.args = tuple(self._mask(str(a)) for a in record.args) if isinstance(record.args, tuple) \
                else record.args
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, self._mask(value))
        return True


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg, unused-ignore]
    """Writes to whatever sys.stderr is at emit time, so rich's live display can route
    log lines above the status line while it runs."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", secret: bytes | None = None) -> logging.Handler:
    """JSON lines on stderr for the package logger; returns the handler (to remove later)."""
    handler = _CurrentStderr()
    handler.setFormatter(JsonFormatter())
    if secret:
        handler.addFilter(SecretMask(secret))
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return handler


class StatusLine:
    """A rich live line with the counters, shown only when stdout is a terminal."""

    def __init__(self, render: Callable[[], str]) -> None:
        self._render = render
        self._live: Any = None

    def start(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        class _Line:
            def __init__(self, render: Callable[[], str]) -> None:
                self.render = render

            def __rich__(self) -> Text:
                return Text(self.render())

        # Log lines are routed above the status line only when they share its terminal;
        # a stderr redirected to a file keeps receiving them.
        self._live = Live(_Line(self._render), console=Console(), refresh_per_second=2, transient=True,
                          redirect_stdout=True, redirect_stderr=sys.stderr.isatty())
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
