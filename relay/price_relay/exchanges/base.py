"""What the relay must know about one exchange's public ticker stream.

Each exchange module describes its websocket endpoint, how it writes symbols, what to
send after connecting, and how to tell a ticker from an acknowledgement, a heartbeat or
an error. The relay itself stays exchange-agnostic: it only forwards what `classify`
calls a ticker, byte for byte unless `stamp_event_time` had to add the receive time.
"""

from __future__ import annotations

import enum
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHANNELS = ("trade", "ticker")  # trade: the default (traded quantity); ticker: the venue's snapshot


@dataclass(frozen=True)
class Trade:
    """One trade as the exchange reported it: its own symbol spelling, its per-book id
    (increasing per symbol on all three exchanges), exact price and base quantity, and
    the exchange's trade time in epoch ms."""

    symbol: str
    trade_id: int
    price: Decimal
    quantity: Decimal
    time_ms: int


@dataclass(frozen=True)
class TradeFrame:
    """The trades of one frame. `snapshot`: trades that happened before this subscription
    (Kraken's snapshot, Coinbase's `last_match`): counted only when a reconnect left a gap."""

    trades: tuple[Trade, ...]
    snapshot: bool = False


def iso_ms(text: Any) -> int:
    """RFC 3339 time (Coinbase `time`, Kraken v2 `timestamp`) -> epoch ms; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("time must be an RFC 3339 string")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("time must carry a zone")
    return (moment - _EPOCH) // timedelta(milliseconds=1)  # integers: no float rounding


def number(value: Any) -> Decimal:
    """An exchange number (a string, or a JSON number parsed as Decimal) -> a finite Decimal > 0."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValueError("must be a number")
    result = Decimal(value)
    if not result.is_finite() or result <= 0:
        raise ValueError("must be a finite number > 0")
    return result


class FrameKind(enum.Enum):
    """What an incoming websocket frame is, as far as the relay is concerned."""

    TICKER = "ticker"        # forwarded to the webhook
    ACK = "ack"              # subscription acknowledged
    HEARTBEAT = "heartbeat"  # keep-alive (heartbeat channel, pong)
    ERROR = "error"          # the exchange reports a problem (logged)
    OTHER = "other"          # status and anything new: ignored, as the exchanges ask clients to do


class Exchange(ABC):
    """One exchange's stream conventions. Subclasses are stateless singletons."""

    name: str
    default_ws_url: str
    symbol_example: str
    symbol_pattern: re.Pattern[str]
    # Seconds after which a connection is replaced on purpose (Binance cuts at 24 h), or None.
    default_max_connection_seconds: float | None = None
    # Seconds between application-level pings (Kraken v2 `{"method":"ping"}`), or None.
    default_app_ping_seconds: float | None = None

    def normalize_symbol(self, raw: str) -> str:
        """The symbol as this exchange writes it; ValueError (one line) when it cannot be one."""
        symbol = raw.strip().upper()
        if not self.symbol_pattern.fullmatch(symbol):
            raise ValueError(f"{self.name} symbols are written like {self.symbol_example} (got {raw.strip()[:40]!r})")
        return symbol

    def ws_url(self, symbols: tuple[str, ...], override: str | None, channel: str = "ticker") -> str:
        """The URL to connect to: the override (tests, private gateways) or the public endpoint."""
        return override or self.default_ws_url

    @abstractmethod
    def subscribe_messages(self, symbols: tuple[str, ...], channel: str = "ticker") -> list[str]:
        """Text frames to send right after connecting (may be empty)."""

    @abstractmethod
    def trades(self, message: Any) -> TradeFrame | None:
        """The trades of a trade-channel frame, or None when the frame is not one.
        ValueError when it is one but a field is malformed (the frame is logged and skipped)."""

    @abstractmethod
    def classify(self, message: Any) -> FrameKind:
        """What a decoded JSON frame is."""

    def app_ping(self) -> str | None:
        """An application-level ping frame, for exchanges that expect one."""
        return None

    @abstractmethod
    def stamp_event_time(self, message: dict[str, Any], received_ms: int) -> bool:
        """Add the receive time (epoch ms) where the webhook reads the event time, if the
        ticker carries none. Returns True when the message was changed.

        Done before spooling, so a re-sent batch is byte-identical and the webhook sees
        the same update (a duplicate), not a new one stamped with a later receive time.
        """

    @staticmethod
    def describe_error(message: Any) -> str:
        """The exchange's error text for a log line (bounded)."""
        return str(message)[:300]
