"""Request bodies → validated price updates.

A body is one update, a JSON array of updates, or {"updates": [...]}. Each element is
the generic format or an exchange-native ticker (Binance, Coinbase, Kraken), recognized
by its shape or forced with `?format=`. Exchange adapters only map fields onto the
generic shape and check the types of the envelope they walk; one pydantic model validates
every update. Errors name the field as the sender wrote it (`lastPrice`, `data[1].last`),
never its value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.shared.price_update import PriceUpdate
from functions.webhook_processor.normalize import event_time_ms, exact_decimal, normalize_symbol

MAX_UPDATES = 1000
FORMATS = ("generic", "binance", "coinbase", "kraken")
_CLIP = 40  # sender-chosen names (Kraken pair keys) are clipped in error messages


class EnvelopeError(Exception):
    """The body as a whole is unusable (400), or too large (413 when too_large)."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class GenericUpdate(BaseModel):
    """The generic webhook format; extra keys (TradingView adds its own) are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, hide_input_in_errors=True)

    symbol: str = Field(min_length=1, max_length=40)
    price: Any
    exchange: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    timestamp: Any = None
    volume: Any = None
    bid: Any = None
    ask: Any = None

    @field_validator("price")
    @classmethod
    def _price(cls, value: Any) -> Decimal:
        return exact_decimal(value, positive=True)

    @field_validator("bid", "ask")
    @classmethod
    def _positive(cls, value: Any) -> Decimal | None:
        return None if value is None else exact_decimal(value, positive=True)

    @field_validator("volume")
    @classmethod
    def _not_negative(cls, value: Any) -> Decimal | None:
        return None if value is None else exact_decimal(value, positive=False)


class UpdateError(ValueError):
    """One update's problem: the generic field at fault (or None for the update as a whole) and why."""

    def __init__(self, field_name: str | None, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.message = message


@dataclass(frozen=True)
class Row:
    """One update mapped onto the generic shape, with where it sits in the sender's envelope:
    `names` maps a generic field to the sender's own path for error messages. A row whose part
    of the envelope has the wrong type carries `error` instead (rejected; the other rows go on)."""

    fields: dict[str, Any]
    names: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def where(self, field_name: str | None) -> str:
        return self.names.get(field_name, field_name) if field_name else self.names.get("", "update")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UpdateError(None, f"{where}: must be an object")
    return value


BINANCE_STREAM_NAMES = {"symbol": "s", "price": "c", "bid": "b", "ask": "a", "volume": "v", "timestamp": "E"}
BINANCE_REST_NAMES = {"symbol": "symbol", "price": "lastPrice", "bid": "bidPrice", "ask": "askPrice",
                      "volume": "volume", "timestamp": "closeTime"}
COINBASE_NAMES = {"symbol": "product_id", "price": "price", "bid": "best_bid", "ask": "best_ask",
                  "volume": "volume_24h", "timestamp": "time"}
KRAKEN_WS_NAMES = {"symbol": "symbol", "price": "last", "bid": "bid", "ask": "ask", "volume": "volume",
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
    """Kraken REST pair names: XXBTZUSD → XBT/USD (X marks crypto, Z fiat); others (XBTUSDT, DOTUSD,
    USDTZUSD) are split by `normalize_symbol`, which knows Kraken's compact names."""
    if len(pair) == 8 and pair[0] in "XZ" and pair[4] in "XZ":
        return f"{pair[1:4]}/{pair[5:]}"
    return pair


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

        updates.append(Row({"symbol": _kraken_rest_pair(pair), "price": at("c", 0), "bid": at("b", 0),
                            "ask": at("a", 0), "volume": at("v", 1), "exchange": "kraken"},
                           {"symbol": where, "price": f"{where}.c[0]", "bid": f"{where}.b[0]",
                            "ask": f"{where}.a[0]", "volume": f"{where}.v[1]"}))
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


def _pydantic_error(error: ValidationError) -> UpdateError:
    first = error.errors(include_input=False)[0]
    field_name = ".".join(str(p) for p in first["loc"]) or None
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "is required"
    return UpdateError(field_name, message)


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


def _validated(raw: dict[str, Any], source: str, received_at_ms: int, default_event_ms: int | None,
               default_quote: str) -> PriceUpdate:
    try:
        model = GenericUpdate.model_validate(raw)
    except ValidationError as error:
        raise _pydantic_error(error) from None
    try:
        symbol = normalize_symbol(model.symbol, default_quote)
    except ValueError as error:
        raise UpdateError("symbol", str(error)) from None
    try:
        event_ms = event_time_ms(model.timestamp, default_event_ms, received_at_ms)
    except ValueError as error:
        raise UpdateError("timestamp", str(error)) from None
    return PriceUpdate(symbol=symbol, event_ms=event_ms, price=model.price, exchange=model.exchange.lower(),
                       source=source, received_at_ms=received_at_ms, volume=model.volume, bid=model.bid,
                       ask=model.ask)
