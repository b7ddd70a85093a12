"""Times as the API wants them (epoch milliseconds) from what a caller has at hand."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

TimeLike = datetime | date | str | int
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_epoch_ms(value: TimeLike) -> int:
    """datetime / date / ISO-8601 string / epoch ms → epoch ms; naive times are UTC, as on the server.

    Ints are taken as milliseconds, never seconds: a value before 1973 (< 1e11) is almost
    certainly seconds, so it is refused rather than silently selecting 1970. A string of
    digits is epoch ms too, as the API reads it (`invoke prices --from 1700000000000`); a
    basic ISO date such as "20240101" therefore reads as a number and is refused as seconds.
    """
    if isinstance(value, bool):
        raise TypeError("a time must be a datetime, an ISO-8601 string or epoch milliseconds, not a bool")
    if isinstance(value, int):
        if 0 < value < 100_000_000_000:
            raise ValueError(f"{value} looks like epoch seconds; pass epoch milliseconds (x 1000)")
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return to_epoch_ms(int(value.strip()))
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        micros = (moment - _EPOCH) // timedelta(microseconds=1)
        return -(-micros // 1000)
    if isinstance(value, date):
        return to_epoch_ms(datetime(value.year, value.month, value.day, tzinfo=timezone.utc))
    raise TypeError(f"a time must be a datetime, an ISO-8601 string or epoch milliseconds, not {type(value).__name__}")


def from_epoch_ms(ms: int) -> datetime:
    """Epoch ms → an aware UTC datetime (exact: integer arithmetic, no float seconds)."""
    return _EPOCH + timedelta(milliseconds=ms)
