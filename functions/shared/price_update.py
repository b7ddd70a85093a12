"""The normalized price update: what the webhook stores and what the webhook DLQ holds.

Prices are Decimals end to end (JSON is parsed with parse_float=Decimal), so a price
reaches DynamoDB exactly as the sender wrote it, without float rounding.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from functions.shared.price_table.items import OPTIONAL_NUMBERS
from functions.shared.records import Record

MESSAGE_VERSION = 1


class PriceUpdate(Record):
    """One update: immutable, compared and hashed by value (a `Record`, not a frozen dataclass,
    for the cold start: see `functions.shared.records`)."""

    __slots__ = ("symbol", "event_ms", "price", "exchange", "source", "received_at_ms", "volume", "bid", "ask",
                 "volume_24h", "trades")

    symbol: str          # BASE-QUOTE, upper case
    event_ms: int        # the update's own time, epoch milliseconds
    price: Decimal
    exchange: str        # lower case
    source: str          # the authenticated sender (X-Source)
    received_at_ms: int
    volume: Decimal | None
    bid: Decimal | None
    ask: Decimal | None
    volume_24h: Decimal | None
    trades: Decimal | None

    def __init__(self, symbol: str, event_ms: int, price: Decimal, exchange: str, source: str, received_at_ms: int,
                 volume: Decimal | None = None, bid: Decimal | None = None, ask: Decimal | None = None,
                 volume_24h: Decimal | None = None, trades: Decimal | None = None) -> None:
        self._init(symbol, event_ms, price, exchange, source, received_at_ms, volume, bid, ask, volume_24h, trades)

    def identity(self) -> tuple[object, ...]:
        """What makes two updates the same update: a redelivery matches on all of it.

        Source and receive time are left out: the same tick resent (or relayed by
        another sender) is still the same tick.
        """
        return (self.symbol, self.event_ms, self.exchange, self.price,
                *(getattr(self, name) for name in OPTIONAL_NUMBERS))

    def to_message(self) -> dict[str, Any]:
        """JSON-safe form for the DLQ: numbers as strings so nothing is rounded."""
        message: dict[str, Any] = {
            "symbol": self.symbol, "event_ms": self.event_ms, "price": str(self.price),
            "exchange": self.exchange, "source": self.source, "received_at_ms": self.received_at_ms,
        }
        for name in OPTIONAL_NUMBERS:
            value = getattr(self, name)
            if value is not None:
                message[name] = str(value)
        return message

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> PriceUpdate:
        return cls(
            symbol=str(message["symbol"]), event_ms=int(message["event_ms"]), price=Decimal(message["price"]),
            exchange=str(message["exchange"]), source=str(message["source"]),
            received_at_ms=int(message["received_at_ms"]),
            **{name: Decimal(message[name]) for name in OPTIONAL_NUMBERS if message.get(name) is not None},
        )


def dead_letter_body(update: PriceUpdate, error: str, failed_at_ms: int) -> dict[str, Any]:
    """Everything needed to replay a stored-nowhere update; never a secret or a signature."""
    return {"version": MESSAGE_VERSION, "kind": "price-update", "update": update.to_message(),
            "error": error[:500], "failed_at_ms": failed_at_ms}
