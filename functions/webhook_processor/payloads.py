"""Request bodies → validated price updates.

A body is one update, a JSON array of updates, or {"updates": [...]}. Each element is
the generic format or an exchange-native ticker (Binance, Coinbase, Kraken), recognized
by its shape or forced with `?format=`. Exchange adapters only map fields onto the
generic shape and check the types of the envelope they walk; one set of checks
(`validate_generic`) validates every update. Errors name the field as the sender wrote it
(`lastPrice`, `data[1].last`), never its value.

The checks are written out rather than a pydantic model: importing pydantic and building the
model cost ~135 ms of CPU at every cold start (Python 3.12, with the zip's bytecode), over three
times the webhook's whole 40 ms import budget, for seven fields. They keep pydantic's rules
and its messages (`String should match pattern ...`), which senders already see in 400s;
tests/test_webhook_validation.py checks them against the pydantic model they replace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from functions.shared.price_update import PriceUpdate
from functions.webhook_processor import kraken_names
from functions.webhook_processor.exchanges import EXCHANGES
from functions.webhook_processor.normalize import event_time_ms, exact_decimal
from functions.webhook_processor.symbols import normalize_symbol

MAX_UPDATES = 1000
FORMATS = ("generic", *EXCHANGES)
_CLIP = 40  # sender-chosen names (Kraken pair keys) are clipped in error messages


class EnvelopeError(Exception):
    """The body as a whole is unusable (400), or too large (413 when too_large)."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class UpdateError(ValueError):
    """One update's problem: the generic field at fault (or None for the update as a whole) and why."""

    def __init__(self, field_name: str | None, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.message = message


class Row:
    """One update mapped onto the generic shape, with where it sits in the sender's envelope:
    `names` maps a generic field to the sender's own path for error messages. A row whose part
    of the envelope has the wrong type carries `error` instead (rejected; the other rows go on).

    A plain class with __slots__ rather than a dataclass (cold start: see functions.shared.records);
    a row is built, read once and dropped, and never compared.
    """

    __slots__ = ("fields", "names", "error")

    def __init__(self, fields: dict[str, Any], names: dict[str, str] | None = None, error: str | None = None) -> None:
        self.fields = fields
        self.names = {} if names is None else names
        self.error = error

    def where(self, field_name: str | None) -> str:
        return self.names.get(field_name, field_name) if field_name else self.names.get("", "update")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UpdateError(None, f"{where}: must be an object")
    return value


# Exchange tickers carry a rolling 24 h volume (Binance `v`/`volume`, Coinbase `volume_24h`,
# Kraken `volume`/`v[1]`): it is the venue's `volume_24h`, never a tick's `volume` (traded
# quantity since the venue's previous tick), which a candle sums.
BINANCE_STREAM_NAMES = {"symbol": "s", "price": "c", "bid": "b", "ask": "a", "volume_24h": "v", "timestamp": "E"}
BINANCE_REST_NAMES = {"symbol": "symbol", "price": "lastPrice", "bid": "bidPrice", "ask": "askPrice",
                      "volume_24h": "volume", "timestamp": "closeTime"}
COINBASE_NAMES = {"symbol": "product_id", "price": "price", "bid": "best_bid", "ask": "best_ask",
                  "volume_24h": "volume_24h", "timestamp": "time"}
KRAKEN_WS_NAMES = {"symbol": "symbol", "price": "last", "bid": "bid", "ask": "ask", "volume_24h": "volume",
                   "timestamp": "timestamp"}


def _generic(element: dict[str, Any]) -> list[Row]:
    return [Row(element)]


def _binance(element: dict[str, Any]) -> list[Row]:
    """Binance `<symbol>@ticker` stream event (optionally in a combined-stream wrapper) or
    REST `GET /api/v3/ticker/24hr` object."""
    prefix = ""
    if "data" in element and "stream" in element:
        element, prefix = _object(element["data"], "data"), "data."
    if element.get("e") == "24hrTicker":
        names = BINANCE_STREAM_NAMES
    else:
        names = BINANCE_REST_NAMES
    return [Row({generic: element.get(native) for generic, native in names.items()} | {"exchange": "binance"},
                {generic: prefix + native for generic, native in names.items()})]


def _coinbase(element: dict[str, Any]) -> list[Row]:
    """Coinbase Exchange websocket `ticker` channel message."""
    fields = {generic: element.get(native) for generic, native in COINBASE_NAMES.items()}
    return [Row(fields | {"exchange": "coinbase"}, dict(COINBASE_NAMES))]


def _kraken_rest_pair(pair: str) -> str:
    """Kraken REST pair keys: two legacy asset codes (XXBTZUSD, XETHZEUR, XETHXXBT) become
    BASE/QUOTE by Kraken's own table (`kraken_names`); an unknown name in that spelling is an
    error; others (XBTUSDT, DOTUSD, USDTZUSD) are split by `normalize_symbol`."""
    legacy = kraken_names.legacy_pair(pair)
    return pair if legacy is None else f"{legacy[0]}/{legacy[1]}"


def _kraken(element: dict[str, Any]) -> list[Row]:
    """Kraken websocket v2 `ticker` channel message, or REST `GET /0/public/Ticker` response."""
    if element.get("channel") == "ticker":
        rows = element.get("data")
        if not isinstance(rows, list) or not rows:
            raise UpdateError(None, "data: must be a non-empty list of tickers")
        mapped = []
        for position, row in enumerate(rows):
            where = f"data[{position}]"
            if not isinstance(row, dict):
                mapped.append(Row({}, error=f"{where}: must be an object"))
                continue
            mapped.append(Row({generic: row.get(native) for generic, native in KRAKEN_WS_NAMES.items()}
                              | {"exchange": "kraken"},
                              {generic: f"{where}.{native}" for generic, native in KRAKEN_WS_NAMES.items()}))
        return mapped
    if element.get("error"):
        raise UpdateError(None, f"error: Kraken reported {str(element['error'])[:80]!r}")
    result = element.get("result")
    if not isinstance(result, dict) or not result:
        raise UpdateError(None, "result: must be an object of pairs")
    updates = []
    for pair, ticker in sorted(result.items()):
        where = f"result.{pair[:_CLIP]}"
        if not isinstance(ticker, dict):
            updates.append(Row({}, error=f"{where}: must be an object"))
            continue

        def at(key: str, position: int, ticker: dict[str, Any] = ticker) -> Any:
            value = ticker.get(key)
            return value[position] if isinstance(value, list) and len(value) > position else None

        try:
            symbol = _kraken_rest_pair(pair)
        except ValueError as error:
            updates.append(Row({}, error=f"{where}: {str(error)[:120]}"))
            continue
        updates.append(Row({"symbol": symbol, "price": at("c", 0), "bid": at("b", 0),
                            "ask": at("a", 0), "volume_24h": at("v", 1), "exchange": "kraken"},
                           {"symbol": where, "price": f"{where}.c[0]", "bid": f"{where}.b[0]",
                            "ask": f"{where}.a[0]", "volume_24h": f"{where}.v[1]"}))
    return updates


ADAPTERS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "generic": _generic, "binance": _binance, "coinbase": _coinbase, "kraken": _kraken,
}


def detect_format(element: dict[str, Any]) -> str:
    if element.get("e") == "24hrTicker" or ("stream" in element and isinstance(element.get("data"), dict)) \
            or ("lastPrice" in element and "symbol" in element):
        return "binance"
    if element.get("type") == "ticker" and "product_id" in element:
        return "coinbase"
    if element.get("channel") == "ticker" or ("result" in element and "error" in element):
        return "kraken"
    return "generic"


def load_json(body: bytes) -> Any:
    """The body's JSON, numbers as exact Decimals (never floats); NaN and Infinity are refused."""
    def reject_constant(name: str) -> None:
        raise ValueError(f"{name} is not a number")

    try:
        return json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=reject_constant)
    except UnicodeDecodeError:
        raise EnvelopeError("body must be UTF-8 JSON") from None
    except (ValueError, RecursionError) as error:
        raise EnvelopeError(f"body is not valid JSON: {str(error)[:120]}") from None


def split_envelope(data: Any) -> tuple[list[Any], bool]:
    """The elements of the parsed body and whether it was a batch (array or {"updates": [...]})."""
    if isinstance(data, list):
        elements, batch = data, True
    elif isinstance(data, dict) and "updates" in data and not {"symbol", "price"} & data.keys():
        if not isinstance(data["updates"], list):
            raise EnvelopeError("updates: must be an array of updates")
        elements, batch = data["updates"], True
    elif isinstance(data, dict):
        elements, batch = [data], False
    else:
        raise EnvelopeError("body must be an update object, an array of updates or {\"updates\": [...]}")
    if not elements:
        raise EnvelopeError("no updates in the body")
    if len(elements) > MAX_UPDATES:
        raise EnvelopeError(f"at most {MAX_UPDATES} updates per request (got {len(elements)})", too_large=True)
    return elements, batch


def parse_updates(data: Any, *, format_hint: str | None, source: str, received_at_ms: int,
                  default_event_ms: int | None, default_quote: str,
                  ) -> tuple[list[tuple[int, PriceUpdate]], list[dict[str, Any]], bool]:
    """Valid updates with their element index, per-element rejections, and whether it was a batch.

    `data` is the parsed body, credentials already removed. `default_event_ms` is the event time
    of an update without `timestamp` (the signed time of the request), or None when such an
    update must be rejected. A multi-row envelope (Kraken) keeps its valid rows and reports
    each bad one, so a bad row never hides the rows after it.
    """
    if format_hint is not None and format_hint not in FORMATS:
        raise EnvelopeError(f"format: must be one of {', '.join(FORMATS)} (got {format_hint[:20]!r})")
    elements, batch = split_envelope(data)
    accepted: list[tuple[int, PriceUpdate]] = []
    rejected: list[dict[str, Any]] = []
    rows_seen = 0
    for index, element in enumerate(elements):
        if not isinstance(element, dict):
            rejected.append({"index": index, "error": "update: must be an object"})
            continue
        try:
            rows = ADAPTERS[format_hint or detect_format(element)](element)
        except UpdateError as error:
            rejected.append({"index": index, "error": str(error)})
            continue
        rows_seen += len(rows)
        if rows_seen > MAX_UPDATES:
            raise EnvelopeError(f"at most {MAX_UPDATES} updates per request (got more)", too_large=True)
        for row in rows:
            if row.error is not None:
                rejected.append({"index": index, "error": row.error})
                continue
            try:
                accepted.append((index, _validated(row.fields, source, received_at_ms, default_event_ms,
                                                   default_quote)))
            except UpdateError as error:
                rejected.append({"index": index, "error": f"{row.where(error.field_name)}: {error.message}"})
    return accepted, rejected, batch


# ---- the generic update's checks ----------------------------------------------------------------
# Written out instead of a pydantic model (cold start: see the module docstring). Each rule and
# message below is what the model `GenericUpdate` did, in its field order, and only the first
# failure is reported, as before:
#   symbol: str, 1-40 characters;  price: required, > 0;  exchange: str, 1-32 characters,
#   ^[A-Za-z0-9][A-Za-z0-9_.-]*$;  timestamp: anything (event_time_ms reads it);
#   volume: >= 0 or null;  bid, ask: > 0 or null;  other keys ignored.
# Added since (no pydantic counterpart): volume_24h: >= 0 or null; trades: an integer >= 0 or null.
# Strings are stripped first (str_strip_whitespace) of what pydantic-core (Rust's
# char::is_whitespace) strips: Unicode White_Space. Python's str.strip() would also strip
# U+001C..U+001F, which pydantic kept (and the symbol's checks then refuse).
_WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
               "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
# Matched with fullmatch: Rust's `^...$` (pydantic's engine), unlike Python's $, never ends before a "\n".
_EXCHANGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SYMBOL_MAX_LENGTH, EXCHANGE_MAX_LENGTH = 40, 32
# pydantic's texts, kept: senders have been reading them in 400 responses.
_NOT_A_STRING = "Input should be a valid string"
_NOT_UNICODE = "Input should be a valid string, unable to parse raw data as a unicode string"
_REQUIRED = "is required"


def _text(raw: dict[str, Any], name: str, max_length: int, pattern: re.Pattern[str] | None = None) -> str:
    """A required string field, stripped, 1..max_length characters, matching `pattern` in full."""
    if name not in raw:
        raise UpdateError(name, _REQUIRED)
    value = raw[name]
    if not isinstance(value, str):
        raise UpdateError(name, _NOT_A_STRING)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON) is no text
            raise UpdateError(name, _NOT_UNICODE) from None
    value = value.strip(_WHITESPACE)
    if not value:
        raise UpdateError(name, "String should have at least 1 character")
    if len(value) > max_length:
        raise UpdateError(name, f"String should have at most {max_length} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise UpdateError(name, f"String should match pattern '^{pattern.pattern}$'")
    return value


def _number(value: Any, name: str, *, positive: bool) -> Decimal:
    try:
        return exact_decimal(value, positive=positive)
    except ValueError as error:
        raise UpdateError(name, str(error)) from None


def _optional_number(raw: dict[str, Any], name: str, *, positive: bool) -> Decimal | None:
    """Absent or null is None (pydantic's default, and its validator's answer to null)."""
    value = raw.get(name)
    return None if value is None else _number(value, name, positive=positive)


def validate_generic(raw: dict[str, Any]) -> dict[str, Any]:
    """The generic update's fields as the model had them: symbol and exchange stripped, the numbers
    exact Decimals or None, timestamp as sent (event_time_ms reads it). UpdateError names the first
    field at fault, in the model's field order."""
    symbol = _text(raw, "symbol", SYMBOL_MAX_LENGTH)
    if "price" not in raw:
        raise UpdateError("price", _REQUIRED)
    price = _number(raw["price"], "price", positive=True)
    exchange = _text(raw, "exchange", EXCHANGE_MAX_LENGTH, _EXCHANGE)
    return {"symbol": symbol, "price": price, "exchange": exchange, "timestamp": raw.get("timestamp"),
            "volume": _optional_number(raw, "volume", positive=False),
            "bid": _optional_number(raw, "bid", positive=True), "ask": _optional_number(raw, "ask", positive=True),
            "volume_24h": _optional_number(raw, "volume_24h", positive=False), "trades": _trades(raw)}


def _trades(raw: dict[str, Any]) -> Decimal | None:
    """How many trades a tick aggregates: a whole number >= 0, or absent."""
    value = _optional_number(raw, "trades", positive=False)
    if value is not None and value != value.to_integral_value():
        raise UpdateError("trades", "must be a whole number")
    return value


def _validated(raw: dict[str, Any], source: str, received_at_ms: int, default_event_ms: int | None,
               default_quote: str) -> PriceUpdate:
    fields = validate_generic(raw)
    try:
        symbol = normalize_symbol(fields["symbol"], default_quote)
    except ValueError as error:
        raise UpdateError("symbol", str(error)) from None
    try:
        event_ms = event_time_ms(fields["timestamp"], default_event_ms, received_at_ms)
    except ValueError as error:
        raise UpdateError("timestamp", str(error)) from None
    return PriceUpdate(symbol=symbol, event_ms=event_ms, price=fields["price"], exchange=fields["exchange"].lower(),
                       source=source, received_at_ms=received_at_ms, volume=fields["volume"], bid=fields["bid"],
                       ask=fields["ask"], volume_24h=fields["volume_24h"], trades=fields["trades"])
