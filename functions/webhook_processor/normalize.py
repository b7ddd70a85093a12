"""Normalization of one update: symbol pairs, exact decimals, event times."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

# Quote assets recognized at the end of a separator-less pair such as BTCUSDT, longest first.
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "JPY", "TRY", "BRL",
                "AUD", "CAD", "CHF", "BTC", "ETH", "BNB", "SOL")
# Exchange-specific names for the same asset (Kraken calls bitcoin XBT). Quotes are never
# converted into each other: USDT stays USDT.
ASSET_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
_SEPARATORS = re.compile(r"[-/_]")
_ASSET = re.compile(r"^[A-Z0-9]{1,15}$")
MAX_SIGNIFICANT_DIGITS = 38          # DynamoDB Number precision
EARLIEST_MS = 1_230_768_000_000      # 2009-01-01: no crypto price before that
MAX_FUTURE_MS = 24 * 3600 * 1000     # a clock a day ahead is a bug, not a price
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def normalize_symbol(raw: str, default_quote: str) -> str:
    """`BTCUSDT`→`BTC-USDT`, `XBT/USD`→`BTC-USD`, `btc`→`BTC-<default quote>`."""
    text = raw.strip().upper()
    if ":" in text:  # TradingView style "BINANCE:BTCUSDT"
        text = text.rsplit(":", 1)[1]
    parts = [p for p in _SEPARATORS.split(text) if p]
    if len(parts) == 2:
        base, quote = parts
    elif len(parts) == 1:
        base, quote = _split_compact(parts[0], default_quote)
    else:
        raise ValueError("must be an asset like BTC or a pair like BTC-USD")
    base, quote = ASSET_ALIASES.get(base, base), ASSET_ALIASES.get(quote, quote)
    if not _ASSET.match(base) or not _ASSET.match(quote):
        raise ValueError("assets must be letters and digits (at most 15)")
    if base == quote:
        raise ValueError("base and quote must differ")
    return f"{base}-{quote}"


def _split_compact(text: str, default_quote: str) -> tuple[str, str]:
    for quote in KNOWN_QUOTES:
        if text.endswith(quote) and len(text) - len(quote) >= 2:
            return text[: -len(quote)], quote
    return text, default_quote


def exact_decimal(value: object, *, positive: bool) -> Decimal:
    """A finite decimal DynamoDB can store exactly; floats never reach here (parse_float=Decimal)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError("must be a number")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise ValueError("must be a number") from None
    if not number.is_finite():
        raise ValueError("must be finite")
    if positive and number <= 0:
        raise ValueError("must be greater than 0")
    if number < 0:
        raise ValueError("must not be negative")
    if number != 0:
        if len(number.normalize().as_tuple().digits) > MAX_SIGNIFICANT_DIGITS:
            raise ValueError(f"must have at most {MAX_SIGNIFICANT_DIGITS} significant digits")
        if not Decimal("1E-129") <= number < Decimal("1E+125"):
            raise ValueError("is out of range")
    return number


def event_time_ms(value: object, received_at_ms: int) -> int:
    """Epoch seconds, milliseconds (or µs/ns) or ISO-8601; the receive time when absent."""
    if value is None:
        return received_at_ms
    if isinstance(value, bool):
        raise ValueError("must be epoch seconds, milliseconds or ISO-8601")
    if isinstance(value, str) and not re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
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
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("must be epoch seconds, milliseconds or ISO-8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # documented: naive times are UTC
    # Integer arithmetic: a float timestamp could round a millisecond away.
    return (moment - _EPOCH) // timedelta(milliseconds=1)
