"""Normalization of one update: exact decimals and event times (symbol pairs: `symbols`).

Trading acts on what is stored, so every rule here rejects rather than guesses: a symbol whose
split is ambiguous, a number DynamoDB cannot hold exactly, a time outside a sane window.
"""

from __future__ import annotations

import decimal
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from boto3.dynamodb.types import DYNAMODB_CONTEXT

from functions.webhook_processor.symbols import normalize_symbol

__all__ = ["event_time_ms", "exact_decimal", "normalize_symbol", "parse_number"]

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EPOCH_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
MAX_SIGNIFICANT_DIGITS = DYNAMODB_CONTEXT.prec  # 38: DynamoDB Number precision
# DynamoDB's documented Number range (positive: 1E-130 to 9.9999999999999999999999999999999999999E+125).
# boto3's context admits 1E+126, which DynamoDB then refuses, so the range is checked as well.
SMALLEST_NUMBER, NUMBER_LIMIT = Decimal("1E-130"), Decimal("1E+126")
_DYNAMODB_SIGNALS = (decimal.Inexact, decimal.Rounded, decimal.Overflow, decimal.Underflow, decimal.Clamped)
EARLIEST_MS = 1_230_768_000_000      # 2009-01-01: no crypto price before that
MAX_FUTURE_MS = 24 * 3600 * 1000     # a clock a day ahead is a bug, not a price
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_number(value: object) -> Decimal:
    """The number as sent: a JSON number (an int or a Decimal: floats never reach here, the body is
    parsed with parse_float=Decimal) or a plain ASCII decimal string. Python's Decimal would also
    read "1_000" or non-ASCII digits; a price must be exactly what the sender wrote."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError("must be a number")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER.fullmatch(text):
            raise ValueError("must be a number")
        value = text
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError, OverflowError):
        raise ValueError("must be a number") from None
    if not number.is_finite():
        raise ValueError("must be finite")
    return number


def exact_decimal(value: object, *, positive: bool) -> Decimal:
    """A finite decimal DynamoDB stores exactly, checked on the value as sent, before any rounding.

    boto3's serializer converts with `DYNAMODB_CONTEXT` (38 digits, traps on Inexact, Rounded,
    Overflow, Underflow and Clamped): a value it would refuse must be rejected here, or it would
    be accepted, fail to store, and be queued to the DLQ where every re-drive fails again.
    """
    number = parse_number(value)
    if positive and number <= 0:
        raise ValueError("must be greater than 0")
    if number < 0:
        raise ValueError("must not be negative")
    if number != 0 and not SMALLEST_NUMBER <= number < NUMBER_LIMIT:
        raise ValueError("is out of range")
    try:
        DYNAMODB_CONTEXT.create_decimal(number)
    except (decimal.Overflow, decimal.Underflow, decimal.Clamped):
        raise ValueError("is out of range") from None
    except _DYNAMODB_SIGNALS:
        raise ValueError(f"must have at most {MAX_SIGNIFICANT_DIGITS} significant digits "
                         "(trailing zeros count)") from None
    return number


def event_time_ms(value: object, default_ms: int | None, received_at_ms: int) -> int:
    """Epoch seconds, milliseconds (or µs/ns) or ISO-8601 (naive is UTC).

    Without a timestamp the update takes `default_ms`: the signed time of an HMAC request, so a
    retried or replayed request yields the same event time and is a duplicate. Token senders
    have no signed time (None): they must send a timestamp.
    """
    if value is None:
        if default_ms is None:
            raise ValueError("is required for this source: send the alert's time, e.g. "
                             "\"timestamp\": \"{{timenow}}\" in a TradingView message")
        return default_ms
    if isinstance(value, bool):
        raise ValueError("must be epoch seconds, milliseconds or ISO-8601")
    if isinstance(value, str) and not _EPOCH_NUMBER.fullmatch(value.strip()):
        millis = _iso_ms(value)
    else:
        number = exact_decimal(value, positive=True)
        if number < Decimal("1e11"):
            millis = int(number * 1000)
        elif number < Decimal("1e14"):
            millis = int(number)
        elif number < Decimal("1e17"):
            millis = int(number) // 1000
        else:
            millis = int(number) // 1_000_000
    if millis < EARLIEST_MS or millis > received_at_ms + MAX_FUTURE_MS:
        raise ValueError("is outside 2009-01-01 .. one day after now")
    return millis


def _iso_ms(text: str) -> int:
    stripped = text.strip()
    if not stripped.isascii() or len(stripped) > 40:
        raise ValueError("must be epoch seconds, milliseconds or ISO-8601")
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("must be epoch seconds, milliseconds or ISO-8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # documented: naive times are UTC
    # Integer arithmetic: a float timestamp could round a millisecond away.
    return (moment - _EPOCH) // timedelta(milliseconds=1)
