"""The exchanges the relay can read, by name."""

from __future__ import annotations

from price_relay.exchanges import binance, coinbase, kraken
from price_relay.exchanges.base import Exchange, FrameKind

EXCHANGES: dict[str, Exchange] = {module.EXCHANGE.name: module.EXCHANGE for module in (binance, coinbase, kraken)}

__all__ = ["EXCHANGES", "Exchange", "FrameKind", "get_exchange"]


def get_exchange(name: str) -> Exchange:
    """The exchange named `name`; ValueError (one line) listing the known ones otherwise."""
    try:
        return EXCHANGES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown exchange {name.strip()[:30]!r}: use one of {', '.join(EXCHANGES)}") from None
