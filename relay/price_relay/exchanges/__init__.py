"""The exchanges the relay can read, by name.

The names come from the pipeline's one list (`functions.webhook_processor.exchanges`, standard
library only, as `price_relay.symbols` imports the symbol rules): the relay streams exactly the
exchanges whose native messages the webhook parses, each from its module of the same name here.
"""

from __future__ import annotations

from importlib import import_module

from functions.webhook_processor.exchanges import EXCHANGES as NAMES
from price_relay.exchanges.base import Exchange, FrameKind

EXCHANGES: dict[str, Exchange] = {name: import_module(f"price_relay.exchanges.{name}").EXCHANGE for name in NAMES}

__all__ = ["EXCHANGES", "Exchange", "FrameKind", "get_exchange"]


def get_exchange(name: str) -> Exchange:
    """The exchange named `name`; ValueError (one line) listing the known ones otherwise."""
    try:
        return EXCHANGES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown exchange {name.strip()[:30]!r}: use one of {', '.join(EXCHANGES)}") from None
