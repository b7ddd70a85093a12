"""Normalization of one update: symbol pairs, exact decimals, event times.

Trading acts on what is stored, so every rule here rejects rather than guesses: a symbol whose
split is ambiguous, a number DynamoDB cannot hold exactly, a time outside a sane window.
"""

from __future__ import annotations

import decimal
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from boto3.dynamodb.types import DYNAMODB_CONTEXT

# Quote assets recognized at the end of a separator-less pair such as BTCUSDT. Some end with
# another (TUSD, BUSD and FDUSD end with USD), so DOTUSD could be DO-TUSD or DOT-USD: such a
# symbol is ambiguous unless COMPACT_PAIRS names its market.
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "JPY", "TRY", "BRL",
                "AUD", "CAD", "CHF", "BTC", "ETH", "BNB", "SOL")
# Exchange-specific names for the same asset (Kraken calls bitcoin XBT and dogecoin XDG). Quotes are
# never converted into each other: USDT stays USDT.
ASSET_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
# Well-known compact pairs, as exchanges and TradingView spell them, whose split is ambiguous by
# KNOWN_QUOTES alone (or is listed to be explicit). Key: the symbol without exchange prefix, upper case.
COMPACT_PAIRS: dict[str, tuple[str, str]] = {
    # Kraken altnames (REST `AssetPairs` altname, TradingView KRAKEN:<altname>)
    "XBTUSD": ("BTC", "USD"),     # Kraken XXBTZUSD / altname XBTUSD; TradingView KRAKEN:XBTUSD
    "XBTUSDT": ("BTC", "USDT"),   # Kraken XBTUSDT
    "ETHUSD": ("ETH", "USD"),     # Kraken altname ETHUSD; TradingView COINBASE:ETHUSD, BITSTAMP:ETHUSD
    "DOTUSD": ("DOT", "USD"),     # Kraken DOTUSD (REST key and altname); Coinbase DOT-USD as COINBASE:DOTUSD
    "USDTUSD": ("USDT", "USD"),   # Kraken altname USDTUSD; Coinbase USDT-USD as COINBASE:USDTUSD
    "USDTZUSD": ("USDT", "USD"),  # Kraken REST result key of USDT/USD
    "GRTUSD": ("GRT", "USD"),     # Kraken GRTUSD; Coinbase GRT-USD as COINBASE:GRTUSD
    "BATUSD": ("BAT", "USD"),     # Kraken BATUSD; Coinbase BAT-USD
    "FETUSD": ("FET", "USD"),     # Kraken FETUSD; Coinbase FET-USD
    "APTUSD": ("APT", "USD"),     # Kraken APTUSD; Coinbase APT-USD
    "ARBUSD": ("ARB", "USD"),     # Kraken ARBUSD; Coinbase ARB-USD as COINBASE:ARBUSD
    "SHIBUSD": ("SHIB", "USD"),   # Kraken SHIBUSD; Coinbase SHIB-USD as COINBASE:SHIBUSD
    "BNBUSD": ("BNB", "USD"),     # Binance.US BNBUSD (TradingView BINANCEUS:BNBUSD)
    "QNTUSD": ("QNT", "USD"),     # Kraken QNTUSD; Coinbase QNT-USD
    "BNTUSD": ("BNT", "USD"),     # Kraken BNTUSD; Coinbase BNT-USD
    "OXTUSD": ("OXT", "USD"),     # Kraken OXTUSD; Coinbase OXT-USD
    "TRBUSD": ("TRB", "USD"),     # Kraken TRBUSD; Coinbase TRB-USD
    "MNTUSD": ("MNT", "USD"),     # Kraken MNTUSD
    # Binance spot symbols (GET /api/v3/exchangeInfo) quoted in TUSD, BUSD and FDUSD
    "BTCTUSD": ("BTC", "TUSD"), "ETHTUSD": ("ETH", "TUSD"),
    "BTCBUSD": ("BTC", "BUSD"), "ETHBUSD": ("ETH", "BUSD"), "BNBBUSD": ("BNB", "BUSD"),  # delisted 2023-12
    "BTCFDUSD": ("BTC", "FDUSD"), "ETHFDUSD": ("ETH", "FDUSD"), "BNBFDUSD": ("BNB", "FDUSD"),
    "SOLFDUSD": ("SOL", "FDUSD"), "XRPFDUSD": ("XRP", "FDUSD"), "DOGEFDUSD": ("DOGE", "FDUSD"),
}
# An optional TradingView exchange prefix, then an asset, or two assets with one separator.
_SYMBOL = re.compile(r"(?:[A-Z0-9_]{1,20}:)?(?P<base>[A-Z0-9]{1,20})(?:[-/_](?P<quote>[A-Z0-9]{1,20}))?")
_ASSET = re.compile(r"[A-Z0-9]{1,15}")
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


def normalize_symbol(raw: str, default_quote: str) -> str:
    """`BTCUSDT`→`BTC-USDT`, `XBT/USD`→`BTC-USD`, `btc`→`BTC-<default quote>`, `KRAKEN:XBTUSD`→`BTC-USD`.

    Raises ValueError when the symbol is malformed or its split is ambiguous: a wrong pair is
    worse than a rejected one. The text is checked as sent (ASCII only, no whitespace or control
    character anywhere, full-string anchors), so `"BTC\\n/USD"` or `"ßTC"` cannot become a pair.
    """
    if any(char.isspace() or not char.isprintable() for char in raw):
        raise ValueError("must not contain whitespace or control characters")
    if not raw.isascii():
        raise ValueError("must be ASCII letters and digits")
    match = _SYMBOL.fullmatch(raw.upper())
    if match is None:
        raise ValueError("must be an asset like BTC or a pair like BTC-USD (optionally EXCHANGE:PAIR)")
    if match["quote"] is not None:
        base, quote = match["base"], match["quote"]
    else:
        base, quote = _split_compact(match["base"], default_quote)
    base, quote = ASSET_ALIASES.get(base, base), ASSET_ALIASES.get(quote, quote)
    if not _ASSET.fullmatch(base) or not _ASSET.fullmatch(quote):
        raise ValueError("assets must be letters and digits (at most 15)")
    if base == quote:
        raise ValueError("base and quote must differ")
    return f"{base}-{quote}"


def _unalias(text: str) -> str:
    """Kraken's names at either end of a compact pair: XBTUSD→BTCUSD, ETHXBT→ETHBTC, XDGUSD→DOGEUSD."""
    for alias, asset in ASSET_ALIASES.items():
        if text.startswith(alias):
            text = asset + text[len(alias):]
        if text.endswith(alias):
            text = text[: -len(alias)] + asset
    return text


def _split_compact(text: str, default_quote: str) -> tuple[str, str]:
    """Split a separator-less symbol; a lone asset takes the default quote."""
    if text in COMPACT_PAIRS:
        return COMPACT_PAIRS[text]
    unaliased = _unalias(text)
    if unaliased in COMPACT_PAIRS:
        return COMPACT_PAIRS[unaliased]
    splits = [(unaliased[: -len(quote)], quote) for quote in KNOWN_QUOTES
              if unaliased.endswith(quote) and len(unaliased) - len(quote) >= 2]
    if not splits:
        return unaliased, default_quote
    if len(splits) > 1:
        options = " or ".join(f"{base}-{quote}" for base, quote in sorted(splits))
        raise ValueError(f"{text[:20]!r} is ambiguous ({options}): send it with a separator, e.g. BASE-QUOTE")
    return splits[0]


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
