"""Request bodies → validated price updates.

A body is one update, a JSON array of updates, or {"updates": [...]}. Each element is
the generic format or an exchange-native ticker (Binance, Coinbase, Kraken), recognized
by its shape or forced with `?format=`. Exchange adapters only map fields onto the
generic shape; one pydantic model validates them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.shared.price_update import PriceUpdate
from functions.webhook_processor.normalize import event_time_ms, exact_decimal, normalize_symbol

MAX_UPDATES = 1000
FORMATS = ("generic", "binance", "coinbase", "kraken")


class EnvelopeError(Exception):
    """The body as a whole is unusable (400), or too large (413 when too_large)."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class GenericUpdate(BaseModel):
    """The generic webhook format; extra keys (TradingView adds its own) are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

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


def _binance(element: dict) -> list[dict]:
    """Binance `<symbol>@ticker` stream event (optionally in a combined-stream wrapper) or
    REST `GET /api/v3/ticker/24hr` object."""
    if "data" in element and "stream" in element:
        element = element["data"]
    if element.get("e") == "24hrTicker":
        return [{"symbol": element.get("s"), "price": element.get("c"), "bid": element.get("b"),
                 "ask": element.get("a"), "volume": element.get("v"), "timestamp": element.get("E"),
                 "exchange": "binance"}]
    return [{"symbol": element.get("symbol"), "price": element.get("lastPrice"), "bid": element.get("bidPrice"),
             "ask": element.get("askPrice"), "volume": element.get("volume"),
             "timestamp": element.get("closeTime"), "exchange": "binance"}]


def _coinbase(element: dict) -> list[dict]:
    """Coinbase Exchange websocket `ticker` channel message."""
    return [{"symbol": element.get("product_id"), "price": element.get("price"), "bid": element.get("best_bid"),
             "ask": element.get("best_ask"), "volume": element.get("volume_24h"), "timestamp": element.get("time"),
             "exchange": "coinbase"}]


def _kraken_rest_pair(pair: str) -> str:
    """Kraken REST pair names: XXBTZUSD → XBT/USD (X marks crypto, Z fiat); XBTUSDT passes as is."""
    if len(pair) == 8 and pair[0] in "XZ" and pair[4] in "XZ":
        return f"{pair[1:4]}/{pair[5:]}"
    return pair


def _kraken(element: dict) -> list[dict]:
    """Kraken websocket v2 `ticker` channel message, or REST `GET /0/public/Ticker` response."""
    if element.get("channel") == "ticker":
        rows = element.get("data")
        if not isinstance(rows, list) or not rows:
            raise ValueError("data: must be a non-empty list of tickers")
        return [{"symbol": r.get("symbol"), "price": r.get("last"), "bid": r.get("bid"), "ask": r.get("ask"),
                 "volume": r.get("volume"), "timestamp": r.get("timestamp"), "exchange": "kraken"}
                if isinstance(r, dict) else {} for r in rows]
    if element.get("error"):
        raise ValueError(f"error: Kraken reported {element['error']!r}")
    result = element.get("result")
    if not isinstance(result, dict) or not result:
        raise ValueError("result: must be an object of pairs")
    updates = []
    for pair, ticker in sorted(result.items()):
        if not isinstance(ticker, dict):
            raise ValueError(f"result.{pair}: must be an object")

        def first(key: str, ticker: dict = ticker) -> Any:
            value = ticker.get(key)
            return value[0] if isinstance(value, list) and value else None

        volume = ticker.get("v")
        updates.append({"symbol": _kraken_rest_pair(pair), "price": first("c"), "bid": first("b"),
                        "ask": first("a"), "volume": volume[1] if isinstance(volume, list) and len(volume) > 1
                        else None, "exchange": "kraken"})
    return updates


ADAPTERS: dict[str, Callable[[dict], list[dict]]] = {
    "generic": lambda element: [element], "binance": _binance, "coinbase": _coinbase, "kraken": _kraken,
}


def detect_format(element: dict) -> str:
    if element.get("e") == "24hrTicker" or ("stream" in element and isinstance(element.get("data"), dict)) \
            or ("lastPrice" in element and "symbol" in element):
        return "binance"
    if element.get("type") == "ticker" and "product_id" in element:
        return "coinbase"
    if element.get("channel") == "ticker" or ("result" in element and "error" in element):
        return "kraken"
    return "generic"


def _loads(body: bytes) -> Any:
    def reject_constant(name: str) -> None:
        raise ValueError(f"{name} is not a number")

    try:
        return json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=reject_constant)
    except UnicodeDecodeError:
        raise EnvelopeError("body must be UTF-8 JSON") from None
    except (ValueError, RecursionError) as error:
        raise EnvelopeError(f"body is not valid JSON: {str(error)[:120]}") from None


def split_envelope(body: bytes) -> tuple[list[Any], bool]:
    """The elements of the body and whether it was a batch (array or {"updates": [...]})."""
    data = _loads(body)
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


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "update"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "is required"
    return f"{field}: {message}"


def parse_updates(body: bytes, *, format_hint: str | None, source: str, received_at_ms: int,
                  default_quote: str) -> tuple[list[tuple[int, PriceUpdate]], list[dict], bool]:
    """Valid updates with their element index, per-element rejections, and whether it was a batch."""
    if format_hint is not None and format_hint not in FORMATS:
        raise EnvelopeError(f"format: must be one of {', '.join(FORMATS)} (got {format_hint[:20]!r})")
    elements, batch = split_envelope(body)
    accepted: list[tuple[int, PriceUpdate]] = []
    rejected: list[dict] = []
    for index, element in enumerate(elements):
        try:
            if not isinstance(element, dict):
                raise ValueError("update: must be an object")
            for raw in ADAPTERS[format_hint or detect_format(element)](element):
                accepted.append((index, _validated(raw, source, received_at_ms, default_quote)))
        except ValidationError as error:
            rejected.append({"index": index, "error": _describe(error)})
        except ValueError as error:
            rejected.append({"index": index, "error": str(error)})
    if len(accepted) > MAX_UPDATES:
        raise EnvelopeError(f"at most {MAX_UPDATES} updates per request (got {len(accepted)})", too_large=True)
    return accepted, rejected, batch


def _validated(raw: dict, source: str, received_at_ms: int, default_quote: str) -> PriceUpdate:
    model = GenericUpdate.model_validate(raw)
    try:
        symbol = normalize_symbol(model.symbol, default_quote)
    except ValueError as error:
        raise ValueError(f"symbol: {error}") from None
    try:
        event_ms = event_time_ms(model.timestamp, received_at_ms)
    except ValueError as error:
        raise ValueError(f"timestamp: {error}") from None
    return PriceUpdate(symbol=symbol, event_ms=event_ms, price=model.price, exchange=model.exchange.lower(),
                       source=source, received_at_ms=received_at_ms, volume=model.volume, bid=model.bid,
                       ask=model.ask)
